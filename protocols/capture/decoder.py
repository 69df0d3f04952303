"""Captured frames → Diameter and M3UA messages: TCP reassembly per direction, SCTP DATA chunks.

:class:`CaptureDecoder` is sans-IO: the caller reads the capture file and hands in each frame with
its link type and timestamp; ``receive_frame`` returns the whole messages that frame completed.

IP fragments (IPv4 and IPv6) are reassembled first, bounded (:mod:`.ipfrag`: a cap on datagrams
held, a time-out in capture time, overlapping fragments discard the datagram as RFC 5722 says).

TCP (RFC 9293): per direction, bytes are delivered in sequence order. A segment that repeats bytes
already delivered (a retransmission, or one that overlaps) is trimmed; a segment ahead of the next
expected sequence number waits (bounded by ``max_pending`` octets per direction); when more than
that waits, the hole is declared lost, the framer is told of the gap and looks for the next header.
A capture that starts in the middle of a connection begins at the first segment seen. A SYN on a
4-tuple that already carried data starts a new connection (port reuse).

SCTP (RFC 9260): every DATA chunk of a packet (several per packet) is one user message; fragments
(B/E flags) are joined per stream; a TSN seen before in that direction is a retransmission and
dropped. PPID 46 is Diameter and 3 is M3UA; other PPIDs (0 included) are identified by header.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import OrderedDict
from dataclasses import dataclass, field

from ._link import ip_payload, link_payload
from .framing import Protocol, StreamFramer, detect, diameter_length, m3ua_length
from .ipfrag import IpReassembler, ip_fragment

__all__ = ["CaptureDecoder", "CaptureStats", "CapturedMessage"]

_TCP = struct.Struct(">HHIIBB")
_SCTP = struct.Struct(">HH")
_CHUNK = struct.Struct(">BBH")
_DATA = struct.Struct(">IHHI")
_SEQ_MOD = 1 << 32
_HALF = 1 << 31

PPID_M3UA = 3
PPID_DIAMETER = 46

DIAMETER_PORTS = frozenset({3868, 3869})
M3UA_PORTS = frozenset({2905})


@dataclass(slots=True)
class CapturedMessage:
    """One whole message found in the capture. (Not frozen: a frozen dataclass costs several µs per
    instance to build, a third of the whole per-message budget; treat it as read-only.)"""

    index: int
    """Position in the capture (0-based, over all messages)."""
    ts: float
    protocol: Protocol
    transport: str
    """``tcp`` or ``sctp``."""
    src: str
    sport: int
    dst: str
    dport: int
    connection: int
    """Both directions of one TCP connection / SCTP association share it."""
    data: bytes


@dataclass(slots=True)
class CaptureStats:
    frames: int = 0
    not_ip: int = 0
    ip_fragments: int = 0
    ip_reassembled: int = 0
    """Datagrams made whole from ``ip_fragments``."""
    ip_fragments_dropped: int = 0
    """Fragments of datagrams never made whole: overlaps (RFC 5722), time-outs, the cap on held ones."""
    tcp_segments: int = 0
    retransmitted: int = 0
    out_of_order: int = 0
    gaps: int = 0
    sctp_chunks: int = 0
    garbage_octets: int = 0
    messages: int = 0
    linktypes: set[int] = field(default_factory=set)


class _Direction:
    __slots__ = (
        "conn",
        "dport",
        "dst",
        "framer",
        "next_seq",
        "pending",
        "pending_bytes",
        "seen_data",
        "sport",
        "src",
    )

    def __init__(self, conn: int, src: str, sport: int, dst: str, dport: int, hint: Protocol | None) -> None:
        self.conn = conn
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        self.framer = StreamFramer(hint)
        self.next_seq: int | None = None
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.seen_data = False


class _SctpDirection:
    __slots__ = ("conn", "dport", "dst", "fragments", "hint", "seen", "sport", "src")

    def __init__(self, conn: int, src: str, sport: int, dst: str, dport: int, hint: Protocol | None) -> None:
        self.conn = conn
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        self.hint = hint
        self.seen: OrderedDict[int, None] = OrderedDict()
        self.fragments: dict[int, list[bytes]] = {}


def _addr(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


class CaptureDecoder:
    """Frames in, messages out (see the module docstring)."""

    def __init__(
        self,
        *,
        diameter_ports: frozenset[int] | set[int] = frozenset(),
        m3ua_ports: frozenset[int] | set[int] = frozenset(),
        max_pending: int = 1 << 20,
        max_flows: int = 100_000,
        max_tsns: int = 4096,
        max_ip_datagrams: int = 4096,
        ip_timeout: float = 30.0,
    ) -> None:
        self.diameter_ports = DIAMETER_PORTS | frozenset(diameter_ports)
        self.m3ua_ports = (M3UA_PORTS - frozenset(diameter_ports)) | frozenset(m3ua_ports)
        self.diameter_ports -= frozenset(m3ua_ports)
        self.max_pending = max_pending
        self.max_flows = max_flows
        self.max_tsns = max_tsns
        self.stats = CaptureStats()
        self.fragments = IpReassembler(max_datagrams=max_ip_datagrams, timeout=ip_timeout)
        self._tcp: OrderedDict[tuple[bytes, int, bytes, int], _Direction] = OrderedDict()
        self._sctp: OrderedDict[tuple[bytes, int, bytes, int], _SctpDirection] = OrderedDict()
        self._next_conn = 0
        self._index = 0

    # -- input ------------------------------------------------------------------------------------

    def receive_frame(self, linktype: int, ts: float, frame: bytes) -> list[CapturedMessage]:
        st = self.stats
        st.frames += 1
        datagram = link_payload(linktype, frame)
        pkt = ip_payload(datagram) if datagram is not None else None
        if pkt is None:
            frag = ip_fragment(datagram) if datagram is not None else None
            if frag is None:
                st.not_ip += 1
                return []
            fs = self.fragments.stats
            pkt = self.fragments.receive(frag, ts)
            st.ip_fragments, st.ip_reassembled = fs.fragments, fs.reassembled
            st.ip_fragments_dropped = fs.dropped_fragments
            if pkt is None:
                return []
        if pkt.proto == 6:
            return self._tcp_segment(ts, pkt.src, pkt.dst, pkt.payload)
        if pkt.proto == 132:
            return self._sctp_packet(ts, pkt.src, pkt.dst, pkt.payload)
        return []

    def _hint(self, sport: int, dport: int) -> Protocol | None:
        if dport in self.diameter_ports or sport in self.diameter_ports:
            return Protocol.DIAMETER
        if dport in self.m3ua_ports or sport in self.m3ua_ports:
            return Protocol.M3UA
        return None

    # -- TCP --------------------------------------------------------------------------------------

    def _tcp_segment(self, ts: float, src: bytes, dst: bytes, seg: bytes) -> list[CapturedMessage]:
        if len(seg) < 20:
            return []
        sport, dport, seq, _ack, off, flags = _TCP.unpack_from(seg, 0)
        hlen = (off >> 4) * 4
        if hlen < 20 or hlen > len(seg):
            return []
        self.stats.tcp_segments += 1
        payload = seg[hlen:]
        syn = flags & 0x02
        key = (src, sport, dst, dport)
        d = self._tcp.get(key)
        if d is None or (syn and not flags & 0x10 and d.seen_data):
            rkey = (dst, dport, src, sport)
            rev = self._tcp.get(rkey)
            if d is None and rev is not None:
                conn = rev.conn
            else:  # a new connection (or a SYN reusing the 4-tuple): its answers belong to it too
                conn = self._next_conn
                self._next_conn += 1
                if d is not None:
                    self._tcp.pop(rkey, None)
            d = _Direction(conn, _addr(src), sport, _addr(dst), dport, self._hint(sport, dport))
            self._tcp[key] = d
            if len(self._tcp) > self.max_flows:
                self._tcp.popitem(last=False)
        if syn:
            d.next_seq = (seq + 1) % _SEQ_MOD
            seq = d.next_seq
        if not payload:
            return []
        d.seen_data = True
        if d.next_seq is None:
            d.next_seq = seq
        delta = (seq - d.next_seq) % _SEQ_MOD
        if delta >= _HALF:  # starts before next_seq: retransmission or overlap
            delta -= _SEQ_MOD
            if len(payload) <= -delta:
                self.stats.retransmitted += 1
                return []
            payload = payload[-delta:]
            delta = 0
        if delta > 0:
            self.stats.out_of_order += 1
            prev = d.pending.get(seq)
            if prev is None or len(prev) < len(payload):
                d.pending[seq] = payload
                d.pending_bytes += len(payload) - (len(prev) if prev else 0)
            if d.pending_bytes > self.max_pending:
                return self._skip_gap(ts, d)
            return []
        return self._deliver(ts, d, payload)

    def _deliver(self, ts: float, d: _Direction, payload: bytes) -> list[CapturedMessage]:
        assert d.next_seq is not None
        d.next_seq = (d.next_seq + len(payload)) % _SEQ_MOD
        out = self._emit(ts, d, d.framer.feed(payload))
        if d.pending:
            out.extend(self._drain(ts, d))
        return out

    def _drain(self, ts: float, d: _Direction) -> list[CapturedMessage]:
        out: list[CapturedMessage] = []
        progress = True
        while progress and d.pending:
            progress = False
            assert d.next_seq is not None
            for seq in list(d.pending):
                delta = (seq - d.next_seq) % _SEQ_MOD
                if delta == 0 or delta >= _HALF:
                    data = d.pending.pop(seq)
                    d.pending_bytes -= len(data)
                    if delta:  # overlaps what was delivered
                        cut = _SEQ_MOD - delta
                        if len(data) <= cut:
                            continue
                        data = data[cut:]
                    d.next_seq = (d.next_seq + len(data)) % _SEQ_MOD
                    out.extend(self._emit(ts, d, d.framer.feed(data)))
                    progress = True
                    break
        return out

    def _skip_gap(self, ts: float, d: _Direction) -> list[CapturedMessage]:
        """The hole before the pending segments will not be filled: lose it and go on."""
        assert d.next_seq is not None
        base = d.next_seq
        first = min(d.pending, key=lambda s: (s - base) % _SEQ_MOD)
        self.stats.gaps += 1
        self.stats.garbage_octets += len(d.framer.buf)
        d.framer.gap()
        d.next_seq = first
        return self._drain(ts, d)

    def _emit(
        self, ts: float, d: _Direction | _SctpDirection, found: list[tuple[Protocol, bytes]]
    ) -> list[CapturedMessage]:
        if not found:
            return []
        out = []
        transport = "tcp" if type(d) is _Direction else "sctp"
        for proto, data in found:
            out.append(
                CapturedMessage(
                    index=self._index,
                    ts=ts,
                    protocol=proto,
                    transport=transport,
                    src=d.src,
                    sport=d.sport,
                    dst=d.dst,
                    dport=d.dport,
                    connection=d.conn,
                    data=data,
                )
            )
            self._index += 1
        self.stats.messages += len(out)
        return out

    def finish(self) -> list[CapturedMessage]:
        """End of the capture: deliver what waits behind holes (they will not be filled now)."""
        out: list[CapturedMessage] = []
        for d in self._tcp.values():
            while d.pending:
                out.extend(self._skip_gap(0.0, d))
            self.stats.garbage_octets += len(d.framer.buf) + d.framer.garbage
            d.framer.garbage = 0
            d.framer.buf.clear()
        return out

    # -- SCTP -------------------------------------------------------------------------------------

    def _sctp_packet(self, ts: float, src: bytes, dst: bytes, pkt: bytes) -> list[CapturedMessage]:
        if len(pkt) < 12:
            return []
        sport, dport = _SCTP.unpack_from(pkt, 0)
        key = (src, sport, dst, dport)
        d = self._sctp.get(key)
        out: list[CapturedMessage] = []
        pos, n = 12, len(pkt)
        while n - pos >= 4:
            ctype, cflags, clen = _CHUNK.unpack_from(pkt, pos)
            if clen < 4 or pos + clen > n:
                break
            if ctype == 0 and clen >= 16:
                self.stats.sctp_chunks += 1
                if d is None:
                    rev = self._sctp.get((dst, dport, src, sport))
                    if rev is not None:
                        conn = rev.conn
                    else:
                        conn = self._next_conn
                        self._next_conn += 1
                    d = _SctpDirection(conn, _addr(src), sport, _addr(dst), dport, self._hint(sport, dport))
                    self._sctp[key] = d
                    if len(self._sctp) > self.max_flows:
                        self._sctp.popitem(last=False)
                tsn, sid, _ssn, ppid = _DATA.unpack_from(pkt, pos + 4)
                data = pkt[pos + 16 : pos + clen]
                out.extend(self._sctp_data(ts, d, tsn, sid, ppid, cflags, data))
            pos += (clen + 3) & ~3
        return out

    def _sctp_data(
        self, ts: float, d: _SctpDirection, tsn: int, sid: int, ppid: int, flags: int, data: bytes
    ) -> list[CapturedMessage]:
        if tsn in d.seen:
            self.stats.retransmitted += 1
            return []
        d.seen[tsn] = None
        if len(d.seen) > self.max_tsns:
            d.seen.popitem(last=False)
        begin, end = flags & 0x02, flags & 0x01
        if not (begin and end):
            if begin:
                d.fragments[sid] = [data]
                return []
            parts = d.fragments.get(sid)
            if parts is None:
                self.stats.gaps += 1
                return []
            parts.append(data)
            if sum(map(len, parts)) > (1 << 20):
                del d.fragments[sid]
                self.stats.gaps += 1
                return []
            if not end:
                return []
            data = b"".join(d.fragments.pop(sid))
        # The PPID names the protocol, but the message must still look like one (a lab's PPIDs lie).
        proto: Protocol | None = None
        if ppid == PPID_DIAMETER and len(data) >= 20 and diameter_length(data, 0) == len(data):
            proto = Protocol.DIAMETER
        elif ppid == PPID_M3UA and len(data) >= 8 and m3ua_length(data, 0) == len(data):
            proto = Protocol.M3UA
        else:
            proto, length, complete = detect(data, 0, d.hint)
            if not complete or length != len(data):
                proto = None
        if proto is None:
            self.stats.garbage_octets += len(data)
            return []
        return self._emit(ts, d, [(proto, data)])
