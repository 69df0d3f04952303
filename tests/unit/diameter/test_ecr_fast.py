"""The ECR fast path (``decode_ecr_fast``) against the strict decoder (``decode_ecr_raw``).

The fast path may only say "not the usual shape" (None) or give exactly the event the strict
decoder gives: never accept what the strict decoder refuses, never decode a field differently.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.diameter import EquipmentCheckRequested, RemoteProtocolError
from protocols.diameter import dictionary as d
from protocols.diameter._s13_fast import EcrMemo, decode_ecr_fast
from protocols.diameter.codec import Avp, decode_avps, encode_message, scan_echo_avps
from protocols.diameter.dictionary import APP_S13, VENDOR_3GPP
from protocols.diameter.s13 import InvalidEcrError, build_ecr, decode_ecr_raw

from .helpers import IMEI, ecr_with, pd, pd_avp
from .test_peer import ERROR_CASES, PROXY, _ecr_avps

SHARED = EcrMemo()


def both(wire: bytes) -> tuple[EquipmentCheckRequested | None, EquipmentCheckRequested | RemoteProtocolError]:
    flags = wire[4]
    hbh = int.from_bytes(wire[12:16], "big")
    e2e = int.from_bytes(wire[16:20], "big")
    # inside a larger buffer, as the peer's receive buffer holds it
    buf = bytearray(b"\xaa" * 8 + wire + b"\x01\x00\x00")
    fast = decode_ecr_fast(buf, 8, len(wire), flags, hbh, e2e)
    # with memos: a fresh one (learns, then serves the second decode) and one shared by every
    # test here (primed by other ECRs): the memo may only save work, never change the outcome
    fresh = EcrMemo()
    for memo in (fresh, fresh, SHARED):
        assert decode_ecr_fast(buf, 8, len(wire), flags, hbh, e2e, memo) == fast
    try:
        strict: EquipmentCheckRequested | RemoteProtocolError = decode_ecr_raw(
            buf, 8, len(wire), flags, hbh, e2e
        )
    except RemoteProtocolError as e:
        strict = e
    return fast, strict


def assert_same(wire: bytes) -> EquipmentCheckRequested | None:
    fast, strict = both(wire)
    if fast is not None:
        assert isinstance(strict, EquipmentCheckRequested), f"fast path accepted a refused ECR: {strict}"
        assert fast == strict
        assert dataclasses.astuple(fast) == dataclasses.astuple(strict)
        assert fast.session_id_avp == strict.session_id_avp and fast.proxy_info == strict.proxy_info
    return fast


def wire_of(**kw: Any) -> bytes:
    args: dict[str, Any] = {
        "session_id": "mme.lab;1;1",
        "origin_host": "mme.lab",
        "origin_realm": "lab",
        "destination_realm": "localdomain",
        "imei": IMEI,
        "software_version": "01",
        "imsi": "001010123456789",
        "hop_by_hop": 0x1234,
        "end_to_end": 0x5678,
    } | kw
    return encode_message(build_ecr(**args))


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"software_version": None},
        {"imsi": None},
        {"software_version": None, "imsi": None},
        {"imei": "351234567890123"},
        {"imei": "3512345678901234", "software_version": None},
        {"destination_host": "eir.localdomain"},
        {"session_id": "mme.lab;4294967295;77;s13_mme"},
        {"session_id": "mmé;ünicode;1"},
        {"imsi": "00101"},
    ],
)
def test_usual_ecrs_take_the_fast_path_with_the_same_fields(kw: dict[str, Any]) -> None:
    wire = wire_of(**kw)
    ev = assert_same(wire)
    assert ev is not None
    # and the independent decoder reads the same fields
    m = pd(wire)
    assert m.header.hop_by_hop_identifier == ev.hop_by_hop and m.header.end_to_end_identifier == ev.end_to_end
    assert pd_avp(m, 263) == ev.session_id
    assert pd_avp(m, 264) == ev.origin_host.encode() and pd_avp(m, 296) == ev.origin_realm.encode()
    assert pd_avp(m, 283) == ev.destination_realm.encode()
    assert (pd_avp(m, 1) or None) == ev.imsi
    ti = {(a.code, a.vendor_id): a.value for a in pd_avp(m, 1401, VENDOR_3GPP)}
    assert ti[(1402, VENDOR_3GPP)] == ev.imei
    assert ti.get((1403, VENDOR_3GPP)) == ev.software_version


def test_any_avp_order_takes_the_fast_path() -> None:
    m = build_ecr(
        session_id="s;1",
        origin_host="mme.lab",
        origin_realm="lab",
        destination_realm="d",
        imei=IMEI,
        software_version="07",
        imsi="001010000000001",
    )
    m.avps.reverse()
    assert assert_same(encode_message(m)) is not None


@pytest.mark.parametrize(
    "avps",
    [
        pytest.param(lambda: _ecr_avps(), id="proxy-info"),
        pytest.param(lambda: [*_ecr_avps()[:-1], Avp(282, 0x40, 0, b"dra.lab")], id="route-record"),
        pytest.param(lambda: [*_ecr_avps()[:-1], Avp(3301, 0x00, 0, b"\0\0\0\1")], id="drmp"),
        pytest.param(lambda: [*_ecr_avps()[:-1], Avp(99999, 0x00, 0, b"x")], id="unknown-optional-avp"),
        pytest.param(lambda: _ecr_avps(terminal=d.MEID_3GPP2.encode(b"\xa0" * 7))[:-1], id="meid-only"),
        pytest.param(
            lambda: _ecr_avps(terminal=d.IMEI.encode(IMEI) + d.MEID_3GPP2.encode(b"\xa0" * 7))[:-1],
            id="imei-and-meid",
        ),
        pytest.param(
            lambda: [Avp(263, 0x40, 0, b"\xff\xfe") if a.code == 263 else a for a in _ecr_avps()[:-1]],
            id="session-id-not-utf8",
        ),
        pytest.param(
            lambda: [Avp(264, 0x40, 0, b"mme lab") if a.code == 264 else a for a in _ecr_avps()[:-1]],
            id="origin-host-with-space",
        ),
        pytest.param(
            lambda: [Avp(264, 0x40, 0, b"") if a.code == 264 else a for a in _ecr_avps()[:-1]],
            id="origin-host-empty",
        ),
        pytest.param(
            lambda: [Avp(277, 0x40, 0, b"\0\0\1") if a.code == 277 else a for a in _ecr_avps()[:-1]],
            id="auth-session-state-3-bytes",
        ),
    ],
)
def test_unusual_ecrs_fall_back(avps: Any) -> None:
    wire = ecr_with(avps())
    fast, strict = both(wire)
    assert fast is None
    assert isinstance(strict, EquipmentCheckRequested | RemoteProtocolError)


@pytest.mark.parametrize("request_bytes", [c[1] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_every_error_case_falls_back(request_bytes: Any) -> None:
    fast, _strict = both(request_bytes())
    assert fast is None


def test_vsai_variants_are_checked_like_the_strict_decoder() -> None:
    base = [a for a in _ecr_avps() if a.code != 284]
    for vsai in (
        d.VENDOR_ID.encode(VENDOR_3GPP) + d.AUTH_APPLICATION_ID.encode(APP_S13),
        d.AUTH_APPLICATION_ID.encode(APP_S13) + d.VENDOR_ID.encode(VENDOR_3GPP),
        d.VENDOR_ID.encode(VENDOR_3GPP) + d.ACCT_APPLICATION_ID.encode(APP_S13),
        d.VENDOR_ID.encode(VENDOR_3GPP) + Avp(266, 0x40, 0, b"\0\0\1").encode(),  # 3-byte Vendor-Id
        d.VENDOR_ID.encode(VENDOR_3GPP) + Avp(99999, 0x40, 0, b"x").encode(),  # unknown mandatory
        d.VENDOR_ID.encode(VENDOR_3GPP) + b"\0\0\1",  # truncated member
    ):
        avps = [Avp(260, 0x40, 0, vsai) if a.code == 260 else a for a in base]
        for _ in range(2):  # the second time from the memo of accepted payloads
            assert_same(ecr_with(avps))


# --- generated ECRs -------------------------------------------------------------------------------

_IDENT = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
_DIGITS = st.text(st.sampled_from("0123456789"), min_size=14, max_size=16)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    session=st.text(max_size=60),
    origin_host=_IDENT,
    origin_realm=_IDENT,
    destination_realm=_IDENT,
    destination_host=st.none() | _IDENT,
    imei=_DIGITS,
    sv=st.none() | st.text(st.sampled_from("0123456789"), min_size=2, max_size=2),
    imsi=st.none() | st.text(max_size=20),
    order=st.randoms(use_true_random=False),
    hbh=st.integers(0, 2**32 - 1),
    flags=st.sampled_from([0xC0, 0x80, 0xD0, 0x90]),
)
def test_generated_ecrs_decode_the_same(
    session: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    destination_host: str | None,
    imei: str,
    sv: str | None,
    imsi: str | None,
    order: Any,
    hbh: int,
    flags: int,
) -> None:
    m = build_ecr(
        session_id=session,
        origin_host=origin_host,
        origin_realm=origin_realm,
        destination_realm=destination_realm,
        destination_host=destination_host,
        imei=imei,
        software_version=sv,
        imsi=imsi,
        hop_by_hop=hbh,
        end_to_end=hbh ^ 0xFFFF,
    )
    order.shuffle(m.avps)
    m.flags = flags
    ev = assert_same(encode_message(m))
    assert ev is not None
    assert (ev.imei, ev.software_version, ev.imsi, ev.origin_host) == (imei, sv, imsi, origin_host)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_ecrs_never_disagree(data: st.DataObject) -> None:
    avps = [a for a in decode_avps(PROXY, 0, len(PROXY))] if data.draw(st.booleans()) else []
    wire = bytearray(ecr_with([a for a in _ecr_avps() if a.code != 284] + avps))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(20, len(wire) - 1))
        wire[i] = data.draw(st.integers(0, 255))
    assert_same(bytes(wire))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_refused_ecrs_carry_what_their_answer_repeats(data: st.DataObject) -> None:
    # The strict decoder notes Session-Id and Proxy-Info on its one pass; that must equal a scan of
    # the whole message by AVP headers (what the peer did before, on a second walk).
    avps = _ecr_avps()
    if data.draw(st.booleans()):
        avps.append(Avp(263, 0x40, 0, b"second;session"))
    wire = bytearray(ecr_with(data.draw(st.permutations(avps))))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(20, len(wire) - 1))
        wire[i] = data.draw(st.integers(0, 255))
    try:
        decode_ecr_raw(wire, 0, len(wire), 0xC0, 1, 2)
    except InvalidEcrError as e:
        assert (e.session_id_avp, e.proxy_info) == scan_echo_avps(wire, 20, len(wire))


def test_memo_serves_the_constant_run_and_follows_changes() -> None:
    memo = EcrMemo()
    wires = [
        wire_of(session_id="a;1"),
        wire_of(session_id="a;22", imei="35123456789013", imsi="001010000000002"),  # same run
        wire_of(session_id="a;3", origin_host="mme2.lab"),  # another run
        wire_of(session_id="a;4", destination_host="eir.localdomain"),  # a longer run
        wire_of(session_id="a;5"),  # the first run again: a prefix of the memo's, no match
    ]
    runs = []
    for w in wires:
        ev = decode_ecr_fast(w, 0, len(w), w[4], 1, 2, memo)
        assert ev is not None and ev == decode_ecr_raw(w, 0, len(w), w[4], 1, 2)
        runs.append(memo.run)
    assert runs[0] == runs[1] and runs[2] != runs[1] and runs[3] != runs[2]
    assert memo.values == ("mme.lab", "lab", "localdomain", None, True)


def test_memo_run_followed_by_a_duplicate_identity() -> None:
    m = build_ecr(
        session_id="s;1",
        origin_host="mme.lab",
        origin_realm="lab",
        destination_realm="d",
        imei=IMEI,
        imsi="001010000000001",
    )
    m.avps.append(d.ORIGIN_HOST.make("other.lab"))  # after the run: the last one wins, as strictly
    memo = EcrMemo()
    for _ in range(2):
        w = encode_message(m)
        ev = decode_ecr_fast(w, 0, len(w), w[4], 1, 2, memo)
        assert ev is not None and ev.origin_host == "other.lab"
        assert ev == decode_ecr_raw(w, 0, len(w), w[4], 1, 2)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutations_after_a_primed_memo_never_disagree(data: st.DataObject) -> None:
    base = ecr_with([a for a in _ecr_avps() if a.code != 284])
    memo = EcrMemo()
    assert decode_ecr_fast(base, 0, len(base), base[4], 1, 2, memo) is not None and memo.run
    wire = bytearray(base)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(20, len(wire) - 1))
        wire[i] = data.draw(st.integers(0, 255))
    try:
        strict: EquipmentCheckRequested | None = decode_ecr_raw(wire, 0, len(wire), 0xC0, 1, 2)
    except RemoteProtocolError:
        strict = None
    fast = decode_ecr_fast(wire, 0, len(wire), 0xC0, 1, 2, memo)
    assert fast is None or fast == strict
    assert fast == decode_ecr_fast(wire, 0, len(wire), 0xC0, 1, 2)
