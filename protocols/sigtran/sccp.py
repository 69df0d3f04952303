"""SCCP connectionless messages (ITU-T Q.713), sans-IO: what an EIR behind M3UA needs.

* UDT (§4.10), XUDT (§4.18), UDTS (§4.11) and XUDTS (§4.19) — all decoded; UDT/XUDT/UDTS/XUDTS
  encoded. Answers mirror the request's form: UDT for UDT (a checkIMEI End always fits one UDT),
  XUDT for XUDT — the sender's network evidently carries XUDT, and the answer keeps the request's
  Importance (§3.19). (Not checked against a vendor EIR trace: none with XUDT was available.)
* Called/calling party addresses (§3.4): routing indicator, point code (14-bit ITU, little-endian
  on the wire), SSN and Global Title indicators 1-4 (§3.4.2.3) with translation type, numbering
  plan, encoding scheme (BCD odd/even) and nature of address; digits are BCD low nibble first.
* Protocol class 0/1 and "return message on error" (§3.6).
* SCMG (§5.3, Q.714 §5.3): a subsystem status test (SST) for our SSN is answered with SSA.

:class:`SccpEndpoint` is the small core used by the EIR stack: ``receive(data)`` returns the user
data addressed to our SSN (:class:`UnitdataReceived`) or the reply to send back (UDTS for a
subsystem we do not serve, SSA for SST); ``answer(received, user_data)`` builds the reply with the
addresses swapped and our own SSN and GT as calling party.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum

from .errors import RemoteProtocolError

__all__ = [
    "GlobalTitle",
    "MessageType",
    "ReturnCause",
    "SccpAddress",
    "SccpDecodeError",
    "SccpEndpoint",
    "ScmgReply",
    "ServiceReturned",
    "Unitdata",
    "UnitdataReceived",
    "UnitdataReturned",
    "decode_address",
    "decode_message",
    "encode_address",
    "encode_unitdata",
    "encode_unitdata_service",
    "make_address",
    "with_ssn",
]


class MessageType(IntEnum):
    """Q.713 §2.1 (connectionless subset)."""

    UDT = 0x09
    UDTS = 0x0A
    XUDT = 0x11
    XUDTS = 0x12
    LUDT = 0x13
    LUDTS = 0x14


class ReturnCause(IntEnum):
    """Q.713 §3.12."""

    NO_TRANSLATION_FOR_NATURE = 0
    NO_TRANSLATION_FOR_ADDRESS = 1
    SUBSYSTEM_CONGESTION = 2
    SUBSYSTEM_FAILURE = 3
    UNEQUIPPED_USER = 4
    MTP_FAILURE = 5
    NETWORK_CONGESTION = 6
    UNQUALIFIED = 7
    ERROR_IN_MESSAGE_TRANSPORT = 8
    ERROR_IN_LOCAL_PROCESSING = 9
    DESTINATION_CANNOT_REASSEMBLE = 10
    SCCP_FAILURE = 11
    HOP_COUNTER_VIOLATION = 12
    SEGMENTATION_NOT_SUPPORTED = 13
    SEGMENTATION_FAILURE = 14


class SccpDecodeError(RemoteProtocolError):
    """The SCCP message is malformed (a pointer or length points outside the message). No wire hint:
    a malformed message is discarded, never answered (Q.714 §4.2: a UDTS needs readable addresses)."""


# --- addresses ------------------------------------------------------------------------------------

_BCD = "0123456789abcdef"
_BCD_VAL = {c: i for i, c in enumerate(_BCD)}


def _bcd_encode(digits: str) -> bytes:
    out = bytearray()
    for i in range(0, len(digits), 2):
        lo = _BCD_VAL[digits[i]]
        hi = _BCD_VAL[digits[i + 1]] if i + 1 < len(digits) else 0  # §3.4.2.3.1: filler 0000
        out.append(lo | (hi << 4))
    return bytes(out)


def _bcd_decode(data: bytes, odd: bool) -> str:
    s = "".join(_BCD[b & 0xF] + _BCD[b >> 4] for b in data)
    return s[:-1] if odd and s else s


@dataclass(frozen=True, slots=True, kw_only=True)
class GlobalTitle:
    """A Global Title (§3.4.2.3). ``gti`` selects which of the fields go on the wire:
    1 = NAI only, 2 = TT only, 3 = TT + NP + ES, 4 = TT + NP + ES + NAI (the usual one in MAP)."""

    digits: str
    gti: int = 4
    translation_type: int = 0
    numbering_plan: int = 1
    """1 = E.164 (ISDN/telephony), 7 = E.214 (mobile)."""
    nature_of_address: int = 4
    """4 = international number."""
    encoding_scheme: int | None = None
    """1 = BCD odd, 2 = BCD even; None: derived from the digit count."""

    def encode(self) -> bytes:
        odd = len(self.digits) % 2
        digits = _bcd_encode(self.digits)
        es = self.encoding_scheme if self.encoding_scheme is not None else (1 if odd else 2)
        if self.gti == 1:
            return bytes(((odd << 7) | (self.nature_of_address & 0x7F),)) + digits
        if self.gti == 2:
            return bytes((self.translation_type,)) + digits
        if self.gti == 3:
            return bytes((self.translation_type, (self.numbering_plan << 4) | es)) + digits
        if self.gti == 4:
            return (
                bytes((self.translation_type, (self.numbering_plan << 4) | es, self.nature_of_address & 0x7F))
                + digits
            )
        raise ValueError(f"global title indicator {self.gti} not supported")

    @classmethod
    def decode(cls, gti: int, data: bytes) -> GlobalTitle:
        try:
            if gti == 1:
                odd = bool(data[0] & 0x80)
                return cls(gti=1, nature_of_address=data[0] & 0x7F, digits=_bcd_decode(data[1:], odd))
            if gti == 2:
                # §3.4.2.3.2: the digit encoding is network specific; BCD is by far the usual one.
                return cls(gti=2, translation_type=data[0], digits=_bcd_decode(data[1:], False))
            if gti == 3:
                es = data[1] & 0x0F
                return cls(
                    gti=3,
                    translation_type=data[0],
                    numbering_plan=data[1] >> 4,
                    encoding_scheme=es,
                    digits=_bcd_decode(data[2:], es == 1),
                )
            if gti == 4:
                es = data[1] & 0x0F
                return cls(
                    gti=4,
                    translation_type=data[0],
                    numbering_plan=data[1] >> 4,
                    encoding_scheme=es,
                    nature_of_address=data[2] & 0x7F,
                    digits=_bcd_decode(data[3:], es == 1),
                )
        except IndexError:
            raise SccpDecodeError(f"global title (indicator {gti}) truncated") from None
        raise SccpDecodeError(f"global title indicator {gti} not supported")


@dataclass(frozen=True, slots=True, kw_only=True)
class SccpAddress:
    """Called/calling party address (§3.4.1, ITU format)."""

    route_on_ssn: bool = False
    """Routing indicator (bit 7): True = route on SSN (DPC + SSN), False = route on GT."""
    point_code: int | None = None
    ssn: int | None = None
    gt: GlobalTitle | None = None
    national: bool = False
    """Bit 8, reserved for national use (kept as received)."""

    def encode(self) -> bytes:
        return encode_address(self)


def encode_address(a: SccpAddress) -> bytes:
    """Address *value* (without the length octet)."""
    gti = a.gt.gti if a.gt is not None else 0
    ai = (
        (a.national << 7)
        | (a.route_on_ssn << 6)
        | (gti << 2)
        | ((a.ssn is not None) << 1)
        | (a.point_code is not None)
    )
    out = bytearray((ai,))
    if a.point_code is not None:
        out += (a.point_code & 0x3FFF).to_bytes(2, "little")
    if a.ssn is not None:
        out.append(a.ssn)
    if a.gt is not None:
        out += a.gt.encode()
    return bytes(out)


_ADDRESS_CACHE: dict[bytes, SccpAddress] = {}
_ADDRESS_CACHE_MAX = 4096


def decode_address(data: bytes) -> SccpAddress:
    """Decode an address value (§3.4). Memoised: the same few peers send every message, so the
    called/calling addresses repeat (the cache is bounded and simply cleared when full)."""
    got = _ADDRESS_CACHE.get(data)
    if got is None:
        got = _decode_address(data)
        if len(_ADDRESS_CACHE) >= _ADDRESS_CACHE_MAX:
            _ADDRESS_CACHE.clear()
        _ADDRESS_CACHE[data] = got
    return got


def _decode_address(data: bytes) -> SccpAddress:
    if not data:
        raise SccpDecodeError("empty address")
    ai = data[0]
    off = 1
    pc = ssn = None
    if ai & 0x01:
        if len(data) < off + 2:
            raise SccpDecodeError("address: point code truncated")
        pc = int.from_bytes(data[off : off + 2], "little") & 0x3FFF
        off += 2
    if ai & 0x02:
        if len(data) < off + 1:
            raise SccpDecodeError("address: SSN truncated")
        ssn = data[off]
        off += 1
    gti = (ai >> 2) & 0x0F
    gt = GlobalTitle.decode(gti, data[off:]) if gti else None
    return SccpAddress(route_on_ssn=bool(ai & 0x40), point_code=pc, ssn=ssn, gt=gt, national=bool(ai & 0x80))


# --- messages --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Unitdata:
    """UDT / XUDT (and, with ``return_cause``, UDTS / XUDTS)."""

    type: MessageType
    called: SccpAddress
    calling: SccpAddress
    data: bytes
    protocol_class: int = 0
    """0 or 1 (§3.6); for UDTS/XUDTS unused."""
    return_on_error: bool = False
    return_cause: int | None = None
    """UDTS/XUDTS only."""
    hop_counter: int = 15
    """XUDT/XUDTS only (§3.18)."""
    segmentation: bytes | None = None
    """XUDT optional Segmentation parameter value (§3.17), kept as raw octets."""
    importance: int | None = None
    """XUDT optional Importance (§3.19)."""
    raw_called: bytes = b""
    raw_calling: bytes = b""
    """The address values as received, reused unchanged when swapping addresses for the answer."""

    @property
    def is_extended(self) -> bool:
        return self.type in (MessageType.XUDT, MessageType.XUDTS)


def _var(buf: bytes, ptr_off: int, name: str) -> bytes:
    """A variable part reached through a 1-octet pointer at ``ptr_off`` (§2.3)."""
    ptr = buf[ptr_off]
    if ptr == 0:
        raise SccpDecodeError(f"{name}: null pointer")
    start = ptr_off + ptr
    if start >= len(buf):
        raise SccpDecodeError(f"{name}: pointer beyond the message")
    length = buf[start]
    if start + 1 + length > len(buf):
        raise SccpDecodeError(f"{name}: length {length} beyond the message")
    return bytes(buf[start + 1 : start + 1 + length])


def decode_message(buf: bytes) -> Unitdata:
    """Decode UDT/XUDT/UDTS/XUDTS. Other types raise :class:`SccpDecodeError` (a lab EIR has no
    connection-oriented SCCP; LUDT needs a 16-bit pointer format it does not use either)."""
    if len(buf) < 2:
        raise SccpDecodeError("message too short")
    try:
        mt = MessageType(buf[0])
    except ValueError:
        raise SccpDecodeError(f"message type 0x{buf[0]:02x} not supported") from None
    try:
        if mt in (MessageType.UDT, MessageType.UDTS):
            if len(buf) < 5:
                raise SccpDecodeError("UDT shorter than its fixed part")
            second = buf[1]
            called = _var(buf, 2, "called party address")
            calling = _var(buf, 3, "calling party address")
            data = _var(buf, 4, "data")
            hop, seg, imp = 15, None, None
        elif mt in (MessageType.XUDT, MessageType.XUDTS):
            if len(buf) < 7:
                raise SccpDecodeError("XUDT shorter than its fixed part")
            second = buf[1]
            hop = buf[2]
            called = _var(buf, 3, "called party address")
            calling = _var(buf, 4, "calling party address")
            data = _var(buf, 5, "data")
            seg, imp = _optional(buf, 6)
        else:
            raise SccpDecodeError(f"message type {mt.name} not supported")
    except IndexError:
        raise SccpDecodeError(f"{mt.name} truncated") from None
    service = mt in (MessageType.UDTS, MessageType.XUDTS)
    return Unitdata(
        type=mt,
        called=decode_address(called),
        calling=decode_address(calling),
        data=data,
        protocol_class=0 if service else second & 0x0F,
        return_on_error=False if service else bool(second & 0x80),
        return_cause=second if service else None,
        hop_counter=hop,
        segmentation=seg,
        importance=imp,
        raw_called=called,
        raw_calling=calling,
    )


_OPTIONAL_LEN = {0x10: 4, 0x12: 1}
"""Fixed value lengths of the XUDT/XUDTS optional parameters we read: Segmentation (Q.713 §3.17:
4 octets) and Importance (§3.19: 1 octet). Any other length is a malformed message."""


def _optional(buf: bytes, ptr_off: int) -> tuple[bytes | None, int | None]:
    """The optional part (§2.3: name, length, value …, end of optional parameters). Unknown
    parameters are skipped; a known one of the wrong length raises :class:`SccpDecodeError`."""
    ptr = buf[ptr_off]
    if ptr == 0:
        return None, None
    off = ptr_off + ptr
    seg: bytes | None = None
    imp: int | None = None
    while off < len(buf):
        name = buf[off]
        if name == 0:  # end of optional parameters
            return seg, imp
        if off + 1 >= len(buf):
            break
        length = buf[off + 1]
        value = bytes(buf[off + 2 : off + 2 + length])
        if len(value) != length:
            break
        want = _OPTIONAL_LEN.get(name)
        if want is not None and length != want:
            what = "segmentation" if name == 0x10 else "importance"
            raise SccpDecodeError(f"{what} parameter of {length} octets (must be {want})")
        if name == 0x10:
            seg = value
        elif name == 0x12:
            imp = value[0] & 0x07
        off += 2 + length
    raise SccpDecodeError("optional part not terminated")


def _lv(value: bytes) -> bytes:
    if len(value) > 255:
        raise ValueError("SCCP variable part longer than 255 octets")
    return bytes((len(value),)) + value


def encode_unitdata(
    *,
    called: bytes,
    calling: bytes,
    data: bytes,
    protocol_class: int = 0,
    return_on_error: bool = False,
    extended: bool = False,
    hop_counter: int = 15,
    importance: int | None = None,
) -> bytes:
    """UDT (§4.10) or XUDT (§4.18). ``called``/``calling`` are encoded address values
    (:func:`encode_address`), so a fixed own address is encoded once."""
    second = (protocol_class & 0x0F) | (0x80 if return_on_error else 0)
    return _encode(
        MessageType.XUDT if extended else MessageType.UDT,
        second,
        called,
        calling,
        data,
        hop_counter,
        importance,
    )


def encode_unitdata_service(
    *, called: bytes, calling: bytes, data: bytes, cause: int, extended: bool = False, hop_counter: int = 15
) -> bytes:
    """UDTS (§4.11) or XUDTS (§4.19) carrying the returned user data."""
    return _encode(
        MessageType.XUDTS if extended else MessageType.UDTS, cause, called, calling, data, hop_counter, None
    )


def _encode(
    mt: MessageType, second: int, called: bytes, calling: bytes, data: bytes, hop: int, importance: int | None
) -> bytes:
    p_called, p_calling, p_data = _lv(called), _lv(calling), _lv(data)
    if mt in (MessageType.UDT, MessageType.UDTS):
        # Pointers count from their own octet: 3 pointers, so the first part starts 3 octets on.
        ptrs = bytes((3, 2 + len(p_called), 1 + len(p_called) + len(p_calling)))
        return bytes((mt, second)) + ptrs + p_called + p_calling + p_data
    opt = b"" if importance is None else bytes((0x12, 1, importance & 0x07, 0))
    ptr_opt = 0 if not opt else 1 + len(p_called) + len(p_calling) + len(p_data)
    ptrs = bytes((4, 3 + len(p_called), 2 + len(p_called) + len(p_calling), ptr_opt))
    return bytes((mt, second, hop)) + ptrs + p_called + p_calling + p_data + opt


# --- the endpoint core -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitdataReceived:
    """User data for our subsystem; keep it to :meth:`SccpEndpoint.answer`."""

    message: Unitdata


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitdataReturned:
    """We return the message to its sender (UDTS/XUDTS) — ``reply`` is the SCCP bytes, ``cause`` why."""

    message: Unitdata
    cause: ReturnCause
    reply: bytes | None
    """None when the sender did not ask for return on error: the message is then discarded."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceReturned:
    """A UDTS/XUDTS came back to us (our answer could not be delivered)."""

    message: Unitdata


@dataclass(frozen=True, slots=True, kw_only=True)
class ScmgReply:
    """SCCP management (SSN 1) handled here: ``reply`` (SSA for an SST) or None (ignored)."""

    message: Unitdata
    reply: bytes | None
    detail: str


SccpEvent = UnitdataReceived | UnitdataReturned | ServiceReturned | ScmgReply


class SccpEndpoint:
    """The SCCP user side of one node (Q.714 connectionless procedures, reduced to what an EIR does).

    ``ssns``: subsystems served here (the EIR: 9). Our calling address in answers is
    route-on-GT with our GT + SSN when the request was routed on GT, otherwise route-on-SSN with
    our point code + SSN (and the GT, so either routing works on the way back).
    """

    def __init__(
        self,
        *,
        ssns: tuple[int, ...] = (9,),
        point_code: int | None = None,
        global_title: str | None = None,
        gt_translation_type: int = 0,
        gt_numbering_plan: int = 1,
        gt_nature_of_address: int = 4,
        accept_global_titles: tuple[str, ...] | None = None,
    ) -> None:
        self.ssns = ssns
        self.point_code = point_code
        self._accept_gts = _gt_matcher(accept_global_titles)
        """None: any called GT is ours (no check). Else a test of the digits: a message routed on GT
        (routing indicator 0) whose called GT fails it is returned (Q.714 §2.4 GT translation)."""
        self._gt = (
            GlobalTitle(
                digits=global_title,
                translation_type=gt_translation_type,
                numbering_plan=gt_numbering_plan,
                nature_of_address=gt_nature_of_address,
            )
            if global_title
            else None
        )
        self._own_cache: dict[tuple[bool, bool, int], bytes] = {}

    def own_address(self, *, route_on_ssn: bool, with_pc: bool, ssn: int) -> bytes:
        key = (route_on_ssn, with_pc, ssn)
        v = self._own_cache.get(key)
        if v is None:
            v = encode_address(
                SccpAddress(
                    route_on_ssn=route_on_ssn or self._gt is None,
                    point_code=self.point_code if with_pc else None,
                    ssn=ssn,
                    gt=self._gt,
                )
            )
            self._own_cache[key] = v
        return v

    def receive(self, data: bytes) -> SccpEvent:
        """One SCCP message (the payload of an M3UA DATA with SI=3). Raises SccpDecodeError."""
        msg = decode_message(data)
        if msg.return_cause is not None:
            return ServiceReturned(message=msg)
        ssn = msg.called.ssn
        if ssn == 1:
            return self._scmg(msg)
        if msg.is_extended and msg.segmentation and msg.segmentation[0] & 0x0F:
            # §3.17: remaining segments > 0 — reassembly is not offered by a lab EIR.
            return self._return(msg, ReturnCause.SEGMENTATION_NOT_SUPPORTED)
        if msg.is_extended and msg.hop_counter == 0:
            return self._return(msg, ReturnCause.HOP_COUNTER_VIOLATION)
        accept = self._accept_gts
        called = msg.called
        if accept is not None and not called.route_on_ssn and called.gt is not None:
            # Q.714 §2.4.1: routed on GT, the GT must translate to this node. We translate one
            # translation type (0, the E.164 / E.214 GTs of MAP): another has no translation for an
            # address of such nature (cause 0); digits that are not ours none for this address (1).
            if called.gt.translation_type != 0:
                return self._return(msg, ReturnCause.NO_TRANSLATION_FOR_NATURE)
            if not accept(called.gt.digits):
                return self._return(msg, ReturnCause.NO_TRANSLATION_FOR_ADDRESS)
        if ssn is not None and ssn not in self.ssns:
            return self._return(msg, ReturnCause.UNEQUIPPED_USER)
        return UnitdataReceived(message=msg)

    def _return(self, msg: Unitdata, cause: ReturnCause) -> UnitdataReturned:
        reply = None
        if msg.return_on_error:
            # Q.714 §4.2: the UDTS goes back to the calling party with the user data unchanged.
            reply = encode_unitdata_service(
                called=msg.raw_calling,
                calling=msg.raw_called,
                data=msg.data,
                cause=cause,
                extended=msg.is_extended,
            )
        return UnitdataReturned(message=msg, cause=cause, reply=reply)

    def _scmg(self, msg: Unitdata) -> ScmgReply:
        d = msg.data
        if len(d) >= 5 and d[0] == 0x03:  # SST (Q.713 §5.3.2)
            affected = d[1]
            if affected in self.ssns:
                ssa = bytes((0x01,)) + d[1:5]  # SSA with the same affected SSN / PC / multiplicity
                reply = encode_unitdata(
                    called=msg.raw_calling, calling=msg.raw_called, data=ssa, extended=msg.is_extended
                )
                return ScmgReply(message=msg, reply=reply, detail=f"SST for SSN {affected}: SSA")
            return ScmgReply(message=msg, reply=None, detail=f"SST for SSN {affected} not served: no reply")
        return ScmgReply(message=msg, reply=None, detail=f"SCMG format 0x{d[0] if d else 0:02x} ignored")

    def answer(self, request: Unitdata, data: bytes) -> bytes:
        """The reply to ``request`` carrying ``data``: addresses swapped, calling = our SSN (the one
        called) + GT; same form (UDT/XUDT) and protocol class as the request (§4.10, Q.714 §4.1)."""
        called_ssn = request.called.ssn if request.called.ssn is not None else self.ssns[0]
        calling = self.own_address(
            route_on_ssn=request.called.route_on_ssn,
            with_pc=request.called.point_code is not None,
            ssn=called_ssn,
        )
        return encode_unitdata(
            called=request.raw_calling,
            calling=calling,
            data=data,
            protocol_class=request.protocol_class,
            extended=request.is_extended,
            importance=request.importance,
        )


def _gt_matcher(patterns: tuple[str, ...] | None) -> Callable[[str], bool] | None:
    """Digits → ours? from exact digit strings and prefixes (``"4917*"``; ``"*"``: any); None: no
    check at all."""
    if patterns is None:
        return None
    exact = frozenset(p for p in patterns if not p.endswith("*"))
    prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))

    def match(digits: str) -> bool:
        return digits in exact or digits.startswith(prefixes)

    return match


def make_address(
    *,
    ssn: int | None,
    gt: str | None = None,
    point_code: int | None = None,
    route_on_ssn: bool | None = None,
    gti: int = 4,
) -> SccpAddress:
    """Convenience for clients (the simulated MSC): route on GT when a GT is given."""
    g = GlobalTitle(digits=gt, gti=gti) if gt else None
    return SccpAddress(
        route_on_ssn=(g is None) if route_on_ssn is None else route_on_ssn,
        point_code=point_code,
        ssn=ssn,
        gt=g,
    )


def with_ssn(address: SccpAddress, ssn: int) -> SccpAddress:
    return replace(address, ssn=ssn)
