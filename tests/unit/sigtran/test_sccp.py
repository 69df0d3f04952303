"""SCCP (Q.713): golden UDT/XUDT/UDTS bytes both ways, GT variants, UDTS and SCMG procedures.

pycrate's ``pycrate_mobile.SCCP.parse_SCCP`` is the independent decoder of everything we send.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrate_mobile.SCCP import parse_SCCP

from protocols.sigtran import sccp
from protocols.sigtran.sccp import (
    GlobalTitle,
    MessageType,
    ReturnCause,
    SccpAddress,
    SccpDecodeError,
    SccpEndpoint,
    decode_address,
    decode_message,
    encode_address,
    encode_unitdata,
)

EIR = SccpAddress(ssn=9, gt=GlobalTitle(digits="491700000009"))
MSC = SccpAddress(ssn=8, point_code=1, gt=GlobalTitle(digits="4917000008"))
TCAP = bytes.fromhex("6216480400000001")

# Q.713 §4.10 layout by hand: type, class (1 + return on error), 3 pointers, called, calling, data.
UDT_GOLDEN = bytes.fromhex(
    "09"
    "81"
    "03"
    "0e"
    "1a"
    "0b"
    "12"
    "09"
    "00"
    "12"
    "04"
    "947100000090"  # called: GT(GTI 4) + SSN 9, route on GT
    "0c"
    "13"
    "0100"
    "08"
    "00"
    "12"
    "04"
    "9471000080"  # calling: PC 1 + SSN 8 + GT
    "08"
    "6216480400000001"
)


def pyc(data: bytes):
    msg, err = parse_SCCP(data)
    assert err == 0, f"pycrate could not parse {data.hex()}"
    return msg


def test_udt_golden_both_directions() -> None:
    wire = encode_unitdata(
        called=EIR.encode(), calling=MSC.encode(), data=TCAP, protocol_class=1, return_on_error=True
    )
    assert wire == UDT_GOLDEN
    m = decode_message(UDT_GOLDEN)
    assert (m.type, m.protocol_class, m.return_on_error, m.data) == (MessageType.UDT, 1, True, TCAP)
    assert m.called == EIR.__class__(ssn=9, gt=GlobalTitle(digits="491700000009", encoding_scheme=2))
    assert m.calling.point_code == 1 and m.calling.ssn == 8 and m.calling.gt is not None
    assert m.calling.gt.digits == "4917000008"
    p = pyc(wire)
    assert p["ProtocolClass"]["Class"].get_val() == 1 and p["ProtocolClass"]["Handling"].get_val() == 8
    assert p["CalledPartyAddr"][1]["SSN"].get_val() == 9
    assert p["CalledPartyAddr"].get_gt().get_addr() == "491700000009"
    assert p["CallingPartyAddr"][1]["PC"].get_val() == 1
    assert p["CallingPartyAddr"].get_gt().get_addr() == "4917000008"
    assert p["Data"][1].get_val() == TCAP


@pytest.mark.parametrize("importance", [None, 5])
def test_xudt_both_directions(importance: int | None) -> None:
    wire = encode_unitdata(
        called=EIR.encode(),
        calling=MSC.encode(),
        data=TCAP,
        extended=True,
        hop_counter=12,
        importance=importance,
    )
    m = decode_message(wire)
    assert (m.type, m.hop_counter, m.importance, m.data) == (MessageType.XUDT, 12, importance, TCAP)
    p = pyc(wire)
    assert p["HopCounter"].get_val() == 12
    assert p["Data"][1].get_val() == TCAP
    if importance is None:
        assert wire[6] == 0  # no optional part: pointer 0


GT_CASES = [
    GlobalTitle(gti=1, digits="12345", nature_of_address=4),
    GlobalTitle(gti=1, digits="1234", nature_of_address=3),
    GlobalTitle(gti=2, digits="4917", translation_type=0),
    GlobalTitle(gti=3, digits="491700000009", translation_type=0, numbering_plan=1),
    GlobalTitle(gti=3, digits="26201123456789", translation_type=0, numbering_plan=7),
    GlobalTitle(gti=4, digits="4917000001", numbering_plan=1, nature_of_address=4),
    GlobalTitle(gti=4, digits="491700001", numbering_plan=1, nature_of_address=4),
    GlobalTitle(gti=4, digits="262011234567890", translation_type=0, numbering_plan=7, nature_of_address=4),
]


@pytest.mark.parametrize("gt", GT_CASES, ids=lambda g: f"gti{g.gti}-{g.digits}")
@pytest.mark.parametrize(("pc", "ssn", "ri"), [(None, 9, False), (300, 149, True), (16383, None, False)])
def test_gt_variants(gt: GlobalTitle, pc: int | None, ssn: int | None, ri: bool) -> None:
    addr = SccpAddress(route_on_ssn=ri, point_code=pc, ssn=ssn, gt=gt)
    raw = encode_address(addr)
    back = decode_address(raw)
    assert back.gt is not None and back.gt.digits == gt.digits and back.gt.gti == gt.gti
    assert (back.point_code, back.ssn, back.route_on_ssn) == (pc, ssn, ri)
    wire = encode_unitdata(called=raw, calling=MSC.encode(), data=b"\x01")
    v = pyc(wire)["CalledPartyAddr"][1]
    assert v["AddrInd"]["GTInd"].get_val() == gt.gti
    assert v["AddrInd"]["RoutingInd"].get_val() == int(ri)
    if pc is not None:
        assert v["PC"].get_val() == pc
    if ssn is not None:
        assert v["SSN"].get_val() == ssn
    if gt.gti != 2:  # pycrate shows a GTI-2 address as raw hex (the encoding is national)
        assert pyc(wire)["CalledPartyAddr"].get_gt().get_addr() == gt.digits
    if gt.gti in (3, 4):
        assert v["GT"].get_alt()["EncodingScheme"].get_val() == (1 if len(gt.digits) % 2 else 2)
        assert v["GT"].get_alt()["NumberingPlan"].get_val() == gt.numbering_plan


def test_answer_swaps_addresses_and_keeps_form() -> None:
    ep = SccpEndpoint(ssns=(9,), point_code=2, global_title="491700000009")
    for extended in (False, True):
        req = decode_message(
            encode_unitdata(
                called=EIR.encode(),
                calling=MSC.encode(),
                data=TCAP,
                protocol_class=1,
                return_on_error=True,
                extended=extended,
            )
        )
        reply = decode_message(ep.answer(req, b"\x64\x03\x49\x01\x01"))
        assert reply.type is (MessageType.XUDT if extended else MessageType.UDT)
        assert reply.called == req.calling
        assert reply.calling.ssn == 9 and reply.calling.gt is not None
        assert reply.calling.gt.digits == "491700000009" and not reply.calling.route_on_ssn
        assert reply.protocol_class == 1
        pyc(ep.answer(req, b"\x64\x03\x49\x01\x01"))


def test_answer_route_on_ssn_with_point_code() -> None:
    ep = SccpEndpoint(ssns=(9,), point_code=2, global_title="491700000009")
    called = SccpAddress(route_on_ssn=True, point_code=2, ssn=9)
    calling = SccpAddress(route_on_ssn=True, point_code=1, ssn=149)
    req = decode_message(encode_unitdata(called=called.encode(), calling=calling.encode(), data=TCAP))
    reply = decode_message(ep.answer(req, b"x"))
    assert reply.called == calling
    assert reply.calling.route_on_ssn and reply.calling.point_code == 2 and reply.calling.ssn == 9


@pytest.mark.parametrize("extended", [False, True])
def test_udts_for_unserved_ssn(extended: bool) -> None:
    ep = SccpEndpoint(ssns=(9,), point_code=2, global_title="491700000009")
    hlr = SccpAddress(ssn=6, gt=GlobalTitle(digits="491700000006"))
    wire = encode_unitdata(
        called=hlr.encode(), calling=MSC.encode(), data=TCAP, return_on_error=True, extended=extended
    )
    ev = ep.receive(wire)
    assert isinstance(ev, sccp.UnitdataReturned) and ev.cause is ReturnCause.UNEQUIPPED_USER
    assert ev.reply is not None
    udts = decode_message(ev.reply)
    assert udts.type is (MessageType.XUDTS if extended else MessageType.UDTS)
    assert udts.return_cause == ReturnCause.UNEQUIPPED_USER and udts.data == TCAP
    assert udts.called == decode_message(wire).calling and udts.calling.ssn == 6
    p = pyc(ev.reply)
    assert p["RetCause"].get_val() == 4 and p["Data"][1].get_val() == TCAP


def test_no_udts_without_return_on_error() -> None:
    ep = SccpEndpoint(ssns=(9,))
    ev = ep.receive(encode_unitdata(called=SccpAddress(ssn=6).encode(), calling=MSC.encode(), data=TCAP))
    assert isinstance(ev, sccp.UnitdataReturned) and ev.reply is None


def test_segmented_xudt_and_hop_counter() -> None:
    ep = SccpEndpoint(ssns=(9,))
    base = encode_unitdata(
        called=EIR.encode(), calling=MSC.encode(), data=TCAP, extended=True, return_on_error=True
    )
    # add a Segmentation parameter (§3.17) saying one more segment follows
    seg = bytearray(base)
    seg[6] = len(base) - 6
    seg += bytes((0x10, 4, 0x81, 0, 0, 1, 0))
    ev = ep.receive(bytes(seg))
    assert isinstance(ev, sccp.UnitdataReturned) and ev.cause is ReturnCause.SEGMENTATION_NOT_SUPPORTED
    zero_hops = bytearray(base)
    zero_hops[2] = 0
    ev = ep.receive(bytes(zero_hops))
    assert isinstance(ev, sccp.UnitdataReturned) and ev.cause is ReturnCause.HOP_COUNTER_VIOLATION


def test_sst_answered_with_ssa() -> None:
    ep = SccpEndpoint(ssns=(9,), point_code=2)
    scmg = SccpAddress(route_on_ssn=True, point_code=2, ssn=1)
    peer = SccpAddress(route_on_ssn=True, point_code=1, ssn=1)
    sst = bytes((0x03, 9, 2, 0, 0))
    ev = ep.receive(encode_unitdata(called=scmg.encode(), calling=peer.encode(), data=sst))
    assert isinstance(ev, sccp.ScmgReply) and ev.reply is not None
    reply = decode_message(ev.reply)
    assert reply.data == bytes((0x01, 9, 2, 0, 0)) and reply.called == peer
    pyc(ev.reply)


def test_received_udts_is_reported() -> None:
    ep = SccpEndpoint(ssns=(9,))
    udts = sccp.encode_unitdata_service(called=EIR.encode(), calling=MSC.encode(), data=TCAP, cause=3)
    ev = ep.receive(udts)
    assert isinstance(ev, sccp.ServiceReturned) and ev.message.return_cause == 3


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x09",
        b"\x09\x00\x03\x03\x03",
        b"\x09\x00\x00\x01\x01\x00",
        b"\x09\x00\x03\x05\x07\x09\x12",
        b"\x01\x00",
        b"\x11\x00\x0f\x04\x04\x04\x00",
    ],
)
def test_malformed(bad: bytes) -> None:
    with pytest.raises(SccpDecodeError):
        decode_message(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_decode_only_raises_decode_error(data: bytes) -> None:
    with contextlib.suppress(SccpDecodeError):
        decode_message(data)


@settings(max_examples=200, deadline=None)
@given(
    st.text("0123456789", min_size=1, max_size=20), st.integers(1, 4), st.binary(max_size=200), st.booleans()
)
def test_round_trip(digits: str, gti: int, data: bytes, extended: bool) -> None:
    gt = GlobalTitle(gti=gti, digits=digits if gti != 2 or len(digits) % 2 == 0 else digits + "0")
    a = SccpAddress(ssn=9, gt=gt)
    m = decode_message(encode_unitdata(called=a.encode(), calling=MSC.encode(), data=data, extended=extended))
    assert m.called.gt is not None and m.called.gt.digits == gt.digits and m.data == data


def _xudt_with_optional(optional: bytes) -> bytes:
    """An XUDT to the EIR whose optional part (§2.3) is ``optional`` (end-of-parameters included)."""
    base = bytearray(
        encode_unitdata(
            called=EIR.encode(), calling=MSC.encode(), data=TCAP, extended=True, return_on_error=True
        )
    )
    base[6] = len(base) - 6
    return bytes(base) + optional


@pytest.mark.parametrize(
    "optional",
    [
        "100000",  # Segmentation of 0 octets (§3.17: 4)
        "1003c1000100",  # Segmentation of 3 octets
        "1005c0000001ff00",  # Segmentation of 5 octets
        "120000",  # Importance of 0 octets (§3.19: 1)
        "1202030400",  # Importance of 2 octets
    ],
)
def test_optional_parameter_of_wrong_length_is_a_decode_error(optional: str) -> None:
    wire = _xudt_with_optional(bytes.fromhex(optional))
    with pytest.raises(SccpDecodeError):
        decode_message(wire)
    with pytest.raises(SccpDecodeError):
        SccpEndpoint(ssns=(9,)).receive(wire)


def test_optional_parameters_of_the_right_length() -> None:
    # Segmentation: first segment, class 1, no further segment; Importance 5; an unknown one skipped.
    wire = _xudt_with_optional(bytes.fromhex("1004c00000011201057f02abcd00"))
    m = decode_message(wire)
    assert m.segmentation == bytes.fromhex("c0000001") and m.importance == 5
    assert isinstance(SccpEndpoint(ssns=(9,)).receive(wire), sccp.UnitdataReceived)
    p = pyc(wire)
    assert p["HopCounter"].get_val() == 15


# --- mutated valid messages: the endpoint raises SccpDecodeError or returns an event, nothing else -------


def _valid_sccp() -> st.SearchStrategy[bytes]:
    def build(kind: str, data: bytes, opt: bytes) -> bytes:
        if kind == "UDT":
            return encode_unitdata(called=EIR.encode(), calling=MSC.encode(), data=data, return_on_error=True)
        if kind == "UDTS":
            return sccp.encode_unitdata_service(called=EIR.encode(), calling=MSC.encode(), data=data, cause=1)
        if kind == "XUDTS":
            return sccp.encode_unitdata_service(
                called=EIR.encode(), calling=MSC.encode(), data=data, cause=1, extended=True
            )
        if kind == "SST":
            return encode_unitdata(
                called=SccpAddress(route_on_ssn=True, point_code=2, ssn=1).encode(),
                calling=MSC.encode(),
                data=bytes((3, 9, 2, 0, 0)),
            )
        return (
            _xudt_with_optional(opt + b"\0")
            if opt
            else encode_unitdata(
                called=EIR.encode(), calling=MSC.encode(), data=data, extended=True, importance=3
            )
        )

    opts = st.sampled_from(
        [b"", bytes.fromhex("1004c0000001"), bytes.fromhex("120104"), bytes.fromhex("1004c0000001120104")]
    )
    return st.builds(
        build, st.sampled_from(["UDT", "UDTS", "XUDT", "XUDTS", "SST"]), st.binary(max_size=12), opts
    )


@settings(max_examples=500, deadline=None)
@given(
    _valid_sccp(),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3),
    st.integers(0, 80),
)
def test_fuzz_endpoint_mutated_messages(wire: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    buf = bytearray(wire)
    for pos, val in edits:
        if buf:
            buf[pos % len(buf)] = val
    if cut and cut < len(buf):
        del buf[-cut:]
    ep = SccpEndpoint(ssns=(9,), point_code=2, global_title="491700000009")
    try:
        ev = ep.receive(bytes(buf))
    except SccpDecodeError:
        return
    assert isinstance(
        ev, (sccp.UnitdataReceived, sccp.UnitdataReturned, sccp.ServiceReturned, sccp.ScmgReply)
    )
    if isinstance(ev, sccp.UnitdataReceived):
        ep.answer(ev.message, TCAP)
