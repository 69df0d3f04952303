"""Link layers and IP, just enough to reach TCP and SCTP payloads.

Link types (tcpdump.org LINKTYPE_* numbers): NULL 0 (BSD loopback, host byte order family), ETHERNET 1
(with 802.1Q / 802.1ad tags), RAW 101 (and 12 / 14, its values on some BSDs), LOOP 108 (network
byte order family), LINUX_SLL 113, LINUX_SLL2 276, IPV4 228, IPV6 229.

IP: IPv4 (options skipped, payload cut to Total Length so Ethernet padding never reaches TCP) and
IPv6 (hop-by-hop, routing and destination-option headers skipped). Fragments are not decoded here:
:func:`ip_payload` returns None for them and :mod:`.ipfrag` reassembles them (bounded state).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

__all__ = ["IpPacket", "LinkType", "ip_payload", "link_payload"]


class LinkType(IntEnum):
    NULL = 0
    ETHERNET = 1
    RAW_BSD12 = 12
    RAW_BSD14 = 14
    RAW = 101
    LOOP = 108
    LINUX_SLL = 113
    IPV4 = 228
    IPV6 = 229
    LINUX_SLL2 = 276


_ETH_IPV4, _ETH_IPV6 = 0x0800, 0x86DD
_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
# BSD address families for IPv6 on loopback/null: Linux 10, FreeBSD 28, OpenBSD/NetBSD 24, macOS 30.
_AF_INET6 = (10, 24, 28, 30)
_U16 = struct.Struct(">H")
_U32_LE = struct.Struct("<I")
_U32_BE = struct.Struct(">I")

SUPPORTED_LINKTYPES = frozenset(int(t) for t in LinkType)


def link_payload(linktype: int, frame: bytes) -> bytes | None:
    """The IP datagram inside ``frame``, or None when it carries something else."""
    if linktype == 1:
        if len(frame) < 14:
            return None
        off = 12
        etype = _U16.unpack_from(frame, off)[0]
        while etype in _VLAN_TAGS and len(frame) >= off + 6:
            off += 4
            etype = _U16.unpack_from(frame, off)[0]
        if etype not in (_ETH_IPV4, _ETH_IPV6):
            return None
        return frame[off + 2 :]
    if linktype == 113:  # SLL: pkttype 2, hatype 2, halen 2, addr 8, protocol 2
        if len(frame) < 16 or _U16.unpack_from(frame, 14)[0] not in (_ETH_IPV4, _ETH_IPV6):
            return None
        return frame[16:]
    if linktype == 276:  # SLL2: protocol 2, reserved 2, ifindex 4, hatype 2, pkttype 1, halen 1, addr 8
        if len(frame) < 20 or _U16.unpack_from(frame, 0)[0] not in (_ETH_IPV4, _ETH_IPV6):
            return None
        return frame[20:]
    if linktype in (101, 12, 14, 228, 229):
        return frame
    if linktype in (0, 108):
        if len(frame) < 4:
            return None
        fam = (_U32_BE if linktype == 108 else _U32_LE).unpack_from(frame, 0)[0]
        if linktype == 0 and fam > 0xFFFF:  # written on a big-endian host
            fam = _U32_BE.unpack_from(frame, 0)[0]
        if fam != 2 and fam not in _AF_INET6:
            return None
        return frame[4:]
    return None


@dataclass(frozen=True, slots=True)
class IpPacket:
    src: bytes
    """4 or 16 octets."""
    dst: bytes
    proto: int
    payload: bytes


def ip_payload(datagram: bytes) -> IpPacket | None:
    """Decode an IPv4 / IPv6 header; None for anything else, truncated or fragmented."""
    if not datagram:
        return None
    version = datagram[0] >> 4
    if version == 4:
        if len(datagram) < 20:
            return None
        ihl = (datagram[0] & 0x0F) * 4
        total = _U16.unpack_from(datagram, 2)[0]
        frag = _U16.unpack_from(datagram, 6)[0]
        if ihl < 20 or frag & 0x3FFF:  # MF set or a non-zero offset
            return None
        if total < ihl:  # TSO captures may carry 0: use what is there
            total = len(datagram)
        return IpPacket(datagram[12:16], datagram[16:20], datagram[9], datagram[ihl:total])
    if version == 6:
        if len(datagram) < 40:
            return None
        plen = _U16.unpack_from(datagram, 4)[0]
        nh = datagram[6]
        end = 40 + plen if plen else len(datagram)
        off = 40
        while nh in (0, 43, 60):
            if len(datagram) < off + 8:
                return None
            nh, hlen = datagram[off], (datagram[off + 1] + 1) * 8
            off += hlen
        if nh == 44:  # fragment header
            return None
        return IpPacket(datagram[8:24], datagram[24:40], nh, datagram[off:end])
    return None
