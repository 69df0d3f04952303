"""Captures → messages, sans-IO: link layers, IP, TCP reassembly, SCTP DATA chunks, Diameter and M3UA
framing by header on any port, request/answer pairing and the normalised verdict (for ``eir
replay``); synthesised IPv4/IPv6 + TCP / SCTP packets in pcapng blocks (for ``eir serve --pcap``).

Frames come in with their link type and timestamp: ``simulations.replay`` reads pcap with dpkt and
pcapng with :func:`.pcapng.read_pcapng` (bytes in, frames out: each interface's own link type). IP
fragments are reassembled by :mod:`.ipfrag` before TCP and SCTP.
"""

from ._link import SUPPORTED_LINKTYPES, LinkType
from .decoder import CaptureDecoder, CapturedMessage, CaptureStats
from .exchanges import (
    Exchange,
    ExchangeFinder,
    find_exchanges,
    map_verdict,
    request_kind,
    rewrite_diameter_request,
    rewrite_otid,
    s13_verdict,
)
from .framing import Protocol, StreamFramer, detect

__all__ = [
    "SUPPORTED_LINKTYPES",
    "CaptureDecoder",
    "CaptureStats",
    "CapturedMessage",
    "Exchange",
    "ExchangeFinder",
    "LinkType",
    "Protocol",
    "StreamFramer",
    "detect",
    "find_exchanges",
    "map_verdict",
    "request_kind",
    "rewrite_diameter_request",
    "rewrite_otid",
    "s13_verdict",
]
