"""One server-side HTTP connection, sans-IO: HTTP/2 with prior knowledge (RFC 9113 §3.3, "h2c") or
HTTP/1.1 (RFC 9112), told apart by the first bytes, on the same port.

HTTP/2 is python-hyper's ``h2`` (its state machines, flow control, HPACK), HTTP/1.1 is ``h11``; this
core puts one shape over both for the servers (N5g-eir, the admin API)::

    conn = HttpServerConnection(HttpLimits())
    events = conn.receive_data(data, now)      # RequestReceived, StreamReset, ProtocolErrorOccurred,
                                               # ConnectionClosed
    conn.send_response(stream_id, status, headers, body)
    conn.data_to_send() -> bytes
    conn.close(now)                            # GOAWAY (h2) / close after the answer (HTTP/1.1)

Requests are handed up whole (headers and a bounded body), except those ``HttpLimits.stream_body``
picks from their head: they are handed up at once as :class:`RequestStarted`, their body follows as
:class:`BodyReceived` chunks as they arrive and a :class:`BodyEnded` (or :class:`BodyAborted` when it
goes over the body limit, answered 413 by the core at its end, as a gathered body is, or when the
client stalls it for ``idle_timeout``, answered 408). The caller
says when it has taken a chunk (:meth:`HttpServerConnection.body_consumed`): on HTTP/2 only then does
the stream's and the connection's window reopen (WINDOW_UPDATE), so the peer can have at most
``initial_window_size`` octets of body unconsumed; on HTTP/1.1 the adapter stops reading while too
much is unconsumed. Answers may be sent in any order on HTTP/2; HTTP/1.1 has one request at a time
(h11 holds pipelined requests until the answer is sent). Simple requests skip h2's stream machinery
and h11 (``HttpLimits.fast_path``; :mod:`protocols.http._fast`, :mod:`protocols.http._fast_h1`).

Bounds and bad input (never an exception out of :meth:`receive_data`):

* concurrent streams: ``SETTINGS_MAX_CONCURRENT_STREAMS``; a stream beyond it is refused with
  RST_STREAM REFUSED_STREAM (RFC 9113 §5.1.2: a *stream* error; h2 itself would end the connection);
* header list: ``SETTINGS_MAX_HEADER_LIST_SIZE``; h2's HPACK decoder refuses larger lists
  (GOAWAY ENHANCE_YOUR_CALM / PROTOCOL_ERROR, as h2 decides); HTTP/1.1 heads over the bound get 431;
* request bodies: over ``max_body`` → 413 then RST_STREAM NO_ERROR (RFC 9113 §8.1);
* any h2 protocol error → the GOAWAY h2 queued, a :class:`ProtocolErrorOccurred` and a
  :class:`ConnectionClosed`; an HTTP/1.1 parse error → 400 (or h11's hint) and close.

Shutdown (:meth:`close`), in RFC 9113 §6.8's two steps: a PING and a GOAWAY with the largest
stream id (2^31-1), so that requests already on the wire are still taken; when the PING's ACK
comes back (one round trip later; at the latest ``HttpLimits.drain_timeout`` after), the final
GOAWAY naming the last stream received. Streams received before it are still answered (h2 forbids
sending after its own GOAWAY, so the frames are written here without moving h2's connection
state); :attr:`idle` tells the adapter when every one has been answered and :attr:`draining` while
the final GOAWAY is still to come. An idle-timeout close is one step (nothing is in flight).

HTTP/1.1 with ``Upgrade: h2c`` (RFC 7540 §3.2, what ``curl --http2`` sends on ``http://``; RFC 9113
deprecates it, clients still send it): ``101 Switching Protocols``, then HTTP/2 with the request
as stream 1 (its settings from ``HTTP2-Settings``); a request without a valid ``HTTP2-Settings``
is answered over HTTP/1.1 as if it had not asked.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import h11
from h2.config import H2Configuration
from h2.connection import H2Connection, _decode_headers
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingAckReceived,
    RemoteSettingsChanged,
    StreamEnded,
    WindowUpdated,
)
from h2.events import (
    RequestReceived as H2RequestReceived,
)
from h2.events import (
    StreamReset as H2StreamReset,
)
from h2.exceptions import ProtocolError as H2ProtocolError
from h2.exceptions import StreamClosedError
from h2.settings import SettingCodes
from h2.stream import StreamClosedBy
from hyperframe.frame import GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame

from protocols.http._fast import CountingTable, encode_response_block, request_problem
from protocols.http._fast_h1 import Parsed, encode_response, parse_request

__all__ = [
    "BodyAborted",
    "BodyEnded",
    "BodyReceived",
    "ConnectionClosed",
    "HttpLimits",
    "HttpServerConnection",
    "HttpVersion",
    "ProtocolErrorOccurred",
    "RequestReceived",
    "RequestStarted",
    "StreamReset",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_MAX_STREAM_ID = (1 << 31) - 1
_DRAIN_PING = b"eirdrain"
"""Opaque data of the PING that ends the first step of a graceful shutdown."""
"""RFC 9113 §3.4: the client connection preface; a connection that starts with it is HTTP/2."""


class HttpVersion(StrEnum):
    PENDING = "pending"
    H2 = "2"
    HTTP11 = "1.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpLimits:
    """Per-connection bounds (advertised in SETTINGS where HTTP/2 has a setting for them)."""

    max_concurrent_streams: int = 256
    max_header_list_size: int = 16384
    """Octets, as SETTINGS_MAX_HEADER_LIST_SIZE counts them (RFC 9113 §6.5.2); also the HTTP/1.1
    head size bound."""
    max_body: int = 65536
    too_large: tuple[tuple[tuple[bytes, bytes], ...], bytes] = ((), b"")
    """Header fields and body of the 413 answer to a body over ``max_body`` (the service's own
    error format, e.g. ProblemDetails); default: no body."""
    body_limit: Callable[[str, str, Sequence[tuple[bytes, bytes]]], int] | None = None
    """``(method, target, regular header fields) -> octets``: the body limit of one request, decided
    from its head before any of its body is kept (at most ``max_body``), so that a service can keep
    large bodies for the requests that may send them (the admin API: CSV imports with a write
    token) and small ones for everything else. None: ``max_body`` for every request."""
    stream_body: Callable[[str, str, Sequence[tuple[bytes, bytes]]], bool] | None = None
    """``(method, target, regular header fields) -> bool``: True hands the request up at its head
    (:class:`RequestStarted`) and its body in chunks as they arrive (module docstring), for a
    service that spools or parses a large body as it comes; the body limit still applies. None:
    every body is gathered."""
    initial_window_size: int = 1 << 20
    """Our receive window per stream (and for the connection, by a WINDOW_UPDATE at start)."""
    idle_timeout: float = 0.0
    """Seconds without a whole request from the peer and none in progress after which the
    connection is closed (HTTP/2: GOAWAY NO_ERROR); bytes that complete nothing (a head sent a
    byte at a time, pings alone) do not count; 0: never. Also the seconds a streamed body may go
    without an octet (while none of it waits for the service) before it is answered 408
    (:class:`BodyAborted` ``timeout``)."""
    drain_timeout: float = 1.0
    """Seconds between the two GOAWAYs of a graceful close when the PING's ACK does not come."""
    fast_path: bool = True
    """Serve simple requests without the general machinery: on HTTP/2 one HEADERS frame with
    END_STREAM without h2's stream state (:mod:`protocols.http._fast`), on HTTP/1.1 a whole head
    without a body without h11 (:mod:`protocols.http._fast_h1`); False: everything through h2 and
    h11 (the general paths the fast ones are tested equal to)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReceived:
    stream_id: int
    """HTTP/2 stream id; on HTTP/1.1 a per-connection request counter."""
    method: str
    target: str
    """``:path`` (HTTP/2) or the request-target (HTTP/1.1): path and query."""
    headers: tuple[tuple[bytes, bytes], ...]
    """Regular header fields, names lower-case (pseudo-headers are in the other fields)."""
    body: bytes
    version: HttpVersion
    authority: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestStarted:
    """The head of a request whose body is streamed (``HttpLimits.stream_body``): its body follows
    as :class:`BodyReceived` events and ends with :class:`BodyEnded` or :class:`BodyAborted` (or a
    :class:`StreamReset` / :class:`ConnectionClosed`, when the peer gives up)."""

    stream_id: int
    method: str
    target: str
    headers: tuple[tuple[bytes, bytes], ...]
    version: HttpVersion
    authority: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BodyReceived:
    """A chunk of a streamed request body; give it back with
    :meth:`HttpServerConnection.body_consumed` once taken (HTTP/2 flow control)."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class BodyEnded:
    """The streamed request body is complete: answer with :meth:`HttpServerConnection.send_response`."""

    stream_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BodyAborted:
    """The streamed request body will not be complete; what came of it is to be dropped (and given
    back with :meth:`HttpServerConnection.body_consumed`, HTTP/2 flow control). ``reason``:
    ``too_large``: it went over its limit (a :class:`ProtocolErrorOccurred` ``body_too_large``
    follows, once); the core answers 413 itself when the body ends, and an answer sent for it is
    ignored; ``timeout``: no octet of it came for ``HttpLimits.idle_timeout`` seconds (HTTP/2: the
    core answered 408 and reset the stream; HTTP/1.1: 408 and a :class:`ConnectionClosed`)."""

    stream_id: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamReset:
    """The client cancelled a stream (RST_STREAM): its answer is not wanted."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolErrorOccurred:
    """The peer sent something we refused; ``error`` is a short metric label
    (``protocol_error``, ``refused_stream``, ``frame_size_error``, ``bad_request`` …)."""

    error: str
    detail: str
    fatal: bool
    """The connection ends because of it (a :class:`ConnectionClosed` follows)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """Nothing more will be read: flush :meth:`HttpServerConnection.data_to_send` and close."""

    reason: str


Event = (
    RequestReceived
    | RequestStarted
    | BodyReceived
    | BodyEnded
    | BodyAborted
    | StreamReset
    | ProtocolErrorOccurred
    | ConnectionClosed
)


class _H2(H2Connection):
    """h2 with RFC 9113 §5.1.2's stream error for a stream over the concurrency limit (h2 ends the
    whole connection with PROTOCOL_ERROR instead)."""

    refused: int = 0
    fast_open: dict[int, int] | None = None
    """The fast path's unfinished streams, which h2 does not count (they count towards the limit)."""

    def _receive_headers_frame(self, frame: HeadersFrame) -> tuple[list[object], list[object]]:  # type: ignore[override]
        sid = frame.stream_id
        if (
            sid not in self.streams
            and sid % 2 == 1
            and sid > self.highest_inbound_stream_id
            and self.open_inbound_streams + len(self.fast_open or ())
            >= self.local_settings.max_concurrent_streams
        ):
            _decode_headers(self.decoder, frame.data)  # the HPACK state must follow every block
            self.highest_inbound_stream_id = sid
            self._closed_streams[sid] = StreamClosedBy.SEND_RST_STREAM
            rst = RstStreamFrame(sid)
            rst.error_code = ErrorCodes.REFUSED_STREAM
            self.refused += 1
            return [rst], []
        return super()._receive_headers_frame(frame)  # type: ignore[return-value]


_REASONS = {
    200: b"OK",
    201: b"Created",
    204: b"No Content",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    409: b"Conflict",
    422: b"Unprocessable Content",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


class _Stream:
    __slots__ = ("body", "headers", "limit", "received", "streamed", "too_large")

    def __init__(self, headers: list[tuple[bytes, bytes]], limit: int) -> None:
        self.headers = headers
        self.body = bytearray()
        self.too_large = False
        self.limit = limit
        self.streamed = False
        self.received = 0
        """Octets of a streamed body so far."""


class HttpServerConnection:
    """One server connection, HTTP/2 (prior knowledge) or HTTP/1.1 (module docstring)."""

    def __init__(self, limits: HttpLimits | None = None) -> None:
        self.limits = limits or HttpLimits()
        self.version = HttpVersion.PENDING
        self._head = b""
        self._out = bytearray()
        self._h2: _H2 | None = None
        self._h1: h11.Connection | None = None
        self._streams: dict[int, _Stream] = {}
        self._pending_data: dict[int, memoryview] = {}
        self._open: set[int] = set()
        """Requests handed up and not answered yet."""
        self._refusing: set[int] = set()
        """Streamed requests whose body went over its limit: answered 413 by the core when the body
        ends (the service's answer is ignored)."""
        self._body_at: dict[int, float] = {}
        """Streamed bodies still arriving (stream id → when octets of it last came), for the stall
        timeout (:meth:`handle_timer`)."""
        self._body_held: dict[int, int] = {}
        """Streamed body octets handed up and not yet consumed by the service, per stream: while any
        are held the client may be waiting for us (flow control), so the stall clock does not run."""
        self._now = 0.0
        self._goaway_last: int | None = None
        self._drain_at: float | None = None
        """First GOAWAY sent, final one due at this time (or at the PING's ACK)."""
        self._closed = False
        # the HTTP/2 fast path (module docstring of protocols.http._fast)
        self._fast_on = self.limits.fast_path
        self._fast_ready = False
        self._fbuf = b""
        self._fast: dict[int, int] = {}
        """Fast-path streams not finished: stream id → our send window on it."""
        self._fast_body: dict[int, memoryview] = {}
        """Fast-path answers waiting for flow-control window."""
        self._memo: dict[bytes, tuple[int, _Parsed | None, str | None]] = {}
        """Header block → (HPACK table generation, the request's parts, problem) for repeated blocks."""
        self._peer_window = 65535
        """The peer's SETTINGS_INITIAL_WINDOW_SIZE: a new stream's send window."""
        self._blocks: dict[
            tuple[int, tuple[tuple[bytes, bytes], ...], int, bool], tuple[bytes, bytes, bytes]
        ] = {}
        """(status, fields, body length, HEAD) → our HEADERS frame head, header block, DATA frame head."""
        self._h1_counter = 0
        self._last_rx = 0.0
        self._h1_closing = False
        self._h1_followup = False
        self._h1_req: h11.Request | None = None
        self._h1_body = bytearray()
        self._h1_too_large = False
        self._h1_limit = self.limits.max_body
        self._h1_streaming = False
        """The current HTTP/1.1 request's body is streamed and not finished."""
        self._h1_received = 0
        self._h1_fast: bytes | None = None
        """The HTTP/1.1 fast path (:mod:`protocols.http._fast_h1`): the request taken and not
        answered yet, as received (h11 has not seen it)."""

    # -- the core API ----------------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        """No request waits for its answer (and no answer for flow-control window)."""
        return not self._open and not self._pending_data and not self._fast_body and not self._refusing

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def input_backlog(self) -> int:
        """Octets received and not yet parsed: on HTTP/1.1, what a client pipelined behind a request
        not answered yet (h11 holds it unparsed, with no bound of its own). The adapter stops reading
        above its high-water mark; 0 on HTTP/2 (frames are parsed as they come, flow control bounds
        the bodies)."""
        c = self._h1
        if c is None or not self._open:
            return 0
        return len(c.trailing_data[0])

    @property
    def draining(self) -> bool:
        """Between the two GOAWAYs of a graceful close (module docstring)."""
        return self._drain_at is not None

    def data_to_send(self) -> bytes:
        if self._h2 is not None:
            d = self._h2.data_to_send()
            if d:
                self._out += d
        out = bytes(self._out)
        self._out.clear()
        return out

    def start(self, now: float) -> None:
        """The connection was accepted at ``now``: the idle clock starts."""
        self._last_rx = now

    def get_timer(self) -> float | None:
        """The idle deadline (``HttpLimits.idle_timeout``) or the final GOAWAY's, or None."""
        if self._closed:
            return None
        t = self.limits.idle_timeout
        idle_at = self._last_rx + t if t else None
        if idle_at is not None and self._body_at:
            idle_at = min(idle_at, min(self._body_at.values()) + t)
        if self._drain_at is not None:
            return self._drain_at if idle_at is None else min(idle_at, self._drain_at)
        return idle_at

    def handle_timer(self, now: float) -> list[Event]:
        """Close an idle connection; send the final GOAWAY when its time has come. Safe to call
        early (nothing happens before the deadline); a connection with requests in progress is not
        idle."""
        if self._drain_at is not None and now >= self._drain_at and not self._closed:
            return self._final_goaway()
        t = self.limits.idle_timeout
        if t and self._body_at and not self._closed:
            stalled = self._stalled_bodies(now, t)
            if stalled:
                return stalled
        at = None if self._closed or not t else self._last_rx + t
        if at is None or now < at:
            return []
        if not self.idle:
            self._last_rx = now  # busy: the deadline moves on
            return []
        out = self.close(now, two_step=False)
        self._closed = True
        return out if out else [ConnectionClosed(reason="idle")]

    def receive_data(self, data: bytes, now: float = 0.0) -> list[Event]:
        """Bytes from the peer (``b""``: the peer closed) → events.

        Only bytes that make an event (a whole request, a reset, an error) restart the idle clock:
        a head sent a byte at a time, or pings alone, do not keep a connection open."""
        self._now = now
        events = self._receive(data)
        if events:
            self._last_rx = now
        return events

    def _stalled_bodies(self, now: float, t: float) -> list[Event]:
        """Streamed bodies that got no octet for ``t`` seconds while none of theirs waited for the
        service (a client stalled mid-body): HTTP/2: 408 then RST_STREAM NO_ERROR (RFC 9113 §8.1),
        the connection stays; HTTP/1.1: 408 and close (the rest of the body would come next on it).
        Each gives :class:`BodyAborted` ``timeout`` (none for a body already aborted as too large)."""
        out: list[Event] = []
        for sid, at in list(self._body_at.items()):
            if now - at < t:
                continue
            if any(self._body_held.values()):
                # the client may be waiting for the service (flow control, one window for the
                # connection on HTTP/2): not its stall
                self._body_at[sid] = now
                continue
            self._body_done(sid)
            self._last_rx = now  # busy until now: the idle clock starts again
            was_open = sid in self._open
            self._open.discard(sid)
            self._refusing.discard(sid)
            if was_open:
                out.append(BodyAborted(stream_id=sid, reason="timeout"))
            if self._h2 is not None:
                self._streams.pop(sid, None)
                self._respond_h2(sid, 408, (), b"", False)
                self._h2_safe(lambda h, s=sid: h.reset_stream(s, ErrorCodes.NO_ERROR))
            else:
                self._h1_closing = True
                self._h1_streaming = False
                self._respond_h1(408, (), b"", False)
                self._closed = True
                out.append(ConnectionClosed(reason="body_timeout"))
                return out
        return out

    def _body_done(self, sid: int) -> None:
        self._body_at.pop(sid, None)
        self._body_held.pop(sid, None)

    def _receive(self, data: bytes) -> list[Event]:
        if self._closed:
            return []
        if self.version is HttpVersion.PENDING:
            if not data:
                self._closed = True
                return [ConnectionClosed(reason="eof")]
            self._head += data
            head = self._head
            n = min(len(head), len(PREFACE))
            if head[:n] != PREFACE[:n]:
                self._start_h1()
            elif len(head) >= len(PREFACE):
                self._start_h2()
            else:
                return []
            data, self._head = head, b""
        if self._h2 is not None:
            return self._receive_h2(data)
        return self._receive_h1(data)

    def send_response(
        self,
        stream_id: int,
        status: int,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        *,
        head: bool = False,
    ) -> None:
        """Answer request ``stream_id``; content-length is added. ``head``: no body (HEAD)."""
        if stream_id not in self._open:
            return  # reset by the peer meanwhile, the connection failed, or the core answers (413)
        self._open.discard(stream_id)
        if self._body_at:  # answered before its body ended: the rest is not waited for
            self._body_done(stream_id)
        if self._h2 is not None:
            if stream_id in self._fast:
                if not self._closed:
                    self._fast_respond(self._h2, stream_id, status, headers, body, head)
                return
            self._respond_h2(stream_id, status, headers, body, head)
        elif self._h1 is not None:
            self._respond_h1(status, headers, body, head)

    def body_consumed(self, stream_id: int, n: int) -> None:
        """``n`` octets of a streamed body (:class:`BodyReceived`) were taken by the service: on
        HTTP/2 they go back to the peer's flow-control windows (WINDOW_UPDATE, when h2 finds the
        increment worth a frame); nothing to do on HTTP/1.1 (the adapter paused reading)."""
        held = self._body_held.get(stream_id)
        if held is not None:
            self._body_held[stream_id] = max(0, held - n)
        if self._h2 is not None and n > 0:
            self._h2_safe(lambda h: h.acknowledge_received_data(n, stream_id))

    def reset_stream(self, stream_id: int, error_code: int = ErrorCodes.INTERNAL_ERROR) -> None:
        """Give up on a request (HTTP/2: RST_STREAM; HTTP/1.1: close the connection)."""
        if stream_id not in self._open:
            return
        self._body_done(stream_id)
        if self._h2 is not None:
            if stream_id in self._fast:
                self._fast_reset(self._h2, stream_id, error_code)
                return
            self._open.discard(stream_id)
            self._h2_safe(lambda h: h.reset_stream(stream_id, error_code))
        else:
            self._open.discard(stream_id)
            self._h1_closing = True
            self._closed = True

    def close(self, now: float = 0.0, *, two_step: bool = True) -> list[Event]:
        """Graceful close. HTTP/2: a PING and the first GOAWAY (2^31-1) (module docstring), or with
        ``two_step`` False — or when called again while draining — the final GOAWAY NO_ERROR naming
        the last stream received (the received ones are still answered). HTTP/1.1: close once the
        current answer is sent."""
        if self._closed:
            return []
        h = self._h2
        if h is not None:
            if self._goaway_last is None and two_step:
                self._goaway_last = _MAX_STREAM_ID
                self._drain_at = now + self.limits.drain_timeout
                f = GoAwayFrame(stream_id=0, last_stream_id=_MAX_STREAM_ID, error_code=0)
                ping = PingFrame(stream_id=0, opaque_data=_DRAIN_PING)
                # the PING first: python-hyper h2 as a client refuses every frame after a GOAWAY, so it
                # at least acknowledges the PING and reports the GOAWAY (RFC 9113 §6.8 sets no order)
                self._out += h.data_to_send() + ping.serialize() + f.serialize()
                return []
            if self._goaway_last is None or self._drain_at is not None:
                return self._final_goaway()
            if self.idle:
                self._closed = True
                return [ConnectionClosed(reason="shutdown")]
            return []
        self._h1_closing = True
        if self.idle:
            self._closed = True
            return [ConnectionClosed(reason="shutdown")]
        return []

    def _final_goaway(self) -> list[Event]:
        h = self._h2
        if h is None or self._closed:  # pragma: no cover - guarded by the callers
            return []
        self._drain_at = None
        self._goaway_last = h.highest_inbound_stream_id
        f = GoAwayFrame(stream_id=0, last_stream_id=self._goaway_last, error_code=0)
        self._out += h.data_to_send() + f.serialize()
        if self.idle:
            self._closed = True
            return [ConnectionClosed(reason="shutdown")]
        return []

    # -- HTTP/2 --------------------------------------------------------------------------------------
    def _start_h2(self, upgrade_settings: bytes | None = None) -> None:
        self.version = HttpVersion.H2
        cfg = H2Configuration(client_side=False, header_encoding=None)
        h = self._h2 = _H2(config=cfg)
        lim = self.limits
        h.local_settings = h.local_settings.__class__(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: lim.max_concurrent_streams,
                SettingCodes.MAX_HEADER_LIST_SIZE: lim.max_header_list_size,
                SettingCodes.INITIAL_WINDOW_SIZE: lim.initial_window_size,
                SettingCodes.ENABLE_PUSH: 0,
            },
        )
        if self._fast_on:
            h.decoder.header_table = CountingTable()
            h.fast_open = self._fast
        if upgrade_settings is None:
            h.initiate_connection()
        else:  # h2c upgrade: the client's settings from HTTP2-Settings, stream 1 half-closed (remote)
            h.initiate_upgrade_connection(upgrade_settings)
        # our decoder enforces the bound we advertise from the start, not after the SETTINGS ACK
        h.decoder.max_header_list_size = lim.max_header_list_size
        if lim.initial_window_size > 65535:
            h.increment_flow_control_window(lim.initial_window_size - 65535)

    def _h2_safe(self, op: object) -> list[Event]:
        h = self._h2
        if h is None or self._closed:
            return []
        try:
            op(h)  # type: ignore[operator]
        except (H2ProtocolError, StreamClosedError):
            return []
        return []

    def _receive_h2(self, data: bytes) -> list[Event]:
        if not data:
            self._closed = True
            return [ConnectionClosed(reason="eof")]
        if not self._fast_ready:
            out = self._feed_h2(data)
            h = self._h2
            if (
                self._fast_on
                and h is not None
                and not self._closed
                and h.incoming_buffer._preamble_len == 0
                and not h.incoming_buffer._data
                and self._remote_settings_seen
            ):
                self._fast_ready = True
            return out
        return self._receive_fast(data)

    _remote_settings_seen = False

    def _receive_fast(self, data: bytes) -> list[Event]:
        """Split frames here: the fast path's ones are served here, every other frame goes to h2
        in order (only whole frames, so h2 never holds a partial frame)."""
        h = self._h2
        if h is None:  # pragma: no cover
            return []
        buf = self._fbuf + data if self._fbuf else data
        self._fbuf = b""
        out: list[Event] = []
        n = len(buf)
        pos = start = 0  # buf[start:pos] is the batch of frames waiting for h2
        fast = self._fast
        while n - pos >= 9:
            length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
            if length > h.max_inbound_frame_size:
                break  # h2 answers FRAME_SIZE_ERROR for it
            end = pos + 9 + length
            if end > n:
                break
            ftype = buf[pos + 3]
            sid = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            if ftype == 1 and buf[pos + 4] == 0x05 and sid & 1 and sid > h.highest_inbound_stream_id:
                if start < pos:
                    out += self._feed_h2(buf[start:pos])
                    if self._closed:
                        return out
                start = end
                if h.incoming_buffer._headers_buffer or self._goaway_last is not None:
                    # inside a CONTINUATION sequence, or after our GOAWAY: h2's rules
                    out += self._feed_h2(buf[pos:end])
                else:
                    out += self._fast_request(h, sid, buf[pos + 9 : end])
                if self._closed:
                    return out
            elif sid in fast and ftype in (0, 1, 2, 3, 8):
                if start < pos:
                    out += self._feed_h2(buf[start:pos])
                    if self._closed:
                        return out
                start = end
                out += self._fast_frame(h, ftype, sid, buf[pos + 9 : end])
                if self._closed:
                    return out
            pos = end
        over_long = n - pos >= 9 and ((buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]) > (
            h.max_inbound_frame_size
        )
        if not over_long:
            if start < pos:
                out += self._feed_h2(buf[start:pos])
            if not self._closed and pos < n:
                self._fbuf = bytes(buf[pos:])
        else:  # an over-long frame: h2 reads its header and ends the connection
            out += self._feed_h2(buf[start:])
        return out

    def _fast_request(self, h: _H2, sid: int, block: bytes) -> list[Event]:
        """A request in one HEADERS frame (END_HEADERS|END_STREAM) on a new stream."""
        table = h.decoder.header_table
        gen = table.generation  # type: ignore[attr-defined]
        hit = self._memo.get(block)
        if hit is not None and hit[0] == gen:
            parsed, problem = hit[1], hit[2]
        else:
            try:
                fields = list(_decode_headers(h.decoder, block))
            except H2ProtocolError as e:
                return self._connection_error(h, e)
            problem = request_problem(fields)
            parsed = None if problem is not None else _split_request(fields)
            if table.generation == gen:  # type: ignore[attr-defined]
                if len(self._memo) >= 512:
                    self._memo.clear()
                self._memo[block] = (gen, parsed, problem)
        h.highest_inbound_stream_id = sid
        if parsed is None:
            return self._connection_error(h, H2ProtocolError(f"malformed request: {problem}"))
        if len(self._open) + len(self._streams) + len(self._pending_data) + len(self._fast_body) >= (
            self.limits.max_concurrent_streams
        ):
            h._closed_streams[sid] = StreamClosedBy.SEND_RST_STREAM
            rst = RstStreamFrame(sid)
            rst.error_code = ErrorCodes.REFUSED_STREAM
            h._data_to_send += rst.serialize()
            return [
                ProtocolErrorOccurred(
                    error="refused_stream",
                    detail=f"over SETTINGS_MAX_CONCURRENT_STREAMS {self.limits.max_concurrent_streams}",
                    fatal=False,
                )
            ]
        self._fast[sid] = self._peer_window
        self._open.add(sid)
        method, target, regular, authority = parsed
        return [_h2_request_event(sid, method, target, regular, authority)]

    def _fast_frame(self, h: _H2, ftype: int, sid: int, payload: bytes) -> list[Event]:
        """A frame on a fast-path stream that is not finished (RFC 9113 §5.1 half-closed remote)."""
        if ftype == 3:  # RST_STREAM
            if len(payload) != 4:
                return self._connection_error(
                    h, H2ProtocolError("RST_STREAM of length != 4"), ErrorCodes.FRAME_SIZE_ERROR
                )
            code = int.from_bytes(payload, "big")
            self._fast.pop(sid, None)
            self._fast_body.pop(sid, None)
            h._closed_streams[sid] = StreamClosedBy.RECV_RST_STREAM
            if sid in self._open:
                self._open.discard(sid)
                return [StreamReset(stream_id=sid, error_code=code)]
            return []
        if ftype == 8:  # WINDOW_UPDATE
            if len(payload) != 4:
                return self._connection_error(
                    h, H2ProtocolError("WINDOW_UPDATE of length != 4"), ErrorCodes.FRAME_SIZE_ERROR
                )
            inc = int.from_bytes(payload, "big") & 0x7FFFFFFF
            window = self._fast[sid] + inc
            if inc == 0 or window > 0x7FFFFFFF:  # RFC 9113 §6.9, §6.9.1: stream errors
                self._fast_reset(
                    h, sid, ErrorCodes.PROTOCOL_ERROR if inc == 0 else ErrorCodes.FLOW_CONTROL_ERROR
                )
                return []
            self._fast[sid] = window
            if sid in self._fast_body:
                self._fast_send_body(h, sid)
            return []
        if ftype == 2:  # PRIORITY: deprecated (RFC 9113 §5.3.2), nothing to do
            if len(payload) != 5:
                self._fast_reset(h, sid, ErrorCodes.FRAME_SIZE_ERROR)
            return []
        # DATA or HEADERS on a stream the client ended: STREAM_CLOSED (§5.1), a connection error
        # as h2 makes it
        return self._connection_error(
            h, H2ProtocolError("frame on a half-closed stream"), ErrorCodes.STREAM_CLOSED
        )

    def _fast_reset(self, h: _H2, sid: int, code: int) -> None:
        rst = RstStreamFrame(sid)
        rst.error_code = code
        h._data_to_send += rst.serialize()
        self._fast.pop(sid, None)
        self._fast_body.pop(sid, None)
        self._open.discard(sid)
        h._closed_streams[sid] = StreamClosedBy.SEND_RST_STREAM

    def _connection_error(self, h: _H2, e: H2ProtocolError, code: int | None = None) -> list[Event]:
        code = code if code is not None else getattr(e, "error_code", ErrorCodes.PROTOCOL_ERROR)
        with contextlib.suppress(H2ProtocolError):
            h._terminate_connection(ErrorCodes(code) if code in ErrorCodes._value2member_map_ else code)  # type: ignore[arg-type]
        self._closed = True
        self._open.clear()
        self._refusing.clear()
        self._pending_data.clear()
        self._fast.clear()
        self._fast_body.clear()
        label = _code_label(code)
        return [
            ProtocolErrorOccurred(error=label, detail=str(e) or type(e).__name__, fatal=True),
            ConnectionClosed(reason=label),
        ]

    def _fast_respond(
        self, h: _H2, sid: int, status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes, head: bool
    ) -> None:
        if head:
            body_len = len(body)
            body = b""
        else:
            body_len = len(body)
        key = (status, tuple(headers), body_len, head)
        pre = self._blocks.get(key)
        if pre is None:
            block = encode_response_block(status, (*key[1], (b"content-length", str(body_len).encode())))
            if len(block) > 16384:  # pragma: no cover - our fields are small (SETTINGS_MAX_FRAME_SIZE floor)
                self._fast_reset(h, sid, ErrorCodes.INTERNAL_ERROR)
                return
            # (HEADERS frame head without the stream id, block, DATA frame head without the stream id)
            pre = (
                len(block).to_bytes(3, "big") + (b"\x01\x05" if not body_len or head else b"\x01\x04"),
                block,
                body_len.to_bytes(3, "big") + b"\x00\x01",
            )
            if len(self._blocks) >= 256:
                self._blocks.clear()
            self._blocks[key] = pre
        sid4 = sid.to_bytes(4, "big")
        if not body:
            h._data_to_send += pre[0] + sid4 + pre[1]
            self._fast_done(h, sid)
            return
        if body_len <= self._fast[sid] and body_len <= h.outbound_flow_control_window and body_len <= 16384:
            # the common case: HEADERS and the whole body in one DATA frame, one write
            h._data_to_send += pre[0] + sid4 + pre[1] + pre[2] + sid4 + body
            h.outbound_flow_control_window -= body_len
            self._fast_done(h, sid)
            return
        h._data_to_send += pre[0] + sid4 + pre[1]
        self._fast_body[sid] = memoryview(body)
        self._fast_send_body(h, sid)

    def _fast_send_body(self, h: _H2, sid: int) -> None:
        data = self._fast_body[sid]
        window = self._fast[sid]
        out = h._data_to_send
        while data:
            n = min(window, h.outbound_flow_control_window, h.max_outbound_frame_size, len(data))
            if n <= 0:
                break
            last = n == len(data)
            out += _frame_header(n, 0, 0x01 if last else 0, sid)
            out += data[:n]
            data = data[n:]
            window -= n
            h.outbound_flow_control_window -= n
        if data:
            self._fast_body[sid] = data
            self._fast[sid] = window
        else:
            del self._fast_body[sid]
            self._fast_done(h, sid)

    def _fast_done(self, h: _H2, sid: int) -> None:
        self._fast.pop(sid, None)
        h._closed_streams[sid] = StreamClosedBy.SEND_END_STREAM

    def _fast_windows(self, h: _H2, delta: int) -> None:
        """RFC 9113 §6.9.2: SETTINGS_INITIAL_WINDOW_SIZE changes every open stream's window."""
        for sid in self._fast:
            self._fast[sid] += delta
        for sid in list(self._fast_body):
            self._fast_send_body(h, sid)

    def _feed_h2(self, data: bytes) -> list[Event]:
        h = self._h2
        if h is None:  # pragma: no cover - guarded by the caller
            return []
        out: list[Event] = []
        refused = h.refused
        try:
            events = h.receive_data(data)
        except H2ProtocolError as e:
            # h2 queued its GOAWAY (with the error code it chose) before raising
            self._closed = True
            code = getattr(e, "error_code", ErrorCodes.PROTOCOL_ERROR)
            label = _code_label(code)
            self._open.clear()
            self._refusing.clear()
            self._pending_data.clear()
            return [
                ProtocolErrorOccurred(error=label, detail=str(e) or type(e).__name__, fatal=True),
                ConnectionClosed(reason=label),
            ]
        if h.refused != refused:
            out.append(
                ProtocolErrorOccurred(
                    error="refused_stream",
                    detail=f"over SETTINGS_MAX_CONCURRENT_STREAMS {self.limits.max_concurrent_streams}",
                    fatal=False,
                )
            )
        for ev in events:
            if isinstance(ev, H2RequestReceived):
                sid = ev.stream_id or 0
                if self._goaway_last is not None and sid > self._goaway_last:
                    # after our GOAWAY: not processed (the client may retry it elsewhere)
                    self._h2_safe(lambda h, s=sid: h.reset_stream(s, ErrorCodes.REFUSED_STREAM))
                    continue
                fields = list(ev.headers or ())
                st = _Stream(fields, self._body_limit_h2(fields) if ev.stream_ended is None else 0)
                self._streams[sid] = st
                if ev.stream_ended is not None:
                    done = self._h2_request(sid, st)
                    if done is not None:
                        out.append(done)
                elif self.limits.stream_body is not None:
                    started = self._h2_started(sid, st)
                    if started is not None:
                        out.append(started)
            elif isinstance(ev, DataReceived):
                sid = ev.stream_id or 0
                n = ev.flow_controlled_length or 0
                st2 = self._streams.get(sid)
                if st2 is not None and st2.streamed:
                    out += self._h2_body(sid, st2, ev.data or b"", n, ev.stream_ended is not None)
                    continue
                if n:
                    self._h2_safe(lambda h, n=n, s=sid: h.acknowledge_received_data(n, s))
                if st2 is not None and not st2.too_large:
                    st2.body += ev.data or b""
                    if len(st2.body) > st2.limit:
                        st2.too_large = True
                if ev.stream_ended is not None and st2 is not None:
                    done = self._h2_request(sid, st2)
                    if done is not None:
                        out.append(done)
            elif isinstance(ev, StreamEnded):
                st3 = self._streams.get(ev.stream_id or 0)
                if st3 is not None:
                    done = self._h2_request(ev.stream_id or 0, st3)
                    if done is not None:
                        out.append(done)
            elif isinstance(ev, H2StreamReset):
                sid = ev.stream_id or 0
                self._streams.pop(sid, None)
                self._pending_data.pop(sid, None)
                self._refusing.discard(sid)
                if self._body_at:
                    self._body_done(sid)
                if sid in self._open:
                    self._open.discard(sid)
                    out.append(StreamReset(stream_id=sid, error_code=int(ev.error_code or 0)))
            elif isinstance(ev, RemoteSettingsChanged):
                self._remote_settings_seen = True
                self._peer_window = h.remote_settings.initial_window_size
                iw = ev.changed_settings.get(SettingCodes.INITIAL_WINDOW_SIZE)
                if self._fast and iw is not None and iw.original_value is not None:
                    self._fast_windows(h, iw.new_value - iw.original_value)
                self._send_pending()
            elif isinstance(ev, WindowUpdated):
                self._send_pending()
                if self._fast_body and not ev.stream_id:
                    for fsid in list(self._fast_body):
                        self._fast_send_body(h, fsid)
            elif isinstance(ev, PingAckReceived):
                if ev.ping_data == _DRAIN_PING and self._drain_at is not None:
                    out += self._final_goaway()
            elif isinstance(ev, ConnectionTerminated):
                self._closed = True
                self._open.clear()
                self._refusing.clear()
                code = int(ev.error_code or 0)
                if code:
                    out.append(
                        ProtocolErrorOccurred(
                            error="peer_" + _code_label(code), detail="GOAWAY from the peer", fatal=True
                        )
                    )
                out.append(ConnectionClosed(reason="goaway"))
                return out
        return out

    def _body_limit(self, method: str, target: str, fields: Sequence[tuple[bytes, bytes]]) -> int:
        decide = self.limits.body_limit
        if decide is None:
            return self.limits.max_body
        return min(self.limits.max_body, decide(method, target, fields))

    def _body_limit_h2(self, fields: list[tuple[bytes, bytes]]) -> int:
        if self.limits.body_limit is None:
            return self.limits.max_body
        method = target = ""
        regular = []
        for name, value in fields:
            if name == b":method":
                method = value.decode("latin-1")
            elif name == b":path":
                target = value.decode("latin-1")
            elif name[:1] != b":":
                regular.append((name, value))
        return self._body_limit(method, target, regular)

    def _h2_started(self, sid: int, st: _Stream) -> RequestStarted | None:
        """A request whose body follows: handed up now when ``stream_body`` picks it."""
        decide = self.limits.stream_body
        method, target, regular, authority = _split_request(st.headers)
        if decide is None or not decide(method, target, regular):
            return None
        st.streamed = True
        self._open.add(sid)
        self._body_at[sid] = self._now
        self._body_held[sid] = 0
        return RequestStarted(
            stream_id=sid,
            method=method,
            target=target,
            headers=regular,
            version=HttpVersion.H2,
            authority=authority,
        )

    def _h2_body(self, sid: int, st: _Stream, data: bytes, n: int, ended: bool) -> list[Event]:
        """A DATA frame of a streamed body. Its octets are acknowledged (window reopened) only when
        the service has taken them (:meth:`body_consumed`); padding, bodies over the limit and
        bodies nobody waits for any more (answered early) at once."""
        out: list[Event] = []
        wanted = sid in self._open and not st.too_large
        if wanted:
            st.received += len(data)
            if st.received > st.limit:
                st.too_large = True
                wanted = False
                out += self._refuse(sid, st.limit)
        ack = n - len(data) if wanted else n
        if ack > 0:
            self._h2_safe(lambda h: h.acknowledge_received_data(ack, sid))
        if n and sid in self._body_at:
            self._body_at[sid] = self._now
        if wanted and data:
            self._body_held[sid] = self._body_held.get(sid, 0) + len(data)
            out.append(BodyReceived(stream_id=sid, data=data))
        if ended:
            done = self._h2_request(sid, st)
            if done is not None:
                out.append(done)
        return out

    def _refuse(self, sid: int, limit: int) -> list[Event]:
        """A streamed body went over its limit: from now on the core owns the answer (413 when the
        body ends; the service's is ignored), and the refusal is reported once, now."""
        self._open.discard(sid)
        self._refusing.add(sid)
        return [
            BodyAborted(stream_id=sid, reason="too_large"),
            ProtocolErrorOccurred(error="body_too_large", detail=f"over {limit}", fatal=False),
        ]

    def _h2_request(self, sid: int, st: _Stream) -> Event | None:
        if self._streams.pop(sid, None) is None:
            return ProtocolErrorOccurred(error="internal", detail="stream ended twice", fatal=False)
        if st.streamed:
            self._body_done(sid)
            if st.too_large:  # reported when it went over (_refuse)
                if sid in self._refusing:
                    self._refusing.discard(sid)
                    self._respond_h2(sid, 413, *self.limits.too_large, False)
                return None
            return BodyEnded(stream_id=sid)
        method = target = authority = ""
        regular: list[tuple[bytes, bytes]] = []
        for name, value in st.headers:
            if name[:1] == b":":
                if name == b":method":
                    method = value.decode("latin-1")
                elif name == b":path":
                    target = value.decode("latin-1")
                elif name == b":authority":
                    authority = value.decode("latin-1")
            else:
                regular.append((name, value))
        self._open.add(sid)
        if st.too_large:
            self._respond_h2(sid, 413, *self.limits.too_large, False)
            self._open.discard(sid)
            return ProtocolErrorOccurred(error="body_too_large", detail=f"over {st.limit}", fatal=False)
        return RequestReceived(
            stream_id=sid,
            method=method,
            target=target,
            headers=tuple(regular),
            body=bytes(st.body),
            version=HttpVersion.H2,
            authority=authority,
        )

    def _respond_h2(
        self, sid: int, status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes, head: bool
    ) -> None:
        h = self._h2
        if h is None or self._closed:
            return
        fields = [(b":status", str(status).encode()), *headers, (b"content-length", str(len(body)).encode())]
        try:
            if head or not body:
                h.send_headers(sid, fields, end_stream=True)
                return
            h.send_headers(sid, fields)
        except (H2ProtocolError, StreamClosedError):
            return
        self._pending_data[sid] = memoryview(body)
        self._send_pending(sid)

    def _send_pending(self, only: int | None = None) -> None:
        h = self._h2
        if h is None or not self._pending_data:
            return
        for sid in [only] if only is not None else list(self._pending_data):
            data = self._pending_data.get(sid)
            if data is None:
                continue
            try:
                while data:
                    n = min(h.local_flow_control_window(sid), h.max_outbound_frame_size, len(data))
                    if n <= 0:
                        break
                    h.send_data(sid, data[:n].tobytes(), end_stream=n == len(data))
                    data = data[n:]
            except (H2ProtocolError, StreamClosedError):
                data = memoryview(b"")
            if data:
                self._pending_data[sid] = data
            else:
                del self._pending_data[sid]

    # -- HTTP/1.1 ------------------------------------------------------------------------------------
    def _start_h1(self) -> None:
        self.version = HttpVersion.HTTP11
        self._h1 = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_list_size)

    def _receive_h1(self, data: bytes) -> list[Event]:
        c = self._h1
        if c is None:  # pragma: no cover
            return []
        if (
            self._fast_on
            and not self._open
            and data
            and c.our_state is h11.IDLE
            and c.their_state is h11.IDLE
            and not c.trailing_data[0]
        ):
            parsed = parse_request(data, self.limits.max_header_list_size)
            if parsed is not None:
                return [self._h1_fast_request(data, parsed)]
        c.receive_data(data)  # (behind a fast request not answered yet: held by h11, IDLE)
        return self._h1_events()

    def _h1_fast_request(self, data: bytes, parsed: Parsed) -> RequestReceived:
        method, target, fields, host = parsed
        self._h1_counter += 1
        self._h1_fast = data
        self._open.add(self._h1_counter)
        return RequestReceived(
            stream_id=self._h1_counter,
            method=method.decode("latin-1"),
            target=target.decode("latin-1"),
            headers=fields,
            body=b"",
            version=HttpVersion.HTTP11,
            authority=host.decode("latin-1"),
        )

    def _h1_fast_respond(
        self, status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes, head: bool
    ) -> bool:
        """Answer the fast request; False: h11 must write this answer, and now knows the request."""
        req = self._h1_fast
        c = self._h1
        if req is None or c is None:  # pragma: no cover - guarded by the caller
            return False
        self._h1_fast = None
        out = encode_response(
            status, _REASONS.get(status, b""), headers, body, head=head, close=self._h1_closing
        )
        rest, eof = c.trailing_data
        if out is None:
            # replay: a fresh h11 reads the request (then what came behind it) and writes the answer
            c = self._h1 = h11.Connection(
                h11.SERVER, max_incomplete_event_size=self.limits.max_header_list_size
            )
            c.receive_data(req + rest)
            if eof:
                c.receive_data(b"")
            c.next_event()  # the Request
            c.next_event()  # its EndOfMessage
            return False
        self._out += out
        if self._h1_closing:
            self._closed = True
        elif rest or eof:
            self._h1_followup = True  # the next request, waiting in h11
        return True

    def _h1_events(self) -> list[Event]:
        c = self._h1
        out: list[Event] = []
        if c is None:  # pragma: no cover
            return out
        while not self._closed:
            if self._open and not self._h1_streaming:
                return out  # one request at a time: the rest waits in h11's buffer
            try:
                ev = c.next_event()
            except h11.RemoteProtocolError as e:
                status = e.error_status_hint or 400
                out.append(ProtocolErrorOccurred(error="bad_request", detail=str(e), fatal=True))
                if c.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    self._h1_send(
                        h11.Response(
                            status_code=status,
                            headers=[(b"content-length", b"0"), (b"connection", b"close")],
                            reason=_REASONS.get(status, b""),
                        )
                    )
                    self._h1_send(h11.EndOfMessage())
                self._closed = True
                out.append(ConnectionClosed(reason="bad_request"))
                return out
            if ev is h11.NEED_DATA:
                return out
            if ev is h11.PAUSED:
                if c.our_state is h11.DONE and c.their_state is h11.DONE:
                    c.start_next_cycle()
                    continue
                if c.our_state is h11.MUST_CLOSE or c.their_state is h11.MUST_CLOSE:
                    self._closed = True
                    out.append(ConnectionClosed(reason="done"))
                return out
            t = type(ev)
            if t is h11.Request:
                self._h1_counter += 1
                self._h1_req = ev  # type: ignore[assignment]
                self._h1_body = bytearray()
                self._h1_too_large = False
                self._h1_limit = self._body_limit(
                    ev.method.decode("latin-1"),  # type: ignore[union-attr]
                    ev.target.decode("latin-1"),  # type: ignore[union-attr]
                    list(ev.headers),  # type: ignore[union-attr]
                )
                started = self._h1_started(ev)  # type: ignore[arg-type]
                if started is not None:
                    out.append(started)
            elif t is h11.Data and self._h1_streaming:
                sid = self._h1_counter
                if sid in self._body_at:
                    self._body_at[sid] = self._now
                if sid in self._open and not self._h1_too_large:
                    data = bytes(ev.data)  # type: ignore[union-attr]
                    self._h1_received += len(data)
                    if self._h1_received > self._h1_limit:
                        self._h1_too_large = True
                        out += self._refuse(sid, self._h1_limit)
                    elif data:
                        self._body_held[sid] = self._body_held.get(sid, 0) + len(data)
                        out.append(BodyReceived(stream_id=sid, data=data))
            elif t is h11.Data:
                if not self._h1_too_large:
                    self._h1_body += ev.data  # type: ignore[union-attr]
                    if len(self._h1_body) > self._h1_limit:
                        self._h1_too_large = True
            elif t is h11.EndOfMessage:
                req = self._h1_req
                if req is None:  # pragma: no cover - h11 sends Request before EndOfMessage
                    continue
                sid = self._h1_counter
                if self._h1_streaming:
                    self._h1_streaming = False
                    self._body_done(sid)
                    if not self._h1_too_large:
                        out.append(BodyEnded(stream_id=sid))
                    elif sid in self._refusing:  # reported when it went over (_refuse)
                        self._refusing.discard(sid)
                        self._respond_h1(413, *self.limits.too_large, False)
                    continue  # (or answered before its body was over)
                self._open.add(sid)
                if self._h1_too_large:
                    self._respond_h1(413, *self.limits.too_large, False)
                    self._open.discard(sid)
                    out.append(
                        ProtocolErrorOccurred(
                            error="body_too_large", detail=f"over {self._h1_limit}", fatal=False
                        )
                    )
                    continue
                settings = _h2c_settings(req)
                if settings is not None:
                    out += self._upgrade_h2c(req, settings)
                    return out
                out.append(self._h1_request_event(req))
            elif t is h11.ConnectionClosed:
                self._closed = True
                self._open.clear()
                self._refusing.clear()
                out.append(ConnectionClosed(reason="eof"))
                return out
        return out

    def _h1_started(self, req: h11.Request) -> RequestStarted | None:
        """A request with a body that ``stream_body`` picks: handed up at its head (a client
        waiting for ``100 Continue`` gets it). An offer to upgrade to h2c is not taken."""
        decide = self.limits.stream_body
        c = self._h1
        if decide is None or c is None or c.their_state is not h11.SEND_BODY:
            return None
        method = req.method.decode("latin-1")
        target = req.target.decode("latin-1")
        if not decide(method, target, list(req.headers)):
            return None
        self._h1_streaming = True
        self._h1_received = 0
        sid = self._h1_counter
        self._open.add(sid)
        self._body_at[sid] = self._now
        self._body_held[sid] = 0
        if c.they_are_waiting_for_100_continue:
            self._h1_send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
        authority = next((v.decode("latin-1") for n, v in req.headers if n == b"host"), "")
        return RequestStarted(
            stream_id=sid,
            method=method,
            target=target,
            headers=tuple((bytes(n), bytes(v)) for n, v in req.headers),
            version=HttpVersion.HTTP11,
            authority=authority,
        )

    def _upgrade_h2c(self, req: h11.Request, settings: bytes) -> list[Event]:
        """101, then HTTP/2 with ``req`` as stream 1 (module docstring)."""
        c = self._h1
        assert c is not None
        try:
            self._h1_send(
                h11.InformationalResponse(
                    status_code=101,
                    headers=[(b"connection", b"Upgrade"), (b"upgrade", b"h2c")],
                    reason=b"Switching Protocols",
                )
            )
        except h11.LocalProtocolError:  # h11 did not see an upgrade offer: answer over HTTP/1.1
            return [self._h1_request_event(req)]
        rest, _closed = c.trailing_data
        self._h1 = None
        self._open.clear()
        self._refusing.clear()
        try:
            self._start_h2(settings)
        except H2ProtocolError as e:  # settings out of range (RFC 9113 §6.5.2)
            self._closed = True
            return [
                ProtocolErrorOccurred(error="protocol_error", detail=f"HTTP2-Settings: {e}", fatal=True),
                ConnectionClosed(reason="protocol_error"),
            ]
        self.version = HttpVersion.H2
        self._open.add(1)
        out: list[Event] = [self._h1_request_event(req, stream_id=1)]
        if rest:
            out += self._receive_h2(bytes(rest))
        return out

    def _h1_request_event(self, req: h11.Request, stream_id: int | None = None) -> RequestReceived:
        """The request h11 read; ``stream_id`` given: it became that HTTP/2 stream (h2c upgrade),
        without the HTTP/1.1 connection-specific fields (RFC 9113 §8.2.2)."""
        authority = ""
        for n, v in req.headers:
            if n == b"host":
                authority = v.decode("latin-1")
        headers = tuple((bytes(n), bytes(v)) for n, v in req.headers)
        if stream_id is not None:
            headers = tuple((n, v) for n, v in headers if n not in _H1_ONLY)
        return RequestReceived(
            stream_id=self._h1_counter if stream_id is None else stream_id,
            method=req.method.decode("latin-1"),
            target=req.target.decode("latin-1"),
            headers=headers,
            body=bytes(self._h1_body),
            version=HttpVersion.HTTP11 if stream_id is None else HttpVersion.H2,
            authority=authority,
        )

    def _h1_send(self, ev: h11.Response | h11.InformationalResponse | h11.Data | h11.EndOfMessage) -> None:
        c = self._h1
        if c is None:  # pragma: no cover
            return
        data = c.send(ev)
        if data:
            self._out += data

    def _respond_h1(
        self, status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes, head: bool
    ) -> None:
        if self._h1_fast is not None and self._h1_fast_respond(status, headers, body, head):
            return
        c = self._h1
        if c is None or c.our_state != h11.SEND_RESPONSE:
            return
        fields = [*headers, (b"content-length", str(len(body)).encode())]
        if self._h1_closing:
            fields.append((b"connection", b"close"))
        try:
            self._h1_send(h11.Response(status_code=status, headers=fields, reason=_REASONS.get(status, b"")))
            if body and not head:
                self._h1_send(h11.Data(data=body))
            self._h1_send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            self._closed = True
            return
        state: object = c.our_state  # (mypy narrowed it to SEND_RESPONSE above)
        if self._h1_closing or state is h11.MUST_CLOSE:
            self._closed = True
            return
        # the next pipelined request, if h11 holds one, is handed up by the next receive_data;
        # let the caller see it now
        self._h1_followup = True

    def pending_events(self) -> list[Event]:
        """Events that became ready without new bytes: on HTTP/1.1, a pipelined request h11 held
        while the previous one was answered. Call after answering; [] on HTTP/2."""
        if self._h1 is None or self._closed or not self._h1_followup:
            return []
        self._h1_followup = False
        return self._h1_events()


_H1_ONLY = frozenset(
    (
        b"connection",
        b"upgrade",
        b"http2-settings",
        b"host",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
    )
)


def _h2c_settings(req: h11.Request) -> bytes | None:
    """The ``HTTP2-Settings`` (padded base64url) of an HTTP/1.1 request offering ``Upgrade: h2c``
    (RFC 7540 §3.2: exactly one such field, named in Connection with ``Upgrade``), else None."""
    upgrade = connection = b""
    settings: list[bytes] = []
    for n, v in req.headers:
        if n == b"upgrade":
            upgrade += b"," + v.lower()
        elif n == b"connection":
            connection += b"," + v.lower()
        elif n == b"http2-settings":
            settings.append(bytes(v))
    if b"h2c" not in [t.strip() for t in upgrade.split(b",")] or len(settings) != 1:
        return None
    tokens = [t.strip() for t in connection.split(b",")]
    if b"upgrade" not in tokens or b"http2-settings" not in tokens:
        return None
    value = settings[0].strip()
    try:  # token68 base64url, padding optional (RFC 7540 §3.2.1)
        raw = base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) % 6:
        return None
    return value + b"=" * (-len(value) % 4)


_Parsed = tuple[str, str, tuple[tuple[bytes, bytes], ...], str]
"""(method, target, regular fields, authority) of a request."""


def _split_request(fields: list[tuple[bytes, bytes]]) -> _Parsed:
    method = target = authority = ""
    regular: list[tuple[bytes, bytes]] = []
    for name, value in fields:
        if name[:1] == b":":
            if name == b":method":
                method = value.decode("latin-1")
            elif name == b":path":
                target = value.decode("latin-1")
            elif name == b":authority":
                authority = value.decode("latin-1")
        else:
            regular.append((name, value))
    return method, target, tuple(regular), authority


def _event_factory() -> Any:
    """``(sid, method, target, headers, authority)`` → a :class:`RequestReceived` of an HTTP/2 GET
    with no body, filled through the slot descriptors: the frozen dataclass ``__init__`` costs an
    ``object.__setattr__`` per field, several µs an event (as :func:`eir.model.request_factory`)."""
    names = [f.name for f in dataclasses.fields(RequestReceived)]
    if names != ["stream_id", "method", "target", "headers", "body", "version", "authority"]:
        raise RuntimeError(f"RequestReceived fields changed: {names}")  # pragma: no cover
    s_sid, s_method, s_target, s_headers, s_body, s_version, s_authority = (
        getattr(RequestReceived, n).__set__ for n in names
    )
    new = object.__new__
    h2v = HttpVersion.H2

    def make(
        sid: int, method: str, target: str, headers: tuple[tuple[bytes, bytes], ...], authority: str
    ) -> Any:
        ev = new(RequestReceived)
        s_sid(ev, sid)
        s_method(ev, method)
        s_target(ev, target)
        s_headers(ev, headers)
        s_body(ev, b"")
        s_version(ev, h2v)
        s_authority(ev, authority)
        return ev

    return make


_h2_request_event = _event_factory()


def _frame_header(length: int, ftype: int, flags: int, sid: int) -> bytes:
    return length.to_bytes(3, "big") + bytes((ftype, flags)) + sid.to_bytes(4, "big")


def _code_label(code: int) -> str:
    try:
        return ErrorCodes(code).name.lower()
    except ValueError:
        return f"error_{code}"
