"""Service-based interfaces (3GPP 5GC SBI): request parsing and answers, sans-IO.

The HTTP/2 and HTTP/1.1 connection layer is :mod:`protocols.http`; this package knows what the
bodies and query strings of one API mean."""

from __future__ import annotations

from protocols.sbi.n5g_eir import (
    API_PATH,
    Answer,
    Cause,
    EirAnswer,
    EquipmentStatus,
    EquipmentStatusQuery,
    N5gEirOptions,
    answer_status,
    build_target,
    equipment_unknown,
    overloaded,
    parse_request,
    problem,
    read_answer,
    system_failure,
)

__all__ = [
    "API_PATH",
    "Answer",
    "Cause",
    "EirAnswer",
    "EquipmentStatus",
    "EquipmentStatusQuery",
    "N5gEirOptions",
    "answer_status",
    "build_target",
    "equipment_unknown",
    "overloaded",
    "parse_request",
    "problem",
    "read_answer",
    "system_failure",
]
