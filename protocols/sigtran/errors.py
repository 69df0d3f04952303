"""The one exception hierarchy of the SIGTRAN stack (M3UA, SCCP, TCAP, MAP).

::

    SigtranError
    └── ProtocolError              carries the wire hint, where the layer has one
        ├── RemoteProtocolError    the peer misbehaved: every decode error
        │   ├── m3ua.M3uaDecodeError       (hint: the RFC 4666 §3.8.1 ERR Error Code)
        │   ├── sccp.SccpDecodeError       (no hint: a bad SCCP message is discarded)
        │   ├── _ber.BerError              (no hint: the TCAP / MAP layer above decides)
        │   ├── tcap.TcapError
        │   │   └── tcap.TransactionPortionError  (hint: the Q.773 P-Abort cause)
        │   └── map_checkimei.MapParameterError    (hint: the Q.773 Reject problem)
        └── LocalProtocolError     the caller misused a core (e.g. DATA before ASP-ACTIVE)

The cores never let a :class:`RemoteProtocolError` out of ``receive_data`` / ``receive_tcap``: bad
input is answered on the wire (ERR, UDTS, Abort, Reject) and reported as an event. The codecs
(``decode_message``, ``decode_tcap``, ``decode_check_imei_arg`` …) raise them to their caller.
A :class:`LocalProtocolError` is raised, never asserted, for misuse (``python -O`` drops asserts).

None of these is a ``ValueError``: no caller catches one as such (a ``ValueError`` still means a bad
argument value to an encoder, as in the standard library).
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError", "SigtranError"]


class SigtranError(Exception):
    """Base of every error the SIGTRAN cores and codecs raise."""


class ProtocolError(SigtranError):
    """A protocol rule was broken. ``wire_hint`` is what the detecting layer answers with, when it
    answers at all: an M3UA ERR Error Code, a TCAP P-Abort cause, a Reject problem (an ``IntEnum``
    member of that layer), or None."""

    def __init__(self, message: str, *, wire_hint: int | None = None) -> None:
        super().__init__(message)
        self.wire_hint = wire_hint


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow (every decode error is one)."""


class LocalProtocolError(ProtocolError):
    """The caller used a core wrongly (a command in a state that does not allow it)."""
