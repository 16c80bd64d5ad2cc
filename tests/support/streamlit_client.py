"""A minimal Streamlit client that speaks the browser's websocket protocol (no browser needed).

Why: a classroom load test needs 30 real sessions on the real server, and a fault test needs to
drop a connection mid-run; 30 Chromium pages would need more CPU than the server under test.
The messages are the protobufs that ship inside the ``streamlit`` package (``BackMsg`` up,
``ForwardMsg`` down), as the frontend sends them:

- a rerun request carries every widget value the client knows, plus the fragment id when the
  changed widget lives in an ``st.fragment`` (only that fragment reruns);
- the server announces ``run_every`` fragments with ``auto_rerun``; a browser then asks for that
  fragment every interval, so this client does too;
- every script run starts with ``new_session`` (naming the fragments it reruns, none for a full
  run) and ends with ``script_finished``.

Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

HOST = "127.0.0.1"


@dataclass
class Widget:
    """What the client knows about one widget: its id, its fragment and its element proto."""

    key: str
    id: str
    fragment_id: str
    kind: str  # the element type: "slider", "radio", "selectbox", ...
    proto: Any


@dataclass
class Delta:
    """One element the server sent, flattened for waiting on it."""

    kind: str
    fragment_id: str
    text: str = ""
    element: Any = None


Predicate = Callable[[Delta], bool]


@dataclass
class _Waiter:
    predicate: Predicate
    needed: int
    future: asyncio.Future
    seen: int = 0


@dataclass
class SessionLog:
    """What went wrong in a session, as the student would have seen it."""

    exceptions: list[str] = field(default_factory=list)  # st.exception boxes: the app crashed
    error_alerts: list[str] = field(default_factory=list)  # st.error messages
    texts: list[str] = field(default_factory=list)  # markdown seen, newest last (bounded)
    latest: dict[str, str] = field(default_factory=dict)  # watched prefix -> the newest markdown starting with it


def widget_key(widget_id: str) -> str | None:
    """The user key in Streamlit's widget id ``$$ID-<hash>-<key>`` (None for keyless widgets)."""
    parts = widget_id.split("-", 2)
    return parts[2] if len(parts) == 3 and parts[2] != "None" else None


class StreamlitSession:
    """One browser tab's worth of protocol: connect, rerun with widget values, watch deltas."""

    def __init__(self, port: int, follow_auto_reruns: bool = True, keep_texts: int = 200, watch: tuple[str, ...] = (), query: str = "", headers: dict[str, str] | None = None):
        self.url = f"ws://{HOST}:{port}/_stcore/stream"
        self.watch = watch
        self.query = query  # the page's query string, e.g. "board=1"
        self.headers = headers or {}  # e.g. nginx's affinity cookie
        self.response_headers: dict[str, str] = {}  # the websocket handshake's (nginx names the replica there)
        self.auto_fragments: dict[str, float] = {}  # every run_every fragment announced: id -> interval
        self.follow_auto_reruns = follow_auto_reruns
        self.widgets: dict[str, Widget] = {}
        self.values: dict[str, WidgetState] = {}  # widget key -> the value this client set
        self.log = SessionLog()
        self.script_runs = 0  # full and fragment runs
        self.full_runs = 0
        self._keep_texts = keep_texts
        self._socket: Any = None
        self._reader: asyncio.Task | None = None
        self._auto_reruns: dict[str, asyncio.Task] = {}
        self._waiters: list[_Waiter] = []
        self._finished = asyncio.Event()
        self.closed_reason: str | None = None
        self.recent: list[str] = []  # the last messages in and out, for explaining a timeout

    # --- connection ------------------------------------------------------------------------------

    async def connect(self, timeout: float = 120.0) -> None:
        """Open the websocket and run the page once (like opening the URL)."""
        self._socket = await websockets.connect(
            self.url, subprotocols=["streamlit"], max_size=None, open_timeout=timeout, additional_headers=self.headers, proxy=None
        )
        self.response_headers = dict(self._socket.response.headers)
        self._reader = asyncio.create_task(self._read())
        await self.rerun(fragment_id="", wait_for_finish=timeout)

    async def close(self) -> None:
        for task in self._auto_reruns.values():
            task.cancel()
        self._auto_reruns.clear()
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):  # noqa: BLE001  closing, whatever state it was in
                pass

    async def abort(self) -> None:
        """Drop the TCP connection without a websocket goodbye (a laptop lid closing)."""
        transport = getattr(self._socket, "transport", None)
        if transport is not None:
            transport.abort()
        await self.close()

    # --- talking ---------------------------------------------------------------------------------

    def set_value(self, key: str, state: WidgetState) -> None:
        """Remember a widget value to send with every later rerun (as the frontend does)."""
        widget = self.widgets[key]
        state.id = widget.id
        self.values[key] = state

    async def send_rerun(self, fragment_id: str = "", auto: bool = False, triggers: dict[str, WidgetState] | None = None) -> None:
        message = BackMsg()
        client_state = message.rerun_script
        client_state.query_string = self.query
        client_state.page_script_hash = ""
        client_state.fragment_id = fragment_id
        client_state.is_auto_rerun = auto
        for key, state in self.values.items():
            if key in self.widgets:
                client_state.widget_states.widgets.append(state)
        for key, state in (triggers or {}).items():
            state.id = self.widgets[key].id
            client_state.widget_states.widgets.append(state)
        self._finished.clear()
        self._remember(f"sent rerun fragment={fragment_id[:6] or 'app'} auto={auto}")
        await self._socket.send(message.SerializeToString())

    async def rerun(self, fragment_id: str = "", wait_for_finish: float | None = None, auto: bool = False) -> None:
        await self.send_rerun(fragment_id, auto=auto)
        if wait_for_finish:
            await asyncio.wait_for(self._finished.wait(), wait_for_finish)

    def expect(self, predicate: Predicate, count: int = 1) -> asyncio.Future:
        """A future that completes once ``count`` deltas matching ``predicate`` have arrived."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(_Waiter(predicate, count, future))
        return future

    async def change(self, key: str, state: WidgetState, predicate: Predicate, count: int = 1, timeout: float = 30.0) -> float:
        """Set a widget like a user would and return seconds until the awaited deltas arrived."""
        self.set_value(key, state)
        waiting = self.expect(predicate, count)
        started = time.perf_counter()
        await self.send_rerun(self.widgets[key].fragment_id)
        await asyncio.wait_for(waiting, timeout)
        return time.perf_counter() - started

    # --- listening -------------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for raw in self._socket:
                message = ForwardMsg()
                message.ParseFromString(raw)
                self.received(message, len(raw))
                self._handle(message)
        except websockets.ConnectionClosed as closed:
            self.closed_reason = f"connection closed ({closed.code})"
        finally:
            if self.closed_reason is None:
                self.closed_reason = "connection closed"
            for waiter in self._waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(ConnectionError(self.closed_reason))

    def received(self, message: ForwardMsg, size: int) -> None:
        """Called with every message and its size on the wire, before it is handled; for subclasses that count."""

    def _remember(self, event: str) -> None:
        self.recent = [*self.recent[-19:], f"{time.monotonic():.3f} {event}"]

    def _handle(self, message: ForwardMsg) -> None:
        kind = message.WhichOneof("type")
        if kind != "delta":
            self._remember(f"got {kind} fragments={[f[:6] for f in message.metadata.run.fragment_ids]}")
        if kind == "new_session":
            self.script_runs += 1
            if message.metadata.run.fragment_ids:  # a fragment run: the other fragments' timers stay
                return
            self.full_runs += 1  # a full run: the fragments announce their timers again
            for task in self._auto_reruns.values():
                task.cancel()
            self._auto_reruns.clear()
        elif kind == "script_finished":
            self._finished.set()
        elif kind == "page_info_changed":  # the browser's address bar follows the page's query parameters
            self.query = message.page_info_changed.query_string
        elif kind == "auto_rerun":
            fragment, interval = message.auto_rerun.fragment_id, message.auto_rerun.interval
            self.auto_fragments[fragment] = interval
            if self.follow_auto_reruns and fragment not in self._auto_reruns:
                self._auto_reruns[fragment] = asyncio.create_task(self._auto_rerun(fragment, interval))
        elif kind == "stop_auto_rerun":  # a run_every fragment that no longer exists
            for fragment in message.stop_auto_rerun.fragment_ids:
                task = self._auto_reruns.pop(fragment, None)
                if task is not None:
                    task.cancel()
        elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
            self._element(message.delta.new_element, message.delta.fragment_id)

    def _element(self, element: Any, fragment_id: str) -> None:
        kind = element.WhichOneof("type")
        proto = getattr(element, kind)
        key = widget_key(getattr(proto, "id", "") or "")
        if key is not None:
            self.widgets[key] = Widget(key, proto.id, fragment_id, kind, proto)
        delta = Delta(kind, fragment_id, element=proto)
        if kind == "markdown":
            delta.text = proto.body
            self.log.texts = [*self.log.texts[-self._keep_texts + 1 :], proto.body]
            for prefix in self.watch:
                if proto.body.startswith(prefix):
                    self.log.latest[prefix] = proto.body
        elif kind == "exception":
            delta.text = f"{proto.type}: {proto.message}"
            self.log.exceptions.append(delta.text)
        elif kind == "alert":
            delta.text = proto.body
            if proto.format == proto.ERROR:
                self.log.error_alerts.append(proto.body)
        for waiter in list(self._waiters):
            if not waiter.future.done() and waiter.predicate(delta):
                waiter.seen += 1
                if waiter.seen >= waiter.needed:
                    waiter.future.set_result(None)
        self._waiters = [waiter for waiter in self._waiters if not waiter.future.done()]

    async def _auto_rerun(self, fragment_id: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.send_rerun(fragment_id, auto=True)


# --- widget values, as the frontend encodes them ---------------------------------------------------


def slider_value(value: float) -> WidgetState:
    state = WidgetState()
    state.double_array_value.data.append(float(value))
    return state


def option_value(label: str) -> WidgetState:
    """Radio buttons and select boxes send the option's displayed label."""
    state = WidgetState()
    state.string_value = label
    return state


def number_value(value: float) -> WidgetState:
    state = WidgetState()
    state.double_value = float(value)
    return state


def text_value(value: str) -> WidgetState:
    state = WidgetState()
    state.string_value = value
    return state


def trigger() -> WidgetState:
    state = WidgetState()
    state.trigger_value = True
    return state
