"""MAP checkIMEI over M3UA: the asyncio adapter around :class:`protocols.sigtran.stack.EirSigtranStack`.

* listens on ``m3ua.listen`` over TCP (M3UA framed by its length field) and over SCTP (PPID 3)
  where the kernel has it — a plain log line says when it does not;
* optionally connects out (``m3ua.connect``) as an ASP to an STP/SG, reconnecting with back-off;
* each checkIMEI becomes a :class:`~eir.model.CheckRequest` (interface MAP, origin = the calling GT
  or ``pc:<OPC>``); the verdict goes back as equipmentStatus, UNKNOWN as unknownEquipment and
  FAILURE as systemFailure;
* overload (:mod:`eir.overload`; the peer is the calling GT or ``pc:<OPC>``): a refused checkIMEI
  gets systemFailure, or a TC-U-Abort (``overload.map_answer``); faults (:mod:`eir.faults`, peer
  names ``gt:<GT>``, ``pc:<OPC>``, the remote address): ``map_error``, ``tcap_abort`` and
  ``asp_down`` (an unsolicited ASP Down Ack, the ASP considered down) here, the rest in the
  dispatch path;
* metrics, one log line per ASP state change and per protocol error, ``peer`` events; the TCAP/MAP
  core's own counters (:class:`~protocols.sigtran.tcap_dialogues.TcapStats`) are read at scrape time by
  :class:`TcapStatsCollector` (``eir_tcap_*`` / ``eir_map_*``), so the hot path pays nothing;
* limits (issue 10): the core ends an association with no ASP-ACTIVE within ``m3ua.setup_timeout``,
  idle for ``m3ua.idle_timeout`` or leaving two BEATs unanswered; a peer that leaves
  ``m3ua.write_buffer_limit`` unread for ``m3ua.write_timeout`` is cut (:class:`WriteStallGuard`);
  each counted in ``eir_connections_closed{interface="map", reason}``. The stack answers only for our
  point codes, NI and called GT and applies the OPC / calling-GT screening (``MessageRefused``:
  ``eir_refused``);
* shutdown: stop listening, wait until no check is in flight (those accepted meanwhile included),
  ASPDN on outbound associations, close, cut what remains after ``grace`` seconds (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any, Final, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from eir import recording
from eir.config import Config, parse_hostport
from eir.events import EventSink
from eir.faults import FaultRule
from eir.logging import RateLimitedLog, get_logger
from eir.metrics import CHECK_SECONDS, PEER_EVENTS, PEERS, PROTOCOL_ERRORS, REFUSED, register_metrics
from eir.model import Checker, CheckRequest, Interface, Status, Verdict, request_factory
from eir.servers._adapter import CoreProtocol, prepare
from eir.servers._listen import Listeners, bound_addresses, open_listeners, publish_peer
from eir.servers._trust import (
    CLOSED,
    ConnectionLimiter,
    WriteStallGuard,
    networks,
    source_allowed,
    source_ip,
    warn_if_exposed,
)
from netio.sctp import SCTP_PPID_M3UA, m3ua_framer, sctp_available, sctp_create_connection
from protocols.sigtran import (
    EquipmentStatus,
    MapError,
    MapVendorVariantAccepted,
    TcapErrorKind,
    TcapStats,
    m3ua,
    sccp,
)
from protocols.sigtran.stack import (
    CheckImeiRequested,
    EirSigtranStack,
    MessageRefused,
    SccpDiscarded,
    SccpReturned,
    TcapProtocolErrorOccurred,
)

__all__ = ["DIALOGUE_TIMEOUT", "TCAP_STATS", "M3uaServer", "TcapStatsCollector", "sctp_available", "start"]

IFACE = Interface.MAP.value

_STATUS = {
    Status.WHITE: EquipmentStatus.WHITE_LISTED,
    Status.BLACK: EquipmentStatus.BLACK_LISTED,
    Status.GREY: EquipmentStatus.GREY_LISTED,
}

_WHITE: Final = EquipmentStatus.WHITE_LISTED
_BLACK: Final = EquipmentStatus.BLACK_LISTED
_GREY: Final = EquipmentStatus.GREY_LISTED

_ERROR_LABELS: Final = (
    "internal",
    "sccp_discarded",
    *(f"m3ua_{c.name.lower()}" for c in m3ua.ErrorCode),
    *(f"sccp_{c.name.lower()}" for c in sccp.ReturnCause),
    *(f"tcap_{k.value}" for k in TcapErrorKind),
)
"""The ``error`` labels of eir_protocol_errors this interface can count, exported from start-up."""

_REFUSALS: Final = {
    m3ua.ErrorCode.REFUSED_MANAGEMENT_BLOCKING: "asp_id",
    m3ua.ErrorCode.ASP_IDENTIFIER_REQUIRED: "asp_id",
    m3ua.ErrorCode.INVALID_ROUTING_CONTEXT: "routing_context",
}
"""ERRs that refuse an ASP (m3ua.allow_asp_ids / allow_routing_contexts, or a message naming an RC
other than m3ua.routing_context): counted in eir_refused{interface="map", reason}."""

_ADDRESS_CHECKS: Final = ("dpc", "ni", "screen_opc", "screen_calling_gt")
"""eir_refused reasons of :class:`MessageRefused` (a called GT not ours is an SCCP return: counted
in eir_protocol_errors as sccp_no_translation_for_*)."""

_CLOSE_REASONS: Final = ("setup_timeout", "idle_timeout", "heartbeat_timeout", "ack_timeout", "write_stalled")

_map_request: Final = request_factory(Interface.MAP)
_EXTRAS: dict[tuple[int, str | None], dict[str, Any]] = {}
_PEERS = PEERS.labels(IFACE)

DIALOGUE_TIMEOUT = 30.0
"""Seconds a TCAP dialogue waits for its verdict before the EIR aborts it (TC-U-ABORT): well past
any store timeout, and under the MSC's own checkIMEI operation timer."""

_VENDORS = ("huawei", "ericsson", "other")
"""Always exported (0 until seen), so a dashboard has the series before the first variant."""

_INT_FIELDS = tuple(
    f.name for f in dataclasses.fields(TcapStats) if isinstance(getattr(TcapStats(), f.name), int)
)
"""The plain counters of TcapStats (all but the ``vendor_variants`` dict)."""


class TcapStatsCollector:
    """Exports :class:`TcapStats` of every M3UA association as Prometheus metrics at scrape time.

    The TCAP core counts in plain ints on its hot path; this collector sums the stats of the live
    associations (``attach`` / ``detach``) with those of the closed ones (folded in on ``detach``,
    so the counters never go back). Labels are fixed sets (component, message type, vendor form):
    no peer, no IMEI. Scrapes run in prometheus_client's server thread: the lock makes the live set
    and the retired totals one snapshot, and reading an int or copying a dict is atomic under the GIL.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[EirSigtranStack] = set()
        self._retired = TcapStats()

    def attach(self, stack: EirSigtranStack) -> None:
        with self._lock:
            self._live.add(stack)

    def detach(self, stack: EirSigtranStack) -> None:
        with self._lock:
            if stack in self._live:
                self._live.remove(stack)
                _add_stats(self._retired, stack.tcap.stats)

    def totals(self) -> tuple[TcapStats, int]:
        """(stats summed over all associations since start, TCAP dialogues open now)."""
        total = TcapStats()
        with self._lock:
            live = tuple(self._live)
            _add_stats(total, self._retired)
        open_dialogues = 0
        for stack in live:
            _add_stats(total, stack.tcap.stats)
            open_dialogues += stack.tcap.active_dialogues
        return total, open_dialogues

    def collect(self) -> Iterator[Metric]:
        s, open_dialogues = self.totals()

        def counter(name: str, doc: str, value: int) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        yield counter("eir_tcap_messages_received", "TCAP messages received for the EIR's SSN", s.messages)
        yield counter(
            "eir_tcap_begins_received", "TCAP Begins received (dialogues opened or refused)", s.begins
        )
        yield counter("eir_map_check_imei_invokes", "checkIMEI invokes accepted for a verdict", s.invokes)
        components = CounterMetricFamily(
            "eir_tcap_components_sent",
            "Components put into TCAP Ends (an End too large for one UDT goes out as a P-Abort "
            "instead, counted in eir_tcap_oversized_replies)",
            labels=["component"],
        )
        components.add_metric(["return_result"], s.results_sent)
        components.add_metric(["return_error"], s.errors_sent)
        components.add_metric(["reject"], s.rejects_sent)
        yield components
        sent = CounterMetricFamily(
            "eir_tcap_messages_sent", "TCAP messages sent (an Abort: P- or U-Abort)", labels=["type"]
        )
        sent.add_metric(["end"], s.ends_sent)
        sent.add_metric(["abort"], s.aborts_sent)
        yield sent
        yield counter(
            "eir_tcap_dialogues_expired",
            "Dialogues aborted because their verdict took longer than the dialogue timeout",
            s.expired,
        )
        yield counter(
            "eir_tcap_dialogues_replaced",
            "Pending dialogues replaced by a Begin reusing their OTID",
            s.replaced,
        )
        yield counter(
            "eir_map_late_answers",
            "Verdicts that found their dialogue gone (expired or replaced) and were dropped",
            s.late_answers,
        )
        yield counter(
            "eir_map_stale_answers",
            "Verdicts dropped because a Begin had reused their dialogue's OTID",
            s.stale_answers,
        )
        yield counter(
            "eir_tcap_messages_discarded",
            "TCAP messages dropped without an answer (no OTID to answer, End, Abort, ...)",
            s.discarded,
        )
        yield counter(
            "eir_tcap_oversized_replies",
            "Ends too large for a UDT/XUDT, sent as a P-Abort resourceLimitation",
            s.oversized,
        )
        variants = CounterMetricFamily(
            "eir_map_vendor_variants",
            "checkIMEI invokes accepted in a non-standard form, by vendor (other: a tolerated deviation "
            "of no known vendor)",
            labels=["vendor"],
        )
        counts = dict.fromkeys(_VENDORS, 0) | s.vendor_variants
        for vendor, n in sorted(counts.items()):
            variants.add_metric([vendor], n)
        yield variants
        yield GaugeMetricFamily(
            "eir_tcap_open_dialogues", "TCAP dialogues awaiting their verdict", value=open_dialogues
        )


def _add_stats(into: TcapStats, other: TcapStats) -> None:
    for name in _INT_FIELDS:
        setattr(into, name, getattr(into, name) + getattr(other, name))
    variants = into.vendor_variants
    for vendor, n in dict(other.vendor_variants).items():  # dict(): one C-level copy
        variants[vendor] = variants.get(vendor, 0) + n


TCAP_STATS = TcapStatsCollector()


class _Association(CoreProtocol):
    """One M3UA association (accepted, or connected out as an ASP)."""

    def __init__(self, server: M3uaServer, role: m3ua.Role, transport_name: str) -> None:
        self.server = server
        cfg = server.config.m3ua
        self._init_plumbing(cfg.max_in_flight, server.checker)
        self.check_seconds = CHECK_SECONDS.labels(IFACE)
        self.stack = EirSigtranStack(
            m3ua_settings=m3ua.M3uaSettings(
                role=role,
                routing_context=cfg.routing_context,
                network_appearance=cfg.network_appearance,
                beat_interval=cfg.beat_interval,
                setup_timeout=cfg.setup_timeout,
                idle_timeout=cfg.idle_timeout,
                info_string="eir-emulator",
                asp_id=cfg.asp_id,
                allowed_asp_ids=frozenset(cfg.allow_asp_ids) or None,
                allowed_routing_contexts=frozenset(cfg.allow_routing_contexts) or None,
            ),
            point_code=cfg.point_code,
            ssn=cfg.ssn,
            global_title=cfg.global_title,
            map_versions=tuple(cfg.map_versions),
            max_dialogues=max(cfg.max_in_flight * 4, 1024),
            dialogue_timeout=server.dialogue_timeout,
            point_codes=frozenset((cfg.point_code, *cfg.accept_point_codes)),
            network_indicators=frozenset(cfg.network_indicators) or None,
            accept_global_titles=(cfg.global_title, *cfg.accept_global_titles),
            screen_opcs=frozenset(cfg.screen_opcs) or None,
            screen_calling_gt_prefixes=tuple(cfg.screen_calling_gt_prefixes) or None,
        )
        self.write_guard = WriteStallGuard(cfg.write_timeout, cfg.write_buffer_limit, self._write_stalled)
        self.role = role
        self.transport_name = transport_name
        self.peer = "?"
        self.log = get_logger(interface=IFACE)
        self.counted_active = False
        self.closed = asyncio.Event()
        self.was_active = False
        """The ASP reached ASP-ACTIVE at least once: the peer took us (the connector's back-off)."""
        self.connected_at = 0.0
        self.checks = 0
        """checkIMEI invokes received (reported by the admin API's peers)."""
        self.admitted = role is m3ua.Role.ASP
        """Accepted associations count against the connection limits once admitted."""
        self.source: str | None = None
        self.variants_logged: set[str] = set()
        """The vendor forms this association's log has named (once each)."""

    def _core(self) -> EirSigtranStack:
        return self.stack

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport
        if self.role is m3ua.Role.SG and not self.server.admit(self, transport):
            return
        self._record_open("m3ua")
        self.write_guard.install(transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.log = get_logger(interface=IFACE, peer=self.peer, transport=self.transport_name)
        self.server.associations.add(self)
        self.connected_at = time.time()
        TCAP_STATS.attach(self.stack)
        PEER_EVENTS.labels(IFACE, "connected").inc()
        self.log.debug("m3ua_connected", role=self.role.name.lower())  # m3ua_asp_state ACTIVE says it
        self.server.publish_peer(self, "connected")
        self._handle(self.stack.start(self.loop.time()))
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.sctp_data_received(data, None)

    def _write_stalled(self) -> None:
        """The peer left our messages unread past m3ua.write_timeout (:class:`WriteStallGuard`)."""
        CLOSED.labels(IFACE, "write_stalled").inc()
        self.server.limited.warning(
            self.log,
            "m3ua_closed:write_stalled",
            "m3ua_closed_by_limit",
            reason="write_stalled",
            detail=f"peer read nothing for {self.write_guard.timeout:g} s with our buffer full",
        )
        if self.transport is not None:
            self.transport.abort()

    def sctp_data_received(self, data: bytes, stream: int | None) -> None:
        """One SCTP message and the stream it came on (RFC 4666 §1.4.7: the core checks it); from
        TCP, ``stream`` is None."""
        if self.recorder is not None:
            self.recorder.received(data)
        if self.failed:
            return
        try:
            self._handle(self.stack.receive_data(data, self.loop.time(), stream))
            self._flush()
        except Exception:  # a bug, not bad input (that gets ERR from the core): never asyncio's
            self._internal_error(data)  # "Fatal error: protocol.data_received() call failed"

    def eof_received(self) -> bool | None:
        if not self.failed:
            try:
                self._handle(self.stack.receive_data(b"", self.loop.time()))
            except Exception:
                self._internal_error(b"")
        return None

    def _internal_error(self, data: bytes) -> None:
        """Defence in depth: the core raised. Log it with the input, count it, answer ERR Protocol
        Error (RFC 4666 §3.8.1) with the input as Diagnostic Information, and close — whatever the
        core had queued is not sent, its state being unknown."""
        self.failed = True
        self.log.exception("m3ua_internal_error", peer=self.peer, data=data[:64].hex())
        PROTOCOL_ERRORS.labels(IFACE, "internal").inc()
        self._cancel_timer()
        tr = self.transport
        if tr is None or tr.is_closing():
            return
        err = m3ua.encode_error(m3ua.ErrorCode.PROTOCOL_ERROR, data)
        with contextlib.suppress(Exception):
            tr.write(err)
            if self.recorder is not None:  # --pcap: the capture shows everything on the wire
                self.recorder.sent(err)
        tr.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.admitted:
            return  # refused at accept (M3uaServer.admit)
        if self.role is m3ua.Role.SG:
            self.server.limiter.release(self.source)
        self._cancel_timer()
        self.write_guard.cancel()
        self._record_close()
        # cut without ASPDN: the ASP is down all the same (the core reports it)
        self._handle(self.stack.connection_lost(self.loop.time()))
        if self.counted_active:
            _PEERS.dec()
            self.counted_active = False
        for t in self.tasks:
            t.cancel()
        self.server.associations.discard(self)
        TCAP_STATS.detach(self.stack)
        PEER_EVENTS.labels(IFACE, "disconnected").inc()
        self.log.debug("m3ua_disconnected", error=str(exc) if exc else None)  # after m3ua_closing
        self.server.publish_peer(self, "disconnected")
        self.closed.set()

    # -- events -------------------------------------------------------------------------------------

    def _handle(self, events: list[Any]) -> None:
        for ev in events:
            t = type(ev)
            if t is CheckImeiRequested:
                self._check(ev)
            elif t is MapVendorVariantAccepted:
                # second: a population load (an IMSI per Begin) sends a vendor form in every check
                if ev.vendor not in self.variants_logged:
                    # Once per association and vendor form: an MSC of that vendor sends the form in
                    # every check (an IMSI-carrying load wrote an info line per check); every one is
                    # counted in eir_map_vendor_variants_total.
                    self.variants_logged.add(ev.vendor)
                    detail = f"{ev.vendor}: {ev.detail}"  # the log line's detail as it was
                    self.log.info(
                        "map_vendor_variant", vendor=ev.vendor, detail=detail, dialogue_id=ev.dialogue_id
                    )
            elif t is m3ua.AspStateChanged:
                self._state_changed(ev)
            elif t is m3ua.ErrorSent:
                label = f"m3ua_{ev.code.name.lower()}"
                PROTOCOL_ERRORS.labels(IFACE, label).inc()
                refusal = _REFUSALS.get(ev.code)
                if refusal is not None:
                    REFUSED.labels(IFACE, refusal).inc()
                self.server.limited.warning(
                    self.log,
                    f"m3ua_error_sent:{label}",
                    "m3ua_error_sent",
                    code=f"0x{ev.code:02x}",
                    error=ev.code.name,
                    detail=ev.detail,
                )
            elif t is m3ua.ErrDiscarded:
                label = f"m3ua_{ev.code.name.lower()}"
                PROTOCOL_ERRORS.labels(IFACE, label).inc()
                self.server.limited.warning(
                    self.log,
                    f"m3ua_err_discarded:{label}",
                    "m3ua_err_discarded",
                    code=f"0x{ev.code:02x}",
                    error=ev.code.name,
                    detail=ev.detail,
                )
            elif t is m3ua.ErrorReceived:
                self.server.limited.warning(
                    self.log,
                    "m3ua_error_received",
                    "m3ua_error_received",
                    code=f"0x{ev.code:02x}",
                    diagnostic=ev.diagnostic.hex() or None,
                )
            elif t is m3ua.ConnectionTerminated:
                if ev.timer is not None:
                    reason = f"{ev.timer}_timeout"
                    CLOSED.labels(IFACE, reason).inc()
                    self.server.limited.warning(
                        self.log,
                        f"m3ua_closed:{reason}",
                        "m3ua_closed_by_limit",
                        reason=reason,
                        detail=ev.reason,
                    )
                else:
                    self.log.info("m3ua_closing", reason=ev.reason)
                self._flush()
                if self.transport is not None:
                    self.transport.close()
                    self.write_guard.closing(self.loop, self.transport)
            elif t is SccpReturned:
                label = f"sccp_{ev.cause.name.lower()}"
                PROTOCOL_ERRORS.labels(IFACE, label).inc()
                self.server.limited.warning(
                    self.log,
                    f"sccp_returned:{label}",
                    "sccp_returned",
                    cause=ev.cause.name,
                    called_ssn=ev.called_ssn,
                    udts_sent=ev.sent,
                    opc=ev.opc,
                )
            elif t is MessageRefused:
                REFUSED.labels(IFACE, ev.check).inc()
                self.server.limited.warning(
                    self.log,
                    f"m3ua_refused:{ev.check}",
                    "map_message_refused",
                    check=ev.check,
                    detail=ev.detail,
                    opc=ev.opc,
                    answer=ev.answer,
                    cause=ev.cause.name if ev.cause is not None else None,
                )
            elif t is SccpDiscarded:
                PROTOCOL_ERRORS.labels(IFACE, "sccp_discarded").inc()
                self.server.limited.warning(
                    self.log, "sccp_discarded", "sccp_discarded", reason=ev.reason, opc=ev.opc
                )
            elif t is m3ua.NotifyReceived:
                self.log.info("m3ua_notify", status_type=ev.status_type, status_info=ev.status_info)
            elif t is m3ua.SignallingNetworkManagementReceived:
                self.log.info(
                    "m3ua_ssnm", message=ev.type.name, affected_point_codes=list(ev.affected_point_codes)
                )
            elif t is TcapProtocolErrorOccurred:
                PROTOCOL_ERRORS.labels(IFACE, f"tcap_{ev.kind}").inc()
                self.server.limited.warning(
                    self.log,
                    f"tcap_error:{ev.kind}",
                    "tcap_error",
                    kind=ev.kind,
                    detail=ev.detail,
                    dialogue_id=ev.dialogue_id,
                )
            # HeartbeatAcked: nothing to do beyond the core's bookkeeping.

    def _state_changed(self, ev: m3ua.AspStateChanged) -> None:
        state = f"asp_{ev.new.name.lower()}"
        PEER_EVENTS.labels(IFACE, state).inc()
        if ev.new is m3ua.AspState.ACTIVE:
            self.was_active = True
        if ev.new is m3ua.AspState.ACTIVE and not self.counted_active:
            _PEERS.inc()
            self.counted_active = True
        elif ev.new is not m3ua.AspState.ACTIVE and self.counted_active:
            _PEERS.dec()
            self.counted_active = False
        # a person wants ACTIVE and leaving ACTIVE; DOWN→INACTIVE and the way down at the close
        # (m3ua_closing gives the reason) are detail
        loud = ev.new is m3ua.AspState.ACTIVE or (
            ev.old is m3ua.AspState.ACTIVE and ev.new is m3ua.AspState.INACTIVE
        )
        (self.log.info if loud else self.log.debug)(
            "m3ua_asp_state",
            old=ev.old.name,
            new=ev.new.name,
            asp_id=ev.asp_id,
            routing_context=list(ev.routing_context) or None,
        )
        self.server.publish_peer(self, state, asp_id=ev.asp_id)

    def _check(self, ev: CheckImeiRequested) -> None:
        self.checks += 1
        inv = ev.invoke
        key = (inv.version, inv.vendor)
        extras = _EXTRAS.get(key)
        if extras is None:  # one shared, never-mutated mapping per (MAP version, vendor form)
            extras = {"map_version": inv.version} | ({"vendor": inv.vendor} if inv.vendor else {})
            _EXTRAS[key] = extras
        # The IMEI goes as received: a 15th digit is the spare digit or a CD, and the one
        # normaliser (protocols.imei.parse_identity, via the policy) tells them apart.
        self._dispatch(_map_request(inv.imei, None, inv.imsi, inv.msisdn, ev.origin, extras), ev)

    # -- overload control and fault injection (eir.overload, eir.faults; issue 7 §4, issue 10) --

    def _peer_key(self, request: CheckRequest) -> str:
        return request.origin or self.peer

    def _fault_peers(self, request: CheckRequest, ctx: Any) -> tuple[str, ...]:
        origin = request.origin or ""
        ev: CheckImeiRequested = ctx
        gt = origin if origin.startswith("pc:") else f"gt:{origin}"
        return (gt, f"pc:{ev.route.opc}", self.source or self.peer.rpartition(":")[0])

    def _overloaded(self, ev: CheckImeiRequested) -> None:
        if self.server.config.overload.map_answer == "tc_abort":
            self.stack.abort(ev)
        else:
            self.stack.answer_error(ev, MapError.SYSTEM_FAILURE)

    def _fault(self, rule: FaultRule, ev: CheckImeiRequested) -> bool:
        kind = rule.kind
        if kind == "map_error":
            self.stack.answer_error(ev, cast(MapError, rule.map_error))
        elif kind == "tcap_abort":
            self.stack.abort(ev)
        elif kind == "asp_down":
            self._handle(self.stack.take_down(self.loop.time()))
        else:
            return False
        return True

    def _answer(self, ev: CheckImeiRequested, verdict: Verdict) -> None:
        status = verdict.status
        # identity tests, not a dict lookup: hashing an Enum member runs Python code (as S13's)
        if status is Status.WHITE:
            self.stack.answer(ev, _WHITE, None)
        elif status is Status.BLACK:
            self.stack.answer(ev, _BLACK, None)
        elif status is Status.GREY:
            self.stack.answer(ev, _GREY, None)
        elif status is Status.UNKNOWN:
            self.stack.answer_error(ev, MapError.UNKNOWN_EQUIPMENT)
        else:
            self.stack.answer_error(ev, MapError.SYSTEM_FAILURE)

    async def _drain(self, deadline: float) -> None:
        """Wait until no check is in flight, or until ``deadline``.

        Checks accepted while waiting count too: the association is still ASP-ACTIVE, so the peer
        keeps sending Begins and each one is owed its End. Waiting on one snapshot of the tasks (as
        this did before) left those to be cancelled by the close, never answered.
        """
        while self.tasks:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                break
            await asyncio.wait(set(self.tasks), timeout=remaining)
        if self.tasks:
            self.log.warning("m3ua_shutdown_cut_checks", in_flight=len(self.tasks))

    async def close(self, grace: float) -> None:
        """Graceful: let every check in flight answer (:meth:`_drain`), ASPDN (ASP role), then close;
        cut after ``grace``. The Ends still queued are flushed ahead of the ASPDN / the close."""
        tr = self.transport
        if tr is None or tr.is_closing():
            return
        deadline = self.loop.time() + grace
        await self._drain(deadline)
        if self.role is m3ua.Role.ASP and self.stack.m3ua.state is not m3ua.AspState.DOWN:
            self._handle(self.stack.stop(self.loop.time()))
            self._flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closed.wait(), max(0.0, deadline - self.loop.time()))
        if not tr.is_closing():
            self._flush()
            tr.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), max(0.05, deadline - self.loop.time()))
        if not self.closed.is_set():
            tr.abort()


class M3uaServer:
    """The running M3UA interface: listeners, outbound associations, and the associations."""

    name = "m3ua"

    def __init__(
        self,
        config: Config,
        checker: Checker,
        events: EventSink,
        *,
        dialogue_timeout: float = DIALOGUE_TIMEOUT,
    ) -> None:
        self.config = config
        self.dialogue_timeout = dialogue_timeout
        self.checker = checker
        self.events = events
        self.listeners: Listeners = []
        self.associations: set[_Association] = set()
        self.connectors: list[asyncio.Task[None]] = []
        self.log = get_logger(interface=IFACE)
        self.stopping = False
        cfg = config.m3ua
        self.limited = RateLimitedLog(config.log.rate_limit_burst, config.log.rate_limit_interval)
        self.limiter = ConnectionLimiter(
            IFACE, cfg.max_connections, cfg.max_connections_per_source, self.limited, self.log
        )
        self.allow_sources = networks(cfg.allow_sources)

    def admit(self, assoc: _Association, transport: asyncio.BaseTransport) -> bool:
        """An accepted association: within the connection limits (else closed at once) and from an
        allowed source (else ERR Refused - Management Blocking, RFC 4666 §3.8.1, and closed)."""
        assoc.source = ip = source_ip(transport)
        if not source_allowed(self.allow_sources, ip):
            REFUSED.labels(IFACE, "source_address").inc()
            self.limited.warning(self.log, "m3ua_source_refused", "m3ua_source_refused", source=ip)
            err = m3ua.encode_error(m3ua.ErrorCode.REFUSED_MANAGEMENT_BLOCKING, b"")
            with contextlib.suppress(Exception):
                transport.write(err)  # type: ignore[attr-defined]
                rec = recording.connection("m3ua", transport)  # --pcap: refusals are on the wire too
                if rec is not None:
                    rec.sent(err)
            transport.close()
            return False
        if not self.limiter.admit(ip):
            transport.abort()  # type: ignore[attr-defined]
            return False
        assoc.admitted = True
        return True

    def publish_peer(self, assoc: _Association, event: str, **extra: Any) -> None:
        publish_peer(self.events, self.log, IFACE, assoc.peer, assoc.transport_name, event, **extra)

    def addresses(self) -> list[tuple[str, int, str]]:
        return bound_addresses(self.listeners)

    def peers(self) -> list[dict[str, Any]]:
        """The associations now: role, ASP state (RFC 4666 §4.3.1), ASP id, routing contexts, counters."""
        out = []
        for a in list(self.associations):
            conn = a.stack.m3ua
            out.append(
                {
                    "address": a.peer,
                    "transport": a.transport_name,
                    "role": a.role.name.lower(),
                    "state": conn.state.name,
                    "asp_id": conn.asp_id,
                    "routing_context": list(conn.peer_routing_context),
                    "connected_at": a.connected_at,
                    "checks": a.checks,
                    "in_flight": len(a.tasks),
                }
            )
        return out

    async def listen(self) -> None:
        cfg = self.config.m3ua
        loop = asyncio.get_running_loop()
        self.listeners += await open_listeners(
            self.log,
            "m3ua",
            cfg.listen,
            cfg.transports,
            lambda t: _Association(self, m3ua.Role.SG, t),
            ppid=SCTP_PPID_M3UA,
            framer=m3ua_framer,
            reuse_port=self.config.workers > 1,
            backlog=128,
        )
        if not (cfg.allow_sources or cfg.allow_asp_ids or cfg.allow_routing_contexts):
            warn_if_exposed(
                self.log, "m3ua", cfg.listen, ("allow_sources", "allow_asp_ids", "allow_routing_contexts")
            )
        for addr in cfg.connect:
            self.connectors.append(loop.create_task(self._connect_loop(addr)))

    async def _connect_loop(self, addr: str) -> None:
        """Outbound ASP association to an STP/SG, re-established with back-off (1 s … 30 s).

        The back-off starts again at 1 s only after an association that reached ASP-ACTIVE: an STP
        that accepts the transport but then drops the ASP (unknown ASP, wrong routing context, no
        ASPUP ACK) is retried ever more slowly, like one that refuses the connection.
        """
        host, port = parse_hostport(addr, "m3ua.connect")
        loop = asyncio.get_running_loop()
        backoff = 1.0
        use_sctp = "sctp" in self.config.m3ua.transports and sctp_available() is None
        while not self.stopping:
            try:
                proto: _Association
                if use_sctp:  # the socket is closed if the connect fails (one fd per retry otherwise)
                    _, p = await sctp_create_connection(
                        lambda: _Association(self, m3ua.Role.ASP, "sctp"),
                        host,
                        port,
                        SCTP_PPID_M3UA,
                        framer=m3ua_framer,
                    )
                    proto = p  # type: ignore[assignment]
                else:
                    _, proto = await loop.create_connection(
                        lambda: _Association(self, m3ua.Role.ASP, "tcp"), host, port
                    )
                await proto.closed.wait()
                if proto.was_active:
                    backoff = 1.0
                if not self.stopping:
                    self.log.info(
                        "m3ua_reconnecting", address=addr, retry_in=backoff, was_active=proto.was_active
                    )
            except OSError as e:
                self.log.warning(
                    "m3ua_connect_failed", address=addr, error=e.strerror or str(e), retry_in=backoff
                )
            if self.stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def shutdown(self, grace: float) -> None:
        self.stopping = True
        self.limited.flush()
        for srv, _ in self.listeners:
            srv.close()
        for t in self.connectors:
            if not t.done():
                # keep the task's association: it is closed below with the others
                t.cancel()
        if self.associations:
            await asyncio.gather(*(a.close(grace) for a in list(self.associations)), return_exceptions=True)
        for t in self.connectors:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.log.info("m3ua_stopped")


async def start(config: Config, checker: Checker, events: EventSink) -> M3uaServer:
    register_metrics(TCAP_STATS, CLOSED)
    prepare(config, IFACE)
    for label in _ERROR_LABELS:
        PROTOCOL_ERRORS.labels(IFACE, label)  # 0 until it happens (eir.metrics)
    for reason in ("source_address", "asp_id", "routing_context", *_ADDRESS_CHECKS):
        REFUSED.labels(IFACE, reason)
    for reason in _CLOSE_REASONS:
        CLOSED.labels(IFACE, reason)
    server = M3uaServer(config, checker, events, dialogue_timeout=config.m3ua.dialogue_timeout)
    try:
        await server.listen()
    except BaseException:
        await server.shutdown(0)
        raise
    return server
