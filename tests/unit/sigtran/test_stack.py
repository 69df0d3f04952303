"""The EIR stack (M3UA → SCCP → TCAP/MAP) wired back to back with the simulated MSC's client stack.

Every answer the EIR builds is also decoded layer by layer with pycrate (M3UA, SCCP and
``pycrate_asn1dir.TCAP_MAPv2v3``), so a bug cannot hide by being symmetric.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrate_asn1dir import TCAP_MAPv2v3
from pycrate_mobile.M3UA import parse_M3UA
from pycrate_mobile.SCCP import parse_SCCP

from protocols.imei import tbcd_encode
from protocols.sigtran import (
    CheckImeiAnswered,
    CheckImeiClient,
    CheckImeiRequested,
    EirSigtranStack,
    EquipmentStatus,
    MapError,
    SccpDiscarded,
    SccpReturned,
    TcapEirCore,
    TcapErrorKind,
    encode_check_imei_begin,
    m3ua,
    sccp,
    tcap,
)

IMEI = "35809101685355"
EIR_GT = "491700000009"


def make_pair(
    *,
    map_versions: tuple[int, ...] = (1, 2, 3),
    role_ssn: int = 8,
    extended: bool = False,
    called_ssn: int = 9,
    dialogue_timeout: float = 30.0,
    rc: int | None = 5,
) -> tuple[CheckImeiClient, EirSigtranStack]:
    eir = EirSigtranStack(
        m3ua_settings=m3ua.M3uaSettings(role=m3ua.Role.SG),
        point_code=2,
        ssn=9,
        global_title=EIR_GT,
        map_versions=map_versions,
        dialogue_timeout=dialogue_timeout,
    )
    client = CheckImeiClient(
        m3ua_settings=m3ua.M3uaSettings(role=m3ua.Role.ASP, routing_context=rc),
        opc=1,
        dpc=2,
        calling=sccp.make_address(ssn=role_ssn, gt="491700000008"),
        called=sccp.make_address(ssn=called_ssn, gt=EIR_GT),
        extended=extended,
    )
    client.start(0.0)
    for _ in range(4):  # b"" would mean EOF: pass only what was queued
        if out := client.data_to_send():
            eir.receive_data(out, 0.0)
        if out := eir.data_to_send():
            client.receive_data(out, 0.0)
    assert client.active and eir.m3ua.state is m3ua.AspState.ACTIVE
    return client, eir


def decode_with_pycrate(wire: bytes) -> tuple[list, object, tuple]:
    """M3UA DATA → SCCP → TCAP, each by pycrate. Returns (protocol data, SCCP msg, TCAP value)."""
    msg, err = parse_M3UA(wire)
    assert err == 0
    params = {p[0]: p[2] for p in msg.get_val()[1]}
    pd = params[m3ua.Tag.PROTOCOL_DATA]
    s, err = parse_SCCP(pd[6])
    assert err == 0
    tcap = TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message
    tcap.from_ber(s["Data"][1].get_val())
    return pd, s, tcap.get_val()


def exchange(client: CheckImeiClient, eir: EirSigtranStack, answer, **kw) -> tuple[list, bytes, list]:
    client.send_check_imei(0.0, imei=IMEI, **kw)
    events = eir.receive_data(client.data_to_send(), 0.0)
    for ev in events:
        if isinstance(ev, CheckImeiRequested):
            answer(eir, ev)
    wire = eir.data_to_send()
    return events, wire, client.receive_data(wire, 0.0)


STATUS_NAME = {
    EquipmentStatus.WHITE_LISTED: "whiteListed",
    EquipmentStatus.BLACK_LISTED: "blackListed",
    EquipmentStatus.GREY_LISTED: "greyListed",
}


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("status", list(EquipmentStatus))
def test_check_imei_each_version_and_status(version: int, status: EquipmentStatus) -> None:
    client, eir = make_pair()
    events, wire, answered = exchange(client, eir, lambda e, ev: e.answer(ev, status), version=version)
    req = next(ev for ev in events if isinstance(ev, CheckImeiRequested))
    assert req.invoke.imei.startswith(IMEI) and req.invoke.version == version
    assert req.origin == "491700000008" and req.route.opc == 1 and req.route.routing_context == 5
    (ans,) = answered
    assert isinstance(ans, CheckImeiAnswered) and ans.outcome is not None and ans.outcome.status is status
    pd, s, tcap = decode_with_pycrate(wire)
    assert pd[:6] == [2, 1, 3, 2, 0, pd[5]]  # OPC/DPC swapped, SI 3, NI 2
    assert s["Type"].get_val() == 9  # UDT
    assert s["CalledPartyAddr"][1]["SSN"].get_val() == 8
    assert s["CallingPartyAddr"][1]["SSN"].get_val() == 9
    assert s["CallingPartyAddr"].get_gt().get_addr() == EIR_GT
    kind, body = tcap
    assert kind == "end" and body["dtid"] == (1).to_bytes(4, "big")
    comp = body["components"][0][1]
    assert comp[0] == "returnResult"  # ROS [2] = TCAP returnResultLast
    result = comp[1]["result"]
    assert result["opcode"] == ("local", 43)
    if version == 3:
        assert result["result"][1]["equipmentStatus"] == STATUS_NAME[status]
    else:
        assert result["result"][1] == STATUS_NAME[status]
    if version > 1:
        acn = body["dialoguePortion"]["encoding"][1][1][1]["application-context-name"]
        assert acn == (0, 4, 0, 0, 1, 0, 13, version)


@pytest.mark.parametrize("error", [MapError.UNKNOWN_EQUIPMENT, MapError.SYSTEM_FAILURE])
def test_return_error(error: MapError) -> None:
    client, eir = make_pair()
    _, wire, answered = exchange(client, eir, lambda e, ev: e.answer_error(ev, error), version=2)
    assert answered[0].outcome.error == error
    _, _, (kind, body) = decode_with_pycrate(wire)
    comp = body["components"][0][1]
    assert kind == "end" and comp[0] == "returnError" and comp[1]["errcode"] == ("local", int(error))


def test_ac_negotiation_abort_names_supported_version() -> None:
    client, eir = make_pair(map_versions=(1, 2))
    events, wire, answered = exchange(client, eir, lambda e, ev: pytest.fail("no invoke expected"), version=3)
    assert not any(isinstance(ev, CheckImeiRequested) for ev in events)
    assert answered[0].outcome.aborted and answered[0].outcome.abort_supported_version == 2
    _, _, (kind, _body) = decode_with_pycrate(wire)
    assert kind == "abort"
    client2, eir2 = client, eir
    _, _, answered = exchange(
        client2, eir2, lambda e, ev: e.answer(ev, EquipmentStatus.WHITE_LISTED), version=2
    )
    assert answered[0].outcome.status is EquipmentStatus.WHITE_LISTED


def test_sgsn_role_and_xudt() -> None:
    client, eir = make_pair(role_ssn=149, extended=True)
    _, wire, answered = exchange(
        client, eir, lambda e, ev: e.answer(ev, EquipmentStatus.GREY_LISTED), version=3
    )
    assert answered[0].outcome.status is EquipmentStatus.GREY_LISTED
    _, s, _ = decode_with_pycrate(wire)
    assert s["Type"].get_val() == 17  # XUDT answers XUDT
    assert s["CalledPartyAddr"][1]["SSN"].get_val() == 149


def test_huawei_imsi_reaches_the_request() -> None:
    client, eir = make_pair()
    events, _, _ = exchange(
        client,
        eir,
        lambda e, ev: e.answer(ev, EquipmentStatus.WHITE_LISTED),
        version=2,
        imsi="262011234567890",
        vendor="huawei",
    )
    req = next(ev for ev in events if isinstance(ev, CheckImeiRequested))
    assert req.invoke.imsi == "262011234567890" and req.invoke.vendor == "huawei"


def test_unserved_ssn_gets_udts() -> None:
    client, eir = make_pair(called_ssn=6)
    events, wire, answered = exchange(client, eir, lambda e, ev: pytest.fail("no invoke expected"), version=2)
    (ev,) = events
    assert isinstance(ev, SccpReturned) and ev.cause is sccp.ReturnCause.UNEQUIPPED_USER and ev.sent
    assert answered[0].returned == sccp.ReturnCause.UNEQUIPPED_USER
    msg, err = parse_M3UA(wire)
    assert err == 0
    s, err = parse_SCCP({p[0]: p[2] for p in msg.get_val()[1]}[m3ua.Tag.PROTOCOL_DATA][6])
    assert err == 0
    assert s["Type"].get_val() == 10 and s["RetCause"].get_val() == 4


def test_non_sccp_and_garbage_sccp_discarded() -> None:
    client, eir = make_pair()
    client.m3ua.send_data(m3ua.ProtocolData(opc=1, dpc=2, si=5, data=b"isup"))
    client.send_sccp(b"\x09\x00\x03")
    events = eir.receive_data(client.data_to_send(), 0.0)
    assert [type(e) for e in events] == [SccpDiscarded, SccpDiscarded]
    assert eir.data_to_send() == b""


def test_xudt_with_empty_segmentation_is_discarded_not_raised() -> None:
    """Q.713 §3.17: Segmentation is 4 octets; an empty one (``10 00 00``) used to raise IndexError
    out of receive_data."""
    client, eir = make_pair(extended=True)
    xudt = bytearray(
        sccp.encode_unitdata(
            called=sccp.make_address(ssn=9, gt=EIR_GT).encode(),
            calling=sccp.make_address(ssn=8, gt="491700000008").encode(),
            data=bytes.fromhex("6216480400000001"),
            extended=True,
        )
    )
    xudt[6] = len(xudt) - 6
    client.send_sccp(bytes(xudt) + bytes.fromhex("100000"))
    events = eir.receive_data(client.data_to_send(), 0.0)
    assert [type(e) for e in events] == [SccpDiscarded]
    assert "segmentation" in events[0].reason
    assert eir.data_to_send() == b""


def test_reused_otid_gets_its_own_verdict_not_the_replaced_one() -> None:
    client, eir = make_pair()
    first, second = "35809101685355", "49015420323751"
    client.send_tcap(encode_check_imei_begin(otid=7, version=2, invoke_id=1, imei=first + "0"))
    (old,) = [e for e in eir.receive_data(client.data_to_send(), 0.0) if isinstance(e, CheckImeiRequested)]
    client.send_tcap(encode_check_imei_begin(otid=7, version=2, invoke_id=1, imei=second + "0"))
    (new,) = [e for e in eir.receive_data(client.data_to_send(), 1.0) if isinstance(e, CheckImeiRequested)]
    eir.answer(old, EquipmentStatus.BLACK_LISTED)  # the first check finishes late: nothing is sent
    assert eir.data_to_send() == b""
    eir.answer(new, EquipmentStatus.WHITE_LISTED)
    _, _, (kind, body) = decode_with_pycrate(eir.data_to_send())
    assert kind == "end" and body["dtid"] == (7).to_bytes(4, "big")
    assert body["components"][0][1][1]["result"]["result"][1] == "whiteListed"


def test_dialogue_timeout_abort_goes_to_its_own_msc() -> None:
    """Two MSCs behind one STP (one association, two calling GTs) both use OTID 1. MSC A's first
    dialogue was replaced by a Begin answered at once (its route used to be left behind); MSC B's dialogue
    then times out: the Abort must go to B — found by (calling address, OTID), not by OTID alone."""
    client, eir = make_pair(dialogue_timeout=5.0)
    msc_b = sccp.make_address(ssn=8, gt="491700000077").encode()
    eir_addr = sccp.make_address(ssn=9, gt=EIR_GT).encode()
    client.send_tcap(encode_check_imei_begin(otid=1, version=2, invoke_id=1, imei=IMEI + "0"))
    assert any(isinstance(e, CheckImeiRequested) for e in eir.receive_data(client.data_to_send(), 0.0))
    # A reuses OTID 1 for a Begin with an unknown operation: answered at once with an End + Reject.
    client.send_tcap(bytes.fromhex("62104804000000016c08a106020101020163"))
    eir.receive_data(client.data_to_send(), 1.0)
    _, s, (kind, _) = decode_with_pycrate(eir.data_to_send())
    assert kind == "end"
    begin_b = encode_check_imei_begin(otid=1, version=2, invoke_id=1, imei="490154203237518")
    client.send_sccp(sccp.encode_unitdata(called=eir_addr, calling=msc_b, data=begin_b, protocol_class=1))
    (req_b,) = [e for e in eir.receive_data(client.data_to_send(), 2.0) if isinstance(e, CheckImeiRequested)]
    eir.handle_timer(7.0)
    _, s, (kind, body) = decode_with_pycrate(eir.data_to_send())
    assert kind == "abort" and body["dtid"] == (1).to_bytes(4, "big")
    assert s["CalledPartyAddr"].get_gt().get_addr() == "491700000077"  # MSC B, not MSC A
    eir.answer(req_b, EquipmentStatus.WHITE_LISTED)  # too late: nothing more is sent
    assert eir.data_to_send() == b""


def test_begin_reusing_a_pending_otid_answered_at_once_leaves_no_route() -> None:
    """Regression: a Begin reusing a pending OTID and answered at once (only Rejects) replaced the
    dialogue in the TCAP core, but the stack kept the old dialogue's route until LRU eviction. The
    route now lives in the TCAP core's dialogue record and goes with it."""
    client, eir = make_pair()
    client.send_tcap(encode_check_imei_begin(otid=1, version=2, invoke_id=1, imei=IMEI + "0"))
    (old,) = [e for e in eir.receive_data(client.data_to_send(), 0.0) if isinstance(e, CheckImeiRequested)]
    peer = old.invoke.peer
    assert eir.tcap.active_dialogues == 1 and eir.tcap.route_of(peer, old.invoke.otid) is old.route
    # The same MSC reuses OTID 1 for a Begin with an unknown operation (opcode 99): End + Reject.
    client.send_tcap(bytes.fromhex("62104804000000016c08a106020101020163"))
    events = eir.receive_data(client.data_to_send(), 1.0)
    assert TcapErrorKind.DUPLICATE_OTID in [getattr(e, "kind", None) for e in events]
    _, _, (kind, body) = decode_with_pycrate(eir.data_to_send())
    assert kind == "end" and body["dtid"] == (1).to_bytes(4, "big")
    (comp,) = body["components"]
    assert comp == ("basicROS", ("reject", {"invokeId": ("present", 1), "problem": ("invoke", 1)}))
    assert eir.tcap.active_dialogues == 0 and eir.tcap.stats.replaced == 1
    assert eir.tcap.route_of(peer, old.invoke.otid) is None
    eir.answer(old, EquipmentStatus.WHITE_LISTED)  # the replaced dialogue's check finishes: dropped
    assert eir.data_to_send() == b""
    assert eir.tcap.stats.stale_answers == 0 and eir.tcap.stats.late_answers == 1


def test_route_lives_and_dies_with_its_dialogue() -> None:
    """The TCAP core keeps the route given with a Begin in that dialogue's record: a Begin reusing
    the OTID replaces it (route and all), the timer hands back the route of the dialogue that
    expired, and an answered dialogue leaves no route behind."""
    core: TcapEirCore[str] = TcapEirCore(dialogue_timeout=10.0)
    begin = encode_check_imei_begin(otid=b"\x01\x02", version=3, invoke_id=1, imei=IMEI)
    (first,) = core.receive_tcap(begin, 0.0, peer="msc-a", route="via-1").invokes
    assert core.route_of("msc-a", b"\x01\x02") == "via-1"
    (again,) = core.receive_tcap(begin, 1.0, peer="msc-a", route="via-2").invokes
    assert core.route_of("msc-a", b"\x01\x02") == "via-2" and core.stats.replaced == 1
    (other,) = core.receive_tcap(begin, 2.0, peer="msc-b", route="via-b").invokes
    assert core.active_dialogues == 2 and core.route_of("msc-b", b"\x01\x02") == "via-b"
    assert core.answer(first, EquipmentStatus.WHITE_LISTED) is None  # replaced: nothing to send
    assert core.answer(other, EquipmentStatus.WHITE_LISTED) is not None
    assert core.route_of("msc-b", b"\x01\x02") is None
    ((route, abort),) = core.handle_timer(11.0)
    assert route == "via-2" and abort[0] == 0x67  # the replacing dialogue's own route
    assert core.route_of("msc-a", b"\x01\x02") is None and core.active_dialogues == 0
    assert core.answer(again, EquipmentStatus.WHITE_LISTED) is None  # expired


def _begin(otid: int, components: bytes) -> bytes:
    def tlv(tag: int, value: bytes) -> bytes:
        n = len(value)
        return bytes((tag, n) if n < 128 else (tag, 0x81, n)) + value

    return tlv(0x62, tlv(0x48, otid.to_bytes(4, "big")) + tlv(0x6C, components))


@pytest.mark.parametrize("with_invoke", [False, True])
def test_reply_too_big_for_a_udt_becomes_a_p_abort(with_invoke: bool) -> None:
    """48 stray ReturnResults (5 octets each) would be answered by 48 Rejects (8 octets each): an
    End no UDT can carry (Q.713: one length octet). That raised ValueError out of the stack; now
    the dialogue gets a P-Abort resourceLimitation."""
    client, eir = make_pair()
    stray = bytes.fromhex("a2030201ff")
    if with_invoke:
        invoke = bytes.fromhex("a11002010102012b0408") + bytes.fromhex("53081910863555f0")
        comps = invoke + stray * 44
    else:
        comps = stray * 48
    client.send_tcap(_begin(9, comps))
    events = eir.receive_data(client.data_to_send(), 0.0)
    if with_invoke:
        (req,) = [e for e in events if isinstance(e, CheckImeiRequested)]
        assert eir.data_to_send() == b""
        eir.answer(req, EquipmentStatus.WHITE_LISTED)
    else:
        assert any(getattr(e, "kind", None) == "resource_limitation" for e in events)
    assert eir.tcap.stats.oversized == 1
    _, _, (kind, body) = decode_with_pycrate(eir.data_to_send())
    assert kind == "abort" and body["dtid"] == (9).to_bytes(4, "big")
    assert body["reason"] == ("p-abortCause", 4)  # resourceLimitation (Q.773 §3.1)


def test_unanswered_dialogue_is_aborted_back_to_the_sender() -> None:
    client, eir = make_pair(dialogue_timeout=5.0)
    client.send_check_imei(0.0, imei=IMEI, version=2)
    events = eir.receive_data(client.data_to_send(), 0.0)
    assert any(isinstance(e, CheckImeiRequested) for e in events)
    assert eir.get_timer() == 5.0
    eir.handle_timer(5.0)
    wire = eir.data_to_send()
    (ans,) = client.receive_data(wire, 5.0)
    assert ans.outcome.aborted
    _, s, (kind, _) = decode_with_pycrate(wire)
    assert kind == "abort" and s["CalledPartyAddr"][1]["SSN"].get_val() == 8
    # a late answer is dropped silently
    req = next(e for e in events if isinstance(e, CheckImeiRequested))
    eir.answer(req, EquipmentStatus.WHITE_LISTED)
    assert eir.data_to_send() == b""


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), st.booleans())
def test_fuzz_stack_never_raises(payload: bytes, as_tcap: bool) -> None:
    """Any SCCP payload, or any TCAP payload inside a valid UDT, yields events — never an exception."""
    client, eir = make_pair()
    if as_tcap:
        client.send_tcap(payload)
    else:
        client.send_sccp(payload)
    eir.receive_data(client.data_to_send(), 0.0)
    eir.handle_timer(100.0)
    out = eir.data_to_send()
    if out:
        client.receive_data(out, 0.0)


_MSC_GTS = ("491700000008", "491700000077")
"""Two MSCs behind one STP (one association): they share OTIDs, only the calling GT tells them apart."""

_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("begin"),
            st.integers(0, 1),
            st.integers(1, 3),
            st.sampled_from(["check", "reject", "two"]),
        ),
        st.tuples(st.just("answer"), st.just(0), st.integers(0, 7), st.booleans()),
        st.tuples(st.just("time"), st.just(0), st.integers(1, 4), st.just(False)),
    ),
    max_size=25,
)


def _sent(eir: EirSigtranStack) -> list[tuple[str, int, int]]:
    """What the EIR sent: (called GT, DTID, TCAP message type) per M3UA DATA."""
    wire = eir.data_to_send()
    out = []
    while wire:
        length = int.from_bytes(wire[4:8], "big")
        msg, wire = m3ua.decode_message(wire[:length]), wire[length:]
        pd = m3ua.ProtocolData.decode(msg.get(m3ua.Tag.PROTOCOL_DATA) or b"")
        udt = sccp.decode_message(pd.data)
        t = tcap.decode_tcap(udt.data)
        assert udt.called.gt is not None and t.dtid is not None
        out.append((udt.called.gt.digits, int.from_bytes(t.dtid, "big"), int(t.type)))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_OPS)
def test_each_reply_takes_its_own_dialogues_route(ops: list[tuple[str, int, int, object]]) -> None:
    """Whatever the order of Begins from two MSCs sharing OTIDs (reusing them, answered at once or
    not), answers (in time, late, stale) and timer expiries: every End and Abort goes to the MSC
    whose dialogue it closes — exactly the replies a model of the dialogues predicts — and the
    open dialogues (each holding its route) are exactly the model's: none leaks, none goes missing."""
    client, eir = make_pair(dialogue_timeout=3.0)
    eir_addr = sccp.make_address(ssn=9, gt=EIR_GT).encode()
    peers = [sccp.make_address(ssn=8, gt=gt).encode() for gt in _MSC_GTS]
    now = 0.0
    # model: (msc, otid) -> [generation, deadline, pending invoke ids]
    model: dict[tuple[int, int], list] = {}
    generation = 0
    requests: list[tuple[CheckImeiRequested, tuple[int, int], int]] = []
    unknown_op = "a106020101020163"  # Invoke id 1, opcode 99: rejected
    check = "a11002010102012b040853081910863555f0"  # Invoke id 1, checkIMEI v2 IMEI
    check2 = "a11002010202012b040853081910863555f0"  # Invoke id 2
    for op, msc, n, flag in ops:
        expected: list[tuple[str, int, int]] = []
        if op == "begin":
            comps = {"check": check, "reject": unknown_op, "two": check + check2}[str(flag)]
            data = _begin(n, bytes.fromhex(comps))
            client.send_sccp(sccp.encode_unitdata(called=eir_addr, calling=peers[msc], data=data))
            events = eir.receive_data(client.data_to_send(), now)
            new = [e for e in events if isinstance(e, CheckImeiRequested)]
            model.pop((msc, n), None)  # a reused OTID replaces the pending dialogue
            if flag == "reject":
                expected.append((_MSC_GTS[msc], n, 0x64))  # End with the Reject, at once
            else:
                generation += 1
                model[(msc, n)] = [generation, now + 3.0, {r.invoke.invoke_id for r in new}]
                requests += [(r, (msc, n), generation) for r in new]
        elif op == "answer" and requests:
            req, key, gen = requests.pop(n % len(requests))
            d = model.get(key)
            if d is not None and d[0] == gen:
                d[2].discard(req.invoke.invoke_id)
                if not d[2]:
                    del model[key]
                    expected.append((_MSC_GTS[key[0]], key[1], 0x64))
            if flag:
                eir.answer(req, EquipmentStatus.WHITE_LISTED)
            else:
                eir.answer_error(req, MapError.SYSTEM_FAILURE)
        elif op == "time":
            now += n
            for key, d in list(model.items()):
                if d[1] <= now:
                    del model[key]
                    expected.append((_MSC_GTS[key[0]], key[1], 0x67))  # U-Abort
            eir.handle_timer(now)
        assert sorted(_sent(eir)) == sorted(expected)
        assert eir.tcap.active_dialogues == len(model)
        for (msc, otid), _ in model.items():
            route = eir.tcap.route_of(peers[msc], otid.to_bytes(4, "big"))
            assert route is not None and route.request.calling.gt is not None
            assert route.request.calling.gt.digits == _MSC_GTS[msc]
    for req, _, _ in requests:
        eir.answer(req, EquipmentStatus.GREY_LISTED)
    eir.data_to_send()
    assert eir.tcap.active_dialogues == 0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    requests=st.lists(
        st.tuples(
            st.integers(14, 16).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)),
            st.sampled_from([1, 2, 3]),
            st.one_of(st.none(), st.text("0123456789", min_size=5, max_size=15)),
            st.booleans(),
            st.sampled_from([None, "huawei", "ericsson"]),
            st.integers(-128, 127),
            st.integers(1, 0xFFFFFFFF),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_the_clients_patched_begins_are_the_encoders(requests: list[tuple]) -> None:  # type: ignore[type-arg]
    """The simulated MSC patches OTID, IMEI and IMSI into a Begin of each shape (a population load
    changes all three in every request): the octets equal encode_check_imei_begin's, for every
    version, vendor form, length and invoke id — requests of one shape meeting the cache."""
    client = CheckImeiClient(
        m3ua_settings=m3ua.M3uaSettings(role=m3ua.Role.ASP),
        opc=1,
        dpc=2,
        calling=sccp.make_address(ssn=8, gt="491700000008"),
        called=sccp.make_address(ssn=9, gt=EIR_GT),
    )
    for imei, version, imsi, bmuef, vendor, iid, otid in requests * 2:
        if vendor is None:
            imsi = None
        if vendor == "ericsson" and version < 3:
            vendor = None
            imsi = None
        want = encode_check_imei_begin(
            otid=otid,
            version=version,
            invoke_id=iid,
            imei=imei,
            imsi=imsi,
            requested_bmuef=bmuef,
            vendor=vendor,
        )
        assert client.encode_begin(otid, imei, version, imsi, bmuef, vendor, iid) == want


def test_a_population_load_is_encoded_from_one_shape_and_read_by_pycrate() -> None:
    """What the sim sends under `bench.clone`'s population run: pycrate reads each request's IMEI."""
    client, _eir = make_pair()
    for i in range(3):
        imei, imsi = f"3520990000{i:04d}", f"26201000000{i:04d}"
        client.send_check_imei(0.0, imei=imei, version=3, imsi=imsi, vendor="huawei")
        _pd, _s, tcap = decode_with_pycrate(client.data_to_send())
        ((_, (_, invoke)),) = tcap[1]["components"]
        assert invoke["opcode"] == ("local", 43)
        assert invoke["argument"][1][:10] == b"\x04\x08" + tbcd_encode(imei + "0")
        assert b"\x80\x08" + tbcd_encode(imsi) in invoke["argument"][1]
    assert len(client._begin_cache) == 1
