"""Hand-built captures: Diameter / M3UA messages in synthesised TCP/SCTP packets, several link types."""

from __future__ import annotations

import itertools
import struct

from protocols.capture.pcapng import SctpSynth, TcpSynth
from protocols.diameter import build_ecr, encode_message
from protocols.diameter.codec import encode_avp, encode_raw
from protocols.sigtran import EquipmentStatus, TcapEirCore, encode_check_imei_begin, m3ua, sccp

MME = ("10.0.0.1", 40000)
EIR = ("10.0.0.2", 3999)  # not a Diameter or M3UA port: found by header


def ecr(i: int, imei: str = "35209900176148", imsi: str | None = "001010123456789") -> bytes:
    return encode_message(
        build_ecr(
            session_id=f"mme.lab;1;{i}",
            origin_host="mme.lab",
            origin_realm="lab",
            destination_realm="localdomain",
            destination_host="eir.localdomain",
            imei=imei,
            software_version="01",
            imsi=imsi,
            hop_by_hop=0x1000 + i,
            end_to_end=0x2000 + i,
        )
    )


def eca(
    i: int, *, status: int | None = 0, rc: int | None = 2001, erc: int | None = None, p_bit: bool = True
) -> bytes:
    body = encode_avp(263, f"mme.lab;1;{i}".encode()) + encode_avp(264, b"eir.localdomain")
    body += encode_avp(296, b"localdomain")
    if rc is not None:
        body += encode_avp(268, struct.pack(">I", rc))
    if erc is not None:
        body += encode_avp(
            297, encode_avp(266, struct.pack(">I", 10415)) + encode_avp(298, struct.pack(">I", erc))
        )
    if status is not None:
        body += encode_avp(1445, struct.pack(">I", status), vendor_id=10415)
    return encode_raw(324, 0x40 if p_bit else 0, 16777252, 0x1000 + i, 0x2000 + i, body)


def ethernet(ip: bytes) -> bytes:
    etype = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack(">H", etype) + ip


def vlan(ip: bytes) -> bytes:
    etype = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack(">HHH", 0x8100, 42, etype) + ip


def sll(ip: bytes) -> bytes:
    etype = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    return struct.pack(">HHH", 0, 772, 6) + b"\0" * 8 + struct.pack(">H", etype) + ip


def sll2(ip: bytes) -> bytes:
    etype = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    return struct.pack(">HHIHBB", etype, 0, 1, 772, 0, 6) + b"\0" * 8 + ip


def null(ip: bytes) -> bytes:
    return struct.pack("<I", 30 if ip[0] >> 4 == 6 else 2) + ip


def loop(ip: bytes) -> bytes:
    return struct.pack(">I", 24 if ip[0] >> 4 == 6 else 2) + ip


LINKS = {1: ethernet, 113: sll, 276: sll2, 101: lambda ip: ip, 0: null, 108: loop}


def tcp_segments(synth: TcpSynth, from_peer: bool, data: bytes, cuts: list[int]) -> list[tuple[int, bytes]]:
    """``data`` cut at ``cuts`` into segments: (their seq, packet) in order."""
    out = []
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(data))), len(data)]
    for a, b in itertools.pairwise(bounds):
        seq = synth.peer_seq if from_peer else synth.local_seq
        out.append((seq, synth.data(from_peer, data[a:b])[0]))
    return out


def map_pair(
    otid: int, imei: str, version: int = 3, status: EquipmentStatus = EquipmentStatus.BLACK_LISTED
) -> tuple[bytes, bytes]:
    """An M3UA DATA with a checkIMEI Begin and the M3UA DATA with the EIR's End."""
    begin = encode_check_imei_begin(otid=otid, version=version, invoke_id=1, imei=imei)
    core = TcapEirCore()
    got = core.receive_tcap(begin, 0.0)
    (ev,) = got.invokes
    end = core.answer(ev, status)
    assert end is not None
    calling = sccp.make_address(ssn=8, gt="491700000008")
    called = sccp.make_address(ssn=9, gt="491700000009")
    req = m3ua.encode_data(
        m3ua.ProtocolData(
            opc=1,
            dpc=2,
            si=3,
            ni=2,
            sls=0,
            data=sccp.encode_unitdata(called=called.encode(), calling=calling.encode(), data=begin),
        )
    )
    ans = m3ua.encode_data(
        m3ua.ProtocolData(
            opc=2,
            dpc=1,
            si=3,
            ni=2,
            sls=0,
            data=sccp.encode_unitdata(called=calling.encode(), calling=called.encode(), data=end),
        )
    )
    return req, ans


def sctp_packet(synth: SctpSynth, from_peer: bool, messages: list[bytes], ppid: int = 3) -> bytes:
    """Several DATA chunks in one packet (the synthesiser writes one; join the chunks by hand)."""
    synth.ppid = ppid
    pkts = [synth.data(from_peer, m) for m in messages]
    first = pkts[0]
    chunks = b"".join(p[20 + 12 :] for p in pkts)
    sctp = first[20 : 20 + 12] + chunks  # the checksum no longer fits: nobody checks it here
    ip = bytearray(first[:20])
    struct.pack_into(">H", ip, 2, 20 + len(sctp))
    struct.pack_into(">H", ip, 10, 0)
    return bytes(ip) + sctp
