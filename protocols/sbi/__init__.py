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
from protocols.sbi.nrf import (
    EIR_SERVICE,
    NF_TYPE_EIR,
    Deregistered,
    HeartbeatAcknowledged,
    NfEndpoint,
    NrfEvent,
    NrfRegistration,
    NrfRequest,
    NrfState,
    Registered,
    RegistrationFailed,
    discovery_target,
    eir_profile,
    read_search_result,
)

__all__ = [
    "API_PATH",
    "EIR_SERVICE",
    "NF_TYPE_EIR",
    "Answer",
    "Cause",
    "Deregistered",
    "EirAnswer",
    "EquipmentStatus",
    "EquipmentStatusQuery",
    "HeartbeatAcknowledged",
    "N5gEirOptions",
    "NfEndpoint",
    "NrfEvent",
    "NrfRegistration",
    "NrfRequest",
    "NrfState",
    "Registered",
    "RegistrationFailed",
    "answer_status",
    "build_target",
    "discovery_target",
    "eir_profile",
    "equipment_unknown",
    "overloaded",
    "parse_request",
    "problem",
    "read_answer",
    "read_search_result",
    "system_failure",
]
