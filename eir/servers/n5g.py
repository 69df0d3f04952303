"""N5g-eir EquipmentIdentityCheck (3GPP TS 29.511): the asyncio adapter on the HTTP server layer
(:mod:`eir.servers._http`: HTTP/2 with prior knowledge, as the Open5GS AMF's libcurl client sends
it, and HTTP/1.1 for curl and humans, on ``n5g.listen``, default 127.0.0.1:8000).

* ``GET {apiRoot}/n5g-eir-eic/v1/equipment-status?pei=…`` is parsed by the sans-IO
  :func:`protocols.sbi.parse_request` (a bad query, another path or method is answered there:
  400 / 404 / 405 / 414 ProblemDetails, counted in ``eir_protocol_errors{interface="n5g"}``);
* a good one becomes a :class:`~eir.model.CheckRequest` (interface n5g, the PEI's digits — the
  policy's one normaliser handles the 15th digit and the IMEISV — IMSI from an ``imsi-`` SUPI,
  MSISDN from an ``msisdn-`` GPSI, origin = the client's IP address) and goes through the
  adapters' one dispatch path (eager start, Task when the store suspends, duration metric, failure
  verdict);
* verdicts: WHITE/GREY/BLACK → 200 ``{"status": "WHITELISTED"|"GREYLISTED"|"BLACKLISTED"}``,
  UNKNOWN → 404 ERROR_EQUIPMENT_UNKNOWN, FAILURE (store unavailable under
  ``store.on_unavailable: failure``) → 500 SYSTEM_FAILURE;
* overload: while ``n5g.overload_pending`` checks wait for the store across the server, new
  requests are answered ``n5g.overload_status`` (503 NF_CONGESTION, or 429 NF_CONGESTION_RISK)
  with ``Retry-After: n5g.retry_after`` (TS 29.500 §6.4) instead of queueing;
* the global overload control (:mod:`eir.overload`, the peer being the client address) refuses with
  the same ``overload_status`` answer; the ``http_status`` fault (:mod:`eir.faults`) answers with
  the rule's status as ProblemDetails (Retry-After for 503/429);
* request targets already parsed are remembered (a bounded map: the same PEI is asked again and
  again) and every answer's header fields and body are built once;
* OAuth2 (``n5g.oauth2_key``): every request needs a bearer JWT with scope ``n5g-eir-eic``
  (:class:`protocols.sbi.oauth2.TokenVerifier`), else 401/403 ProblemDetails with
  ``WWW-Authenticate``, counted as ``unauthorized`` / ``forbidden``;
* NRF (``n5g.nrf``): once listening, the EIR registers its NFProfile and heartbeats
  (:mod:`eir.nrf`); on shutdown it deregisters before the listeners close, so AMFs stop
  discovering it first.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from eir.config import Config
from eir.events import EventSink
from eir.faults import FaultRule
from eir.logging import RateLimitedLog, get_logger
from eir.metrics import CHECK_SECONDS, PROTOCOL_ERRORS, register_metrics
from eir.model import Checker, CheckRequest, Interface, Status, Verdict, request_factory
from eir.servers._adapter import prepare
from eir.servers._http import HttpConnection, HttpServer, server_tls_context
from eir.servers._trust import ConnectionLimiter
from protocols.http import HttpLimits, RequestReceived
from protocols.sbi import (
    EIR_SERVICE,
    NF_TYPE_EIR,
    Answer,
    Cause,
    EquipmentStatus,
    EquipmentStatusQuery,
    N5gEirOptions,
    answer_status,
    equipment_unknown,
    overloaded,
    parse_request,
    problem,
    system_failure,
)

if TYPE_CHECKING:  # imported when used: httpx and PyJWT/cryptography cost start-up time otherwise
    from eir.nrf import NrfClient
    from protocols.sbi.oauth2 import TokenVerifier

__all__ = ["N5gServer", "start"]

IFACE = Interface.N5G.value
_n5g_request: Final = request_factory(Interface.N5G)
_NO_EXTRAS: Final[dict[str, Any]] = {}
_MEMO_SIZE = 4096

_ERROR_LABELS = {
    404: "not_found",
    405: "method_not_allowed",
    414: "uri_too_long",
}


def _fields(a: Answer) -> list[tuple[bytes, bytes]]:
    out = [(n.encode(), v.encode()) for n, v in a.headers]
    if a.content_type is not None:
        out.insert(0, (b"content-type", a.content_type.encode()))
    return out


class _Wire:
    """An answer ready for the HTTP layer: status, header fields, body (built once)."""

    __slots__ = ("body", "fields", "label", "status")

    def __init__(self, a: Answer, cause: str | None = None) -> None:
        self.status = a.status
        self.fields = _fields(a)
        self.body = a.body
        self.label = (cause or "").lower() or _ERROR_LABELS.get(a.status) or f"http_{a.status}"
        """The ``error`` label of eir_protocol_errors when a request is refused with it."""


def _refusal(a: Answer) -> _Wire:
    """A request answered without a check: labelled by its cause (400), ``non_imei_pei`` (a
    mac-/eui- PEI answered 404 unknown), else by status."""
    cause = json.loads(a.body).get("cause") if a.body else None
    if cause == Cause.ERROR_EQUIPMENT_UNKNOWN:
        cause = "non_imei_pei"
    elif a.status != 400:
        cause = None
    return _Wire(a, cause)


_WHITE = _Wire(answer_status(EquipmentStatus.WHITELISTED))
_GREY = _Wire(answer_status(EquipmentStatus.GREYLISTED))
_BLACK = _Wire(answer_status(EquipmentStatus.BLACKLISTED))
_UNKNOWN = _Wire(equipment_unknown())
_FAILURE = _Wire(system_failure())


class _N5gConnection(HttpConnection):
    server: N5gServer

    def __init__(self, server: HttpServer) -> None:
        super().__init__(server)
        self.check_seconds = CHECK_SECONDS.labels(IFACE)

    def on_request(self, ev: RequestReceived) -> None:
        srv = self.server
        if srv.verifier is not None and not self._authorized(ev):
            return
        key = (ev.method, ev.target)
        parsed = srv.memo.get(key)
        if parsed is None:
            p = parse_request(ev.method, ev.target, srv.options)
            parsed = p if type(p) is EquipmentStatusQuery else _refusal(cast(Answer, p))
            if len(srv.memo) >= _MEMO_SIZE:
                srv.memo.clear()
            srv.memo[key] = parsed
        if type(parsed) is _Wire:
            w = parsed
            srv.protocol_error(w.label).inc()
            self.respond(ev, w.status, w.fields, w.body)
            return
        q = cast(EquipmentStatusQuery, parsed)
        if srv.pending >= srv.overload_pending:
            srv.protocol_error("overload").inc()
            w = srv.overload
            self.respond(ev, w.status, w.fields, w.body)
            return
        self._dispatch(_n5g_request(q.digits, None, q.imsi, q.msisdn, self.peer_host, _NO_EXTRAS), ev)

    def _authorized(self, ev: RequestReceived) -> bool:
        """OAuth2 (module docstring): False when refused (answered here)."""
        srv = self.server
        assert srv.verifier is not None
        auth = None
        for name, value in ev.headers:
            if name == b"authorization":
                auth = value
                break
        refusal = srv.verifier.verify(auth, time.time())
        if refusal is None:
            return True
        label = "unauthorized" if refusal.status == 401 else "forbidden"
        srv.protocol_error(label).inc()
        srv.rate_log.warning(
            self.log, label, "n5g_oauth2_refused", status=refusal.status, detail=_detail(refusal)
        )
        w = _Wire(refusal)
        self.respond(ev, w.status, w.fields, w.body)
        return False

    def _track(self, task: asyncio.Task[None]) -> None:
        """A check that waits for the store: counted server-wide for the overload answer."""
        super()._track(task)
        self.server.pending += 1
        task.add_done_callback(self.server.pending_done)

    # -- overload control and fault injection (eir.overload, eir.faults; issue 7 §4, issue 10) --

    def _peer_key(self, request: CheckRequest) -> str:
        return self.peer_host

    def _fault_peers(self, request: CheckRequest, ctx: Any) -> tuple[str, ...]:
        return (self.peer_host,)

    def _overloaded(self, ev: RequestReceived) -> None:
        srv = self.server
        srv.protocol_error("overload").inc()
        w = srv.overload
        self.respond(ev, w.status, w.fields, w.body)

    def _fault(self, rule: FaultRule, ev: RequestReceived) -> bool:
        if rule.kind != "http_status":
            return False
        w = self.server.fault_answer(rule.http_status)
        self.respond(ev, w.status, w.fields, w.body)
        return True

    def _answer(self, ev: RequestReceived, verdict: Verdict) -> None:
        s = verdict.status
        if s is Status.WHITE:
            w = _WHITE
        elif s is Status.BLACK:
            w = _BLACK
        elif s is Status.GREY:
            w = _GREY
        elif s is Status.UNKNOWN:
            w = _UNKNOWN
        else:
            w = _FAILURE
        self.respond(ev, w.status, w.fields, w.body)


class N5gServer(HttpServer):
    """The running N5g-eir interface."""

    def __init__(self, config: Config, checker: Checker) -> None:
        cfg = config.n5g
        super().__init__(
            "n5g",
            IFACE,
            cfg.listen,
            _N5gConnection,
            checker,
            limits=HttpLimits(
                max_concurrent_streams=cfg.max_concurrent_streams,
                max_header_list_size=cfg.max_header_list_size,
                max_body=cfg.max_body,
                idle_timeout=cfg.idle_timeout,
            ),
            max_in_flight=cfg.max_in_flight,
            reuse_port=config.workers > 1,
            debug=config.log.level.lower() == "debug",
            tls_listen=cfg.tls_listen,
            ssl_context=server_tls_context(cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca, cfg.tls_keylog)
            if (cfg.tls_listen or cfg.tls_sniff) and cfg.tls_cert and cfg.tls_key
            else None,
            sniff_tls=cfg.tls_sniff,
            limiter=ConnectionLimiter(
                IFACE,
                cfg.max_connections,
                cfg.max_connections_per_source,
                RateLimitedLog(config.log.rate_limit_burst, config.log.rate_limit_interval),
                get_logger(interface=IFACE),
            ),
        )
        self.options = N5gEirOptions(
            bare_pei=cfg.bare_pei, non_imei_pei=cfg.non_imei_pei, max_uri_length=cfg.max_uri_length
        )
        self.memo: dict[tuple[str, str], EquipmentStatusQuery | _Wire] = {}
        self.pending = 0
        """Checks waiting for the store, across connections."""
        self.overload_pending = cfg.overload_pending
        status = cast(Literal[429, 503], cfg.overload_status)
        self.overload = _Wire(overloaded(status, cfg.retry_after))
        self.rate_log = RateLimitedLog(config.log.rate_limit_burst, config.log.rate_limit_interval)
        self.verifier: TokenVerifier | None = None
        self.nrf: NrfClient | None = None
        self.cfg = cfg
        self.retry_after = cfg.retry_after
        self._fault_answers: dict[int, _Wire] = {}

    def enable_oauth2(self, nf_instance_id: str) -> None:
        from protocols.sbi.oauth2 import TokenVerifier, load_key

        cfg = self.cfg
        assert cfg.oauth2_key is not None
        key, algorithms = load_key(Path(cfg.oauth2_key).read_bytes())
        self.verifier = TokenVerifier(
            key,
            algorithms,
            audiences=tuple(cfg.oauth2_audience) or (nf_instance_id, NF_TYPE_EIR),
            scope=EIR_SERVICE,
            issuer=cfg.oauth2_issuer,
        )

    def fault_answer(self, status: int) -> _Wire:
        """The ``http_status`` fault's answer: ProblemDetails; 503 NF_CONGESTION / 429
        NF_CONGESTION_RISK with Retry-After as for overload, 500 SYSTEM_FAILURE, others no cause."""
        w = self._fault_answers.get(status)
        if w is None:
            if status in (429, 503):
                a = overloaded(cast(Literal[429, 503], status), self.retry_after)
            else:
                cause = Cause.SYSTEM_FAILURE if status == 500 else None
                a = problem(status, cause, "fault injected")
            w = self._fault_answers[status] = _Wire(a)
        return w

    def pending_done(self, _task: Any) -> None:
        self.pending -= 1

    async def shutdown(self, grace: float) -> None:
        if self.nrf is not None:  # deregister first: AMFs stop discovering the EIR before it goes
            try:
                await asyncio.wait_for(self.nrf.stop(), max(0.5, grace / 2))
            except TimeoutError:
                self.log.warning("nrf_deregister_timeout")
        await super().shutdown(grace)


def _detail(a: Answer) -> str:
    try:
        return str(json.loads(a.body).get("detail", ""))[:200]
    except ValueError:
        return ""


async def start(config: Config, checker: Checker, events: EventSink) -> N5gServer:
    """Start the N5g-eir interface (see the module docstring)."""
    register_metrics()
    prepare(config, IFACE)
    for label in (
        "not_found",
        "method_not_allowed",
        "uri_too_long",
        "overload",
        "non_imei_pei",
        "unauthorized",
        "forbidden",
        "tls_handshake",
        "sniff_overflow",
        # HTTP layer (eir.servers._http): h2 error codes and HTTP/1.1 parse errors
        "protocol_error",
        "frame_size_error",
        "compression_error",
        "flow_control_error",
        "stream_closed",
        "enhance_your_calm",
        "refused_stream",
        "bad_request",
        "body_too_large",
        "internal",
        *(c.value.lower() for c in Cause if c.value.endswith(("MISSING", "INCORRECT"))),
    ):
        PROTOCOL_ERRORS.labels(IFACE, label)
    server = N5gServer(config, checker)
    await server.listen()
    for host, port, t in server.addresses():
        scheme = "https" if t == "tls" else "http"
        server.log.info("n5g_listening", host=host, port=port, api=f"{scheme}://{host}:{port}/n5g-eir-eic/v1")
    cfg = config.n5g
    if cfg.nrf is not None or cfg.oauth2_key is not None:
        from eir.nrf import advertised, from_config, instance_id

        addrs = server.addresses()
        first = next((a for a in addrs if a[2] != "tls"), addrs[0])
        scheme = "https" if first[2] == "tls" else "http"
        host, port = advertised(cfg, (first[0], first[1]))
        nf_id = instance_id(cfg, host, port)
        if cfg.oauth2_key is not None:
            server.enable_oauth2(nf_id)
        # with --workers, worker 0 speaks for the instance (they share one address and profile)
        if cfg.nrf is not None and os.environ.get("_EIR_WORKER_INDEX", "0") == "0":
            server.nrf = from_config(cfg, (first[0], first[1]), scheme)
            server.nrf.start()
    return server
