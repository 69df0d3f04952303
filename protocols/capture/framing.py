"""Finding Diameter and M3UA messages in a byte stream by their headers, on any port.

Diameter (RFC 6733 §3): version 1, a 24-bit length that is a multiple of 4 and at least 20, no
reserved flag bits, a non-zero command code — and AVPs (§4: length ≥ 8, no reserved flag bits,
vendor bit ⇒ length ≥ 12) that tile the message exactly.
M3UA (RFC 4666 §3.1): version 1, reserved octet 0, a known class/type pair, a 32-bit length that is
a multiple of 4 and at least 8 — and parameters (tag, length ≥ 4, padded) that tile the message.

The header tests alone are ambiguous (a 516-octet Diameter answer without the P bit begins
``01 00 02 04 00 00 01 44``, a well-formed M3UA SCON header of length 324), so the first message of a
stream, and the first after a gap, is accepted only when its whole body tiles; then the stream is
locked to that protocol and split by the length field alone. When both readings tile, the port hint
decides (3868/3869 and ``diameter_ports``: Diameter; 2905 and ``m3ua_ports``: M3UA), else Diameter.
"""

from __future__ import annotations

import struct
from enum import Enum

__all__ = ["MAX_MESSAGE", "Protocol", "StreamFramer", "detect", "diameter_length", "m3ua_length"]

MAX_MESSAGE = 1 << 20
"""Longer messages are taken for garbage (a lab EIR's peers send a few hundred octets)."""
SYNC_MAX = 1 << 16
"""While looking for the first header of a stream (or after a gap), a header announcing more than
this is not waited for: inside an AVP, ``01 07 40 00`` reads as a Diameter header of 475,136 octets."""


class Protocol(Enum):
    DIAMETER = "diameter"
    M3UA = "m3ua"


_M3UA_TYPES: dict[int, frozenset[int]] = {
    0: frozenset({0, 1}),  # MGMT: ERR, NTFY
    1: frozenset({1}),  # Transfer: DATA
    2: frozenset(range(1, 7)),  # SSNM: DUNA … DRST
    3: frozenset(range(1, 7)),  # ASPSM: ASPUP … BEAT ACK
    4: frozenset(range(1, 5)),  # ASPTM: ASPAC … ASPIA ACK
    9: frozenset(range(1, 5)),  # RKM: REG REQ … DEREG RSP
}
_U32 = struct.Struct(">I")
_U16x2 = struct.Struct(">HH")


def diameter_length(buf: bytes | bytearray, pos: int) -> int:
    """The length announced by a plausible Diameter header at ``pos`` (20 octets needed), else 0."""
    w0: int = _U32.unpack_from(buf, pos)[0]
    length = w0 & 0xFFFFFF
    if w0 >> 24 != 1 or length < 20 or length & 3 or length > MAX_MESSAGE:
        return 0
    w1 = _U32.unpack_from(buf, pos + 4)[0]
    flags = w1 >> 24
    if flags & 0x0F or (flags & 0xA0) == 0xA0 or not w1 & 0xFFFFFF:  # reserved bits; E on a request
        return 0
    return length


def _diameter_tiles(buf: bytes | bytearray, pos: int, length: int, partial: bool = False) -> bool:
    """The AVPs tile the message exactly; ``partial``: no inconsistency in what is there so far."""
    p, end = pos + 20, pos + length
    have = len(buf)
    while p < end:
        if partial and have - p < 8:
            return True
        if end - p < 8:
            return False
        w = _U32.unpack_from(buf, p + 4)[0]
        alen = w & 0xFFFFFF
        flags = w >> 24
        if alen < (12 if flags & 0x80 else 8) or flags & 0x1F:
            return False
        p += (alen + 3) & ~3
    # The last AVP's padding may be absent when the message length counts it exactly.
    return p == end


def m3ua_length(buf: bytes | bytearray, pos: int) -> int:
    """The length announced by a plausible M3UA common header at ``pos`` (8 octets needed), else 0."""
    if buf[pos] != 1 or buf[pos + 1] != 0:
        return 0
    types = _M3UA_TYPES.get(buf[pos + 2])
    if types is None or buf[pos + 3] not in types:
        return 0
    length: int = _U32.unpack_from(buf, pos + 4)[0]
    if length < 8 or length & 3 or length > MAX_MESSAGE:
        return 0
    return length


def _m3ua_tiles(buf: bytes | bytearray, pos: int, length: int, partial: bool = False) -> bool:
    p, end = pos + 8, pos + length
    have = len(buf)
    while p < end:
        if partial and have - p < 4:
            return True
        if end - p < 4:
            return False
        _tag, plen = _U16x2.unpack_from(buf, p)
        if plen < 4:
            return False
        p += (plen + 3) & ~3
    return p == end


def detect(
    buf: bytes | bytearray, pos: int = 0, hint: Protocol | None = None
) -> tuple[Protocol | None, int, bool]:
    """What starts at ``pos``: (protocol, length, complete). ``(None, 0, False)`` when neither header
    is plausible; ``complete`` is False while the body is not all in ``buf`` yet (then the protocol is
    the header's best guess)."""
    avail = len(buf) - pos
    d = diameter_length(buf, pos) if avail >= 20 else 0
    m = m3ua_length(buf, pos) if avail >= 8 else 0
    if not d and not m:
        return None, 0, False
    d_ok = bool(d) and d <= avail and _diameter_tiles(buf, pos, d)
    m_ok = bool(m) and m <= avail and _m3ua_tiles(buf, pos, m)
    if d_ok and m_ok:
        return (hint or Protocol.DIAMETER), (m if hint is Protocol.M3UA else d), True
    if d_ok:
        return Protocol.DIAMETER, d, True
    if m_ok:
        return Protocol.M3UA, m, True
    # Not complete, or a body that does not tile (garbage that looks like a header). Waiting for the
    # rest is worth it only when what is there tiles so far and the length is a signalling one.
    d_wait = bool(d) and avail < d <= SYNC_MAX and _diameter_tiles(buf, pos, d, partial=True)
    m_wait = bool(m) and avail < m <= SYNC_MAX and _m3ua_tiles(buf, pos, m, partial=True)
    if d_wait and (hint is not Protocol.M3UA or not m_wait):
        return Protocol.DIAMETER, d, False
    if m_wait:
        return Protocol.M3UA, m, False
    return None, 0, False


class StreamFramer:
    """One direction of a byte stream → whole messages. ``feed`` returns (protocol, message) pairs;
    ``gap()`` tells it bytes were lost (it then looks for the next header)."""

    __slots__ = ("buf", "garbage", "hint", "max_buffer", "protocol", "synced")

    def __init__(self, hint: Protocol | None = None, max_buffer: int = 4 * MAX_MESSAGE) -> None:
        self.hint = hint
        self.protocol: Protocol | None = None
        """Locked after the first message that tiled; kept across gaps."""
        self.synced = False
        self.buf = bytearray()
        self.max_buffer = max_buffer
        self.garbage = 0
        """Octets skipped while looking for a header."""

    def gap(self) -> None:
        self.garbage += len(self.buf)
        self.buf.clear()
        self.synced = False

    def feed(self, data: bytes) -> list[tuple[Protocol, bytes]]:
        buf = self.buf
        buf += data
        out: list[tuple[Protocol, bytes]] = []
        pos = 0
        n = len(buf)
        while True:
            if self.synced:
                proto = self.protocol
                if proto is Protocol.DIAMETER:
                    if n - pos < 20:
                        break
                    length = diameter_length(buf, pos)
                else:
                    if n - pos < 8:
                        break
                    length = m3ua_length(buf, pos)
                if not length:
                    self.synced = False  # garbage in a locked stream: look for the next header
                    continue
                if n - pos < length:
                    break
                assert proto is not None
                out.append((proto, bytes(buf[pos : pos + length])))
                pos += length
                continue
            pos, found = self._sync(pos)
            if not found:
                break
        if pos:
            del buf[:pos]
        if len(buf) > self.max_buffer:  # a plausible header announcing more than we keep
            self.gap()
        return out

    def _sync(self, pos: int) -> tuple[int, bool]:
        """Look for a complete, tiling message from ``pos``; skip garbage before it."""
        buf = self.buf
        n = len(buf)
        hint = self.protocol or self.hint
        while n - pos >= 8:
            if buf[pos] == 1 and n - pos < 28:
                return pos, False  # a version octet: judge it when a header and an AVP are there
            proto, _length, complete = detect(buf, pos, hint)
            if proto is not None and (self.protocol is None or proto is self.protocol):
                if not complete:
                    return pos, False  # wait for the rest of the body
                self.protocol = proto
                self.synced = True
                return pos, True
            pos += 1
            self.garbage += 1
        return pos, False
