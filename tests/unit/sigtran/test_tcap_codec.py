"""TCAP codec (Q.773) and the fast path, proved against pycrate's TCAP_MAPv2v3 (the reference).

* the fast encoder's octets == pycrate's encoding of the same values (hypothesis);
* the fast decoder's fields == pycrate's decoded fields (hypothesis);
* fast path and general decoder agree; encode/decode round trips;
* fuzz: random or mutated octets never raise out of ``receive_tcap`` and only
  ``TransactionPortionError`` out of ``decode_tcap``;
* differential: on mutated real Begins (and the vendor traces) the fast path either declines or
  reads exactly what the general decoder reads, down to the core's replies and counters.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from protocols.sigtran import (
    EquipmentStatus,
    MapError,
    TcapEirCore,
    decode_check_imei_arg,
    decode_check_imei_reply,
    encode_check_imei_begin,
    equipment_mngt_acn,
)
from protocols.sigtran._ber import BerError, encode_integer, read_tlv
from protocols.sigtran._tcap_fast import match_check_imei_begin
from protocols.sigtran.tcap import (
    Aare,
    Aarq,
    AbortSource,
    Abrt,
    AssociateResult,
    DiagnosticSource,
    Invoke,
    MessageType,
    ProblemType,
    Reject,
    ReturnError,
    ReturnResult,
    TcapMessage,
    TransactionPortionError,
    decode_oid,
    decode_tcap,
    encode_oid,
    encode_tcap,
)
from testkit.tcap_ref import (
    ref_begin,
    ref_decode,
    ref_encode,
    ref_end,
    ref_error,
    ref_fields,
    ref_reject,
    ref_result,
)

from .traces import TRACE_ARGS

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

tids = st.binary(min_size=1, max_size=4)
invoke_ids = st.integers(min_value=-128, max_value=127)
versions = st.sampled_from([1, 2, 3])
imeis = st.one_of(
    st.text("0123456789", min_size=14, max_size=14),
    st.text("0123456789", min_size=15, max_size=15),
    st.text("0123456789", min_size=16, max_size=16),
)
statuses = st.sampled_from(list(EquipmentStatus))


def _expected_digits(imei: str) -> str:
    return imei + "0" if len(imei) == 14 else imei


@PROPS
@given(otid=tids, version=versions, invoke_id=invoke_ids, imei=imeis, bmuef=st.booleans())
def test_begin_encoder_is_byte_identical_to_pycrate(
    otid: bytes, version: int, invoke_id: int, imei: str, bmuef: bool
) -> None:
    ours = encode_check_imei_begin(
        otid=otid, version=version, invoke_id=invoke_id, imei=imei, requested_bmuef=bmuef
    )
    assert ours == ref_begin(
        otid=otid, version=version, invoke_id=invoke_id, imei=imei, requested_bmuef=bmuef
    )


@PROPS
@given(otid=tids, version=versions, invoke_id=invoke_ids, imei=imeis, bmuef=st.booleans())
def test_decoder_fields_equal_pycrate(
    otid: bytes, version: int, invoke_id: int, imei: str, bmuef: bool
) -> None:
    data = ref_begin(otid=otid, version=version, invoke_id=invoke_id, imei=imei, requested_bmuef=bmuef)
    f = ref_fields(data)
    (ev,) = TcapEirCore().receive_tcap(data, 0.0).invokes
    assert ev.otid == f["otid"] == otid
    assert ev.dialogue_id == int.from_bytes(otid, "big")
    assert ev.invoke_id == f["components"][0]["invokeId"] == invoke_id
    acn = f.get("dialogue.application-context-name")
    assert ev.version == (acn[-1] if acn else 1) == version
    arg = f["components"][0]["argument"]
    imei_octets = arg if version < 3 else arg["imei"]
    assert ev.imei == decode_check_imei_arg(b"\x04\x08" + imei_octets).imei == _expected_digits(imei)
    if version == 3:
        assert ev.requested_bmuef == bool(arg["requestedEquipmentInfo"][0] & 1) == bmuef
    # The fast path and the general decoder see the same message.
    fast = match_check_imei_begin(data)
    general = decode_tcap(data)
    assert fast is not None
    (inv,) = general.components
    assert isinstance(inv, Invoke)
    assert fast == (
        general.otid,
        general.dialogue.acn[-1] if isinstance(general.dialogue, Aarq) else None,
        inv.invoke_id,
        inv.parameter,
    )


@PROPS
@given(
    dtid=tids, version=versions, invoke_id=invoke_ids, status=statuses, bmuef=st.booleans(), err=st.booleans()
)
def test_end_encoder_is_byte_identical_to_pycrate(
    dtid: bytes, version: int, invoke_id: int, status: EquipmentStatus, bmuef: bool, err: bool
) -> None:
    core = TcapEirCore()
    begin = encode_check_imei_begin(
        otid=dtid, version=version, invoke_id=invoke_id, imei="35809101685355", requested_bmuef=bmuef
    )
    (ev,) = core.receive_tcap(begin, 0.0).invokes
    if err:
        ours = core.answer_error(ev, MapError.SYSTEM_FAILURE)
        comp = ref_error(invoke_id, 34)
    else:
        ours = core.answer(ev, status, b"\x80\x02\x07\x80" if bmuef else None)
        comp = ref_result(
            invoke_id, version, status, {"uesbi-IuA": (1, 1)} if bmuef and version == 3 else None
        )
    assert ours == ref_end(dtid=dtid, version=version, components=[comp])


@pytest.mark.parametrize(
    ("msg", "ref"),
    [
        (
            TcapMessage(
                type=MessageType.END,
                dtid=b"\x01",
                components=(Reject(invoke_id=None, problem_type=ProblemType.GENERAL, problem=2),),
            ),
            ("end", {"dtid": b"\x01", "components": [ref_reject(None, "general", 2)]}),
        ),
        (
            TcapMessage(
                type=MessageType.END,
                dtid=b"\x01\x02",
                components=(
                    Reject(invoke_id=-1, problem_type=ProblemType.RETURN_ERROR, problem=4),
                    ReturnError(invoke_id=3, error_code=35),
                ),
            ),
            (
                "end",
                {"dtid": b"\x01\x02", "components": [ref_reject(-1, "returnError", 4), ref_error(3, 35)]},
            ),
        ),
        (
            TcapMessage(type=MessageType.ABORT, dtid=b"\x01\x02\x03", p_abort_cause=4),
            ("abort", {"dtid": b"\x01\x02\x03", "reason": ("p-abortCause", 4)}),
        ),
    ],
)
def test_other_messages_byte_identical_to_pycrate(msg: TcapMessage, ref: Any) -> None:
    assert encode_tcap(msg) == ref_encode(ref)
    assert decode_tcap(encode_tcap(msg)) == msg


def test_u_abort_with_aare_and_abrt_byte_identical_to_pycrate() -> None:
    from testkit.tcap_ref import ref_aare, ref_abrt

    acn = (0, 4, 0, 0, 1, 0, 13, 2)
    aare = Aare(
        acn=acn,
        result=AssociateResult.REJECT_PERMANENT,
        diagnostic_source=DiagnosticSource.DIALOGUE_SERVICE_USER,
        diagnostic=2,
    )
    msg = TcapMessage(type=MessageType.ABORT, dtid=b"\x09", dialogue=aare)
    assert encode_tcap(msg) == ref_encode(
        ("abort", {"dtid": b"\x09", "reason": ("u-abortCause", ref_aare(acn, 1, "dialogue-service-user", 2))})
    )
    assert decode_tcap(encode_tcap(msg)) == msg
    msg = TcapMessage(
        type=MessageType.ABORT, dtid=b"\x09", dialogue=Abrt(source=AbortSource.DIALOGUE_SERVICE_USER)
    )
    assert encode_tcap(msg) == ref_encode(
        ("abort", {"dtid": b"\x09", "reason": ("u-abortCause", ref_abrt(0))})
    )
    assert decode_tcap(encode_tcap(msg)) == msg


def test_indefinite_lengths_take_the_general_path() -> None:
    """Q.773 allows indefinite lengths; pycrate decodes this Begin too, and so must we."""
    inner_dialogue = bytes.fromhex(
        "2880060700118605010101a080608080020780a180060704000001000d030000000000000000"
    )
    comp = bytes.fromhex("a18002010102012b3080040853081910863555f00302068000000000")
    data = (
        bytes.fromhex("6280480401020304")
        + b"\x6b\x80"
        + inner_dialogue
        + b"\x00\x00"
        + b"\x6c\x80"
        + comp
        + b"\x00\x00"
        + b"\x00\x00"
    )
    f = ref_fields(data)
    assert f["dialogue.application-context-name"] == (0, 4, 0, 0, 1, 0, 13, 3)
    assert match_check_imei_begin(data) is None
    core = TcapEirCore()
    (ev,) = core.receive_tcap(data, 0.0).invokes
    assert (ev.version, ev.imei, ev.otid) == (3, "358091016853550", b"\x01\x02\x03\x04")
    reply = core.answer(ev, EquipmentStatus.WHITE_LISTED)
    assert reply is not None and ref_fields(reply)["dtid"] == b"\x01\x02\x03\x04"


def test_high_tag_numbers_and_long_lengths() -> None:
    assert read_tlv(b"\x1f\x81\x00\x00", 0, 4)[0] == (0x1F << 24) | 128
    data = b"\x04\x81\x80" + bytes(128)
    assert read_tlv(data, 0, len(data))[1:] == (3, 131, 131)
    with pytest.raises(BerError):
        read_tlv(b"\x04\x85\x00\x00\x00\x00\x01", 0, 7)


@pytest.mark.parametrize("value", [0, 1, -1, 127, 128, -128, -129, 255, 256, 65535, -65536, 2**31])
def test_encode_integer_matches_twos_complement(value: int) -> None:
    raw = encode_integer(value)
    assert int.from_bytes(raw, "big", signed=True) == value
    assert len(raw) == 1 or raw[0] not in (0, 0xFF) or (raw[0] == 0) != (raw[1] < 0x80)


@given(st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=8))
def test_oid_round_trip(arcs: list[int]) -> None:
    oid = (1, 3, *arcs)
    enc = encode_oid(oid)
    assert decode_oid(enc, 0, len(enc)) == oid


# ---- fuzz: bad input never raises out of the core


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    core = TcapEirCore()
    r = core.receive_tcap(data, 0.0)
    assert isinstance(r.invokes, list)
    with contextlib.suppress(TransactionPortionError):
        decode_tcap(data)
    decode_check_imei_reply(data)


_SEEDS = [
    encode_check_imei_begin(
        otid=0x01020304, version=3, invoke_id=1, imei="358091016853550", requested_bmuef=True
    ),
    encode_check_imei_begin(
        otid=1, version=2, invoke_id=5, imei="35809101685355", imsi="724340300385763", vendor="huawei"
    ),
    encode_check_imei_begin(otid=1, version=1, invoke_id=5, imei="3580910168535501"),
]


@settings(max_examples=400, deadline=None)
@given(
    seed=st.sampled_from(_SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 200),
)
def test_mutated_begins_never_raise(seed: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for pos, val in edits:
        if pos < len(data):
            data[pos] = val
    data = data[: max(cut, len(data) // 2)]
    core = TcapEirCore()
    r = core.receive_tcap(bytes(data), 0.0)
    for ev in r.invokes:
        reply = core.answer(ev, EquipmentStatus.WHITE_LISTED)
        if reply is not None:
            ref_decode(reply)  # whatever we answer, pycrate can decode
    if r.reply is not None:
        ref_decode(r.reply)


@PROPS
@given(
    otid=tids,
    invoke_id=invoke_ids,
    opcode=st.one_of(st.integers(-(2**15), 2**15), st.just((0, 4, 0, 0, 1, 0, 13, 3))),
    param=st.one_of(
        st.none(), st.binary(min_size=2, max_size=20).map(lambda b: b"\x04" + bytes([len(b)]) + b)
    ),
    linked=st.one_of(st.none(), invoke_ids),
)
def test_model_round_trip(
    otid: bytes, invoke_id: int, opcode: int | tuple[int, ...], param: bytes | None, linked: int | None
) -> None:
    msg = TcapMessage(
        type=MessageType.BEGIN,
        otid=otid,
        dialogue=Aarq(acn=(0, 4, 0, 0, 1, 0, 13, 2)),
        components=(
            Invoke(invoke_id=invoke_id, opcode=opcode, linked_id=linked, parameter=param),
            ReturnResult(invoke_id=invoke_id, last=False),
            ReturnError(invoke_id=invoke_id, error_code=opcode),
        ),
    )
    assert decode_tcap(encode_tcap(msg)) == msg


# ---- the fast path against the general decoder, on mutated real Begins (differential)


def _trace_begins() -> list[bytes]:
    """The jSS7 operator-trace parameters (tests/unit/sigtran/traces.py) in real Begins: under the
    trace's own equipmentMngtContext and without dialogue portion (v1), with 1- to 4-octet OTIDs."""
    out = []
    for i, (_label, version, hexparam, *_rest) in enumerate(TRACE_ARGS):
        for v, otid in ((version, bytes(range(1, 2 + i % 4))), (None, b"\x7f")):
            out.append(
                encode_tcap(
                    TcapMessage(
                        type=MessageType.BEGIN,
                        otid=otid,
                        dialogue=None if v is None else Aarq(acn=equipment_mngt_acn(v)),
                        components=(Invoke(invoke_id=i - 1, opcode=43, parameter=bytes.fromhex(hexparam)),),
                    )
                )
            )
    return out


_DIFF_SEEDS = [
    *_SEEDS,
    *_trace_begins(),
    encode_check_imei_begin(otid=b"\x01", version=2, invoke_id=-128, imei="35809101685355"),
    encode_check_imei_begin(otid=b"\x00\x01", version=3, invoke_id=127, imei="3580910168535501"),
    encode_check_imei_begin(
        otid=9, version=3, invoke_id=1, imei="35809101685355", imsi="724340300385763", vendor="ericsson"
    ),
    ref_begin(otid=b"\x0a\x0b\x0c", version=3, invoke_id=3, imei="358091016853550", requested_bmuef=True),
]


def _tlvs(data: bytes, pos: int = 0, end: int | None = None, up: tuple[int, ...] = ()) -> list[tuple]:
    """Every TLV that parses, nested ones included: (length octet position, value start, value end,
    the length octet positions of its enclosing TLVs)."""
    end = len(data) if end is None else end
    out: list[tuple] = []
    while pos < end:
        try:
            _tag, vs, ve, nxt = read_tlv(data, pos, end)
        except BerError:
            break
        out.append((pos + 1, vs, ve, up))  # every tag here is one octet
        if data[pos] & 0x20 and len(up) < 8:
            out += _tlvs(data, vs, ve, (*up, pos + 1))
        pos = nxt
    return out


def _resize(data: bytearray, where: int, value: int, grow: bool) -> None:
    """Insert (or delete) one octet inside a TLV's value and fix its length and every enclosing
    one: the message stays well-formed BER, but an element takes another size (a 5-octet OTID, a
    2-octet invoke id, a longer AARQ ...) — what a canned-shape matcher must not take for its shape."""
    nodes = [n for n in _tlvs(bytes(data)) if grow or n[2] > n[1]]
    if not nodes:
        return
    len_pos, vs, ve, up = nodes[where % len(nodes)]
    lengths = (*up, len_pos)
    if any(data[q] >= (0x7F if grow else 0x80) or (not grow and data[q] == 0) for q in lengths):
        return  # long or indefinite form somewhere: leave it
    if grow:
        data.insert(vs + value % (ve - vs + 1), value)
    else:
        del data[vs + value % (ve - vs)]
    for q in lengths:  # all before the change: positions hold
        data[q] += 1 if grow else -1


def _drop(data: bytearray, where: int) -> None:
    """Remove one whole nested TLV (an OTID, the dialogue portion, the argument ...) and fix the
    lengths that enclose it."""
    nodes = [n for n in _tlvs(bytes(data)) if n[3]]
    if not nodes:
        return
    len_pos, _vs, ve, up = nodes[where % len(nodes)]
    size = ve - (len_pos - 1)
    if any(data[q] >= 0x80 or data[q] < size for q in up):
        return
    del data[len_pos - 1 : ve]
    for q in up:
        data[q] -= size


_MUTATION = st.tuples(
    st.sampled_from(
        ["flip", "set", "insert", "delete", "truncate", "length", "parameter", "grow", "shrink", "drop"]
    ),
    st.integers(0, 255),
    st.integers(0, 255),
)


def _mutate(seed: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(seed)
    for kind, where, value in mutations:
        if not data:
            break
        pos = where % len(data)
        if kind == "parameter":  # an octet near the end: inside the checkIMEI argument
            data[len(data) - 1 - where % min(len(data), 12)] = value
        elif kind == "flip":
            data[pos] ^= 1 << (value % 8)
        elif kind == "set":
            data[pos] = value
        elif kind == "insert":
            data.insert(pos, value)
        elif kind == "delete":
            del data[pos]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "drop":
            _drop(data, where)
        elif kind in ("grow", "shrink"):
            _resize(data, where, value, grow=kind == "grow")
        else:  # a length octet: off by a little, or anything (long / indefinite forms included)
            lengths = [n[0] for n in _tlvs(bytes(data))]
            if lengths:
                at = lengths[where % len(lengths)]
                delta = (-2, -1, 1, 2)[value % 4] if value < 128 else value
                data[at] = (data[at] + delta) % 256 if value < 128 else value
    return bytes(data)


def _without_fast_path(core: TcapEirCore, data: bytes) -> Any:
    from protocols.sigtran import tcap_dialogues

    real = tcap_dialogues.match_check_imei_begin
    tcap_dialogues.match_check_imei_begin = lambda _data: None
    try:
        return core.receive_tcap(data, 0.0, peer="msc", route="back")
    finally:
        tcap_dialogues.match_check_imei_begin = real


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(_DIFF_SEEDS), mutations=st.lists(_MUTATION, max_size=4))
def test_fast_path_agrees_with_the_general_decoder_on_mutated_begins(
    seed: bytes, mutations: list[tuple[str, int, int]]
) -> None:
    """For every mutated Begin (bit flips, octets set / inserted / deleted, truncations, length
    octets changed, an element grown, shrunk or dropped with its lengths fixed — on real Begins and the
    vendor traces): either the fast path declines (None)
    and the general decoder decides alone, or both read the same message — field by field at the
    TCAP level, and at the core level the same invokes, reply, events, stats and End."""
    data = _mutate(seed, mutations)
    fast = match_check_imei_begin(data)
    if fast is None:
        event("fast path declined")
    else:
        event("fast path accepted")
        otid, ac_version, invoke_id, parameter = fast
        general = decode_tcap(data)  # must not raise: the fast path took it as a well-formed Begin
        assert general.type is MessageType.BEGIN and general.otid == otid
        assert general.dialogue_error is None
        if ac_version is None:
            assert general.dialogue is None
        else:
            assert general.dialogue == Aarq(acn=equipment_mngt_acn(ac_version))
        assert general.components == (Invoke(invoke_id=invoke_id, opcode=43, parameter=parameter),)
    with_fast: TcapEirCore[str] = TcapEirCore()
    without: TcapEirCore[str] = TcapEirCore()
    a = with_fast.receive_tcap(data, 0.0, peer="msc", route="back")
    b = _without_fast_path(without, data)
    assert a == b
    assert with_fast.stats == without.stats
    assert with_fast.active_dialogues == without.active_dialogues
    for ev in a.invokes:
        assert with_fast.route_of("msc", ev.otid) == without.route_of("msc", ev.otid) == "back"
        assert with_fast.answer(ev, EquipmentStatus.GREY_LISTED) == without.answer(
            ev, EquipmentStatus.GREY_LISTED
        )


def test_mutations_reach_both_paths() -> None:
    """The differential test above is only worth something if mutants do take the fast path: a
    changed IMEI digit or OTID octet keeps the canonical shape, a changed length octet breaks it."""
    seed = encode_check_imei_begin(otid=0x01020304, version=3, invoke_id=1, imei="358091016853550")
    assert match_check_imei_begin(seed) is not None
    imei_digit = seed.index(bytes.fromhex("53081910")) + 1
    assert match_check_imei_begin(_mutate(seed, [("flip", imei_digit, 0)])) is not None
    assert match_check_imei_begin(_mutate(seed, [("flip", 4, 1)])) is not None  # OTID octet
    assert match_check_imei_begin(_mutate(seed, [("length", 0, 1)])) is None  # outer length + 1
    assert match_check_imei_begin(_mutate(seed, [("truncate", len(seed) - 1, 0)])) is None
