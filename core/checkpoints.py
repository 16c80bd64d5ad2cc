"""Saving and loading the two shipped models and their metadata, crash-safely.

Why atomic: the dashboard may be reading ``checkpoints/`` while a retraining run writes to it, and
a process can die mid-save. Every file is written to a temporary name in the same folder and
then ``os.replace``-d over the old one, so a reader sees either the old file or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.compat import tf

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
CHECKPOINT_DIR_ENV = "BEANGUARD_CHECKPOINT_DIR"
MODEL_FILES = {"baseline": "baseline.keras", "adversarial": "adversarial.keras"}
METADATA_FILE = "metadata.json"
TRAIN_HINT = "Train them with `python -m core.train` (or from the dashboard sidebar)."


class CheckpointError(RuntimeError):
    """A checkpoint is missing or unreadable; the message names the file and how to fix it."""


@dataclass(frozen=True)
class ModelPair:
    """The baseline and the adversarially regularized model, loaded together, with metadata."""

    baseline: tf.keras.Model
    adversarial: tf.keras.Model
    metadata: dict[str, Any]
    version: str

    def __getitem__(self, name: str) -> tf.keras.Model:
        return {"baseline": self.baseline, "adversarial": self.adversarial}[name]


def checkpoint_dir(directory: str | os.PathLike | None = None) -> Path:
    """The folder to use: the argument, else ``$BEANGUARD_CHECKPOINT_DIR``, else ``checkpoints/``."""
    return Path(directory or os.environ.get(CHECKPOINT_DIR_ENV) or DEFAULT_DIR)


def _temporary_sibling(path: Path) -> Path:
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    os.chmod(name, 0o644)  # mkstemp makes 0600; a checkpoint is meant to be read by other users
    return Path(name)


def save_model_atomic(model: tf.keras.Model, path: str | os.PathLike) -> Path:
    """Save ``model`` (without optimizer state) to ``path`` so that a crash keeps the old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(path)
    inference_copy = tf.keras.models.clone_model(model)  # uncompiled: no optimizer state in the file
    inference_copy.set_weights(model.get_weights())
    try:
        inference_copy.save(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_json_atomic(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``data`` as pretty JSON to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(path)
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def save_pair(
    baseline: tf.keras.Model, adversarial: tf.keras.Model, metadata: dict[str, Any], directory: str | os.PathLike | None = None
) -> Path:
    """Write both models, then the metadata last: a new ``metadata.json`` marks a complete pair."""
    folder = checkpoint_dir(directory)
    save_model_atomic(baseline, folder / MODEL_FILES["baseline"])
    save_model_atomic(adversarial, folder / MODEL_FILES["adversarial"])
    write_json_atomic(metadata, folder / METADATA_FILE)
    return folder


def load_model(path: str | os.PathLike) -> tf.keras.Model:
    """Load a plain Keras model for inference, or raise :class:`CheckpointError` saying why."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} is missing. {TRAIN_HINT}")
    try:
        return tf.keras.models.load_model(path, compile=False)
    except Exception as error:  # zip, h5py and Keras raise many unrelated types for a bad file
        raise CheckpointError(
            f"Checkpoint {path} is damaged or not a Keras model ({type(error).__name__}). {TRAIN_HINT}"
        ) from error


def load_metadata(directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """The training config, data fingerprint, timings and evaluation table; {} if none."""
    path = checkpoint_dir(directory) / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"Metadata {path} is unreadable ({error}). {TRAIN_HINT}") from error


def pair_version(directory: str | os.PathLike | None = None) -> str:
    """A cheap token that changes whenever a checkpoint file is replaced (for caches)."""
    folder = checkpoint_dir(directory)
    parts = []
    for name in (*MODEL_FILES.values(), METADATA_FILE):
        try:
            stat = (folder / name).stat()
            parts.append(f"{stat.st_mtime_ns}:{stat.st_size}")
        except FileNotFoundError:
            parts.append("missing")
    return "|".join(parts)


def load_pair(directory: str | os.PathLike | None = None) -> ModelPair:
    """Load both shipped models and the metadata from ``directory``."""
    folder = checkpoint_dir(directory)
    version = pair_version(folder)
    return ModelPair(
        baseline=load_model(folder / MODEL_FILES["baseline"]),
        adversarial=load_model(folder / MODEL_FILES["adversarial"]),
        metadata=load_metadata(folder),
        version=version,
    )
