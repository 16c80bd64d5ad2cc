"""Everything slow happens once: models, data, decoded uploads and per-setting results are cached.

- Models: ``st.cache_resource`` keyed on the folder (the run the class sees, ``core.runs``) and
  ``core.checkpoints.pair_version`` — another run or a replaced file changes the key, so every
  session loads the new pair on its next rerun.
  While a save is in progress ``load_pair`` raises ``CheckpointMismatch`` (the files are checked
  against the digests in metadata.json, which is written last) and a session keeps its pair.
- Test split and uploads: ``st.cache_data`` (plain arrays, safe to copy).
- One slider position: ``st.cache_resource`` on (models, image, settings), shared by every session, so a
  class all looking at the default image pays for it once. A resource, not data: ``st.cache_data``
  pickles each new result (megabytes of activation maps) and unpickles a copy on every hit, which on
  a 2-core server busy with a class was a tenth of the time spent holding the GIL. The arrays are
  read-only (``dashboard.analysis``), so sharing one object between sessions is safe.
- Where each model looked (saliency): the same, on (models, image, settings, method).
- Whole-split results (table, gallery, confusion matrices, CSV, good examples): a process-wide
  :class:`ResultStore`, filled on a button press — or, for good examples, on demand. Per replica by
  design (megabytes of arrays; a session asks for them with its own button, and a replica that
  lacks them recomputes them in seconds). The small results a class is shown — accuracy curves and
  run measurements — are shared through the class store, so every replica shows what one computed.
- Every attack graph the controls can reach: traced by one background thread per model pair,
  started after a page has drawn its first verdicts (:func:`start_warm_up`). Until it has run, a
  page's own attacks and forward passes run eagerly (:func:`graphs_traced`): tens of milliseconds
  on one photo, where tracing a graph on the page's time costs one to two seconds.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import gc
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import streamlit as st

from core import checkpoints, embedded, ood
from core.attacks import DEFAULT_BUDGETS, DEFAULT_PGD_STEPS, NORMS
from core.classroom import ClassroomError
from core.data import Split, resolve_data_dir
from core.examples import GoodExamples, first_good_example

from dashboard.analysis import Explanation, Interaction, explain_interaction, run_interaction, warm_up, warm_up_plan
from dashboard.class_store import shared_store, store_or_none
from dashboard.settings import PGD_STEP_CHOICES, AttackSettings, settings_from_state
from dashboard.split_analysis import ProgressCallback, SplitResults, accuracy_curve, split_results
from dashboard.uploads import UploadResult, decode_upload

LOGGER = logging.getLogger("beanguard.warm_up")
WARM_UP_NICENESS = 5  # the background tracing yields the CPU to pages that are drawing
WARM_UP_SWITCH_INTERVAL_S = 0.0005  # Python's default is 0.005
WARM_UP_DELAY_S = 3.0  # after the first page's script run, before tracing starts


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
    """Load the pair; ``version`` is only the cache key (it changes with the files). The graphs are
    traced later, in the background (:func:`start_warm_up`), so the first page is not kept waiting.
    Run folders (anything but the shipped pair) must match the digests in their metadata.json."""
    return checkpoints.load_pair(directory, require_digests=Path(directory).resolve() != checkpoints.checkpoint_dir().resolve())


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


def data_key(data_dir: Path | None, size: int) -> str:
    """What a whole-split result depends on besides the models: the data source and the photo size."""
    return f"{data_dir or 'tfds'}@{size}"


@st.cache_data(show_spinner="Loading the Beans test split…", max_entries=4)
def load_test_split(data_dir: str | None, size: int) -> Split:
    """The test photos; offline and with no Beans folder set, the copy shipped with Beanguard."""
    return embedded.test_split(size, data_dir)


@st.cache_resource(max_entries=4, show_spinner=False)
def ood_reference(data_key: str, _split: Split) -> ood.Reference:
    """What the Beans test photos look like (``core.ood``), once per data source and size."""
    return ood.fit_reference(_split.images)


@st.cache_data(max_entries=16, show_spinner=False)
def decode_uploaded_file(name: str, digest: str, _data: bytes, size: int) -> UploadResult:
    """Decode once per distinct file (keyed on its SHA-1 ``digest``, not on up to 10 MB of bytes)."""
    return decode_upload(name, _data, size)


@st.cache_resource(max_entries=32, show_spinner=False)
def _interaction(
    version: str, image_key: str, true_label: int | None, settings: AttackSettings, _pair: checkpoints.ModelPair, _image: np.ndarray
) -> Interaction:
    return run_interaction(_pair, _image, true_label, settings, eager=not graphs_traced(version))


def interaction(pair: checkpoints.ModelPair, image_key: str, image: np.ndarray, true_label: int | None, settings: AttackSettings) -> Interaction:
    """``run_interaction`` cached per (models, image, label, settings), across all sessions."""
    return _interaction(pair.version, image_key, true_label, settings, pair, image)


@st.cache_resource(max_entries=32, show_spinner=False)
def _explanations(version: str, image_key: str, true_label: int | None, settings: AttackSettings, method: str, _pair: checkpoints.ModelPair, _result: Interaction) -> dict[str, Explanation]:
    return explain_interaction(_pair, _result, method)


def explanations(pair: checkpoints.ModelPair, image_key: str, result: Interaction, method: str) -> dict[str, Explanation]:
    """Where each model looked, cached like :func:`interaction`."""
    return _explanations(pair.version, image_key, result.true_label, result.settings, method, pair, result)


SHARED_MISS_S = 5.0  # a shared result this replica lacks is asked of the class store at most this often


class ResultStore:
    """Process-wide results of whole-split computations (curves, tables), keyed by what made them.

    :meth:`get`/:meth:`put` stay in this process. :meth:`get_shared`/:meth:`put_shared` also keep a
    small JSON result in the class store (``result:<key>``), so a curve computed on one replica is
    shown on all; a key missing everywhere is asked again only after ``SHARED_MISS_S`` (the curves
    section looks on every slider move).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: dict[tuple, Any] = {}
        self._missed: dict[tuple, float] = {}

    def get(self, key: tuple) -> Any:
        with self._lock:
            return self._results.get(key)

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._results[key] = value

    def get_shared(self, key: tuple, decode: Callable[[Any], Any] = lambda value: value) -> Any:
        value = self.get(key)
        if value is not None or time.monotonic() - self._missed.get(key, -SHARED_MISS_S) < SHARED_MISS_S:
            return value
        store = store_or_none()
        try:
            state = None if store is None else store.get_state(_shared_key(key))
        except ClassroomError:
            state = None
        if state is None:
            self._missed[key] = time.monotonic()
            return None
        value = decode(state.value)
        self.put(key, value)
        return value

    def put_shared(self, key: tuple, value: Any, encode: Callable[[Any], Any] = lambda value: value) -> None:
        self.put(key, value)
        store = store_or_none()
        if store is not None:
            try:
                store.set_state(_shared_key(key), json.loads(json.dumps(encode(value), default=float)))  # numpy numbers as floats
            except ClassroomError as error:
                LOGGER.warning("A result stays on this replica only: %s", error)


def _shared_key(key: tuple) -> str:
    return "result:" + json.dumps(key, default=str)


_WHOLE_SPLIT = threading.Lock()


@st.cache_resource
def result_store() -> ResultStore:
    return ResultStore()


def split_results_for(
    pair: checkpoints.ModelPair, split: Split, data_key: str, settings: AttackSettings, progress: ProgressCallback | None = None, compute: bool = True
) -> SplitResults | None:
    """The whole test split under ``settings``: from the store, else computed (when ``compute``)."""
    store = result_store()
    key = ("split", pair.version, data_key, settings)
    results = store.get(key)
    if results is None and compute:
        with _WHOLE_SPLIT:  # one whole-split run at a time per server: thirty presses do not start thirty
            results = store.get(key)  # a press that waited may find its results made meanwhile
            if results is None:
                results = split_results(pair, split, settings, progress)
                store.put(key, results)
    return results


def _example_settings(settings: AttackSettings) -> AttackSettings:
    """An example must be fooled by *some* change: at budget 0, look at the norm's default budget."""
    if settings.kind == "attack" and settings.epsilon == 0:
        return dataclasses.replace(settings, epsilon=DEFAULT_BUDGETS[settings.norm])
    return settings


@st.cache_data(max_entries=16, show_spinner=False)
def _opening_example(version: str, data_key: str, settings: AttackSettings, _pair: checkpoints.ModelPair, _split: Split) -> int | None:
    if settings.kind != "attack":
        return None
    key = f"opening:{version}:{data_key}:{settings}"
    hint = None
    try:
        state = shared_store().get_state(key)
        if state is not None and state.value in _split.filenames:
            hint = _split.filenames.index(state.value)
    except ClassroomError:
        pass
    index = first_good_example(
        _pair.baseline, _pair.adversarial, _split.images, _split.labels, settings.threat, settings.attacker, hint=hint, eager=not graphs_traced(version)
    )
    if index is not None and index != hint:
        try:
            shared_store().set_state(key, _split.filenames[index])  # the next server start checks this photo first
        except ClassroomError:
            pass
    return index


def opening_example(pair: checkpoints.ModelPair, split: Split, data_key: str, settings: AttackSettings) -> int | None:
    """The photo a fresh page opens on: a good example found without attacking the whole split
    (``core.examples.first_good_example``), so the first verdicts are not kept waiting; shared by
    every session. The photo is remembered in the class store, so a restarted server (or another
    replica) checks that one photo first instead of searching again."""
    return _opening_example(pair.version, data_key, _example_settings(settings), pair, split)


def good_examples(pair: checkpoints.ModelPair, split: Split, data_key: str, settings: AttackSettings) -> GoodExamples:
    """Test photos that tell the story at ``settings``, from the current models (computed once per
    model pair, data and settings, then shared by every session)."""
    return split_results_for(pair, split, data_key, _example_settings(settings)).good_examples()


WARM_UP_ENV = "BEANGUARD_WARM_UP"  # "0": no background tracing (the dashboard tests, to spare the CPU)


@dataclass
class WarmUp:
    """Progress of the background tracing for one model pair (read by every page). Per replica by
    design: each server process traces its own graphs; nothing of it is shared through the store."""

    total: int
    version: str = ""  # the model pair's (``checkpoints.pair_version``)
    done: int = 0
    started_at: float = field(default_factory=time.monotonic)
    seconds: float | None = None  # set when finished
    error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def finished(self) -> bool:
        return self.seconds is not None


_JOBS: list[WarmUp] = []


def graphs_traced(version: str) -> bool:
    """Whether a warm-up of this process has run for the pair ``version``. Before, the page computes
    eagerly: the first screen comes without waiting for a trace (FGSM on one photo: ~1.5 s traced
    on an idle 2-core machine, ~0.1 s eagerly). After, through the graphs (PGD-10: ~80 ms against
    ~0.3 s eagerly); a graph the warm-up skipped is traced when first used, as before."""
    return any(job.version == version and job.finished for job in _JOBS)


@atexit.register
def _stop_warm_ups() -> None:
    """At exit, let a running warm-up finish its current graph: a thread killed inside TensorFlow
    during interpreter shutdown aborts the whole process."""
    for job in _JOBS:
        job.stop.set()
    for job in _JOBS:
        if job.thread is not None:
            job.thread.join(timeout=30)


def freeze_long_lived_objects() -> None:
    """Keep Python's full garbage collections off the students' reruns.

    With TensorFlow, two models and every traced graph loaded, the process tracks ~640 k objects
    and one full collection takes 200-350 ms holding the GIL, which every page waits out whenever
    one falls inside a rerun. After the warm-up those objects live as long as the pair: collect
    once here, in the background, then ``gc.freeze()`` them so later collections skip them. Each
    new pair's warm-up unfreezes first, so an evicted pair's cycles are still collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def curve_key(version: str, data_key: str, norm: str) -> tuple:
    """A pair's accuracy curve for one norm in the :class:`ResultStore` (shared: every replica reads it)."""
    return ("curve", version, data_key, norm)


def stored_curve(pair: checkpoints.ModelPair, data_key: str, norm: str) -> dict | None:
    """A pair's accuracy curve: saved with the models, else computed on any replica (in the
    background or on the teacher's button; kept in the class store), else None."""
    saved = ((pair.metadata.get("evaluation") or {}).get("curves") or {}).get(norm)
    return saved if saved is not None else result_store().get_shared(curve_key(pair.version, data_key, norm))


def _prepare(pair: checkpoints.ModelPair, split: Split, data_key: str, status: WarmUp) -> None:
    """What a class meets right after the graphs: the good examples at the default change, and the
    accuracy curves of a run saved without them (a retrain), so no button has to be pressed."""
    split_results_for(pair, split, data_key, _example_settings(settings_from_state({})))
    status.done += 1
    for norm in NORMS:
        if status.stop.is_set():
            return
        if stored_curve(pair, data_key, norm) is None:
            result_store().put_shared(curve_key(pair.version, data_key, norm), accuracy_curve(pair, split, norm))  # this replica at least
        status.done += 1


def _trace_everything(pair: checkpoints.ModelPair, split: Split, data_key: str, plan: Sequence[AttackSettings], status: WarmUp) -> None:
    if status.stop.wait(WARM_UP_DELAY_S):  # let the first page's browser finish drawing before tracing starts
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WARM_UP_NICENESS)  # this thread only (Linux)
    except (AttributeError, OSError):
        pass

    def step(done: int, total: int) -> None:
        status.done = done

    # While this thread traces (pure Python, holding the GIL for seconds), a page's rerun waits for
    # the GIL each time TensorFlow hands it back; a shorter switch interval makes those waits short.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(WARM_UP_SWITCH_INTERVAL_S)
    try:
        warm_up(pair, pair.image_size, plan, step, status.stop.is_set)
        if plan and not status.stop.is_set():
            _prepare(pair, split, data_key, status)
    except Exception as error:  # noqa: BLE001  a failed warm-up only means slower first uses
        status.error = f"{type(error).__name__}: {error}"
        LOGGER.warning("Beanguard warm-up failed after %d of %d settings", status.done, status.total, exc_info=True)
    finally:
        sys.setswitchinterval(interval)
    freeze_long_lived_objects()
    status.seconds = time.monotonic() - status.started_at
    print(f"Beanguard warm-up finished: {status.done} of {status.total} steps (graphs, good examples, curves) in {status.seconds:.1f} s", file=sys.stderr, flush=True)


@st.cache_resource(max_entries=2, show_spinner=False)
def _warm_up_job(version: str, data_key: str, _pair: checkpoints.ModelPair, _split: Split, pgd_steps: tuple[int, ...], default_steps: int) -> WarmUp:
    plan = warm_up_plan(pgd_steps, default_steps) if os.environ.get(WARM_UP_ENV, "1") != "0" else []
    status = WarmUp(total=len(plan) + (1 + len(NORMS) if plan else 0), version=version)
    status.thread = threading.Thread(target=_trace_everything, args=(_pair, _split, data_key, plan, status), name="beanguard-warm-up", daemon=True)
    _JOBS.append(status)
    status.thread.start()
    return status


def start_warm_up(pair: checkpoints.ModelPair, split: Split, data_key: str) -> WarmUp:
    """Get a model pair ready in a background thread, once per pair: trace every attack graph the
    controls can reach, then find the good examples and any missing accuracy curve."""
    return _warm_up_job(pair.version, data_key, pair, split, PGD_STEP_CHOICES, DEFAULT_PGD_STEPS)
