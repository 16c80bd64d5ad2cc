"""Beanguard core: data, models, attacks, training, evaluation, the class store.

Importing ``core`` sets ``TF_USE_LEGACY_KERAS=1`` before anything can import TensorFlow, so
TensorFlow always starts with legacy Keras (tf-keras), which NSL needs. TensorFlow itself loads
only with the modules that use it (each imports ``tf`` and ``nsl`` from :mod:`core.compat`): the
class store, its command line and the passcode tools start in a fraction of a second.
"""

import os as _os

_os.environ["TF_USE_LEGACY_KERAS"] = "1"
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ info logs off the console
