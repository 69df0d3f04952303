"""The EIR stack's per-association fast path (protocols/sigtran/_map_fast.py) against the general path.

Two EIR stacks brought up alike, one with the memo and one without (``memo = None``), are fed the
same byte stream — real M3UA DATA(UDT/XUDT(Begin)) of many shapes, management messages, garbage,
each possibly mutated, split into arbitrary chunks — and must give equal events, bytes, counters,
open dialogues and answers. The memo only learns from what the stream carries, so the mutated
messages that keep a learnt shape (a new OTID, invoke id, SLS or IMEI digit) reach the fast path,
and those that break it (a length, an address, a tag) must leave it.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from protocols.sigtran import (
    CheckImeiRequested,
    EirSigtranStack,
    EquipmentStatus,
    MapError,
    MessageRefused,
    encode_check_imei_begin,
    m3ua,
    sccp,
)

EIR_GT = "491700000009"
_MSC = sccp.make_address(ssn=8, gt="491700000008").encode()
_MSC2 = sccp.make_address(ssn=8, gt="4917000000771").encode()
_SGSN_PC = sccp.make_address(ssn=149, point_code=77).encode()  # route on SSN, no GT: origin pc:<OPC>
_EIR = sccp.make_address(ssn=9, gt=EIR_GT).encode()
_EIR_PC = sccp.make_address(ssn=9, point_code=2).encode()


def _up(eir: EirSigtranStack, rc: int | None) -> None:
    """ASPUP and ASPAC from the peer: the association ASP-ACTIVE."""
    params = [(m3ua.Tag.ROUTING_CONTEXT, rc.to_bytes(4, "big"))] if rc is not None else []
    eir.receive_data(m3ua.encode_message(m3ua.MessageType.ASPUP), 0.0)
    eir.receive_data(m3ua.encode_message(m3ua.MessageType.ASPAC, params), 0.0)
    eir.data_to_send()
    assert eir.m3ua.state is m3ua.AspState.ACTIVE


_ADDRESSING: dict[str, Any] = {
    "point_codes": frozenset({2}),
    "network_indicators": frozenset({2}),
    "accept_global_titles": (EIR_GT,),
    "screen_opcs": frozenset({1}),
    "screen_calling_gt_prefixes": ("4917",),
}
"""Addressing and screening on (issue 10): a mutated DPC, NI, OPC or GT is refused (DUNA, UDTS or
dropped) — by the general path before the memo may learn the shape, in the same order either way."""


def _twins(
    rc: int | None = 5, max_dialogues: int = 10000, addressing: bool = False
) -> tuple[EirSigtranStack, EirSigtranStack]:
    pair = []
    for memo in (True, False):
        eir = EirSigtranStack(
            m3ua_settings=m3ua.M3uaSettings(role=m3ua.Role.SG),
            point_code=2,
            ssn=9,
            global_title=EIR_GT,
            max_dialogues=max_dialogues,
            dialogue_timeout=5.0,
            **(_ADDRESSING if addressing else {}),
        )
        if not memo:
            eir.memo = None
        _up(eir, rc)
        pair.append(eir)
    return pair[0], pair[1]


def _data(
    tcap_data: bytes,
    *,
    calling: bytes = _MSC,
    called: bytes = _EIR,
    sls: int = 0,
    rc: int | None = 5,
    extended: bool = False,
    importance: int | None = None,
    opc: int = 1,
) -> bytes:
    udt = sccp.encode_unitdata(
        called=called,
        calling=calling,
        data=tcap_data,
        protocol_class=1,
        return_on_error=True,
        extended=extended,
        importance=importance,
    )
    pd = m3ua.ProtocolData(opc=opc, dpc=2, si=3, ni=2, sls=sls, data=udt)
    return m3ua.encode_data(pd, routing_context=rc)


def _begin(
    otid: int | bytes = 0x01020304,
    version: int = 2,
    invoke_id: int = 1,
    imei: str = "35809101685355",
    **kw: Any,
) -> bytes:
    return encode_check_imei_begin(otid=otid, version=version, invoke_id=invoke_id, imei=imei, **kw)


def _trailer(tcap_data: bytes, extra: bytes) -> bytes:
    """The Begin with ``extra`` octets after the argument (all lengths short-form)."""
    data = bytearray(tcap_data + extra)
    data[1] += len(extra)
    comps = data.index(0x6C, 4 + data[3])
    data[comps + 1] += len(extra)
    data[comps + 3] += len(extra)
    return bytes(data)


_SEEDS = [
    _data(_begin()),
    _data(_begin(version=3), sls=7),
    _data(_begin(version=1, otid=b"\x07"), rc=None),
    _data(_begin(version=3, requested_bmuef=True, imei="3580910168535501", otid=b"\x01\x02")),
    _data(_begin(otid=b"\x00\x01\x02", invoke_id=-5, imei="358091016853550"), calling=_MSC2, sls=15),
    _data(_begin(version=2), calling=_SGSN_PC, called=_EIR_PC, opc=77),
    _data(_begin(version=3), extended=True),
    _data(_begin(version=2), extended=True, importance=3),
    # the vendor forms that carry an IMSI (the fast path learns them too: _map_fast._imsi_field)
    _data(_begin(version=2, imsi="724340300385763", vendor="huawei")),
    _data(_begin(version=3, imsi="724340300385763", vendor="ericsson")),
    _data(_begin(version=3, imsi="262019876543210", vendor="huawei"), sls=3),
    _data(_begin(version=3, imsi="26201987654", msisdn="4917012345", vendor="huawei", otid=b"\x05")),
    _data(_begin(version=2, imsi="262019876543210", msisdn="491701234567", vendor="huawei")),
    _data(_begin(version=3, imsi="724340300385763", vendor="ericsson", requested_bmuef=True), rc=None),
    _data(_begin(version=3, msisdn="491701234567", vendor="huawei")),  # no IMSI: only the IMEI varies
    # Huawei v3 with the trailing 00 00 of the jSS7 trace (a deviation of the vendor form)
    _data(_trailer(_begin(version=3, imsi="262019876543210", vendor="huawei"), b"\x00\x00")),
    _data(_begin(version=2), called=sccp.make_address(ssn=6, gt=EIR_GT).encode()),  # not our SSN: UDTS
    _data(b"\x62\x03\x48\x01\x01"),  # a Begin without components
    _data(b"\x65\x06\x48\x01\x01\x49\x01\x02"),  # a Continue: P-Abort
    m3ua.encode_message(m3ua.MessageType.BEAT, [(m3ua.Tag.HEARTBEAT_DATA, b"beat")]),
    m3ua.encode_message(m3ua.MessageType.ASPIA),  # the association leaves ASP-ACTIVE: DATA gets ERR
    m3ua.encode_message(m3ua.MessageType.ASPAC, [(m3ua.Tag.ROUTING_CONTEXT, (5).to_bytes(4, "big"))]),
    m3ua.encode_message(m3ua.MessageType.ASPAC, [(m3ua.Tag.ROUTING_CONTEXT, (9).to_bytes(4, "big"))]),
    b"\x01\x00\x01\x01\x00\x00\x00\x04",  # a length below 8: framing lost, the association ends
]

_DATA_SEEDS = [i for i, s in enumerate(_SEEDS) if s[2:4] == b"\x01\x01" and len(s) > 40]
_CANONICAL_SEEDS = _DATA_SEEDS[:16]
"""The seeds of the standard form and of the vendor forms (our SSN, components): the fast path's
shapes."""


def _variable_edit(seed: bytes, field: int, value: int, *, last_otid_octet: bool = False) -> bytes:
    """Change one octet of a field the fast path leaves variable (the SLS, an OTID octet, the
    invoke id, an IMEI octet) — found by decoding, independently of _map_fast. ``last_otid_octet``:
    that one, whatever ``field``."""
    data = bytearray(seed)
    rc_len = 8 if seed[8:10] == b"\x00\x06" else 0
    pd = 8 + rc_len + 4
    s = pd + 12
    ptr = s + (5 if data[s] == 0x11 else 4)
    tcap_at = ptr + data[ptr] + 1
    tcap_len = data[ptr + data[ptr]]
    otid_len = data[tcap_at + 3]
    tcap_end = tcap_at + tcap_len
    spots = [pd + 11, *range(tcap_at + 4, tcap_at + 4 + otid_len)]
    # the invoke id before the opcode, the IMEI (the first 04 08 of the argument) and, in the
    # vendor forms, the IMSI element's digits after it
    tcap = bytes(data[tcap_at:tcap_end])
    op = tcap.rfind(b"\x02\x01\x2b")
    imei = tcap.find(b"\x04\x08", op + 3) if op > 3 else -1
    if imei > 0:
        spots += range(tcap_at + imei + 2, tcap_at + imei + 10)
        spots.append(tcap_at + op - 1)
        q = imei + 10
        while q + 2 <= len(tcap):
            t, n = tcap[q], tcap[q + 1]
            if t in (0x00, 0x01, 0x80, 0xC1) and n:
                spots += range(tcap_at + q + 2, min(tcap_at + q + 2 + n, tcap_end))
            q += 2 + n
    at = tcap_at + 3 + otid_len if last_otid_octet else spots[field % len(spots)]
    data[at] = value
    return bytes(data)


def _mutate(seed: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(seed)
    for kind, where, value in mutations:
        if not data:
            break
        pos = where % len(data)
        if kind == "flip":
            data[pos] ^= 1 << (value % 8)
        elif kind == "set":
            data[pos] = value
        elif kind == "insert":
            data.insert(pos, value)
        elif kind == "delete":
            del data[pos]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "tail":  # an octet near the end: the IMEI, the argument, the padding
            data[len(data) - 1 - where % min(len(data), 16)] = value
    return bytes(data)


_MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate", "tail"]),
        st.integers(0, 255),
        st.integers(0, 255),
    ),
    max_size=2,
)
_EDITS = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 255)), max_size=3)


@st.composite
def _messages(draw: st.DrawFn) -> list[tuple[int, list[tuple[int, int]], list[tuple[str, int, int]], bool]]:
    """Messages of one or two DATA shapes (so that the memo learns one and meets it again) with
    their variable fields changed, among seeds mutated anywhere (the shape most often broken) —
    mostly with the M3UA length fixed after the mutation, so that the stream stays framed and the
    mutation reaches SCCP, TCAP and MAP."""
    favourites = draw(st.lists(st.sampled_from(_CANONICAL_SEEDS), min_size=1, max_size=2))
    framed = st.sampled_from([True, True, True, False])
    message = st.one_of(
        st.tuples(st.sampled_from(favourites), _EDITS, st.just([]), st.just(True)),
        st.tuples(st.sampled_from(favourites), st.just([]), st.just([]), st.just(True)),
        st.tuples(st.sampled_from(favourites), _EDITS, _MUTATIONS, framed),
        st.tuples(st.integers(0, len(_SEEDS) - 1), st.just([]), _MUTATIONS, framed),
    )
    return draw(st.lists(message, min_size=2, max_size=12))


_ACTION = st.sampled_from(["white", "black", "grey", "unknown", "failure", "none", "timer"])


def _answer(eir: EirSigtranStack, ev: CheckImeiRequested, how: str) -> None:
    if how in ("white", "black", "grey"):
        status = {
            "white": EquipmentStatus.WHITE_LISTED,
            "black": EquipmentStatus.BLACK_LISTED,
            "grey": EquipmentStatus.GREY_LISTED,
        }[how]
        eir.answer(ev, status, b"\x80\x01\x00" if ev.invoke.requested_bmuef else None)
    elif how == "unknown":
        eir.answer_error(ev, MapError.UNKNOWN_EQUIPMENT)
    elif how == "failure":
        eir.answer_error(ev, MapError.SYSTEM_FAILURE)


def _same_state(a: EirSigtranStack, b: EirSigtranStack) -> None:
    assert a.data_to_send() == b.data_to_send()
    assert a.tcap.stats == b.tcap.stats
    assert a.tcap.active_dialogues == b.tcap.active_dialogues
    assert a.m3ua.state is b.m3ua.state and a.m3ua.closed == b.m3ua.closed
    assert a.get_timer() == b.get_timer()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=_messages(),
    actions=st.lists(_ACTION, min_size=1, max_size=12),
    fresh_otids=st.booleans(),
    cuts=st.lists(st.integers(0, 2000), max_size=6),
    rc=st.sampled_from([5, None]),
    max_dialogues=st.sampled_from([10000, 10000, 10000, 3]),
    addressing=st.booleans(),
)
def test_memo_agrees_with_the_general_path(
    messages: list[tuple[int, list[tuple[int, int]], list[tuple[str, int, int]], bool]],
    actions: list[str],
    fresh_otids: bool,
    cuts: list[int],
    rc: int | None,
    max_dialogues: int,
    addressing: bool,
) -> None:
    """The same stream, in the same chunks, into a stack with the memo and one without: after
    every chunk the same events (routes and invokes included), the same bytes out, counters, open
    dialogues, ASP state and timer; then each request answered (a status, an error, or not at all,
    in stream order) gives the same bytes, and so does letting the dialogues expire."""
    fast, general = _twins(rc, max_dialogues, addressing)
    stream = b""
    for i, (seed, edits, mutations, framed) in enumerate(messages):
        msg = _SEEDS[seed]
        if seed in _DATA_SEEDS and fresh_otids:
            msg = _variable_edit(msg, 0, i, last_otid_octet=True)  # not a replacement, mostly
        for field, value in edits:
            msg = _variable_edit(msg, field, value)
        msg = _mutate(msg, mutations)
        if framed and len(msg) >= 8:
            msg = msg[:4] + len(msg).to_bytes(4, "big") + msg[8:]
        stream += msg
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    now = 0.0
    pending: list[tuple[CheckImeiRequested, CheckImeiRequested]] = []
    took = 0
    refused: set[str] = set()
    for lo, hi in itertools.pairwise(bounds):
        chunk = stream[lo:hi]
        ea = fast.receive_data(chunk, now)
        eb = general.receive_data(chunk, now)
        assert ea == eb
        _same_state(fast, general)
        took += sum(1 for x in ea if isinstance(x, CheckImeiRequested) and x.route.shape is not None)
        refused |= {x.check for x in ea if isinstance(x, MessageRefused)}
        pending += [(x, y) for x, y in zip(ea, eb, strict=True) if isinstance(x, CheckImeiRequested)]
        now += 1.0
    event(f"fast path took {min(took, 3)}{'+' if took >= 3 else ''}")
    if addressing:
        event(f"refused {'+'.join(sorted(refused)) or 'nothing'}")
    for (x, y), how in zip(pending, actions * (1 + len(pending)), strict=False):
        if how == "timer":
            now += 3.0
            assert fast.handle_timer(now) == general.handle_timer(now)
        else:
            _answer(fast, x, how)
            _answer(general, y, how)
        _same_state(fast, general)
    now += 10.0
    assert fast.handle_timer(now) == general.handle_timer(now)
    _same_state(fast, general)
    assert fast.tcap.active_dialogues == 0


def test_a_repeated_begin_takes_the_fast_path_and_answers_alike() -> None:
    """The differential test above is only worth something if the memo is used: after the first
    Begin of a shape, the next ones (new OTID, SLS, invoke id, IMEI) are read by it — and answered
    with the bytes the general path gives."""
    fast, general = _twins()
    assert fast.memo is not None
    begins = [
        _data(_begin(otid=otid, invoke_id=iid, imei=imei), sls=sls)
        for otid, iid, imei, sls in (
            (1, 1, "35809101685355", 0),
            (2, -3, "49015420323751", 9),
            (0xFFFFFFFF, 127, "3569380356438001", 15),
        )
    ]
    seen = []
    for i, b in enumerate(begins):
        shapes = fast.memo.count
        (ea,) = fast.receive_data(b, 0.0)
        (eb,) = general.receive_data(b, 0.0)
        assert ea == eb and isinstance(ea, CheckImeiRequested) and isinstance(eb, CheckImeiRequested)
        assert (ea.route.shape is not None) == (i > 0) and eb.route.shape is None
        assert fast.memo.count == (shapes if i else 1)
        fast.answer(ea, EquipmentStatus.BLACK_LISTED)
        general.answer(eb, EquipmentStatus.BLACK_LISTED)
        _same_state(fast, general)
        seen.append(ea.invoke.imei)
    assert seen == ["358091016853550", "490154203237510", "3569380356438001"]


def test_a_non_decimal_imei_leaves_the_fast_path() -> None:
    """An IMEI octet with a non-decimal digit keeps the shape but not the meaning: the general path
    rejects it (Reject mistypedParameter), so the memo must decline it."""
    fast, general = _twins()
    good = _data(_begin(otid=1))
    bad = _data(_begin(otid=2)).replace(bytes.fromhex("5308"), bytes.fromhex("5c08"), 1)
    assert len(bad) == len(good) and bad != _data(_begin(otid=2))
    for msg in (good, bad):
        assert fast.receive_data(msg, 0.0) == general.receive_data(msg, 0.0)
        _same_state(fast, general)
    assert fast.tcap.stats.rejects_sent == 1


def test_split_and_coalesced_messages() -> None:
    """TCP splits a DATA anywhere and coalesces several: the memo frames as M3UA does."""
    fast, general = _twins()
    stream = b"".join(_data(_begin(otid=i), sls=i % 16) for i in range(1, 40))
    for step in (1, 7, 50, 333):
        for lo in range(0, len(stream), step):
            chunk = stream[lo : lo + step]
            ea, eb = fast.receive_data(chunk, 0.0), general.receive_data(chunk, 0.0)
            assert ea == eb
            for x, y in zip(ea, eb, strict=True):
                if isinstance(x, CheckImeiRequested) and isinstance(y, CheckImeiRequested):
                    fast.answer(x, EquipmentStatus.WHITE_LISTED)
                    general.answer(y, EquipmentStatus.WHITE_LISTED)
            _same_state(fast, general)
    assert fast.tcap.stats.ends_sent == 4 * 39


def test_a_begin_the_memo_declines_is_not_learnt_twice() -> None:
    """A Begin of a known shape that the general path takes (its OTID is pending: a replacement)
    adds no second copy of the shape."""
    fast, general = _twins()
    assert fast.memo is not None
    msg = _data(_begin(otid=7))
    for _ in range(3):
        assert fast.receive_data(msg, 0.0) == general.receive_data(msg, 0.0)
        _same_state(fast, general)
    assert fast.memo.count == 1 and fast.tcap.stats.replaced == 2


_VENDOR_FORMS = [
    {"version": 3, "vendor": "huawei"},
    {"version": 3, "vendor": "ericsson"},
    {"version": 2, "vendor": "huawei"},
    {"version": 3, "vendor": "huawei", "msisdn": "491701234567"},
    {"version": 3, "vendor": "ericsson", "requested_bmuef": True},
]


def test_the_vendor_forms_carrying_an_imsi_take_the_fast_path() -> None:
    """A population load sends an IMSI in every checkIMEI, which only the vendor forms carry: after
    the first Begin of a form, the next ones (new OTID, IMEI and IMSI) are read by the memo, with
    the same events (the vendor variant reported first, the IMSI in the invoke) and answers. The
    IMSIs of the requests are read back independently, by pycrate."""
    from pycrate_asn1dir import TCAP_MAPv2v3

    for form in _VENDOR_FORMS:
        fast, general = _twins()
        assert fast.memo is not None
        imsis = ["262010000000001", "262019999999999", "724340300385763"]
        for i, imsi in enumerate(imsis):
            tcap_data = _begin(otid=100 + i, imei=f"3580910168535{i}", imsi=imsi, **form)  # type: ignore[arg-type]
            msg = _data(tcap_data, sls=i)
            ea, eb = fast.receive_data(msg, 0.0), general.receive_data(msg, 0.0)
            assert ea == eb, form
            accepted, req = ea
            assert accepted.vendor == form["vendor"]
            assert isinstance(req, CheckImeiRequested)
            assert (req.route.shape is not None) == (i > 0), form
            assert req.invoke.imsi == imsi and req.invoke.imei.startswith(f"3580910168535{i}")
            assert req.invoke.msisdn == form.get("msisdn")
            # pycrate reads the message independently: the Ericsson argument with its
            # EnhancedCheckIMEI-Arg type; the Huawei forms (not in its modules) as an argument of
            # unknown type whose octets carry the IMSI element
            pdu = TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message
            pdu.from_ber(tcap_data)
            ((_, (_, invoke)),) = pdu.get_val()[1]["components"]
            assert invoke["opcode"] == ("local", 43)
            argument = invoke["argument"][1]
            if form["vendor"] == "ericsson":
                t = TCAP_MAPv2v3.EricssonMAP_Extensions.EnhancedCheckIMEI_Arg
                t.from_ber(tcap_data[tcap_data.rfind(b"\x02\x01\x2b") + 3 :])
                assert t.get_val()["imsi"] == _tbcd(imsi)
            elif form["version"] == 3:  # an argument of unknown type: its octets
                assert b"\x80\x08" + _tbcd(imsi) in argument
            else:  # pycrate reads the IMEI and stops; the IMSI element follows it
                imei_tlv = b"\x04\x08" + argument
                assert argument == _tbcd(f"3580910168535{i}0")
                assert imei_tlv + b"\x00\x08" + _tbcd(imsi) in tcap_data
            fast.answer(req, EquipmentStatus.GREY_LISTED)
            general.answer(eb[1], EquipmentStatus.GREY_LISTED)  # type: ignore[arg-type]
            _same_state(fast, general)
        assert fast.memo.count == 1
        assert fast.tcap.stats.vendor_variants == {form["vendor"]: 3}


def _tbcd(digits: str) -> bytes:
    digits += "f" * (len(digits) % 2)
    return bytes(int(digits[i + 1] + digits[i], 16) for i in range(0, len(digits), 2))


def test_an_imsi_with_a_non_decimal_digit_leaves_the_fast_path() -> None:
    """The general path reads a non-decimal IMSI as a deviation (no IMSI): the memo declines it."""
    fast, general = _twins()
    good = _data(_begin(otid=1, imsi="262010000000001", version=3, vendor="huawei"))
    bad = _data(_begin(otid=2, imsi="262010000000001", version=3, vendor="huawei"))
    bad = bad.replace(_tbcd("262010000000001"), b"\x62\x02\xc1" + _tbcd("262010000000001")[3:])
    assert len(bad) == len(good)
    for msg in (good, bad):
        ea, eb = fast.receive_data(msg, 0.0), general.receive_data(msg, 0.0)
        assert ea == eb
        _same_state(fast, general)
    assert all(not isinstance(x, CheckImeiRequested) or x.route.shape is None for x in ea)
    assert isinstance(ea[-1], CheckImeiRequested) and ea[-1].invoke.imsi is None
