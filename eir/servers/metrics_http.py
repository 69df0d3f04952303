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
  one address (more are closed at accept); refusals count in ``eir_refused{interface="metrics"}``;
* with ``metrics.username``/``password`` or ``metrics.token`` set, wants ``Authorization: Basic`` or
  ``Bearer`` (compared in constant time) and answers 401 with ``WWW-Authenticate`` otherwise;
* with ``metrics.tls_cert``/``tls_key`` set, speaks HTTPS only.

``--workers N``: one ``/metrics`` for the whole process group, on ``metrics.listen``. Workers 1..N-1
serve their registry on a private Unix socket (``w<i>.sock`` in a directory worker 0 made, 0700); at
each scrape worker 0 reads them all concurrently (1 s each at most) and answers every series once per
worker, labelled ``worker="<i>"`` (``sum without (worker)`` gives the totals), plus
``eir_worker_up{worker}`` (0 for a worker that did not answer: its series are absent from that
scrape). No port per worker, nothing for Prometheus to discover.

A scrape renders the registry on the loop thread: a few milliseconds for this process's series.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import os
import ssl
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from eir.config import Config, parse_hostport
from eir.logging import RateLimitedLog, get_logger
from eir.metrics import REFUSED, REGISTRY, register_metrics
from eir.servers._trust import ConnectionLimiter, source_ip

IFACE = "metrics"
MAX_HEAD = 8192

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
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
        self.pending = False
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
        while not self.pending:
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
        if not self.server.authorized(headers.get("authorization")):
            self._respond(401, b"unauthorized\n", keep_alive=keep_alive, head=method == "HEAD", auth=True)
        elif method not in ("GET", "HEAD"):
            self._respond(405, b"only GET and HEAD\n", keep_alive=keep_alive, allow=True)
        elif path != "/metrics":
            self._respond(404, b"not found: try /metrics\n", keep_alive=keep_alive, head=method == "HEAD")
        elif self.server.worker_sockets:
            # worker 0 of --workers: the other workers' series are read first; the requests after
            # this one on the connection wait for it (HTTP/1.1 answers in order)
            self.pending = True
            task = asyncio.get_running_loop().create_task(self._aggregate(keep_alive, method == "HEAD"))
            self.server.tasks.add(task)
            task.add_done_callback(self.server.tasks.discard)
        else:
            body = generate_latest(REGISTRY)
            self._respond(
                200, body, keep_alive=keep_alive, head=method == "HEAD", ctype=CONTENT_TYPE_PLAIN_0_0_4
            )
        return keep_alive

    async def _aggregate(self, keep_alive: bool, head: bool) -> None:
        body = await self.server.aggregated()
        self.pending = False
        self._respond(200, body, keep_alive=keep_alive, head=head, ctype=CONTENT_TYPE_PLAIN_0_0_4)
        if keep_alive and self.buf:
            self.data_received(b"")

    def _respond(
        self,
        status: int,
        body: bytes,
        *,
        keep_alive: bool,
        head: bool = False,
        allow: bool = False,
        auth: bool = False,
        ctype: str = "text/plain; charset=utf-8",
    ) -> None:
        if status != 200:
            reason = {401: "unauthorized", 404: "not_found", 405: "method"}.get(status, "bad_request")
            REFUSED.labels(IFACE, reason).inc()
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
        if auth:
            lines.extend(f"WWW-Authenticate: {c}" for c in self.server.challenges)
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
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.credentials: list[bytes] = []
        """Accepted ``Authorization`` header values (empty: no authentication)."""
        self.challenges: list[str] = []
        if cfg.username and cfg.password:
            basic = base64.b64encode(f"{cfg.username}:{cfg.password}".encode()).decode()
            self.credentials.append(f"Basic {basic}".encode())
            self.challenges.append('Basic realm="eir metrics", charset="UTF-8"')
        if cfg.token:
            self.credentials.append(f"Bearer {cfg.token}".encode())
            self.challenges.append('Bearer realm="eir metrics"')
        self.ssl: ssl.SSLContext | None = None
        if cfg.tls_cert and cfg.tls_key:
            self.ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ssl.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        self.worker_sockets: list[tuple[int, str]] = []
        """(worker index, Unix socket path) of the other workers, read at each scrape (worker 0)."""
        self.worker_index = 0
        for reason in ("read_timeout", "not_found", "method", "bad_request", "unauthorized"):
            REFUSED.labels(IFACE, reason)

    @property
    def scheme(self) -> str:
        return "https" if self.ssl is not None else "http"

    def authorized(self, header: str | None) -> bool:
        if not self.credentials:
            return True
        if header is None:
            return False
        given = header.strip().encode("latin-1", "replace")
        ok = False
        for c in self.credentials:  # no early exit: every candidate costs the same
            ok |= hmac.compare_digest(given, c)
        return ok

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: _MetricsConnection(self), host, port, backlog=64, ssl=self.ssl
        )
        bound = self.server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def listen_unix(self, path: str) -> None:
        """A worker's private endpoint (no TLS, no authentication: the directory is 0700)."""
        self.ssl, self.credentials = None, []
        loop = asyncio.get_running_loop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.server = await loop.create_unix_server(lambda: _MetricsConnection(self), path, backlog=16)

    def peers(self) -> list[dict[str, Any]]:
        return []  # scrapers are not peers

    def addresses(self) -> list[tuple[str, int, str]]:
        if self.server is None:
            return []
        return [
            (str(s.getsockname()[0]), int(s.getsockname()[1]), "tcp")
            for s in self.server.sockets
            if isinstance(s.getsockname(), tuple)
        ]

    async def aggregated(self) -> bytes:
        """This worker's series and every other worker's, each labelled with its worker."""
        texts = await asyncio.gather(*(_fetch_unix(path) for _, path in self.worker_sockets))
        parts = [(self.worker_index, generate_latest(REGISTRY).decode())]
        up = [(self.worker_index, True)]
        for (i, _), text in zip(self.worker_sockets, texts, strict=True):
            up.append((i, text is not None))
            if text is not None:
                parts.append((i, text))
        reg = CollectorRegistry(auto_describe=False)
        reg.register(_Merged(parts, up))
        return generate_latest(reg)

    async def shutdown(self, grace: float = 0.0) -> None:
        if self.server is not None:
            self.server.close()
        for c in list(self.connections):
            c.close()
        for t in list(self.tasks):
            t.cancel()
        self.limited.flush()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)


class _Merged:
    """A collector yielding the families of several workers' expositions, each sample labelled
    with its worker, one family per name (the text format wants a family's samples together)."""

    def __init__(self, parts: Iterable[tuple[int, str]], up: Iterable[tuple[int, bool]]) -> None:
        self.parts = parts
        self.up = up

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for worker, text in self.parts:
            w = str(worker)
            for fam in text_string_to_metric_families(text):
                out = merged.get(fam.name)
                if out is None:
                    out = merged[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                out.samples.extend(
                    Sample(s.name, {**s.labels, "worker": w}, s.value, s.timestamp, s.exemplar)
                    for s in fam.samples
                )
        up = Metric("eir_worker_up", "1 when the worker answered this scrape (--workers)", "gauge")
        up.samples.extend(Sample("eir_worker_up", {"worker": str(i)}, float(ok)) for i, ok in self.up)
        merged[up.name] = up
        yield from merged.values()


async def _fetch_unix(path: str, timeout: float = 1.0) -> str | None:
    """One worker's exposition over its Unix socket; None when it does not answer in time."""
    try:
        async with asyncio.timeout(timeout):
            r, w = await asyncio.open_unix_connection(path)
            try:
                w.write(b"GET /metrics HTTP/1.0\r\nHost: worker\r\n\r\n")
                data = await r.read(64 * 1024 * 1024)
            finally:
                w.close()
    except (OSError, TimeoutError):
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None
    return body.decode("utf-8", "replace")


WORKER_DIR_ENV = "_EIR_METRICS_DIR"
"""Where workers' Unix sockets live (made by worker 0 before it starts the others)."""


async def start(config: Config, worker_index: int = 0) -> tuple[MetricsServer, tuple[str, int]]:
    """Listen on ``metrics.listen``; under ``--workers`` only worker 0 does, and the others on a
    Unix socket that worker 0 reads at each scrape (returned address: ("", 0))."""
    register_metrics()
    host, port = parse_hostport(config.metrics.listen, "metrics.listen")
    server = MetricsServer(config)
    server.worker_index = worker_index
    wdir = os.environ.get(WORKER_DIR_ENV)
    if config.workers > 1 and wdir:
        if worker_index:
            await server.listen_unix(str(Path(wdir) / f"w{worker_index}.sock"))
            return server, ("", 0)
        server.worker_sockets = [(i, str(Path(wdir) / f"w{i}.sock")) for i in range(1, config.workers)]
    return server, await server.listen(host, port)
