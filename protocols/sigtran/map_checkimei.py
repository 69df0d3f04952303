"""MAP checkIMEI parameters (3GPP TS 29.002 §8.7.1, §17.6.1): the codec, with the vendor variants.

Operation ``checkIMEI`` is localValue 43 in application context ``equipmentMngtContext``
(``0.4.0.0.1.0.13.v``, TS 29.002 §17.3.2). Its parameters (§17.7.1 MAP-MS-DataTypes):

* v1 / v2: argument ``IMEI ::= TBCD-STRING (SIZE (8))`` (OCTET STRING, tag 0x04),
  result ``EquipmentStatus ::= ENUMERATED {whiteListed(0), blackListed(1), greyListed(2)}``.
  A v1 dialogue (MAP phase 1) has no TCAP dialogue portion at all (TS 29.002 §12.1).
* v3: ``CheckIMEI-Arg ::= SEQUENCE { imei IMEI, requestedEquipmentInfo RequestedEquipmentInfo,
  extensionContainer OPTIONAL, ... }`` with ``RequestedEquipmentInfo ::= BIT STRING
  {equipmentStatus(0), bmuef(1)} (SIZE (2..8))`` and ``CheckIMEI-Res ::= SEQUENCE { equipmentStatus
  OPTIONAL, bmuef UESBI-Iu OPTIONAL, extensionContainer OPTIONAL, ... }``.
* errors: unknownEquipment 7, systemFailure 34, dataMissing 35 (localValue error codes).

Vendor deviations accepted on the EIR side (operator traces published in RestComm jSS7's
``CheckImeiRequestTest.java``; the hex rows are in ``tests/unit/sigtran/traces.py``):

* Huawei, v2: TLVs after the IMEI inside the Invoke — ``00 08 <IMSI>`` or ``01 08 <IMSI>`` and
  ``02 <len> <MSISDN AddressString>``, possibly followed by stray octets; a 7-octet IMEI.
* Huawei, v3: ``[0] IMSI`` / ``[1] MSISDN`` inside CheckIMEI-Arg (before requestedEquipmentInfo) and
  trailing ``00 00`` after the sequence.
* Ericsson EnhancedCheckIMEI-Arg (Wireshark ``Ericsson.asn`` / pycrate ``EricssonMAP-Extensions``,
  same opcode 43): ``SEQUENCE { imei, requestedEquipmentInfo OPTIONAL, imsi [PRIVATE 1] IMSI OPTIONAL,
  locationInformation [PRIVATE 3] OCTET STRING (SIZE (1..7)) OPTIONAL, extensionContainer OPTIONAL }``.
* jSS7 2012: the IMEI OCTET STRING wrapped in a second ``04 08``.

Pure functions only: the TCAP dialogue that carries these parameters is :mod:`.tcap_dialogues`
(the EIR side) and :mod:`.map_client` (the MSC side).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ..imei import tbcd_decode, tbcd_encode
from ._ber import BerError, read_tlv, tlv
from .errors import RemoteProtocolError
from .tcap import InvokeProblem, ReturnResultProblem

__all__ = [
    "CHECK_IMEI_OPCODE",
    "EQUIPMENT_MNGT_CONTEXT",
    "CheckImeiArg",
    "EquipmentStatus",
    "MapError",
    "MapParameterError",
    "decode_check_imei_arg",
    "decode_check_imei_res",
    "encode_check_imei_arg",
    "encode_check_imei_res",
    "equipment_mngt_acn",
]

CHECK_IMEI_OPCODE = 43
EQUIPMENT_MNGT_CONTEXT: tuple[int, ...] = (0, 4, 0, 0, 1, 0, 13)
"""``map-ac equipmentMngt(13)`` without the version arc (TS 29.002 §17.3.2)."""


def equipment_mngt_acn(version: int) -> tuple[int, ...]:
    """The equipmentMngtContext-v``version`` application-context-name."""
    return (*EQUIPMENT_MNGT_CONTEXT, version)


class EquipmentStatus(IntEnum):
    """EquipmentStatus (TS 29.002 §17.7.1)."""

    WHITE_LISTED = 0
    BLACK_LISTED = 1
    GREY_LISTED = 2


class MapError(IntEnum):
    """The checkIMEI errors (TS 29.002 §17.6.1, localValue error codes §17.5)."""

    UNKNOWN_EQUIPMENT = 7
    SYSTEM_FAILURE = 34
    DATA_MISSING = 35


class MapParameterError(RemoteProtocolError):
    """A checkIMEI parameter that cannot be read. The ``wire_hint`` is the Reject problem: an
    argument's Invoke gets invoke mistypedParameter (Q.773 §3.3), a result returnResult
    mistypedParameter."""

    def __init__(self, message: str, *, wire_hint: int = InvokeProblem.MISTYPED_PARAMETER) -> None:
        super().__init__(message, wire_hint=wire_hint)


# --------------------------------------------------------------------------------------------------
# TBCD (TS 29.002 §17.7.8): the codec lives in protocols/imei.py; MAP needs decimal digits only.


def _tbcd_digits(data: bytes) -> str:
    """Decimal TBCD digits up to the first filler; raises on a non-decimal digit."""
    s = tbcd_decode(data)
    if not s.isdigit():
        raise MapParameterError(f"non-decimal TBCD digits in {data.hex()}")
    return s


_tbcd_encode = tbcd_encode


def _address_digits(data: bytes) -> str | None:
    """AddressString (TS 29.002 §17.7.8): one TON/NPI octet then TBCD digits."""
    if len(data) < 2:
        return None
    try:
        return _tbcd_digits(data[1:])
    except MapParameterError:
        return None


def _imei_octets(imei: str) -> bytes:
    """IMEI TBCD-STRING (SIZE (8)): 14 digits get the spare digit 0 (TS 23.003 §6.2.1), 16 = IMEISV."""
    if not imei.isdigit() or not 14 <= len(imei) <= 16:
        raise ValueError(f"IMEI must be 14-16 decimal digits, got {imei!r}")
    if len(imei) == 14:
        imei += "0"
    return _tbcd_encode(imei)


# --------------------------------------------------------------------------------------------------
# checkIMEI parameters


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckImeiArg:
    """What the EIR reads from a checkIMEI argument, whatever its form."""

    imei: str
    imsi: str | None = None
    msisdn: str | None = None
    requested_equipment_status: bool = True
    requested_bmuef: bool = False
    vendor: str | None = None
    """``"huawei"``, ``"ericsson"`` or None (standard form)."""
    sequence_form: bool = False
    """True for the v3 SEQUENCE form, False for the bare IMEI (v1/v2)."""
    deviations: tuple[str, ...] = ()
    """Human-readable notes on what did not follow TS 29.002 (for the debug log)."""


def _imei_from(content: bytes, notes: list[str]) -> str:
    if len(content) == 10 and content[0] == 0x04 and content[1] == 0x08:
        notes.append("IMEI wrapped in a second OCTET STRING (jSS7 2012)")
        content = content[2:]
    if not 1 <= len(content) <= 8:
        raise MapParameterError(f"IMEI of {len(content)} octets")
    if len(content) != 8:
        notes.append(f"IMEI of {len(content)} octets instead of 8")
    digits = _tbcd_digits(content)
    if not digits:
        raise MapParameterError("empty IMEI")
    return digits


def _requested(content: bytes) -> tuple[bool, bool]:
    """RequestedEquipmentInfo BIT STRING contents: (equipmentStatus, bmuef)."""
    if len(content) < 2:
        return (False, False)
    bits = content[1]
    return (bool(bits & 0x80), bool(bits & 0x40))


def decode_check_imei_arg(param: bytes) -> CheckImeiArg:
    """Decode the octets after the opcode of a checkIMEI Invoke (tolerant, see the module doc)."""
    end = len(param)
    notes: list[str] = []
    try:
        tag, vs, ve, pos = read_tlv(param, 0, end)
    except BerError as exc:
        raise MapParameterError(f"undecodable checkIMEI argument: {exc}") from None
    imsi: str | None = None
    msisdn: str | None = None
    vendor: str | None = None
    if tag == 0x04:
        imei = _imei_from(param[vs:ve], notes)
        # Huawei: IMSI / MSISDN TLVs after the IMEI (jSS7 getEncodedDataV2_Huawei*). Stop at junk.
        while pos < end:
            try:
                t, s, e, pos = read_tlv(param, pos, end)
            except BerError:
                notes.append(f"{end - pos} trailing octets")
                break
            if t in (0x00, 0x01) and e > s:
                imsi = _safe_digits(param[s:e], notes, "IMSI")
                vendor = "huawei"
            elif t == 0x02 and e > s:
                msisdn = _address_digits(param[s:e])
                vendor = "huawei"
            elif e > s or t != 0x00:
                notes.append(f"ignored element 0x{t:x} after the IMEI")
        if vendor == "huawei":
            notes.append("Huawei IMSI/MSISDN after the IMEI")
        return CheckImeiArg(imei=imei, imsi=imsi, msisdn=msisdn, vendor=vendor, deviations=tuple(notes))
    if tag != 0x30:
        raise MapParameterError(f"checkIMEI argument with tag 0x{tag:x}")
    imei_s: str | None = None
    req: tuple[bool, bool] | None = None
    p = vs
    while p < ve:
        try:
            t, s, e, p = read_tlv(param, p, ve)
        except BerError as exc:
            raise MapParameterError(f"bad CheckIMEI-Arg: {exc}") from None
        if t == 0x04 and imei_s is None:
            imei_s = _imei_from(param[s:e], notes)
        elif t == 0x03:
            req = _requested(param[s:e])
        elif t == 0x80:  # Huawei [0] IMSI
            imsi = _safe_digits(param[s:e], notes, "IMSI")
            vendor = "huawei"
        elif t == 0x81:  # Huawei [1] MSISDN
            msisdn = _address_digits(param[s:e])
            vendor = "huawei"
        elif t == 0xC1:  # Ericsson [PRIVATE 1] IMSI
            imsi = _safe_digits(param[s:e], notes, "IMSI")
            vendor = "ericsson"
        elif t == 0xC3:  # Ericsson [PRIVATE 3] locationInformation
            vendor = "ericsson"
        elif t == 0x30:  # extensionContainer
            continue
        else:
            notes.append(f"ignored element 0x{t:x} in CheckIMEI-Arg")
    if imei_s is None:
        raise MapParameterError("CheckIMEI-Arg without imei")
    if ve < end:
        notes.append(f"{end - ve} octets after CheckIMEI-Arg")
    if req is None:
        if vendor != "ericsson":  # optional only in Ericsson's EnhancedCheckIMEI-Arg
            notes.append("no requestedEquipmentInfo")
        req = (True, False)
    if vendor == "huawei":
        notes.append("Huawei IMSI/MSISDN inside CheckIMEI-Arg")
    status_req, bmuef_req = req
    return CheckImeiArg(
        imei=imei_s,
        imsi=imsi,
        msisdn=msisdn,
        requested_equipment_status=status_req or not bmuef_req,
        requested_bmuef=bmuef_req,
        vendor=vendor,
        sequence_form=True,
        deviations=tuple(notes),
    )


def _safe_digits(data: bytes, notes: list[str], what: str) -> str | None:
    try:
        return _tbcd_digits(data) or None
    except MapParameterError:
        notes.append(f"{what} with non-decimal digits")
        return None


def encode_check_imei_arg(
    *,
    version: int,
    imei: str,
    imsi: str | None = None,
    msisdn: str | None = None,
    requested_bmuef: bool = False,
    vendor: str | None = None,
) -> bytes:
    """The checkIMEI argument octets for ``version``; ``vendor`` adds the IMSI the vendor's way."""
    if (imsi or msisdn) and vendor not in ("huawei", "ericsson"):
        raise ValueError("an IMSI/MSISDN in checkIMEI needs vendor='huawei' or 'ericsson'")
    if vendor == "ericsson" and version < 3:
        raise ValueError("Ericsson EnhancedCheckIMEI is a v3 SEQUENCE")
    imei_tlv = tlv(0x04, _imei_octets(imei))
    if version < 3:
        out = imei_tlv
        if imsi:
            out += tlv(0x00, _tbcd_encode(imsi))
        if msisdn:
            out += tlv(0x02, b"\x91" + _tbcd_encode(msisdn))
        return out
    # RequestedEquipmentInfo as a 2-bit named bit list (06 80 / 06 c0), the form in the Huawei trace.
    req = tlv(0x03, b"\x06\xc0" if requested_bmuef else b"\x06\x80")
    if vendor == "huawei":
        body = imei_tlv
        if imsi:
            body += tlv(0x80, _tbcd_encode(imsi))
        if msisdn:
            body += tlv(0x81, b"\x91" + _tbcd_encode(msisdn))
        return tlv(0x30, body + req)
    body = imei_tlv + req
    if vendor == "ericsson" and imsi:
        body += tlv(0xC1, _tbcd_encode(imsi))
    return tlv(0x30, body)


def encode_check_imei_res(version: int, status: EquipmentStatus | None, bmuef: bytes | None = None) -> bytes:
    """The result octets: a bare EquipmentStatus (v1/v2) or CheckIMEI-Res (v3).

    ``bmuef`` is the contents of the UESBI-Iu SEQUENCE (``80 ..`` uesbi-IuA / ``81 ..`` uesbi-IuB).
    """
    if version < 3:
        if status is None:
            raise ValueError("a v1/v2 checkIMEI result is an EquipmentStatus")
        return b"\x0a\x01" + bytes((int(status),))
    body = b"" if status is None else b"\x0a\x01" + bytes((int(status),))
    if bmuef is not None:
        body += tlv(0x30, bmuef)
    return tlv(0x30, body)


def decode_check_imei_res(param: bytes) -> tuple[EquipmentStatus | None, bytes | None]:
    """(equipmentStatus, UESBI-Iu contents) from either result form."""
    try:
        tag, vs, ve, _ = read_tlv(param, 0, len(param))
        if tag == 0x0A:
            return _status(param[vs:ve]), None
        if tag != 0x30:
            raise MapParameterError(f"checkIMEI result with tag 0x{tag:x}", wire_hint=_RESULT_MISTYPED)
        status: EquipmentStatus | None = None
        bmuef: bytes | None = None
        p = vs
        while p < ve:
            t, s, e, p = read_tlv(param, p, ve)
            if t == 0x0A:
                status = _status(param[s:e])
            elif t == 0x30 and bmuef is None:
                bmuef = bytes(param[s:e])
        return status, bmuef
    except BerError as exc:
        raise MapParameterError(f"bad checkIMEI result: {exc}", wire_hint=_RESULT_MISTYPED) from None


_RESULT_MISTYPED = ReturnResultProblem.MISTYPED_PARAMETER


def _status(content: bytes) -> EquipmentStatus:
    if len(content) != 1 or content[0] > 2:
        raise MapParameterError(f"bad EquipmentStatus {content.hex()}", wire_hint=_RESULT_MISTYPED)
    return EquipmentStatus(content[0])
