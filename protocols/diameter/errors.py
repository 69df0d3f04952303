"""Errors of the Diameter core (RFC 6733 §7).

A :class:`ProtocolError` carries the wire hint — the Result-Code to answer with and, where RFC 6733
§7.5 asks for one, the Failed-AVP content — so that the code that detects a fault is the code that
decides how it looks on the wire.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base of every error the Diameter core raises.

    ``result_code``: the RFC 6733 §7.1 code to answer with; ``failed_avp``: the encoded AVP(s) to put
    inside Failed-AVP (§7.5), or ``None``; ``error_message``: human text for Error-Message (§7.3).
    """

    def __init__(self, message: str, *, result_code: int = 5012, failed_avp: bytes | None = None) -> None:
        super().__init__(message)
        self.result_code = result_code
        self.failed_avp = failed_avp
        self.error_message = message
        self.events: list[object] = []
        """Events the core produced before it raised (set by ``DiameterPeer.receive_data``)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class LocalProtocolError(ProtocolError):
    """The caller misused the core (e.g. sent a request before the capabilities exchange)."""
