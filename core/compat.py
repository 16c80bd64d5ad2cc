"""The one place that makes TensorFlow 2.21, tf-keras and NSL 1.4.0 work together.

Why this module exists:
- NSL is written for Keras 2. TensorFlow >= 2.16 ships Keras 3 as ``tf.keras`` unless
  ``TF_USE_LEGACY_KERAS=1`` is set *before* TensorFlow is first imported; then ``tf.keras`` is
  the ``tf-keras`` package (Keras 2). Setting it late silently gives Keras 3 and NSL breaks.
- ``neural_structured_learning/__init__.py`` imports its ``estimator`` subpackage, which imports
  ``tensorflow.estimator`` — removed in TF 2.16. We never use NSL's Estimator API, so we register
  a stand-in for that one subpackage that raises a clear error if anybody touches it.
- A server traces graphs in threads beside Streamlit's own work: :func:`traced` makes those graphs
  without autograph (see there).

Every other module imports ``tf`` and ``nsl`` from here: ``from core.compat import tf, nsl``.
"""

from __future__ import annotations

import os
import sys
import types

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ info logs off the console

_early_tf = sys.modules.get("tensorflow")
if _early_tf is not None and not _early_tf.keras.__name__.startswith("tf_keras"):
    raise ImportError(
        "TensorFlow was imported before core.compat, so tf.keras is Keras 3 and NSL cannot work. "
        "Import core (or set TF_USE_LEGACY_KERAS=1) before importing tensorflow."
    )

_ESTIMATOR = "neural_structured_learning.estimator"


def _estimator_unavailable(name: str):
    # AttributeError keeps introspection (AutoGraph reads __file__) happy; `from ... import x`
    # turns it into an ImportError with this message.
    raise AttributeError(
        f"nsl.estimator.{name} is unavailable: it needs tensorflow.estimator, which TensorFlow "
        ">= 2.16 removed. Use nsl.keras instead."
    )


if _ESTIMATOR not in sys.modules:
    _stub = types.ModuleType(_ESTIMATOR, "Stand-in: NSL's Estimator API needs tf.estimator.")
    _stub.__getattr__ = _estimator_unavailable  # type: ignore[attr-defined]
    sys.modules[_ESTIMATOR] = _stub

import tensorflow as tf  # noqa: E402
import neural_structured_learning as nsl  # noqa: E402


def traced(function, **options):
    """``tf.function(function, autograph=False, **options)``: a graph traced as the Python runs.

    Autograph rewrites a function from its source with ``ast.parse`` the first time it is traced.
    In CPython 3.11 the AST constructor keeps one recursion counter for all threads, so a trace
    in one thread while Streamlit compiles the page's script for a new page in another can fail
    with "SystemError: AST constructor recursion depth mismatch". Without autograph, loops over
    tensors must be written as ``tf.while_loop`` and branches on tensors as ``tf.where``/``tf.cond``;
    loops over Python ints unroll as the graph is traced.
    """
    return tf.function(function, autograph=False, **options)


__all__ = ["tf", "nsl", "traced"]
