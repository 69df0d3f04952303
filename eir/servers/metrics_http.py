"""``GET /metrics`` served from the event loop: a small HTTP/1.1 responder of our own.

prometheus_client's ``start_http_server`` spent a thread per connection with no read timeout (1,000
half-sent requests held 1,006 threads for over a minute) and answered 200 on any path. This one:

* answers ``GET`` / ``HEAD`` of ``/metrics`` (any query string) with
  ``prometheus_client.generate_latest(REGISTRY)`` in the text format 0.0.4 (what the library's own
  server answers a request without an OpenMetrics ``Accept``; no other format is offered), 404 for
  any other path, 405 (with ``Allow``) for any other method, 400 for what is not an HTTP/1.x
  request, 431 for a head over 8 KiB;
* keeps a connection alive between requests (HTTP/1.1, or 1.0 with ``Connection: keep-alive``), and
  closes one that takes more than ``metrics.read_timeout`` to send its request or stays idle that
  long;
* holds at most ``metrics.max_connections`` connections, ``metrics.max_connections_per_source`` from
  one address (more are closed at accept); refusals count in ``eir_refused{interface="metrics"}``.

A scrape renders the registry on the loop thread: a few milliseconds for this process's series.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from eir.config import Config, parse_hostport
from eir.logging import RateLimitedLog, get_logger
from eir.metrics import REFUSED, REGISTRY, register_metrics
from eir.servers._trust import ConnectionLimiter, source_ip

IFACE = "metrics"
MAX_HEAD = 8192

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
}


class _MetricsConnection(asyncio.Protocol):
    def __init__(self, server: MetricsServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self.admitted = False
        self.source: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.source = ip = source_ip(transport)
        if not self.server.limiter.admit(ip):
            transport.abort()  # type: ignore[attr-defined]
            return
        self.admitted = True
        self.server.connections.add(self)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.admitted:
            return
        self.server.limiter.release(self.source)
        self.server.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(self.server.read_timeout, self._timed_out)

    def _timed_out(self) -> None:
        self.timer = None
        if self.buf:  # a request begun and not finished in time (idle keep-alive closes silently)
            REFUSED.labels(IFACE, "read_timeout").inc()
            self.server.limited.warning(
                self.server.log, "metrics_read_timeout", "metrics_read_timeout", source=self.source
            )
        self.close()

    def close(self) -> None:
        tr = self.transport
        if tr is not None and not tr.is_closing():
            tr.close()

    def data_received(self, data: bytes) -> None:
        tr = self.transport
        if tr is None or tr.is_closing():
            return
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self._respond(431, b"request head too large\n", keep_alive=False)
                return
            if end > MAX_HEAD:
                self._respond(431, b"request head too large\n", keep_alive=False)
                return
            head = bytes(self.buf[:end])
            del self.buf[: end + 4]
            if not self._request(head):
                return
            self._arm()  # the next request (keep-alive) has read_timeout to arrive

    def _request(self, head: bytes) -> bool:
        """Answer one request; False when the connection is closing."""
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
        except ValueError:
            self._respond(400, b"bad request\n", keep_alive=False)
            return False
        if not version.startswith("HTTP/1."):
            self._respond(400, b"HTTP/1.x only\n", keep_alive=False)
            return False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                self._respond(400, b"bad header line\n", keep_alive=False)
                return False
            headers[name.strip().lower()] = value.strip()
        conn = headers.get("connection", "").lower()
        keep_alive = "keep-alive" in conn if version == "HTTP/1.0" else "close" not in conn
        if headers.get("transfer-encoding") or headers.get("content-length", "0") not in ("", "0"):
            keep_alive = False  # a body we do not read: answer, then close
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            self._respond(405, b"only GET and HEAD\n", keep_alive=keep_alive, allow=True)
        elif path != "/metrics":
            self._respond(404, b"not found: try /metrics\n", keep_alive=keep_alive, head=method == "HEAD")
        else:
            body = generate_latest(REGISTRY)
            self._respond(
                200, body, keep_alive=keep_alive, head=method == "HEAD", ctype=CONTENT_TYPE_PLAIN_0_0_4
            )
        return keep_alive

    def _respond(
        self,
        status: int,
        body: bytes,
        *,
        keep_alive: bool,
        head: bool = False,
        allow: bool = False,
        ctype: str = "text/plain; charset=utf-8",
    ) -> None:
        if status != 200:
            REFUSED.labels(IFACE, {404: "not_found", 405: "method"}.get(status, "bad_request")).inc()
        tr = self.transport
        if tr is None or tr.is_closing():
            return
        lines = [
            f"HTTP/1.1 {status} {_REASONS[status]}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        if allow:
            lines.append("Allow: GET, HEAD")
        tr.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body))
        if not keep_alive:
            tr.close()


class MetricsServer:
    """The running metrics listener (``metrics.listen``; worker i of ``--workers`` on port + i)."""

    name = "metrics"

    def __init__(self, config: Config) -> None:
        cfg = config.metrics
        self.read_timeout = cfg.read_timeout
        self.log = get_logger(interface=IFACE)
        self.limited = RateLimitedLog(config.log.rate_limit_burst, config.log.rate_limit_interval)
        self.limiter = ConnectionLimiter(
            IFACE, cfg.max_connections, cfg.max_connections_per_source, self.limited, self.log
        )
        self.connections: set[_MetricsConnection] = set()
        self.server: asyncio.Server | None = None
        for reason in ("read_timeout", "not_found", "method", "bad_request"):
            REFUSED.labels(IFACE, reason)

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _MetricsConnection(self), host, port, backlog=64)
        bound = self.server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    def peers(self) -> list[dict[str, Any]]:
        return []  # scrapers are not peers

    def addresses(self) -> list[tuple[str, int, str]]:
        if self.server is None:
            return []
        return [(str(s.getsockname()[0]), int(s.getsockname()[1]), "tcp") for s in self.server.sockets]

    async def shutdown(self, grace: float = 0.0) -> None:
        if self.server is not None:
            self.server.close()
        for c in list(self.connections):
            c.close()
        self.limited.flush()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)


async def start(config: Config, worker_index: int = 0) -> tuple[MetricsServer, tuple[str, int]]:
    """Listen on ``metrics.listen`` (port + ``worker_index`` when the port is fixed)."""
    register_metrics()
    host, port = parse_hostport(config.metrics.listen, "metrics.listen")
    if port and worker_index:
        # Each worker counts its own checks: worker i serves them on the metrics port + i, so
        # that Prometheus scrapes every worker (one target each) and sums them.
        port += worker_index
    server = MetricsServer(config)
    return server, await server.listen(host, port)
