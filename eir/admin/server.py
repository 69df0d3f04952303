"""The admin API's listener: the shared HTTP server layer (:mod:`eir.servers._http`, HTTP/1.1 and
HTTP/2 with prior knowledge on one port, as N5g-eir uses it) in front of :class:`AdminApi`.

Each request is answered by :meth:`AdminApi.handle`, started eagerly: an endpoint that does not
suspend (a check on SQLite or memory, health, faults) is answered within the same
``data_received``; one that waits for a store continues under a Task held by the connection. With a
store whose client needs a Task from the start (``IdentityStore.needs_task``: PostgreSQL, Redis)
every request runs under one.

Bodies over ``admin.max_import_body`` are refused by the HTTP core itself (413, with our
ProblemDetails body); JSON bodies over ``admin.max_body`` by :class:`AdminApi` (413 too).

A CSV import with a write token is streamed (``HttpLimits.stream_body``): it is handed to
:meth:`AdminApi.handle` at its head, under a Task, and its body is spooled as it arrives (memory up
to 1 MiB, then a temporary file), so that what the server holds of a body in flight is bounded by
flow control (HTTP/2: the stream window, ``initial_window_size`` 1 MiB; HTTP/1.1: reading pauses
above :data:`eir.servers._http.BODY_HIGH_WATER`) plus the spool's memory part, whatever the body's
size. A client that goes away mid-body changes nothing.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any

from eir.admin.auth import TokenTable, is_loopback
from eir.admin.problems import Response, problem
from eir.admin.routes import IFACE, AdminApi
from eir.config import Config
from eir.logging import RateLimitedLog, get_logger
from eir.metrics import PROTOCOL_ERRORS, REFUSED, register_metrics
from eir.servers._eager import resume
from eir.servers._http import HttpConnection, HttpServer, RequestBody
from eir.servers._trust import ConnectionLimiter
from eir.store.base import IdentityStore
from protocols.http import HttpLimits, RequestReceived, RequestStarted

__all__ = ["MAX_STREAMS", "AdminConfigError", "AdminServer", "start"]


MAX_STREAMS = 32
"""SETTINGS_MAX_CONCURRENT_STREAMS of an admin connection (a client that opens more before it has
read our SETTINGS gets RST_STREAM REFUSED_STREAM for the extra ones, RFC 9113 §5.1.2)."""


class AdminConfigError(Exception):
    """The admin API would be exposed without a token (``eir serve`` exits with the config code)."""


class _AdminConnection(HttpConnection):
    server: AdminServer

    def on_request(self, ev: RequestReceived) -> None:
        coro = self.server.api.handle(ev.method, ev.target, ev.headers, ev.body, self.peer_host)
        if not self.server.eager:  # the store's client must run inside a Task (IdentityStore.needs_task)
            self._track(self.loop.create_task(self._run(ev, coro)))
            return
        try:
            first = coro.send(None)
        except StopIteration as done:
            self._send(ev, done.value)
            return
        task = self.loop.create_task(self._finish(ev, coro, first))
        self._track(task)

    def on_request_started(self, ev: RequestStarted, body: RequestBody) -> None:
        coro = self.server.api.handle(ev.method, ev.target, ev.headers, b"", self.peer_host, body)
        self._track(self.loop.create_task(self._run(ev, coro)))

    async def _finish(self, ev: RequestReceived, coro: Coroutine[Any, Any, Response], first: Any) -> None:  # type: ignore[override]
        resp: Response = await resume(coro, first)  # type: ignore[arg-type,assignment]
        if self.failed:
            return
        try:
            self._send(ev, resp)
        except Exception:
            self._internal_error(b"")
            return
        self._schedule_flush()

    async def _run(self, ev: RequestReceived | RequestStarted, coro: Coroutine[Any, Any, Response]) -> None:
        resp = await coro
        if self.failed:
            return
        try:
            self._send(ev, resp)
        except Exception:
            self._internal_error(b"")
            return
        self._schedule_flush()

    def _send(self, ev: RequestReceived | RequestStarted, resp: Response) -> None:
        self.respond(ev, resp.status, resp.fields(), resp.body)


class AdminServer(HttpServer):
    """The running admin API."""

    def __init__(self, config: Config, api: AdminApi) -> None:
        cfg = config.admin
        too_large = problem(
            413,
            f"request body too large (at most {cfg.max_body} octets; a CSV import with a write token: "
            f"{cfg.max_import_body})",
            cause="body_too_large",
        )
        super().__init__(
            "admin",
            IFACE,
            cfg.listen,
            _AdminConnection,
            api.checker,
            limits=HttpLimits(
                max_body=cfg.max_import_body,
                idle_timeout=cfg.idle_timeout,
                max_concurrent_streams=MAX_STREAMS,
                too_large=(tuple(too_large.fields()), too_large.body),
                body_limit=api.body_limit,
                stream_body=api.stream_body,
            ),
            max_in_flight=256,
            reuse_port=False,
            debug=config.log.level.lower() == "debug",
            limiter=ConnectionLimiter(
                IFACE,
                cfg.max_connections,
                cfg.max_connections_per_source,
                RateLimitedLog(config.log.rate_limit_burst, config.log.rate_limit_interval),
                get_logger(interface=IFACE),
            ),
        )
        self.api = api
        self.eager = not api.store.needs_task
        """Requests take their first step in ``data_received`` (module docstring), unless the store's
        client library needs a Task (PostgreSQL, Redis)."""

    def peers(self) -> list[dict[str, Any]]:
        return []  # admin clients are not network peers (GET /peers lists S13, MAP and N5g ones)


def check_exposure(config: Config) -> None:
    """Refuse an admin API on a non-loopback address without any token."""
    cfg = config.admin
    if TokenTable.from_config(cfg).open:
        exposed = [a for a in cfg.listen if not is_loopback(a)]
        if exposed:
            raise AdminConfigError(
                f"admin.listen {', '.join(exposed)} is not a loopback address and no token is set "
                "(admin.token / EIR_ADMIN_TOKEN or admin.tokens)"
            )


async def start(
    config: Config, checker: Any, store: IdentityStore, servers: Sequence[Any] = ()
) -> AdminServer:
    """Start the admin API on ``admin.listen`` (raises :class:`AdminConfigError`, ``OSError``)."""
    check_exposure(config)
    register_metrics()
    for label in (
        "bad_request",
        "not_found",
        "method_not_allowed",
        "body_too_large",
        "body_aborted",
        "unknown_parameter",
        "unknown_field",
        "bad_imei",
        "bad_csv",
        "bad_rows",
        "store_unavailable",
        "internal",
    ):
        PROTOCOL_ERRORS.labels(IFACE, label)
    for reason in ("unauthorized", "forbidden"):
        REFUSED.labels(IFACE, reason)
    api = AdminApi(config, checker, store, servers)
    server = AdminServer(config, api)
    await server.listen()
    api.servers.append(server)
    for host, port, _t in server.addresses():
        server.log.info(
            "admin_listening",
            host=host,
            port=port,
            api=f"http://{host}:{port}/api/v1",
            auth="open (loopback)" if api.tokens.open else "bearer",
        )
    return server
