"""The asyncio adapter of streamed bodies (:class:`eir.servers._http.RequestBody`): a body cut off
(reset by the client, over its limit) with octets still queued unread gives them back — on HTTP/2
to the connection's flow-control window, on HTTP/1.1 by reading again — so that the connection
can go on. Driven by h2's and h11's client state machines over an in-memory transport."""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.events

from eir.servers._http import BODY_HIGH_WATER, PIPELINE_HIGH_WATER, HttpConnection, HttpServer, RequestBody
from protocols.http import HttpLimits, RequestReceived, RequestStarted


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.paused = False
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def take(self) -> bytes:
        out = bytes(self.out)
        self.out.clear()
        return out


class _Service(HttpConnection):
    """Holds a body unread while its request carries ``x-hold``; else reads it and answers 200."""

    def on_request_started(self, ev: RequestStarted, body: RequestBody) -> None:
        self.started.append(body)
        self._track(self.loop.create_task(self._serve(ev, body)))

    release = asyncio.Event()
    """A gathered request (a GET) is answered 200 once this is set."""

    def on_request(self, ev: RequestReceived) -> None:
        self._track(self.loop.create_task(self._answer(ev)))

    async def _answer(self, ev: RequestReceived) -> None:
        await self.release.wait()
        self.respond(ev, 200, [], b"ok")
        self._schedule_flush()

    async def _serve(self, ev: RequestStarted, body: RequestBody) -> None:
        if any(n == b"x-hold" for n, _ in ev.headers):
            await asyncio.Event().wait()  # never reads (cancelled with the connection)
        n = 0
        while chunk := await body.read():
            n += len(chunk)
        self.respond(ev, 200, [], str(n).encode())
        self._schedule_flush()


def _server(max_body: int) -> HttpServer:
    def factory(server: HttpServer) -> HttpConnection:
        c = _Service(server)
        c.started = []  # type: ignore[attr-defined]
        return c

    return HttpServer(
        "admin",
        "admin",
        [],
        factory,
        None,  # type: ignore[arg-type]  # (no checks on this connection)
        limits=HttpLimits(max_body=max_body, stream_body=lambda m, t, h: m == "POST"),
        max_in_flight=16,
        reuse_port=False,
        debug=False,
    )


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_h2_reset_with_queued_octets_gives_the_connection_window_back() -> None:
    server = _server(1 << 30)
    conn = server.factory(server)
    tr = _Transport()
    conn.connection_made(tr)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    conn.data_received(c.data_to_send())
    c.receive_data(tr.take())
    conn.data_received(c.data_to_send())
    start = c.outbound_flow_control_window
    assert start == 1 << 20  # our initial_window_size, by WINDOW_UPDATE

    def post(hold: bool) -> int:
        sid: int = c.get_next_available_stream_id()
        fields = [(":method", "POST"), (":scheme", "http"), (":authority", "e"), (":path", "/up")]
        c.send_headers(sid, fields + ([("x-hold", "1")] if hold else []))
        return sid

    sid = post(hold=True)
    for _ in range(40):  # 640 KiB the service does not read: more than half the window
        c.send_data(sid, b"x" * 16384)
    conn.data_received(c.data_to_send())
    await _turns()
    c.receive_data(tr.take())
    assert c.outbound_flow_control_window == start - 40 * 16384
    body = conn.started[0]  # type: ignore[attr-defined]
    assert body.queued == 40 * 16384
    c.reset_stream(sid)
    conn.data_received(c.data_to_send())
    await _turns()
    c.receive_data(tr.take())
    assert body.error == "reset" and body.queued == 0
    assert c.outbound_flow_control_window == start  # given back: not lost for the connection
    # and an upload of a whole window on the same connection goes through
    sid2 = post(hold=False)
    for _ in range(64):
        c.send_data(sid2, b"y" * 16384)
        conn.data_received(c.data_to_send())
        await _turns()
        c.receive_data(tr.take())
    c.end_stream(sid2)
    conn.data_received(c.data_to_send())
    await _turns()
    evs = c.receive_data(tr.take())
    data = b"".join(e.data for e in evs if isinstance(e, h2.events.DataReceived) and e.stream_id == sid2)
    assert data == str(64 * 16384).encode()
    conn.connection_lost(None)


async def test_http11_over_the_limit_after_pausing_reads_again() -> None:
    """One read crosses BODY_HIGH_WATER (reading paused) and then the limit: the queued octets are
    dropped and reading resumes, so the rest of the body (and the 413) can come."""
    first = BODY_HIGH_WATER + 10_000
    server = _server(first + 20_000)
    conn = server.factory(server)
    tr = _Transport()
    conn.connection_made(tr)
    head = b"POST /up HTTP/1.1\r\nhost: e\r\nx-hold: 1\r\ntransfer-encoding: chunked\r\n\r\n"

    def chunk(n: int) -> bytes:
        return f"{n:x}\r\n".encode() + b"z" * n + b"\r\n"

    conn.data_received(head + chunk(first) + chunk(30_000))
    await _turns()
    body = conn.started[0]  # type: ignore[attr-defined]
    assert body.error == "too_large" and body.queued == 0
    assert not conn.body_paused and not tr.paused
    conn.data_received(chunk(5) + b"0\r\n\r\n")
    await _turns()
    assert tr.take().startswith(b"HTTP/1.1 413 ")
    conn.connection_lost(None)


async def test_http11_pipelined_bytes_behind_an_open_request_are_bounded() -> None:
    """A client that pipelines behind a request not answered yet: h11 would hold it all unparsed;
    above PIPELINE_HIGH_WATER the connection stops reading, and reads again once the answer lets the
    core take the next request."""
    server = _server(1 << 20)
    conn = server.factory(server)
    conn.release = asyncio.Event()  # type: ignore[attr-defined]
    tr = _Transport()
    conn.connection_made(tr)
    get = b"GET /a HTTP/1.1\r\nhost: e\r\n\r\n"
    conn.data_received(get)
    await _turns()
    sent = 0
    while not tr.paused and sent < 4 * PIPELINE_HIGH_WATER:  # a well-behaved transport stops here
        conn.data_received(get * 100)
        sent += len(get) * 100
    assert tr.paused
    assert conn.core.input_backlog <= PIPELINE_HIGH_WATER + len(get) * 100  # type: ignore[union-attr]
    conn.release.set()  # type: ignore[attr-defined]
    for _ in range(50):  # each answer lets the core take the next pipelined request
        await _turns()
        if not tr.paused:
            break
    assert not tr.paused
    assert tr.take().startswith(b"HTTP/1.1 200 ")
    conn.connection_lost(None)
