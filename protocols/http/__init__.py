"""HTTP/2 (prior knowledge) and HTTP/1.1 server connections on one port, sans-IO: the layer under
the SBI interfaces (N5g-eir) and the admin API."""

from __future__ import annotations

from protocols.http.server import (
    ConnectionClosed,
    HttpLimits,
    HttpServerConnection,
    HttpVersion,
    ProtocolErrorOccurred,
    RequestReceived,
    StreamReset,
)

__all__ = [
    "ConnectionClosed",
    "HttpLimits",
    "HttpServerConnection",
    "HttpVersion",
    "ProtocolErrorOccurred",
    "RequestReceived",
    "StreamReset",
]
