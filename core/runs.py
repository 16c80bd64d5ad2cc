"""Run folders: every retraining gets its own folder, and a pointer says which one the class sees.

Why: the shipped pair in ``checkpoints/`` is tracked by git and is what a fresh clone teaches with;
an app that retrained in place destroyed it. Now

- the shipped pair (``checkpoints/``) and the read-only example runs beside it
  (``checkpoints/examples/<name>/``) are never written by the app;
- every retraining writes ``<runs>/<UTC time>-<short name>/`` (``$BEANGUARD_RUNS_DIR``, default
  ``runs/`` in the repository, git-ignored) with ``core.checkpoints``' atomic save and
  ``metadata.json``. Training writes into a hidden ``.partial-<name>/`` folder that is renamed into
  place only once the pair is complete, so a listed run is always a complete run;
- which run every page shows is one value in the class store (``active_run``, through
  ``Store.get_state/set_state``), so every replica of a school agrees and one write switches the
  whole class. Without a store (a script, a single process) it is ``<runs>/active.json`` (written
  atomically). An ``active.json`` left by an older Beanguard is honoured once: the first read that
  finds the store empty copies it there and renames the file ``active.json.migrated``. No pointer,
  or a pointer to a run that is gone, means the shipped pair;
- the newest ``keep`` runs are kept (``$BEANGUARD_KEEP_RUNS``, default 10); older ones are pruned,
  never the one the class sees.

A run or example folder must match the SHA-256 digests its metadata.json records, else it is
refused (:class:`RunRefused`): it was changed or damaged after training.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core import checkpoints
from core.attacks import budget_slug
from core.paths import DEFAULT_RUNS_DIR, RUNS_DIR_ENV, runs_dir  # noqa: F401  (re-exported: where runs live)

KEEP_RUNS_ENV = "BEANGUARD_KEEP_RUNS"
DEFAULT_KEEP = 10
EXAMPLES_FOLDER = "examples"  # inside the shipped checkpoint folder
ACTIVE_FILE = "active.json"
ACTIVE_STATE = "active_run"  # the class store's key for the run every page shows
MIGRATED_SUFFIX = ".migrated"
PARTIAL_PREFIX = ".partial-"
SHIPPED_KEY = "shipped"
KINDS = ("shipped", "example", "run")


class StateStore(Protocol):
    """What the pointer needs of the class store (``core.classroom.Store``; core.runs cannot import it)."""

    def get_state(self, key: str) -> Any: ...

    def set_state(self, key: str, value: Any) -> Any: ...


class RunError(RuntimeError):
    """A run cannot be chosen, deleted or found; the message says why in one sentence."""


class RunRefused(checkpoints.CheckpointError):
    """A run folder's model files do not match the digests in its metadata.json (or it records none)."""


@dataclass(frozen=True)
class Run:
    """One pair of models the class can be shown: the shipped pair, an example, or a retraining run."""

    key: str  # "shipped", "examples/<name>" or "runs/<name>": what active.json stores
    name: str
    folder: Path
    kind: str  # one of KINDS

    @property
    def read_only(self) -> bool:
        """The shipped pair and the examples are part of the repository: never changed or deleted."""
        return self.kind != "run"

    @property
    def title(self) -> str:
        return {"shipped": "Shipped models", "example": f"Example: {self.name}", "run": f"Run {self.name}"}[self.kind]

    def metadata(self) -> dict[str, Any]:
        """metadata.json, or {} when it is missing or unreadable (the run is then refused on loading)."""
        try:
            return checkpoints.load_metadata(self.folder)
        except checkpoints.CheckpointError:
            return {}


def keep_runs(value: int | str | None = None) -> int:
    """How many retraining runs to keep: the argument, else ``$BEANGUARD_KEEP_RUNS``, else 10 (at least 1)."""
    raw = value if value is not None else os.environ.get(KEEP_RUNS_ENV) or DEFAULT_KEEP
    try:
        return max(1, int(raw))
    except ValueError:
        raise RunError(f"{KEEP_RUNS_ENV}={raw!r} is not a whole number of runs to keep.") from None


def _is_pair(folder: Path) -> bool:
    return folder.is_dir() and (folder / checkpoints.METADATA_FILE).is_file()


def shipped_run(checkpoint_dir: str | os.PathLike | None = None) -> Run:
    return Run(SHIPPED_KEY, SHIPPED_KEY, checkpoints.checkpoint_dir(checkpoint_dir), "shipped")


def example_runs(checkpoint_dir: str | os.PathLike | None = None) -> list[Run]:
    """The read-only example runs shipped beside the main pair, by name."""
    root = checkpoints.checkpoint_dir(checkpoint_dir) / EXAMPLES_FOLDER
    if not root.is_dir():
        return []
    return [Run(f"examples/{folder.name}", folder.name, folder, "example") for folder in sorted(root.iterdir()) if _is_pair(folder)]


def trained_runs(root: str | os.PathLike | None = None) -> list[Run]:
    """Complete retraining runs, oldest first (names start with their UTC time, so names sort by age)."""
    folder = runs_dir(root)
    if not folder.is_dir():
        return []
    return [
        Run(f"runs/{child.name}", child.name, child, "run")
        for child in sorted(folder.iterdir())
        if not child.name.startswith(".") and _is_pair(child)
    ]


def list_runs(root: str | os.PathLike | None = None, checkpoint_dir: str | os.PathLike | None = None) -> list[Run]:
    """Everything the class can be shown: shipped pair, examples, then retraining runs oldest first."""
    return [shipped_run(checkpoint_dir), *example_runs(checkpoint_dir), *trained_runs(root)]


def find_run(key: str, root: str | os.PathLike | None = None, checkpoint_dir: str | os.PathLike | None = None) -> Run | None:
    return next((run for run in list_runs(root, checkpoint_dir) if run.key == key), None)


# --- which run the class sees ----------------------------------------------------------------------


def _pointer_key(pointer: Any) -> str:
    key = pointer.get("run") if isinstance(pointer, dict) else None
    return key if isinstance(key, str) and key else SHIPPED_KEY


def _file_key(root: str | os.PathLike | None) -> str | None:
    """What ``active.json`` names (None when there is no readable file)."""
    try:
        return _pointer_key(json.loads((runs_dir(root) / ACTIVE_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def _adopt_file(root: str | os.PathLike | None, store: StateStore) -> str:
    """The store has no pointer yet: honour an older Beanguard's ``active.json`` once (copy it into
    the store, rename the file), else the shipped pair (nothing written)."""
    key = _file_key(root)
    if key is None:
        return SHIPPED_KEY
    store.set_state(ACTIVE_STATE, {"run": key, "chosen_at": _now(), "from": ACTIVE_FILE})
    try:
        os.replace(runs_dir(root) / ACTIVE_FILE, runs_dir(root) / (ACTIVE_FILE + MIGRATED_SUFFIX))
    except OSError:
        pass  # another replica renamed it first
    return key


def active_key(root: str | os.PathLike | None = None, store: StateStore | None = None) -> str:
    """The key of the run every page shows: the class store's ``active_run`` (one indexed read,
    cheap enough for every rerun of every page), or ``active.json`` without a store."""
    if store is None:
        return _file_key(root) or SHIPPED_KEY
    state = store.get_state(ACTIVE_STATE)
    return _adopt_file(root, store) if state is None else _pointer_key(state.value)


def active_run(root: str | os.PathLike | None = None, checkpoint_dir: str | os.PathLike | None = None, store: StateStore | None = None) -> Run:
    """The run the class sees; the shipped pair when none was chosen or the chosen one is gone."""
    key = active_key(root, store)
    if key == SHIPPED_KEY:
        return shipped_run(checkpoint_dir)
    return find_run(key, root, checkpoint_dir) or shipped_run(checkpoint_dir)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def set_active(key: str, root: str | os.PathLike | None = None, checkpoint_dir: str | os.PathLike | None = None, store: StateStore | None = None) -> Run:
    """Show run ``key`` to every page: one write to the class store (every replica reads it), or
    one atomic rename of ``active.json`` without a store."""
    run = find_run(key, root, checkpoint_dir)
    if run is None:
        raise RunError(f"There is no run {key!r} any more; pick one from the list.")
    pointer = {"run": run.key, "chosen_at": _now()}
    if store is not None:
        store.set_state(ACTIVE_STATE, pointer)
    else:
        checkpoints.write_json_atomic(pointer, runs_dir(root) / ACTIVE_FILE)
    return run


def restore_shipped(root: str | os.PathLike | None = None, checkpoint_dir: str | os.PathLike | None = None, store: StateStore | None = None) -> Run:
    """Every page goes back to the shipped pair (which no retraining ever touched)."""
    return set_active(SHIPPED_KEY, root, checkpoint_dir, store)


# --- creating, pruning and deleting runs -----------------------------------------------------------


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")[:limit].strip("-.") or "run"


def short_name(config: Any) -> str:
    """``nsl-x0.2-linf-8of255``: what a training config changes, readable in a folder name."""
    budget = budget_slug(getattr(config, "adv_norm", "infinity"), float(getattr(config, "adv_epsilon", 0.0)))
    return _slug(f"nsl-x{float(getattr(config, 'multiplier', 0.0)):g}-{budget}")


def new_run_name(label: str, root: str | os.PathLike | None = None, now: _dt.datetime | None = None) -> str:
    """``<UTC time>-<label>``, unique in the runs folder (a suffix is added within the same second)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    base = f"{now.astimezone(_dt.timezone.utc):%Y%m%d-%H%M%SZ}-{_slug(label)}"
    folder, name, number = runs_dir(root), base, 2
    while (folder / name).exists() or (folder / f"{PARTIAL_PREFIX}{name}").exists():
        name, number = f"{base}-{number}", number + 1
    return name


def partial_folder(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where a run of that name trains; hidden and never listed until :func:`publish` renames it."""
    folder = runs_dir(root) / f"{PARTIAL_PREFIX}{name}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder


def publish(name: str, root: str | os.PathLike | None = None) -> Run:
    """Rename a finished run's partial folder into place (one atomic rename), after checking that
    its files are the complete pair its metadata.json describes."""
    partial, final = runs_dir(root) / f"{PARTIAL_PREFIX}{name}", runs_dir(root) / name
    bad = checkpoints.unverified_files(partial) if _is_pair(partial) else list(checkpoints.MODEL_FILES.values())
    if bad:
        raise RunRefused(f"The run {name} is incomplete ({', '.join(bad)} not as metadata.json describes); it was not kept.")
    os.rename(partial, final)
    return Run(f"runs/{name}", name, final, "run")


def discard_partial(name: str, root: str | os.PathLike | None = None) -> None:
    shutil.rmtree(runs_dir(root) / f"{PARTIAL_PREFIX}{name}", ignore_errors=True)


def delete_run(key: str, root: str | os.PathLike | None = None, checkpoint_dir: str | os.PathLike | None = None, store: StateStore | None = None) -> Run:
    """Delete a retraining run; the shipped pair, the examples and the run the class sees are refused."""
    run = find_run(key, root, checkpoint_dir)
    if run is None:
        raise RunError(f"There is no run {key!r} to delete.")
    if run.read_only:
        raise RunError(f"{run.title} is part of the repository and cannot be deleted.")
    if run.key == active_key(root, store):
        raise RunError(f"{run.title} is what the class sees; show another run (or restore the shipped models) first.")
    shutil.rmtree(run.folder)
    return run


def prune(keep: int | None = None, root: str | os.PathLike | None = None, store: StateStore | None = None) -> list[str]:
    """Delete the oldest retraining runs beyond the newest ``keep``, never the active one; returns their names."""
    keep = keep_runs(keep)
    active = active_key(root, store)
    runs = trained_runs(root)
    removable = [run for run in runs[: max(0, len(runs) - keep)] if run.key != active]
    for run in removable:
        shutil.rmtree(run.folder, ignore_errors=True)
    return [run.name for run in removable]


def disk_usage(root: str | os.PathLike | None = None) -> int:
    """Bytes used by everything in the runs folder (runs in training included)."""
    folder = runs_dir(root)
    if not folder.is_dir():
        return 0
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            continue  # deleted while we walked
    return total


def format_bytes(size: int) -> str:
    """``3.2 MB``: decimal units, as file managers show them."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


# --- loading ---------------------------------------------------------------------------------------


def refusal(run: Run) -> str | None:
    """Why ``run`` may not be shown (files changed after training), or None. Hashes, does not load;
    the shipped pair is checked by :func:`core.checkpoints.load_pair` itself (a save by hand may be
    in progress there)."""
    if run.kind == "shipped":
        return None
    try:
        bad = checkpoints.unverified_files(run.folder)
    except checkpoints.CheckpointError as error:
        return f"{run.title} was refused: {error}"
    if not bad:
        return None
    return (
        f"{run.title} was refused: {' and '.join(bad)} do not match the SHA-256 digests in its metadata.json "
        "(changed or damaged after training). Delete it or train a new run."
    )


def load_run(run: Run) -> checkpoints.ModelPair:
    """Load a run's pair; a run or example whose files do not match their digests raises :class:`RunRefused`."""
    if run.kind == "shipped":
        return checkpoints.load_pair(run.folder)
    try:
        return checkpoints.load_pair(run.folder, require_digests=True)
    except checkpoints.CheckpointMismatch as error:
        raise RunRefused(f"{run.title} was refused: {error} Delete it or train a new run.") from error
