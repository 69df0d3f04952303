"""MAP checkIMEI (3GPP TS 29.002 §8.7.1, §17.6.1) over TCAP, for the EIR and for a simulated MSC.

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

Vendor deviations accepted on the EIR side (bytes in ``/work/shared/traces``, from RestComm jSS7):

* Huawei, v2: TLVs after the IMEI inside the Invoke — ``00 08 <IMSI>`` or ``01 08 <IMSI>`` and
  ``02 <len> <MSISDN AddressString>``, possibly followed by stray octets; a 7-octet IMEI.
* Huawei, v3: ``[0] IMSI`` / ``[1] MSISDN`` inside CheckIMEI-Arg (before requestedEquipmentInfo) and
  trailing ``00 00`` after the sequence.
* Ericsson EnhancedCheckIMEI-Arg (Wireshark ``Ericsson.asn`` / pycrate ``EricssonMAP-Extensions``,
  same opcode 43): ``SEQUENCE { imei, requestedEquipmentInfo OPTIONAL, imsi [PRIVATE 1] IMSI OPTIONAL,
  locationInformation [PRIVATE 3] OCTET STRING (SIZE (1..7)) OPTIONAL, extensionContainer OPTIONAL }``.
* jSS7 2012: the IMEI OCTET STRING wrapped in a second ``04 08``.

:class:`TcapEirCore` is the sans-IO EIR side: TCAP user data in, :class:`CheckImeiInvoked` events and
reply bytes out; time comes in as ``now``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from ..imei import tbcd_decode, tbcd_encode
from ._ber import BerError, read_tlv, tlv
from ._tcap_fast import error_component, match_check_imei_begin, result_component
from .errors import RemoteProtocolError
from .tcap import (
    Aare,
    Aarq,
    AbortSource,
    Abrt,
    AssociateResult,
    BadComponent,
    Component,
    DiagnosticSource,
    GeneralProblem,
    Invoke,
    InvokeProblem,
    MessageType,
    PAbortCause,
    ProblemType,
    ProviderDiagnostic,
    Reject,
    ReturnError,
    ReturnErrorProblem,
    ReturnResult,
    ReturnResultProblem,
    TcapMessage,
    TransactionPortionError,
    UserDiagnostic,
    decode_tcap,
    encode_tcap,
)

__all__ = [
    "CHECK_IMEI_OPCODE",
    "EQUIPMENT_MNGT_CONTEXT",
    "TRANSITIONS",
    "CheckImeiArg",
    "CheckImeiInvoked",
    "CheckImeiOutcome",
    "DialogueAction",
    "DialogueInput",
    "DialogueKey",
    "DialogueState",
    "EquipmentStatus",
    "MapError",
    "MapParameterError",
    "TcapEirCore",
    "TcapProtocolErrorOccurred",
    "TcapReceived",
    "TcapStats",
    "decode_check_imei_arg",
    "decode_check_imei_reply",
    "decode_check_imei_res",
    "encode_check_imei_arg",
    "encode_check_imei_begin",
    "encode_check_imei_res",
    "equipment_mngt_acn",
]

CHECK_IMEI_OPCODE = 43
EQUIPMENT_MNGT_CONTEXT: tuple[int, ...] = (0, 4, 0, 0, 1, 0, 13)
"""``map-ac equipmentMngt(13)`` without the version arc (TS 29.002 §17.3.2)."""
MAX_MESSAGE_SIZE = 65_535
"""Larger SCCP user data is not decoded (an XUDT-reassembled message stays far below)."""
MAX_REPLY_SIZE = 255
"""The largest TCAP message the EIR sends: SCCP UDT/XUDT user data has a one-octet length
(Q.713 §4.10, §4.18). A Begin of many small bad components would otherwise be answered by an
End of as many (larger) Rejects that no UDT can carry."""


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
# The EIR's dialogue state machine (Q.774 §3.2 TSM/DHA, reduced): the EIR answers every Begin with
# one End or Abort and never sends Continue, so it never hands out a transaction id of its own. A
# (peer, OTID) dialogue is therefore either IDLE (unknown) or INITIATION_RECEIVED (a Begin accepted,
# invokes awaiting their answers), and Continue / End / Abort, which address *our* id, can only
# find IDLE.


class DialogueState(Enum):
    IDLE = "idle"
    INITIATION_RECEIVED = "initiation received"


class DialogueInput(Enum):
    BEGIN = "Begin"
    CONTINUE = "Continue"
    END = "End"
    ABORT = "Abort"
    UNIDIRECTIONAL = "Unidirectional"
    ANSWER = "answer"
    """``answer`` / ``answer_error`` from the TC-user (the EIR adapter)."""
    TIMER_EXPIRY = "timer expiry"


class DialogueAction(Enum):
    OPEN = "check the AC, turn components into invokes / Rejects; End at once if none awaits"
    REOPEN = "the peer reused a pending OTID: drop the old dialogue, then OPEN"
    P_ABORT_UNRECOGNIZED_TID = "P-Abort unrecognizedTransactionID to the OTID"
    DISCARD = "nothing to answer (no OTID to address, or an Abort)"
    FILL = "record the component; the End when it was the last one"
    LATE = "the dialogue is gone (expired, replaced): count and drop"
    U_ABORT = "TC-U-Abort (ABRT dialogue-service-user; bare Abort for v1)"


_S = DialogueState
_I = DialogueInput
_A = DialogueAction
TRANSITIONS: dict[tuple[DialogueState, DialogueInput], tuple[DialogueAction, DialogueState]] = {
    # OPEN goes to INITIATION_RECEIVED only when an invoke awaits its answer; a Begin refused (AC,
    # resources) or fully rejected gets its Abort / End at once and the state stays IDLE.
    (_S.IDLE, _I.BEGIN): (_A.OPEN, _S.INITIATION_RECEIVED),
    (_S.IDLE, _I.CONTINUE): (_A.P_ABORT_UNRECOGNIZED_TID, _S.IDLE),
    (_S.IDLE, _I.END): (_A.DISCARD, _S.IDLE),
    (_S.IDLE, _I.ABORT): (_A.DISCARD, _S.IDLE),
    (_S.IDLE, _I.UNIDIRECTIONAL): (_A.DISCARD, _S.IDLE),
    (_S.IDLE, _I.ANSWER): (_A.LATE, _S.IDLE),
    (_S.INITIATION_RECEIVED, _I.BEGIN): (_A.REOPEN, _S.INITIATION_RECEIVED),
    # FILL returns to IDLE with the End once the last outstanding invoke is answered.
    (_S.INITIATION_RECEIVED, _I.ANSWER): (_A.FILL, _S.INITIATION_RECEIVED),
    (_S.INITIATION_RECEIVED, _I.TIMER_EXPIRY): (_A.U_ABORT, _S.IDLE),
}
"""Every (state, input) pair that can occur. The others cannot: a timer runs only in
INITIATION_RECEIVED, and Continue / End / Abort / Unidirectional never address a pending dialogue."""

_INPUT_OF = {
    MessageType.BEGIN: DialogueInput.BEGIN,
    MessageType.CONTINUE: DialogueInput.CONTINUE,
    MessageType.END: DialogueInput.END,
    MessageType.ABORT: DialogueInput.ABORT,
    MessageType.UNIDIRECTIONAL: DialogueInput.UNIDIRECTIONAL,
}


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


# --------------------------------------------------------------------------------------------------
# EIR side


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckImeiInvoked:
    """One checkIMEI invoke that the EIR must answer (with ``answer`` / ``answer_error``)."""

    dialogue_id: int
    """The peer's OTID as an integer (our key for the dialogue)."""
    invoke_id: int
    version: int
    """1, 2 or 3 from the application context; no dialogue portion ⇒ 1."""
    imei: str
    """The TBCD digits as received. Over MAP the 15th digit is the *spare digit* (0), not a Luhn check
    digit (TS 29.002 §17.7.8 IMEI, TS 23.003 §6.2.1): use :attr:`imei14` / :attr:`software_version`."""
    imsi: str | None = None
    msisdn: str | None = None
    requested_equipment_status: bool = True
    requested_bmuef: bool = False
    vendor: str | None = None
    otid: bytes = b""
    """The OTID octets as received (1 to 4 octets), echoed as the DTID."""
    peer: Hashable | None = None
    """The ``peer`` given to ``receive_tcap`` (e.g. the SCCP calling address): part of the key."""
    deviations: tuple[str, ...] = ()
    generation: int = 0
    """Which dialogue of this (peer, OTID) the invoke belongs to. A Begin reusing a pending OTID
    replaces the dialogue; the old invoke's late answer must not fill the new one (same key, same
    invoke id, another IMEI), so answers are matched on the generation too."""

    @property
    def imei14(self) -> str:
        """TAC + SNR: the first 14 digits (the key of every list)."""
        return self.imei[:14]

    @property
    def software_version(self) -> str | None:
        """The SVN when 16 digits (an IMEISV) were sent, else None."""
        return self.imei[14:16] if len(self.imei) == 16 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class TcapProtocolErrorOccurred:
    """Something the peer did wrong (or that we refused), for a log line and a metric.

    ``kind`` is a short metric label: ``p_abort_sent``, ``reject_sent``, ``acn_not_supported``,
    ``abnormal_dialogue``, ``resource_limitation``, ``discarded``, ``unexpected_message``,
    ``abort_received``, ``duplicate_otid``, ``mistyped_parameter``, ``bad_component`` and
    ``vendor_variant`` (not an error: a tolerated deviation, for a debug log and a counter).
    """

    kind: str
    detail: str
    dialogue_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TcapReceived:
    """What ``receive_tcap`` found: invokes to answer, an immediate reply, protocol error events."""

    invokes: list[CheckImeiInvoked]
    reply: bytes | None = None
    errors: list[TcapProtocolErrorOccurred]
    closed: tuple[DialogueKey, ...] = ()
    """Keys of earlier dialogues this message ended without an answer of their own: a Begin
    reusing a pending OTID replaces that dialogue (Q.774 §3.2.2.1 gives an initiating TSM per
    Begin; the old one is gone). Whoever keeps per-dialogue state by key (the stack's routes)
    drops it — the new dialogue, if it awaits answers, is announced by its invokes, and a Begin
    answered at once (only Rejects) leaves nothing open under the key."""


@dataclass(slots=True)
class TcapStats:
    """Counters since start (the adapter exports them as metrics)."""

    messages: int = 0
    begins: int = 0
    invokes: int = 0
    results_sent: int = 0
    errors_sent: int = 0
    rejects_sent: int = 0
    aborts_sent: int = 0
    ends_sent: int = 0
    expired: int = 0
    late_answers: int = 0
    """Answers that found no dialogue to fill: expired, or replaced (also in ``stale_answers``)."""
    stale_answers: int = 0
    """Answers for a dialogue replaced by a Begin that reused its OTID (dropped)."""
    discarded: int = 0
    oversized: int = 0
    """Ends that would not fit in MAX_REPLY_SIZE octets: sent as a P-Abort resourceLimitation."""
    replaced: int = 0
    """Pending dialogues ended by a Begin that reused their OTID (see ``TcapReceived.closed``)."""
    vendor_variants: dict[str, int] = field(default_factory=dict)
    """Accepted checkIMEI invokes in a non-standard form, by vendor: ``huawei``, ``ericsson``, or
    ``other`` for a tolerated deviation of no known vendor (a jSS7-wrapped or short IMEI, …).
    The keys come from the decoder alone, so the set stays this small."""


DialogueKey = tuple[Hashable | None, bytes]
"""A dialogue's key in the EIR: ``(peer, OTID octets)``."""


@dataclass(slots=True)
class _Dialogue:
    otid: bytes
    version: int
    acn: tuple[int, ...] | None
    """The AC to confirm in the AARE; None for a v1 dialogue without dialogue portion."""
    deadline: float
    slots: list[bytes | None]
    """Encoded reply components in Begin order; None while an invoke awaits its answer."""
    pending: dict[int, int]
    """invoke id → slot index, for the invokes still to answer."""
    generation: int
    """Copied into each CheckImeiInvoked: tells this dialogue from an earlier one with the same key."""


def _invoked(
    arg: CheckImeiArg, did: int, iid: int, version: int, otid: bytes, peer: Hashable | None, generation: int
) -> CheckImeiInvoked:
    """The event for one decoded checkIMEI argument (fast and general paths alike)."""
    return CheckImeiInvoked(
        dialogue_id=did,
        invoke_id=iid,
        version=version,
        imei=arg.imei,
        imsi=arg.imsi,
        msisdn=arg.msisdn,
        requested_equipment_status=arg.requested_equipment_status,
        requested_bmuef=arg.requested_bmuef,
        vendor=arg.vendor,
        otid=otid,
        peer=peer,
        deviations=arg.deviations,
        generation=generation,
    )


class TcapEirCore:
    """The EIR's TCAP + MAP checkIMEI responder (TS 29.002 §8.7.1, Q.774 TSL/CSL, sans-IO).

    Every dialogue is a Begin answered by one End (or an Abort): the EIR never sends Continue, so it
    never allocates transaction ids of its own. Several invokes in one Begin are answered together
    in one End, in their order. Memory is bounded by ``max_dialogues``; an unanswered dialogue is
    aborted after ``dialogue_timeout`` seconds (``handle_timer``).
    """

    def __init__(
        self,
        *,
        supported_versions: Iterable[int] = (1, 2, 3),
        max_dialogues: int = 100_000,
        dialogue_timeout: float = 30.0,
    ) -> None:
        self.supported_versions = frozenset(supported_versions)
        if not self.supported_versions or not self.supported_versions <= {1, 2, 3}:
            raise ValueError(
                f"supported_versions must be a non-empty subset of 1, 2, 3: {supported_versions}"
            )
        self.max_dialogues = max_dialogues
        self.dialogue_timeout = dialogue_timeout
        self.stats = TcapStats()
        self._dialogues: dict[DialogueKey, _Dialogue] = {}
        self._generation = 0

    @property
    def active_dialogues(self) -> int:
        return len(self._dialogues)

    # ---- input

    def receive_tcap(self, data: bytes, now: float, *, peer: Hashable | None = None) -> TcapReceived:
        """Decode one TCAP message (the SCCP user data) and say what to do (never raises on input).

        Returns the checkIMEI invokes to answer and, when TCAP must answer at once, the reply
        octets: Reject(s) in an End, P-Abort, U-Abort with an AARE for AC negotiation (TS 29.002
        §12.1: carries the highest supported equipmentMngtContext), Abort for an abnormal dialogue;
        plus the protocol error events for logs and metrics.
        ``peer`` scopes the transaction ids (two MSCs may use the same OTID).
        """
        errors: list[TcapProtocolErrorOccurred] = []
        closed: list[DialogueKey] = []
        invokes, reply = self._receive(data, now, peer, errors, closed)
        return TcapReceived(invokes=invokes, reply=reply, errors=errors, closed=tuple(closed))

    def _receive(
        self,
        data: bytes,
        now: float,
        peer: Hashable | None,
        errors: list[TcapProtocolErrorOccurred],
        closed: list[DialogueKey],
    ) -> tuple[list[CheckImeiInvoked], bytes | None]:
        self.stats.messages += 1
        fast = match_check_imei_begin(data)
        if fast is not None:
            done = self._fast_begin(fast, now, peer)
            if done is not None:
                return done
        if len(data) > MAX_MESSAGE_SIZE:
            self.stats.discarded += 1
            errors.append(TcapProtocolErrorOccurred(kind="discarded", detail=f"{len(data)} octets: too big"))
            return [], None
        try:
            msg = decode_tcap(data)
        except TransactionPortionError as exc:
            if exc.otid is None:
                self.stats.discarded += 1
                errors.append(TcapProtocolErrorOccurred(kind="discarded", detail=str(exc)))
                return [], None
            errors.append(
                TcapProtocolErrorOccurred(
                    kind="p_abort_sent",
                    detail=f"{exc.cause.name}: {exc}",
                    dialogue_id=int.from_bytes(exc.otid, "big"),
                )
            )
            return [], self._p_abort(exc.otid, exc.cause)
        except Exception as exc:  # pragma: no cover - defensive: decode bugs must not kill the server
            self.stats.discarded += 1
            errors.append(TcapProtocolErrorOccurred(kind="discarded", detail=f"decoder failure: {exc!r}"))
            return [], None
        state = DialogueState.IDLE
        if msg.type is MessageType.BEGIN and (peer, msg.otid) in self._dialogues:
            state = DialogueState.INITIATION_RECEIVED
        action, _ = TRANSITIONS[(state, _INPUT_OF[msg.type])]
        if action in (DialogueAction.OPEN, DialogueAction.REOPEN):
            return self._on_begin(msg, now, peer, errors, closed)
        if action is DialogueAction.P_ABORT_UNRECOGNIZED_TID:
            # We never send Continue, so no dialogue of ours can be continued (Q.774 §3.2.1.2).
            assert msg.otid is not None
            errors.append(
                TcapProtocolErrorOccurred(
                    kind="p_abort_sent",
                    detail="Continue for an unknown transaction",
                    dialogue_id=int.from_bytes(msg.otid, "big"),
                )
            )
            return [], self._p_abort(msg.otid, PAbortCause.UNRECOGNIZED_TRANSACTION_ID)
        if msg.type is MessageType.ABORT:
            errors.append(TcapProtocolErrorOccurred(kind="abort_received", detail=_abort_detail(msg)))
        else:
            errors.append(
                TcapProtocolErrorOccurred(kind="unexpected_message", detail=f"{msg.type.name} ignored")
            )
        self.stats.discarded += 1
        return [], None

    def _fast_begin(
        self, fast: tuple[bytes, int | None, int, bytes], now: float, peer: Hashable | None
    ) -> tuple[list[CheckImeiInvoked], bytes | None] | None:
        """The canonical one-invoke Begin (see ``_tcap_fast``); None sends it down the general path."""
        otid, ac_version, iid, param = fast
        version = ac_version or 1
        key = (peer, otid)
        if (
            version not in self.supported_versions
            or key in self._dialogues
            or len(self._dialogues) >= self.max_dialogues
        ):
            return None
        try:
            arg = decode_check_imei_arg(param)
        except MapParameterError:
            return None
        if arg.deviations:
            return None  # the general path reports them
        if arg.vendor is not None:  # Ericsson's form may have no deviation note
            self._count_variant(arg)
        did = int.from_bytes(otid, "big")
        self.stats.begins += 1
        self.stats.invokes += 1
        self._generation = gen = self._generation + 1
        self._dialogues[key] = _Dialogue(
            otid=otid,
            version=version,
            acn=None if ac_version is None else equipment_mngt_acn(ac_version),
            deadline=now + self.dialogue_timeout,
            slots=[None],
            pending={iid: 0},
            generation=gen,
        )
        return [_invoked(arg, did, iid, version, otid, peer, gen)], None

    def _on_begin(
        self,
        msg: TcapMessage,
        now: float,
        peer: Hashable | None,
        errors: list[TcapProtocolErrorOccurred],
        closed: list[DialogueKey],
    ) -> tuple[list[CheckImeiInvoked], bytes | None]:
        self.stats.begins += 1
        otid = msg.otid
        assert otid is not None
        did = int.from_bytes(otid, "big")
        dlg = msg.dialogue
        if msg.dialogue_error is not None or (dlg is not None and not isinstance(dlg, Aarq)):
            # Q.774 §3.2.2.1: a syntax error in the dialogue portion → abort "abnormal dialogue".
            errors.append(
                TcapProtocolErrorOccurred(
                    kind="abnormal_dialogue",
                    detail=msg.dialogue_error or f"{type(dlg).__name__} in a Begin",
                    dialogue_id=did,
                )
            )
            return self._abort_reply(otid, Abrt(source=AbortSource.DIALOGUE_SERVICE_PROVIDER), errors)
        acn: tuple[int, ...] | None = None
        if dlg is None:
            version = 1
            if 1 not in self.supported_versions:
                errors.append(
                    TcapProtocolErrorOccurred(
                        kind="acn_not_supported", detail="v1 Begin (no dialogue portion)", dialogue_id=did
                    )
                )
                return self._abort_reply(otid, None, errors)
        else:
            assert isinstance(dlg, Aarq)
            acn = dlg.acn
            if not dlg.version1:
                errors.append(
                    TcapProtocolErrorOccurred(
                        kind="abnormal_dialogue", detail="AARQ without protocol version1", dialogue_id=did
                    )
                )
                aare = Aare(
                    acn=acn,
                    result=AssociateResult.REJECT_PERMANENT,
                    diagnostic_source=DiagnosticSource.DIALOGUE_SERVICE_PROVIDER,
                    diagnostic=ProviderDiagnostic.NO_COMMON_DIALOGUE_PORTION,
                )
                return self._abort_reply(otid, aare, errors)
            ours = len(acn) == 8 and acn[:7] == EQUIPMENT_MNGT_CONTEXT
            version = acn[7] if ours else 0
            if version not in self.supported_versions:
                # TS 29.002 §12.1 / Q.773: refuse, proposing the highest context we support.
                offer = equipment_mngt_acn(max(self.supported_versions)) if ours else acn
                errors.append(
                    TcapProtocolErrorOccurred(
                        kind="acn_not_supported",
                        detail=f"proposed {'.'.join(map(str, acn))}, offered {'.'.join(map(str, offer))}",
                        dialogue_id=did,
                    )
                )
                aare = Aare(
                    acn=offer,
                    result=AssociateResult.REJECT_PERMANENT,
                    diagnostic_source=DiagnosticSource.DIALOGUE_SERVICE_USER,
                    diagnostic=UserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
                )
                return self._abort_reply(otid, aare, errors)
        key = (peer, otid)
        if key in self._dialogues:
            # The MSC reused an OTID it had given up on: the new Begin replaces the old dialogue.
            del self._dialogues[key]
            self.stats.replaced += 1
            closed.append(key)
            errors.append(
                TcapProtocolErrorOccurred(
                    kind="duplicate_otid", detail="Begin reused a pending OTID", dialogue_id=did
                )
            )
        elif len(self._dialogues) >= self.max_dialogues:
            errors.append(
                TcapProtocolErrorOccurred(
                    kind="resource_limitation",
                    detail=f"{len(self._dialogues)} dialogues open",
                    dialogue_id=did,
                )
            )
            return [], self._p_abort(otid, PAbortCause.RESOURCE_LIMITATION)
        slots: list[bytes | None] = []
        pending: dict[int, int] = {}
        invokes: list[CheckImeiInvoked] = []
        self._generation = gen = self._generation + 1
        for comp in msg.components:
            outcome = self._check_component(comp, pending, version, otid, did, peer, gen, errors)
            if isinstance(outcome, CheckImeiInvoked):
                pending[outcome.invoke_id] = len(slots)
                slots.append(None)
                invokes.append(outcome)
            elif outcome is not None:
                slots.append(_encode_component(outcome))
                self.stats.rejects_sent += 1
        if not pending:
            # Nothing to wait for: close the dialogue now (with the Rejects, if any).
            end = self._end(otid, acn, [s for s in slots if s is not None])
            if end[0] != 0x64:
                errors.append(
                    TcapProtocolErrorOccurred(
                        kind="resource_limitation",
                        detail=f"End with {len(slots)} components exceeds {MAX_REPLY_SIZE} octets: P-Abort",
                        dialogue_id=did,
                    )
                )
            return [], end
        self._dialogues[key] = _Dialogue(
            otid=otid,
            version=version,
            acn=acn,
            deadline=now + self.dialogue_timeout,
            slots=slots,
            pending=pending,
            generation=gen,
        )
        return invokes, None

    def _check_component(
        self,
        comp: Component,
        pending: dict[int, int],
        version: int,
        otid: bytes,
        did: int,
        peer: Hashable | None,
        generation: int,
        errors: list[TcapProtocolErrorOccurred],
    ) -> CheckImeiInvoked | Reject | None:
        """One component of a Begin: an invoke to answer, a Reject to send (Q.774 §3.2.2) or None."""
        if isinstance(comp, Invoke):
            iid = comp.invoke_id
            if iid in pending:
                return self._reject(iid, ProblemType.INVOKE, InvokeProblem.DUPLICATE_INVOKE_ID, did, errors)
            if comp.opcode != CHECK_IMEI_OPCODE:
                return self._reject(
                    iid, ProblemType.INVOKE, InvokeProblem.UNRECOGNIZED_OPERATION, did, errors
                )
            if comp.linked_id is not None:
                return self._reject(
                    iid, ProblemType.INVOKE, InvokeProblem.UNRECOGNIZED_LINKED_ID, did, errors
                )
            if comp.parameter is None:
                return self._reject(iid, ProblemType.INVOKE, InvokeProblem.MISTYPED_PARAMETER, did, errors)
            try:
                arg = decode_check_imei_arg(comp.parameter)
            except MapParameterError as exc:
                errors.append(
                    TcapProtocolErrorOccurred(kind="mistyped_parameter", detail=str(exc), dialogue_id=did)
                )
                return self._reject(iid, ProblemType.INVOKE, InvokeProblem.MISTYPED_PARAMETER, did, errors)
            if arg.deviations:
                errors.append(
                    TcapProtocolErrorOccurred(
                        kind="vendor_variant",
                        detail=f"{arg.vendor or 'unknown'}: {'; '.join(arg.deviations)}",
                        dialogue_id=did,
                    )
                )
            if arg.vendor is not None or arg.deviations:
                self._count_variant(arg)
            self.stats.invokes += 1
            return _invoked(arg, did, iid, version, otid, peer, generation)
        if isinstance(comp, ReturnResult):
            problem: int = ReturnResultProblem.UNRECOGNIZED_INVOKE_ID
            return self._reject(comp.invoke_id, ProblemType.RETURN_RESULT, problem, did, errors)
        if isinstance(comp, ReturnError):
            problem = ReturnErrorProblem.UNRECOGNIZED_INVOKE_ID
            return self._reject(comp.invoke_id, ProblemType.RETURN_ERROR, problem, did, errors)
        if isinstance(comp, BadComponent):
            errors.append(
                TcapProtocolErrorOccurred(kind="bad_component", detail=comp.detail, dialogue_id=did)
            )
            return self._reject(comp.invoke_id, ProblemType.GENERAL, comp.problem, did, errors)
        # A Reject in a Begin refers to nothing of ours: nothing to answer (Q.774 §3.2.2.3).
        errors.append(
            TcapProtocolErrorOccurred(kind="unexpected_message", detail="Reject in a Begin", dialogue_id=did)
        )
        return None

    def _count_variant(self, arg: CheckImeiArg) -> None:
        variants = self.stats.vendor_variants
        vendor = arg.vendor or "other"
        variants[vendor] = variants.get(vendor, 0) + 1

    def _reject(
        self,
        invoke_id: int | None,
        ptype: ProblemType,
        problem: int,
        did: int,
        errors: list[TcapProtocolErrorOccurred],
    ) -> Reject:
        names = {
            ProblemType.GENERAL: GeneralProblem,
            ProblemType.INVOKE: InvokeProblem,
            ProblemType.RETURN_RESULT: ReturnResultProblem,
            ProblemType.RETURN_ERROR: ReturnErrorProblem,
        }
        errors.append(
            TcapProtocolErrorOccurred(
                kind="reject_sent",
                detail=f"{ptype.name} {names[ptype](problem).name} (invoke id {invoke_id})",
                dialogue_id=did,
            )
        )
        return Reject(invoke_id=invoke_id, problem_type=ptype, problem=int(problem))

    # ---- answers

    def answer(
        self, ev: CheckImeiInvoked, status: EquipmentStatus, bmuef: bytes | None = None
    ) -> bytes | None:
        """Record the result of ``ev``; the End once every invoke of its dialogue is answered.

        v3: equipmentStatus is sent unless only bmuef was requested; ``bmuef`` (UESBI-Iu contents)
        only when requested. Returns None while other invokes are pending or when the dialogue is
        gone (expired or replaced: counted in ``stats.late_answers``).
        """
        if ev.version >= 3:
            send_status = ev.requested_equipment_status or not ev.requested_bmuef
            param = encode_check_imei_res(
                3, status if send_status else None, bmuef if ev.requested_bmuef else None
            )
        else:
            param = encode_check_imei_res(ev.version, status)
        return self._fill(ev, result_component(ev.invoke_id, param), error=False)

    def answer_error(self, ev: CheckImeiInvoked, error: MapError) -> bytes | None:
        """Answer ``ev`` with a ReturnError (no parameter: all three are optional in TS 29.002)."""
        return self._fill(ev, error_component(ev.invoke_id, int(error)), error=True)

    def _fill(self, ev: CheckImeiInvoked, comp: bytes, *, error: bool) -> bytes | None:
        key = (ev.peer, ev.otid)
        d = self._dialogues.get(key)
        if d is not None and d.generation != ev.generation:
            # The OTID was reused meanwhile: this dialogue is another one; ev's was replaced.
            self.stats.stale_answers += 1
            d = None
        state = DialogueState.IDLE if d is None else DialogueState.INITIATION_RECEIVED
        action, _ = TRANSITIONS[(state, DialogueInput.ANSWER)]
        if d is None or action is DialogueAction.LATE or ev.invoke_id not in d.pending:
            self.stats.late_answers += 1
            return None
        d.slots[d.pending.pop(ev.invoke_id)] = comp
        if error:
            self.stats.errors_sent += 1
        else:
            self.stats.results_sent += 1
        if d.pending:
            return None
        del self._dialogues[key]
        return self._end(d.otid, d.acn, [s for s in d.slots if s is not None])

    # ---- timers

    def get_timer(self) -> float | None:
        """The earliest dialogue deadline (dialogues are kept in deadline order)."""
        for d in self._dialogues.values():
            return d.deadline
        return None

    def handle_timer(self, now: float) -> list[tuple[DialogueKey, bytes]]:
        """Abort every dialogue past its deadline (TC-U-ABORT; safe to call early).

        Returns ``(key, abort)`` pairs: ``key`` is the dialogue's ``(peer, otid)`` — the same as
        ``(ev.peer, ev.otid)`` of its invokes — so the caller finds the way back by key, not by
        decoding the Abort (two peers may use the same OTID).
        TRANSITIONS[(INITIATION_RECEIVED, TIMER_EXPIRY)]: U_ABORT → IDLE.
        """
        out: list[tuple[DialogueKey, bytes]] = []
        while self._dialogues:
            key, d = next(iter(self._dialogues.items()))
            if d.deadline > now:
                break
            del self._dialogues[key]
            self.stats.expired += 1
            self.stats.aborts_sent += 1
            dialogue = Abrt(source=AbortSource.DIALOGUE_SERVICE_USER) if d.acn is not None else None
            abort = encode_tcap(TcapMessage(type=MessageType.ABORT, dtid=d.otid, dialogue=dialogue))
            out.append((key, abort))
        return out

    # ---- reply builders

    def _end(self, otid: bytes, acn: tuple[int, ...] | None, components: list[bytes]) -> bytes:
        """End (Q.773 §3.1) with the AARE accepted when the Begin carried an AARQ (Q.774 §3.2.2.1);
        a P-Abort resourceLimitation (Q.773 §3.1) when the End would exceed MAX_REPLY_SIZE."""
        body = tlv(0x49, otid)
        if acn is not None:
            body += _aare_accepted(acn)
        if components:
            body += tlv(0x6C, b"".join(components))
        end = tlv(0x64, body)
        if len(end) > MAX_REPLY_SIZE:
            self.stats.oversized += 1
            return self._p_abort(otid, PAbortCause.RESOURCE_LIMITATION)
        self.stats.ends_sent += 1
        return end

    def _p_abort(self, otid: bytes, cause: PAbortCause) -> bytes:
        self.stats.aborts_sent += 1
        return encode_tcap(TcapMessage(type=MessageType.ABORT, dtid=otid, p_abort_cause=int(cause)))

    def _abort_reply(
        self, otid: bytes, dialogue: Aare | Abrt | None, errors: list[TcapProtocolErrorOccurred]
    ) -> tuple[list[CheckImeiInvoked], bytes | None]:
        self.stats.aborts_sent += 1
        reply = encode_tcap(TcapMessage(type=MessageType.ABORT, dtid=otid, dialogue=dialogue))
        return [], reply


_AARE_CACHE: dict[tuple[int, ...], bytes] = {}


def _aare_accepted(acn: tuple[int, ...]) -> bytes:
    """The dialogue portion confirming ``acn`` (cached: it is the same for every reply)."""
    got = _AARE_CACHE.get(acn)
    if got is None:
        aare = Aare(
            acn=acn,
            result=AssociateResult.ACCEPTED,
            diagnostic_source=DiagnosticSource.DIALOGUE_SERVICE_USER,
            diagnostic=UserDiagnostic.NULL,
        )
        # The dialogue portion of an End that has only it: strip the End header and the DTID.
        full = encode_tcap(TcapMessage(type=MessageType.END, dtid=b"\x00", dialogue=aare))
        _, vs, _, _ = read_tlv(full, 0, len(full))
        got = full[vs + 3 :]
        if len(_AARE_CACHE) < 64:
            _AARE_CACHE[acn] = got
    return got


def _encode_component(c: Component) -> bytes:
    full = encode_tcap(TcapMessage(type=MessageType.END, dtid=b"\x00", components=(c,)))
    # End(64 L) DTID(49 01 00) ComponentPortion(6c L <component>): return the component TLV.
    _, vs, _, _ = read_tlv(full, 0, len(full))
    _, cs, _, _ = read_tlv(full, vs + 3, len(full))
    return full[cs:]


def _abort_detail(msg: TcapMessage) -> str:
    if msg.p_abort_cause is not None:
        try:
            return f"P-Abort {PAbortCause(msg.p_abort_cause).name}"
        except ValueError:
            return f"P-Abort cause {msg.p_abort_cause}"
    if msg.dialogue is not None:
        return f"U-Abort {msg.dialogue}"
    return msg.dialogue_error or "U-Abort"


# --------------------------------------------------------------------------------------------------
# Client side (simulated MSC / SGSN)


def _tid_bytes(tid: int | bytes) -> bytes:
    if isinstance(tid, bytes):
        if not 1 <= len(tid) <= 4:
            raise ValueError("a transaction id has 1 to 4 octets")
        return tid
    if not 0 <= tid <= 0xFFFFFFFF:
        raise ValueError("a transaction id is 0..2**32-1")
    return tid.to_bytes(4, "big")


def encode_check_imei_begin(
    *,
    otid: int | bytes,
    version: int,
    invoke_id: int,
    imei: str,
    imsi: str | None = None,
    msisdn: str | None = None,
    requested_bmuef: bool = False,
    vendor: str | None = None,
) -> bytes:
    """A TCAP Begin with one checkIMEI invoke, as an MSC/SGSN sends it.

    v2/v3 carry the AARQ with equipmentMngtContext-v``version``; v1 has no dialogue portion.
    An int ``otid`` is sent as 4 octets.
    """
    if version not in (1, 2, 3):
        raise ValueError("version must be 1, 2 or 3")
    if not -128 <= invoke_id <= 127:
        raise ValueError("invoke id must be -128..127")
    param = encode_check_imei_arg(
        version=version, imei=imei, imsi=imsi, msisdn=msisdn, requested_bmuef=requested_bmuef, vendor=vendor
    )
    return encode_tcap(
        TcapMessage(
            type=MessageType.BEGIN,
            otid=_tid_bytes(otid),
            dialogue=None if version == 1 else Aarq(acn=equipment_mngt_acn(version)),
            components=(Invoke(invoke_id=invoke_id, opcode=CHECK_IMEI_OPCODE, parameter=param),),
        )
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckImeiOutcome:
    """What a simulated MSC learns from the EIR's reply."""

    otid: int | None
    dtid: int | None
    status: EquipmentStatus | None = None
    bmuef: bytes | None = None
    error: int | None = None
    aborted: bool = False
    abort_supported_version: int | None = None
    """When the EIR refused the AC: the equipmentMngtContext version it offers (fall back to it)."""
    p_abort_cause: int | None = None
    rejected: bool = False
    reject_problem: tuple[int, int] | None = None
    """(problem type octet, problem code) of the first Reject."""
    version: int | None = None
    """The version of the AC the EIR confirmed (AARE), None for v1 / no dialogue portion."""
    invoke_id: int | None = None
    raw_kind: str = ""
    """``end``, ``u_abort``, ``p_abort``, ``continue``, ``begin``, ``unidirectional``, ``undecodable``."""
    detail: str | None = None


def decode_check_imei_reply(data: bytes) -> CheckImeiOutcome:
    """Decode the EIR's answer to a checkIMEI Begin: End (result / error / reject) or Abort."""
    try:
        msg = decode_tcap(data)
    except TransactionPortionError as exc:
        return CheckImeiOutcome(otid=None, dtid=None, raw_kind="undecodable", detail=str(exc))
    otid = None if msg.otid is None else int.from_bytes(msg.otid, "big")
    dtid = None if msg.dtid is None else int.from_bytes(msg.dtid, "big")
    if msg.type is MessageType.ABORT:
        supported: int | None = None
        if isinstance(msg.dialogue, Aare):
            acn = msg.dialogue.acn
            if len(acn) == 8 and acn[:7] == EQUIPMENT_MNGT_CONTEXT:
                supported = acn[7]
        return CheckImeiOutcome(
            otid=otid,
            dtid=dtid,
            aborted=True,
            abort_supported_version=supported,
            p_abort_cause=msg.p_abort_cause,
            raw_kind="p_abort" if msg.p_abort_cause is not None else "u_abort",
            detail=_abort_detail(msg),
        )
    version: int | None = None
    if isinstance(msg.dialogue, Aare) and len(msg.dialogue.acn) == 8:
        version = msg.dialogue.acn[7]
    status: EquipmentStatus | None = None
    bmuef: bytes | None = None
    error: int | None = None
    reject: tuple[int, int] | None = None
    invoke_id: int | None = None
    detail: str | None = None
    for c in msg.components:
        if isinstance(c, ReturnResult) and c.parameter is not None and status is None and error is None:
            invoke_id = c.invoke_id
            try:
                status, bmuef = decode_check_imei_res(c.parameter)
            except MapParameterError as exc:
                detail = str(exc)
        elif isinstance(c, ReturnError) and error is None:
            invoke_id = c.invoke_id
            error = c.error_code if isinstance(c.error_code, int) else -1
        elif isinstance(c, Reject) and reject is None:
            invoke_id = c.invoke_id
            reject = (int(c.problem_type), c.problem)
        elif isinstance(c, BadComponent):
            detail = c.detail
    return CheckImeiOutcome(
        otid=otid,
        dtid=dtid,
        status=status,
        bmuef=bmuef,
        error=error,
        rejected=reject is not None,
        reject_problem=reject,
        version=version,
        invoke_id=invoke_id,
        raw_kind=msg.type.name.lower(),
        detail=detail,
    )
