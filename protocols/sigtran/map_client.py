"""MAP checkIMEI, the MSC / SGSN side (TS 29.002 §8.7.1): the Begin it sends, the reply it reads.

Used by the simulated MSC (:mod:`simulations.msc`, through :class:`.stack.CheckImeiClient`), the
tests and the benchmarks. The EIR side is :mod:`.tcap_dialogues`; the parameters, both ways, are
:mod:`.map_checkimei`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .map_checkimei import (
    CHECK_IMEI_OPCODE,
    EQUIPMENT_MNGT_CONTEXT,
    EquipmentStatus,
    MapParameterError,
    decode_check_imei_res,
    encode_check_imei_arg,
    equipment_mngt_acn,
)
from .tcap import (
    Aare,
    Aarq,
    BadComponent,
    Invoke,
    MessageType,
    Reject,
    ReturnError,
    ReturnResult,
    TcapMessage,
    TransactionPortionError,
    decode_tcap,
    describe_abort,
    encode_tcap,
)

__all__ = ["CheckImeiOutcome", "decode_check_imei_reply", "encode_check_imei_begin"]


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
            detail=describe_abort(msg),
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
