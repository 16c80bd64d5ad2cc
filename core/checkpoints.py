"""Saving and loading the two shipped models and their metadata, crash-safely.

Why atomic: the dashboard may be reading ``checkpoints/`` while a retraining run writes to it, and
a process can die mid-save. Every file is written to a temporary name in the same folder and
then ``os.replace``-d over the old one, so a reader sees either the old file or the new one.

Why digests: atomic files are not an atomic *pair*. ``save_pair`` replaces baseline.keras, then
adversarial.keras, then writes metadata.json last, recording the SHA-256 of each model file in
``metadata["files"]``. ``load_pair`` reads the metadata first, hashes the exact bytes it loads
and raises :class:`CheckpointMismatch` when they are not the files the metadata names (a save in
progress, or files copied from different runs). Metadata without ``"files"`` (checkpoints from
before this check) loads unchecked unless the caller asks for digests (run folders do, see
``core.runs``); ``save_pair`` records the digests of such a pair before replacing it, so a reader
never mixes the old pair with the new one.

Why safe mode: a ``.keras`` file can carry Python code (a ``Lambda`` layer's bytecode). Models are
loaded with Keras' ``safe_mode=True``, which refuses to run it; ours are plain layers and never need it.
"""

from __future__ import annotations

import hashlib
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
FILES_KEY = "files"  # metadata["files"] = {"baseline.keras": "<sha256 hex>", "adversarial.keras": ...}
TRAIN_HINT = "Train them with `python -m core.train` (or from the dashboard sidebar)."
RETRAIN_HINT = "Retrain with `python -m core.train` (or from the dashboard sidebar)."


class CheckpointError(RuntimeError):
    """A checkpoint is missing or unreadable; the message names the file and how to fix it."""


class CheckpointMismatch(CheckpointError):
    """The model files are readable but are not the ones metadata.json names: a save is in
    progress (metadata.json is written last), or the files come from different training runs."""


@dataclass(frozen=True)
class ModelPair:
    """The baseline and the adversarially regularized model, loaded together, with metadata."""

    baseline: tf.keras.Model
    adversarial: tf.keras.Model
    metadata: dict[str, Any]
    version: str

    def __getitem__(self, name: str) -> tf.keras.Model:
        return {"baseline": self.baseline, "adversarial": self.adversarial}[name]

    @property
    def image_size(self) -> int:
        """The side of the square photos both models take (they share one architecture)."""
        return int(self.baseline.input_shape[1])


def checkpoint_dir(directory: str | os.PathLike | None = None) -> Path:
    """The folder to use: the argument, else ``$BEANGUARD_CHECKPOINT_DIR``, else ``checkpoints/``."""
    return Path(directory or os.environ.get(CHECKPOINT_DIR_ENV) or DEFAULT_DIR)


def _temporary_sibling(path: Path) -> Path:
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    os.chmod(name, 0o644)  # mkstemp makes 0600; a checkpoint is meant to be read by other users
    return Path(name)


def sha256_digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, as recorded in ``metadata["files"]``."""
    return sha256_digest(Path(path).read_bytes())


def _save_model_with_digest(model: tf.keras.Model, path: Path) -> str:
    """Save atomically; return the digest of exactly the bytes that were renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(path)
    inference_copy = tf.keras.models.clone_model(model)  # uncompiled: no optimizer state in the file
    inference_copy.set_weights(model.get_weights())
    try:
        inference_copy.save(temporary)
        with open(temporary, "rb") as written:
            digest = sha256_digest(written.read())
            os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return digest


def save_model_atomic(model: tf.keras.Model, path: str | os.PathLike) -> Path:
    """Save ``model`` (without optimizer state) to ``path`` so that a crash keeps the old file."""
    path = Path(path)
    _save_model_with_digest(model, path)
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


def _record_digests_of_unchecked_pair(folder: Path) -> None:
    """Before replacing a pair whose metadata has no digests, write them (the pair as it is now),
    so a reader that loads while the new files arrive sees a mismatch instead of a silent mix."""
    paths = [folder / name for name in MODEL_FILES.values()]
    if not all(path.is_file() for path in paths):
        return
    try:
        metadata = load_metadata(folder)
    except CheckpointError:
        return  # unreadable metadata does not load anyway; it is about to be replaced
    if FILES_KEY in metadata:
        return
    write_json_atomic({**metadata, FILES_KEY: {path.name: file_digest(path) for path in paths}}, folder / METADATA_FILE)


def save_pair(
    baseline: tf.keras.Model, adversarial: tf.keras.Model, metadata: dict[str, Any], directory: str | os.PathLike | None = None
) -> Path:
    """Write both models, then the metadata last, with the SHA-256 of each model file in
    ``metadata["files"]``: a new ``metadata.json`` marks a complete pair, and a reader can tell
    exactly whether the model files on disk are the ones it names. ``metadata`` gets the same
    ``"files"`` entry, so the caller's dict is what was written."""
    folder = checkpoint_dir(directory)
    _record_digests_of_unchecked_pair(folder)
    metadata[FILES_KEY] = {
        MODEL_FILES["baseline"]: _save_model_with_digest(baseline, folder / MODEL_FILES["baseline"]),
        MODEL_FILES["adversarial"]: _save_model_with_digest(adversarial, folder / MODEL_FILES["adversarial"]),
    }
    write_json_atomic(metadata, folder / METADATA_FILE)
    return folder


def _read_model_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"Checkpoint {path} is missing. {TRAIN_HINT}") from None
    except OSError as error:
        raise CheckpointError(f"Checkpoint {path} is unreadable ({error}). {RETRAIN_HINT}") from error


def _load_model_bytes(content: bytes, path: Path) -> tf.keras.Model:
    """Load exactly ``content`` (the bytes that were hashed), not whatever ``path`` holds by now."""
    with tempfile.TemporaryDirectory(prefix="beanguard-load-") as scratch:
        private = Path(scratch) / path.name  # Keras picks the format from the suffix
        private.write_bytes(content)
        try:
            return tf.keras.models.load_model(private, compile=False, safe_mode=True)
        except Exception as error:  # zip, h5py and Keras raise many unrelated types for a bad file
            if "safe_mode" in str(error):
                raise CheckpointError(
                    f"Checkpoint {path} was refused: it holds Python code (a Lambda layer) that Keras' safe mode "
                    f"does not run. Beanguard's models never need it; only use checkpoints trained with `python -m core.train`."
                ) from error
            raise CheckpointError(
                f"Checkpoint {path} is damaged or not a Keras model ({type(error).__name__}). {RETRAIN_HINT}"
            ) from error


def load_model(path: str | os.PathLike) -> tf.keras.Model:
    """Load a plain Keras model for inference, or raise :class:`CheckpointError` saying why."""
    path = Path(path)
    return _load_model_bytes(_read_model_bytes(path), path)


def _parse_metadata(content: bytes, path: Path) -> dict[str, Any]:
    try:
        metadata = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"Metadata {path} is unreadable ({error}). {RETRAIN_HINT}") from error
    files = metadata.get(FILES_KEY, {}) if isinstance(metadata, dict) else None
    if not isinstance(files, dict) or not all(isinstance(value, str) for value in files.values()):
        raise CheckpointError(f"Metadata {path} is not a checkpoint description (unexpected JSON structure). {RETRAIN_HINT}")
    return metadata


def _read_metadata(folder: Path) -> tuple[dict[str, Any], bytes]:
    path = folder / METADATA_FILE
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return {}, b""
    except OSError as error:
        raise CheckpointError(f"Metadata {path} is unreadable ({error}). {RETRAIN_HINT}") from error
    return _parse_metadata(content, path), content


def load_metadata(directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """The training config, data fingerprint, timings, evaluation table and file digests; {} if none."""
    return _read_metadata(checkpoint_dir(directory))[0]


def pair_version(directory: str | os.PathLike | None = None) -> str:
    """A cheap token that changes whenever a checkpoint file is replaced (the dashboard's cache key
    for loading; ``ModelPair.version`` is the digest of what was actually loaded)."""
    folder = checkpoint_dir(directory)
    parts = []
    for name in (*MODEL_FILES.values(), METADATA_FILE):
        try:
            stat = (folder / name).stat()
            parts.append(f"{stat.st_mtime_ns}:{stat.st_size}")
        except FileNotFoundError:
            parts.append("missing")
    return "|".join(parts)


def load_pair(directory: str | os.PathLike | None = None, require_digests: bool = False) -> ModelPair:
    """Load both models and the metadata from ``directory``, and check that they belong together.

    The metadata is read first (it is written last); each model file is read once, hashed, and
    loaded from those same bytes. Raises :class:`CheckpointMismatch` when a file loads but is not
    the one ``metadata["files"]`` names, or (with ``require_digests``) when metadata.json records
    no digest to check a file against; :class:`CheckpointError` (naming the file) when a file is
    missing or damaged. ``version`` is a digest of exactly the bytes loaded (for caches).
    """
    folder = checkpoint_dir(directory)
    metadata, metadata_bytes = _read_metadata(folder)
    expected = metadata.get(FILES_KEY, {})
    unchecked = [name for name in MODEL_FILES.values() if name not in expected]
    if require_digests and unchecked:
        raise CheckpointMismatch(
            f"{folder / METADATA_FILE} records no SHA-256 digest for {' and '.join(unchecked)}, so the files cannot "
            f"be checked; they are not loaded."
        )
    models, mismatched, digests = {}, [], [sha256_digest(metadata_bytes)]
    for kind, name in MODEL_FILES.items():
        path = folder / name
        content = _read_model_bytes(path)
        models[kind] = _load_model_bytes(content, path)  # damaged beats mismatched: it needs a retrain
        digests.append(sha256_digest(content))
        if name in expected and digests[-1] != expected[name]:
            mismatched.append(name)
    if mismatched:
        raise CheckpointMismatch(
            f"{' and '.join(mismatched)} in {folder}: not what {METADATA_FILE} describes. Either a save is in "
            f"progress ({METADATA_FILE} is written last) or the files come from different training runs. "
            f"If this persists, retrain with `python -m core.train` (or from the dashboard sidebar)."
        )
    version = "sha256:" + sha256_digest(" ".join(digests).encode())
    return ModelPair(baseline=models["baseline"], adversarial=models["adversarial"], metadata=metadata, version=version)


def unverified_files(directory: str | os.PathLike | None = None) -> list[str]:
    """The model files in ``directory`` that do not match the digests metadata.json records (or that
    it records none for, or that are missing); [] when the pair is exactly what was saved. Hashes
    the files without loading them (milliseconds), so a folder can be checked before it is offered."""
    folder = checkpoint_dir(directory)
    expected = _read_metadata(folder)[0].get(FILES_KEY, {})
    bad = []
    for name in MODEL_FILES.values():
        try:
            if expected.get(name) != file_digest(folder / name):
                bad.append(name)
        except OSError:
            bad.append(name)
    return bad
