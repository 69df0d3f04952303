"""The HTTP/2 + HTTP/1.1 server connection core, driven with bytes: h2's client core as the peer
for HTTP/2, raw bytes for HTTP/1.1; limits, bad input and shutdown."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.http import (
    ConnectionClosed,
    HttpLimits,
    HttpServerConnection,
    HttpVersion,
    ProtocolErrorOccurred,
    RequestReceived,
    StreamReset,
)
from protocols.http.server import PREFACE

PATH = "/n5g-eir-eic/v1/equipment-status?pei=imei-490154203237518"
BODY = b'{"status":"WHITELISTED"}'
JSON = [(b"content-type", b"application/json")]


def client() -> h2.connection.H2Connection:
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    c.initiate_connection()
    return c


def pair() -> tuple[h2.connection.H2Connection, HttpServerConnection]:
    c, s = client(), HttpServerConnection(HttpLimits(max_concurrent_streams=4, max_header_list_size=2048))
    assert s.receive_data(c.data_to_send()) == []
    c.receive_data(s.data_to_send())
    s.receive_data(c.data_to_send())
    c.receive_data(s.data_to_send())  # SETTINGS ACK
    assert s.version is HttpVersion.H2
    return c, s


def get(c: h2.connection.H2Connection, path: str = PATH, extra: list | None = None) -> int:
    sid = c.get_next_available_stream_id()
    c.send_headers(
        sid,
        [(":method", "GET"), (":scheme", "http"), (":authority", "eir"), (":path", path), *(extra or [])],
        end_stream=True,
    )
    return sid


def responses(c: h2.connection.H2Connection, data: bytes) -> dict[int, tuple[int, bytes]]:
    out: dict[int, tuple[int, bytes]] = {}
    status: dict[int, int] = {}
    bodies: dict[int, bytes] = {}
    for ev in c.receive_data(data):
        if isinstance(ev, h2.events.ResponseReceived):
            status[ev.stream_id] = int(dict(ev.headers)[b":status"])
        elif isinstance(ev, h2.events.DataReceived):
            bodies[ev.stream_id] = bodies.get(ev.stream_id, b"") + ev.data
            c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            out[ev.stream_id] = (status[ev.stream_id], bodies.get(ev.stream_id, b""))
    return out


def frames(data: bytes) -> list:
    from hyperframe.frame import Frame

    out = []
    while data:
        f, n = Frame.parse_frame_header(memoryview(data[:9]))
        f.parse_body(memoryview(data[9 : 9 + n]))
        out.append(f)
        data = data[9 + n :]
    return out


def test_h2_requests_answered_in_any_order() -> None:
    c, s = pair()
    a, b = get(c), get(c, PATH + "&supi=imsi-001010000000001")
    evs = s.receive_data(c.data_to_send())
    assert [type(e) for e in evs] == [RequestReceived, RequestReceived]
    assert evs[0].target == PATH and evs[0].method == "GET" and evs[0].authority == "eir"
    assert evs[0].version is HttpVersion.H2
    s.send_response(b, 404, [(b"content-type", b"application/problem+json")], b"{}")
    s.send_response(a, 200, JSON, BODY)
    assert responses(c, s.data_to_send()) == {a: (200, BODY), b: (404, b"{}")}
    assert s.idle


def test_preface_split_across_reads_and_http11_detected_on_first_byte() -> None:
    c = client()
    s = HttpServerConnection()
    data = c.data_to_send()
    for i in range(0, len(data), 5):
        s.receive_data(data[i : i + 5])
    assert s.version is HttpVersion.H2
    s1 = HttpServerConnection()
    s1.receive_data(b"G")
    assert s1.version is HttpVersion.HTTP11


def test_streams_over_the_limit_are_refused_not_the_connection() -> None:
    c, s = pair()
    # a client that ignores our SETTINGS_MAX_CONCURRENT_STREAMS (4)
    c.remote_settings = h2.settings.Settings(
        client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100}
    )
    sids = [get(c) for _ in range(5)]
    evs = s.receive_data(c.data_to_send())
    assert [e.stream_id for e in evs if isinstance(e, RequestReceived)] == sids[:4]
    assert any(isinstance(e, ProtocolErrorOccurred) and e.error == "refused_stream" for e in evs)
    resets = [e for e in c.receive_data(s.data_to_send()) if isinstance(e, h2.events.StreamReset)]
    assert [(r.stream_id, r.error_code) for r in resets] == [(sids[4], ErrorCodes.REFUSED_STREAM)]
    for sid in sids[:4]:
        s.send_response(sid, 200, JSON, BODY)
    assert len(responses(c, s.data_to_send())) == 4
    # HPACK state stayed in step: the next request decodes
    sid = get(c, PATH + "&gpsi=msisdn-491711234567")
    (ev,) = s.receive_data(c.data_to_send())
    assert isinstance(ev, RequestReceived) and ev.stream_id == sid and ev.target.endswith("491711234567")


def test_oversized_header_list_ends_the_connection_with_goaway() -> None:
    c, s = pair()
    get(c, extra=[("x-big", "a" * 4000)])
    evs = s.receive_data(c.data_to_send())
    assert isinstance(evs[0], ProtocolErrorOccurred) and evs[0].fatal
    assert isinstance(evs[-1], ConnectionClosed) and s.closed
    goaway = [e for e in c.receive_data(s.data_to_send()) if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway and goaway[0].error_code != 0


def test_garbage_after_preface_is_goaway_protocol_error() -> None:
    s = HttpServerConnection()
    evs = s.receive_data(PREFACE + b"\x00\x00\x04\x08\x00\x00\x00\x00\x01garbage-garbage")
    assert any(isinstance(e, ProtocolErrorOccurred) and e.fatal for e in evs)
    assert isinstance(evs[-1], ConnectionClosed)
    assert b"\x07" in s.data_to_send()  # a GOAWAY frame (type 7) was queued


def test_body_over_the_limit_gets_413() -> None:
    c, s = pair()
    s.limits = HttpLimits(max_body=10)
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "e"), (":path", "/")])
    c.send_data(sid, b"x" * 100, end_stream=True)
    evs = s.receive_data(c.data_to_send())
    assert [e.error for e in evs if isinstance(e, ProtocolErrorOccurred)] == ["body_too_large"]
    assert responses(c, s.data_to_send()) == {sid: (413, b"")}


def test_the_413_carries_the_services_own_body_on_both_versions() -> None:
    """``HttpLimits.too_large``: the admin API answers 413 with ProblemDetails like every error."""
    import h11

    problem = b'{"status":413}'
    limits = HttpLimits(max_body=10, too_large=(((b"content-type", b"application/problem+json"),), problem))
    c, s = pair()
    s.limits = limits
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "e"), (":path", "/")])
    c.send_data(sid, b"x" * 100, end_stream=True)
    s.receive_data(c.data_to_send())
    evs = c.receive_data(s.data_to_send())
    (resp,) = [e for e in evs if isinstance(e, h2.events.ResponseReceived)]
    assert (b":status", b"413") in resp.headers and (
        b"content-type",
        b"application/problem+json",
    ) in resp.headers
    assert b"".join(e.data for e in evs if isinstance(e, h2.events.DataReceived)) == problem
    # HTTP/1.1, read back by h11's client
    s1 = HttpServerConnection(limits)
    s1.receive_data(b"POST / HTTP/1.1\r\nHost: e\r\nContent-Length: 100\r\n\r\n" + b"x" * 100)
    cl = h11.Connection(h11.CLIENT)
    cl.send(h11.Request(method="POST", target="/", headers=[("Host", "e"), ("Content-Length", "100")]))
    cl.receive_data(s1.data_to_send())
    r = cl.next_event()
    assert isinstance(r, h11.Response) and r.status_code == 413 and r.reason == b"Content Too Large"
    assert (b"content-type", b"application/problem+json") in list(r.headers)
    assert cl.next_event().data == problem  # type: ignore[union-attr]


def test_peer_reset_drops_the_answer() -> None:
    c, s = pair()
    sid = get(c)
    s.receive_data(c.data_to_send())
    c.reset_stream(sid, ErrorCodes.CANCEL)
    evs = s.receive_data(c.data_to_send())
    assert evs == [StreamReset(stream_id=sid, error_code=ErrorCodes.CANCEL)]
    s.send_response(sid, 200, JSON, BODY)  # no-op
    assert s.data_to_send() == b"" and s.idle


def test_close_sends_goaway_and_still_answers_received_streams() -> None:
    """RFC 9113 §6.8 in two steps: PING + GOAWAY(2^31-1); a request already on its way is still
    taken; the PING's ACK brings the final GOAWAY naming the last stream; both are answered."""
    c, s = pair()
    a = get(c)
    s.receive_data(c.data_to_send())
    assert s.close() == [] and s.draining  # one stream still waits
    first = frames(s.data_to_send())
    assert [(f.type, getattr(f, "last_stream_id", None)) for f in first] == [(0x6, None), (0x7, 2**31 - 1)]
    b = get(c)  # sent before the client saw the GOAWAY
    [ev] = s.receive_data(c.data_to_send())
    assert isinstance(ev, RequestReceived) and ev.stream_id == b
    # the client's PING ACK (h2's client refuses frames after a GOAWAY: built with hyperframe)
    from hyperframe.frame import PingFrame

    ack = PingFrame(0, flags=["ACK"], opaque_data=first[0].opaque_data)
    assert s.receive_data(ack.serialize()) == [] and not s.draining
    [final] = frames(s.data_to_send())
    assert (final.type, final.last_stream_id, final.error_code) == (0x7, b, 0)
    s.send_response(a, 200, JSON, BODY)
    s.send_response(b, 200, JSON, BODY)
    assert [(f.type, f.stream_id, "END_STREAM" in f.flags) for f in frames(s.data_to_send())] == [
        (0x1, a, False),
        (0x0, a, True),
        (0x1, b, False),
        (0x0, b, True),
    ]
    assert s.idle and s.close() == [ConnectionClosed(reason="shutdown")]


def test_final_goaway_after_drain_timeout_without_ping_ack() -> None:
    _c, s = pair()
    assert s.close(10.0) == []
    assert [f.type for f in frames(s.data_to_send())] == [0x6, 0x7]
    assert s.get_timer() == 11.0
    assert s.handle_timer(10.5) == []  # early: nothing
    assert s.handle_timer(11.0) == [ConnectionClosed(reason="shutdown")]  # idle: closed with it
    [final] = frames(s.data_to_send())
    assert (final.type, final.last_stream_id) == (0x7, 0)
    assert s.closed


def test_close_again_while_draining_sends_the_final_goaway_at_once() -> None:
    c, s = pair()
    a = get(c)
    s.receive_data(c.data_to_send())
    s.close()
    s.data_to_send()
    assert s.close() == [] and not s.draining  # still answering a
    [final] = frames(s.data_to_send())
    assert final.last_stream_id == a
    s.send_response(a, 200, JSON, BODY)
    assert s.close() == [ConnectionClosed(reason="shutdown")]


def test_answers_wait_for_the_flow_control_window() -> None:
    c, s = pair()
    c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10})
    s.receive_data(c.data_to_send())
    c.receive_data(s.data_to_send())
    sid = get(c)
    s.receive_data(c.data_to_send())
    s.send_response(sid, 200, JSON, BODY)
    assert not s.idle  # 14 octets wait for a WINDOW_UPDATE
    assert responses(c, s.data_to_send()) == {}
    s.receive_data(c.data_to_send())  # the client's WINDOW_UPDATE for the first 10
    assert responses(c, s.data_to_send()) == {sid: (200, BODY)} or not s.idle


# --- HTTP/1.1 ---------------------------------------------------------------------------------


def test_http11_keepalive_and_pipelining() -> None:
    s = HttpServerConnection()
    req = f"GET {PATH} HTTP/1.1\r\nHost: eir\r\n\r\n".encode()
    evs = s.receive_data(req + req)
    assert [type(e) for e in evs] == [RequestReceived]  # one at a time
    assert evs[0].version is HttpVersion.HTTP11 and evs[0].authority == "eir"
    s.send_response(evs[0].stream_id, 200, JSON, BODY)
    nxt = s.pending_events()
    assert [type(e) for e in nxt] == [RequestReceived] and nxt[0].stream_id == 2
    s.send_response(nxt[0].stream_id, 200, JSON, BODY)
    out = s.data_to_send()
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 2 and out.endswith(BODY)
    assert b"content-length: 24" in out
    assert not s.closed


def test_http11_bad_request_gets_400_and_close() -> None:
    s = HttpServerConnection()
    evs = s.receive_data(b"GARBAGE\r\n\r\n")
    assert [type(e) for e in evs] == [ProtocolErrorOccurred, ConnectionClosed]
    assert s.data_to_send().startswith(b"HTTP/1.1 400 ") and s.closed


def test_http11_connection_close_and_head() -> None:
    s = HttpServerConnection()
    (ev,) = s.receive_data(f"HEAD {PATH} HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n".encode())
    s.send_response(ev.stream_id, 405, [(b"allow", b"GET")], b"{}", head=True)
    out = s.data_to_send()
    assert out.startswith(b"HTTP/1.1 405 ") and out.endswith(b"\r\n\r\n") and s.closed


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_any_bytes_yield_events_never_an_exception(data: bytes, h2_first: bool) -> None:
    s = HttpServerConnection()
    if h2_first:
        s.receive_data(PREFACE)
    for i in range(0, len(data), 37):
        for ev in s.receive_data(data[i : i + 37]):
            if isinstance(ev, RequestReceived):
                s.send_response(ev.stream_id, 200, JSON, BODY)
        s.data_to_send()
    s.receive_data(b"")


@pytest.mark.parametrize("n", [1, 64])
def test_many_concurrent_streams(n: int) -> None:
    c = client()
    s = HttpServerConnection()
    s.receive_data(c.data_to_send())
    c.receive_data(s.data_to_send())
    sids = [get(c) for _ in range(n)]
    evs = s.receive_data(c.data_to_send())
    for ev in reversed(evs):
        s.send_response(ev.stream_id, 200, JSON, BODY)
    assert set(responses(c, s.data_to_send())) == set(sids)


def test_idle_connection_is_closed_with_goaway_but_not_a_busy_one() -> None:
    c = client()
    s = HttpServerConnection(HttpLimits(idle_timeout=10.0))
    s.start(100.0)
    assert s.get_timer() == 110.0
    s.receive_data(c.data_to_send(), 105.0)
    c.receive_data(s.data_to_send())
    s.receive_data(c.data_to_send(), 106.0)
    # the preface and SETTINGS complete no request: the clock still runs from the accept
    assert s.get_timer() == 110.0 and s.handle_timer(109.0) == []  # early: nothing
    sid = get(c)
    s.receive_data(c.data_to_send(), 107.0)
    assert s.get_timer() == 117.0  # a whole request restarts it
    assert s.handle_timer(200.0) == [] and not s.closed  # a request in progress: not idle
    s.send_response(sid, 200, JSON, BODY)
    assert responses(c, s.data_to_send())
    assert s.handle_timer(300.0) == [ConnectionClosed(reason="shutdown")] and s.closed
    ev = [e for e in c.receive_data(s.data_to_send()) if isinstance(e, h2.events.ConnectionTerminated)]
    assert ev and ev[0].error_code == 0
    assert s.get_timer() is None


def test_idle_http11_connection_is_closed() -> None:
    s = HttpServerConnection(HttpLimits(idle_timeout=1.0))
    s.start(0.0)
    s.receive_data(b"GET / HT", 0.5)  # a partial head: nothing in progress yet
    assert s.handle_timer(2.0) == [ConnectionClosed(reason="shutdown")] and s.closed


def test_slow_head_does_not_keep_the_connection_open() -> None:
    """A slowloris client (a request head a byte at a time, within every idle period) is closed once
    idle_timeout has passed without a whole request, on HTTP/1.1 and on HTTP/2 (pings only)."""
    s = HttpServerConnection(HttpLimits(idle_timeout=5.0))
    s.start(0.0)
    head = b"GET /n5g-eir-eic/v1/equipment-status?pei=imei-490154203237518 HTTP/1.1\r\nHost: x\r\n"
    t = 0.0
    closed: list[object] = []
    for i in range(len(head)):
        t += 1.0
        s.receive_data(head[i : i + 1], t)
        closed += s.handle_timer(t)
        if s.closed:
            break
    assert closed == [ConnectionClosed(reason="shutdown")] and t == 5.0
    c = client()
    s2 = HttpServerConnection(HttpLimits(idle_timeout=5.0))
    s2.start(0.0)
    s2.receive_data(c.data_to_send(), 1.0)
    for t in (2.0, 3.0, 4.0, 5.0):
        c.ping(b"12345678")
        s2.receive_data(c.data_to_send(), t)
        assert s2.data_to_send()  # answered (PING ACK) ...
    assert s2.handle_timer(5.0) == [ConnectionClosed(reason="shutdown")]  # ... but no request: idle


def test_continuation_flood_ends_with_goaway() -> None:
    """HEADERS without END_HEADERS then CONTINUATION frames without end (the 2024 "CONTINUATION
    flood"): bounded by h2's backlog, answered with GOAWAY, never unbounded memory."""
    _c, s = pair()
    block = b"\x82"  # :method GET
    frames = (1).to_bytes(3, "big") + b"\x01\x01" + (1).to_bytes(4, "big") + block  # HEADERS, END_STREAM only
    cont = (100).to_bytes(3, "big") + b"\x09\x00" + (1).to_bytes(4, "big") + b"\x40" * 100
    evs = s.receive_data(frames + cont * 200)
    assert any(isinstance(e, ProtocolErrorOccurred) and e.fatal for e in evs), evs
    assert s.closed and len(s._fbuf) == 0


# --- h2c upgrade (RFC 7540 §3.2) ------------------------------------------------------------------


def upgrade_request(settings: bytes, connection: bytes = b"Upgrade, HTTP2-Settings") -> bytes:
    return (
        b"GET " + PATH.encode() + b" HTTP/1.1\r\nHost: eir:8000\r\nAccept: */*\r\n"
        b"Connection: " + connection + b"\r\nUpgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n"
    )


def test_h2c_upgrade_answers_the_request_as_stream_1_over_http2() -> None:
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    settings = c.initiate_upgrade_connection()
    s = HttpServerConnection(HttpLimits())
    [ev] = s.receive_data(upgrade_request(settings.rstrip(b"=")))  # padding is optional (token68)
    assert isinstance(ev, RequestReceived) and s.version is HttpVersion.H2
    assert (ev.stream_id, ev.method, ev.target, ev.version, ev.authority) == (
        1,
        "GET",
        PATH,
        HttpVersion.H2,
        "eir:8000",
    )
    names = {n for n, _ in ev.headers}
    assert b"accept" in names and not names & {b"connection", b"upgrade", b"http2-settings", b"host"}
    out = s.data_to_send()
    head, _, rest = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ") and b"upgrade: h2c" in head.lower()
    # the client: its preface and SETTINGS; the server's SETTINGS after the 101
    c.receive_data(rest)
    assert s.receive_data(c.data_to_send()) == []
    s.send_response(1, 200, JSON, BODY)
    assert responses(c, s.data_to_send()) == {1: (200, BODY)}
    # and the connection goes on as HTTP/2
    sid = get(c)
    [ev2] = s.receive_data(c.data_to_send())
    assert isinstance(ev2, RequestReceived) and ev2.stream_id == sid == 3


@pytest.mark.parametrize(
    "request_bytes",
    [
        upgrade_request(b"!!not base64!!"),
        upgrade_request(b"AAMAAABk"[:-1]),  # not a whole number of 6-octet settings
        upgrade_request(b"AAMAAABk", connection=b"Upgrade"),  # HTTP2-Settings not named in Connection
    ],
)
def test_a_bad_h2c_offer_is_answered_over_http11(request_bytes: bytes) -> None:
    s = HttpServerConnection(HttpLimits())
    [ev] = s.receive_data(request_bytes)
    assert isinstance(ev, RequestReceived) and ev.version is HttpVersion.HTTP11
    s.send_response(ev.stream_id, 200, JSON, BODY)
    assert s.data_to_send().startswith(b"HTTP/1.1 200 ")


def test_h2c_upgrade_with_settings_out_of_range_is_a_protocol_error() -> None:
    import base64
    import struct

    bad = base64.urlsafe_b64encode(struct.pack(">HI", 0x4, 1 << 31))  # INITIAL_WINDOW_SIZE > 2^31-1
    s = HttpServerConnection(HttpLimits())
    events = s.receive_data(upgrade_request(bad))
    assert any(isinstance(e, ProtocolErrorOccurred) and e.fatal for e in events)
    assert isinstance(events[-1], ConnectionClosed) and s.closed


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=600), close_at=st.integers(0, 20), answer=st.booleans())
def test_after_an_h2c_upgrade_any_bytes_and_a_close_never_raise(
    data: bytes, close_at: int, answer: bool
) -> None:
    """The fuzz invariant across the upgrade and the two-step close: events or nothing, never an
    exception, whatever follows the 101 and whenever the shutdown starts."""
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    s = HttpServerConnection(HttpLimits(drain_timeout=0.5))
    events = s.receive_data(upgrade_request(c.initiate_upgrade_connection()), 0.0)
    stream = PREFACE + data
    now = 0.0
    for i, k in enumerate(range(0, len(stream), 41)):
        now += 0.1
        if i == close_at:
            events += s.close(now)
        events += s.receive_data(stream[k : k + 41], now)
        events += s.handle_timer(now)
        for ev in events:
            if isinstance(ev, RequestReceived) and answer:
                s.send_response(ev.stream_id, 200, JSON, BODY)
        events = []
        s.data_to_send()
    s.close(now + 1)
    s.handle_timer(now + 2)
    s.receive_data(b"", now + 3)


def test_body_limit_is_decided_per_request_from_its_head() -> None:
    """``HttpLimits.body_limit``: a small limit for one target, ``max_body`` caps the large one."""
    seen: list[tuple[str, str, bool]] = []

    def limit(method: str, target: str, fields: object) -> int:
        seen.append((method, target, (b"x-big", b"1") in list(fields)))  # type: ignore[call-overload]
        return 1000 if target == "/big" else 5

    limits = HttpLimits(max_body=100, body_limit=limit)
    for path, size, status in (
        ("/small", 6, 413),
        ("/small", 5, None),
        ("/big", 100, None),
        ("/big", 101, 413),
    ):
        c, s = pair()
        s.limits = limits
        sid = c.get_next_available_stream_id()
        c.send_headers(
            sid,
            [(":method", "POST"), (":scheme", "http"), (":authority", "e"), (":path", path), ("x-big", "1")],
        )
        c.send_data(sid, b"x" * size, end_stream=True)
        evs = s.receive_data(c.data_to_send())
        if status is None:
            assert [type(e) for e in evs] == [RequestReceived] and len(evs[0].body) == size  # type: ignore[union-attr]
        else:
            assert responses(c, s.data_to_send()) == {sid: (413, b"")}
        # the same over HTTP/1.1
        s1 = HttpServerConnection(limits)
        head = f"POST {path} HTTP/1.1\r\nHost: e\r\nX-Big: 1\r\nContent-Length: {size}\r\n\r\n".encode()
        evs = s1.receive_data(head + b"x" * size)
        if status is None:
            assert [type(e) for e in evs] == [RequestReceived]
        else:
            assert s1.data_to_send().startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert seen[0] == ("POST", "/small", True)
