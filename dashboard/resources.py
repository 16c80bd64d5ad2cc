"""Everything slow happens once: models, data, decoded uploads and per-setting results are cached.

- Models: ``st.cache_resource`` keyed on the folder (the run the class sees, ``core.runs``) and
  ``core.checkpoints.pair_version`` — another run or a replaced file changes the key, so every
  session loads the new pair on its next rerun.
  While a save is in progress ``load_pair`` raises ``CheckpointMismatch`` (the files are checked
  against the digests in metadata.json, which is written last) and a session keeps its pair.
- Test split and uploads: ``st.cache_data`` (plain arrays, safe to copy).
- One slider position: ``st.cache_data`` on (models, image, settings), shared by every session, so a
  class all looking at the default image pays for it once.
- Whole-split curves and tables: a process-wide :class:`ResultStore`, filled on a button press.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from core import checkpoints, ood
from core.data import Split, load_split, resolve_data_dir

from dashboard.analysis import AttackSettings, Interaction, run_interaction, warm_up
from dashboard.uploads import UploadResult, decode_upload


def command_line_data_dir(argv: list[str] | None = None) -> str | None:
    """``streamlit run dashboard/app.py -- --data-dir PATH``; unknown arguments are ignored."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--data-dir")
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return known.data_dir


def data_dir_setting() -> Path | None:
    """``--data-dir``, else ``$BEANS_DATA_DIR``, else None (core then downloads Beans with TFDS)."""
    return resolve_data_dir(command_line_data_dir())


@st.cache_resource(max_entries=2, show_spinner="Loading the two models…")
def load_models(directory: str, version: str) -> checkpoints.ModelPair:
    """Load and warm up the pair; ``version`` is only the cache key (it changes with the files).
    Run folders (anything but the shipped pair) must match the digests in their metadata.json."""
    pair = checkpoints.load_pair(directory, require_digests=Path(directory).resolve() != checkpoints.checkpoint_dir().resolve())
    warm_up(pair, image_size(pair))
    return pair


def current_models(folder: Path) -> checkpoints.ModelPair:
    """The pair to use on this rerun; raises :class:`core.checkpoints.CheckpointError`.

    While a save is in progress (``CheckpointMismatch``: model files that are not the ones
    metadata.json names) a session keeps the pair it already had; the next rerun after
    metadata.json is written loads the new one.
    """
    version = checkpoints.pair_version(folder)
    try:
        pair = load_models(str(folder), version)
    except checkpoints.CheckpointMismatch:
        previous = st.session_state.get("pair_version")
        if previous is None or previous == version:
            raise
        return load_models(str(folder), previous)  # cached; raises the mismatch again if evicted
    st.session_state["pair_version"] = version
    return pair


def image_size(pair: checkpoints.ModelPair) -> int:
    """The models' input size (both models share the architecture)."""
    return int(pair.baseline.input_shape[1])


@st.cache_data(show_spinner="Loading the Beans test split…", max_entries=4)
def load_test_split(data_dir: str | None, size: int) -> Split:
    return load_split("test", size, data_dir)


@st.cache_resource(max_entries=4, show_spinner=False)
def ood_reference(data_key: str, _split: Split) -> ood.Reference:
    """What the Beans test photos look like (``core.ood``), once per data source and size."""
    return ood.fit_reference(_split.images)


@st.cache_data(max_entries=16, show_spinner=False)
def decode_uploaded_file(name: str, digest: str, _data: bytes, size: int) -> UploadResult:
    """Decode once per distinct file (keyed on its SHA-1 ``digest``, not on up to 10 MB of bytes)."""
    return decode_upload(name, _data, size)


@st.cache_data(max_entries=32, show_spinner=False)
def _interaction(
    version: str, image_key: str, true_label: int | None, settings: AttackSettings, _pair: checkpoints.ModelPair, _image: np.ndarray
) -> Interaction:
    return run_interaction(_pair, _image, true_label, settings)


def interaction(pair: checkpoints.ModelPair, image_key: str, image: np.ndarray, true_label: int | None, settings: AttackSettings) -> Interaction:
    """``run_interaction`` cached per (models, image, label, settings), across all sessions."""
    return _interaction(pair.version, image_key, true_label, settings, pair, image)


class ResultStore:
    """Process-wide results of whole-split computations (curves, tables), keyed by what made them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: dict[tuple, Any] = {}

    def get(self, key: tuple) -> Any:
        with self._lock:
            return self._results.get(key)

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._results[key] = value


@st.cache_resource
def result_store() -> ResultStore:
    return ResultStore()
