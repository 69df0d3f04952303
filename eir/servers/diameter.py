"""Diameter S13/S13' (ME-Identity-Check): the asyncio adapter around
:class:`protocols.diameter.DiameterPeer`.

* listens on ``diameter.listen`` over TCP (several addresses, IPv4/IPv6, port 0 allowed) and over
  SCTP where the kernel has it (one plain log line says when it does not);
* each ECR becomes a :class:`~eir.model.CheckRequest` (interface S13, IMEI digits as received,
  Software-Version, IMSI from User-Name, origin = Origin-Host); WHITE/GREY/BLACK go back as
  Equipment-Status with 2001, UNKNOWN as Experimental-Result 5422, FAILURE as Result-Code 5012
  DIAMETER_UNABLE_TO_COMPLY (not 3004 TOO_BUSY: RFC 6733 §7.1.3 reserves 3004 for a node that
  was specifically requested and asks the client to *retry elsewhere*, which a lab EIR with one
  store gains nothing from, and 3xxx answers carry the E bit and skip the S13 answer format);
* checks go through the adapters' one dispatch path (:mod:`eir.servers._adapter`: eager start,
  Task when the store suspends, duration metric, failure verdict, flush rule). Answers go out as
  checks complete (Diameter matches them by hop-by-hop id, RFC 6733 §6.2), so pipelined requests
  are never held behind a slow one. An ECR with only a 3GPP2-MEID goes to the checker like any
  other (the policy answers it ``unknown`` → 5422);
* reading pauses while ``max_in_flight`` checks are outstanding or the transport asked us to stop
  writing (``pause_writing``);
* trust (issue 10): connections over ``diameter.max_connections`` (in total or from one source
  address) are aborted at accept; the core gets the peer allow-list (``allow_sources`` /
  ``allow_hosts`` / ``allow_realms``: CEA 3010 and close), the realms and hosts we answer for
  (3003 / 3002) and the Origin-Host rule (5012; see :class:`protocols.diameter.DiameterPeer`);
  every refusal counts in ``eir_refused`` and its warning goes through
  :class:`eir.logging.RateLimitedLog`, like every protocol-error warning;
* TLS (RFC 6733 §13): ``diameter.tls_listen`` ports speak TLS from the first octet; with
  ``diameter.tls_peer_ca`` the peer's certificate must come from that CA and name the CER's
  Origin-Host (else 3010). A peer leaving ``diameter.write_buffer_limit`` unread for
  ``diameter.write_timeout`` is cut; that and the core's Tw closes count in ``eir_connections_closed``;
* metrics: ``eir_protocol_errors``, ``eir_peers``, ``eir_peer_events``, ``eir_refused`` here;
  ``eir_check_duration_seconds`` in the dispatch path; ``eir_check_requests`` and ``eir_verdicts``
  in the checker;
* overload (:mod:`eir.overload`): an ECR refused by the process's or the peer's budget (the peer is
  the CER Origin-Host) gets 3004 DIAMETER_TOO_BUSY with the E bit (RFC 6733 §7.1.3: try another
  EIR); faults (:mod:`eir.faults`): ``result_code`` answers with the rule's code, ``dwr_silence``
  leaves the peer's DWRs unanswered (the core asks ``answer_watchdog``), the rest is the dispatch
  path's;
* one info log line per peer state change, one debug line per check;
* shutdown: stop listening, DPR to each OPEN peer, wait for DPA (and outstanding checks) up to
  ``grace``, then cut the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from typing import Any, Final

from eir.config import Config, parse_hostport
from eir.events import EventSink
from eir.faults import REGISTRY, FaultRule
from eir.logging import RateLimitedLog, get_logger
from eir.metrics import CHECK_SECONDS, PEER_EVENTS, PEERS, PROTOCOL_ERRORS, REFUSED, register_metrics
from eir.model import Checker, CheckRequest, Interface, Status, Verdict, request_factory
from eir.servers._adapter import CoreProtocol, prepare
from eir.servers._listen import Listeners, bound_addresses, open_listeners, publish_peer
from eir.servers._trust import (
    CLOSED,
    ConnectionLimiter,
    WriteStallGuard,
    certificate_names,
    diameter_tls_context,
    name_matcher,
    networks,
    source_allowed,
    source_ip,
    warn_if_exposed,
)
from netio.sctp import SCTP_PPID_DIAMETER, diameter_framer, sctp_available
from protocols.diameter import (
    CapabilitiesExchanged,
    ConnectionClosed,
    DiameterPeer,
    DisconnectRequested,
    EquipmentCheckRequested,
    EquipmentStatus,
    PeerState,
    ProtocolErrorOccurred,
    RemoteProtocolError,
    ResultCode,
    Role,
    WatchdogSuspect,
)

__all__ = ["DiameterServer", "sctp_available", "start"]

IFACE = Interface.S13.value

_WHITE, _BLACK, _GREY = EquipmentStatus.WHITELISTED, EquipmentStatus.BLACKLISTED, EquipmentStatus.GREYLISTED
_PEERS = PEERS.labels(IFACE)


_s13_request: Final = request_factory(Interface.S13)
_NO_EXTRAS: Final[dict[str, Any]] = {}


_CLOSED_BY_TIMER: Final = {"timeout": "setup_timeout", "watchdog": "heartbeat_timeout"}
"""ConnectionClosed reasons that are a time limit (no CER within Tw; DWR unanswered for 2·Tw)
→ their eir_connections_closed reason (the names M3UA uses for the same limits)."""


def _error_label(code: int) -> str:
    try:
        return ResultCode(code).name.lower().removeprefix("diameter_")
    except ValueError:
        return str(code)


class _PeerConnection(CoreProtocol):
    """One Diameter peer connection (TCP or SCTP)."""

    def __init__(self, server: DiameterServer, transport_name: str) -> None:
        self._init_plumbing(server.config.diameter.max_in_flight, server.checker)
        self.check_seconds = CHECK_SECONDS.labels(IFACE)
        self.server = server
        self.transport_name = transport_name
        self.core: DiameterPeer | None = None
        self.peer = "?"
        self.peer_host: str | None = None
        self.log = server.log
        self.open = False
        self.closed = asyncio.Event()
        self.admitted = False
        self.source: str | None = None
        cfg = server.config.diameter
        self.write_guard = WriteStallGuard(cfg.write_timeout, cfg.write_buffer_limit, self._write_stalled)
        self.connected_at = 0.0
        self.checks = 0
        """ECRs received (reported by the admin API's peers)."""

    def _core(self) -> DiameterPeer | None:
        return self.core

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check here.
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        cfg = server.config.diameter
        self.source = ip = source_ip(transport)
        if not server.limiter.admit(ip):
            transport.abort()  # type: ignore[attr-defined]
            return
        self.admitted = True
        self._record_open("diameter")
        self.write_guard.install(transport)
        peer = transport.get_extra_info("peername")
        self.peer = (
            f"[{peer[0]}]:{peer[1]}"
            if isinstance(peer, tuple) and ":" in peer[0]
            else (f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer))
        )
        sock = transport.get_extra_info("sockname")
        local_ip = sock[0] if isinstance(sock, tuple) and sock[0] not in ("0.0.0.0", "::") else "127.0.0.1"
        with contextlib.suppress(OSError, AttributeError):
            s = transport.get_extra_info("socket")
            if s is not None and self.transport_name in ("tcp", "tls"):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.core = DiameterPeer(
            role=Role.RESPONDER,
            origin_host=cfg.origin_host,
            origin_realm=cfg.origin_realm,
            host_ip_addresses=(local_ip.split("%")[0],),
            vendor_id=cfg.vendor_id,
            product_name=cfg.product_name,
            origin_state_id=self.server.origin_state_id,
            watchdog_interval=cfg.watchdog_interval,
            watchdog_jitter=2.0,
            dpa_timeout=min(5.0, max(1.0, self.server.config.shutdown_grace)),
            max_message_size=cfg.max_message_size,
            identifier_seed=int.from_bytes(os.urandom(4), "big"),
            served_realms=cfg.accept_realms,
            served_hosts=cfg.accept_hosts,
            authorize_peer=server.authorizer(ip, certificate_names(transport)),
            origin_host_check=server.may_forward if cfg.check_origin_host else None,
        )
        self.core.answer_watchdog = self._answer_dwr
        self.log = get_logger(interface=IFACE, peer=self.peer, transport=self.transport_name)
        self.server.connections.add(self)
        self.connected_at = time.time()
        PEER_EVENTS.labels(IFACE, "connected").inc()
        self.log.debug("diameter_connected")  # diameter_peer_open says who, once the CER is in
        self.server.publish_peer(self, "connected")
        self.core.start(self.loop.time())
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.recorder is not None:
            self.recorder.received(data)
        core = self.core
        if core is None or self.failed:
            return
        try:
            try:
                events = core.receive_data(data, self.loop.time())
            except RemoteProtocolError as e:
                # The framing is lost: the core queued its error answer and is CLOSED; its events
                # (checks read before the fault, the error, ConnectionClosed) come with the exception.
                self.server.limited.warning(
                    self.log,
                    "diameter_framing_lost",
                    "diameter_framing_lost",
                    result_code=int(e.result_code),
                    error=str(e),
                )
                self._handle(e.events)
                self._flush()
                self._close_transport()
                self.write_guard.closing(self.loop, self.transport)
                return
            if events:
                self._handle(events)
            self._flush()
        except Exception:  # a bug, not bad input (the core answers that): never asyncio's
            self._internal_error(data)  # "Fatal error: protocol.data_received() call failed"

    def _write_stalled(self) -> None:
        """The peer left our answers unread past diameter.write_timeout (:class:`WriteStallGuard`)."""
        CLOSED.labels(IFACE, "write_stalled").inc()
        self.server.limited.warning(
            self.log,
            "diameter_closed:write_stalled",
            "diameter_closed_by_limit",
            reason="write_stalled",
            peer_host=self.peer_host,
            detail=f"peer read nothing for {self.write_guard.timeout:g} s with our buffer full",
        )
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool | None:
        if self.core is not None and not self.failed:
            try:
                with contextlib.suppress(RemoteProtocolError):
                    self._handle(self.core.receive_data(b"", self.loop.time()))
            except Exception:
                self._internal_error(b"")
        return None

    def _internal_error(self, data: bytes) -> None:
        """Defence in depth: the core raised. Log it with the input, count it and close. Even an
        OPEN peer gets no DPR or error answer: the core's state is unknown, nothing it would send
        can be trusted (the MME reconnects; RFC 6733 §5.6 lets either side close the transport)."""
        self.failed = True
        self.log.exception("diameter_internal_error", peer=self.peer, data=data[:64].hex())
        PROTOCOL_ERRORS.labels(IFACE, "internal").inc()
        self._cancel_timer()
        self._close_transport()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.admitted:
            return  # refused at accept: never counted as a peer
        self.server.limiter.release(self.source)
        self._cancel_timer()
        self._record_close()
        if self.open:
            _PEERS.dec()
            self.open = False
        for t in self.tasks:
            t.cancel()
        if self.core is not None and not self.failed and self.core.state is not PeerState.CLOSED:
            # The transport is gone: the core closes, and its ConnectionClosed (with its reason)
            # is logged, counted and published like any other close. No new checks: nobody to answer.
            events: list[Any]
            try:
                events = list(self.core.receive_data(b"", self.loop.time()))
            except RemoteProtocolError as e:
                events = list(e.events)
            except Exception:
                self.log.exception("diameter_internal_error", peer=self.peer, data="")
                events = []
            with contextlib.suppress(Exception):
                self._handle([ev for ev in events if type(ev) is not EquipmentCheckRequested])
        self.write_guard.cancel()  # after the events above: their close arms nothing that outlives us
        self.server.connections.discard(self)
        PEER_EVENTS.labels(IFACE, "disconnected").inc()
        # a peer that was open has had its diameter_peer_closed line; a connection that never
        # became a peer is worth an info line
        (self.log.debug if self.peer_host else self.log.info)(
            "diameter_disconnected", peer_host=self.peer_host, error=str(exc) if exc else None
        )
        self.server.publish_peer(self, "disconnected")
        self.closed.set()

    # -- events -------------------------------------------------------------------------------------

    def _handle(self, events: list[Any]) -> None:
        for ev in events:
            t = type(ev)
            if t is EquipmentCheckRequested:
                self._check(ev)
            elif t is CapabilitiesExchanged:
                self.peer_host = ev.peer_host
                self.open = True
                _PEERS.inc()
                PEER_EVENTS.labels(IFACE, "open").inc()
                self.log.info(
                    "diameter_peer_open",
                    peer_host=ev.peer_host,
                    peer_realm=ev.peer_realm,
                    product=ev.product_name,
                    applications=list(ev.application_ids),
                )
                self.server.publish_peer(self, "open", peer_host=ev.peer_host, peer_realm=ev.peer_realm)
            elif t is ProtocolErrorOccurred:
                label = _error_label(ev.result_code)
                PROTOCOL_ERRORS.labels(IFACE, label).inc()
                refusal = ev.refusal
                if refusal is not None:
                    REFUSED.labels(IFACE, refusal.replace("-", "_")).inc()
                self.server.limited.warning(
                    self.log,
                    f"diameter_protocol_error:{refusal or label}",
                    "diameter_protocol_error",
                    result_code=int(ev.result_code),
                    error=_error_label(ev.result_code),
                    command=ev.command_code,
                    detail=ev.detail,
                    answered=ev.answered,
                    refusal=refusal,
                    peer_host=self.peer_host,
                )
            elif t is DisconnectRequested:
                PEER_EVENTS.labels(IFACE, "dpr").inc()
                self.log.debug("diameter_peer_dpr", peer_host=self.peer_host, cause=ev.cause)
            elif t is WatchdogSuspect:
                PEER_EVENTS.labels(IFACE, "suspect").inc()
                self.log.info("diameter_peer_suspect", peer_host=self.peer_host)
            elif t is ConnectionClosed:
                if self.open:
                    _PEERS.dec()
                    self.open = False
                PEER_EVENTS.labels(IFACE, f"closed_{ev.reason}").inc()
                limit = _CLOSED_BY_TIMER.get(str(ev.reason))
                if limit is not None:
                    CLOSED.labels(IFACE, limit).inc()
                self.log.info(
                    "diameter_peer_closed",
                    peer_host=self.peer_host,
                    reason=ev.reason,
                    result_code=int(ev.result_code) if ev.result_code is not None else None,
                )
                self.server.publish_peer(self, "closed", reason=ev.reason, peer_host=self.peer_host)
                self._flush()
                self._close_transport()
                self.write_guard.closing(self.loop, self.transport)
            # WatchdogAnswered: the core's bookkeeping is enough.

    def _check(self, ev: EquipmentCheckRequested) -> None:
        self.checks += 1
        imei = ev.imei
        if imei is None:
            # Only a 3GPP2-MEID (TS 29.272 §7.3.2 allows it instead of an IMEI): the policy decides.
            meid = ev.meid.hex() if ev.meid is not None else ""
            req = CheckRequest(
                imei="", meid=meid, interface=Interface.S13, imsi=ev.imsi, origin=ev.origin_host
            )
        else:
            req = _s13_request(imei, ev.software_version, ev.imsi, None, ev.origin_host, _NO_EXTRAS)
        self._dispatch(req, ev)

    # -- overload control and fault injection (eir.overload, eir.faults; issue 7 §4, issue 10) --

    def _peer_key(self, request: CheckRequest) -> str:
        return self.peer_host or self.peer

    def _fault_peers(self, request: CheckRequest, ctx: Any) -> tuple[str, ...]:
        return (request.origin or "", self.peer_host or "", self.source or "")

    def _overloaded(self, ev: EquipmentCheckRequested) -> None:
        # RFC 6733 §7.1.3: 3004 asks the client to try another peer; with the E bit (s13.py)
        if self.core is not None:
            self.core.send_eca(ev, result_code=ResultCode.DIAMETER_TOO_BUSY, error_message="overloaded")

    def _fault(self, rule: FaultRule, ev: EquipmentCheckRequested) -> bool:
        if rule.kind != "result_code":
            return False
        if self.core is not None:
            self.core.send_eca(ev, result_code=rule.result_code, error_message="fault injected")
        return True

    def _answer_dwr(self) -> bool:
        """The core asks before each DWA: a ``dwr_silence`` rule for this peer leaves it unanswered."""
        if not REGISTRY.active:
            return True
        rule = REGISTRY.match(IFACE, "", (self.peer_host or "", self.source or ""), watchdog=True)
        if rule is None:
            return True
        self._fault_injected(rule, IFACE, peer_host=self.peer_host)
        return False

    def _answer(self, ev: EquipmentCheckRequested, verdict: Verdict) -> None:
        core = self.core
        status = verdict.status
        if core is not None:
            # identity tests, not dict lookups: hashing an Enum member runs Python code
            if status is Status.WHITE:
                core.send_eca(ev, status=_WHITE)
            elif status is Status.BLACK:
                core.send_eca(ev, status=_BLACK)
            elif status is Status.GREY:
                core.send_eca(ev, status=_GREY)
            elif status is Status.UNKNOWN:
                core.send_eca(ev, experimental_result_code=ResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN)
            else:
                core.send_eca(
                    ev,
                    result_code=ResultCode.DIAMETER_UNABLE_TO_COMPLY,
                    error_message="equipment check failed",
                )
        # (the checker writes the one debug line per check)

    async def close(self, grace: float) -> None:
        """Graceful: DPR when OPEN, wait for DPA and outstanding checks, close; cut after ``grace``."""
        tr = self.transport
        core = self.core
        if tr is None or tr.is_closing() or core is None:
            return
        deadline = self.loop.time() + grace
        if self.tasks:  # let outstanding checks answer before saying goodbye
            await asyncio.wait(set(self.tasks), timeout=max(0.0, deadline - self.loop.time()))
        if core.state is PeerState.OPEN:
            self._handle(core.close(self.loop.time()))
            self._flush()
        else:
            self._handle(core.close(self.loop.time()))
            self._flush()
            self._close_transport()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), max(0.0, deadline - self.loop.time()))
        if not self.closed.is_set():
            if self.tasks:
                await asyncio.wait(set(self.tasks), timeout=max(0.0, deadline - self.loop.time()))
            self._flush()
            tr.abort()


class DiameterServer:
    """The running S13 interface: its listeners and peer connections."""

    name = "diameter"

    def __init__(self, config: Config, checker: Checker, events: EventSink) -> None:
        self.config = config
        self.checker = checker
        self.events = events
        self.listeners: Listeners = []
        self.connections: set[_PeerConnection] = set()
        self.log = get_logger(interface=IFACE)
        self.debug = config.log.level.lower() == "debug"
        self.origin_state_id = int(time.time()) & 0xFFFFFFFF
        """RFC 6733 §8.16: increases each time the node restarts with its state lost."""
        cfg = config.diameter
        self.limited = RateLimitedLog(config.log.rate_limit_burst, config.log.rate_limit_interval)
        self.limiter = ConnectionLimiter(
            IFACE, cfg.max_connections, cfg.max_connections_per_source, self.limited, self.log
        )
        self.allow_sources = networks(cfg.allow_sources)
        self.allow_hosts = name_matcher(cfg.allow_hosts)
        self.allow_realms = name_matcher(cfg.allow_realms)
        self.forwarders = name_matcher(cfg.forwarding_peers)

    def may_forward(self, cer_host: str) -> bool:
        """The peer (by its CER Origin-Host) may send ECRs of other origins (``forwarding_peers``)."""
        return self.forwarders is not None and self.forwarders(cer_host)

    def authorizer(self, ip: str | None, cert_names: frozenset[str] | None = None) -> Any:
        """The core's ``authorize_peer`` for a connection from ``ip``: None when no allow-list is set.
        Every list that is set must match; the reason goes into the CEA's Error-Message.

        ``cert_names``: the DNS names of the peer's verified TLS certificate (diameter.tls_peer_ca
        set): the CER's Origin-Host must be one of them (RFC 6733 §13.1: the TLS identity is the
        Diameter identity; a certificate for one MME must not open a peer for another)."""
        if not (self.allow_sources or self.allow_hosts or self.allow_realms or cert_names is not None):
            return None
        src_ok = source_allowed(self.allow_sources, ip)
        hosts, realms = self.allow_hosts, self.allow_realms

        def authorize(host: str, realm: str) -> str | None:
            if not src_ok:
                why = f"source address {ip} not allowed"
            elif cert_names is not None and host.lower() not in cert_names:
                why = f"Origin-Host {host} is not a name of the peer's TLS certificate"
            elif hosts is not None and not hosts(host):
                why = f"Origin-Host {host} not allowed"
            elif realms is not None and not realms(realm):
                why = f"Origin-Realm {realm} not allowed"
            else:
                return None
            self.limited.warning(
                self.log, "diameter_peer_refused", "diameter_peer_refused", peer_host=host, source=ip, why=why
            )
            return why

        return authorize

    def publish_peer(self, conn: _PeerConnection, event: str, **extra: Any) -> None:
        publish_peer(self.events, self.log, IFACE, conn.peer, conn.transport_name, event, **extra)

    def addresses(self) -> list[tuple[str, int, str]]:
        return bound_addresses(self.listeners)

    def peers(self) -> list[dict[str, Any]]:
        """The peer connections now: state (RFC 6733 §5.6), identity and counters."""
        out = []
        for c in list(self.connections):
            core = c.core
            out.append(
                {
                    "address": c.peer,
                    "transport": c.transport_name,
                    "state": core.state.name if core is not None else "CLOSED",
                    "origin_host": c.peer_host,
                    "origin_realm": core.peer_realm if core is not None else None,
                    "connected_at": c.connected_at,
                    "checks": c.checks,
                    "in_flight": len(c.tasks),
                }
            )
        return out

    async def listen(self) -> None:
        cfg = self.config.diameter
        # RFC 6733 §2.1.1: one-to-one SCTP sockets, PPID 46 on every message
        self.listeners += await open_listeners(
            self.log,
            "diameter",
            cfg.listen,
            cfg.transports,
            lambda t: _PeerConnection(self, t),
            ppid=SCTP_PPID_DIAMETER,
            framer=diameter_framer,
            reuse_port=self.config.workers > 1,
            backlog=512,
        )
        if cfg.tls_listen and cfg.tls_cert and cfg.tls_key:
            await self._listen_tls()
        if not (cfg.allow_sources or cfg.allow_hosts or cfg.allow_realms):
            warn_if_exposed(
                self.log,
                "diameter",
                [*cfg.listen, *cfg.tls_listen],
                ("allow_sources", "allow_hosts", "allow_realms"),
            )
        for host, port, transport in self.addresses():
            self.log.debug(  # the start-up banner lists every listener
                "diameter_listening",
                host=host,
                port=port,
                transport=transport,
                origin_host=cfg.origin_host,
                origin_realm=cfg.origin_realm,
            )

    async def _listen_tls(self) -> None:
        """RFC 6733 §13: TLS/TCP on ports of their own, TLS from the first octet (no in-band
        Inband-Security-Id negotiation). The handshake must complete within Tw, the limit a
        plain-TCP peer has for its CER."""
        cfg = self.config.diameter
        assert cfg.tls_cert is not None and cfg.tls_key is not None
        ctx = diameter_tls_context(cfg.tls_cert, cfg.tls_key, cfg.tls_peer_ca, cfg.tls_keylog)
        loop = asyncio.get_running_loop()
        for i, addr in enumerate(cfg.tls_listen):
            host, port = parse_hostport(addr, f"diameter.tls_listen[{i}]")
            srv = await loop.create_server(
                lambda: _PeerConnection(self, "tls"),
                host,
                port,
                ssl=ctx,
                ssl_handshake_timeout=cfg.watchdog_interval,
                reuse_port=self.config.workers > 1 or None,
                backlog=512,
            )
            self.listeners.append((srv, "tls"))

    async def shutdown(self, grace: float) -> None:
        for srv, _ in self.listeners:
            srv.close()
        self.limited.flush()
        if self.connections:
            await asyncio.gather(*(c.close(grace) for c in list(self.connections)), return_exceptions=True)
        for srv, _ in self.listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1.0)


async def start(config: Config, checker: Checker, events: EventSink) -> DiameterServer:
    """Start the S13 interface (see the module docstring)."""
    register_metrics(CLOSED)
    for reason in (*_CLOSED_BY_TIMER.values(), "write_stalled"):
        CLOSED.labels(IFACE, reason)
    prepare(config, IFACE)
    for code in ResultCode:
        if code >= 3000:  # the errors the core answers with, 0 until they happen (eir.metrics)
            PROTOCOL_ERRORS.labels(IFACE, _error_label(code))
    PROTOCOL_ERRORS.labels(IFACE, "internal")
    for reason in ("unknown_peer", "realm_not_served", "host_not_served", "origin_mismatch"):
        REFUSED.labels(IFACE, reason)
    server = DiameterServer(config, checker, events)
    try:
        await server.listen()
    except BaseException:
        for srv, _ in server.listeners:
            srv.close()
        raise
    return server
