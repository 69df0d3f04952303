"""Events the :class:`~protocols.diameter.peer.DiameterPeer` core reports (facts, past tense)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .codec import Message

__all__ = [
    "CapabilitiesExchanged",
    "CloseReason",
    "ConnectionClosed",
    "DisconnectRequested",
    "EquipmentCheckAnswered",
    "EquipmentCheckRequested",
    "Event",
    "ProtocolErrorOccurred",
    "WatchdogAnswered",
    "WatchdogSuspect",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base class of every Diameter peer event."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CapabilitiesExchanged(Event):
    """CER/CEA succeeded (RFC 6733 §5.3): the peer is OPEN."""

    peer_host: str
    peer_realm: str
    product_name: str | None
    application_ids: tuple[int, ...]
    """The applications the peer advertised (Auth/Acct/Vendor-Specific, 0xFFFFFFFF for relays)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EquipmentCheckRequested(Event):
    """An ECR (TS 29.272 §7.2.19) arrived; answer it with ``DiameterPeer.send_eca``."""

    hop_by_hop: int
    end_to_end: int
    flags: int
    session_id: str
    origin_host: str
    origin_realm: str
    destination_realm: str
    destination_host: str | None
    imei: str | None
    """IMEI AVP digits as received (14-16 digits); None when only a 3GPP2-MEID was sent."""
    software_version: str | None
    meid: bytes | None
    imsi: str | None
    """User-Name (the IMSI, TS 29.272 §7.2.19)."""
    session_id_avp: bytes = field(repr=False)
    """The Session-Id AVP as encoded on the wire, echoed verbatim in the answer."""
    proxy_info: bytes = field(default=b"", repr=False)
    """The request's Proxy-Info AVPs, encoded, echoed in order in the answer (RFC 6733 §6.2)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EquipmentCheckAnswered(Event):
    """An ECA arrived for a request this peer sent (initiator side, the simulated MME)."""

    hop_by_hop: int
    session_id: str | None
    result_code: int | None
    experimental_result_code: int | None
    equipment_status: int | None
    error: bool
    """The E bit: a protocol error (3xxx) answer."""
    message: Message = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchdogAnswered(Event):
    """A DWA arrived: the peer is alive (RFC 3539 §3.4)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchdogSuspect(Event):
    """No DWA within Tw of our DWR (RFC 3539 SUSPECT); the connection closes after another Tw."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DisconnectRequested(Event):
    """The peer sent DPR (RFC 6733 §5.4); DPA is queued and the connection closes."""

    cause: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolErrorOccurred(Event):
    """Bad input: answered with ``result_code`` (``answered``: the answer is in ``data_to_send()``)
    or not answered (an answer, or anything while waiting for CEA, is dropped). After a fault that
    loses the framing it comes with the ConnectionClosed in ``RemoteProtocolError.events``."""

    result_code: int
    command_code: int
    detail: str
    answered: bool


class CloseReason(StrEnum):
    """Why a :class:`ConnectionClosed` happened: one member per way the core reaches CLOSED.

    The values are the strings adapters put in logs and metric labels (``closed_<value>``), so a
    new member is a new label: add one only with a test that drives the core into it.
    """

    LOCAL = "local"
    """``close()`` before the capabilities exchange, or a second ``close()`` while CLOSING."""
    PEER_DISCONNECTED = "peer-disconnected"
    """The transport ended (``receive_data(b"")``) without a DPR/DPA exchange."""
    TIMEOUT = "timeout"
    """No CER (responder) or CEA (initiator) within Tw of the connection."""
    WATCHDOG = "watchdog"
    """No answer to our DWR within 2·Tw (RFC 3539 §3.4.1: SUSPECT, then DOWN)."""
    DPR = "dpr"
    """We sent DPR and the peer's DPA arrived (RFC 6733 §5.4)."""
    DPA_TIMEOUT = "dpa-timeout"
    """We sent DPR and no DPA came in time."""
    PEER_DPR = "peer-dpr"
    """The peer sent DPR; the DPA is queued (flush it before closing the transport)."""
    CER_INVALID = "cer-invalid"
    """The first CER was malformed (answered 5xxx with Failed-AVP, RFC 6733 §7)."""
    NO_COMMON_APPLICATION = "no-common-application"
    """CER (answered 5010) or CEA without S13 or the relay application (RFC 6733 §5.3)."""
    CEA_INVALID = "cea-invalid"
    """The CEA was unreadable (e.g. no Origin-Host)."""
    CEA_REJECTED = "cea-rejected"
    """The CEA carried a Result-Code other than 2001 (``result_code`` says which)."""
    PROTOCOL_ERROR = "protocol-error"
    """A message other than CER first (answered 3010), any message other than CEA while waiting
    for it, or lost framing (bad version or length, answered 5011/5015)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(Event):
    """The core reached CLOSED: flush ``data_to_send()`` and close the transport."""

    reason: CloseReason
    result_code: int | None = None
    """The Result-Code behind the close, when there is one (5010, 3010, a CEA's code …)."""
