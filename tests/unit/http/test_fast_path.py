"""The HTTP/2 fast path is the general path: random client scripts (requests with and without a
body, header fields that churn the HPACK dynamic table, never-indexed fields, stream resets,
window and SETTINGS changes, answers in any order, small flow-control windows) run against a
connection with the fast path and one without (every frame through h2); the server events and
what the client decodes must be the same. Also: our response header blocks decode to what we
meant, and touch no HPACK table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
from hpack import Decoder, NeverIndexedHeaderTuple
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.http import HttpLimits, HttpServerConnection, RequestReceived, StreamReset
from protocols.http._fast import encode_response_block

PATHS = [
    "/n5g-eir-eic/v1/equipment-status?pei=imei-490154203237518",
    "/n5g-eir-eic/v1/equipment-status?pei=imeisv-4370816125816151&supi=imsi-001010000000001",
    "/other",
]


@dataclass
class Side:
    """One server connection and its h2 client peer."""

    fast: bool
    c: Any = None
    s: Any = None
    events: list[tuple[Any, ...]] = field(default_factory=list)
    open: list[int] = field(default_factory=list)
    got: dict[int, list[Any]] = field(default_factory=dict)
    resets: set[int] = field(default_factory=set)
    closed: bool = False

    def __post_init__(self) -> None:
        self.c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.c.initiate_connection()
        self.s = HttpServerConnection(HttpLimits(max_concurrent_streams=8, fast_path=self.fast))
        self.exchange()

    def exchange(self) -> None:
        for _ in range(50):
            data = self.c.data_to_send()
            if data and not self.closed:
                for ev in self.s.receive_data(data):
                    if isinstance(ev, RequestReceived):
                        self.events.append(("req", ev.stream_id, ev.method, ev.target, ev.headers, ev.body))
                        self.open.append(ev.stream_id)
                    elif isinstance(ev, StreamReset):
                        self.events.append(("reset", ev.stream_id))
                        if ev.stream_id in self.open:
                            self.open.remove(ev.stream_id)
                    else:
                        self.events.append((type(ev).__name__, getattr(ev, "error", None)))
            out = self.s.data_to_send()
            if not out and not data:
                return
            if out:
                try:
                    evs = self.c.receive_data(out)
                except h2.exceptions.ProtocolError:
                    self.closed = True
                    return
                for ev in evs:
                    if isinstance(ev, h2.events.ResponseReceived):
                        self.got[ev.stream_id] = [ev.headers, b"", False]
                    elif isinstance(ev, h2.events.DataReceived):
                        self.got[ev.stream_id][1] += ev.data
                        self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        self.got[ev.stream_id][2] = True
                    elif isinstance(ev, h2.events.StreamReset):
                        self.resets.add(ev.stream_id)
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        self.closed = True
        raise AssertionError("no quiescence")


ACTIONS = st.one_of(
    st.tuples(
        st.just("get"),
        st.sampled_from(PATHS),
        st.lists(
            st.tuples(st.sampled_from(["x-a", "x-b", "user-agent", "accept"]), st.text("abc", max_size=40)),
            max_size=3,
        ),
        st.booleans(),
    ),
    st.tuples(st.just("post"), st.sampled_from(PATHS), st.binary(max_size=40)),
    st.tuples(
        st.just("answer"), st.integers(0, 7), st.sampled_from([200, 404, 400, 503]), st.binary(max_size=120)
    ),
    st.tuples(st.just("reset"), st.integers(0, 7)),
    st.tuples(st.just("window"), st.sampled_from([0, 7, 30, 65535])),
    st.tuples(st.just("ping")),
)


def run(script: list[tuple[Any, ...]], fast: bool) -> Side:
    side = Side(fast)
    for action in script:
        if side.closed:
            break
        kind = action[0]
        c = side.c
        if kind in ("get", "post"):
            if c.open_outbound_streams >= 8:
                continue
            sid = c.get_next_available_stream_id()
            hdrs: list[Any] = [
                (":method", "GET" if kind == "get" else "POST"),
                (":scheme", "http"),
                (":authority", "eir"),
                (":path", action[1]),
            ]
            if kind == "get":
                for name, value in action[2]:
                    hdrs.append(NeverIndexedHeaderTuple(name, value) if action[3] else (name, value))
                c.send_headers(sid, hdrs, end_stream=True)
            else:
                c.send_headers(sid, hdrs)
                c.send_data(sid, action[2], end_stream=True)
        elif kind == "answer":
            if side.open:
                sid = side.open.pop(action[1] % len(side.open))
                side.s.send_response(sid, action[2], [(b"content-type", b"application/json")], action[3])
        elif kind == "reset":
            live = [s for s in side.open if s not in side.got]
            if live:
                c.reset_stream(live[action[1] % len(live)])
        elif kind == "window":
            c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: action[1] or 65535})
        elif kind == "ping":
            c.ping(b"12345678")
        side.exchange()
    # answer what is left, then let the windows open
    for sid in list(side.open):
        side.s.send_response(sid, 200, [(b"content-type", b"application/json")], b"{}")
    side.open.clear()
    if not side.closed:
        side.c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535})
        side.exchange()
    return side


@settings(max_examples=150, deadline=None)
@given(st.lists(ACTIONS, max_size=30))
def test_fast_path_equals_general_path(script: list[tuple[Any, ...]]) -> None:
    fast, general = run(script, True), run(script, False)
    assert fast.events == general.events
    assert fast.got == general.got
    assert fast.resets == general.resets
    assert fast.closed == general.closed


def test_fast_path_is_taken() -> None:
    side = run([("get", PATHS[0], [], False)] * 3 + [("answer", 0, 200, b"{}")] * 3, True)
    assert side.s._memo  # the repeated header block was remembered
    assert len(side.got) == 3 and all(v[2] for v in side.got.values())


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([200, 204, 400, 404, 405, 413, 414, 429, 500, 503, 999]),
    st.lists(
        st.tuples(
            st.sampled_from([b"content-type", b"retry-after", b"allow", b"x-custom", b"server"]),
            st.binary(min_size=0, max_size=300).filter(lambda b: b"\n" not in b),
        ),
        max_size=4,
    ),
)
def test_response_blocks_decode_and_touch_no_table(status: int, fields: list[tuple[bytes, bytes]]) -> None:
    d = Decoder()
    block = encode_response_block(status, tuple(fields))
    assert d.decode(block, raw=True) == [(b":status", str(status).encode()), *fields]
    assert len(d.header_table.dynamic_entries) == 0


def test_small_windows_and_resets_on_both_paths() -> None:
    """A fixed script through the flow-control corners (hypothesis may not draw it every run)."""
    body = bytes(range(120))
    script: list[tuple[Any, ...]] = [
        ("window", 7),
        ("get", PATHS[0], [], False),
        ("get", PATHS[1], [("x-a", "abc")], True),
        ("get", PATHS[0], [], False),
        ("answer", 0, 200, body),
        ("answer", 0, 404, body[:30]),
        ("window", 30),
        ("reset", 0),
        ("post", PATHS[2], b"xyz"),
        ("answer", 0, 503, body),
        ("window", 65535),
    ]
    fast, general = run(script, True), run(script, False)
    assert (fast.events, fast.got, fast.resets, fast.closed) == (
        general.events,
        general.got,
        general.resets,
        general.closed,
    )
    assert not fast.closed and [v[1] for v in fast.got.values()].count(body) == 2


def test_head_and_get_answers_with_the_same_fields_do_not_share_frames() -> None:
    side = Side(True)
    for method in ("HEAD", "GET", "HEAD"):
        sid = side.c.get_next_available_stream_id()
        side.c.send_headers(
            sid,
            [(":method", method), (":scheme", "http"), (":authority", "e"), (":path", "/")],
            end_stream=True,
        )
        side.exchange()
        side.s.send_response(sid, 200, [(b"content-type", b"application/json")], b"{}", head=method == "HEAD")
        side.exchange()
    assert [v[1:] for v in side.got.values()] == [[b"", True], [b"{}", True], [b"", True]]
    assert not side.closed
