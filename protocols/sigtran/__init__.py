"""SIGTRAN stack of the EIR, sans-IO: M3UA (RFC 4666) → SCCP (Q.713) → TCAP (Q.773) → MAP (TS 29.002).

Modules, bottom up:

* :mod:`.m3ua` — codec, ASP state machine, :class:`~.m3ua.M3uaConnection`;
* :mod:`.sccp` — UDT/XUDT/UDTS, addresses, :class:`~.sccp.SccpEndpoint`;
* :mod:`.tcap` — the TCAP message model and codec (:mod:`._ber` underneath, :mod:`._tcap_fast` for
  the common checkIMEI Begin);
* :mod:`.map_checkimei` — the checkIMEI parameter codec with the vendor variants;
* :mod:`.tcap_dialogues` — the EIR's dialogue core (:class:`TcapEirCore`);
* :mod:`.map_client` — the MSC side: the Begin it sends, the reply it reads;
* :mod:`.stack` — the layers composed: :class:`EirSigtranStack` (EIR) and :class:`CheckImeiClient`
  (simulated MSC/SGSN);
* :mod:`.errors` — the one exception hierarchy.

The names below are the public API; the modules stay importable for the rest (wire enums, codecs).
"""

from __future__ import annotations

from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError, SigtranError
from .map_checkimei import (
    CHECK_IMEI_OPCODE,
    EQUIPMENT_MNGT_CONTEXT,
    CheckImeiArg,
    EquipmentStatus,
    MapError,
    MapParameterError,
    decode_check_imei_arg,
    decode_check_imei_res,
    encode_check_imei_arg,
    encode_check_imei_res,
    equipment_mngt_acn,
)
from .map_client import CheckImeiOutcome, decode_check_imei_reply, encode_check_imei_begin
from .stack import (
    CheckImeiAnswered,
    CheckImeiClient,
    CheckImeiRequested,
    ClientEvent,
    EirSigtranStack,
    MessageRefused,
    Route,
    SccpDiscarded,
    SccpReturned,
    StackEvent,
)
from .tcap_dialogues import (
    CheckImeiInvoked,
    MapVendorVariantAccepted,
    TcapEirCore,
    TcapErrorKind,
    TcapEvent,
    TcapProtocolErrorOccurred,
    TcapReceived,
    TcapStats,
)

__all__ = [
    "CHECK_IMEI_OPCODE",
    "EQUIPMENT_MNGT_CONTEXT",
    "CheckImeiAnswered",
    "CheckImeiArg",
    "CheckImeiClient",
    "CheckImeiInvoked",
    "CheckImeiOutcome",
    "CheckImeiRequested",
    "ClientEvent",
    "EirSigtranStack",
    "EquipmentStatus",
    "LocalProtocolError",
    "MapError",
    "MapParameterError",
    "MapVendorVariantAccepted",
    "MessageRefused",
    "ProtocolError",
    "RemoteProtocolError",
    "Route",
    "SccpDiscarded",
    "SccpReturned",
    "SigtranError",
    "StackEvent",
    "TcapEirCore",
    "TcapErrorKind",
    "TcapEvent",
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
