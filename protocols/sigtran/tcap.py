"""TCAP (ITU-T Q.771-Q.775, white book 1993+) messages: model, decoder and encoder, sans-IO.

Only what an EIR and a simulated MSC exchange is modelled, but every TCAP message parses:

* transaction portion (Q.773 §3.1): Unidirectional, Begin, End, Continue, Abort with the
  originating / destination transaction ids (1 to 4 octets) and the P-Abort cause;
* dialogue portion (Q.773 §3.2, EXTERNAL with dialogue-as-id ``0.0.17.773.1.1.1``): AARQ, AARE, ABRT;
* component portion (Q.773 §3.3, ROS PDUs): Invoke, ReturnResult(-Last / -NotLast), ReturnError,
  Reject. The operation parameter is kept as raw octets — MAP (:mod:`.map_checkimei`) interprets it.

The decoder is hand-written over :mod:`._ber` (speed; see there). pycrate's
``pycrate_asn1dir.TCAP_MAPv2v3`` is the reference codec: the tests prove this encoder byte-identical
to pycrate and this decoder field-equal to it (hypothesis property tests). There is deliberately no
run-time fallback to pycrate: this decoder accepts everything pycrate accepts at the TCAP level
(definite and indefinite lengths, high tag numbers, global opcodes) plus the vendor deviations
pycrate refuses, so a fallback would only add a slower second opinion.

Errors: a transaction portion that cannot be decoded raises :class:`TransactionPortionError` carrying
the Q.773 P-Abort cause and, when it could be read, the peer's originating transaction id (so that
the caller can address the Abort). A bad component does not raise: it becomes a
:class:`BadComponent` entry (Q.774 §3.2.2.2: TC rejects it with a general problem) and the rest of
the component portion is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ._ber import BerError, encode_integer, iter_tlvs, read_tlv, tlv
from .errors import RemoteProtocolError

__all__ = [
    "DIALOGUE_AS_ID",
    "Aare",
    "Aarq",
    "AbortSource",
    "Abrt",
    "AssociateResult",
    "BadComponent",
    "Component",
    "DiagnosticSource",
    "DialoguePdu",
    "GeneralProblem",
    "Invoke",
    "InvokeProblem",
    "MessageType",
    "PAbortCause",
    "ProblemType",
    "ProviderDiagnostic",
    "Reject",
    "ReturnError",
    "ReturnErrorProblem",
    "ReturnResult",
    "ReturnResultProblem",
    "TcapError",
    "TcapMessage",
    "TransactionPortionError",
    "UserDiagnostic",
    "decode_oid",
    "decode_tcap",
    "describe_abort",
    "encode_oid",
    "encode_tcap",
]

DIALOGUE_AS_ID: tuple[int, ...] = (0, 0, 17, 773, 1, 1, 1)
"""Q.773 §4.2.2 ``dialogue-as-id``: the direct-reference of a structured dialogue's EXTERNAL."""


class MessageType(IntEnum):
    """Q.773 §3.1 TCMessage, the identifier octet of each choice ([APPLICATION n] constructed)."""

    UNIDIRECTIONAL = 0x61
    BEGIN = 0x62
    END = 0x64
    CONTINUE = 0x65
    ABORT = 0x67


class PAbortCause(IntEnum):
    """Q.773 §3.1 P-AbortCause ([APPLICATION 10])."""

    UNRECOGNIZED_MESSAGE_TYPE = 0
    UNRECOGNIZED_TRANSACTION_ID = 1
    BADLY_FORMATTED_TRANSACTION_PORTION = 2
    INCORRECT_TRANSACTION_PORTION = 3
    RESOURCE_LIMITATION = 4


class AssociateResult(IntEnum):
    """Q.773 §4.2.2 Associate-result of the AARE."""

    ACCEPTED = 0
    REJECT_PERMANENT = 1
    REJECT_TRANSIENT = 2


class DiagnosticSource(IntEnum):
    """Q.773 §4.2.2 Associate-source-diagnostic choice: the context tag number."""

    DIALOGUE_SERVICE_USER = 1
    DIALOGUE_SERVICE_PROVIDER = 2


class UserDiagnostic(IntEnum):
    """dialogue-service-user diagnostic values (Q.773 §4.2.2)."""

    NULL = 0
    NO_REASON_GIVEN = 1
    APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2


class ProviderDiagnostic(IntEnum):
    """dialogue-service-provider diagnostic values (Q.773 §4.2.2)."""

    NULL = 0
    NO_REASON_GIVEN = 1
    NO_COMMON_DIALOGUE_PORTION = 2


class AbortSource(IntEnum):
    """ABRT-source of the ABRT-apdu (Q.773 §4.2.2)."""

    DIALOGUE_SERVICE_USER = 0
    DIALOGUE_SERVICE_PROVIDER = 1


class ProblemType(IntEnum):
    """Reject problem choice (Q.773 §3.3): the identifier octet of each [n] IMPLICIT INTEGER."""

    GENERAL = 0x80
    INVOKE = 0x81
    RETURN_RESULT = 0x82
    RETURN_ERROR = 0x83


class GeneralProblem(IntEnum):
    UNRECOGNIZED_COMPONENT = 0
    MISTYPED_COMPONENT = 1
    BADLY_STRUCTURED_COMPONENT = 2


class InvokeProblem(IntEnum):
    DUPLICATE_INVOKE_ID = 0
    UNRECOGNIZED_OPERATION = 1
    MISTYPED_PARAMETER = 2
    RESOURCE_LIMITATION = 3
    INITIATING_RELEASE = 4
    UNRECOGNIZED_LINKED_ID = 5
    LINKED_RESPONSE_UNEXPECTED = 6
    UNEXPECTED_LINKED_OPERATION = 7


class ReturnResultProblem(IntEnum):
    UNRECOGNIZED_INVOKE_ID = 0
    RETURN_RESULT_UNEXPECTED = 1
    MISTYPED_PARAMETER = 2


class ReturnErrorProblem(IntEnum):
    UNRECOGNIZED_INVOKE_ID = 0
    RETURN_ERROR_UNEXPECTED = 1
    UNRECOGNIZED_ERROR = 2
    UNEXPECTED_ERROR = 3
    MISTYPED_PARAMETER = 4


class TcapError(RemoteProtocolError):
    """Base of the TCAP codec errors."""


class TransactionPortionError(TcapError):
    """The transaction portion cannot be decoded; the peer gets a P-Abort (Q.774 §3.2.1.2) with
    ``cause`` (also the ``wire_hint``) when ``otid`` could be read to address it."""

    def __init__(self, message: str, *, cause: PAbortCause, otid: bytes | None = None) -> None:
        super().__init__(message, wire_hint=cause)
        self.cause = cause
        self.otid = otid


# --------------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True, slots=True, kw_only=True)
class Aarq:
    """AARQ-apdu (dialogue request, Q.773 §4.2.2)."""

    acn: tuple[int, ...]
    version1: bool = True
    """protocol-version contains version1 (absent ⇒ the default, which does)."""
    user_information: bytes | None = None
    """Raw contents of user-information [30] (MAP-OpenInfo …), not interpreted."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Aare:
    """AARE-apdu (dialogue response)."""

    acn: tuple[int, ...]
    result: AssociateResult
    diagnostic_source: DiagnosticSource
    diagnostic: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Abrt:
    """ABRT-apdu (dialogue abort)."""

    source: AbortSource


DialoguePdu = Aarq | Aare | Abrt


@dataclass(frozen=True, slots=True, kw_only=True)
class Invoke:
    invoke_id: int
    opcode: int | tuple[int, ...]
    """localValue INTEGER, or a globalValue OBJECT IDENTIFIER as a tuple."""
    linked_id: int | None = None
    parameter: bytes | None = None
    """Every octet after the opcode inside the Invoke: normally one TLV; vendors append more."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReturnResult:
    invoke_id: int
    last: bool = True
    opcode: int | tuple[int, ...] | None = None
    parameter: bytes | None = None
    """The result TLV (and anything after it) inside ``result SEQUENCE {opcode, result}``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReturnError:
    invoke_id: int
    error_code: int | tuple[int, ...]
    parameter: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    invoke_id: int | None
    """None encodes ``invokeId absent`` (NULL), used when the id could not be read."""
    problem_type: ProblemType
    problem: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BadComponent:
    """A component the decoder could not read (never encoded): TC answers it with a Reject."""

    invoke_id: int | None
    problem: GeneralProblem
    detail: str


Component = Invoke | ReturnResult | ReturnError | Reject | BadComponent


@dataclass(frozen=True, slots=True, kw_only=True)
class TcapMessage:
    """One TCMessage."""

    type: MessageType
    otid: bytes | None = None
    dtid: bytes | None = None
    dialogue: DialoguePdu | None = None
    components: tuple[Component, ...] = ()
    p_abort_cause: int | None = None
    """Abort only: the P-Abort cause (a U-Abort carries ``dialogue`` or nothing)."""
    dialogue_error: str | None = None
    """Set when a dialogue portion was present but could not be decoded (Q.774: abnormal dialogue)."""


# --------------------------------------------------------------------------------------------------
# Decoder

_MSG_TYPES = {int(t): t for t in MessageType}


def decode_oid(buf: bytes, start: int, end: int) -> tuple[int, ...]:
    """OBJECT IDENTIFIER contents (X.690 §8.19)."""
    if start >= end:
        raise BerError("empty OID")
    arcs: list[int] = []
    value = 0
    for i in range(start, end):
        b = buf[i]
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    if buf[end - 1] & 0x80:
        raise BerError("truncated OID arc")
    first = arcs[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return head + tuple(arcs[1:])


def encode_oid(arcs: tuple[int, ...]) -> bytes:
    """OBJECT IDENTIFIER contents octets."""
    out = bytearray()
    for i, arc in enumerate((arcs[0] * 40 + arcs[1], *arcs[2:])):
        del i
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def _int(buf: bytes, start: int, end: int) -> int:
    if start >= end or end - start > 8:
        raise BerError("bad INTEGER length")
    return int.from_bytes(buf[start:end], "big", signed=True)


def _code(buf: bytes, tag: int, start: int, end: int) -> int | tuple[int, ...]:
    """Code ::= CHOICE { local INTEGER, global OBJECT IDENTIFIER } (opcode / error code)."""
    if tag == 0x02:
        return _int(buf, start, end)
    if tag == 0x06:
        return decode_oid(buf, start, end)
    raise BerError(f"bad Code tag 0x{tag:x}")


def _decode_dialogue(buf: bytes, start: int, end: int) -> DialoguePdu:
    """DialoguePortion contents: EXTERNAL { direct-reference, single-ASN1-type [0] DialoguePDU }."""
    tag, es, ee, _ = read_tlv(buf, start, end)
    if tag != 0x28:
        raise BerError("dialogue portion is not an EXTERNAL")
    oid: tuple[int, ...] | None = None
    pdu: tuple[int, int, int] | None = None
    for t, vs, ve in iter_tlvs(buf, es, ee):
        if t == 0x06:
            oid = decode_oid(buf, vs, ve)
        elif t == 0xA0:
            t2, s2, e2, _ = read_tlv(buf, vs, ve)
            pdu = (t2, s2, e2)
        elif t in (0x02, 0x07):  # indirect-reference / data-value-descriptor: ignored
            continue
        else:
            raise BerError(f"unexpected 0x{t:x} in the dialogue EXTERNAL")
    if oid != DIALOGUE_AS_ID or pdu is None:
        raise BerError(f"dialogue portion is not a structured dialogue (direct-reference {oid})")
    t, s, e = pdu
    if t == 0x60:  # AARQ [APPLICATION 0]
        acn: tuple[int, ...] | None = None
        version1 = True
        user_info: bytes | None = None
        for t2, vs, ve in iter_tlvs(buf, s, e):
            if t2 == 0x80:
                # BIT STRING {version1(0)}: first contents octet = unused bits, bit 0 is the MSB.
                version1 = ve - vs >= 2 and bool(buf[vs + 1] & 0x80)
            elif t2 == 0xA1:
                t3, s3, e3, _ = read_tlv(buf, vs, ve)
                if t3 != 0x06:
                    raise BerError("AARQ application-context-name is not an OID")
                acn = decode_oid(buf, s3, e3)
            elif t2 == 0xBE:
                user_info = bytes(buf[vs:ve])
            else:
                raise BerError(f"unexpected 0x{t2:x} in AARQ")
        if acn is None:
            raise BerError("AARQ without application-context-name")
        return Aarq(acn=acn, version1=version1, user_information=user_info)
    if t == 0x61:  # AARE [APPLICATION 1]
        acn = None
        result: int | None = None
        diag: tuple[int, int] | None = None
        for t2, vs, ve in iter_tlvs(buf, s, e):
            if t2 == 0xA1:
                t3, s3, e3, _ = read_tlv(buf, vs, ve)
                acn = decode_oid(buf, s3, e3)
            elif t2 == 0xA2:
                t3, s3, e3, _ = read_tlv(buf, vs, ve)
                result = _int(buf, s3, e3)
            elif t2 == 0xA3:
                t3, s3, e3, _ = read_tlv(buf, vs, ve)
                t4, s4, e4, _ = read_tlv(buf, s3, e3)
                if t3 not in (0xA1, 0xA2) or t4 != 0x02:
                    raise BerError("bad AARE result-source-diagnostic")
                diag = (t3 & 0x1F, _int(buf, s4, e4))
            elif t2 in (0x80, 0xBE):
                continue
            else:
                raise BerError(f"unexpected 0x{t2:x} in AARE")
        if acn is None or result is None or diag is None:
            raise BerError("AARE misses a mandatory field")
        return Aare(
            acn=acn,
            result=AssociateResult(result) if result in (0, 1, 2) else AssociateResult.REJECT_PERMANENT,
            diagnostic_source=DiagnosticSource(diag[0]),
            diagnostic=diag[1],
        )
    if t == 0x64:  # ABRT [APPLICATION 4]
        for t2, vs, ve in iter_tlvs(buf, s, e):
            if t2 == 0x80:
                src = _int(buf, vs, ve)
                return Abrt(source=AbortSource(src) if src in (0, 1) else AbortSource.DIALOGUE_SERVICE_USER)
        raise BerError("ABRT without abort-source")
    raise BerError(f"unknown dialogue PDU 0x{t:x}")


def _invoke_id(buf: bytes, tag: int, start: int, end: int) -> int:
    if tag != 0x02:
        raise BerError("invokeId is not an INTEGER")
    value = _int(buf, start, end)
    if not -128 <= value <= 127:
        raise BerError("invokeId out of range")
    return value


def _decode_component(buf: bytes, tag: int, start: int, end: int) -> Component:
    """One component (Q.773 §3.3); raises BerError / ValueError for a badly structured one."""
    if tag == 0xA1:  # invoke
        # invokeId, [linkedId], opcode are read strictly; the argument (and whatever a vendor appends,
        # well-formed or not) is kept raw for MAP to judge: a Huawei MSC leaves stray octets there.
        t, vs, ve, pos = read_tlv(buf, start, end)
        invoke_id = _invoke_id(buf, t, vs, ve)
        t, vs, ve, pos = read_tlv(buf, pos, end)
        linked: int | None = None
        if t == 0x80:
            linked = _int(buf, vs, ve)
            t, vs, ve, pos = read_tlv(buf, pos, end)
        opcode = _code(buf, t, vs, ve)
        parameter = bytes(buf[pos:end]) if pos < end else None
        return Invoke(invoke_id=invoke_id, opcode=opcode, linked_id=linked, parameter=parameter)
    kids = iter_tlvs(buf, start, end)
    if tag in (0xA2, 0xA7):  # returnResult(Last) / returnResultNotLast
        if not kids:
            raise BerError("ReturnResult without invokeId")
        invoke_id = _invoke_id(buf, *kids[0])
        if len(kids) == 1:
            return ReturnResult(invoke_id=invoke_id, last=tag == 0xA2)
        t, vs, ve = kids[1]
        if t != 0x30 or len(kids) > 2:
            raise BerError("bad ReturnResult result")
        if vs >= ve:
            raise BerError("ReturnResult result without opcode")
        ot, os_, oe, nxt = read_tlv(buf, vs, ve)
        opcode = _code(buf, ot, os_, oe)
        parameter = bytes(buf[nxt:ve]) if nxt < ve else None
        return ReturnResult(invoke_id=invoke_id, last=tag == 0xA2, opcode=opcode, parameter=parameter)
    if tag == 0xA3:  # returnError
        if len(kids) < 2:
            raise BerError("ReturnError needs invokeId and errcode")
        invoke_id = _invoke_id(buf, *kids[0])
        code = _code(buf, *kids[1])
        parameter = bytes(buf[kids[1][2] : end]) if len(kids) > 2 else None
        return ReturnError(invoke_id=invoke_id, error_code=code, parameter=parameter)
    if tag == 0xA4:  # reject
        if len(kids) != 2:
            raise BerError("Reject needs invokeId and problem")
        t, vs, ve = kids[0]
        if t == 0x05:
            rid: int | None = None
        else:
            rid = _invoke_id(buf, t, vs, ve)
        t, vs, ve = kids[1]
        if t not in (0x80, 0x81, 0x82, 0x83):
            raise BerError("bad Reject problem")
        return Reject(invoke_id=rid, problem_type=ProblemType(t), problem=_int(buf, vs, ve))
    raise BerError(f"unrecognized component 0x{tag:x}")


def _decode_components(buf: bytes, start: int, end: int) -> tuple[Component, ...]:
    out: list[Component] = []
    pos = start
    while pos < end:
        invoke_id: int | None = None
        try:
            tag, vs, ve, pos = read_tlv(buf, pos, end)
        except BerError as exc:
            problem = GeneralProblem.BADLY_STRUCTURED_COMPONENT
            out.append(BadComponent(invoke_id=None, problem=problem, detail=str(exc)))
            break
        if tag not in (0xA1, 0xA2, 0xA3, 0xA4, 0xA7):
            out.append(
                BadComponent(
                    invoke_id=None,
                    problem=GeneralProblem.UNRECOGNIZED_COMPONENT,
                    detail=f"unrecognized component tag 0x{tag:x}",
                )
            )
            break
        try:
            out.append(_decode_component(buf, tag, vs, ve))
        except (BerError, ValueError) as exc:
            # Salvage the invoke id for the Reject when the first element is a sane INTEGER.
            try:
                t, s, e, _ = read_tlv(buf, vs, ve)
                if t == 0x02 and e - s == 1:
                    invoke_id = int.from_bytes(buf[s:e], "big", signed=True)
            except BerError:
                pass
            out.append(
                BadComponent(invoke_id=invoke_id, problem=GeneralProblem.MISTYPED_COMPONENT, detail=str(exc))
            )
            break
    return tuple(out)


def _tid(buf: bytes, start: int, end: int, what: str, otid: bytes | None) -> bytes:
    n = end - start
    if not 1 <= n <= 4:
        raise TransactionPortionError(
            f"{what} of {n} octets", cause=PAbortCause.INCORRECT_TRANSACTION_PORTION, otid=otid
        )
    return bytes(buf[start:end])


def decode_tcap(data: bytes) -> TcapMessage:
    """Decode one TCAP message (the SCCP user data).

    Raises :class:`TransactionPortionError` when no message can be made of it; component errors are
    reported in-band as :class:`BadComponent` and dialogue portion errors in ``dialogue_error``.
    """
    end = len(data)
    try:
        tag, ms, me, _ = read_tlv(data, 0, end)
    except BerError as exc:
        raise TransactionPortionError(
            f"undecodable message: {exc}", cause=PAbortCause.BADLY_FORMATTED_TRANSACTION_PORTION
        ) from None
    mtype = _MSG_TYPES.get(tag)
    try:
        kids = iter_tlvs(data, ms, me)
    except BerError as exc:
        raise TransactionPortionError(
            f"badly formatted {mtype.name if mtype else 'message'}: {exc}",
            cause=PAbortCause.BADLY_FORMATTED_TRANSACTION_PORTION,
            otid=_salvage_otid(data, ms, me),
        ) from None
    otid: bytes | None = None
    dtid: bytes | None = None
    for t, vs, ve in kids:
        if t == 0x48 and otid is None:
            otid = bytes(data[vs:ve]) if 1 <= ve - vs <= 4 else None
    if mtype is None:
        raise TransactionPortionError(
            f"unrecognized message type 0x{tag:x}", cause=PAbortCause.UNRECOGNIZED_MESSAGE_TYPE, otid=otid
        )
    # Q.773 §3.1: which transaction ids each message type carries, in this order.
    expected: tuple[int, ...] = {
        MessageType.UNIDIRECTIONAL: (),
        MessageType.BEGIN: (0x48,),
        MessageType.END: (0x49,),
        MessageType.CONTINUE: (0x48, 0x49),
        MessageType.ABORT: (0x49,),
    }[mtype]
    if len(kids) < len(expected) or tuple(k[0] for k in kids[: len(expected)]) != expected:
        raise TransactionPortionError(
            f"{mtype.name} without its transaction ids",
            cause=PAbortCause.INCORRECT_TRANSACTION_PORTION,
            otid=otid,
        )
    for t, vs, ve in kids[: len(expected)]:
        if t == 0x48:
            otid = _tid(data, vs, ve, "OTID", otid)
        else:
            dtid = _tid(data, vs, ve, "DTID", otid)
    rest = kids[len(expected) :]
    dialogue: DialoguePdu | None = None
    dialogue_error: str | None = None
    components: tuple[Component, ...] = ()
    p_abort: int | None = None
    if mtype is MessageType.ABORT:
        if len(rest) > 1:
            raise TransactionPortionError(
                "Abort with more than one reason", cause=PAbortCause.BADLY_FORMATTED_TRANSACTION_PORTION
            )
        if rest:
            t, vs, ve = rest[0]
            if t == 0x4A:
                try:
                    p_abort = _int(data, vs, ve)
                except BerError:
                    p_abort = -1
            elif t == 0x6B:
                try:
                    dialogue = _decode_dialogue(data, vs, ve)
                except (BerError, ValueError) as exc:
                    dialogue_error = str(exc)
            else:
                dialogue_error = f"unexpected 0x{t:x} in Abort"
        return TcapMessage(
            type=mtype, dtid=dtid, dialogue=dialogue, p_abort_cause=p_abort, dialogue_error=dialogue_error
        )
    idx = 0
    if idx < len(rest) and rest[idx][0] == 0x6B:
        try:
            dialogue = _decode_dialogue(data, rest[idx][1], rest[idx][2])
        except (BerError, ValueError) as exc:
            dialogue_error = str(exc)
        idx += 1
    if idx < len(rest) and rest[idx][0] == 0x6C:
        components = _decode_components(data, rest[idx][1], rest[idx][2])
        idx += 1
    if idx != len(rest):
        raise TransactionPortionError(
            f"unexpected element 0x{rest[idx][0]:x} in {mtype.name}",
            cause=PAbortCause.BADLY_FORMATTED_TRANSACTION_PORTION,
            otid=otid,
        )
    return TcapMessage(
        type=mtype,
        otid=otid,
        dtid=dtid,
        dialogue=dialogue,
        components=components,
        dialogue_error=dialogue_error,
    )


def describe_abort(msg: TcapMessage) -> str:
    """An Abort in words, for a log line: the P-Abort cause name, the U-Abort's dialogue PDU, or
    what made its dialogue portion unreadable."""
    if msg.p_abort_cause is not None:
        try:
            return f"P-Abort {PAbortCause(msg.p_abort_cause).name}"
        except ValueError:
            return f"P-Abort cause {msg.p_abort_cause}"
    if msg.dialogue is not None:
        return f"U-Abort {msg.dialogue}"
    return msg.dialogue_error or "U-Abort"


def _salvage_otid(data: bytes, start: int, end: int) -> bytes | None:
    """Best effort: the OTID when the first element is one (to address a P-Abort)."""
    try:
        t, vs, ve, _ = read_tlv(data, start, end)
    except BerError:
        return None
    return bytes(data[vs:ve]) if t == 0x48 and 1 <= ve - vs <= 4 else None


# --------------------------------------------------------------------------------------------------
# Encoder (definite lengths, the same octets as pycrate's BER encoder: see the property tests)

_DIALOGUE_AS_ID_TLV = tlv(0x06, encode_oid(DIALOGUE_AS_ID))
_PROTOCOL_VERSION_1 = b"\x80\x02\x07\x80"  # protocol-version BIT STRING {version1}: 7 unused bits


def _encode_dialogue(pdu: DialoguePdu) -> bytes:
    if isinstance(pdu, Aarq):
        body = (_PROTOCOL_VERSION_1 if pdu.version1 else b"") + tlv(0xA1, tlv(0x06, encode_oid(pdu.acn)))
        if pdu.user_information is not None:
            body += tlv(0xBE, pdu.user_information)
        apdu = tlv(0x60, body)
    elif isinstance(pdu, Aare):
        body = (
            _PROTOCOL_VERSION_1
            + tlv(0xA1, tlv(0x06, encode_oid(pdu.acn)))
            + tlv(0xA2, tlv(0x02, encode_integer(pdu.result)))
            + tlv(0xA3, tlv(0xA0 | pdu.diagnostic_source, tlv(0x02, encode_integer(pdu.diagnostic))))
        )
        apdu = tlv(0x61, body)
    else:
        apdu = tlv(0x64, tlv(0x80, encode_integer(pdu.source)))
    return tlv(0x6B, tlv(0x28, _DIALOGUE_AS_ID_TLV + tlv(0xA0, apdu)))


def _encode_code(code: int | tuple[int, ...]) -> bytes:
    if isinstance(code, tuple):
        return tlv(0x06, encode_oid(code))
    return tlv(0x02, encode_integer(code))


def _encode_component(c: Component) -> bytes:
    if isinstance(c, Invoke):
        body = tlv(0x02, encode_integer(c.invoke_id))
        if c.linked_id is not None:
            body += tlv(0x80, encode_integer(c.linked_id))
        body += _encode_code(c.opcode) + (c.parameter or b"")
        return tlv(0xA1, body)
    if isinstance(c, ReturnResult):
        body = tlv(0x02, encode_integer(c.invoke_id))
        if c.opcode is not None:
            body += tlv(0x30, _encode_code(c.opcode) + (c.parameter or b""))
        return tlv(0xA2 if c.last else 0xA7, body)
    if isinstance(c, ReturnError):
        body = tlv(0x02, encode_integer(c.invoke_id)) + _encode_code(c.error_code) + (c.parameter or b"")
        return tlv(0xA3, body)
    if isinstance(c, Reject):
        rid = b"\x05\x00" if c.invoke_id is None else tlv(0x02, encode_integer(c.invoke_id))
        return tlv(0xA4, rid + tlv(int(c.problem_type), encode_integer(c.problem)))
    raise TypeError(f"cannot encode {type(c).__name__}")


def encode_tcap(msg: TcapMessage) -> bytes:
    """Encode a TCMessage with definite lengths."""
    body = b""
    if msg.otid is not None and msg.type in (MessageType.BEGIN, MessageType.CONTINUE):
        body += tlv(0x48, msg.otid)
    if msg.dtid is not None and msg.type in (MessageType.END, MessageType.CONTINUE, MessageType.ABORT):
        body += tlv(0x49, msg.dtid)
    if msg.type is MessageType.ABORT:
        if msg.p_abort_cause is not None:
            body += tlv(0x4A, encode_integer(msg.p_abort_cause))
        elif msg.dialogue is not None:
            body += _encode_dialogue(msg.dialogue)
        return tlv(0x67, body)
    if msg.dialogue is not None:
        body += _encode_dialogue(msg.dialogue)
    if msg.components:
        body += tlv(0x6C, b"".join(_encode_component(c) for c in msg.components))
    return tlv(int(msg.type), body)
