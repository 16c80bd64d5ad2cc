"""Beanguard core: data, models, attacks, training, evaluation, activations, checkpoints.

Importing any ``core`` module goes through :mod:`core.compat` first, so TensorFlow always starts
with legacy Keras (tf-keras) and NSL imports cleanly on TF 2.21.
"""

from core import compat as _compat  # noqa: F401  (must run before any TensorFlow import)
