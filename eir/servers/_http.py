"""The HTTP server layer shared by the SBI interfaces (N5g-eir) and, later, the admin API: TCP
listeners and one asyncio protocol per connection around :class:`protocols.http.HttpServerConnection`
(HTTP/2 with prior knowledge and HTTP/1.1 on the same port).

A service subclasses :class:`HttpConnection` and implements :meth:`HttpConnection.on_request`
(answer with :meth:`HttpConnection.respond`, now or later) — for checks through
:meth:`CoreProtocol._dispatch <eir.servers._adapter.CoreProtocol._dispatch>` and ``_answer`` like
every adapter. This layer:

* feeds bytes to the core and writes what it queued once per ``data_received`` (or once per loop
  turn for answers completed by Tasks: the dispatch path's flush rule);
* counts refused input in ``eir_protocol_errors{interface, error}`` with one warning log line each
  (never a crash: an unexpected exception closes that connection, logged and counted ``internal``);
* drops answers to streams the client reset;
* streamed request bodies (``HttpLimits.stream_body``): :meth:`HttpConnection.on_request_started`
  gets a :class:`RequestBody` to read the chunks from as they arrive. At most
  :data:`BODY_HIGH_WATER` octets wait in it per connection on HTTP/1.1 (reading is paused above
  it, resumed below half), and on HTTP/2 at most the stream's flow-control window
  (``initial_window_size``): the window reopens only as the service reads;
* on HTTP/1.1 hands up the next pipelined request once the previous one is answered;
* with ``sniff_tls`` (``n5g.tls_sniff``) the cleartext addresses also take TLS: the first byte of
  a connection decides (0x16, a TLS handshake record, RFC 8446 §5.1; a cleartext HTTP request or
  the HTTP/2 preface never starts with it), peeked before any protocol sees the connection;
* shutdown: stop listening, GOAWAY on every connection in RFC 9113 §6.8's two steps (the streams
  received before the final one are answered), wait until they are or ``grace`` ends, then close.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from eir.config import parse_hostport
from eir.logging import RateLimitedLog, get_logger
from eir.metrics import PEER_EVENTS, PEERS, PROTOCOL_ERRORS
from eir.model import Checker
from eir.servers._adapter import CoreProtocol
from eir.servers._listen import Listeners, bound_addresses, open_listeners
from eir.servers._trust import ConnectionLimiter, source_ip
from protocols.http import (
    BodyAborted,
    BodyEnded,
    BodyReceived,
    ConnectionClosed,
    HttpLimits,
    HttpServerConnection,
    HttpVersion,
    ProtocolErrorOccurred,
    RequestReceived,
    RequestStarted,
    StreamReset,
)

__all__ = [
    "BODY_HIGH_WATER",
    "PIPELINE_HIGH_WATER",
    "BodyAbortedError",
    "HttpConnection",
    "HttpServer",
    "RequestBody",
    "SniffingListener",
    "server_tls_context",
]

BODY_HIGH_WATER = 256 * 1024
"""Octets of a streamed HTTP/1.1 body waiting to be read above which the connection stops reading."""
PIPELINE_HIGH_WATER = 64 * 1024
"""Octets an HTTP/1.1 client may pipeline behind a request not answered yet before the connection
stops reading (until the answer lets the core take the next request)."""

_TLS_HANDSHAKE = 0x16
_SNIFF_TIMEOUT = 10.0
"""Seconds an accepted connection may stay silent before its first byte decides TLS or not."""
_SNIFF_PENDING = 1024
"""Connections waiting for their first byte at once; more are closed at accept."""


class BodyAbortedError(Exception):
    """A streamed request body will not be complete: ``reason`` is ``too_large`` (the core answers
    413 and ignores the service's answer), ``timeout`` (no octet of it for the idle timeout: the
    core answered 408), ``reset`` (the client cancelled the stream) or ``closed`` (the connection
    went)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RequestBody:
    """The body of one streamed request, read chunk by chunk (:meth:`read`) as it arrives. What is
    queued is bounded by the flow control of the connection (module docstring); each chunk read is
    given back to the core (HTTP/2 WINDOW_UPDATE) or lets the connection read again (HTTP/1.1)."""

    def __init__(self, conn: HttpConnection, stream_id: int) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self._chunks: deque[bytes] = deque()
        self.queued = 0
        """Octets received and not read yet."""
        self.received = 0
        self.ended = False
        self.error: str | None = None
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self.queued += len(data)
        self.received += len(data)
        self._wake()

    def _end(self) -> None:
        self.ended = True
        self._wake()

    def _abort(self, reason: str) -> None:
        if self.error is None and not self.ended:
            self.error = reason
        dropped = self.queued
        self._chunks.clear()
        self.queued = 0
        if dropped:
            # given back as if read: else the HTTP/2 connection window shrinks for good, or
            # HTTP/1.1 reading stays paused
            self._conn._body_taken(self, dropped)
        self._wake()

    @property
    def done(self) -> bool:
        """Ended or aborted: nothing more will come."""
        return self.ended or self.error is not None

    async def read(self) -> bytes:
        """The next chunk; ``b""`` once the body is complete. Raises :class:`BodyAbortedError`."""
        while True:
            if self.error is not None:
                raise BodyAbortedError(self.error)
            if self._chunks:
                data = self._chunks.popleft()
                self.queued -= len(data)
                self._conn._body_taken(self, len(data))
                return data
            if self.ended:
                return b""
            self._waiter = self._conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def drain(self) -> None:
        """Read and drop the rest (an answer made before the body was read), so that the
        connection's flow control keeps moving."""
        with contextlib.suppress(BodyAbortedError):
            while await self.read():
                pass


class HttpConnection(CoreProtocol):
    """One client connection. Subclasses implement :meth:`on_request`."""

    server: HttpServer

    def __init__(self, server: HttpServer) -> None:
        self._init_plumbing(server.max_in_flight, server.checker)
        self.server = server
        self.core: HttpServerConnection | None = None
        self.peer = "?"
        self.peer_host = ""
        self.log = server.log
        self.closed = asyncio.Event()
        self._draining = False
        self._counted = False
        self.admitted = False
        self.source: str | None = None
        self.connected_at = 0.0
        self.requests = 0
        """Requests received on this connection (reported by the admin API's peers)."""
        self.bodies: dict[int, RequestBody] = {}
        """Streamed request bodies still arriving."""

    def _core(self) -> HttpServerConnection | None:
        return self.core

    # -- to provide ---------------------------------------------------------------------------
    def on_request(self, ev: RequestReceived) -> None:
        raise NotImplementedError

    def on_request_started(self, ev: RequestStarted, body: RequestBody) -> None:
        """A request whose body is streamed (``HttpLimits.stream_body``): answer with
        :meth:`respond` once ``body`` is read. Default: refused (the service streams nothing)."""
        core = self.core
        if core is not None:
            core.reset_stream(ev.stream_id)

    # -- streamed bodies ------------------------------------------------------------------------
    def _body_taken(self, body: RequestBody, n: int) -> None:
        core = self.core
        if core is None or self.failed:
            return
        core.body_consumed(body.stream_id, n)
        if core.version is HttpVersion.H2:
            self._schedule_flush()  # the WINDOW_UPDATE, if h2 made one
        elif self.body_paused and self._body_queued() <= BODY_HIGH_WATER // 2:
            self.body_paused = False
            self._update_reading()

    def _body_queued(self) -> int:
        return sum(b.queued for b in self.bodies.values())

    def _abort_bodies(self, reason: str) -> None:
        for body in self.bodies.values():
            self._body_gone(body, reason)
        self.bodies.clear()

    def _body_gone(self, body: RequestBody, reason: str) -> None:
        """The client gave up on a streamed body (reset, or the connection went; counted
        ``eir_protocol_errors{error="body_aborted"}``) or stalled it (``timeout``, counted
        ``body_timeout``): logged at a bounded rate; its reader gets :class:`BodyAbortedError`."""
        body._abort(reason)
        label = "body_timeout" if reason == "timeout" else "body_aborted"
        self.server.protocol_error(label).inc()
        self.server.rate_log.warning(
            self.log,
            label,
            "http_" + label,
            reason=reason,
            stream=body.stream_id,
            received=body.received,
        )

    # -- answering ------------------------------------------------------------------------------
    def respond(
        self,
        ev: RequestReceived | RequestStarted,
        status: int,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        core = self.core
        if core is None or self.failed:
            return
        core.send_response(ev.stream_id, status, headers, body, head=ev.method == "HEAD")
        if core.version is HttpVersion.HTTP11 and not self._draining:
            # the next pipelined request (h11 holds one at a time), without recursion
            self._draining = True
            try:
                while True:
                    more = core.pending_events()
                    if not more:
                        break
                    self._handle(more)
            finally:
                self._draining = False
        if core.closed and core.idle:
            self._schedule_close()

    def _on_timer(self) -> None:
        super()._on_timer()  # the core's idle deadline: it may have closed (GOAWAY queued, flushed)
        core = self.core
        if core is not None and core.closed and core.idle:
            self._close_transport()

    def _schedule_close(self) -> None:
        # after this turn's flush: the answer leaves first
        self.loop.call_soon(self._flush_and_close)

    def _flush_and_close(self) -> None:
        if not self.failed:
            with contextlib.suppress(Exception):
                self._flush()
        self._close_transport()

    # -- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        limiter = self.server.limiter
        if limiter is not None:
            self.source = source_ip(transport)
            if not limiter.admit(self.source):  # refused (counted and logged by the limiter)
                transport.abort()  # type: ignore[attr-defined]
                return
        self.admitted = True
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer_host = str(peer[0])
            self.peer = f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"
        with contextlib.suppress(OSError, AttributeError):
            s = transport.get_extra_info("socket")
            if s is not None:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.core = HttpServerConnection(self.server.limits)
        self.core.start(self.loop.time())
        self.log = self.server.log.bind(peer=self.peer)
        self.server.connections.add(self)
        self.server.peer_gauge.inc()
        self.connected_at = time.time()
        self._counted = True
        self.server.peer_events("connected").inc()
        if self.server.debug:
            self.log.debug("http_connected")
        if self.server.closing:  # accepted while shutting down
            self._handle(self.core.close(self.loop.time()))
        self._flush()  # (arms the idle timer)

    def data_received(self, data: bytes) -> None:
        core = self.core
        if core is None or self.failed:
            return
        try:
            events = core.receive_data(data, self.loop.time())
            if events:
                self._handle(events)
            self._flush()
            if core.closed and core.idle:
                self._close_transport()
            elif core.input_backlog > PIPELINE_HIGH_WATER:
                self._update_reading()
        except Exception:
            self._internal_error(data)

    def _input_backlogged(self) -> bool:
        core = self.core
        return core is not None and core.input_backlog > PIPELINE_HIGH_WATER

    def _flush(self) -> None:
        super()._flush()
        if self.reading_paused and not self._input_backlogged():
            self._update_reading()  # an answer let the core take the pipelined backlog

    def eof_received(self) -> bool | None:
        core = self.core
        if core is not None and not self.failed:
            try:
                self._handle(core.receive_data(b"", self.loop.time()))
                self._flush()
            except Exception:
                self._internal_error(b"")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.admitted:
            return  # refused at accept: never counted
        if self.server.limiter is not None:
            self.server.limiter.release(self.source)
        self._cancel_timer()
        self._abort_bodies("closed")
        for t in self.tasks:
            t.cancel()
        self.server.connections.discard(self)
        if self._counted:
            self.server.peer_gauge.dec()
            self._counted = False
        self.server.peer_events("disconnected").inc()
        if self.server.debug:
            self.log.debug("http_disconnected", error=str(exc) if exc else None)
        self.closed.set()

    def _internal_error(self, data: bytes) -> None:
        """Defence in depth: the core or a handler raised. Log with the input, count, close."""
        self.failed = True
        self.log.exception("http_internal_error", data=data[:64].hex())
        self.server.protocol_error("internal").inc()
        self._cancel_timer()
        self._close_transport()

    # -- events -------------------------------------------------------------------------------------
    def _handle(self, events: list[Any]) -> None:
        for ev in events:
            t = type(ev)
            if t is RequestReceived:
                self.requests += 1
                self.on_request(ev)
            elif t is BodyReceived:
                body = self.bodies.get(ev.stream_id)
                if body is not None:
                    body._feed(ev.data)
                    core = self.core
                    if (
                        core is not None
                        and core.version is HttpVersion.HTTP11
                        and not self.body_paused
                        and self._body_queued() > BODY_HIGH_WATER
                    ):
                        self.body_paused = True
                        self._update_reading()
                elif self.core is not None:
                    self.core.body_consumed(ev.stream_id, len(ev.data))
            elif t is BodyEnded:
                body = self.bodies.pop(ev.stream_id, None)
                if body is not None:
                    body._end()
            elif t is RequestStarted:
                self.requests += 1
                body = RequestBody(self, ev.stream_id)
                self.bodies[ev.stream_id] = body
                self.on_request_started(ev, body)
            elif t is BodyAborted:
                body = self.bodies.pop(ev.stream_id, None)
                if body is not None:
                    if ev.reason == "too_large":  # counted by the ProtocolErrorOccurred after it
                        body._abort(ev.reason)
                    else:
                        self._body_gone(body, ev.reason)
            elif t is StreamReset:
                body = self.bodies.pop(ev.stream_id, None)
                if body is not None:
                    self._body_gone(body, "reset")
            elif t is ProtocolErrorOccurred:
                self.server.protocol_error(ev.error).inc()
                self.log.warning("http_protocol_error", error=ev.error, detail=ev.detail, fatal=ev.fatal)
            elif t is ConnectionClosed:
                self._abort_bodies("closed")
                if self.server.debug:
                    self.log.debug("http_closing", reason=ev.reason)

    async def close(self, grace: float) -> None:
        """GOAWAY; answer what was received; close when done or after ``grace``."""
        core = self.core
        tr = self.transport
        if core is None or tr is None or tr.is_closing():
            return
        deadline = self.loop.time() + grace
        self._handle(core.close(self.loop.time()))
        self._flush()
        # until every received stream is answered and the final GOAWAY is out (RFC 9113 §6.8: it
        # follows the client's PING ACK, or the core's drain timer)
        while (not core.idle or core.draining) and self.loop.time() < deadline and not self.closed.is_set():
            if self.tasks:
                await asyncio.wait(set(self.tasks), timeout=max(0.0, deadline - self.loop.time()))
            else:
                await asyncio.sleep(0.01)  # an answer waits for the peer's flow-control window
        self._handle(core.close(self.loop.time()))
        with contextlib.suppress(Exception):
            self._flush()
        self._close_transport()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), max(0.1, deadline - self.loop.time()))
        if not self.closed.is_set():
            tr.abort()


def server_tls_context(
    cert: str, key: str, client_ca: str | None = None, keylog: str | None = None
) -> ssl.SSLContext:
    """TLS 1.2+ server context offering ALPN ``h2`` then ``http/1.1`` (RFC 9113 §3.2); mutual TLS
    when ``client_ca`` is given; session secrets appended to ``keylog`` (for Wireshark)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    if keylog:
        ctx.keylog_filename = keylog
    return ctx


class HttpServer:
    """Listeners and connections of one HTTP service (``key`` names its config section)."""

    def __init__(
        self,
        key: str,
        interface: str,
        listen: Sequence[str],
        factory: Callable[[HttpServer], HttpConnection],
        checker: Checker,
        *,
        limits: HttpLimits,
        max_in_flight: int,
        reuse_port: bool,
        debug: bool,
        tls_listen: Sequence[str] = (),
        ssl_context: ssl.SSLContext | None = None,
        limiter: ConnectionLimiter | None = None,
        sniff_tls: bool = False,
    ) -> None:
        self.name = key
        self.limiter = limiter
        """Connections held at once, in total and per source address (None: unbounded)."""
        self.tls_listen = list(tls_listen)
        self.ssl_context = ssl_context
        self.sniff_tls = sniff_tls and ssl_context is not None
        """``listen`` addresses take TLS and cleartext (module docstring)."""
        self.key = key
        self.interface = interface
        self.listen_addresses = list(listen)
        self.factory = factory
        self.checker = checker
        self.limits = limits
        self.max_in_flight = max_in_flight
        self.reuse_port = reuse_port
        self.debug = debug
        self.log = get_logger(interface=interface)
        self.rate_log = RateLimitedLog()
        self.listeners: Listeners = []
        self.connections: set[HttpConnection] = set()
        self.closing = False
        self.peer_gauge = PEERS.labels(interface)
        self._errors: dict[str, Any] = {}
        self._peer_events: dict[str, Any] = {}

    def protocol_error(self, label: str) -> Any:
        c = self._errors.get(label)
        if c is None:
            c = self._errors[label] = PROTOCOL_ERRORS.labels(self.interface, label)
        return c

    def peer_events(self, event: str) -> Any:
        c = self._peer_events.get(event)
        if c is None:
            c = self._peer_events[event] = PEER_EVENTS.labels(self.interface, event)
        return c

    def addresses(self) -> list[tuple[str, int, str]]:
        return bound_addresses(self.listeners)

    def peers(self) -> list[dict[str, Any]]:
        """The clients connected now (the admin API's ``GET /peers``)."""
        return [
            {
                "address": c.peer,
                "protocol": "h2c" if c.core is not None and c.core.version is HttpVersion.H2 else "http/1.1",
                "connected_at": c.connected_at,
                "requests": c.requests,
                "in_flight": len(c.tasks),
            }
            for c in list(self.connections)
        ]

    async def listen(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self.sniff_tls:
                assert self.ssl_context is not None
                for i, addr in enumerate(self.listen_addresses):
                    host, port = parse_hostport(addr, f"{self.key}.listen[{i}]")
                    self.listeners.append(
                        (
                            SniffingListener.open(
                                loop, host, port, lambda: self.factory(self), self, reuse_port=self.reuse_port
                            ),
                            "tcp",
                        )
                    )
            else:
                self.listeners += await open_listeners(
                    self.log,
                    self.key,
                    self.listen_addresses,
                    ["tcp"],
                    lambda _t: self.factory(self),
                    ppid=0,
                    reuse_port=self.reuse_port,
                    backlog=512,
                )
            for i, addr in enumerate(self.tls_listen):
                host, port = parse_hostport(addr, f"{self.key}.tls_listen[{i}]")
                srv = await loop.create_server(
                    lambda: self.factory(self),
                    host,
                    port,
                    ssl=self.ssl_context,
                    reuse_port=self.reuse_port or None,
                    backlog=512,
                )
                self.listeners.append((srv, "tls"))
        except BaseException:
            for listener, _ in self.listeners:
                listener.close()
            raise

    async def shutdown(self, grace: float) -> None:
        self.closing = True
        for srv, _ in self.listeners:
            srv.close()
        if self.connections:
            await asyncio.gather(*(c.close(grace) for c in list(self.connections)), return_exceptions=True)
        for srv, _ in self.listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1.0)


class SniffingListener:
    """A TCP listener whose connections are TLS or cleartext by their first byte (module
    docstring). Implements what the servers use of a listener (``sockets``, ``close``,
    ``wait_closed``): accepted sockets wait (at most :data:`_SNIFF_TIMEOUT` s, at most
    :data:`_SNIFF_PENDING` at once) for one byte, peeked with ``MSG_PEEK`` so that it is still
    there for the TLS layer or the HTTP core, then go to ``loop.connect_accepted_socket`` with or
    without the server's TLS context. A failed TLS handshake is counted
    (``eir_protocol_errors{error="tls_handshake"}``) and logged at a bounded rate."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        factory: Callable[[], asyncio.Protocol],
        server: HttpServer,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.factory = factory
        self.server = server
        self.pending: dict[socket.socket, asyncio.TimerHandle] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        loop.add_reader(sock.fileno(), self._accept)

    @classmethod
    def open(
        cls,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        factory: Callable[[], asyncio.Protocol],
        server: HttpServer,
        *,
        reuse_port: bool,
    ) -> SniffingListener:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=512, reuse_port=reuse_port)
        sock.setblocking(False)
        return cls(loop, sock, factory, server)

    @property
    def sockets(self) -> Sequence[socket.socket]:
        return [] if self.closed else [self.sock]

    def _accept(self) -> None:
        for _ in range(64):  # a bounded batch per readiness event
            try:
                conn, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and the like: logged, the listener stays
                self.server.log.warning("http_accept_failed", error=str(e))
                return
            if len(self.pending) >= _SNIFF_PENDING:
                self.server.protocol_error("sniff_overflow").inc()
                conn.close()
                continue
            conn.setblocking(False)
            self.pending[conn] = self.loop.call_later(_SNIFF_TIMEOUT, self._drop, conn)
            self.loop.add_reader(conn.fileno(), self._sniff, conn)

    def _forget(self, conn: socket.socket) -> None:
        timer = self.pending.pop(conn, None)
        if timer is not None:
            timer.cancel()
        with contextlib.suppress(Exception):
            self.loop.remove_reader(conn.fileno())

    def _drop(self, conn: socket.socket) -> None:
        self._forget(conn)
        conn.close()

    def _sniff(self, conn: socket.socket) -> None:
        try:
            first = conn.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        self._forget(conn)
        if not first:  # closed before a byte
            conn.close()
            return
        tls = first[0] == _TLS_HANDSHAKE
        task = self.loop.create_task(self._connect(conn, tls))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self, conn: socket.socket, tls: bool) -> None:
        try:
            await self.loop.connect_accepted_socket(
                self.factory,
                conn,
                ssl=self.server.ssl_context if tls else None,
                ssl_handshake_timeout=_SNIFF_TIMEOUT if tls else None,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as e:
            self.server.protocol_error("tls_handshake").inc()
            self.server.rate_log.warning(
                self.server.log, "tls_handshake", "tls_handshake_failed", error=str(e)[:200]
            )
            conn.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for conn in list(self.pending):
            self._drop(conn)
        for t in self.tasks:
            t.cancel()

    async def wait_closed(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
