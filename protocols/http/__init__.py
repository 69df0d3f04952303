"""HTTP/2 (prior knowledge) and HTTP/1.1 server connections on one port, sans-IO: the layer under
the SBI interfaces (N5g-eir) and the admin API."""

from __future__ import annotations

from protocols.http.server import (
    BodyAborted,
    BodyEnded,
    BodyReceived,
    ConnectionClosed,
    HttpLimits,
    HttpServerConnection,
    HttpVersion,
    ProtocolErrorOccurred,
    RequestReceived,
    RequestStarted,
    StreamReset,
)

__all__ = [
    "BodyAborted",
    "BodyEnded",
    "BodyReceived",
    "ConnectionClosed",
    "HttpLimits",
    "HttpServerConnection",
    "HttpVersion",
    "ProtocolErrorOccurred",
    "RequestReceived",
    "RequestStarted",
    "StreamReset",
]
