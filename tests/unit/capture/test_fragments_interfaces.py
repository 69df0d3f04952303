"""IP fragments reassembled (bounded, RFC 5722 on overlaps), pcapng files with several interfaces of
different link types (merged by mergecap), and the Diameter requests that are not replayed, reported
per kind. Fragmented captures are also read by tshark, which must find the same Diameter messages."""

from __future__ import annotations

import itertools
import random
import struct
import subprocess
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.capture import CaptureDecoder, request_kind
from protocols.capture.ipfrag import IpReassembler, ip_fragment
from protocols.capture.pcapng import (
    TcpSynth,
    enhanced_packet_block,
    interface_description_block,
    pcapng_linktypes,
    read_pcapng,
    section_header_block,
)
from protocols.diameter.codec import encode_avp, encode_raw
from simulations.replay import load_exchanges, not_replayed_line
from testkit.peers import require_peer

from .helpers import EIR, MME, eca, ecr, ethernet, map_pair, sll

MME6 = ("2001:db8::1", 40000)
EIR6 = ("2001:db8::2", 3868)


def _csum(hdr: bytes) -> int:
    s: int = sum(struct.unpack(f">{len(hdr) // 2}H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frag4(dgram: bytes, cuts: list[int], ident: int = 0x4242) -> list[bytes]:
    """An IPv4 datagram (20-octet header) cut into fragments at ``cuts`` (multiples of 8)."""
    hdr, payload = dgram[:20], dgram[20:]
    bounds = [0, *cuts, len(payload)]
    out = []
    for a, b in itertools.pairwise(bounds):
        more = 0x2000 if b < len(payload) else 0
        h = bytearray(hdr)
        struct.pack_into(">HHH", h, 2, 20 + b - a, ident, more | (a // 8))
        struct.pack_into(">H", h, 10, 0)
        struct.pack_into(">H", h, 10, _csum(bytes(h)))
        out.append(bytes(h) + payload[a:b])
    return out


def frag6(dgram: bytes, cuts: list[int], ident: int = 0x42424242) -> list[bytes]:
    """An IPv6 datagram (no extension headers) cut into fragments with a fragment header each."""
    hdr, payload = dgram[:40], dgram[40:]
    nh = hdr[6]
    bounds = [0, *cuts, len(payload)]
    out = []
    for a, b in itertools.pairwise(bounds):
        more = 1 if b < len(payload) else 0
        h = bytearray(hdr)
        struct.pack_into(">H", h, 4, 8 + b - a)
        h[6] = 44
        out.append(bytes(h) + struct.pack(">BBHI", nh, 0, a | more, ident) + payload[a:b])
    return out


def session(mme: tuple[str, int], eir: tuple[str, int], n: int = 3) -> tuple[list[bytes], int]:
    """A connection with ``n`` ECRs in one segment and their ECAs in another; returns the packets
    and the index of the ECR segment."""
    s = TcpSynth(eir, mme)
    pkts = s.open()
    at = len(pkts)
    pkts += s.data(True, b"".join(ecr(i) for i in range(n)))
    pkts += s.data(False, b"".join(eca(i, status=1) for i in range(n)))
    return pkts + s.close(), at


def decode(
    frames: list[tuple[float, bytes]], link: int = 101, **kw: object
) -> tuple[CaptureDecoder, list[bytes]]:
    dec = CaptureDecoder(**kw)  # type: ignore[arg-type]
    out = []
    for ts, f in frames:
        out += [m.data for m in dec.receive_frame(link, ts, f)]
    out += [m.data for m in dec.finish()]
    return dec, out


# --- IP fragments ------------------------------------------------------------------------------


@pytest.mark.parametrize("v6", [False, True])
def test_fragments_out_of_order_with_a_duplicate_are_reassembled(v6: bool) -> None:
    pkts, at = session(MME6, EIR6) if v6 else session(MME, EIR)
    frags = (frag6 if v6 else frag4)(pkts[at], [64, 200, 400])
    assert len(frags) == 4
    shuffled = [frags[2], frags[0], frags[3], frags[0], frags[1]]  # frags[0] twice: a duplicate
    frames = [(float(i), ethernet(p)) for i, p in enumerate([*pkts[:at], *shuffled, *pkts[at + 1 :]])]
    dec, out = decode(frames, link=1)
    assert out == [*(ecr(i) for i in range(3)), *(eca(i, status=1) for i in range(3))]
    st = dec.fragments.stats
    assert (st.fragments, st.reassembled, st.duplicates, st.overlaps) == (5, 1, 1, 0)
    assert dec.stats.ip_reassembled == 1 and dec.stats.ip_fragments_dropped == 0
    assert len(dec.fragments) == 0  # nothing left held


@pytest.mark.parametrize("v6", [False, True])
def test_an_overlapping_fragment_discards_the_whole_datagram(v6: bool) -> None:
    """RFC 5722: an overlap (not an exact duplicate) discards the datagram and its later fragments."""
    pkts, at = session(MME6, EIR6) if v6 else session(MME, EIR)
    cut = frag6 if v6 else frag4
    frags = cut(pkts[at], [64, 200])
    overlapping = cut(pkts[at], [56, 200])[1]  # starts at 56, inside the first fragment's 0…64
    frames = [(0.0, f) for f in [frags[0], overlapping, frags[1], frags[2]]]
    dec, out = decode(frames)
    assert out == []
    st = dec.fragments.stats
    assert st.overlaps == 1 and st.reassembled == 0
    assert st.dropped_fragments == 4  # the first, the overlapping one, and the two that came after


def test_inconsistent_fragments_are_discarded() -> None:
    pkts, at = session(MME, EIR)
    frags = frag4(pkts[at], [64, 200])
    odd = bytearray(frags[0])  # a non-last fragment whose length is not a multiple of 8
    odd = odd[:-3]
    struct.pack_into(">H", odd, 2, len(odd))
    dec, _ = decode([(0.0, bytes(odd)), (0.0, frags[1]), (0.0, frags[2])])
    assert dec.fragments.stats.overlaps == 1 and dec.fragments.stats.reassembled == 0
    # two last fragments announcing different lengths
    last_short = frag4(pkts[at], [64, 200, 208])[2]
    hdr = bytearray(last_short)
    struct.pack_into(">H", hdr, 6, 200 // 8)  # MF clear: a second, shorter end
    dec, _ = decode([(0.0, frags[2]), (0.0, bytes(hdr))])
    assert dec.fragments.stats.overlaps == 1


def test_fragments_time_out_in_capture_time_and_the_held_ones_are_capped() -> None:
    pkts, at = session(MME, EIR)
    frags = frag4(pkts[at], [64, 200])
    # the rest comes 31 s of capture time later: the first piece has timed out
    dec, out = decode([(0.0, frags[0]), (31.0, frags[1]), (31.5, frags[2])])
    assert out == [] and dec.fragments.stats.timed_out == 1
    # within the time-out (and a capture read an hour later changes nothing: capture time)
    dec, out = decode([(0.0, frags[0]), (29.0, frags[1]), (29.5, frags[2])])
    assert dec.fragments.stats.reassembled == 1
    # three datagrams interleaved with room for two: the oldest is dropped, the others complete
    trios = [frag4(pkts[at], [64, 200], ident=i) for i in (1, 2, 3)]
    order = [trios[0][0], trios[1][0], trios[2][0], *trios[1][1:], *trios[2][1:]]
    dec, _ = decode([(0.0, f) for f in order], max_ip_datagrams=2)
    st = dec.fragments.stats
    assert st.evicted == 1 and st.reassembled == 2 and len(dec.fragments) <= 2


def test_a_fragment_flood_stays_bounded() -> None:
    r = IpReassembler(max_datagrams=64, timeout=30.0)
    rng = random.Random(7)
    pkts, at = session(MME, EIR)
    for i in range(5000):
        f = frag4(pkts[at], [8 * rng.randrange(1, 40)], ident=rng.randrange(1 << 16))[rng.randrange(2)]
        frag = ip_fragment(f)
        assert frag is not None
        r.receive(frag, i / 100)
        assert len(r) <= 64


def test_tshark_reassembles_the_same_fragments(tmp_path: Path) -> None:
    """An independent reassembler (tshark's) finds the same Diameter messages in the same file."""
    require_peer("tshark", "it reassembles the hand-made fragments independently")
    frames: list[bytes] = []
    for mme, eir, cut in ((MME, EIR, frag4), (MME6, EIR6, frag6)):
        pkts, at = session(mme, eir)
        frags = cut(pkts[at], [64, 200, 400])
        frames += [*pkts[:at], frags[1], frags[0], frags[3], frags[2], *pkts[at + 1 :]]
    path = tmp_path / "frags.pcap"
    with path.open("wb") as f:
        w = dpkt.pcap.Writer(f, linktype=1)
        for i, p in enumerate(frames):
            w.writepkt(ethernet(p), ts=1.0 + i / 100)
    out = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(path),
            "-d",
            "tcp.port==3999,diameter",
            "-Y",
            "diameter",
            "-T",
            "fields",
            "-e",
            "diameter.flags.request",
            "-e",
            "diameter.hopbyhopid",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    theirs = []  # (request?, hop-by-hop) of every Diameter message, several per frame
    for line in out.splitlines():
        reqs, hbhs = line.split("\t")
        theirs += [
            (r in ("1", "True"), int(h, 16)) for r, h in zip(reqs.split(","), hbhs.split(","), strict=True)
        ]
    loaded = load_exchanges(path)
    ours = [(True, int(e.ident.split()[0][4:], 16)) for e in loaded.exchanges]
    assert sorted(h for r, h in theirs if r) == sorted(h for _, h in ours)
    assert len(loaded.exchanges) == 6 and all(e.expected == "black" for e in loaded.exchanges)
    assert loaded.stats.ip_reassembled == 2


# --- pcapng with several interfaces ------------------------------------------------------------


def test_each_interface_of_a_pcapng_has_its_own_link_type(tmp_path: Path) -> None:
    """A file merged by mergecap from an Ethernet capture (S13) and a Linux-cooked one (MAP): each
    packet is decoded with its own interface's link type."""
    require_peer("tshark", "mergecap (Wireshark's, installed with tshark) writes the merged file")
    s13, _ = session(MME, EIR)
    req, ans = map_pair(0x11223344, "35209900176148")
    from protocols.capture.pcapng import SctpSynth

    sc = SctpSynth(("10.0.0.4", 2905), ("10.0.0.3", 2905))
    m3ua_pkts = [sc.data(True, req), sc.data(False, ans)]
    a, b = tmp_path / "eth.pcap", tmp_path / "sll.pcap"
    for path, link, wrap, pkts, t0 in ((a, 1, ethernet, s13, 1.0), (b, 113, sll, m3ua_pkts, 5.0)):
        with path.open("wb") as f:
            w = dpkt.pcap.Writer(f, linktype=link)
            for i, p in enumerate(pkts):
                w.writepkt(wrap(p), ts=t0 + i / 10)
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-F", "pcapng", "-w", str(merged), str(a), str(b)], check=True, timeout=60)
    data = merged.read_bytes()
    assert sorted(pcapng_linktypes(data)) == [1, 113]
    links = {link for link, _ts, _f in read_pcapng(data)}
    assert links == {1, 113}
    loaded = load_exchanges(merged)
    assert [(e.interface, e.expected) for e in loaded.exchanges] == [("s13", "black")] * 3 + [
        ("map", "black")
    ]
    assert loaded.stats.not_ip == 0


def test_pcapng_timestamps_follow_each_interfaces_resolution() -> None:
    def idb(link: int, tsresol: bytes) -> bytes:
        opts = struct.pack("<HH", 9, 1) + tsresol + b"\0\0\0" + struct.pack("<HH", 0, 0)
        body = struct.pack("<HHI", link, 0, 0) + opts
        return struct.pack("<II", 1, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    def epb(iface: int, ticks: int, pkt: bytes) -> bytes:
        body = struct.pack("<IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(pkt), len(pkt)) + pkt
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", 6, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    data = (
        section_header_block()
        + idb(1, b"\x09")
        + idb(101, b"\x83")
        + epb(1, 12, b"x" * 21)
        + epb(0, 3 * 10**9, b"y" * 14)
    )
    got = list(read_pcapng(data))
    assert got == [(101, 1.5, b"x" * 21), (1, 3.0, b"y" * 14)]
    # a new section forgets the interfaces of the one before
    with pytest.raises(ValueError, match="interface 1"):
        list(read_pcapng(data + section_header_block() + interface_description_block() + epb(1, 0, b"z")))
    assert list(
        read_pcapng(
            section_header_block() + interface_description_block() + enhanced_packet_block(2.0, b"ab")
        )
    ) == [(101, 2.0, b"ab")]


# --- Diameter requests that are not ECRs -------------------------------------------------------


def test_requests_that_are_not_ecrs_are_reported_per_kind(tmp_path: Path) -> None:
    s = TcpSynth(EIR, MME)
    body = encode_avp(264, b"mme.lab") + encode_avp(296, b"lab")
    cer = encode_raw(257, 0x80, 0, 1, 1, body)
    cea = encode_raw(257, 0, 0, 1, 1, body + encode_avp(268, struct.pack(">I", 2001)))
    dwr = [encode_raw(280, 0x80, 0, 10 + i, 10 + i, body) for i in range(3)]
    ulr = encode_raw(316, 0xC0, 16777251, 99, 99, body)
    odd = encode_raw(999, 0x80, 4242, 98, 98, body)
    pkts = s.open() + s.data(True, cer) + s.data(False, cea) + s.data(True, b"".join(dwr))
    pkts += s.data(True, ulr + odd + ecr(1)) + s.data(False, eca(1)) + s.close()
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(
        section_header_block()
        + interface_description_block()
        + b"".join(enhanced_packet_block(1.0 + i / 10, p) for i, p in enumerate(pkts))
    )
    loaded = load_exchanges(path)
    assert len(loaded.exchanges) == 1
    assert loaded.not_replayed == {
        "CER": 1,
        "DWR": 3,
        "S6a command 316": 1,
        "application 4242 command 999": 1,
    }
    assert not_replayed_line(loaded.not_replayed) == (
        "6 Diameter requests not replayed: 1 CER, 3 DWR (session plumbing); "
        "1 S6a command 316, 1 application 4242 command 999"
    )
    assert request_kind(0, 282) == "DPR" and request_kind(4, 272) == "Gy/Ro command 272"


@settings(max_examples=200, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 90), max_size=6),
    order=st.randoms(use_true_random=False),
    dups=st.integers(0, 3),
    drop=st.booleans(),
    v6=st.booleans(),
)
def test_any_cut_order_and_duplicates_give_back_the_datagram(
    cuts: list[int], order: random.Random, dups: int, drop: bool, v6: bool
) -> None:
    pkts, at = session(MME6, EIR6) if v6 else session(MME, EIR)
    dgram = pkts[at]
    offsets = sorted({8 * c for c in cuts if 8 * c < len(dgram) - (40 if v6 else 20)}) or [8]
    frags = (frag6 if v6 else frag4)(dgram, offsets)
    feed = frags + [order.choice(frags) for _ in range(dups)]
    if drop:
        feed = [f for f in feed if f != frags[-1]]
    order.shuffle(feed)
    r = IpReassembler()
    got = []
    for f in feed:
        frag = ip_fragment(f)
        assert frag is not None
        pkt = r.receive(frag, 0.0)
        if pkt is not None:
            got.append(pkt)
    assert r.stats.overlaps == 0
    if drop:
        assert got == [] and len(r) == 1
    else:  # duplicates that come after the datagram was made whole may make it whole again
        assert len(got) >= 1 and r.stats.reassembled == len(got)
        assert all(p.proto == 6 and p.payload == dgram[40 if v6 else 20 :] for p in got)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 8191), st.booleans(), st.binary(max_size=64), st.integers(0, 3)), max_size=40
    )
)
def test_garbage_fragments_never_raise_and_stay_bounded(items: list[tuple[int, bool, bytes, int]]) -> None:
    r = IpReassembler(max_datagrams=4)
    for i, (off, more, data, ident) in enumerate(items):
        h = bytearray(
            struct.pack(
                ">BBHHHBBH4s4s",
                0x45,
                0,
                20 + len(data),
                ident,
                (0x2000 if more else 0) | off,
                64,
                6,
                0,
                b"\x0a\0\0\x01",
                b"\x0a\0\0\x02",
            )
        )
        frag = ip_fragment(bytes(h) + data)
        if frag is None:
            assert not more and off == 0
            continue
        pkt = r.receive(frag, i * 0.5)
        assert pkt is None or len(pkt.payload) <= 65535
        assert len(r) <= 4


def test_the_cli_names_what_it_does_not_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eir.cli import main

    s = TcpSynth(EIR, MME)
    body = encode_avp(264, b"mme.lab") + encode_avp(296, b"lab")
    plumbing = encode_raw(257, 0x80, 0, 1, 1, body) + encode_raw(280, 0x80, 0, 2, 2, body)
    only_plumbing = s.open() + s.data(True, plumbing) + s.close()
    path = tmp_path / "plumbing.pcapng"
    path.write_bytes(
        section_header_block()
        + interface_description_block()
        + b"".join(enhanced_packet_block(1.0 + i / 10, p) for i, p in enumerate(only_plumbing))
    )
    assert main(["replay", str(path), "--show"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no S13 ME-Identity-Check or MAP checkIMEI" in err
    assert "2 Diameter requests not replayed: 1 CER, 1 DWR (session plumbing)" in err

    s = TcpSynth(EIR, MME)
    pkts = s.open() + s.data(True, plumbing + ecr(1)) + s.data(False, eca(1)) + s.close()
    frags = frag4(pkts[3], [64])
    path.write_bytes(
        section_header_block()
        + interface_description_block()
        + b"".join(
            enhanced_packet_block(1.0 + i / 10, p) for i, p in enumerate([*pkts[:3], *frags, *pkts[4:]])
        )
    )
    assert main(["replay", str(path), "--show"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].endswith(", 1 IP datagram reassembled")
    assert out[-1] == "2 Diameter requests not replayed: 1 CER, 1 DWR (session plumbing)"


def test_rewrite_keeps_an_avp_with_the_vendor_bit_and_vendor_0_whole() -> None:
    """Such an AVP (odd, but well-formed) was cut 4 octets short by the previous rewrite."""
    from protocols.capture import rewrite_diameter_request

    odd = struct.pack(">IIII", 283, (0x80 << 24) | 16, 0, 0x61626364)  # V bit, vendor 0, 4 octets
    req = encode_raw(324, 0x80, 16777252, 1, 2, encode_avp(264, b"mme.lab") + odd)
    out = rewrite_diameter_request(req, hop_by_hop=5, end_to_end=6, origin_host=b"replay.x")
    assert out.endswith(odd) and out[20:].startswith(encode_avp(264, b"replay.x"))


def test_a_big_endian_section_and_a_simple_packet_block() -> None:
    def block(e: str, btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack(e + "II", btype, len(body) + 12) + body + struct.pack(e + "I", len(body) + 12)

    be = (
        block(">", 0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
        + block(">", 1, struct.pack(">HHI", 113, 0, 0))
        + block(">", 6, struct.pack(">IIIII", 0, 0, 2_500_000, 3, 3) + b"abc")
        + block(">", 3, struct.pack(">I", 2) + b"de")  # SPB: interface 0, no timestamp
    )
    assert list(read_pcapng(be)) == [(113, 2.5, b"abc"), (113, 0.0, b"de")]
    assert pcapng_linktypes(be) == [113]
    with pytest.raises(ValueError, match="corrupt block"):
        list(read_pcapng(be[:-4]))  # the last block cut short
