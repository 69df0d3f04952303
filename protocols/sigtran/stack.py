"""The EIR's SIGTRAN stack on one association, and the matching MSC/SGSN client — sans-IO.

Composition in the aioquic ``H3Connection``-over-``QuicConnection`` manner: each layer's core is
driven by the one below and the result goes back down.

* :class:`EirSigtranStack` — M3UA (SG role, RFC 4666) → SCCP (Q.713/Q.714) → TCAP/MAP
  (:class:`~.tcap_dialogues.TcapEirCore`). ``receive_data`` yields
  :class:`CheckImeiRequested` events that carry the routing needed to answer (OPC/DPC/SLS, routing
  context, the SCCP request); ``answer`` / ``answer_error`` build the TCAP End and send it back
  as UDT (or XUDT) in DATA with the addresses swapped. The :class:`Route` of a dialogue is kept by
  the TCAP core with the dialogue itself (an Abort on expiry goes back the same way), so the stack
  keeps no table of its own.
* :class:`CheckImeiClient` — the other end (M3UA ASP role): a simulated MSC/SGSN sending checkIMEI
  Begins and matching the replies by transaction id; used by ``simulations.msc``, the tests and
  the benchmark.

Errors stay in their layer: a bad M3UA message becomes an ERR (``m3ua.ErrorSent``), a bad SCCP
message a :class:`SccpDiscarded` event (or a UDTS when return-on-error is set), a bad TCAP
message is answered by the TCAP core (Abort / Reject) and reported as a
:class:`~.tcap_dialogues.TcapProtocolErrorOccurred`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..imei import tbcd_encode as _tbcd_encode
from . import m3ua, sccp
from ._map_fast import BeginMemo, BeginShape, learn
from ._tcap_fast import match_check_imei_begin
from .map_checkimei import EquipmentStatus, MapError, MapParameterError, _imei_octets, decode_check_imei_arg
from .map_client import CheckImeiOutcome, decode_check_imei_reply, encode_check_imei_begin
from .tcap_dialogues import (
    CheckImeiInvoked,
    MapVendorVariantAccepted,
    TcapEirCore,
    TcapProtocolErrorOccurred,
)

__all__ = [
    "CheckImeiAnswered",
    "CheckImeiClient",
    "CheckImeiRequested",
    "ClientEvent",
    "EirSigtranStack",
    "MapVendorVariantAccepted",
    "MessageRefused",
    "Route",
    "SccpDiscarded",
    "SccpReturned",
    "StackEvent",
    "TcapProtocolErrorOccurred",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Everything needed to send an answer back the way the request came: kept by the TCAP core
    with the dialogue the request opened."""

    opc: int
    """The request's OPC: the answer's DPC."""
    dpc: int
    """The request's DPC (our point code as the peer addressed it): the answer's OPC."""
    ni: int
    sls: int
    routing_context: int | None
    request: sccp.Unitdata
    """The request's SCCP header (type, class, addresses, importance); its ``data`` is empty (the
    user data is not kept: a route outlives the message, and requests of one shape share it)."""
    shape: BeginShape | None = field(default=None, compare=False, repr=False)
    """The fast path's shape the request had (see :mod:`._map_fast`): its answer is patched from
    a template. None for a request the general path read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckImeiRequested:
    """A checkIMEI invoke to answer with :meth:`EirSigtranStack.answer` (or ``answer_error``)."""

    invoke: CheckImeiInvoked
    origin: str
    """The calling party's GT digits, or ``pc:<OPC>`` when it has no GT."""
    route: Route


@dataclass(frozen=True, slots=True, kw_only=True)
class SccpDiscarded:
    """An SCCP message we could not use (malformed, unsupported type, a returned UDTS, SCMG)."""

    reason: str
    opc: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SccpReturned:
    """A UDT/XUDT for a subsystem we do not serve (or not deliverable): returned with a UDTS when
    the sender asked for it (``sent``), discarded otherwise."""

    cause: sccp.ReturnCause
    called_ssn: int | None
    sent: bool
    opc: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRefused:
    """A DATA the EIR does not answer for: not addressed to it (``check`` ``"dpc"``, ``"ni"``) or
    screened out (``"screen_opc"``, ``"screen_calling_gt"``: the basics of GSMA FS.11 category 1,
    an allow-list of the nodes and GT ranges allowed to ask). ``answer`` says what went back:
    ``"duna"`` (M3UA DUNA naming the DPC, RFC 4666 §3.4.1: the destination is not reachable here),
    ``"udts"`` (returned with cause ``cause`` because the sender asked for return on error), or None
    (discarded: MTP3 discards a message of another network indicator, Q.704 §2.4.3 — and a UDT
    without return on error is discarded, Q.714 §4.2)."""

    check: str
    detail: str
    opc: int
    answer: str | None
    cause: sccp.ReturnCause | None = None


StackEvent = (
    m3ua.Event
    | CheckImeiRequested
    | SccpDiscarded
    | SccpReturned
    | MessageRefused
    | TcapProtocolErrorOccurred
    | MapVendorVariantAccepted
)


class EirSigtranStack:
    """One M3UA association of the EIR (SG role), up to MAP checkIMEI."""

    def __init__(
        self,
        *,
        m3ua_settings: m3ua.M3uaSettings,
        point_code: int,
        ssn: int = 9,
        global_title: str | None = None,
        map_versions: tuple[int, ...] = (1, 2, 3),
        max_dialogues: int = 10000,
        dialogue_timeout: float = 30.0,
        point_codes: frozenset[int] | None = None,
        network_indicators: frozenset[int] | None = None,
        accept_global_titles: tuple[str, ...] | None = None,
        screen_opcs: frozenset[int] | None = None,
        screen_calling_gt_prefixes: tuple[str, ...] | None = None,
    ) -> None:
        """Addressing (None: no check): ``point_codes`` the DPCs answered (others: DUNA),
        ``network_indicators`` the NIs (others: discarded), ``accept_global_titles`` the called GTs
        of messages routed on GT (digits or ``prefix*``; others: UDTS no translation). Screening
        (None: none): ``screen_opcs`` the OPCs and ``screen_calling_gt_prefixes`` the calling GT
        prefixes allowed to ask (others: UDTS unqualified, or discarded)."""
        self.m3ua = m3ua.M3uaConnection(m3ua_settings)
        self.sccp = sccp.SccpEndpoint(
            ssns=(ssn,),
            point_code=point_code,
            global_title=global_title,
            accept_global_titles=accept_global_titles,
        )
        self.point_codes = point_codes
        self.network_indicators = network_indicators
        self.screen_opcs = screen_opcs
        self.screen_calling_gt_prefixes = screen_calling_gt_prefixes
        self.tcap: TcapEirCore[Route] = TcapEirCore(
            supported_versions=tuple(map_versions),
            max_dialogues=max_dialogues,
            dialogue_timeout=dialogue_timeout,
        )
        self.point_code = point_code
        self.memo: BeginMemo | None = BeginMemo()
        """The fast path's shapes (:mod:`._map_fast`); None turns the fast path off (the tests
        compare the two)."""
        self._deferred: list[tuple[int, int, int, int, int | None, bytes] | bytes] | None = None

    # -- input -------------------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float, stream: int | None = None) -> list[StackEvent]:
        conn = self.m3ua
        if (
            self.memo is None
            or conn.state is not m3ua.AspState.ACTIVE
            or conn.closed
            or stream == 0
            or not data
        ):
            return self._receive_general(data, now, stream)
        # Frame the stream here, as M3uaConnection.receive_data does, so that a DATA of a learnt
        # shape skips the layers (:mod:`._map_fast`); every other message goes to
        # M3uaConnection.receive_message, in order, and whatever cannot be framed (a partial
        # message, a bad length) to receive_data. The replies the layers above M3UA owe at once
        # (UDTS, SSA, Reject, Abort) wait until the whole input is read, as they do when M3UA reads
        # it all first: they follow M3UA's own replies and go only if the ASP is still active.
        partial = conn.take_partial()
        if partial:
            data = partial + data
        deferred: list[tuple[int, int, int, int, int | None, bytes] | bytes] = []
        self._deferred = deferred
        try:
            return self._receive_framed(self.memo, data, now, stream)
        finally:
            self._deferred = None
            for args in deferred:
                if type(args) is bytes:
                    if conn.state is m3ua.AspState.ACTIVE:
                        conn.send_raw(args)
                else:
                    self._send_pd(*args)

    def _receive_framed(
        self, memo: BeginMemo, data: bytes, now: float, stream: int | None
    ) -> list[StackEvent]:
        conn = self.m3ua
        out: list[StackEvent] = []
        n = len(data)
        off = 0
        maxlen = conn.settings.max_message_size
        while n - off >= 8:
            length = int.from_bytes(data[off + 4 : off + 8], "big")
            if length < 8 or length > maxlen or n - off < length:
                break
            if conn.state is not m3ua.AspState.ACTIVE or not self._receive_fast(
                memo, data, off, length, now, out
            ):
                raw = data[off : off + length]
                for ev in conn.receive_message(raw, now, stream):
                    if type(ev) is m3ua.DataReceived:
                        self._on_data(ev, now, out, raw)
                    else:
                        out.append(ev)
                if conn.closed:
                    return out
            off += length
        if off:
            conn.last_received = now  # whole messages the fast path read keep the idle limit away
        if off < n:
            out.extend(self._receive_general(data[off:] if off else data, now, stream))
        return out

    def _receive_general(self, data: bytes, now: float, stream: int | None) -> list[StackEvent]:
        out: list[StackEvent] = []
        for ev in self.m3ua.receive_data(data, now, stream):
            if type(ev) is m3ua.DataReceived:
                self._on_data(ev, now, out)
            else:
                out.append(ev)
        return out

    def _receive_fast(
        self, memo: BeginMemo, data: bytes, off: int, length: int, now: float, out: list[StackEvent]
    ) -> bool:
        """The DATA at ``data[off:off+length]`` when it has a learnt shape and the TCAP core opens
        its dialogue; False leaves it to the general path."""
        got = memo.match(data, off, length)
        if got is None:
            return False
        shape, imei, imsi = got
        sls = data[off + shape.sls_at]
        route = shape.routes[sls]
        if route is None:
            opc, dpc, ni, rc = shape.route_fields
            route = shape.routes[sls] = Route(
                opc=opc, dpc=dpc, ni=ni, sls=sls, routing_context=rc, request=shape.request, shape=shape
            )
        iid = data[off + shape.iid_at]
        variant = shape.variant
        if variant is not None:  # a vendor form: the general path's argument but for IMEI and IMSI
            got_variant = self.tcap.receive_variant_begin(
                data[off + shape.otid_at : off + shape.otid_end],
                shape.ac_version,
                iid - 256 if iid > 127 else iid,
                imei,
                imsi if shape.imsi_len else variant.imsi,
                variant,
                shape.variant_detail,
                now,
                shape.peer,
                route,
            )
            if got_variant is None:
                return False
            accepted, opened = got_variant
            out.append(accepted)
            out.append(CheckImeiRequested(invoke=opened, origin=shape.origin, route=route))
            return True
        inv = self.tcap.receive_canonical_begin(
            data[off + shape.otid_at : off + shape.otid_end],
            shape.ac_version,
            iid - 256 if iid > 127 else iid,
            imei,
            shape.requested_equipment_status,
            shape.requested_bmuef,
            now,
            shape.peer,
            route,
        )
        if inv is None:
            return False
        out.append(CheckImeiRequested(invoke=inv, origin=shape.origin, route=route))
        return True

    def _on_data(
        self, ev: m3ua.DataReceived, now: float, out: list[StackEvent], raw: bytes | None = None
    ) -> None:
        pd = ev.data
        nis = self.network_indicators
        if nis is not None and pd.ni not in nis:
            out.append(
                MessageRefused(check="ni", detail=f"network indicator {pd.ni}", opc=pd.opc, answer=None)
            )
            return
        pcs = self.point_codes
        if pcs is not None and pd.dpc not in pcs:
            self._send_duna(pd.dpc, ev)
            out.append(
                MessageRefused(check="dpc", detail=f"DPC {pd.dpc} is not ours", opc=pd.opc, answer="duna")
            )
            return
        if pd.si != 3:
            out.append(SccpDiscarded(reason=f"service indicator {pd.si} is not SCCP", opc=pd.opc))
            return
        try:
            sev = self.sccp.receive(pd.data)
        except sccp.SccpDecodeError as e:
            out.append(SccpDiscarded(reason=f"SCCP: {e}", opc=pd.opc))
            return
        screen = self.screen_opcs
        if screen is not None and pd.opc not in screen:
            self._screened(pd, ev, sev, "screen_opc", f"OPC {pd.opc} not allowed", out)
            return
        if type(sev) is sccp.UnitdataReceived and self.screen_calling_gt_prefixes is not None:
            gt = sev.message.calling.gt
            digits = gt.digits if gt is not None else ""
            if not digits or not digits.startswith(self.screen_calling_gt_prefixes):
                self._screened(
                    pd, ev, sev, "screen_calling_gt", f"calling GT {digits or '(none)'} not allowed", out
                )
                return
        if type(sev) is not sccp.UnitdataReceived:
            if isinstance(sev, sccp.UnitdataReturned):
                if sev.reply is not None:
                    self._send(pd, ev.routing_context, sev.reply)
                out.append(
                    SccpReturned(
                        cause=sev.cause,
                        called_ssn=sev.message.called.ssn,
                        sent=sev.reply is not None,
                        opc=pd.opc,
                    )
                )
            elif isinstance(sev, sccp.ScmgReply):
                if sev.reply is not None:
                    self._send(pd, ev.routing_context, sev.reply)
                out.append(SccpDiscarded(reason=f"SCMG: {sev.detail}", opc=pd.opc))
            else:
                cause = sev.message.return_cause
                out.append(
                    SccpDiscarded(
                        reason=f"{sev.message.type.name} returned to us (cause {cause})", opc=pd.opc
                    )
                )
            return
        request = sev.message
        header = replace(request, data=b"")
        route = Route(
            opc=pd.opc,
            dpc=self._own_pc(pd.dpc),
            ni=pd.ni,
            sls=pd.sls,
            routing_context=ev.routing_context,
            request=header,
        )
        # The calling address scopes the transaction ids: several MSCs may sit behind one STP.
        # The route is kept with the dialogue the message opens (replaced or expired with it).
        received = self.tcap.receive_tcap(request.data, now, peer=request.raw_calling, route=route)
        if received.reply is not None:
            self._send_answer(route, received.reply)
        if received.events:
            out.extend(received.events)
        if received.invokes:
            gt = request.calling.gt
            origin = gt.digits if gt is not None and gt.digits else f"pc:{pd.opc}"
            for inv in received.invokes:
                out.append(CheckImeiRequested(invoke=inv, origin=origin, route=route))
        if raw is not None and self.memo is not None:
            self._learn(raw, ev, request, header, origin if received.invokes else None)

    def _learn(
        self,
        raw: bytes,
        ev: m3ua.DataReceived,
        request: sccp.Unitdata,
        header: sccp.Unitdata,
        origin: str | None,
    ) -> None:
        """Keep the shape of a canonical checkIMEI Begin the general path has just read (see
        :mod:`._map_fast`): its values are read again here, from the bytes alone."""
        memo = self.memo
        if memo is None or memo.match(raw, 0, len(raw)) is not None:
            return  # known already (the general path took it for its dialogue: a pending OTID …)
        fast = match_check_imei_begin(request.data)
        if fast is None:
            return
        try:
            arg = decode_check_imei_arg(fast[3])
        except MapParameterError:
            return
        shape = learn(raw, request.data, fast, arg)
        if shape is None:
            return
        pd = ev.data
        if origin is None:
            gt = request.calling.gt
            origin = gt.digits if gt is not None and gt.digits else f"pc:{pd.opc}"
        shape.origin = origin
        shape.peer = request.raw_calling
        shape.request = header
        shape.route_fields = (pd.opc, self._own_pc(pd.dpc), pd.ni, ev.routing_context)
        memo.add(shape)

    # -- commands ----------------------------------------------------------------------------------

    def answer(self, req: CheckImeiRequested, status: EquipmentStatus, bmuef: bytes | None = None) -> None:
        data = self.tcap.answer(req.invoke, status, bmuef)
        if data is not None:
            self._send_answer(req.route, data)

    def answer_error(self, req: CheckImeiRequested, error: MapError) -> None:
        data = self.tcap.answer_error(req.invoke, error)
        if data is not None:
            self._send_answer(req.route, data)

    def abort(self, req: CheckImeiRequested) -> None:
        """TC-U-Abort ``req``'s dialogue instead of answering (:meth:`TcapEirCore.abort`)."""
        data = self.tcap.abort(req.invoke)
        if data is not None:
            self._send_answer(req.route, data)

    def take_down(self, now: float) -> list[m3ua.Event]:
        """SG role: consider the ASP down and tell it with an unsolicited ASP Down Ack (RFC 4666
        §4.3.4.2, as for management blocking); it must send ASPUP again before any DATA."""
        if self.m3ua.state is not m3ua.AspState.DOWN:
            self.m3ua.send_raw(m3ua.encode_message(m3ua.MessageType.ASPDN_ACK))
        return self.m3ua.stop(now)

    def start(self, now: float) -> list[m3ua.Event]:
        return self.m3ua.start(now)

    def stop(self, now: float) -> list[m3ua.Event]:
        return self.m3ua.stop(now)

    def connection_lost(self, now: float) -> list[m3ua.Event]:
        """The transport was cut (see :meth:`.m3ua.M3uaConnection.connection_lost`)."""
        return self.m3ua.connection_lost(now)

    def data_to_send(self) -> bytes:
        return self.m3ua.data_to_send()

    def get_timer(self) -> float | None:
        a = self.m3ua.get_timer()
        b = self.tcap.get_timer()
        if a is None:
            return b
        if b is None:
            return a
        return b if b < a else a

    def handle_timer(self, now: float) -> list[StackEvent]:
        events: list[StackEvent] = list(self.m3ua.handle_timer(now))
        for route, data in self.tcap.handle_timer(now):
            # Each Abort goes back along its own dialogue's route: with several MSCs behind one STP
            # the OTID alone may name another MSC's dialogue.
            if route is not None:
                self._send_answer(route, data)
        return events

    # -- helpers -----------------------------------------------------------------------------------

    def _send_answer(self, route: Route, tcap_data: bytes) -> None:
        shape = route.shape
        conn = self.m3ua
        if shape is not None and conn.state is m3ua.AspState.ACTIVE:
            # The general answer by construction: built by the encoders below once per End length
            # and routing context, and split at the SLS and the End (_map_fast.answer_template).
            rc = conn.routing_context_for_data(route.routing_context)
            pre, mid, post = shape.answer_template(
                len(tcap_data), rc, lambda sls, tcap: self._encode_answer(route, rc, sls, tcap)
            )
            conn.send_raw(pre + _SLS[route.sls] + mid + tcap_data + post)
            return
        sccp_data = self.sccp.answer(route.request, tcap_data)
        self._send_pd(route.opc, route.dpc, route.ni, route.sls, route.routing_context, sccp_data)

    def _encode_answer(self, route: Route, rc: int | None, sls: int, tcap_data: bytes) -> bytes:
        """What _send_pd queues for ``tcap_data`` along ``route`` (with ``sls`` for the route's)."""
        pd = m3ua.ProtocolData(
            opc=route.dpc,
            dpc=route.opc,
            si=3,
            ni=route.ni,
            sls=sls,
            data=self.sccp.answer(route.request, tcap_data),
        )
        return m3ua.encode_data(
            pd, routing_context=rc, network_appearance=self.m3ua.settings.network_appearance
        )

    def _send(self, pd: m3ua.ProtocolData, rc: int | None, sccp_data: bytes) -> None:
        self._send_pd(pd.opc, self._own_pc(pd.dpc), pd.ni, pd.sls, rc, sccp_data)

    def _own_pc(self, dpc: int) -> int:
        """The OPC of what we send back: the DPC asked when it is one of ours, else our point code
        — never a point code the peer made up."""
        pcs = self.point_codes
        if dpc == self.point_code or (pcs is not None and dpc in pcs):
            return dpc
        return self.point_code

    def _send_duna(self, dpc: int, ev: m3ua.DataReceived) -> None:
        """RFC 4666 §3.4.1 / §4.5.1: DATA for a destination this node does not reach is answered
        with DUNA naming it (what an STP's TFP is in MTP3), with the DATA's RC / NA."""
        conn = self.m3ua
        params: list[tuple[int, bytes]] = []
        na = conn.settings.network_appearance
        if na is not None:
            params.append((m3ua.Tag.NETWORK_APPEARANCE, na.to_bytes(4, "big")))
        rc = conn.routing_context_for_data(ev.routing_context)
        if rc is not None:
            params.append((m3ua.Tag.ROUTING_CONTEXT, rc.to_bytes(4, "big")))
        params.append((m3ua.Tag.AFFECTED_POINT_CODE, (dpc & 0xFFFFFF).to_bytes(4, "big")))
        duna = m3ua.encode_message(m3ua.MessageType.DUNA, params)
        if self._deferred is not None:  # after M3UA's own replies, as the UDTS are
            self._deferred.append(duna)
        elif conn.state is m3ua.AspState.ACTIVE:
            conn.send_raw(duna)

    def _screened(
        self,
        pd: m3ua.ProtocolData,
        ev: m3ua.DataReceived,
        sev: sccp.SccpEvent,
        check: str,
        detail: str,
        out: list[StackEvent],
    ) -> None:
        """A message screening refused: a UDT/XUDT asking for return on error gets its UDTS with
        cause unqualified (Q.713 §3.12: no cause fits a policy refusal better, and it tells a
        hostile sender nothing); anything else is discarded. Either way reported."""
        answer: str | None = None
        cause: sccp.ReturnCause | None = None
        msg = sev.message
        if msg.return_cause is None and msg.return_on_error and msg.called.ssn != 1:
            cause = sccp.ReturnCause.UNQUALIFIED
            reply = sccp.encode_unitdata_service(
                called=msg.raw_calling,
                calling=msg.raw_called,
                data=msg.data,
                cause=cause,
                extended=msg.is_extended,
            )
            self._send(pd, ev.routing_context, reply)
            answer = "udts"
        out.append(MessageRefused(check=check, detail=detail, opc=pd.opc, answer=answer, cause=cause))

    def _send_pd(self, opc: int, dpc: int, ni: int, sls: int, rc: int | None, data: bytes) -> None:
        if self._deferred is not None:
            self._deferred.append((opc, dpc, ni, sls, rc, data))
            return
        conn = self.m3ua
        if conn.state is not m3ua.AspState.ACTIVE:
            return  # the association went down meanwhile: nothing can be sent (§4.3.4.4)
        conn.send_data(
            m3ua.ProtocolData(opc=dpc, dpc=opc, si=3, ni=ni, sls=sls, data=data), routing_context=rc
        )


_SLS = [bytes((i,)) for i in range(256)]


# --- the client (simulated MSC / SGSN) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckImeiAnswered:
    """The reply to one of our Begins (End, Abort, or a UDTS returning it)."""

    otid: int
    outcome: CheckImeiOutcome | None
    """None when the request came back in a UDTS (``returned`` gives the cause)."""
    sent_at: float
    version: int
    returned: int | None = None


ClientEvent = m3ua.Event | CheckImeiAnswered | SccpDiscarded


class CheckImeiClient:
    """A simulated MSC (SSN 8) or SGSN (SSN 149) on one M3UA association (ASP role)."""

    def __init__(
        self,
        *,
        m3ua_settings: m3ua.M3uaSettings,
        opc: int,
        dpc: int,
        ni: int = 2,
        calling: sccp.SccpAddress,
        called: sccp.SccpAddress,
        extended: bool = False,
        protocol_class: int = 1,
        return_on_error: bool = True,
    ) -> None:
        self.m3ua = m3ua.M3uaConnection(m3ua_settings)
        self.opc, self.dpc, self.ni = opc, dpc, ni
        self._calling = calling.encode()
        self._called = called.encode()
        self.extended = extended
        self.protocol_class = protocol_class
        self.return_on_error = return_on_error
        self._next_tid = 1
        self.outstanding: dict[int, tuple[float, int]] = {}
        self._begin_cache: dict[tuple[object, ...], tuple[bytes, bytes, bytes, bytes] | None] = {}
        self._reply_cache: dict[bytes, CheckImeiOutcome] = {}

    def start(self, now: float) -> list[m3ua.Event]:
        return self.m3ua.start(now)

    def stop(self, now: float) -> list[m3ua.Event]:
        return self.m3ua.stop(now)

    def connection_lost(self, now: float) -> list[m3ua.Event]:
        """The transport was cut (see :meth:`.m3ua.M3uaConnection.connection_lost`)."""
        return self.m3ua.connection_lost(now)

    @property
    def active(self) -> bool:
        return self.m3ua.state is m3ua.AspState.ACTIVE

    def send_check_imei(
        self,
        now: float,
        *,
        imei: str,
        version: int = 2,
        imsi: str | None = None,
        requested_bmuef: bool = False,
        vendor: str | None = None,
        invoke_id: int = 1,
        msisdn: str | None = None,
    ) -> int:
        """Queue a Begin with one checkIMEI invoke; returns its originating transaction id. An
        ``msisdn`` (a vendor form's) goes through the encoder, not the load generator's shapes."""
        tid = self._next_tid
        self._next_tid = tid + 1 if tid < 0xFFFFFFFF else 1
        if msisdn:
            tcap = encode_check_imei_begin(
                otid=tid,
                version=version,
                invoke_id=invoke_id,
                imei=imei,
                imsi=imsi,
                msisdn=msisdn,
                requested_bmuef=requested_bmuef,
                vendor=vendor,
            )
        else:
            tcap = self.encode_begin(tid, imei, version, imsi, requested_bmuef, vendor, invoke_id)
        self.send_tcap(tcap)
        self.outstanding[tid] = (now, version)
        return tid

    def encode_begin(
        self,
        tid: int,
        imei: str,
        version: int,
        imsi: str | None,
        requested_bmuef: bool,
        vendor: str | None,
        invoke_id: int,
    ) -> bytes:
        """The Begin's octets, as ``encode_check_imei_begin`` gives them (a test compares the two).

        A load generator sends Begins that differ only in the OTID, the IMEI and the IMSI: the
        Begin of each shape (lengths, version, vendor form) is encoded once and those fields
        patched in (:func:`_begin_shape`); anything else goes through the encoder."""
        shape = None
        if imei.isdigit() and 14 <= len(imei) <= 16 and (imsi is None or (imsi.isdigit() and imsi)):
            key = (
                len(imei),
                version,
                None if imsi is None else len(imsi),
                requested_bmuef,
                vendor,
                invoke_id,
            )
            if key in self._begin_cache:
                shape = self._begin_cache[key]
            else:
                shape = _begin_shape(version, len(imei), imsi, requested_bmuef, vendor, invoke_id)
                if len(self._begin_cache) >= 64:
                    self._begin_cache.clear()
                self._begin_cache[key] = shape
        if shape is not None:
            pre, mid, post, tail = shape
            tcap = pre + tid.to_bytes(4, "big") + mid + _imei_octets(imei)
            return tcap + post + _tbcd_encode(imsi) + tail if imsi else tcap + post
        return encode_check_imei_begin(
            otid=tid,
            version=version,
            invoke_id=invoke_id,
            imei=imei,
            imsi=imsi,
            requested_bmuef=requested_bmuef,
            vendor=vendor,
        )

    def send_tcap(self, tcap_data: bytes, sls: int | None = None) -> None:
        data = sccp.encode_unitdata(
            called=self._called,
            calling=self._calling,
            data=tcap_data,
            protocol_class=self.protocol_class,
            return_on_error=self.return_on_error,
            extended=self.extended,
        )
        self.send_sccp(data, sls)

    def send_sccp(self, sccp_data: bytes, sls: int | None = None) -> None:
        self.m3ua.send_data(
            m3ua.ProtocolData(
                opc=self.opc,
                dpc=self.dpc,
                si=3,
                ni=self.ni,
                sls=(self._next_tid & 0x0F) if sls is None else sls,
                data=sccp_data,
            )
        )

    def receive_data(self, data: bytes, now: float, stream: int | None = None) -> list[ClientEvent]:
        out: list[ClientEvent] = []
        for ev in self.m3ua.receive_data(data, now, stream):
            if type(ev) is not m3ua.DataReceived:
                out.append(ev)
                continue
            try:
                msg = sccp.decode_message(ev.data.data)
            except sccp.SccpDecodeError as e:
                out.append(SccpDiscarded(reason=str(e), opc=ev.data.opc))
                continue
            if msg.return_cause is not None:
                tid = _otid_of(msg.data)
                if tid is not None and tid in self.outstanding:
                    sent, version = self.outstanding.pop(tid)
                    out.append(
                        CheckImeiAnswered(
                            otid=tid, outcome=None, sent_at=sent, version=version, returned=msg.return_cause
                        )
                    )
                else:
                    out.append(SccpDiscarded(reason=f"UDTS cause {msg.return_cause}", opc=ev.data.opc))
                continue
            tid = _dtid_of(msg.data)
            if tid is None or tid not in self.outstanding:
                out.append(SccpDiscarded(reason="reply for no outstanding dialogue", opc=ev.data.opc))
                continue
            sent, version = self.outstanding.pop(tid)
            out.append(
                CheckImeiAnswered(
                    otid=tid, outcome=self._decode_reply(msg.data), sent_at=sent, version=version
                )
            )
        return out

    def _decode_reply(self, data: bytes) -> CheckImeiOutcome:
        """Replies that differ only in the DTID decode alike: memoise on the rest (bounded)."""
        if len(data) < 8 or data[2] != 0x49 or data[3] != 4 or data[1] & 0x80:
            return decode_check_imei_reply(data)
        key = data[:4] + data[8:]
        got = self._reply_cache.get(key)
        if got is None:
            got = decode_check_imei_reply(data)
            if len(self._reply_cache) >= 256:
                self._reply_cache.clear()
            self._reply_cache[key] = got
            return got
        return replace(got, dtid=int.from_bytes(data[4:8], "big"))

    def data_to_send(self) -> bytes:
        return self.m3ua.data_to_send()

    def get_timer(self) -> float | None:
        return self.m3ua.get_timer()

    def handle_timer(self, now: float) -> list[m3ua.Event]:
        return self.m3ua.handle_timer(now)


def _tid_field(tcap_data: bytes, tag: int) -> int | None:
    """Read an otid (0x48) / dtid (0x49) straight from the transaction portion — cheaper than a full
    TCAP decode on the client's hot path."""
    try:
        i = 1
        ln = tcap_data[i]
        i += 1
        if ln & 0x80:
            i += ln & 0x7F
        end = len(tcap_data)
        while i < end:
            t = tcap_data[i]
            ln = tcap_data[i + 1]
            if t == tag:
                return int.from_bytes(tcap_data[i + 2 : i + 2 + ln], "big")
            if ln & 0x80:
                return None
            i += 2 + ln
    except IndexError:
        return None
    return None


def _dtid_of(tcap_data: bytes) -> int | None:
    return _tid_field(tcap_data, 0x49)


def _otid_of(tcap_data: bytes) -> int | None:
    return _tid_field(tcap_data, 0x48)


def _begin_shape(
    version: int, imei_len: int, imsi: str | None, bmuef: bool, vendor: str | None, invoke_id: int
) -> tuple[bytes, bytes, bytes, bytes] | None:
    """The checkIMEI Begin of one shape cut around its OTID, IMEI and IMSI octets: ``(before the
    OTID, between OTID and IMEI, between IMEI and IMSI, after the IMSI)`` — found by encoding with
    every octet of those fields different, then checked on a third encoding; None when the
    encoding does not split so (the client then encodes every Begin)."""
    imsi_len = None if imsi is None else len(imsi)

    def enc(otid: int, digit: str) -> bytes:
        return encode_check_imei_begin(
            otid=otid,
            version=version,
            invoke_id=invoke_id,
            imei=digit * imei_len,
            imsi=None if imsi_len is None else digit * imsi_len,
            requested_bmuef=bmuef,
            vendor=vendor,
        )

    try:
        a, b = enc(0, "0"), enc(0xFFFFFFFF, "9")
    except ValueError:
        return None
    if len(a) != len(b):
        return None
    # where each field's octets lie: found in the first encoding, the second's differ only there
    imei0, imei9 = _imei_octets("0" * imei_len), _imei_octets("9" * imei_len)
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    if not diff:
        return None
    o = diff[0]
    o_end = o + 4
    i = a.find(imei0, o_end)
    i_end = i + len(imei0)
    if a[o:o_end] != bytes(4) or b[o:o_end] != b"\xff" * 4 or i < 0 or b[i:i_end] != imei9:
        return None
    s_at = s_end = len(a)
    if imsi_len is not None:
        imsi0 = _tbcd_encode("0" * imsi_len)
        s_at = a.find(imsi0, i_end)
        s_end = s_at + len(imsi0)
        if s_at < 0 or b[s_at:s_end] != _tbcd_encode("9" * imsi_len):
            return None
    if any(not (o <= d < o_end or i <= d < i_end or s_at <= d < s_end) for d in diff):
        return None
    shape = (a[:o], a[o_end:i], a[i_end:s_at], a[s_end:])
    # check: a third Begin patched from the shape is the encoder's
    imei3 = ("1234567890123456" * 2)[:imei_len]
    imsi3 = None if imsi_len is None else ("2620112345678901" * 2)[:imsi_len]
    c = encode_check_imei_begin(
        otid=0x01020304,
        version=version,
        invoke_id=invoke_id,
        imei=imei3,
        imsi=imsi3,
        requested_bmuef=bmuef,
        vendor=vendor,
    )
    patched = shape[0] + b"\x01\x02\x03\x04" + shape[1] + _imei_octets(imei3) + shape[2]
    if imsi3:
        patched += _tbcd_encode(imsi3) + shape[3]
    return shape if patched == c else None
