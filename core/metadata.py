"""The shipped pair's metadata.json, written by code only: training record + selection + evaluation.

Why: numbers and provenance typed by hand drift away from what produced them (the previous file
carried a candidate table and a provenance sentence no code wrote, and absolute paths of the
machine it was made on). Here the file is assembled from three records, each written by a program:

- the chosen run's own ``metadata.json`` (``python -m core.train``: config, data, timing, epochs);
- the selection table ``bench/results/compare_on_validation.json`` (``bench/compare_on_validation.py``);
- the evaluation (``python -m core.evaluate``, which adds its table to the file afterwards).

Paths (``config.init_from``, ``data.source``) are stored relative to the repository.

    python -m core.metadata --run ../train-runs/RUN       # the run's pair into checkpoints/, with assembled metadata
    python -m core.evaluate --data-dir ../shared/beans     # then the evaluation table
    python -m core.metadata --refresh-selection           # candidates scored since join the shipped record
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from core import checkpoints

REPO_ROOT = Path(__file__).resolve().parent.parent
SELECTION_FILE = REPO_ROOT / "bench" / "results" / "compare_on_validation.json"


def relative_path(path: str, root: Path = REPO_ROOT) -> str:
    """``path`` relative to the repository ("" and non-paths such as ``tfds:beans`` unchanged)."""
    if not path or ":" in path.split("/")[0]:
        return path
    return os.path.relpath(os.path.abspath(path), os.path.abspath(root))  # as written: a linked ../shared stays ../shared


def pair_selection(selection: dict[str, Any], run: str, table: str) -> dict[str, Any]:
    """What ``metadata["selection"]["pair"]`` says: the criterion, the chosen run, every candidate's validation numbers."""
    if selection.get("chosen") != run:
        raise ValueError(f"The selection table {table} chose {selection.get('chosen')!r}, not the run {run!r} being shipped.")
    return {
        "criterion": selection["criterion"],
        "table": table,
        "photos": selection["photos"],
        "chosen": run,
        "candidates": [
            {"run": row["run"], "ensemble": row["ensemble"], "changes": row["changes"], **{key: row["validation"][key] for key in ("clean", "autoattack_linf_4", "autoattack_linf_8", "score")}}
            for row in selection["candidates"]
        ],
    }


def last_commit(path: Path) -> str | None:
    """The git commit that last changed ``path`` (None outside a git checkout or for an untracked file)."""
    try:
        result = subprocess.run(["git", "-C", str(path.parent), "log", "-1", "--format=%H", "--", path.name], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def parent_record(training: dict[str, Any], destination: Path, root: Path = REPO_ROOT) -> dict[str, Any] | None:
    """The pair a fine-tuned run started from, when shipping the run replaces that very pair.

    Why: ``config.init_from`` then says ``checkpoints``, which after shipping names the run itself;
    the pair it started from survives only in git, so the record keeps its digests (from the run's
    ``init_files``, written by ``core.train``) and, when those are the files being replaced, the commit
    that shipped them (``git show COMMIT:checkpoints/adversarial.keras``)."""
    init_from = training.get("config", {}).get("init_from")
    if not init_from or Path(init_from).resolve() != destination.resolve():
        return None
    shipped = checkpoints.load_metadata(destination) if (destination / checkpoints.METADATA_FILE).is_file() else {}
    replaced = shipped.get(checkpoints.FILES_KEY, {})
    if shipped.get("trained_at") and shipped.get("trained_at") == training.get("trained_at"):
        return shipped.get("parent")  # this run shipped again (e.g. with its evaluation): its parent stays what it was
    files = training.get("init_files") or replaced  # a run without init_files (older core.train) is taken to start from it
    record: dict[str, Any] = {"checkpoints": relative_path(str(destination), root), "files": files}
    commit = last_commit(destination / checkpoints.MODEL_FILES["adversarial"]) if files and files == replaced else None
    if commit:
        record["commit"] = commit
    return record


def parent_name(parent: dict[str, Any] | None, fallback: str = "an earlier pair") -> str:
    """How the page and the provenance name the pair a run was fine-tuned from: by the commit that shipped it."""
    return f"the pair shipped in commit {parent['commit'][:7]}" if parent and parent.get("commit") else fallback


def provenance(training: dict[str, Any], selection: dict[str, Any] | None) -> str:
    """One paragraph saying how the pair was made, from the records alone."""
    config = training["config"]
    text = f"Trained by `python -m core.train` (arch {config['arch']}, {config['image_size']} px): "
    parent = training.get("parent")
    origin = parent_name(parent, relative_path(config.get("init_from", "")))
    if config.get("epochs", 0) > 0:
        text += f"the baseline {config['epochs']} epochs, "
    else:
        text += f"the baseline kept from {origin}, "
    text += f"the NSL model {config['adversarial_epochs']} epochs at L∞ {config['adv_epsilon'] * 255:g}/255"
    if config.get("init_from") and not config.get("warm_start", True):
        text += f", starting from the NSL model of {origin}"
    if selection:
        rows = selection["candidates"]
        # A run screened and then scored has a row per ensemble: the one with the most stages chose it.
        ensemble = max((row["ensemble"] for row in rows if row["run"] == selection["chosen"]), key=lambda name: len(name.split(" + ")), default=None)
        scored_runs = {row["run"] for row in rows if row["ensemble"] == ensemble}
        scored, screened = len(scored_runs), len({row["run"] for row in rows} - scored_runs)
        text += (
            f"; chosen among {scored} candidate run{'s' if scored != 1 else ''} scored with {ensemble} on the {selection['photos']} validation photos "
            f"by bench/compare_on_validation.py ({selection['table']})"
        )
        if screened:  # rows scored with a weaker ensemble cannot be chosen (bench/compare_on_validation.py)
            text += f"; {screened} more screened without the full ensemble"
    return text + "."


def assemble(
    training: dict[str, Any],
    selection: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
    root: Path = REPO_ROOT,
    parent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The shipped metadata from the run's own metadata, the selection table's part for it, the evaluation and the parent."""
    metadata = copy.deepcopy(training)
    metadata.pop(checkpoints.FILES_KEY, None)  # save_pair writes the digests of the files it saves
    metadata.pop("provenance", None)
    metadata.pop("init_files", None)  # kept as parent["files"] when the run replaces its parent
    if "init_from" in metadata.get("config", {}):
        metadata["config"]["init_from"] = relative_path(metadata["config"]["init_from"], root)
    if "source" in metadata.get("data", {}):
        metadata["data"]["source"] = relative_path(metadata["data"]["source"], root)
    if selection is not None:
        metadata.setdefault("selection", {})["pair"] = selection
    if parent is not None:
        metadata["parent"] = parent
    metadata["provenance"] = provenance(metadata, selection)
    if evaluation is not None:
        metadata["evaluation"] = evaluation
    elif "evaluation" in metadata:
        del metadata["evaluation"]  # a run's own table may be from an older evaluation: core.evaluate adds the current one
    return metadata


def ship(
    run_dir: str | Path,
    checkpoint_dir: str | Path | None = None,
    selection_file: str | Path = SELECTION_FILE,
    evaluation_file: str | Path | None = None,
) -> dict[str, Any]:
    """Copy a run's pair (digests checked) into ``checkpoint_dir`` with assembled metadata; returns it.

    When ``checkpoint_dir`` already holds the run's very files (same SHA-256), only ``metadata.json``
    is written: saving the models again would change their bytes and so every record naming them.
    ``evaluation_file``: a ``python -m core.evaluate --json`` table of these files, stored with them."""
    run_dir, selection_file = Path(run_dir), Path(selection_file)
    pair = checkpoints.load_pair(run_dir, require_digests=True)
    selection = pair_selection(json.loads(selection_file.read_text()), run_dir.name, relative_path(str(selection_file)))
    evaluation = json.loads(Path(evaluation_file).read_text()) if evaluation_file else None
    destination = checkpoints.checkpoint_dir(checkpoint_dir)
    metadata = assemble(pair.metadata, selection, evaluation, parent=parent_record(pair.metadata, destination))
    files = pair.metadata[checkpoints.FILES_KEY]
    if all((destination / name).is_file() and checkpoints.file_digest(destination / name) == digest for name, digest in files.items()):
        checkpoints.write_json_atomic({**metadata, checkpoints.FILES_KEY: files}, destination / checkpoints.METADATA_FILE)
        return {**metadata, checkpoints.FILES_KEY: files}
    checkpoints.save_pair(pair.baseline, pair.adversarial, metadata, checkpoint_dir)
    return metadata


def refresh_selection(checkpoint_dir: str | Path | None = None, selection_file: str | Path = SELECTION_FILE) -> dict[str, Any]:
    """Rewrite the shipped pair's selection record and provenance from the selection table, nothing else.

    Why: a candidate scored after the pair shipped (and not chosen) belongs in the shipped record
    too, and the chosen run's folder may be long gone; the model files, their digests and the
    evaluation stay as they are. Refuses when the table no longer chooses the shipped run."""
    destination = checkpoints.checkpoint_dir(checkpoint_dir)
    shipped = checkpoints.load_metadata(destination)
    chosen = shipped["selection"]["pair"]["chosen"]
    selection = pair_selection(json.loads(Path(selection_file).read_text()), chosen, relative_path(str(selection_file)))
    updated = {**shipped, "selection": {**shipped["selection"], "pair": selection}}
    updated["provenance"] = provenance(updated, selection)
    checkpoints.write_json_atomic(updated, destination / checkpoints.METADATA_FILE)
    return updated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.metadata", description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", help="the chosen run folder (its metadata.json was written by core.train)")
    what.add_argument("--refresh-selection", action="store_true", help="only rewrite the shipped record's selection and provenance from --selection")
    parser.add_argument("--checkpoint-dir", help="where to ship it (default: checkpoints/)")
    parser.add_argument("--selection", default=str(SELECTION_FILE), help="the selection table (default: %(default)s)")
    parser.add_argument("--evaluation", help="a `python -m core.evaluate --json` table of these very files, stored with them")
    args = parser.parse_args(argv)
    try:
        if args.refresh_selection:
            metadata = refresh_selection(args.checkpoint_dir, args.selection)
            print(f"refreshed the selection of {checkpoints.checkpoint_dir(args.checkpoint_dir)}: {metadata['provenance']}")
            return 0
        metadata = ship(args.run, args.checkpoint_dir, args.selection, args.evaluation)
    except (checkpoints.CheckpointError, ValueError, OSError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"shipped {args.run} to {checkpoints.checkpoint_dir(args.checkpoint_dir)}: {metadata['provenance']}")
    if "evaluation" not in metadata:
        print("next: python -m core.evaluate --data-dir ../shared/beans (adds the evaluation table)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
