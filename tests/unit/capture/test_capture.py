"""protocols.capture: framing by header, TCP reassembly with hand-made segment boundaries, SCTP chunks,
link layers, pairing and the normalised verdict, the pcapng writer read back by dpkt."""

from __future__ import annotations

import io
import random
import struct

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.capture import (
    CaptureDecoder,
    CapturedMessage,
    Protocol,
    StreamFramer,
    detect,
    find_exchanges,
    rewrite_diameter_request,
    rewrite_otid,
    s13_verdict,
)
from protocols.capture.pcapng import (
    SctpSynth,
    TcpSynth,
    crc32c,
    enhanced_packet_block,
    interface_description_block,
    section_header_block,
)
from protocols.diameter.codec import decode_message

from .helpers import EIR, LINKS, MME, eca, ecr, map_pair, sctp_packet, tcp_segments, vlan


def decode_all(frames: list[bytes], linktype: int = 101, **kw: object) -> tuple[CaptureDecoder, list[bytes]]:
    dec = CaptureDecoder(**kw)  # type: ignore[arg-type]
    out = []
    for i, f in enumerate(frames):
        out += [m.data for m in dec.receive_frame(linktype, float(i), f)]
    out += [m.data for m in dec.finish()]
    return dec, out


# --- framing ------------------------------------------------------------------------------------------


def test_detect_diameter_and_m3ua_by_header() -> None:
    req, _ = map_pair(1, "35209900176148")
    assert detect(ecr(1))[0:3:2] == (Protocol.DIAMETER, True)
    assert detect(req)[0:3:2] == (Protocol.M3UA, True)
    assert detect(b"GET / HTTP/1.1\r\n\r\n")[0] is None
    # only the header so far: a guess, not complete
    proto, length, complete = detect(ecr(1)[:30])
    assert proto is Protocol.DIAMETER and length == len(ecr(1)) and not complete


def test_a_diameter_answer_that_also_reads_as_m3ua_is_settled_by_its_body() -> None:
    """Flags 0 and a 516-octet length: ``01 00 02 04 00 00 01 44`` is an M3UA SCON header too."""
    pad = b"x" * (516 - len(eca(1, p_bit=False)) - 8)
    body = eca(1, p_bit=False)[20:] + struct.pack(">II", 999, 8 + len(pad)) + pad
    msg = struct.pack(">IIIII", (1 << 24) | (20 + len(body)), 324, 16777252, 1, 1) + body
    assert len(msg) == 516 and msg[:8] == bytes.fromhex("0100020400000144")
    proto, length, complete = detect(msg)
    assert (proto, length, complete) == (Protocol.DIAMETER, 516, True)


def test_framer_skips_garbage_before_the_first_header_and_after_a_gap() -> None:
    f = StreamFramer()
    got = f.feed(b"\x00garbage" + ecr(1) + ecr(2)[:50])
    assert [m for _, m in got] == [ecr(1)] and f.garbage == 8
    f.gap()
    got = f.feed(ecr(2)[60:] + ecr(3))
    assert [m for _, m in got] == [ecr(3)]


# --- TCP ----------------------------------------------------------------------------------------------


def stream_frames(cuts: list[int], link: int = 101) -> tuple[list[bytes], list[bytes]]:
    """An MME → EIR stream of 4 ECRs cut at ``cuts``; the EIR's answers as one segment."""
    syn = TcpSynth(EIR, MME)
    reqs = [ecr(i) for i in range(4)]
    frames = [LINKS[link](p) for p in syn.open()]
    frames += [LINKS[link](p) for _, p in tcp_segments(syn, True, b"".join(reqs), cuts)]
    frames += [LINKS[link](p) for p in syn.data(False, b"".join(eca(i) for i in range(4)))]
    return frames, reqs


@pytest.mark.parametrize("link", sorted(LINKS))
def test_several_messages_in_one_segment_and_one_over_several(link: int) -> None:
    n = len(ecr(0))
    frames, reqs = stream_frames([n + 7, n + 30, 3 * n], link)
    _dec, out = decode_all(frames, link)
    assert out == [*reqs, *(eca(i) for i in range(4))]
    ex = find_exchanges(_messages(frames, link))
    assert [e.expected for e in ex] == ["white"] * 4
    assert [e.imei for e in ex] == ["35209900176148"] * 4


def _messages(frames: list[bytes], link: int = 101) -> list[CapturedMessage]:
    dec = CaptureDecoder()
    out = []
    for i, f in enumerate(frames):
        out += dec.receive_frame(link, float(i), f)
    return out


def test_retransmissions_and_overlaps_are_delivered_once() -> None:
    syn = TcpSynth(EIR, MME)
    data = ecr(1) + ecr(2)
    segs = tcp_segments(syn, True, data, [40, 200])
    frames = [p for _, p in segs]
    # a retransmission of the first segment, and one that overlaps the 2nd and 3rd
    frames.insert(2, segs[0][1])
    syn2 = TcpSynth(EIR, MME)
    syn2.peer_seq = segs[1][0] - 10  # starts 10 octets early: overlap
    overlap = syn2.data(True, data[30:250])[0]
    frames.insert(3, overlap)
    dec, out = decode_all(frames)
    assert out == [ecr(1), ecr(2)]
    assert dec.stats.retransmitted == 1


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=4 * 300), max_size=12),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    dup=st.booleans(),
)
def test_random_splits_and_reordering(cuts: list[int], seed: int, dup: bool) -> None:
    syn = TcpSynth(EIR, MME, isn=0xFFFFFF00)  # the sequence numbers wrap inside the stream
    reqs = [ecr(i) for i in range(4)]
    data = b"".join(reqs)
    segs = [p for _, p in tcp_segments(syn, True, data, cuts)]
    rnd = random.Random(seed)
    head, tail = segs[:1], segs[1:]
    rnd.shuffle(tail)
    if dup and tail:
        tail.insert(rnd.randrange(len(tail) + 1), rnd.choice(segs))
    _, out = decode_all(head + tail)
    assert out == reqs


def test_a_hole_that_is_never_filled_is_skipped_when_pending_data_grows_too_large() -> None:
    syn = TcpSynth(EIR, MME)
    msgs = [ecr(i) for i in range(40)]
    segs = [
        p for _, p in tcp_segments(syn, True, b"".join(msgs), [sum(map(len, msgs[:k])) for k in range(1, 40)])
    ]
    del segs[3]  # the 4th request is lost
    dec, out = decode_all(segs, max_pending=2000)
    assert ecr(3) not in out and out[:3] == msgs[:3] and out[-1] == msgs[-1]
    assert dec.stats.gaps >= 1


def test_a_capture_that_starts_mid_message() -> None:
    syn = TcpSynth(EIR, MME)
    data = ecr(1) + ecr(2) + ecr(3)
    segs = tcp_segments(syn, True, data, [50, len(ecr(1)) + 5])
    _, out = decode_all([p for _, p in segs[1:]])  # no SYN, begins inside the first message
    assert out == [ecr(2), ecr(3)]


def test_port_reuse_starts_a_new_connection() -> None:
    frames, _ = stream_frames([])
    msgs = _messages(frames + frames)
    conns = {m.connection for m in msgs}
    assert len(conns) == 2
    assert [e.expected for e in find_exchanges(msgs)] == ["white"] * 8


def test_ipv6_and_vlan() -> None:
    syn = TcpSynth(("2001:db8::2", 3868), ("2001:db8::1", 50000))
    frames = [LINKS[1](p) for p in syn.data(True, ecr(1))] + [vlan(p) for p in syn.data(False, eca(1))]
    msgs = _messages(frames, 1)
    assert [m.data for m in msgs] == [ecr(1), eca(1)]
    assert msgs[0].src == "2001:db8::1" and msgs[0].dport == 3868


# --- SCTP ---------------------------------------------------------------------------------------------


def test_sctp_several_chunks_per_packet_duplicates_and_diameter_ppid() -> None:
    reqs, answers = zip(*(map_pair(i, "35394206000002") for i in range(1, 4)), strict=True)
    s = SctpSynth(EIR, MME)
    p1 = sctp_packet(s, True, list(reqs))
    p2 = sctp_packet(s, False, list(answers))
    s.peer_tsn -= 3  # the same TSNs again: a retransmission
    p3 = sctp_packet(s, True, list(reqs))
    d = SctpSynth(("10.0.0.2", 4000), MME, ppid=46)
    p4 = d.data(True, ecr(9))
    _dec, out = decode_all([p1, p2, p3, p4])
    assert out == [*reqs, *answers, ecr(9)]
    ex = find_exchanges(_messages([p1, p2, p3, p4]))
    assert [(e.interface, e.expected, e.map_version) for e in ex] == [("map", "black", 3)] * 3 + [
        ("s13", None, None)
    ]


def test_sctp_fragments_are_joined() -> None:
    req, _ = map_pair(7, "35209900176148")
    s = SctpSynth(EIR, MME)
    pkt = bytearray(s.data(True, req[:20]))
    pkt2 = bytearray(s.data(True, req[20:]))
    pkt[20 + 12 + 1] = 0x02  # B only
    pkt2[20 + 12 + 1] = 0x01  # E only
    _, out = decode_all([bytes(pkt), bytes(pkt2)])
    assert out == [req]


# --- pairing, verdicts, rewriting ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (eca(1, status=0), "white"),
        (eca(1, status=1), "black"),
        (eca(1, status=2), "grey"),
        (eca(1, rc=None, status=None, erc=5422), "unknown"),
        (eca(1, rc=5012, status=None), "result 5012"),
        (eca(1, rc=None, status=None, erc=5001), "experimental 5001"),
        (eca(1, status=None), "success without Equipment-Status"),
        (b"\x01\x00", "undecodable"),
    ],
)
def test_s13_verdict(answer: bytes, verdict: str) -> None:
    assert s13_verdict(answer) == verdict


def test_a_request_without_answer_has_no_expectation() -> None:
    syn = TcpSynth(EIR, MME)
    frames = syn.data(True, ecr(1) + ecr(2)) + syn.data(False, eca(2, status=1))
    ex = find_exchanges(_messages(frames))
    assert [(e.ident.split()[0], e.expected) for e in ex] == [
        ("hbh=0x00001001", None),
        ("hbh=0x00001002", "black"),
    ]


def test_rewrite_diameter_request_keeps_everything_but_ids_and_hosts() -> None:
    out = rewrite_diameter_request(
        ecr(1),
        hop_by_hop=77,
        end_to_end=88,
        origin_host=b"replay.sim",
        origin_realm=b"sim",
        destination_realm=None,
    )
    m = decode_message(out)
    assert (m.hop_by_hop, m.end_to_end, m.command_code) == (77, 88, 324)
    codes = {a.code: a.data for a in m.avps}
    assert codes[264] == b"replay.sim" and codes[296] == b"sim" and 293 not in codes
    assert codes[283] == b"localdomain" and codes[1] == b"001010123456789"


def test_rewrite_otid() -> None:
    req, _ = map_pair(0x01020304, "35209900176148")
    from protocols.capture.exchanges import _m3ua_tcap

    got = _m3ua_tcap(req)
    assert got is not None
    begin, tid = rewrite_otid(got[0], 0x1_0000_0005)
    assert tid == 5 and begin.count(b"\x48\x04\x00\x00\x00\x05") == 1


# --- pcapng writer ------------------------------------------------------------------------------------


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720 B.4 / the CRC catalogue's check value


def test_pcapng_written_here_reads_back_with_dpkt() -> None:
    syn = TcpSynth(EIR, MME)
    pkts = syn.open() + syn.data(True, ecr(1)) + syn.data(False, eca(1)) + syn.close()
    s = SctpSynth(EIR, ("10.0.0.1", 40001))
    req, ans = map_pair(5, "35209900176148", version=2, status=0)  # type: ignore[arg-type]
    pkts += [s.data(True, req), s.data(False, ans)]
    blob = (
        section_header_block()
        + interface_description_block()
        + b"".join(enhanced_packet_block(1.5 + i, p) for i, p in enumerate(pkts))
    )
    r = dpkt.pcapng.Reader(io.BytesIO(blob))
    assert r.datalink() == 101
    frames = [bytes(f) for _, f in r]
    assert len(frames) == len(pkts)
    ex = find_exchanges(_messages(frames))
    assert [(e.interface, e.expected) for e in ex] == [("s13", "white"), ("map", "white")]
    # the IPv4 header checksums are right
    for f in frames:
        ip = dpkt.ip.IP(f)
        assert ip.sum == dpkt.ip.IP(bytes(ip)).sum


# --- robustness: any bytes in, messages or nothing out ----------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    link=st.sampled_from(sorted(LINKS)),
    payloads=st.lists(st.binary(max_size=120), min_size=1, max_size=6),
    proto=st.sampled_from([6, 132]),
    ppid=st.sampled_from([0, 3, 46]),
)
def test_garbage_never_raises(link: int, payloads: list[bytes], proto: int, ppid: int) -> None:
    dec = CaptureDecoder()
    syn = TcpSynth(EIR, MME)
    sc = SctpSynth(EIR, MME, ppid=ppid)
    msgs = []
    for i, p in enumerate(payloads):
        tcp = syn.data(bool(i % 2), p)[0] if p else syn.open()[0]
        pkt = tcp if proto == 6 else sc.data(bool(i % 2), p)
        msgs += dec.receive_frame(link, 0.0, LINKS[link](pkt))
        msgs += dec.receive_frame(link, 0.0, p)  # a frame that is nothing at all
        msgs += dec.receive_frame(link, 0.0, LINKS[link](pkt)[: len(p)])  # cut short
    msgs += dec.finish()
    find_exchanges(msgs)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=0, max_size=300), cut=st.integers(min_value=0, max_value=300))
def test_messages_with_corrupt_bodies_never_raise(data: bytes, cut: int) -> None:
    """Valid headers around random bodies: pairing and verdicts cope."""
    req, ans = map_pair(3, "35209900176148")
    for base in (ecr(1), eca(1), req, ans):
        msg = base[:8] + data[: max(0, len(base) - 8)] if base[0] == 1 and base[2] == 1 else base[:cut] + data
        frames = TcpSynth(EIR, MME).data(True, msg)
        find_exchanges(_messages(frames))
        s13_verdict(msg)
