"""M3UA — SS7 MTP3-User Adaptation Layer (RFC 4666), sans-IO.

Three parts, in the order a reader needs them:

* the codec: common header (§3.1), TLV parameters padded to 4 octets (§3.2), Protocol Data (§3.3.1)
  — plain ``struct``, because the DATA path runs once per checkIMEI (pycrate's objects are ~20x
  slower and only serve as an independent decoder in the tests);
* the ASP state machine (§4.3): one literal transition table for both ends of an association — the
  SGP/IPSP end that accepts ASPs (the EIR listening) and the ASP end that brings itself up (the
  simulated MSC, or the EIR's optional outbound association to an STP);
* :class:`M3uaConnection`, the core: ``receive_data(data, now)`` → events (``b""``: the peer closed
  the stream), ``connection_lost(now)`` (the transport was cut), ``data_to_send()``,
  ``get_timer()``/``handle_timer(now)`` and commands (``start``, ``send_data``, ``stop``).

Bad input never raises out of ``receive_data``: each defect is answered with an ERR carrying the
RFC 4666 §3.8.1 error code (and the offending message as Diagnostic Information) and reported as an
:class:`ErrorSent` event — except a bad ERR, which is never answered (:class:`ErrDiscarded`); a
broken stream (bad length, so framing is lost) also ends the association with
:class:`ConnectionTerminated`. Misuse of the core raises :class:`~.errors.LocalProtocolError`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from .errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "AS_STATE_INFO",
    "TRANSITIONS",
    "AspInput",
    "AspState",
    "AspStateChanged",
    "ConnectionTerminated",
    "DataReceived",
    "ErrDiscarded",
    "ErrorCode",
    "ErrorReceived",
    "ErrorSent",
    "HeartbeatAcked",
    "LocalProtocolError",
    "M3uaConnection",
    "M3uaDecodeError",
    "M3uaSettings",
    "Message",
    "MessageType",
    "NotifyReceived",
    "ProtocolData",
    "Role",
    "SignallingNetworkManagementReceived",
    "Tag",
    "TrafficMode",
    "decode_message",
    "encode_data",
    "encode_error",
    "encode_message",
]

VERSION = 1
HEADER = struct.Struct("!BBBBI")
TLV = struct.Struct("!HH")
U32 = struct.Struct("!I")
PD_HEAD = struct.Struct("!IIBBBB")
"""Protocol Data (§3.3.1): OPC, DPC (32 bits each), SI, NI, MP, SLS."""


class MessageType(IntEnum):
    """Message class (high byte) and type (low byte), §3.1.2 / §3.1.3."""

    ERR = 0x0000
    NTFY = 0x0001
    DATA = 0x0101
    DUNA = 0x0201
    DAVA = 0x0202
    DAUD = 0x0203
    SCON = 0x0204
    DUPU = 0x0205
    DRST = 0x0206
    ASPUP = 0x0301
    ASPDN = 0x0302
    BEAT = 0x0303
    ASPUP_ACK = 0x0304
    ASPDN_ACK = 0x0305
    BEAT_ACK = 0x0306
    ASPAC = 0x0401
    ASPIA = 0x0402
    ASPAC_ACK = 0x0403
    ASPIA_ACK = 0x0404
    REG_REQ = 0x0901
    REG_RSP = 0x0902
    DEREG_REQ = 0x0903
    DEREG_RSP = 0x0904


_CLASSES = frozenset(t >> 8 for t in MessageType)
_SUPPORTED_CLASSES = frozenset({0, 1, 2, 3, 4})
"""RKM (class 9, §3.6) is not supported: dynamic registration makes no sense for a lab EIR, and
§4.4.1 lets an SGP answer it with "Unsupported Message Class"."""


class Tag(IntEnum):
    """Parameter tags, §3.2 (common 0x0000-0x003F, M3UA-specific 0x0200-0x02FF)."""

    INFO_STRING = 0x0004
    ROUTING_CONTEXT = 0x0006
    DIAGNOSTIC_INFO = 0x0007
    HEARTBEAT_DATA = 0x0009
    TRAFFIC_MODE_TYPE = 0x000B
    ERROR_CODE = 0x000C
    STATUS = 0x000D
    ASP_IDENTIFIER = 0x0011
    AFFECTED_POINT_CODE = 0x0012
    CORRELATION_ID = 0x0013
    NETWORK_APPEARANCE = 0x0200
    USER_CAUSE = 0x0204
    CONGESTION_INDICATIONS = 0x0205
    CONCERNED_DESTINATION = 0x0206
    ROUTING_KEY = 0x0207
    REGISTRATION_RESULT = 0x0208
    DEREGISTRATION_RESULT = 0x0209
    LOCAL_ROUTING_KEY_ID = 0x020A
    DESTINATION_POINT_CODE = 0x020B
    SERVICE_INDICATORS = 0x020C
    ORIGINATING_POINT_CODE_LIST = 0x020E
    PROTOCOL_DATA = 0x0210
    REGISTRATION_STATUS = 0x0212
    DEREGISTRATION_STATUS = 0x0213


class ErrorCode(IntEnum):
    """ERR Error Code values, RFC 4666 §3.8.1."""

    INVALID_VERSION = 0x01
    UNSUPPORTED_MESSAGE_CLASS = 0x03
    UNSUPPORTED_MESSAGE_TYPE = 0x04
    UNSUPPORTED_TRAFFIC_MODE_TYPE = 0x05
    UNEXPECTED_MESSAGE = 0x06
    PROTOCOL_ERROR = 0x07
    INVALID_STREAM_IDENTIFIER = 0x09
    REFUSED_MANAGEMENT_BLOCKING = 0x0D
    ASP_IDENTIFIER_REQUIRED = 0x0E
    INVALID_ASP_IDENTIFIER = 0x0F
    INVALID_PARAMETER_VALUE = 0x11
    PARAMETER_FIELD_ERROR = 0x12
    UNEXPECTED_PARAMETER = 0x13
    DESTINATION_STATUS_UNKNOWN = 0x14
    INVALID_NETWORK_APPEARANCE = 0x15
    MISSING_PARAMETER = 0x16
    INVALID_ROUTING_CONTEXT = 0x19
    NO_CONFIGURED_AS_FOR_ASP = 0x1A


class TrafficMode(IntEnum):
    """Traffic Mode Type, §3.7.1."""

    OVERRIDE = 1
    LOADSHARE = 2
    BROADCAST = 3


class StatusType(IntEnum):
    """NTFY Status Type, §3.8.2."""

    AS_STATE_CHANGE = 1
    OTHER = 2


AS_STATE_INFO = {2: "AS-INACTIVE", 3: "AS-ACTIVE", 4: "AS-PENDING"}
"""NTFY Status Information for Status Type 1 (§3.8.2)."""


# Parameters each message may carry, and the mandatory ones (§3.3-§3.8). Anything else is answered
# with ERR "Unexpected Parameter" (0x13); a missing mandatory one with "Missing Parameter" (0x16).
_T = Tag
_ALLOWED: dict[MessageType, frozenset[int]] = {
    MessageType.ERR: frozenset(
        {_T.ERROR_CODE, _T.ROUTING_CONTEXT, _T.NETWORK_APPEARANCE, _T.AFFECTED_POINT_CODE, _T.DIAGNOSTIC_INFO}
    ),
    MessageType.NTFY: frozenset({_T.STATUS, _T.ASP_IDENTIFIER, _T.ROUTING_CONTEXT, _T.INFO_STRING}),
    MessageType.DATA: frozenset(
        {_T.NETWORK_APPEARANCE, _T.ROUTING_CONTEXT, _T.PROTOCOL_DATA, _T.CORRELATION_ID}
    ),
    MessageType.DUNA: frozenset(
        {_T.NETWORK_APPEARANCE, _T.ROUTING_CONTEXT, _T.AFFECTED_POINT_CODE, _T.INFO_STRING}
    ),
    MessageType.DAVA: frozenset(
        {_T.NETWORK_APPEARANCE, _T.ROUTING_CONTEXT, _T.AFFECTED_POINT_CODE, _T.INFO_STRING}
    ),
    MessageType.DAUD: frozenset(
        {_T.NETWORK_APPEARANCE, _T.ROUTING_CONTEXT, _T.AFFECTED_POINT_CODE, _T.INFO_STRING}
    ),
    MessageType.SCON: frozenset(
        {
            _T.NETWORK_APPEARANCE,
            _T.ROUTING_CONTEXT,
            _T.AFFECTED_POINT_CODE,
            _T.CONCERNED_DESTINATION,
            _T.CONGESTION_INDICATIONS,
            _T.INFO_STRING,
        }
    ),
    MessageType.DUPU: frozenset(
        {_T.NETWORK_APPEARANCE, _T.ROUTING_CONTEXT, _T.AFFECTED_POINT_CODE, _T.USER_CAUSE, _T.INFO_STRING}
    ),
    MessageType.DRST: frozenset(
        {_T.NETWORK_APPEARANCE, _T.ROUTING_CONTEXT, _T.AFFECTED_POINT_CODE, _T.INFO_STRING}
    ),
    MessageType.ASPUP: frozenset({_T.ASP_IDENTIFIER, _T.INFO_STRING}),
    MessageType.ASPUP_ACK: frozenset({_T.ASP_IDENTIFIER, _T.INFO_STRING}),
    MessageType.ASPDN: frozenset({_T.INFO_STRING}),
    MessageType.ASPDN_ACK: frozenset({_T.INFO_STRING}),
    MessageType.BEAT: frozenset({_T.HEARTBEAT_DATA}),
    MessageType.BEAT_ACK: frozenset({_T.HEARTBEAT_DATA}),
    MessageType.ASPAC: frozenset({_T.TRAFFIC_MODE_TYPE, _T.ROUTING_CONTEXT, _T.INFO_STRING}),
    MessageType.ASPAC_ACK: frozenset({_T.TRAFFIC_MODE_TYPE, _T.ROUTING_CONTEXT, _T.INFO_STRING}),
    MessageType.ASPIA: frozenset({_T.ROUTING_CONTEXT, _T.INFO_STRING}),
    MessageType.ASPIA_ACK: frozenset({_T.ROUTING_CONTEXT, _T.INFO_STRING}),
}
_MANDATORY: dict[MessageType, tuple[int, ...]] = {
    MessageType.ERR: (_T.ERROR_CODE,),
    MessageType.NTFY: (_T.STATUS,),
    MessageType.DATA: (_T.PROTOCOL_DATA,),
    MessageType.DUNA: (_T.AFFECTED_POINT_CODE,),
    MessageType.DAVA: (_T.AFFECTED_POINT_CODE,),
    MessageType.DAUD: (_T.AFFECTED_POINT_CODE,),
    MessageType.SCON: (_T.AFFECTED_POINT_CODE,),
    MessageType.DUPU: (_T.AFFECTED_POINT_CODE, _T.USER_CAUSE),
    MessageType.DRST: (_T.AFFECTED_POINT_CODE,),
}
_FIXED_LEN = {
    _T.ERROR_CODE: 4,
    _T.TRAFFIC_MODE_TYPE: 4,
    _T.STATUS: 4,
    _T.ASP_IDENTIFIER: 4,
    _T.CORRELATION_ID: 4,
    _T.NETWORK_APPEARANCE: 4,
    _T.USER_CAUSE: 4,
    _T.CONCERNED_DESTINATION: 4,
    _T.CONGESTION_INDICATIONS: 4,
}
"""Parameters whose value is exactly one 32-bit field; any other length is a Parameter Field Error."""
_U32_LIST = frozenset(
    {
        _T.ROUTING_CONTEXT,
        _T.AFFECTED_POINT_CODE,
        _T.ORIGINATING_POINT_CODE_LIST,
    }
)
"""Parameters whose value is a list of 32-bit fields (§3.3.1 Routing Context, §3.4.1 Affected Point
Code, §3.6.2 OPC List): empty or not a multiple of 4 octets is a Parameter Field Error (§3.8.1)."""


class M3uaDecodeError(RemoteProtocolError):
    """A received message is malformed; ``code`` (also the ``wire_hint``) is the ERR Error Code to
    answer with (§3.8.1)."""

    def __init__(
        self,
        code: ErrorCode,
        detail: str,
        *,
        routing_context: int | None = None,
        network_appearance: int | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {detail}", wire_hint=code)
        self.code = code
        self.detail = detail
        self.routing_context = routing_context
        """§3.8.1: an ERR "Invalid Routing Context" carries the offending RC."""
        self.network_appearance = network_appearance
        """§3.8.1: an ERR "Invalid Network Appearance" carries the offending NA."""


# --- codec ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolData:
    """The MTP-TRANSFER primitive carried in DATA (§3.3.1): routing label, SIO and the user part."""

    opc: int
    dpc: int
    si: int = 3
    """Service Indicator: 3 = SCCP."""
    ni: int = 2
    """Network Indicator: 0 international, 2 national."""
    mp: int = 0
    sls: int = 0
    data: bytes = b""

    def encode(self) -> bytes:
        return PD_HEAD.pack(self.opc, self.dpc, self.si, self.ni, self.mp, self.sls) + self.data

    @classmethod
    def decode(cls, value: bytes) -> ProtocolData:
        if len(value) < 12:
            raise M3uaDecodeError(ErrorCode.PARAMETER_FIELD_ERROR, "Protocol Data shorter than 12 octets")
        opc, dpc, si, ni, mp, sls = PD_HEAD.unpack_from(value)
        return cls(opc=opc, dpc=dpc, si=si, ni=ni, mp=mp, sls=sls, data=bytes(value[12:]))


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded M3UA message: its type and its parameters in wire order (tag, value)."""

    type: MessageType
    params: tuple[tuple[int, bytes], ...] = ()

    def get(self, tag: int) -> bytes | None:
        for t, v in self.params:
            if t == tag:
                return v
        return None

    def get_u32(self, tag: int) -> int | None:
        v = self.get(tag)
        if v is None:
            return None
        if len(v) < 4:  # decode_message checks lengths; this guards hand-built messages
            raise M3uaDecodeError(ErrorCode.PARAMETER_FIELD_ERROR, f"parameter 0x{tag:04x} shorter than 4")
        return int(U32.unpack_from(v)[0])

    def get_u32_list(self, tag: int) -> tuple[int, ...]:
        v = self.get(tag)
        if v is None:
            return ()
        if len(v) % 4:
            raise M3uaDecodeError(
                ErrorCode.PARAMETER_FIELD_ERROR, f"parameter 0x{tag:04x} length {len(v)} not a multiple of 4"
            )
        return struct.unpack(f"!{len(v) // 4}I", v)


def _tlv(tag: int, value: bytes) -> bytes:
    pad = -len(value) % 4
    return TLV.pack(tag, 4 + len(value)) + value + b"\0" * pad


def encode_message(msg_type: MessageType, params: Sequence[tuple[int, bytes]] = ()) -> bytes:
    """Header + parameters, each padded to a 4-octet boundary (§3.2)."""
    body = b"".join(_tlv(t, v) for t, v in params)
    return HEADER.pack(VERSION, 0, msg_type >> 8, msg_type & 0xFF, 8 + len(body)) + body


def encode_data(
    pd: ProtocolData, *, routing_context: int | None = None, network_appearance: int | None = None
) -> bytes:
    """DATA (§3.3.1) built in one pass: the hot path of every checkIMEI answer."""
    payload = pd.data
    pad = -len(payload) % 4
    parts = []
    if network_appearance is not None:
        parts.append(struct.pack("!HHI", Tag.NETWORK_APPEARANCE, 8, network_appearance))
    if routing_context is not None:
        parts.append(struct.pack("!HHI", Tag.ROUTING_CONTEXT, 8, routing_context))
    head = b"".join(parts)
    pd_len = 16 + len(payload)
    total = 8 + len(head) + pd_len + pad
    return b"".join(
        (
            HEADER.pack(VERSION, 0, 1, 1, total),
            head,
            TLV.pack(Tag.PROTOCOL_DATA, pd_len),
            PD_HEAD.pack(pd.opc, pd.dpc, pd.si, pd.ni, pd.mp, pd.sls),
            payload,
            b"\0" * pad,
        )
    )


ERR_DIAGNOSTIC_MAX = 40
"""Diagnostic Information carries the start of the offending message (§3.8.1): this many octets."""


def encode_error(
    code: ErrorCode,
    diagnostic: bytes = b"",
    *,
    routing_context: Sequence[int] = (),
    network_appearance: int | None = None,
) -> bytes:
    """ERR (§3.8.1): Error Code, the Routing Context / Network Appearance it concerns (for "Invalid
    Routing Context" / "Invalid Network Appearance"), and the first ERR_DIAGNOSTIC_MAX octets of the
    offending message as Diagnostic Information — parameters in the order of §3.8.1."""
    params: list[tuple[int, bytes]] = [(Tag.ERROR_CODE, U32.pack(code))]
    if routing_context:
        params.append((Tag.ROUTING_CONTEXT, _rc_bytes(tuple(routing_context))))
    if network_appearance is not None:
        params.append((Tag.NETWORK_APPEARANCE, U32.pack(network_appearance)))
    if diagnostic:
        params.append((Tag.DIAGNOSTIC_INFO, diagnostic[:ERR_DIAGNOSTIC_MAX]))
    return encode_message(MessageType.ERR, params)


def decode_message(buf: bytes) -> Message:
    """Decode one complete message (framing already done). Raises :class:`M3uaDecodeError` with the
    §3.8.1 code to answer with."""
    if len(buf) < 8:
        raise M3uaDecodeError(ErrorCode.PROTOCOL_ERROR, "message shorter than the common header")
    version, _reserved, mclass, mtype, length = HEADER.unpack_from(buf)
    if version != VERSION:
        raise M3uaDecodeError(ErrorCode.INVALID_VERSION, f"version {version}")
    if mclass not in _CLASSES or mclass not in _SUPPORTED_CLASSES:
        raise M3uaDecodeError(ErrorCode.UNSUPPORTED_MESSAGE_CLASS, f"message class {mclass}")
    try:
        mt = MessageType((mclass << 8) | mtype)
    except ValueError:
        raise M3uaDecodeError(
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE, f"message type {mtype} in class {mclass}"
        ) from None
    if length != len(buf):
        raise M3uaDecodeError(ErrorCode.PROTOCOL_ERROR, f"length field {length} != message size {len(buf)}")
    allowed = _ALLOWED[mt]
    params: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    off = 8
    end = len(buf)
    while off < end:
        if end - off < 4:
            raise M3uaDecodeError(ErrorCode.PARAMETER_FIELD_ERROR, f"truncated parameter header at {off}")
        tag, plen = TLV.unpack_from(buf, off)
        if plen < 4 or off + plen > end:
            raise M3uaDecodeError(
                ErrorCode.PARAMETER_FIELD_ERROR, f"parameter 0x{tag:04x} length {plen} at offset {off}"
            )
        if tag not in allowed:
            raise M3uaDecodeError(
                ErrorCode.UNEXPECTED_PARAMETER, f"parameter 0x{tag:04x} not expected in {mt.name}"
            )
        if tag in seen:
            raise M3uaDecodeError(ErrorCode.UNEXPECTED_PARAMETER, f"parameter 0x{tag:04x} repeated")
        seen.add(tag)
        value = bytes(buf[off + 4 : off + plen])
        fixed = _FIXED_LEN.get(tag)
        if (fixed is not None and len(value) != fixed) or (
            tag in _U32_LIST and (not value or len(value) % 4)
        ):
            raise M3uaDecodeError(
                ErrorCode.PARAMETER_FIELD_ERROR, f"parameter 0x{tag:04x} value length {len(value)}"
            )
        params.append((tag, value))
        off += plen + (-plen % 4)
    for tag in _MANDATORY.get(mt, ()):
        if tag not in seen:
            raise M3uaDecodeError(
                ErrorCode.MISSING_PARAMETER, f"{mt.name} without mandatory parameter 0x{tag:04x}"
            )
    return Message(mt, tuple(params))


# --- ASP state machine ------------------------------------------------------------------------------


class AspState(IntEnum):
    """ASP states as seen by the SGP/IPSP, and by the ASP itself (§4.3.1)."""

    DOWN = 0
    INACTIVE = 1
    ACTIVE = 2


class Role(IntEnum):
    SG = 0
    """The listening end (SGP / IPSP single exchange): accepts ASPUP/ASPAC from the peer."""
    ASP = 1
    """The connecting end: sends ASPUP then ASPAC and waits for the acknowledgements."""


class AspInput(IntEnum):
    """What drives the state machine: received ASPSM/ASPTM/DATA messages and local commands."""

    RX_ASPUP = 0
    RX_ASPDN = 1
    RX_ASPAC = 2
    RX_ASPIA = 3
    RX_ASPUP_ACK = 4
    RX_ASPDN_ACK = 5
    RX_ASPAC_ACK = 6
    RX_ASPIA_ACK = 7
    RX_DATA = 8
    START = 9
    """Local: bring the association up (ASP role: send ASPUP)."""
    STOP = 10
    """Local: take it down (ASP role: send ASPDN)."""


class Action(IntEnum):
    NONE = 0
    SEND_ASPUP_ACK = 1
    SEND_ASPDN_ACK = 2
    SEND_ASPAC_ACK = 3
    SEND_ASPIA_ACK = 4
    SEND_ASPUP = 5
    SEND_ASPAC = 6
    SEND_ASPDN = 7
    DELIVER = 8
    ERR_UNEXPECTED = 9
    """ERR "Unexpected Message" (0x06): the message is valid but not in this state (§4.3.4)."""
    REFUSE_LOCAL = 10
    """A local command that makes no sense in this state: LocalProtocolError."""


_S, _I, _A = AspState, AspInput, Action
_D, _N, _X = _S.DOWN, _S.INACTIVE, _S.ACTIVE


def _sg_row(state: AspState) -> dict[tuple[Role, AspState, AspInput], tuple[Action, AspState]]:
    """SGP/IPSP side, RFC 4666 §4.3.4.1-§4.3.4.4. ASPUP in ASP-ACTIVE moves the ASP back to
    ASP-INACTIVE (§4.3.4.1); ASPDN is acknowledged in every state (§4.3.4.2); ASPAC/ASPIA while
    ASP-DOWN and DATA while not ASP-ACTIVE get ERR Unexpected Message (§4.3.4.3, §4.3.4.4)."""
    sg = Role.SG
    up = {_D: (_A.SEND_ASPUP_ACK, _N), _N: (_A.SEND_ASPUP_ACK, _N), _X: (_A.SEND_ASPUP_ACK, _N)}[state]
    ac = {_D: (_A.ERR_UNEXPECTED, _D), _N: (_A.SEND_ASPAC_ACK, _X), _X: (_A.SEND_ASPAC_ACK, _X)}[state]
    ia = {_D: (_A.ERR_UNEXPECTED, _D), _N: (_A.SEND_ASPIA_ACK, _N), _X: (_A.SEND_ASPIA_ACK, _N)}[state]
    data = (_A.DELIVER, _X) if state is _X else (_A.ERR_UNEXPECTED, state)
    return {
        (sg, state, _I.RX_ASPUP): up,
        (sg, state, _I.RX_ASPDN): (_A.SEND_ASPDN_ACK, _D),
        (sg, state, _I.RX_ASPAC): ac,
        (sg, state, _I.RX_ASPIA): ia,
        (sg, state, _I.RX_ASPUP_ACK): (_A.ERR_UNEXPECTED, state),
        (sg, state, _I.RX_ASPDN_ACK): (_A.ERR_UNEXPECTED, state),
        (sg, state, _I.RX_ASPAC_ACK): (_A.ERR_UNEXPECTED, state),
        (sg, state, _I.RX_ASPIA_ACK): (_A.ERR_UNEXPECTED, state),
        (sg, state, _I.RX_DATA): data,
        (sg, state, _I.START): (_A.NONE, state),
        (sg, state, _I.STOP): (_A.NONE, _D),
    }


def _asp_row(state: AspState) -> dict[tuple[Role, AspState, AspInput], tuple[Action, AspState]]:
    """ASP side, §4.3.1 / §5.1: ASPUP → (ASPUP ACK) → ASPAC → (ASPAC ACK) → ASP-ACTIVE. An ASP
    never receives ASPUP/ASPAC/ASPIA/ASPDN (those would be IPSP double exchange, not offered)."""
    asp = Role.ASP
    up_ack = {_D: (_A.SEND_ASPAC, _N), _N: (_A.NONE, _N), _X: (_A.NONE, _X)}[state]
    ac_ack = (_A.NONE, _X) if state is not _D else (_A.ERR_UNEXPECTED, _D)
    ia_ack = (_A.NONE, _N) if state is not _D else (_A.ERR_UNEXPECTED, _D)
    data = (_A.DELIVER, _X) if state is _X else (_A.ERR_UNEXPECTED, state)
    return {
        (asp, state, _I.RX_ASPUP): (_A.ERR_UNEXPECTED, state),
        (asp, state, _I.RX_ASPDN): (_A.ERR_UNEXPECTED, state),
        (asp, state, _I.RX_ASPAC): (_A.ERR_UNEXPECTED, state),
        (asp, state, _I.RX_ASPIA): (_A.ERR_UNEXPECTED, state),
        (asp, state, _I.RX_ASPUP_ACK): up_ack,
        (asp, state, _I.RX_ASPDN_ACK): (_A.NONE, _D),
        (asp, state, _I.RX_ASPAC_ACK): ac_ack,
        (asp, state, _I.RX_ASPIA_ACK): ia_ack,
        (asp, state, _I.RX_DATA): data,
        (asp, state, _I.START): (_A.SEND_ASPUP, _D) if state is _D else (_A.REFUSE_LOCAL, state),
        (asp, state, _I.STOP): (_A.SEND_ASPDN, state) if state is not _D else (_A.NONE, _D),
    }


TRANSITIONS: dict[tuple[Role, AspState, AspInput], tuple[Action, AspState]] = {
    **_sg_row(_D),
    **_sg_row(_N),
    **_sg_row(_X),
    **_asp_row(_D),
    **_asp_row(_N),
    **_asp_row(_X),
}
"""The one table: (role, state, input) → (action, new state). Every pair is listed (tests walk it)."""

_RX_INPUT = {
    MessageType.ASPUP: _I.RX_ASPUP,
    MessageType.ASPDN: _I.RX_ASPDN,
    MessageType.ASPAC: _I.RX_ASPAC,
    MessageType.ASPIA: _I.RX_ASPIA,
    MessageType.ASPUP_ACK: _I.RX_ASPUP_ACK,
    MessageType.ASPDN_ACK: _I.RX_ASPDN_ACK,
    MessageType.ASPAC_ACK: _I.RX_ASPAC_ACK,
    MessageType.ASPIA_ACK: _I.RX_ASPIA_ACK,
    MessageType.DATA: _I.RX_DATA,
}


# --- events -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AspStateChanged:
    old: AspState
    new: AspState
    asp_id: int | None = None
    routing_context: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DataReceived:
    """An MTP-TRANSFER indication: DATA on an ASP-ACTIVE association."""

    data: ProtocolData
    routing_context: int | None = None
    network_appearance: int | None = None
    correlation_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorSent:
    """We answered bad input with ERR; ``code`` is what went on the wire, ``detail`` why."""

    code: ErrorCode
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrDiscarded:
    """A bad ERR from the peer (malformed, or on a stream other than 0) was dropped unanswered: an
    ERR is never answered with an ERR, or two peers could loop (§3.8.1). ``code`` is the error found."""

    code: ErrorCode
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorReceived:
    code: int
    diagnostic: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyReceived:
    status_type: int
    status_info: int
    routing_context: tuple[int, ...] = ()
    info: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SignallingNetworkManagementReceived:
    """DUNA/DAVA/DAUD/SCON/DUPU/DRST (§3.4): reported, never acted on by a lab EIR."""

    type: MessageType
    affected_point_codes: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatAcked:
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionTerminated:
    """The association must be closed by the adapter (framing lost, heartbeat lost, peer ASPDN ACK
    after our ``stop``, a time limit passed)."""

    reason: str
    timer: str | None = None
    """The time limit that ended it — ``"setup"`` (no ASP-ACTIVE in time), ``"idle"`` (no message in
    time), ``"heartbeat"`` (BEATs unanswered), ``"ack"`` (T(ack) retransmissions exhausted) — or None."""


Event = (
    AspStateChanged
    | DataReceived
    | ErrorSent
    | ErrDiscarded
    | ErrorReceived
    | NotifyReceived
    | SignallingNetworkManagementReceived
    | HeartbeatAcked
    | ConnectionTerminated
)


# --- the connection core -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class M3uaSettings:
    role: Role = Role.SG
    routing_context: int | None = None
    """Our configured RC. SG role: when set, ASPAC/DATA naming another RC get ERR Invalid Routing
    Context (0x19); when unset any RC is accepted and echoed (lab tolerance). ASP role: sent in ASPAC."""
    network_appearance: int | None = None
    traffic_mode: TrafficMode = TrafficMode.LOADSHARE
    asp_id: int | None = None
    beat_interval: float = 0.0
    """Send BEAT every N seconds while up (0: never). Two unanswered BEATs end the association."""
    setup_timeout: float = 0.0
    """Seconds from ``start`` to the first ASP-ACTIVE (0: no limit). A peer that connects and never
    brings its ASP up (no ASPUP, or ASPUP but no ASPAC) is terminated when it passes: it would hold a
    file descriptor for nothing. Once ACTIVE, an ASP may go INACTIVE (an override standby) freely."""
    idle_timeout: float = 0.0
    """Seconds without a whole message from the peer (any message: DATA, BEAT ACK, BEAT …) before
    the association is terminated (0: no limit). Counted on whole messages, so a peer dribbling one
    message a byte at a time is not kept alive by it."""
    ack_timeout: float = 2.0
    """T(ack), §4.3.4.1: resend ASPUP/ASPAC/ASPDN when unacknowledged (ASP role)."""
    max_retransmits: int = 5
    max_message_size: int = 16384
    """Larger length fields are treated as a broken stream: ERR Protocol Error, then close."""
    info_string: str = ""
    allowed_asp_ids: frozenset[int] | None = None
    """SG role: when set, an ASPUP must carry one of these ASP Identifiers — none at all gets ERR ASP
    Identifier Required (0x0e), another ERR Refused - Management Blocking (0x0d, §3.8.1: "denied for
    management reasons") — and the association is then terminated."""
    allowed_routing_contexts: frozenset[int] | None = None
    """SG role: when set, every RC an ASPAC names must be one of these, and it must name one; else ERR
    Invalid Routing Context (0x19) and the association is terminated."""


class M3uaConnection:
    """One M3UA association (RFC 4666) over a byte stream (TCP) or SCTP messages (``stream`` given).

    SG role: waits for the peer's ASPUP/ASPAC and answers (ACKs, NTFY for AS state, §4.3.4.5).
    ASP role: ``start(now)`` sends ASPUP, then ASPAC on its ACK, resending on T(ack).
    """

    def __init__(self, settings: M3uaSettings | None = None) -> None:
        self.settings = settings or M3uaSettings()
        self.state = AspState.DOWN
        self.asp_id: int | None = None
        self.peer_routing_context: tuple[int, ...] = ()
        """RC(s) named by the peer's ASPAC (SG role) or ASPAC ACK (ASP role)."""
        self.closed = False
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._pending: MessageType | None = None
        self._pending_deadline: float | None = None
        self._retransmits = 0
        self._beat_deadline: float | None = None
        self._beats_unanswered = 0
        self._beat_seq = 0
        self._stopping = False
        self._setup_deadline: float | None = None
        self._idle_deadline: float | None = None
        self.last_received = 0.0
        """When the last whole message arrived (the idle limit counts from it). Read and written by
        a caller that frames messages itself (the EIR stack's fast path) too."""

    # -- commands -------------------------------------------------------------------------------------

    def start(self, now: float) -> list[Event]:
        """ASP role: send ASPUP (§4.3.4.1). SG role: arms the BEAT timer only. Both: the set-up and
        idle limits start counting (:class:`M3uaSettings`)."""
        s = self.settings
        self.last_received = now
        if s.setup_timeout > 0:
            self._setup_deadline = now + s.setup_timeout
        if s.idle_timeout > 0:
            self._idle_deadline = now + s.idle_timeout
        return self._local(_I.START, now)

    def stop(self, now: float) -> list[Event]:
        """Graceful shutdown: ASP role sends ASPDN and waits for its ACK; SG role moves to DOWN (the
        adapter then closes the transport — an SGP has no ASPDN of its own, §4.3.4.2)."""
        return self._local(_I.STOP, now)

    def send_data(self, pd: ProtocolData, routing_context: int | None = None) -> None:
        """Queue DATA. RC defaults to the one configured, or the one the peer activated with."""
        if self.state is not AspState.ACTIVE:
            raise LocalProtocolError(f"DATA needs ASP-ACTIVE, association is {self.state.name}")
        self._out.append(
            encode_data(
                pd,
                routing_context=self.routing_context_for_data(routing_context),
                network_appearance=self.settings.network_appearance,
            )
        )

    def routing_context_for_data(self, rc: int | None = None) -> int | None:
        if rc is not None:
            return rc
        if self.settings.routing_context is not None:
            return self.settings.routing_context
        return self.peer_routing_context[0] if len(self.peer_routing_context) == 1 else None

    def send_raw(self, data: bytes) -> None:
        """Queue already-encoded bytes (tests and the simulated peers' fault injection)."""
        self._out.append(data)

    def connection_lost(self, now: float) -> list[Event]:
        """The transport was cut under the association (TCP reset, SCTP loss, the adapter closing it).

        The ASP is down without an ASPDN (§4.3.4.2 treats a lost association alike): reports
        :class:`AspStateChanged` to ASP-DOWN when it was up, stops the timers and drops what was
        queued. No :class:`ConnectionTerminated`: there is no transport left to close (compare
        ``receive_data(b"")``, the peer closing its side in order). Safe to call more than once.
        """
        events: list[Event] = []
        if self.closed and self.state is AspState.DOWN:
            return events
        self.closed = True
        self._buf.clear()
        self._out.clear()
        self._clear_timers()
        self._pending = None
        self._set_state(AspState.DOWN, events)
        return events

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def get_timer(self) -> float | None:
        t = _earlier(self._pending_deadline, self._beat_deadline)
        t = _earlier(t, self._setup_deadline)
        return _earlier(t, self._idle_deadline)

    def handle_timer(self, now: float) -> list[Event]:
        events: list[Event] = []
        s = self.settings
        if self._setup_deadline is not None and now >= self._setup_deadline:
            events.append(self._terminate(f"no ASP-ACTIVE within {s.setup_timeout:g} s", timer="setup"))
            return events
        if self._idle_deadline is not None and now >= self._idle_deadline:
            due = self.last_received + s.idle_timeout
            if now >= due:
                events.append(self._terminate(f"no message for {s.idle_timeout:g} s", timer="idle"))
                return events
            self._idle_deadline = due  # a message came meanwhile: re-arm from it
        if self._pending_deadline is not None and now >= self._pending_deadline and self._pending is not None:
            if self._retransmits >= self.settings.max_retransmits:
                name = self._pending.name
                self._pending = self._pending_deadline = None
                events.append(self._terminate(f"no acknowledgement of {name}", timer="ack"))
                return events
            self._retransmits += 1
            self._send_pending(self._pending, now)
        if self._beat_deadline is not None and now >= self._beat_deadline:
            if self._beats_unanswered >= 2:
                self._beat_deadline = None
                events.append(self._terminate("two BEATs unanswered", timer="heartbeat"))
                return events
            self._beats_unanswered += 1
            self._beat_seq += 1
            beat = encode_message(MessageType.BEAT, [(Tag.HEARTBEAT_DATA, U32.pack(self._beat_seq))])
            self._out.append(beat)
            self._beat_deadline = now + self.settings.beat_interval
        return events

    # -- input ----------------------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float, stream: int | None = None) -> list[Event]:
        """Bytes from TCP (any split), or one SCTP message with its ``stream`` id. ``b""`` = EOF."""
        if self.closed:
            return []
        if not data:
            old = self.state
            self.state = AspState.DOWN
            self.closed = True
            self._clear_timers()
            ev: list[Event] = []
            if old is not AspState.DOWN:
                ev.append(AspStateChanged(old=old, new=AspState.DOWN, asp_id=self.asp_id))
            ev.append(ConnectionTerminated(reason="transport closed by peer"))
            return ev
        buf = self._buf
        buf += data
        events: list[Event] = []
        off = 0
        n = len(buf)
        maxlen = self.settings.max_message_size
        while n - off >= 8:
            length = int.from_bytes(buf[off + 4 : off + 8], "big")
            if length < 8 or length > maxlen:
                detail = f"message length {length} outside 8..{maxlen}: stream framing lost"
                self._out.append(
                    encode_error(ErrorCode.PROTOCOL_ERROR, bytes(buf[off : off + ERR_DIAGNOSTIC_MAX]))
                )
                events.append(ErrorSent(code=ErrorCode.PROTOCOL_ERROR, detail=detail))
                events.append(self._terminate(detail))
                del buf[:]
                return events
            if n - off < length:
                break
            msg = bytes(buf[off : off + length])
            off += length
            self._handle_message(msg, now, stream, events)
            if self.closed:
                del buf[:]
                return events
        if off:
            del buf[:off]
        return events

    def take_partial(self) -> bytes:
        """The start of a message ``receive_data`` holds until the rest arrives (``b""`` when none),
        handed over and forgotten: for a caller that frames the stream itself (the EIR stack's fast
        path) and gives each whole message to :meth:`receive_message`."""
        buf = self._buf
        if not buf:
            return b""
        data = bytes(buf)
        buf.clear()
        return data

    def receive_message(self, raw: bytes, now: float, stream: int | None = None) -> list[Event]:
        """One whole message, framed by the caller as ``receive_data`` frames (length field in
        8..``max_message_size``, ``raw`` exactly that long): the events ``receive_data`` gives for it."""
        events: list[Event] = []
        if not self.closed:
            self._handle_message(raw, now, stream, events)
        return events

    def _handle_message(self, raw: bytes, now: float, stream: int | None, events: list[Event]) -> None:
        self.last_received = now
        try:
            msg = decode_message(raw)
            self._dispatch(msg, raw, now, stream, events)
        except M3uaDecodeError as e:
            self._reject(e, raw, events)

    def _dispatch(
        self, msg: Message, raw: bytes, now: float, stream: int | None, events: list[Event]
    ) -> None:
        """One decoded message, through the transition table when it is ASPSM / ASPTM / DATA. A
        parameter found unusable here raises
        :class:`M3uaDecodeError`, answered with ERR by the caller like a decoding error."""
        mt = msg.type
        if stream is not None and stream != 0 and mt >> 8 in (0, 3):
            # §1.4.7 / §3.1.2: MGMT and ASPSM messages go on stream 0.
            self._reject(
                M3uaDecodeError(ErrorCode.INVALID_STREAM_IDENTIFIER, f"{mt.name} on SCTP stream {stream}"),
                raw,
                events,
            )
            return
        inp = _RX_INPUT.get(mt)
        if inp is not None:
            self._transition(inp, msg, raw, now, stream, events)
            return
        if mt is MessageType.BEAT:
            # §4.3.4.6: BEAT ACK echoes the Heartbeat Data unchanged, in any state.
            self._out.append(encode_message(MessageType.BEAT_ACK, msg.params))
        elif mt is MessageType.BEAT_ACK:
            self._beats_unanswered = 0
            events.append(HeartbeatAcked(data=msg.get(Tag.HEARTBEAT_DATA) or b""))
        elif mt is MessageType.ERR:
            events.append(
                ErrorReceived(
                    code=msg.get_u32(Tag.ERROR_CODE) or 0, diagnostic=msg.get(Tag.DIAGNOSTIC_INFO) or b""
                )
            )
        elif mt is MessageType.NTFY:
            status = msg.get(Tag.STATUS) or b"\0\0\0\0"
            st, si = struct.unpack("!HH", status)
            info = (msg.get(Tag.INFO_STRING) or b"").decode("utf-8", "replace")
            events.append(
                NotifyReceived(
                    status_type=st,
                    status_info=si,
                    routing_context=msg.get_u32_list(Tag.ROUTING_CONTEXT),
                    info=info,
                )
            )
        else:  # SSNM
            apcs = tuple(p & 0xFFFFFF for p in msg.get_u32_list(Tag.AFFECTED_POINT_CODE))
            if mt is MessageType.DAUD and self.settings.role is Role.SG:
                if self.state is not AspState.ACTIVE:
                    self._reject(
                        M3uaDecodeError(ErrorCode.UNEXPECTED_MESSAGE, "DAUD before ASP-ACTIVE"), raw, events
                    )
                    return
                # §4.5.3: answer the audit. A lab EIR has no MTP network behind it, so every audited
                # destination (typically its own point code) is reported available.
                params = [
                    (t, v)
                    for t, v in msg.params
                    if t in (Tag.NETWORK_APPEARANCE, Tag.ROUTING_CONTEXT, Tag.AFFECTED_POINT_CODE)
                ]
                self._out.append(encode_message(MessageType.DAVA, params))
            events.append(SignallingNetworkManagementReceived(type=mt, affected_point_codes=apcs))

    def _check_rc_na(self, rc: int | None, na: int | None) -> None:
        s = self.settings
        if rc is not None and s.routing_context is not None and rc != s.routing_context:
            raise M3uaDecodeError(
                ErrorCode.INVALID_ROUTING_CONTEXT, f"routing context {rc}", routing_context=rc
            )
        if na is not None and s.network_appearance is not None and na != s.network_appearance:
            raise M3uaDecodeError(
                ErrorCode.INVALID_NETWORK_APPEARANCE, f"network appearance {na}", network_appearance=na
            )

    def _deliver(self, msg: Message, stream: int | None, events: list[Event]) -> None:
        """DATA on an ASP-ACTIVE association (§3.3.1): an MTP-TRANSFER indication, once RC / NA
        name ours (§3.8.1: else ERR, raised to the caller) and it came on a stream other than 0."""
        pd = ProtocolData.decode(msg.get(Tag.PROTOCOL_DATA) or b"")
        rc = msg.get_u32(Tag.ROUTING_CONTEXT)
        na = msg.get_u32(Tag.NETWORK_APPEARANCE)
        self._check_rc_na(rc, na)
        if stream == 0:  # §1.4.7: stream 0 carries management only
            raise M3uaDecodeError(ErrorCode.INVALID_STREAM_IDENTIFIER, "DATA on SCTP stream 0")
        events.append(
            DataReceived(
                data=pd,
                routing_context=rc,
                network_appearance=na,
                correlation_id=msg.get_u32(Tag.CORRELATION_ID),
            )
        )

    def _transition(
        self, inp: AspInput, msg: Message, raw: bytes, now: float, stream: int | None, events: list[Event]
    ) -> None:
        action, new = TRANSITIONS[(self.settings.role, self.state, inp)]
        if action is Action.DELIVER:
            self._deliver(msg, stream, events)
            return
        if action is Action.ERR_UNEXPECTED:
            self._reject(
                M3uaDecodeError(ErrorCode.UNEXPECTED_MESSAGE, f"{msg.type.name} in ASP-{self.state.name}"),
                raw,
                events,
            )
            return
        s = self.settings
        info: list[tuple[int, bytes]] = [(Tag.INFO_STRING, s.info_string.encode())] if s.info_string else []
        rcs = msg.get_u32_list(Tag.ROUTING_CONTEXT)
        if action is Action.SEND_ASPUP_ACK:
            self.asp_id = msg.get_u32(Tag.ASP_IDENTIFIER)
            allowed = s.allowed_asp_ids
            if allowed is not None and self.asp_id not in allowed:
                code = (
                    ErrorCode.ASP_IDENTIFIER_REQUIRED
                    if self.asp_id is None
                    else ErrorCode.REFUSED_MANAGEMENT_BLOCKING
                )
                self._reject(M3uaDecodeError(code, f"ASP Identifier {self.asp_id} not allowed"), raw, events)
                events.append(self._terminate(f"ASP Identifier {self.asp_id} not allowed"))
                return
            self._out.append(encode_message(MessageType.ASPUP_ACK, info))
            self._set_state(new, events)
            # §4.3.4.5: tell the ASP its AS is (still) inactive.
            self._notify(2, rcs or self._our_rcs())
            self._arm_beat(now)
            return
        if action is Action.SEND_ASPAC_ACK:
            tmt = msg.get_u32(Tag.TRAFFIC_MODE_TYPE)
            if tmt is not None and tmt not in (1, 2, 3):
                self._reject(
                    M3uaDecodeError(ErrorCode.UNSUPPORTED_TRAFFIC_MODE_TYPE, f"traffic mode {tmt}"),
                    raw,
                    events,
                )
                return
            allowed_rcs = s.allowed_routing_contexts
            if allowed_rcs is not None and (not rcs or not allowed_rcs.issuperset(rcs)):
                self._reject(
                    M3uaDecodeError(
                        ErrorCode.INVALID_ROUTING_CONTEXT, f"routing context {list(rcs)} not allowed"
                    ),
                    raw,
                    events,
                    rc=rcs,
                )
                events.append(self._terminate(f"routing context {list(rcs)} not allowed"))
                return
            if s.routing_context is not None and rcs and s.routing_context not in rcs:
                self._reject(
                    M3uaDecodeError(ErrorCode.INVALID_ROUTING_CONTEXT, f"routing context {rcs}"),
                    raw,
                    events,
                    rc=rcs,
                )
                return
            self.peer_routing_context = rcs or self._our_rcs()
            params: list[tuple[int, bytes]] = []
            if tmt is not None:
                params.append((Tag.TRAFFIC_MODE_TYPE, U32.pack(tmt)))
            if self.peer_routing_context:
                params.append((Tag.ROUTING_CONTEXT, _rc_bytes(self.peer_routing_context)))
            self._out.append(encode_message(MessageType.ASPAC_ACK, params + info))
            was = self.state
            self._set_state(new, events)
            if was is not AspState.ACTIVE:
                self._notify(3, self.peer_routing_context)
            return
        if action is Action.SEND_ASPIA_ACK:
            params = [(Tag.ROUTING_CONTEXT, _rc_bytes(rcs))] if rcs else []
            self._out.append(encode_message(MessageType.ASPIA_ACK, params + info))
            was = self.state
            self._set_state(new, events)
            if was is AspState.ACTIVE:
                self._notify(2, rcs or self.peer_routing_context)
            return
        if action is Action.SEND_ASPDN_ACK:
            self._out.append(encode_message(MessageType.ASPDN_ACK, info))
            self._beat_deadline = None
            self._set_state(new, events)
            return
        if action is Action.SEND_ASPAC:
            self._retransmits = 0
            self._set_state(new, events)
            self._send_pending(MessageType.ASPAC, now)
            return
        # ASP role acknowledgements.
        if inp is _I.RX_ASPAC_ACK:
            self.peer_routing_context = rcs
        if inp in (_I.RX_ASPAC_ACK, _I.RX_ASPIA_ACK, _I.RX_ASPDN_ACK, _I.RX_ASPUP_ACK):
            expected = {
                _I.RX_ASPAC_ACK: MessageType.ASPAC,
                _I.RX_ASPIA_ACK: MessageType.ASPIA,
                _I.RX_ASPDN_ACK: MessageType.ASPDN,
                _I.RX_ASPUP_ACK: MessageType.ASPUP,
            }[inp]
            if self._pending is expected:
                self._pending = self._pending_deadline = None
        self._set_state(new, events)
        if inp is _I.RX_ASPDN_ACK and self._stopping:
            events.append(self._terminate("ASP down"))

    def _local(self, inp: AspInput, now: float) -> list[Event]:
        action, new = TRANSITIONS[(self.settings.role, self.state, inp)]
        events: list[Event] = []
        if action is Action.REFUSE_LOCAL:
            raise LocalProtocolError(f"{inp.name} in ASP-{self.state.name}")
        if action is Action.SEND_ASPUP:
            self._retransmits = 0
            self._send_pending(MessageType.ASPUP, now)
            self._arm_beat(now)
        elif action is Action.SEND_ASPDN:
            self._stopping = True
            self._retransmits = 0
            self._send_pending(MessageType.ASPDN, now)
        elif inp is _I.START:
            self._arm_beat(now)
        elif inp is _I.STOP:
            self._beat_deadline = None
            self._pending = self._pending_deadline = None
            self._set_state(new, events)
            return events
        self._set_state(new, events)
        return events

    # -- helpers ------------------------------------------------------------------------------------

    def _our_rcs(self) -> tuple[int, ...]:
        rc = self.settings.routing_context
        return () if rc is None else (rc,)

    def _send_pending(self, mt: MessageType, now: float) -> None:
        s = self.settings
        params: list[tuple[int, bytes]] = []
        if mt is MessageType.ASPUP and s.asp_id is not None:
            params.append((Tag.ASP_IDENTIFIER, U32.pack(s.asp_id)))
        if mt is MessageType.ASPAC:
            params.append((Tag.TRAFFIC_MODE_TYPE, U32.pack(s.traffic_mode)))
            if s.routing_context is not None:
                params.append((Tag.ROUTING_CONTEXT, U32.pack(s.routing_context)))
        if s.info_string:
            params.append((Tag.INFO_STRING, s.info_string.encode()))
        self._out.append(encode_message(mt, params))
        self._pending = mt
        self._pending_deadline = now + s.ack_timeout

    def _arm_beat(self, now: float) -> None:
        if self.settings.beat_interval > 0 and self._beat_deadline is None:
            self._beat_deadline = now + self.settings.beat_interval

    def _notify(self, as_state: int, rcs: tuple[int, ...]) -> None:
        status = struct.pack("!HH", StatusType.AS_STATE_CHANGE, as_state)
        params: list[tuple[int, bytes]] = [(Tag.STATUS, status)]
        if self.asp_id is not None:
            params.append((Tag.ASP_IDENTIFIER, U32.pack(self.asp_id)))
        if rcs:
            params.append((Tag.ROUTING_CONTEXT, _rc_bytes(rcs)))
        self._out.append(encode_message(MessageType.NTFY, params))

    def _set_state(self, new: AspState, events: list[Event]) -> None:
        if new is AspState.ACTIVE:
            self._setup_deadline = None
        if new is not self.state:
            old, self.state = self.state, new
            events.append(
                AspStateChanged(
                    old=old, new=new, asp_id=self.asp_id, routing_context=self.peer_routing_context
                )
            )

    def _reject(self, e: M3uaDecodeError, raw: bytes, events: list[Event], rc: tuple[int, ...] = ()) -> None:
        # §3.8.1: an ERR is never answered with an ERR (that would loop between two peers).
        if len(raw) >= 4 and raw[2] == 0 and raw[3] == 0:
            events.append(ErrDiscarded(code=e.code, detail=e.detail))
            return
        if not rc and e.routing_context is not None:
            rc = (e.routing_context,)
        self._out.append(
            encode_error(e.code, raw, routing_context=rc, network_appearance=e.network_appearance)
        )
        events.append(ErrorSent(code=e.code, detail=e.detail))

    def _terminate(self, reason: str, timer: str | None = None) -> ConnectionTerminated:
        self.closed = True
        self.state = AspState.DOWN
        self._clear_timers()
        return ConnectionTerminated(reason=reason, timer=timer)

    def _clear_timers(self) -> None:
        self._beat_deadline = self._pending_deadline = None
        self._setup_deadline = self._idle_deadline = None


def _earlier(a: float | None, b: float | None) -> float | None:
    """The earlier of two deadlines, either of which may be None (no list: called per read)."""
    if a is None:
        return b
    if b is None:
        return a
    return b if b < a else a


def _rc_bytes(rcs: tuple[int, ...]) -> bytes:
    return struct.pack(f"!{len(rcs)}I", *rcs)
