"""S13/S13' ME-Identity-Check (3GPP TS 29.272 §5.3 and §7.2.19-7.2.20).

ECR::

    < ME-Identity-Check-Request > ::= < Diameter Header: 324, REQ, PXY, 16777252 >
        < Session-Id > [ DRMP ] [ Vendor-Specific-Application-Id ] { Auth-Session-State }
        { Origin-Host } { Origin-Realm } [ Destination-Host ] { Destination-Realm }
        { Terminal-Information } [ User-Name ] *[ AVP ] *[ Proxy-Info ] *[ Route-Record ]

ECA::

    < ME-Identity-Check-Answer > ::= < Diameter Header: 324, PXY, 16777252 >
        < Session-Id > [ DRMP ] [ Vendor-Specific-Application-Id ] [ Result-Code ]
        [ Experimental-Result ] { Auth-Session-State } { Origin-Host } { Origin-Realm }
        [ Equipment-Status ] *[ AVP ] [ Failed-AVP ] *[ Proxy-Info ] *[ Route-Record ]

The answer is built from pre-encoded pieces (:class:`EcaBuilder`): only the Session-Id, the
identifiers and any Proxy-Info change from one ECA to the next.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import fields
from typing import Final

from . import dictionary as d
from .codec import (
    AVP_FLAG_MANDATORY,
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    Avp,
    AvpType,
    Message,
    decode_value,
    encode_avp,
    encode_raw,
    scan_echo_avps,
)
from .dictionary import APP_S13, VENDOR_3GPP, AuthSessionState, Command, EquipmentStatus, ResultCode
from .errors import LocalProtocolError, RemoteProtocolError
from .events import EquipmentCheckAnswered, EquipmentCheckRequested

__all__ = [
    "EcaBuilder",
    "InvalidEcrError",
    "build_ecr",
    "decode_eca",
    "decode_ecr_raw",
    "missing_avp",
    "validate_avps",
]

_M: Final = AVP_FLAG_MANDATORY
_V: Final = 0x80
_VM: Final = _V | _M

_KNOWN: Final = d.AVPS
_MISSING = ResultCode.DIAMETER_MISSING_AVP
_INVALID = ResultCode.DIAMETER_INVALID_AVP_VALUE
_FIXED_SIZE: Final = {
    AvpType.INTEGER32: 4,
    AvpType.ENUMERATED: 4,
    AvpType.UNSIGNED32: 4,
    AvpType.TIME: 4,
    AvpType.INTEGER64: 8,
    AvpType.UNSIGNED64: 8,
    AvpType.FLOAT32: 4,
    AvpType.FLOAT64: 8,
}


def missing_avp(defn: d.AvpDef, *, inside: d.AvpDef | None = None) -> RemoteProtocolError:
    """5005 with a Failed-AVP holding an example of the missing AVP (RFC 6733 §7.5): right code and
    vendor, a zero-filled payload of the type's minimum size."""
    payload = b"\0" * _FIXED_SIZE.get(defn.avp_type, 0)
    example = encode_avp(defn.code, payload, flags=defn.flags, vendor_id=defn.vendor_id)
    if inside is not None:
        example = encode_avp(inside.code, example, flags=inside.flags, vendor_id=inside.vendor_id)
    return RemoteProtocolError(f"missing AVP {defn.name}", result_code=_MISSING, failed_avp=example)


def validate_avps(avps: list[Avp], depth: int = 0) -> None:
    """Generic checks every received message gets (RFC 6733 §4.1, §7.1.5):

    * an AVP we do not know with the M bit set → 5001 DIAMETER_AVP_UNSUPPORTED;
    * a known fixed-size AVP of the wrong size → 5014 DIAMETER_INVALID_AVP_LENGTH;
    * a known Grouped AVP is decoded and its members checked the same way (bounded depth).
    """
    for a in avps:
        defn = _KNOWN.get((a.code, a.vendor_id))
        if defn is None:
            if a.flags & _M:
                raise RemoteProtocolError(
                    f"unsupported mandatory AVP {a.code} (vendor {a.vendor_id})",
                    result_code=ResultCode.DIAMETER_AVP_UNSUPPORTED,
                    failed_avp=a.encode(),
                )
            continue
        t = defn.avp_type
        size = _FIXED_SIZE.get(t)
        if size is not None:
            if len(a.data) != size:
                raise RemoteProtocolError(
                    f"{defn.name} must be {size} bytes, got {len(a.data)}",
                    result_code=ResultCode.DIAMETER_INVALID_AVP_LENGTH,
                    failed_avp=a.encode(),
                )
        elif t is AvpType.GROUPED:
            if depth >= 8:
                raise RemoteProtocolError(
                    "grouped AVPs nested too deep", result_code=_INVALID, failed_avp=a.encode()
                )
            children = a.children()
            try:
                validate_avps(children, depth + 1)
            except RemoteProtocolError as e:
                # §7.5: the Failed-AVP MAY be the grouped AVP holding the single offending member.
                if e.failed_avp is not None:
                    e.failed_avp = encode_avp(
                        a.code, e.failed_avp, flags=a.flags & 0x7F, vendor_id=a.vendor_id
                    )
                raise


def _str(a: Avp, t: AvpType = AvpType.UTF8_STRING) -> str:
    v = decode_value(a, t)
    if not isinstance(v, str):  # pragma: no cover - decode_value returns str for these types
        raise RemoteProtocolError("not a string", result_code=_INVALID, failed_avp=a.encode())
    return v


_U32 = struct.Struct(">I")
_AVP = struct.Struct(">II")
_ID_CODES: Final = {264: 0, 296: 1, 283: 2, 293: 3}


def _text(
    buf: bytes | bytearray, start: int, stop: int, code: int, flags: int, vendor: int, identity: bool
) -> str:
    try:
        if identity:
            v = buf[start:stop].decode("ascii")
            # DiameterIdentity is an FQDN (RFC 6733 §4.3.1): printable ASCII, no spaces
            if not v or " " in v or not v.isprintable():
                raise ValueError("not an FQDN")
            return v
        return buf[start:stop].decode("utf-8")
    except (UnicodeDecodeError, ValueError) as e:
        raise RemoteProtocolError(
            f"AVP {code}: invalid {'DiameterIdentity' if identity else 'UTF8String'} ({e})",
            result_code=_INVALID,
            failed_avp=encode_avp(code, bytes(buf[start:stop]), flags=flags & 0x7F, vendor_id=vendor),
        ) from None


def decode_ecr_raw(
    buf: bytes | bytearray,
    pos: int,
    length: int,
    flags: int,
    hop_by_hop: int,
    end_to_end: int,
) -> EquipmentCheckRequested:
    """Decode the ECR at ``buf[pos:pos+length]`` in one pass, strictly (what the peer runs when
    the fast path, ``_s13_fast.decode_ecr_fast``, declines a message).

    It applies every check the generic path does — AVP lengths and reserved bits (5014/3009),
    unknown AVPs with the M bit (5001), sizes of known AVPs (5014), values (5004), the ABNF's
    required AVPs (5005) — without building a :class:`Message` first. A fault raises
    :class:`InvalidEcrError`, which also carries the Session-Id and Proxy-Info AVPs the error answer
    must repeat (RFC 6733 §6.2): the ones before the fault were noted on the way, the rest are
    read from the AVP headers after it, so the message is still walked only once.
    """
    end = pos + length
    p = pos + 20
    unpack = _AVP.unpack_from
    session = imsi = None
    ids: list[str | None] = [None, None, None, None]
    terminal: tuple[int, int, int] | None = None
    auth_state = False
    session_raw = b""
    proxy: list[bytes] = []
    echo: list[int] = []
    """Offsets of the Session-Id and Proxy-Info AVPs passed so far (V bit clear)."""
    try:
        while p < end:
            if end - p < 8:
                raise RemoteProtocolError(
                    "truncated AVP header", result_code=ResultCode.DIAMETER_INVALID_AVP_LENGTH
                )
            code, word = unpack(buf, p)
            aflags = word >> 24
            alen = word & 0xFFFFFF
            if aflags & 0x80:
                if end - p < 12:
                    raise RemoteProtocolError(
                        "truncated AVP header", result_code=ResultCode.DIAMETER_INVALID_AVP_LENGTH
                    )
                vendor = _U32.unpack_from(buf, p + 8)[0]
                hdr = 12
            else:
                vendor = 0
                hdr = 8
            if alen < hdr or p + alen > end:
                raise RemoteProtocolError(
                    f"AVP {code} has invalid length {alen}",
                    result_code=ResultCode.DIAMETER_INVALID_AVP_LENGTH,
                    failed_avp=encode_avp(code, b"", flags=aflags & ~0x1F, vendor_id=vendor),
                )
            if aflags & 0x1F:
                raise RemoteProtocolError(
                    f"AVP {code} has reserved flag bits set ({aflags:#04x})",
                    result_code=ResultCode.DIAMETER_INVALID_AVP_BITS,
                    failed_avp=encode_avp(
                        code, bytes(buf[p + hdr : p + alen]), flags=aflags, vendor_id=vendor
                    ),
                )
            ds, de = p + hdr, p + alen
            if vendor == 0:
                if code == 263:
                    session = _text(buf, ds, de, code, aflags, 0, False)
                    session_raw = bytes(buf[p : p + ((alen + 3) & ~3)])
                elif (slot := _ID_CODES.get(code)) is not None:
                    ids[slot] = _text(buf, ds, de, code, aflags, 0, True)
                elif code == 1:
                    imsi = _text(buf, ds, de, code, aflags, 0, False)
                elif code == 277:
                    if alen - hdr != 4:
                        raise RemoteProtocolError(
                            "Auth-Session-State must be 4 bytes",
                            result_code=ResultCode.DIAMETER_INVALID_AVP_LENGTH,
                            failed_avp=encode_avp(code, bytes(buf[ds:de]), flags=aflags),
                        )
                    auth_state = True
                elif code == 282:
                    _text(buf, ds, de, code, aflags, 0, True)
                elif code == 260:
                    _check_vsai(buf, ds, de, aflags)
                else:
                    a = Avp(code, aflags, 0, bytes(buf[ds:de]))
                    validate_avps([a])
                    if code == 284:
                        proxy.append(bytes(buf[p : p + ((alen + 3) & ~3)]))
            elif code == 1401 and vendor == VENDOR_3GPP:
                terminal = (ds, de, aflags)
            else:
                validate_avps([Avp(code, aflags, vendor, bytes(buf[ds:de]))])
            if (code == 263 or code == 284) and not aflags & 0x80:
                echo.append(p)
            p += (alen + 3) & ~3
        if p != end:
            raise RemoteProtocolError(
                "last AVP padding exceeds the message", result_code=ResultCode.DIAMETER_INVALID_AVP_LENGTH
            )
        origin_host, origin_realm, dest_realm, dest_host = ids
        if session is None:
            raise missing_avp(d.SESSION_ID)
        if origin_host is None:
            raise missing_avp(d.ORIGIN_HOST)
        if origin_realm is None:
            raise missing_avp(d.ORIGIN_REALM)
        if dest_realm is None:
            raise missing_avp(d.DESTINATION_REALM)
        if not auth_state:
            raise missing_avp(d.AUTH_SESSION_STATE)
        if terminal is None:
            raise missing_avp(d.TERMINAL_INFORMATION)
        imei, sv, meid = _terminal_raw(buf, *terminal)
    except RemoteProtocolError as e:
        session_avp, proxy_info = scan_echo_avps(buf, p, end, _echo_at(buf, echo))
        raise InvalidEcrError(
            str(e),
            result_code=e.result_code,
            failed_avp=e.failed_avp,
            session_id_avp=session_avp,
            proxy_info=proxy_info,
        ) from None
    return _new_ecr(
        hop_by_hop,
        end_to_end,
        flags,
        session,
        origin_host,
        origin_realm,
        dest_realm,
        dest_host,
        imei,
        sv,
        meid,
        imsi,
        session_raw,
        b"".join(proxy),
    )


def _echo_at(buf: bytes | bytearray, offsets: list[int]) -> tuple[bytes, bytes]:
    """(first Session-Id, every Proxy-Info) among the AVPs at ``offsets``, re-encoded as
    :func:`~.codec.scan_echo_avps` gives them."""
    session = b""
    proxy = b""
    for p in offsets:
        code, word = _AVP.unpack_from(buf, p)
        avp = encode_avp(code, bytes(buf[p + 8 : p + (word & 0xFFFFFF)]), flags=word >> 24)
        if code == 284:
            proxy += avp
        elif not session:
            session = avp
    return session, proxy


class InvalidEcrError(RemoteProtocolError):
    """An ECR that :func:`decode_ecr_raw` refused: the wire hint of :class:`RemoteProtocolError`
    plus the AVPs its error answer repeats (RFC 6733 §6.2), as encoded for that answer."""

    def __init__(
        self,
        message: str,
        *,
        result_code: int,
        failed_avp: bytes | None,
        session_id_avp: bytes,
        proxy_info: bytes,
    ) -> None:
        super().__init__(message, result_code=result_code, failed_avp=failed_avp)
        self.session_id_avp = session_id_avp
        """The first Session-Id AVP (b"" when there was none before the framing of the AVPs broke)."""
        self.proxy_info = proxy_info
        """Every Proxy-Info AVP, in order."""


def _ecr_constructor() -> Callable[..., EquipmentCheckRequested]:
    """A positional constructor for :class:`EquipmentCheckRequested` that fills its slots through
    their member descriptors: the frozen dataclass ``__init__`` pays an ``object.__setattr__``
    call per field (≈ 2 µs for the 14 fields, the single largest cost of decoding an ECR); this
    gives the identical frozen object for less than half of that."""
    names = [f.name for f in fields(EquipmentCheckRequested)]
    if names != [
        "hop_by_hop",
        "end_to_end",
        "flags",
        "session_id",
        "origin_host",
        "origin_realm",
        "destination_realm",
        "destination_host",
        "imei",
        "software_version",
        "meid",
        "imsi",
        "session_id_avp",
        "proxy_info",
    ]:  # pragma: no cover - guards the positional order below against an edit of the event
        raise LocalProtocolError(f"EquipmentCheckRequested fields changed: {names}")
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13 = (
        getattr(EquipmentCheckRequested, n).__set__ for n in names
    )
    new = object.__new__
    cls = EquipmentCheckRequested

    def make(
        hop_by_hop: int,
        end_to_end: int,
        flags: int,
        session_id: str,
        origin_host: str,
        origin_realm: str,
        destination_realm: str,
        destination_host: str | None,
        imei: str | None,
        software_version: str | None,
        meid: bytes | None,
        imsi: str | None,
        session_id_avp: bytes,
        proxy_info: bytes,
    ) -> EquipmentCheckRequested:
        ev = new(cls)
        s0(ev, hop_by_hop)
        s1(ev, end_to_end)
        s2(ev, flags)
        s3(ev, session_id)
        s4(ev, origin_host)
        s5(ev, origin_realm)
        s6(ev, destination_realm)
        s7(ev, destination_host)
        s8(ev, imei)
        s9(ev, software_version)
        s10(ev, meid)
        s11(ev, imsi)
        s12(ev, session_id_avp)
        s13(ev, proxy_info)
        return ev

    return make


_new_ecr: Final = _ecr_constructor()


def _members(buf: bytes | bytearray, start: int, end: int) -> list[tuple[int, int, int, int, int]]:
    """(code, flags, vendor, data start, data end) of each member of a Grouped payload, strictly
    (lengths, reserved bits, padding); a fault raises without Failed-AVP (the caller adds its parent)."""
    out = []
    p = start
    while p < end:
        if end - p < 8:
            raise RemoteProtocolError(
                "truncated member AVP", result_code=ResultCode.DIAMETER_INVALID_AVP_LENGTH
            )
        code, word = _AVP.unpack_from(buf, p)
        flags = word >> 24
        length = word & 0xFFFFFF
        if flags & 0x80:
            if end - p < 12:
                raise RemoteProtocolError(
                    "truncated member AVP", result_code=ResultCode.DIAMETER_INVALID_AVP_LENGTH
                )
            vendor = _U32.unpack_from(buf, p + 8)[0]
            hdr = 12
        else:
            vendor, hdr = 0, 8
        if length < hdr or p + length > end:
            raise RemoteProtocolError(
                f"member AVP {code} has invalid length {length}",
                result_code=ResultCode.DIAMETER_INVALID_AVP_LENGTH,
            )
        if flags & 0x1F:
            raise RemoteProtocolError(
                f"member AVP {code} has reserved flag bits set",
                result_code=ResultCode.DIAMETER_INVALID_AVP_BITS,
            )
        out.append((code, flags, vendor, p + hdr, p + length))
        p += (length + 3) & ~3
    if p != end:
        raise RemoteProtocolError(
            "member AVP padding exceeds the group", result_code=ResultCode.DIAMETER_INVALID_AVP_LENGTH
        )
    return out


def _in_parent(
    e: RemoteProtocolError, buf: bytes | bytearray, start: int, end: int, code: int, flags: int, vendor: int
) -> RemoteProtocolError:
    """§7.5: a fault in a member is reported as the Grouped parent holding it (or, for a broken
    group, the whole parent)."""
    inner = e.failed_avp if e.failed_avp is not None else bytes(buf[start:end])
    e.failed_avp = encode_avp(code, inner, flags=flags & 0x7F, vendor_id=vendor)
    return e


def _check_vsai(buf: bytes | bytearray, start: int, end: int, flags: int) -> None:
    """Vendor-Specific-Application-Id (RFC 6733 §6.11): Vendor-Id and one Application-Id, 4 bytes each."""
    try:
        for code, mflags, vendor, ds, de in _members(buf, start, end):
            if vendor == 0 and (code == 266 or code == 258 or code == 259):
                if de - ds != 4:
                    raise RemoteProtocolError(
                        f"AVP {code} must be 4 bytes",
                        result_code=ResultCode.DIAMETER_INVALID_AVP_LENGTH,
                        failed_avp=encode_avp(code, bytes(buf[ds:de]), flags=mflags),
                    )
            else:
                validate_avps([Avp(code, mflags, vendor, bytes(buf[ds:de]))], 1)
    except RemoteProtocolError as e:
        raise _in_parent(e, buf, start, end, 260, flags, 0) from None


def _terminal_raw(
    buf: bytes | bytearray, start: int, end: int, flags: int
) -> tuple[str | None, str | None, bytes | None]:
    """Terminal-Information (TS 29.272 §7.3.3): IMEI 14-16 digits, Software-Version 2 digits,
    or a 3GPP2-MEID; members are checked like any AVP and reported inside their parent (§7.5)."""
    imei = sv = None
    meid: bytes | None = None
    try:
        for code, mflags, vendor, ds, de in _members(buf, start, end):
            if vendor == VENDOR_3GPP and code == 1402:
                imei = _text(buf, ds, de, code, mflags, vendor, False)
                if not (14 <= len(imei) <= 16 and imei.isascii() and imei.isdigit()):
                    raise RemoteProtocolError(
                        f"IMEI {imei!r} is not 14-16 digits",
                        result_code=_INVALID,
                        failed_avp=encode_avp(code, bytes(buf[ds:de]), flags=mflags & 0x7F, vendor_id=vendor),
                    )
            elif vendor == VENDOR_3GPP and code == 1403:
                sv = _text(buf, ds, de, code, mflags, vendor, False)
                if not (len(sv) == 2 and sv.isascii() and sv.isdigit()):
                    raise RemoteProtocolError(
                        f"Software-Version {sv!r} is not 2 digits",
                        result_code=_INVALID,
                        failed_avp=encode_avp(code, bytes(buf[ds:de]), flags=mflags & 0x7F, vendor_id=vendor),
                    )
            elif vendor == VENDOR_3GPP and code == 1471:
                meid = bytes(buf[ds:de])
            else:
                validate_avps([Avp(code, mflags, vendor, bytes(buf[ds:de]))], 1)
    except RemoteProtocolError as e:
        raise _in_parent(e, buf, start, end, 1401, flags, VENDOR_3GPP) from None
    if imei is None and meid is None:
        raise missing_avp(d.IMEI, inside=d.TERMINAL_INFORMATION)
    return imei, sv, meid


class EcaBuilder:
    """Builds ECAs from pre-encoded parts for one Origin-Host/Origin-Realm (the hot path).

    Answers carry Vendor-Specific-Application-Id {10415, 16777252} (TS 29.272 §7.2.20 allows it and
    several MMEs route on it), then Result-Code 2001 + Equipment-Status, or Experimental-Result
    {10415, 5422} for unknown equipment, or a Result-Code failure.
    """

    def __init__(self, origin_host: str, origin_realm: str) -> None:
        self._vsai = d.VENDOR_SPECIFIC_APPLICATION_ID.encode(
            d.VENDOR_ID.encode(VENDOR_3GPP) + d.AUTH_APPLICATION_ID.encode(APP_S13)
        )
        self._common = (
            d.AUTH_SESSION_STATE.encode(AuthSessionState.NO_STATE_MAINTAINED)
            + d.ORIGIN_HOST.encode(origin_host)
            + d.ORIGIN_REALM.encode(origin_realm)
        )
        success = d.RESULT_CODE.encode(ResultCode.DIAMETER_SUCCESS)
        self._status: dict[int, bytes] = {
            int(s): self._vsai + success + self._common + d.EQUIPMENT_STATUS.encode(s)
            for s in EquipmentStatus
        }
        self._unknown = (
            self._vsai
            + d.EXPERIMENTAL_RESULT.encode(
                d.VENDOR_ID.encode(VENDOR_3GPP)
                + d.EXPERIMENTAL_RESULT_CODE.encode(ResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN)
            )
            + self._common
        )

    def answer(
        self,
        req: EquipmentCheckRequested,
        *,
        status: EquipmentStatus | None = None,
        result_code: int | None = None,
        experimental_result_code: int | None = None,
        error_message: str | None = None,
        failed_avp: bytes | None = None,
    ) -> bytes:
        """One ECA for ``req``: exactly one of ``status`` (→ 2001 + Equipment-Status),
        ``experimental_result_code`` (3GPP vendor, e.g. 5422) or ``result_code``."""
        if status is not None:
            body = self._status[status]
        elif experimental_result_code == ResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN:
            body = self._unknown
        elif experimental_result_code is not None:
            body = (
                self._vsai
                + d.EXPERIMENTAL_RESULT.encode(
                    d.VENDOR_ID.encode(VENDOR_3GPP)
                    + d.EXPERIMENTAL_RESULT_CODE.encode(experimental_result_code)
                )
                + self._common
            )
        elif result_code is not None:
            body = self._vsai + d.RESULT_CODE.encode(result_code) + self._common
        else:
            raise LocalProtocolError("an ECA needs a status, a result code or an experimental result")
        if error_message:
            body += d.ERROR_MESSAGE.encode(error_message)
        if failed_avp:
            body += d.FAILED_AVP.encode(failed_avp)
        flags = req.flags & FLAG_PROXIABLE
        if result_code is not None and 3000 <= result_code < 4000:
            flags |= 0x20
        return encode_raw(
            Command.ME_IDENTITY_CHECK,
            flags,
            APP_S13,
            req.hop_by_hop,
            req.end_to_end,
            req.session_id_avp + body + req.proxy_info,
        )


def build_ecr(
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    imei: str | None,
    software_version: str | None = None,
    imsi: str | None = None,
    destination_host: str | None = None,
    meid: bytes | None = None,
    hop_by_hop: int = 0,
    end_to_end: int = 0,
) -> Message:
    """An ECR as an MME sends it (TS 29.272 §7.2.19), AVPs in ABNF order."""
    terminal = b""
    if imei is not None:
        terminal += d.IMEI.encode(imei)
    if meid is not None:
        terminal += d.MEID_3GPP2.encode(meid)
    if software_version is not None:
        terminal += d.SOFTWARE_VERSION.encode(software_version)
    avps = [
        d.SESSION_ID.make(session_id),
        d.VENDOR_SPECIFIC_APPLICATION_ID.make(
            [d.VENDOR_ID.make(VENDOR_3GPP), d.AUTH_APPLICATION_ID.make(APP_S13)]
        ),
        d.AUTH_SESSION_STATE.make(AuthSessionState.NO_STATE_MAINTAINED),
        d.ORIGIN_HOST.make(origin_host),
        d.ORIGIN_REALM.make(origin_realm),
    ]
    if destination_host is not None:
        avps.append(d.DESTINATION_HOST.make(destination_host))
    avps.append(d.DESTINATION_REALM.make(destination_realm))
    avps.append(Avp(1401, _VM, VENDOR_3GPP, terminal))
    if imsi is not None:
        avps.append(d.USER_NAME.make(imsi))
    return Message(
        Command.ME_IDENTITY_CHECK, APP_S13, FLAG_REQUEST | FLAG_PROXIABLE, hop_by_hop, end_to_end, avps
    )


def decode_eca(msg: Message) -> EquipmentCheckAnswered:
    """ECA → event (initiator side). Tolerant: a field that is absent or unreadable is None."""
    session = None
    result = exp = status = None
    for a in msg.avps:
        try:
            if a.vendor_id == 0:
                if a.code == 263:
                    session = _str(a)
                elif a.code == 268:
                    result = int(decode_value(a, AvpType.UNSIGNED32))  # type: ignore[call-overload]
                elif a.code == 297:
                    for c in a.children():
                        if c.code == 298 and c.vendor_id == 0:
                            exp = int(decode_value(c, AvpType.UNSIGNED32))  # type: ignore[call-overload]
            elif a.code == 1445 and a.vendor_id == VENDOR_3GPP:
                status = int(decode_value(a, AvpType.ENUMERATED))  # type: ignore[call-overload]
        except RemoteProtocolError:
            continue
    return EquipmentCheckAnswered(
        hop_by_hop=msg.hop_by_hop,
        session_id=session,
        result_code=result,
        experimental_result_code=exp,
        equipment_status=status,
        error=msg.is_error,
        message=msg,
    )
