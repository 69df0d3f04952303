"""IPv4 (RFC 791) and IPv6 (RFC 8200 §4.5) fragment reassembly for capture reading — sans-IO, bounded.

A fragment goes in with its capture timestamp; the whole datagram's :class:`~._link.IpPacket` comes
out when its last missing piece arrives. Datagrams are keyed as the stacks key them: IPv4 by (source,
destination, protocol, identification), IPv6 by (source, destination, identification).

Bounds (a capture is untrusted input):

* at most ``max_datagrams`` datagrams held at once — beyond that the oldest is dropped;
* a datagram not complete ``timeout`` seconds *of capture time* after its first fragment is dropped
  (Linux's ``ipfrag_time`` default, 30 s);
* at most 65,535 octets of payload per datagram (an IP datagram cannot be longer), in at most 256
  fragments.

Overlaps are handled as RFC 5722 (with erratum 3089) and Linux do: a fragment that repeats one
already held exactly (same offset, same length) is a duplicate and dropped, the datagram kept; any
other overlap discards the whole datagram, and the fragments of it that come later until its
time-out (they would otherwise start a new, never complete, datagram). A non-last fragment whose
length is not a multiple of 8, or pieces past the length the last fragment announced, discard it too.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass

from ._link import IpPacket

__all__ = ["Fragment", "FragmentStats", "IpReassembler", "ip_fragment"]

_U16 = struct.Struct(">H")
_FRAG6 = struct.Struct(">BxHI")
_MAX_DATAGRAM = 65535
_MAX_PIECES = 256
"""Fragments held per datagram: more (of at least 8 octets each) discard it, keeping the overlap
check linear in practice (a real 64 KiB datagram at a 1280-octet MTU has 52)."""


@dataclass(frozen=True, slots=True)
class Fragment:
    key: tuple[object, ...]
    src: bytes
    dst: bytes
    proto: int
    """IPv4: the header's protocol; IPv6: the fragment header's next header."""
    offset: int
    more: bool
    payload: bytes


def ip_fragment(datagram: bytes) -> Fragment | None:
    """The fragment in ``datagram`` (an IPv4 header with MF or an offset, an IPv6 fragment header),
    else None (not a fragment, or truncated)."""
    if len(datagram) < 20:
        return None
    version = datagram[0] >> 4
    if version == 4:
        ihl = (datagram[0] & 0x0F) * 4
        frag = _U16.unpack_from(datagram, 6)[0]
        if ihl < 20 or len(datagram) < ihl or not frag & 0x3FFF:
            return None
        total = _U16.unpack_from(datagram, 2)[0]
        if total < ihl or total > len(datagram):
            total = len(datagram)
        src, dst, proto = datagram[12:16], datagram[16:20], datagram[9]
        ident = _U16.unpack_from(datagram, 4)[0]
        return Fragment(
            (4, src, dst, proto, ident),
            src,
            dst,
            proto,
            (frag & 0x1FFF) * 8,
            bool(frag & 0x2000),
            datagram[ihl:total],
        )
    if version == 6 and len(datagram) >= 40:
        plen = _U16.unpack_from(datagram, 4)[0]
        end = min(40 + plen, len(datagram)) if plen else len(datagram)
        nh, off = datagram[6], 40
        while nh in (0, 43, 60):
            if end < off + 8:
                return None
            nh, off = datagram[off], off + (datagram[off + 1] + 1) * 8
        if nh != 44 or end < off + 8:
            return None
        nxt, offflags, ident = _FRAG6.unpack_from(datagram, off)
        src, dst = datagram[8:24], datagram[24:40]
        return Fragment(
            (6, src, dst, ident),
            src,
            dst,
            nxt,
            offflags & 0xFFF8,
            bool(offflags & 1),
            datagram[off + 8 : end],
        )
    return None


@dataclass(slots=True)
class FragmentStats:
    fragments: int = 0
    reassembled: int = 0
    duplicates: int = 0
    overlaps: int = 0
    """Datagrams discarded because two of their fragments overlapped (or were inconsistent)."""
    timed_out: int = 0
    evicted: int = 0
    """Datagrams dropped because ``max_datagrams`` were held."""
    dropped_fragments: int = 0
    """Fragments thrown away with a discarded datagram, or arriving for one."""


class _Datagram:
    __slots__ = ("dead", "first_ts", "pieces", "proto", "size", "total")

    def __init__(self, ts: float) -> None:
        self.first_ts = ts
        self.pieces: dict[int, bytes] = {}
        self.size = 0
        self.total: int | None = None
        self.proto: int | None = None
        self.dead = False


class IpReassembler:
    """Fragments in, whole datagrams out (see the module docstring)."""

    def __init__(self, *, max_datagrams: int = 4096, timeout: float = 30.0) -> None:
        self.max_datagrams = max_datagrams
        self.timeout = timeout
        self.stats = FragmentStats()
        self._held: OrderedDict[tuple[object, ...], _Datagram] = OrderedDict()

    def __len__(self) -> int:
        return len(self._held)

    def _expire(self, now: float) -> None:
        held = self._held
        while held:
            key, d = next(iter(held.items()))
            if now - d.first_ts <= self.timeout:
                break
            del held[key]
            if not d.dead:
                self.stats.timed_out += 1
                self.stats.dropped_fragments += len(d.pieces)

    def _discard(self, d: _Datagram) -> None:
        self.stats.overlaps += 1
        self.stats.dropped_fragments += len(d.pieces) + 1
        d.dead = True
        d.pieces.clear()
        d.size = 0

    def receive(self, frag: Fragment, ts: float) -> IpPacket | None:
        st = self.stats
        st.fragments += 1
        self._expire(ts)
        d = self._held.get(frag.key)
        if d is None:
            d = _Datagram(ts)
            self._held[frag.key] = d
            if len(self._held) > self.max_datagrams:
                _, old = self._held.popitem(last=False)
                if not old.dead:
                    st.evicted += 1
                    st.dropped_fragments += len(old.pieces)
        elif d.dead:
            st.dropped_fragments += 1
            return None
        start, data = frag.offset, frag.payload
        end = start + len(data)
        if (frag.more and (len(data) & 7 or not data)) or end > _MAX_DATAGRAM or len(d.pieces) >= _MAX_PIECES:
            self._discard(d)
            return None
        if not frag.more:
            if d.total is not None and d.total != end:
                self._discard(d)
                return None
            d.total = end
        if start == 0:
            d.proto = frag.proto
        if d.total is not None and (end > d.total or any(s + len(p) > d.total for s, p in d.pieces.items())):
            self._discard(d)
            return None
        for s, p in d.pieces.items():
            e = s + len(p)
            if s < end and start < e:  # they overlap
                if s == start and e == end:
                    st.duplicates += 1
                    return None
                self._discard(d)
                return None
        d.pieces[start] = data
        d.size += len(data)
        if d.total is None or d.size != d.total or d.proto is None:
            return None
        # No overlaps and the sizes add up: the pieces tile [0, total).
        del self._held[frag.key]
        st.reassembled += 1
        payload = b"".join(d.pieces[s] for s in sorted(d.pieces))
        proto = d.proto
        if frag.key[0] == 6:  # extension headers after the fragment header (destination options)
            off = 0
            while proto in (0, 43, 60):
                if len(payload) < off + 8:
                    return None
                proto, off = payload[off], off + (payload[off + 1] + 1) * 8
            payload = payload[off:]
        return IpPacket(frag.src, frag.dst, proto, payload)
