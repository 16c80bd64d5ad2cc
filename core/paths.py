"""Where Beanguard keeps what it writes: the runs folder (retraining runs) and, beside it, the class
store's SQLite file. Free of TensorFlow, so the class store and its command line start fast."""

from __future__ import annotations

import os
from pathlib import Path

RUNS_DIR_ENV = "BEANGUARD_RUNS_DIR"
DEFAULT_RUNS_DIR = Path(__file__).resolve().parent.parent / "runs"


def runs_dir(directory: str | os.PathLike | None = None) -> Path:
    """The runs folder: the argument, else ``$BEANGUARD_RUNS_DIR``, else ``runs/`` in the repository."""
    return Path(directory or os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)
