"""Diameter base protocol (RFC 6733) and the S13/S13' ME-Identity-Check application (3GPP TS
29.272), sans-IO.

``codec`` encodes and strictly decodes messages, ``dictionary`` holds the AVPs and codes,
``peer.DiameterPeer`` is the connection state machine (CER/CEA, DWR/DWA, DPR/DPA, errors) and
``s13`` maps ECR/ECA to events and bytes.
"""

from __future__ import annotations

from .codec import Avp, AvpType, Message, decode_message, encode_avp, encode_message
from .dictionary import APP_RELAY, APP_S13, VENDOR_3GPP, Command, DisconnectCause, EquipmentStatus, ResultCode
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    CapabilitiesExchanged,
    CloseReason,
    ConnectionClosed,
    DisconnectRequested,
    EquipmentCheckAnswered,
    EquipmentCheckRequested,
    Event,
    ProtocolErrorOccurred,
    WatchdogAnswered,
    WatchdogSuspect,
)
from .peer import DiameterPeer, PeerState, Role
from .s13 import EcaBuilder, build_ecr

__all__ = [
    "APP_RELAY",
    "APP_S13",
    "VENDOR_3GPP",
    "Avp",
    "AvpType",
    "CapabilitiesExchanged",
    "CloseReason",
    "Command",
    "ConnectionClosed",
    "DiameterPeer",
    "DisconnectCause",
    "DisconnectRequested",
    "EcaBuilder",
    "EquipmentCheckAnswered",
    "EquipmentCheckRequested",
    "EquipmentStatus",
    "Event",
    "LocalProtocolError",
    "Message",
    "PeerState",
    "ProtocolError",
    "ProtocolErrorOccurred",
    "RemoteProtocolError",
    "ResultCode",
    "Role",
    "WatchdogAnswered",
    "WatchdogSuspect",
    "build_ecr",
    "decode_message",
    "encode_avp",
    "encode_message",
]
