"""Writing pcapng (draft-ietf-opsawg-pcapng) with synthesised IP/TCP and IP/SCTP packets, and reading
pcapng with every interface's own link type — sans-IO.

Reading (:func:`read_pcapng`, bytes or a memory map in, ``(link type, timestamp, frame)`` out): each
Interface Description Block's link type, ``if_tsresol`` and ``if_tsoffset`` apply to the packets that
name its interface — a file merged by mergecap from an Ethernet and a Linux-cooked capture has two.
A new Section Header Block starts a new list of interfaces (and may change the byte order). Enhanced,
Simple and the obsolete Packet Blocks carry packets; other blocks are skipped.

What ``eir serve --pcap`` records is what the EIR's sockets carried, not packets: the kernel's
headers are not visible to an asyncio protocol. So each connection gets made-up but consistent
headers that Wireshark dissects as the real thing:

* Diameter over TCP: a three-way handshake when the connection opens, every chunk of bytes as one
  segment (several if larger than fits an IP datagram) with sequence and acknowledgement numbers that
  follow the bytes, FIN/ACK both ways when it closes. Checksums are computed (RFC 1071).
* M3UA: one SCTP DATA chunk per M3UA message, PPID 3 (RFC 4666 §1.4.7), stream 0, TSNs in order,
  CRC32c checksum (RFC 9260 Appendix A) — Wireshark's M3UA dissector is registered on that PPID,
  whatever the port and even when the EIR actually spoke M3UA over TCP.

Link type RAW (101): the packet starts at the IPv4 or IPv6 header.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from typing import Any

__all__ = [
    "LINKTYPE_RAW",
    "PcapngError",
    "SctpSynth",
    "TcpSynth",
    "crc32c",
    "enhanced_packet_block",
    "interface_description_block",
    "pcapng_linktypes",
    "read_pcapng",
    "section_header_block",
]

LINKTYPE_RAW = 101
_MAX_SEGMENT = 65000  # fits an IPv4 datagram with headers


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def section_header_block(application: str = "eir-emulator") -> bytes:
    opts = _option(4, application.encode()) + _option(0, b"")  # shb_userappl, opt_endofopt
    return _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opts)


def interface_description_block(linktype: int = LINKTYPE_RAW, name: str = "eir") -> bytes:
    opts = _option(2, name.encode()) + _option(9, b"\x06") + _option(0, b"")  # if_name, if_tsresol µs
    return _block(0x00000001, struct.pack("<HHI", linktype, 0, 0) + opts)


def enhanced_packet_block(ts: float, packet: bytes, interface: int = 0) -> bytes:
    us = int(ts * 1_000_000)
    n = len(packet)
    return _block(0x00000006, struct.pack("<IIIII", interface, us >> 32, us & 0xFFFFFFFF, n, n) + packet)


# --- reading --------------------------------------------------------------------------------------

_SHB, _IDB, _PB, _SPB, _EPB = 0x0A0D0D0A, 1, 2, 3, 6


class PcapngError(ValueError):
    """A block that cannot be read (the message says which and why)."""


def _interface(data: Any, pos: int, blen: int, e: str) -> tuple[int, int, float, float]:
    """(link type, snaplen, seconds per tick, offset) of the IDB at ``pos``."""
    linktype, _r, snaplen = struct.unpack_from(e + "HHI", data, pos + 8)
    per_tick, offset = 1e-6, 0.0
    p, end = pos + 16, pos + blen - 4
    while end - p >= 4:
        code, olen = struct.unpack_from(e + "HH", data, p)
        if code == 0:
            break
        if p + 4 + olen > end:
            break
        if code == 9 and olen >= 1:  # if_tsresol: 10^-v, or 2^-v with the top bit
            v = data[p + 4]
            per_tick = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0**-v
        elif code == 14 and olen == 8:  # if_tsoffset: seconds added to every timestamp
            offset = float(struct.unpack_from(e + "q", data, p + 4)[0])
        p += 4 + ((olen + 3) & ~3)
    return linktype, snaplen, per_tick, offset


def _byte_order(data: Any, pos: int) -> str:
    bom = bytes(data[pos + 8 : pos + 12])
    if bom == b"\x4d\x3c\x2b\x1a":
        return "<"
    if bom == b"\x1a\x2b\x3c\x4d":
        return ">"
    raise PcapngError("corrupt section header (byte-order magic)")


def read_pcapng(data: Any) -> Iterator[tuple[int, float, bytes]]:
    """(link type, timestamp, frame) of every packet of a pcapng file held in ``data`` (bytes or a
    memory map); :class:`PcapngError` for a block that cannot be read."""
    n = len(data)
    pos = 0
    e = "<"
    ifaces: list[tuple[int, int, float, float]] = []
    u32 = struct.Struct("<I")
    while n - pos >= 12:
        if bytes(data[pos : pos + 4]) == b"\x0a\x0d\x0d\x0a":
            e = _byte_order(data, pos)
            u32 = struct.Struct(e + "I")
            ifaces = []
        btype = u32.unpack_from(data, pos)[0]
        blen = u32.unpack_from(data, pos + 4)[0]
        if blen < 12 or blen % 4 or pos + blen > n:
            raise PcapngError(f"corrupt block at offset {pos} (length {blen})")
        if btype == _IDB:
            if blen < 20:
                raise PcapngError(f"corrupt interface block at offset {pos}")
            ifaces.append(_interface(data, pos, blen, e))
        elif btype in (_EPB, _PB):
            if blen < 32:
                raise PcapngError(f"corrupt packet block at offset {pos}")
            if btype == _EPB:
                iface, hi, lo, caplen = struct.unpack_from(e + "IIII", data, pos + 8)
            else:
                iface, _drops, hi, lo, caplen = struct.unpack_from(e + "HHIII", data, pos + 8)
            if iface >= len(ifaces):
                raise PcapngError(f"packet block at offset {pos} names interface {iface}, not described")
            if 28 + caplen > blen - 4:
                raise PcapngError(f"corrupt packet block at offset {pos} (captured length {caplen})")
            linktype, _snap, per_tick, offset = ifaces[iface]
            yield linktype, ((hi << 32) | lo) * per_tick + offset, bytes(data[pos + 28 : pos + 28 + caplen])
        elif btype == _SPB:
            if not ifaces:
                raise PcapngError(f"simple packet block at offset {pos} before any interface")
            linktype, snap, _t, _o = ifaces[0]
            origlen = u32.unpack_from(data, pos + 8)[0]
            caplen = min(origlen, blen - 16, snap or origlen)
            yield linktype, 0.0, bytes(data[pos + 12 : pos + 12 + caplen])
        pos += blen


def pcapng_linktypes(data: Any) -> list[int]:
    """The link type of every interface described in the file (all sections), in order."""
    out = []
    n, pos = len(data), 0
    u32 = struct.Struct("<I")
    e = "<"
    while n - pos >= 12:
        if bytes(data[pos : pos + 4]) == b"\x0a\x0d\x0d\x0a":
            e = _byte_order(data, pos)
            u32 = struct.Struct(e + "I")
        btype, blen = u32.unpack_from(data, pos)[0], u32.unpack_from(data, pos + 4)[0]
        if blen < 12 or pos + blen > n:
            break
        if btype == _IDB and blen >= 20:
            out.append(struct.unpack_from(e + "H", data, pos + 8)[0])
        pos += blen
    return out


# --- checksums ------------------------------------------------------------------------------------


def _sum16(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    return sum(struct.unpack(f">{len(data) // 2}H", data))


def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as SCTP uses it."""
    c = 0xFFFFFFFF
    t = _CRC32C
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# --- IP -------------------------------------------------------------------------------------------


class _Ip:
    """IPv4 or IPv6 headers between two fixed addresses."""

    def __init__(self, src: str, dst: str) -> None:
        a, b = ipaddress.ip_address(src.split("%")[0]), ipaddress.ip_address(dst.split("%")[0])
        if a.version != b.version:  # an IPv4-mapped peer on a v6 socket
            a = ipaddress.ip_address(getattr(a, "ipv4_mapped", None) or a)
            b = ipaddress.ip_address(getattr(b, "ipv4_mapped", None) or b)
        self.v6 = a.version == 6 and b.version == 6
        self.src, self.dst = a.packed, b.packed
        self.ident = 0

    def packet(self, proto: int, payload: bytes, *, reverse: bool, l4_checksum_at: int | None) -> bytes:
        src, dst = (self.dst, self.src) if reverse else (self.src, self.dst)
        n = len(payload)
        if l4_checksum_at is not None:
            pseudo = (
                src + dst + (struct.pack(">IxxxB", n, proto) if self.v6 else struct.pack(">xBH", proto, n))
            )
            c = _fold(_sum16(pseudo) + _sum16(payload))
            payload = payload[:l4_checksum_at] + struct.pack(">H", c) + payload[l4_checksum_at + 2 :]
        if self.v6:
            return struct.pack(">IHBB", 6 << 28, n, proto, 64) + src + dst + payload
        self.ident = (self.ident + 1) & 0xFFFF
        hdr = struct.pack(">BBHHHBBH", 0x45, 0, 20 + n, self.ident, 0x4000, 64, proto, 0) + src + dst
        return hdr[:10] + struct.pack(">H", _fold(_sum16(hdr))) + hdr[12:] + payload


# --- TCP ------------------------------------------------------------------------------------------


class TcpSynth:
    """One TCP connection's packets. ``from_peer`` True: the remote side (the MME) sent it."""

    _SYN, _ACK, _PSH, _FIN = 0x02, 0x10, 0x08, 0x01

    def __init__(self, local: tuple[str, int], peer: tuple[str, int], *, isn: int = 1000) -> None:
        self.ip = _Ip(peer[0], local[0])
        self.peer_port, self.local_port = peer[1], local[1]
        self.peer_seq = isn
        self.local_seq = isn + 0x10000000
        self.closed = False

    def _segment(self, from_peer: bool, flags: int, payload: bytes = b"") -> bytes:
        if from_peer:
            sport, dport, seq, ack = self.peer_port, self.local_port, self.peer_seq, self.local_seq
        else:
            sport, dport, seq, ack = self.local_port, self.peer_port, self.local_seq, self.peer_seq
        if not flags & self._ACK:
            ack = 0
        hdr = struct.pack(
            ">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0
        )
        return self.ip.packet(6, hdr + payload, reverse=not from_peer, l4_checksum_at=16)

    def open(self) -> list[bytes]:
        """SYN, SYN/ACK, ACK (the peer connected to us)."""
        out = [self._segment(True, self._SYN)]
        self.peer_seq += 1
        out.append(self._segment(False, self._SYN | self._ACK))
        self.local_seq += 1
        out.append(self._segment(True, self._ACK))
        return out

    def data(self, from_peer: bool, payload: bytes) -> list[bytes]:
        out = []
        for i in range(0, len(payload), _MAX_SEGMENT):
            chunk = payload[i : i + _MAX_SEGMENT]
            out.append(self._segment(from_peer, self._ACK | self._PSH, chunk))
            if from_peer:
                self.peer_seq += len(chunk)
            else:
                self.local_seq += len(chunk)
        return out

    def close(self) -> list[bytes]:
        """FIN/ACK from each side and the last ACK."""
        if self.closed:
            return []
        self.closed = True
        out = [self._segment(False, self._FIN | self._ACK)]
        self.local_seq += 1
        out.append(self._segment(True, self._FIN | self._ACK))
        self.peer_seq += 1
        out.append(self._segment(False, self._ACK))
        return out


# --- SCTP -----------------------------------------------------------------------------------------


class SctpSynth:
    """One SCTP association's DATA packets (no INIT handshake: Wireshark needs none for DATA)."""

    def __init__(self, local: tuple[str, int], peer: tuple[str, int], *, ppid: int = 3) -> None:
        self.ip = _Ip(peer[0], local[0])
        self.peer_port, self.local_port = peer[1], local[1]
        self.ppid = ppid
        self.peer_tsn = 1
        self.local_tsn = 0x10000000
        self.peer_ssn = self.local_ssn = 0
        self.peer_vtag, self.local_vtag = 0x0E1E0001, 0x0E1E0002
        """Each side's tag: a packet carries the receiver's."""

    def data(self, from_peer: bool, message: bytes) -> bytes:
        if from_peer:
            sport, dport, vtag, tsn, ssn = (
                self.peer_port,
                self.local_port,
                self.local_vtag,
                self.peer_tsn,
                self.peer_ssn,
            )
            self.peer_tsn += 1
            self.peer_ssn = (ssn + 1) & 0xFFFF
        else:
            sport, dport, vtag, tsn, ssn = (
                self.local_port,
                self.peer_port,
                self.peer_vtag,
                self.local_tsn,
                self.local_ssn,
            )
            self.local_tsn += 1
            self.local_ssn = (ssn + 1) & 0xFFFF
        n = 16 + len(message)
        chunk = struct.pack(">BBHIHHI", 0, 0x03, n, tsn & 0xFFFFFFFF, 0, ssn, self.ppid) + message
        chunk += b"\0" * (-n % 4)
        common = struct.pack(">HHII", sport, dport, vtag, 0)
        crc = crc32c(common + chunk)
        pkt = common[:8] + struct.pack("<I", crc) + chunk
        return self.ip.packet(132, pkt, reverse=not from_peer, l4_checksum_at=None)
