"""The EIR's TCAP dialogues for MAP checkIMEI (Q.774 TSL/CSL, TS 29.002 §8.7.1), sans-IO.

:class:`TcapEirCore` takes TCAP messages (SCCP user data) and gives back :class:`CheckImeiInvoked`
events to answer, the replies TCAP owes at once (Reject, Abort, AC negotiation), and typed events
for logs and metrics (:class:`TcapProtocolErrorOccurred`, :class:`MapVendorVariantAccepted`). The
answers (``answer`` / ``answer_error``) fill the dialogue's End; ``handle_timer`` aborts the
dialogues whose verdict is late. Time comes in as ``now``.

Each open dialogue keeps the ``route`` its Begin came with — whatever the layer below needs to send
a reply back (for the SIGTRAN stack: the SCCP addresses, OPC/DPC, NI, UDT or XUDT). It lives and
dies with the dialogue (answered, expired, replaced by a Begin that reuses the OTID), so no other
table has to follow the dialogues.

The parameter codec is :mod:`.map_checkimei`; a Begin of the common shape is read by
:mod:`._tcap_fast` without building the TCAP model.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from typing import Generic, TypeVar

from ._ber import read_tlv, tlv
from ._tcap_fast import error_component, match_check_imei_begin, result_component
from .errors import LocalProtocolError
from .map_checkimei import (
    CHECK_IMEI_OPCODE,
    EQUIPMENT_MNGT_CONTEXT,
    CheckImeiArg,
    EquipmentStatus,
    MapError,
    MapParameterError,
    decode_check_imei_arg,
    encode_check_imei_res,
    equipment_mngt_acn,
)
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
    describe_abort,
    encode_tcap,
)

__all__ = [
    "MAX_MESSAGE_SIZE",
    "MAX_REPLY_SIZE",
    "TRANSITIONS",
    "CheckImeiInvoked",
    "DialogueAction",
    "DialogueInput",
    "DialogueKey",
    "DialogueState",
    "MapVendorVariantAccepted",
    "TcapEirCore",
    "TcapErrorKind",
    "TcapEvent",
    "TcapProtocolErrorOccurred",
    "TcapReceived",
    "TcapStats",
]

MAX_MESSAGE_SIZE = 65_535
"""Larger SCCP user data is not decoded (an XUDT-reassembled message stays far below)."""
MAX_REPLY_SIZE = 255
"""The largest TCAP message the EIR sends: SCCP UDT/XUDT user data has a one-octet length
(Q.713 §4.10, §4.18). A Begin of many small bad components would otherwise be answered by an
End of as many (larger) Rejects that no UDT can carry."""


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
    REOPEN = "the peer reused a pending OTID: drop the old dialogue (and its route), then OPEN"
    P_ABORT_UNRECOGNIZED_TID = "P-Abort unrecognizedTransactionID to the OTID"
    DISCARD = "nothing to answer (no OTID to address, or an Abort)"
    FILL = "record the component; the End when it was the last one"
    LATE = "the dialogue is gone (expired, replaced): count and drop"
    U_ABORT = "TC-U-Abort (ABRT dialogue-service-user; bare Abort for v1) along the dialogue's route"


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
# Events


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


class TcapErrorKind(StrEnum):
    """What went wrong, as a short metric label (the member's value: ``tcap_<value>`` in
    ``eir_protocol_errors_total``). Each names what the peer did or what we answered."""

    P_ABORT_SENT = "p_abort_sent"
    """The transaction portion could not be used (badly formatted, unknown message type, a Continue
    for a transaction we never opened): P-Abort with the Q.773 cause to the OTID."""
    REJECT_SENT = "reject_sent"
    """A component was refused with a Reject (Q.774 §3.2.2.2) in the dialogue's End."""
    ACN_NOT_SUPPORTED = "acn_not_supported"
    """The Begin proposed an application context (or MAP v1) we do not serve: U-Abort with an AARE
    naming the highest equipmentMngtContext we support (TS 29.002 §12.1)."""
    ABNORMAL_DIALOGUE = "abnormal_dialogue"
    """The dialogue portion was undecodable or not an AARQ with version1: U-Abort (Q.774 §3.2.2.1)."""
    RESOURCE_LIMITATION = "resource_limitation"
    """Too many open dialogues, or an End too large for one UDT: P-Abort resourceLimitation."""
    DISCARDED = "discarded"
    """Dropped without an answer: no OTID to address, or larger than MAX_MESSAGE_SIZE."""
    UNEXPECTED_MESSAGE = "unexpected_message"
    """An End / Unidirectional (nothing of ours to end), or a Reject component in a Begin: ignored."""
    ABORT_RECEIVED = "abort_received"
    """The peer sent an Abort (for no dialogue of ours: the EIR's dialogues end with its own End)."""
    DUPLICATE_OTID = "duplicate_otid"
    """A Begin reused the OTID of a pending dialogue: the old one is dropped, the new one opened."""
    MISTYPED_PARAMETER = "mistyped_parameter"
    """A checkIMEI argument could not be read: Reject invoke mistypedParameter."""
    BAD_COMPONENT = "bad_component"
    """A component could not be decoded: Reject with a general problem."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TcapProtocolErrorOccurred:
    """Something the peer did wrong (or that we refused), for a log line and a metric."""

    kind: TcapErrorKind
    detail: str
    dialogue_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MapVendorVariantAccepted:
    """A checkIMEI argument in a non-standard form was accepted (not an error: a tolerated vendor
    deviation, see :mod:`.map_checkimei`), for a debug log; ``stats.vendor_variants`` counts them."""

    vendor: str
    """``huawei``, ``ericsson`` or ``other`` (a tolerated deviation of no known vendor)."""
    detail: str
    """The deviations, ``; ``-joined (empty for Ericsson's form, which is a documented variant)."""
    dialogue_id: int


TcapEvent = TcapProtocolErrorOccurred | MapVendorVariantAccepted


@dataclass(frozen=True, slots=True, kw_only=True)
class TcapReceived:
    """What ``receive_tcap`` found: invokes to answer, an immediate reply, events for logs/metrics."""

    invokes: list[CheckImeiInvoked]
    reply: bytes | None = None
    """To send back the way the message came (the route given to ``receive_tcap``)."""
    events: list[TcapEvent]


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
    """Pending dialogues ended by a Begin that reused their OTID (their route goes with them)."""
    vendor_variants: dict[str, int] = field(default_factory=dict)
    """Accepted checkIMEI invokes in a non-standard form, by vendor: ``huawei``, ``ericsson``, or
    ``other`` for a tolerated deviation of no known vendor (a jSS7-wrapped or short IMEI, …).
    The keys come from the decoder alone, so the set stays this small."""


DialogueKey = tuple[Hashable | None, bytes]
"""A dialogue's key in the EIR: ``(peer, OTID octets)``."""

R = TypeVar("R")
"""The route type: opaque to TCAP, kept with each open dialogue (see the module doc)."""


@dataclass(slots=True)
class _Dialogue(Generic[R]):
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
    route: R | None
    """How to reach the peer: the ``route`` its Begin came with."""


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


_Variant = tuple[str | None, str | None, str | None, tuple[str, ...]]
"""A vendor form's (IMSI, MSISDN, vendor, deviations) for :data:`_new_invoked`."""
_STANDARD: _Variant = (None, None, None, ())


def _invoked_constructor() -> Callable[
    [int, int, int, str, bool, bool, bytes, Hashable | None, int, _Variant], CheckImeiInvoked
]:
    """A :class:`CheckImeiInvoked` of the standard form (no IMSI, MSISDN, vendor or deviation), or
    of a vendor form (``variant``), filled through the slot descriptors: the frozen dataclass
    ``__init__`` costs an ``object.__setattr__`` per field (as ``diameter.s13._new_ecr``). The
    same object, field for field (the differential tests compare them with ``==``)."""
    names = [f.name for f in fields(CheckImeiInvoked)]
    if names != [
        "dialogue_id",
        "invoke_id",
        "version",
        "imei",
        "imsi",
        "msisdn",
        "requested_equipment_status",
        "requested_bmuef",
        "vendor",
        "otid",
        "peer",
        "deviations",
        "generation",
    ]:  # pragma: no cover - guards the order below against an edit of the event
        raise LocalProtocolError(f"CheckImeiInvoked fields changed: {names}")
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12 = (
        getattr(CheckImeiInvoked, n).__set__ for n in names
    )
    new = object.__new__
    cls = CheckImeiInvoked

    def make(
        dialogue_id: int,
        invoke_id: int,
        version: int,
        imei: str,
        requested_equipment_status: bool,
        requested_bmuef: bool,
        otid: bytes,
        peer: Hashable | None,
        generation: int,
        variant: _Variant = _STANDARD,
    ) -> CheckImeiInvoked:
        ev = new(cls)
        imsi, msisdn, vendor, deviations = variant
        s0(ev, dialogue_id)
        s1(ev, invoke_id)
        s2(ev, version)
        s3(ev, imei)
        s4(ev, imsi)
        s5(ev, msisdn)
        s6(ev, requested_equipment_status)
        s7(ev, requested_bmuef)
        s8(ev, vendor)
        s9(ev, otid)
        s10(ev, peer)
        s11(ev, deviations)
        s12(ev, generation)
        return ev

    return make


_new_invoked = _invoked_constructor()


def _accepted_constructor() -> Callable[[str, str, int], MapVendorVariantAccepted]:
    """A :class:`MapVendorVariantAccepted` filled through its slot descriptors, as
    :data:`_new_invoked`: a population load (an IMSI in every Begin) is made of vendor forms, and
    the frozen, keyword-only ``__init__`` (a dict of keywords and an ``object.__setattr__`` per
    field) was a tenth of what the fast path's Begin cost beyond the standard form's."""
    names = [f.name for f in fields(MapVendorVariantAccepted)]
    if names != ["vendor", "detail", "dialogue_id"]:  # pragma: no cover - guards the order below
        raise LocalProtocolError(f"MapVendorVariantAccepted fields changed: {names}")
    s0, s1, s2 = (getattr(MapVendorVariantAccepted, n).__set__ for n in names)
    new = object.__new__
    cls = MapVendorVariantAccepted

    def make(vendor: str, detail: str, dialogue_id: int) -> MapVendorVariantAccepted:
        ev = new(cls)
        s0(ev, vendor)
        s1(ev, detail)
        s2(ev, dialogue_id)
        return ev

    return make


_new_accepted = _accepted_constructor()

_Events = list[TcapEvent]


class TcapEirCore(Generic[R]):
    """The EIR's TCAP + MAP checkIMEI responder (TS 29.002 §8.7.1, Q.774 TSL/CSL, sans-IO).

    Every dialogue is a Begin answered by one End (or an Abort): the EIR never sends Continue, so it
    never allocates transaction ids of its own. Several invokes in one Begin are answered together
    in one End, in their order. Memory is bounded by ``max_dialogues``; an unanswered dialogue is
    aborted after ``dialogue_timeout`` seconds (``handle_timer``). ``R`` is the type of the route
    kept with each dialogue (see the module doc).
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
        self._dialogues: dict[DialogueKey, _Dialogue[R]] = {}
        self._generation = 0

    @property
    def active_dialogues(self) -> int:
        return len(self._dialogues)

    def route_of(self, peer: Hashable | None, otid: bytes) -> R | None:
        """The route kept with the open dialogue ``(peer, otid)``; None when there is none."""
        d = self._dialogues.get((peer, otid))
        return None if d is None else d.route

    # ---- input

    def receive_tcap(
        self, data: bytes, now: float, *, peer: Hashable | None = None, route: R | None = None
    ) -> TcapReceived:
        """Decode one TCAP message (the SCCP user data) and say what to do (never raises on input).

        Returns the checkIMEI invokes to answer and, when TCAP must answer at once, the reply
        octets: Reject(s) in an End, P-Abort, U-Abort with an AARE for AC negotiation (TS 29.002
        §12.1: carries the highest supported equipmentMngtContext), Abort for an abnormal dialogue;
        plus the events for logs and metrics.
        ``peer`` scopes the transaction ids (two MSCs may use the same OTID); ``route`` is kept with
        the dialogue the message opens, for the replies sent later (``handle_timer``).
        """
        events: _Events = []
        invokes, reply = self._receive(data, now, peer, route, events)
        return TcapReceived(invokes=invokes, reply=reply, events=events)

    def _receive(
        self, data: bytes, now: float, peer: Hashable | None, route: R | None, events: _Events
    ) -> tuple[list[CheckImeiInvoked], bytes | None]:
        self.stats.messages += 1
        fast = match_check_imei_begin(data)
        if fast is not None:
            done = self._fast_begin(fast, now, peer, route)
            if done is not None:
                return done
        if len(data) > MAX_MESSAGE_SIZE:
            self.stats.discarded += 1
            events.append(_error(TcapErrorKind.DISCARDED, f"{len(data)} octets: too big"))
            return [], None
        try:
            msg = decode_tcap(data)
        except TransactionPortionError as exc:
            if exc.otid is None:
                self.stats.discarded += 1
                events.append(_error(TcapErrorKind.DISCARDED, str(exc)))
                return [], None
            did = int.from_bytes(exc.otid, "big")
            events.append(_error(TcapErrorKind.P_ABORT_SENT, f"{exc.cause.name}: {exc}", did))
            return [], self._p_abort(exc.otid, exc.cause)
        except Exception as exc:  # pragma: no cover - defensive: decode bugs must not kill the server
            self.stats.discarded += 1
            events.append(_error(TcapErrorKind.DISCARDED, f"decoder failure: {exc!r}"))
            return [], None
        state = DialogueState.IDLE
        if msg.type is MessageType.BEGIN and (peer, msg.otid) in self._dialogues:
            state = DialogueState.INITIATION_RECEIVED
        action, _ = TRANSITIONS[(state, _INPUT_OF[msg.type])]
        if action in (DialogueAction.OPEN, DialogueAction.REOPEN):
            return self._on_begin(msg, now, peer, route, events)
        if action is DialogueAction.P_ABORT_UNRECOGNIZED_TID and msg.otid is not None:
            # We never send Continue, so no dialogue of ours can be continued (Q.774 §3.2.1.2).
            did = int.from_bytes(msg.otid, "big")
            events.append(_error(TcapErrorKind.P_ABORT_SENT, "Continue for an unknown transaction", did))
            return [], self._p_abort(msg.otid, PAbortCause.UNRECOGNIZED_TRANSACTION_ID)
        if msg.type is MessageType.ABORT:
            events.append(_error(TcapErrorKind.ABORT_RECEIVED, describe_abort(msg)))
        else:
            events.append(_error(TcapErrorKind.UNEXPECTED_MESSAGE, f"{msg.type.name} ignored"))
        self.stats.discarded += 1
        return [], None

    def _fast_begin(
        self, fast: tuple[bytes, int | None, int, bytes], now: float, peer: Hashable | None, route: R | None
    ) -> tuple[list[CheckImeiInvoked], bytes | None] | None:
        """The canonical one-invoke Begin of the standard form (see ``_tcap_fast``); None sends it
        down the general path, which reports what the fast path does not (vendor variants, errors)."""
        otid, ac_version, iid, param = fast
        if not self._can_open(ac_version or 1, (peer, otid)):
            return None
        try:
            arg = decode_check_imei_arg(param)
        except MapParameterError:
            return None
        if arg.deviations or arg.vendor is not None:
            return None
        inv = self._open_canonical(
            otid,
            ac_version,
            iid,
            arg.imei,
            arg.requested_equipment_status,
            arg.requested_bmuef,
            now,
            peer,
            route,
        )
        return [inv], None

    def receive_canonical_begin(
        self,
        otid: bytes,
        ac_version: int | None,
        invoke_id: int,
        imei: str,
        requested_equipment_status: bool,
        requested_bmuef: bool,
        now: float,
        peer: Hashable | None,
        route: R | None,
    ) -> CheckImeiInvoked | None:
        """A Begin the caller has already read — of the shape ``match_check_imei_begin`` accepts,
        its argument in the standard form without deviations (``decode_check_imei_arg`` gave
        ``imei`` and the requested flags) — counted and opened exactly as ``receive_tcap`` would
        (the same code). None, with nothing counted, when ``receive_tcap`` must decide: the version
        is not served, the OTID is pending (a replacement) or no dialogue is free. The SIGTRAN
        stack's per-association memo (:mod:`._map_fast`) calls this."""
        if not self._can_open(ac_version or 1, (peer, otid)):
            return None
        self.stats.messages += 1
        return self._open_canonical(
            otid, ac_version, invoke_id, imei, requested_equipment_status, requested_bmuef, now, peer, route
        )

    def receive_variant_begin(
        self,
        otid: bytes,
        ac_version: int | None,
        invoke_id: int,
        imei: str,
        imsi: str | None,
        form: CheckImeiArg,
        detail: str,
        now: float,
        peer: Hashable | None,
        route: R | None,
    ) -> tuple[MapVendorVariantAccepted, CheckImeiInvoked] | None:
        """As :meth:`receive_canonical_begin`, for a Begin of the same canonical TCAP shape whose
        argument is a vendor form: ``decode_check_imei_arg`` read it as ``form`` but for ``imei``
        and ``imsi`` (``detail``: its deviations ``; ``-joined). Counted, reported and opened as
        ``receive_tcap`` does it (the variant counted, :class:`MapVendorVariantAccepted` before
        the invoke). None, with nothing counted, when ``receive_tcap`` must decide."""
        if not self._can_open(ac_version or 1, (peer, otid)):
            return None
        self.stats.messages += 1
        variants = self.stats.vendor_variants  # _count_variant, inline on the fast path
        vendor = form.vendor or "other"
        variants[vendor] = variants.get(vendor, 0) + 1
        inv = self._open_canonical(
            otid,
            ac_version,
            invoke_id,
            imei,
            form.requested_equipment_status,
            form.requested_bmuef,
            now,
            peer,
            route,
            (imsi, form.msisdn, form.vendor, form.deviations),
        )
        return _new_accepted(vendor, detail, inv.dialogue_id), inv

    def _can_open(self, version: int, key: DialogueKey) -> bool:
        return (
            version in self.supported_versions
            and key not in self._dialogues
            and len(self._dialogues) < self.max_dialogues
        )

    def _open_canonical(
        self,
        otid: bytes,
        ac_version: int | None,
        iid: int,
        imei: str,
        requested_equipment_status: bool,
        requested_bmuef: bool,
        now: float,
        peer: Hashable | None,
        route: R | None,
        variant: _Variant = _STANDARD,
    ) -> CheckImeiInvoked:
        """Open the dialogue of a one-invoke Begin; the invoke of the standard form, or of a
        vendor form (``variant``: :meth:`receive_variant_begin`)."""
        stats = self.stats
        stats.begins += 1
        stats.invokes += 1
        self._generation = gen = self._generation + 1
        version = ac_version or 1
        self._dialogues[(peer, otid)] = _Dialogue(
            otid=otid,
            version=version,
            acn=None if ac_version is None else equipment_mngt_acn(ac_version),
            deadline=now + self.dialogue_timeout,
            slots=[None],
            pending={iid: 0},
            generation=gen,
            route=route,
        )
        return _new_invoked(
            int.from_bytes(otid, "big"),
            iid,
            version,
            imei,
            requested_equipment_status,
            requested_bmuef,
            otid,
            peer,
            gen,
            variant,
        )

    def _on_begin(
        self, msg: TcapMessage, now: float, peer: Hashable | None, route: R | None, events: _Events
    ) -> tuple[list[CheckImeiInvoked], bytes | None]:
        self.stats.begins += 1
        otid = msg.otid
        assert otid is not None  # decode_tcap guarantees a Begin's OTID
        did = int.from_bytes(otid, "big")
        dlg = msg.dialogue
        if msg.dialogue_error is not None or (dlg is not None and not isinstance(dlg, Aarq)):
            # Q.774 §3.2.2.1: a syntax error in the dialogue portion → abort "abnormal dialogue".
            detail = msg.dialogue_error or f"{type(dlg).__name__} in a Begin"
            events.append(_error(TcapErrorKind.ABNORMAL_DIALOGUE, detail, did))
            return self._abort_reply(otid, Abrt(source=AbortSource.DIALOGUE_SERVICE_PROVIDER))
        acn: tuple[int, ...] | None = None
        if dlg is None:
            version = 1
            if 1 not in self.supported_versions:
                events.append(_error(TcapErrorKind.ACN_NOT_SUPPORTED, "v1 Begin (no dialogue portion)", did))
                return self._abort_reply(otid, None)
        else:
            acn = dlg.acn
            if not dlg.version1:
                events.append(_error(TcapErrorKind.ABNORMAL_DIALOGUE, "AARQ without protocol version1", did))
                aare = Aare(
                    acn=acn,
                    result=AssociateResult.REJECT_PERMANENT,
                    diagnostic_source=DiagnosticSource.DIALOGUE_SERVICE_PROVIDER,
                    diagnostic=ProviderDiagnostic.NO_COMMON_DIALOGUE_PORTION,
                )
                return self._abort_reply(otid, aare)
            ours = len(acn) == 8 and acn[:7] == EQUIPMENT_MNGT_CONTEXT
            version = acn[7] if ours else 0
            if version not in self.supported_versions:
                # TS 29.002 §12.1 / Q.773: refuse, proposing the highest context we support.
                offer = equipment_mngt_acn(max(self.supported_versions)) if ours else acn
                detail = f"proposed {'.'.join(map(str, acn))}, offered {'.'.join(map(str, offer))}"
                events.append(_error(TcapErrorKind.ACN_NOT_SUPPORTED, detail, did))
                aare = Aare(
                    acn=offer,
                    result=AssociateResult.REJECT_PERMANENT,
                    diagnostic_source=DiagnosticSource.DIALOGUE_SERVICE_USER,
                    diagnostic=UserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
                )
                return self._abort_reply(otid, aare)
        key = (peer, otid)
        if key in self._dialogues:
            # The MSC reused an OTID it had given up on: the new Begin replaces the old dialogue,
            # route and all (Q.774 §3.2.2.1 gives an initiating TSM per Begin; the old one is gone).
            del self._dialogues[key]
            self.stats.replaced += 1
            events.append(_error(TcapErrorKind.DUPLICATE_OTID, "Begin reused a pending OTID", did))
        elif len(self._dialogues) >= self.max_dialogues:
            detail = f"{len(self._dialogues)} dialogues open"
            events.append(_error(TcapErrorKind.RESOURCE_LIMITATION, detail, did))
            return [], self._p_abort(otid, PAbortCause.RESOURCE_LIMITATION)
        slots: list[bytes | None] = []
        pending: dict[int, int] = {}
        invokes: list[CheckImeiInvoked] = []
        self._generation = gen = self._generation + 1
        for comp in msg.components:
            outcome = self._check_component(comp, pending, version, otid, did, peer, gen, events)
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
                detail = f"End with {len(slots)} components exceeds {MAX_REPLY_SIZE} octets: P-Abort"
                events.append(_error(TcapErrorKind.RESOURCE_LIMITATION, detail, did))
            return [], end
        self._dialogues[key] = _Dialogue(
            otid=otid,
            version=version,
            acn=acn,
            deadline=now + self.dialogue_timeout,
            slots=slots,
            pending=pending,
            generation=gen,
            route=route,
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
        events: _Events,
    ) -> CheckImeiInvoked | Reject | None:
        """One component of a Begin: an invoke to answer, a Reject to send (Q.774 §3.2.2) or None."""
        if isinstance(comp, Invoke):
            iid = comp.invoke_id
            if iid in pending:
                return self._reject(iid, ProblemType.INVOKE, InvokeProblem.DUPLICATE_INVOKE_ID, did, events)
            if comp.opcode != CHECK_IMEI_OPCODE:
                return self._reject(
                    iid, ProblemType.INVOKE, InvokeProblem.UNRECOGNIZED_OPERATION, did, events
                )
            if comp.linked_id is not None:
                return self._reject(
                    iid, ProblemType.INVOKE, InvokeProblem.UNRECOGNIZED_LINKED_ID, did, events
                )
            if comp.parameter is None:
                return self._reject(iid, ProblemType.INVOKE, InvokeProblem.MISTYPED_PARAMETER, did, events)
            try:
                arg = decode_check_imei_arg(comp.parameter)
            except MapParameterError as exc:
                events.append(_error(TcapErrorKind.MISTYPED_PARAMETER, str(exc), did))
                return self._reject(iid, ProblemType.INVOKE, InvokeProblem.MISTYPED_PARAMETER, did, events)
            if arg.vendor is not None or arg.deviations:
                vendor = self._count_variant(arg)
                events.append(
                    MapVendorVariantAccepted(vendor=vendor, detail="; ".join(arg.deviations), dialogue_id=did)
                )
            self.stats.invokes += 1
            return _invoked(arg, did, iid, version, otid, peer, generation)
        if isinstance(comp, ReturnResult):
            problem: int = ReturnResultProblem.UNRECOGNIZED_INVOKE_ID
            return self._reject(comp.invoke_id, ProblemType.RETURN_RESULT, problem, did, events)
        if isinstance(comp, ReturnError):
            problem = ReturnErrorProblem.UNRECOGNIZED_INVOKE_ID
            return self._reject(comp.invoke_id, ProblemType.RETURN_ERROR, problem, did, events)
        if isinstance(comp, BadComponent):
            events.append(_error(TcapErrorKind.BAD_COMPONENT, comp.detail, did))
            return self._reject(comp.invoke_id, ProblemType.GENERAL, comp.problem, did, events)
        # A Reject in a Begin refers to nothing of ours: nothing to answer (Q.774 §3.2.2.3).
        events.append(_error(TcapErrorKind.UNEXPECTED_MESSAGE, "Reject in a Begin", did))
        return None

    def _count_variant(self, arg: CheckImeiArg) -> str:
        variants = self.stats.vendor_variants
        vendor = arg.vendor or "other"
        variants[vendor] = variants.get(vendor, 0) + 1
        return vendor

    def _reject(
        self, invoke_id: int | None, ptype: ProblemType, problem: int, did: int, events: _Events
    ) -> Reject:
        names = {
            ProblemType.GENERAL: GeneralProblem,
            ProblemType.INVOKE: InvokeProblem,
            ProblemType.RETURN_RESULT: ReturnResultProblem,
            ProblemType.RETURN_ERROR: ReturnErrorProblem,
        }
        detail = f"{ptype.name} {names[ptype](problem).name} (invoke id {invoke_id})"
        events.append(_error(TcapErrorKind.REJECT_SENT, detail, did))
        return Reject(invoke_id=invoke_id, problem_type=ptype, problem=int(problem))

    # ---- answers

    def answer(
        self, ev: CheckImeiInvoked, status: EquipmentStatus, bmuef: bytes | None = None
    ) -> bytes | None:
        """Record the result of ``ev``; the End once every invoke of its dialogue is answered.

        v3: equipmentStatus is sent unless only bmuef was requested; ``bmuef`` (UESBI-Iu contents)
        only when requested. Returns None while other invokes are pending or when the dialogue is
        gone (expired or replaced: counted in ``stats.late_answers``). The End goes along the
        route of ``ev``'s dialogue.
        """
        if ev.version >= 3:
            send_status = ev.requested_equipment_status or not ev.requested_bmuef
            if send_status and not ev.requested_bmuef:
                param = _V3_RESULTS[status]
            else:
                param = encode_check_imei_res(
                    3, status if send_status else None, bmuef if ev.requested_bmuef else None
                )
        else:
            param = _V2_RESULTS[status]
        return self._fill(ev, result_component(ev.invoke_id, param), error=False)

    def answer_error(self, ev: CheckImeiInvoked, error: MapError) -> bytes | None:
        """Answer ``ev`` with a ReturnError (no parameter: all three are optional in TS 29.002)."""
        return self._fill(ev, error_component(ev.invoke_id, int(error)), error=True)

    def abort(self, ev: CheckImeiInvoked) -> bytes | None:
        """End ``ev``'s dialogue with a TC-U-Abort instead of an answer (overload, fault injection):
        ABRT dialogue-service-user when the dialogue has an AC, a bare Abort for v1 (the timer's
        Abort). None when the dialogue is gone (expired or replaced: a late answer)."""
        key = (ev.peer, ev.otid)
        d = self._dialogues.get(key)
        if d is None or d.generation != ev.generation:
            self.stats.late_answers += 1
            return None
        del self._dialogues[key]
        self.stats.aborts_sent += 1
        dialogue = Abrt(source=AbortSource.DIALOGUE_SERVICE_USER) if d.acn is not None else None
        return encode_tcap(TcapMessage(type=MessageType.ABORT, dtid=d.otid, dialogue=dialogue))

    def _fill(self, ev: CheckImeiInvoked, comp: bytes, *, error: bool) -> bytes | None:
        key = (ev.peer, ev.otid)
        d = self._dialogues.get(key)
        if d is not None and d.generation != ev.generation:
            # The OTID was reused meanwhile: this dialogue is another one; ev's was replaced.
            self.stats.stale_answers += 1
            d = None
        # TRANSITIONS[(state, ANSWER)], read once at import (hashing Enum members runs Python code)
        action = _ANSWER_IDLE if d is None else _ANSWER_PENDING
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

    def handle_timer(self, now: float) -> list[tuple[R | None, bytes]]:
        """Abort every dialogue past its deadline (TC-U-ABORT; safe to call early).

        Returns ``(route, abort)`` pairs: each Abort goes back along the route its dialogue was
        opened with (two peers may use the same OTID: the route, not the DTID, says where).
        TRANSITIONS[(INITIATION_RECEIVED, TIMER_EXPIRY)]: U_ABORT → IDLE.
        """
        out: list[tuple[R | None, bytes]] = []
        while self._dialogues:
            key, d = next(iter(self._dialogues.items()))
            if d.deadline > now:
                break
            del self._dialogues[key]
            self.stats.expired += 1
            self.stats.aborts_sent += 1
            dialogue = Abrt(source=AbortSource.DIALOGUE_SERVICE_USER) if d.acn is not None else None
            abort = encode_tcap(TcapMessage(type=MessageType.ABORT, dtid=d.otid, dialogue=dialogue))
            out.append((d.route, abort))
        return out

    # ---- reply builders

    def _end(self, otid: bytes, acn: tuple[int, ...] | None, components: list[bytes]) -> bytes:
        """End (Q.773 §3.1) with the AARE accepted when the Begin carried an AARQ (Q.774 §3.2.2.1);
        a P-Abort resourceLimitation (Q.773 §3.1) when the End would exceed MAX_REPLY_SIZE."""
        aare = b"" if acn is None else _aare_accepted(acn)
        comps = b"".join(components)
        n = len(comps)
        portion = b"" if not n else (b"\x6c" + _LEN[n] + comps if n < 0x80 else tlv(0x6C, comps))
        body_len = 2 + len(otid) + len(aare) + len(portion)
        if body_len < 0x80:  # the usual End: short lengths, written out (tlv's octets)
            end = b"\x64" + _LEN[body_len] + b"\x49" + _LEN[len(otid)] + otid + aare + portion
        else:
            end = tlv(0x64, tlv(0x49, otid) + aare + portion)
        if len(end) > MAX_REPLY_SIZE:
            self.stats.oversized += 1
            return self._p_abort(otid, PAbortCause.RESOURCE_LIMITATION)
        self.stats.ends_sent += 1
        return end

    def _p_abort(self, otid: bytes, cause: PAbortCause) -> bytes:
        self.stats.aborts_sent += 1
        return encode_tcap(TcapMessage(type=MessageType.ABORT, dtid=otid, p_abort_cause=int(cause)))

    def _abort_reply(
        self, otid: bytes, dialogue: Aare | Abrt | None
    ) -> tuple[list[CheckImeiInvoked], bytes | None]:
        self.stats.aborts_sent += 1
        reply = encode_tcap(TcapMessage(type=MessageType.ABORT, dtid=otid, dialogue=dialogue))
        return [], reply


_ANSWER_IDLE = TRANSITIONS[(DialogueState.IDLE, DialogueInput.ANSWER)][0]
_ANSWER_PENDING = TRANSITIONS[(DialogueState.INITIATION_RECEIVED, DialogueInput.ANSWER)][0]
_LEN = [bytes((n,)) for n in range(0x80)]
_V2_RESULTS = [encode_check_imei_res(2, s) for s in EquipmentStatus]
"""The v1/v2 result (a bare EquipmentStatus) by status value: indexed, as hashing an Enum runs
Python code."""
_V3_RESULTS = [encode_check_imei_res(3, s) for s in EquipmentStatus]
"""The v3 CheckIMEI-Res with equipmentStatus only (what an MSC asks for) by status value."""


def _error(kind: TcapErrorKind, detail: str, dialogue_id: int | None = None) -> TcapProtocolErrorOccurred:
    return TcapProtocolErrorOccurred(kind=kind, detail=detail, dialogue_id=dialogue_id)


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
