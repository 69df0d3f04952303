"""MAP checkIMEI on the EIR side: TcapEirCore behaviour, vendor traces, AC negotiation, error paths.

Every reply the core builds is decoded by pycrate's TCAP_MAPv2v3 (an independent decoder) and the
fields asserted, so a bug cannot hide by being symmetric.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.sigtran import (
    CheckImeiInvoked,
    EquipmentStatus,
    MapError,
    MapParameterError,
    MapVendorVariantAccepted,
    TcapEirCore,
    TcapErrorKind,
    TcapProtocolErrorOccurred,
    decode_check_imei_arg,
    decode_check_imei_reply,
    decode_check_imei_res,
    encode_check_imei_arg,
    encode_check_imei_begin,
    equipment_mngt_acn,
)
from protocols.sigtran.tcap import (
    Aarq,
    Component,
    Invoke,
    InvokeProblem,
    MessageType,
    ProblemType,
    Reject,
    ReturnError,
    ReturnResult,
    ReturnResultProblem,
    TcapMessage,
    encode_tcap,
)
from protocols.sigtran.tcap_dialogues import TRANSITIONS, DialogueAction, DialogueInput, DialogueState
from testkit.tcap_ref import ref_fields

from .traces import TRACE_ARGS, TRACE_RESULT_V2

OTID = b"\x0a\x0b\x0c\x0d"
IMEI = "358091016853550"


def begin(*components: Component, version: int | None = 3, otid: bytes = OTID) -> bytes:
    """A Begin carrying ``components`` (raw parameters) under equipmentMngtContext-v``version``."""
    dialogue = None if version is None else Aarq(acn=equipment_mngt_acn(version))
    return encode_tcap(
        TcapMessage(type=MessageType.BEGIN, otid=otid, dialogue=dialogue, components=components)
    )


def check_imei(invoke_id: int = 1, param: bytes | None = None, version: int = 3) -> Invoke:
    if param is None:
        param = encode_check_imei_arg(version=version, imei=IMEI)
    return Invoke(invoke_id=invoke_id, opcode=43, parameter=param)


def only_invoke(core: TcapEirCore, data: bytes, now: float = 0.0) -> CheckImeiInvoked:
    r = core.receive_tcap(data, now)
    assert r.reply is None, r
    assert len(r.invokes) == 1
    return r.invokes[0]


# ---------------------------------------------------------------------------------------------
# The jSS7 trace rows (tests/unit/sigtran/traces.py): expected values are the ones jSS7 asserts.


@pytest.mark.parametrize(("label", "version", "hexparam", "imei", "imsi", "msisdn", "vendor"), TRACE_ARGS)
def test_trace_arguments_are_answered(
    label: str,
    version: int,
    hexparam: str,
    imei: str,
    imsi: str | None,
    msisdn: str | None,
    vendor: str | None,
) -> None:
    arg = decode_check_imei_arg(bytes.fromhex(hexparam))
    assert (arg.imei, arg.imsi, arg.msisdn, arg.vendor) == (imei, imsi, msisdn, vendor)
    assert arg.requested_equipment_status and not arg.requested_bmuef
    assert bool(arg.deviations) == (label != "checkimei_arg_v2_real")

    core = TcapEirCore()
    ev = only_invoke(core, begin(check_imei(5, bytes.fromhex(hexparam)), version=version))
    assert (ev.version, ev.imei, ev.imsi, ev.msisdn, ev.vendor) == (version, imei, imsi, msisdn, vendor)
    end = core.answer(ev, EquipmentStatus.BLACK_LISTED)
    assert end is not None
    f = ref_fields(end)  # the standard answer, whatever the vendor sent
    assert f["kind"] == "end" and f["dtid"] == OTID
    assert f["dialogue"] == "dialogueResponse" and f["dialogue.result"] == 0
    assert f["dialogue.application-context-name"] == equipment_mngt_acn(version)
    (c,) = f["components"]
    assert c["kind"] == "returnResult" and c["invokeId"] == 5 and c["opcode"] == 43
    if version == 2:
        assert (c["result_type"], c["result"]) == ("EquipmentStatus", "blackListed")
    else:
        assert (c["result_type"], c["result"]) == ("CheckIMEI-Res", {"equipmentStatus": "blackListed"})


def test_trace_result_v2_real() -> None:
    """checkimei_res_v2_real ``0a 01 00``: white-listed, also through a whole End."""
    assert decode_check_imei_res(bytes.fromhex(TRACE_RESULT_V2)) == (EquipmentStatus.WHITE_LISTED, None)
    end = encode_tcap(
        TcapMessage(
            type=MessageType.END,
            dtid=b"\x01",
            components=(ReturnResult(invoke_id=1, opcode=43, parameter=bytes.fromhex(TRACE_RESULT_V2)),),
        )
    )
    assert ref_fields(end)["components"][0]["result"] == "whiteListed"
    out = decode_check_imei_reply(end)
    assert out.status is EquipmentStatus.WHITE_LISTED and out.dtid == 1 and out.raw_kind == "end"


def test_ericsson_enhanced_check_imei_private_imsi() -> None:
    """Ericsson EnhancedCheckIMEI-Arg (opcode 43): imsi [PRIVATE 1], locationInformation [PRIVATE 3].

    The octets come from pycrate's EricssonMAP-Extensions module (the same ASN.1 as Wireshark's
    Ericsson.asn), not from our encoder.
    """
    from pycrate_asn1dir import TCAP_MAPv2v3

    t = TCAP_MAPv2v3.EricssonMAP_Extensions.EnhancedCheckIMEI_Arg
    t.set_val(
        {
            "imei": bytes.fromhex("53081910863555f0"),
            "requestedEquipmentInfo": (2, 2),
            "imsi": bytes.fromhex("27340403305867f3"),
            "locationInformation": b"\x01\x02\x03",
        }
    )
    param = t.to_ber()
    assert b"\xc1\x08" in param and b"\xc3\x03" in param
    arg = decode_check_imei_arg(param)
    assert (arg.imei, arg.imsi, arg.vendor) == (IMEI, "724340300385763", "ericsson")
    # And our MSC-side encoder produces what pycrate reads as EnhancedCheckIMEI-Arg.
    ours = encode_check_imei_arg(version=3, imei=IMEI, imsi="724340300385763", vendor="ericsson")
    t.from_ber(ours)
    assert t.get_val()["imsi"] == bytes.fromhex("27340403305867f3")
    core = TcapEirCore()
    ev = only_invoke(
        core,
        encode_check_imei_begin(
            otid=9, version=3, invoke_id=1, imei=IMEI, imsi="724340300385763", vendor="ericsson"
        ),
    )
    assert (ev.imsi, ev.vendor) == ("724340300385763", "ericsson")


def test_vendor_variants_are_counted_by_vendor() -> None:
    """``stats.vendor_variants``: every accepted invoke in a non-standard form, by vendor — the
    Huawei trace rows, the jSS7-wrapped IMEI as ``other``, and Ericsson's EnhancedCheckIMEI-Arg
    (no deviation note, but a vendor form all the same). A standard invoke and a refused one
    (mistyped parameter) count nothing. Each counted invoke is reported by exactly one
    MapVendorVariantAccepted — a fact, not a protocol error: no TcapProtocolErrorOccurred."""
    core = TcapEirCore()
    reported: list[MapVendorVariantAccepted] = []
    for otid, (label, version, hexparam, *_rest, vendor) in enumerate(TRACE_ARGS, start=1):
        data = begin(check_imei(1, bytes.fromhex(hexparam)), version=version, otid=otid.to_bytes(4, "big"))
        r = core.receive_tcap(data, 0.0)
        assert len(r.invokes) == 1 and r.reply is None
        assert not [e for e in r.events if isinstance(e, TcapProtocolErrorOccurred)], label
        if label == "checkimei_arg_v2_real":
            assert r.events == []
            continue
        (ev,) = r.events
        assert isinstance(ev, MapVendorVariantAccepted)
        assert ev.vendor == (vendor or "other") and ev.dialogue_id == otid and ev.detail
        reported.append(ev)
    ericsson = encode_check_imei_begin(
        otid=99, version=3, invoke_id=1, imei=IMEI, imsi="724340300385763", vendor="ericsson"
    )
    assert (
        decode_check_imei_arg(
            encode_check_imei_arg(version=3, imei=IMEI, imsi="724340300385763", vendor="ericsson")
        ).deviations
        == ()
    )
    r = core.receive_tcap(ericsson, 0.0)
    assert len(r.invokes) == 1
    assert r.events == [MapVendorVariantAccepted(vendor="ericsson", detail="", dialogue_id=99)]
    reported.append(r.events[0])
    r = core.receive_tcap(begin(check_imei(1, b"\x05\x00"), otid=b"\x00\x00\x00\x64"), 0.0)  # NULL
    assert [e.kind for e in r.events if isinstance(e, TcapProtocolErrorOccurred)] == [
        TcapErrorKind.MISTYPED_PARAMETER,
        TcapErrorKind.REJECT_SENT,
    ]
    assert core.stats.vendor_variants == {"huawei": 4, "other": 1, "ericsson": 1}
    assert sum(core.stats.vendor_variants.values()) == len(reported)
    assert core.stats.invokes == len(TRACE_ARGS) + 1


def test_error_kinds_are_the_metric_labels() -> None:
    """``kind`` is a StrEnum: the ``tcap_<kind>`` metric labels stay the strings they were, and a
    vendor variant is no longer one of them (it has its own event)."""
    assert {str(k) for k in TcapErrorKind} == {
        "p_abort_sent",
        "reject_sent",
        "acn_not_supported",
        "abnormal_dialogue",
        "resource_limitation",
        "discarded",
        "unexpected_message",
        "abort_received",
        "duplicate_otid",
        "mistyped_parameter",
        "bad_component",
    }
    assert f"tcap_{TcapErrorKind.DUPLICATE_OTID}" == "tcap_duplicate_otid"
    for k in TcapErrorKind:
        assert k.__doc__, k  # each member says what it means


@pytest.mark.parametrize(
    ("decode", "data", "hint"),
    [
        (decode_check_imei_arg, b"\x05\x00", InvokeProblem.MISTYPED_PARAMETER),
        (decode_check_imei_arg, b"\x30\x03\x03\x01\x00", InvokeProblem.MISTYPED_PARAMETER),
        (decode_check_imei_res, b"\x0a\x01\x07", ReturnResultProblem.MISTYPED_PARAMETER),
        (decode_check_imei_res, b"\x30\x05\x0a", ReturnResultProblem.MISTYPED_PARAMETER),
        (decode_check_imei_res, b"\x04\x00", ReturnResultProblem.MISTYPED_PARAMETER),
    ],
)
def test_parameter_errors_carry_the_reject_problem(decode: Any, data: bytes, hint: int) -> None:
    with pytest.raises(MapParameterError) as info:
        decode(data)
    assert info.value.wire_hint == hint and type(info.value.wire_hint) is type(hint)


@pytest.mark.parametrize("version", [2, 3])
def test_huawei_encoder_round_trips(version: int) -> None:
    data = encode_check_imei_begin(
        otid=7, version=version, invoke_id=2, imei=IMEI, imsi="410018488851657", vendor="huawei"
    )
    ev = only_invoke(TcapEirCore(), data)
    assert (ev.imei, ev.imsi, ev.vendor, ev.version) == (IMEI, "410018488851657", "huawei", version)
    assert ev.deviations


def test_imsi_without_vendor_is_refused_by_the_client_encoder() -> None:
    with pytest.raises(ValueError):
        encode_check_imei_begin(otid=1, version=3, invoke_id=1, imei=IMEI, imsi="001010123456789")


# ---------------------------------------------------------------------------------------------
# Normal operation


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("status", list(EquipmentStatus))
def test_begin_is_answered_by_end_with_result(version: int, status: EquipmentStatus) -> None:
    core = TcapEirCore()
    data = encode_check_imei_begin(otid=0x01020304, version=version, invoke_id=7, imei=IMEI)
    ev = only_invoke(core, data)
    assert (ev.dialogue_id, ev.invoke_id, ev.version, ev.imei) == (0x01020304, 7, version, IMEI)
    end = core.answer(ev, status)
    assert end is not None
    f = ref_fields(end)
    assert f["kind"] == "end" and f["dtid"] == b"\x01\x02\x03\x04"
    if version == 1:
        assert "dialogue" not in f  # MAP v1: no dialogue portion (TS 29.002 §12.1)
    else:
        assert f["dialogue"] == "dialogueResponse"
        assert f["dialogue.result"] == 0
        assert f["dialogue.result-source-diagnostic"] == ("dialogue-service-user", 0)
        assert f["dialogue.application-context-name"] == (0, 4, 0, 0, 1, 0, 13, version)
    (c,) = f["components"]
    names = ["whiteListed", "blackListed", "greyListed"]
    expected = names[status] if version < 3 else {"equipmentStatus": names[status]}
    assert (c["kind"], c["invokeId"], c["opcode"], c["result"]) == ("returnResult", 7, 43, expected)
    out = decode_check_imei_reply(end)
    assert out.status is status and out.dtid == 0x01020304 and not out.aborted
    assert core.active_dialogues == 0


def test_v3_bmuef_requested_and_returned() -> None:
    core = TcapEirCore()
    ev = only_invoke(
        core, encode_check_imei_begin(otid=1, version=3, invoke_id=1, imei=IMEI, requested_bmuef=True)
    )
    assert ev.requested_bmuef and ev.requested_equipment_status
    end = core.answer(ev, EquipmentStatus.GREY_LISTED, bmuef=b"\x80\x02\x07\x80")
    assert end is not None
    res = ref_fields(end)["components"][0]["result"]
    assert res == {"equipmentStatus": "greyListed", "bmuef": {"uesbi-IuA": (1, 1)}}
    out = decode_check_imei_reply(end)
    assert out.bmuef == b"\x80\x02\x07\x80" and out.version == 3


def test_bmuef_not_sent_when_not_requested() -> None:
    core = TcapEirCore()
    ev = only_invoke(core, encode_check_imei_begin(otid=1, version=3, invoke_id=1, imei=IMEI))
    end = core.answer(ev, EquipmentStatus.WHITE_LISTED, bmuef=b"\x80\x02\x07\x80")
    assert end is not None
    assert ref_fields(end)["components"][0]["result"] == {"equipmentStatus": "whiteListed"}


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("error", list(MapError))
def test_answer_error(version: int, error: MapError) -> None:
    core = TcapEirCore()
    ev = only_invoke(core, encode_check_imei_begin(otid=3, version=version, invoke_id=-2, imei=IMEI))
    end = core.answer_error(ev, error)
    assert end is not None
    f = ref_fields(end)
    (c,) = f["components"]
    assert (c["kind"], c["invokeId"], c["errcode"]) == ("returnError", -2, int(error))
    assert decode_check_imei_reply(end).error == int(error)


def test_several_invokes_in_one_begin_answered_in_one_end() -> None:
    core = TcapEirCore()
    data = begin(check_imei(1), check_imei(2, encode_check_imei_arg(version=3, imei="35209900176148")))
    r = core.receive_tcap(data, 0.0)
    assert r.reply is None and [e.invoke_id for e in r.invokes] == [1, 2]
    assert r.invokes[1].imei == "352099001761480"
    # Answer out of order: nothing is sent until both are answered; the End keeps Begin order.
    assert core.answer(r.invokes[1], EquipmentStatus.BLACK_LISTED) is None
    end = core.answer_error(r.invokes[0], MapError.UNKNOWN_EQUIPMENT)
    assert end is not None
    comps = ref_fields(end)["components"]
    assert [(c["kind"], c["invokeId"]) for c in comps] == [("returnError", 1), ("returnResult", 2)]
    assert core.answer(r.invokes[0], EquipmentStatus.WHITE_LISTED) is None  # already answered
    assert core.active_dialogues == 0


# ---------------------------------------------------------------------------------------------
# Component errors → Reject (Q.774 §3.2.2)


def test_unknown_operation_is_rejected_in_an_end() -> None:
    core = TcapEirCore()
    r = core.receive_tcap(begin(Invoke(invoke_id=4, opcode=2, parameter=b"\x04\x01\x00")), 0.0)
    assert r.invokes == [] and r.reply is not None
    f = ref_fields(r.reply)
    assert f["kind"] == "end" and f["dtid"] == OTID and f["dialogue.result"] == 0
    assert f["components"] == [{"kind": "reject", "invokeId": 4, "problem": ("invoke", 1)}]
    assert [e.kind for e in r.events] == ["reject_sent"]
    assert decode_check_imei_reply(r.reply).rejected


def test_reject_is_held_until_the_check_imei_is_answered() -> None:
    core = TcapEirCore()
    r = core.receive_tcap(begin(Invoke(invoke_id=1, opcode=99), check_imei(2)), 0.0)
    assert r.reply is None and len(r.invokes) == 1
    end = core.answer(r.invokes[0], EquipmentStatus.WHITE_LISTED)
    assert end is not None
    comps = ref_fields(end)["components"]
    assert [c["kind"] for c in comps] == ["reject", "returnResult"]
    assert comps[0]["problem"] == ("invoke", 1)


@pytest.mark.parametrize(
    ("components", "problem"),
    [
        ((check_imei(1), check_imei(1)), ("invoke", 0)),  # duplicate invoke id (second one)
        ((Invoke(invoke_id=1, opcode=43, parameter=b"\x05\x00"),), ("invoke", 2)),  # mistyped
        ((Invoke(invoke_id=1, opcode=43),), ("invoke", 2)),  # no argument
        ((Invoke(invoke_id=1, opcode=43, parameter=b"\x04\x03\x5a\xff\xff"),), ("invoke", 2)),  # non-digit
        ((Invoke(invoke_id=1, opcode=43, linked_id=3, parameter=b"\x04\x08" + b"\x11" * 8),), ("invoke", 5)),
        ((Invoke(invoke_id=1, opcode=(1, 2, 3)),), ("invoke", 1)),  # global opcode
        ((ReturnResult(invoke_id=9),), ("returnResult", 0)),
    ],
)
def test_component_problems(components: tuple[Invoke | ReturnResult, ...], problem: tuple[str, int]) -> None:
    core = TcapEirCore()
    r = core.receive_tcap(begin(*components), 0.0)
    for ev in r.invokes:
        r2 = core.answer(ev, EquipmentStatus.WHITE_LISTED)
        assert r2 is not None
        reply = r2
        break
    else:
        assert r.reply is not None
        reply = r.reply
    comps = ref_fields(reply)["components"]
    assert any(c["kind"] == "reject" and c["problem"] == problem for c in comps), comps


def test_stray_return_error_and_reject_in_a_begin() -> None:
    """A ReturnError in a Begin answers nothing of ours: Reject returnError unrecognizedInvokeID; a
    Reject in a Begin refers to nothing of ours and gets nothing (Q.774 §3.2.2.3). Each is reported
    with its TcapErrorKind."""
    r = TcapEirCore().receive_tcap(
        begin(
            ReturnError(invoke_id=3, error_code=34),
            Reject(invoke_id=4, problem_type=ProblemType.INVOKE, problem=1),
        ),
        0.0,
    )
    assert r.invokes == [] and r.reply is not None
    f = ref_fields(r.reply)
    assert f["kind"] == "end" and f["components"] == [
        {"kind": "reject", "invokeId": 3, "problem": ("returnError", 0)}
    ]
    assert [e.kind for e in r.events] == [TcapErrorKind.REJECT_SENT, TcapErrorKind.UNEXPECTED_MESSAGE]


def test_oversized_message_is_discarded() -> None:
    r = TcapEirCore().receive_tcap(b"\x62\x83\x01\x00\x00" + bytes(65_536), 0.0)
    assert r.invokes == [] and r.reply is None
    assert [e.kind for e in r.events] == [TcapErrorKind.DISCARDED] and "too big" in r.events[0].detail


def test_badly_structured_component_gets_general_problem() -> None:
    good = begin(check_imei(1))
    # Replace the component portion by an Invoke whose opcode is missing: a1 03 02 01 01.
    data = good[: good.index(b"\x6c")] + bytes.fromhex("6c05a103020101")
    data = bytes([0x62, len(data) - 2]) + data[2:]
    r = TcapEirCore().receive_tcap(data, 0.0)
    assert r.reply is not None
    comps = ref_fields(r.reply)["components"]
    assert comps == [{"kind": "reject", "invokeId": 1, "problem": ("general", 1)}]


def test_unrecognized_component_tag_gets_general_problem_without_invoke_id() -> None:
    good = begin(check_imei(1))
    data = good[: good.index(b"\x6c")] + bytes.fromhex("6c04a9020500")
    data = bytes([0x62, len(data) - 2]) + data[2:]
    r = TcapEirCore().receive_tcap(data, 0.0)
    assert r.reply is not None
    assert ref_fields(r.reply)["components"] == [
        {"kind": "reject", "invokeId": None, "problem": ("general", 0)}
    ]


def test_begin_without_components_is_ended_cleanly() -> None:
    r = TcapEirCore().receive_tcap(begin(), 0.0)
    assert r.reply is not None
    f = ref_fields(r.reply)
    assert f["kind"] == "end" and f["dialogue.result"] == 0 and f["components"] == []


# ---------------------------------------------------------------------------------------------
# Application-context negotiation (TS 29.002 §12.1, Q.773 AARE)


@pytest.mark.parametrize(("supported", "offered"), [((1, 2), 2), ((1,), 1)])
def test_unsupported_version_gets_u_abort_with_highest_supported_context(
    supported: tuple[int, ...], offered: int
) -> None:
    core = TcapEirCore(supported_versions=supported)
    r = core.receive_tcap(encode_check_imei_begin(otid=0x77, version=3, invoke_id=1, imei=IMEI), 0.0)
    assert r.invokes == [] and r.reply is not None
    f = ref_fields(r.reply)
    assert f["kind"] == "abort" and f["dtid"] == b"\x00\x00\x00\x77"
    assert f["dialogue"] == "dialogueResponse"
    assert f["dialogue.result"] == 1  # reject-permanent
    assert f["dialogue.result-source-diagnostic"] == ("dialogue-service-user", 2)  # ACN not supported
    assert f["dialogue.application-context-name"] == equipment_mngt_acn(offered)
    assert [e.kind for e in r.events] == ["acn_not_supported"]
    out = decode_check_imei_reply(r.reply)
    assert out.aborted and out.abort_supported_version == offered and out.raw_kind == "u_abort"


def test_msc_falls_back_from_v3_to_v2() -> None:
    core = TcapEirCore(supported_versions=(2,))
    out = decode_check_imei_reply(
        core.receive_tcap(encode_check_imei_begin(otid=1, version=3, invoke_id=1, imei=IMEI), 0.0).reply
        or b""
    )
    assert out.abort_supported_version == 2
    ev = only_invoke(
        core, encode_check_imei_begin(otid=2, version=out.abort_supported_version, invoke_id=1, imei=IMEI)
    )
    reply = core.answer(ev, EquipmentStatus.WHITE_LISTED)
    assert reply is not None and decode_check_imei_reply(reply).version == 2


def test_foreign_application_context_is_refused_echoing_it() -> None:
    acn = (0, 4, 0, 0, 1, 0, 1, 3)  # networkLocUpContext-v3
    data = encode_tcap(
        TcapMessage(type=MessageType.BEGIN, otid=b"\x01", dialogue=Aarq(acn=acn), components=(check_imei(1),))
    )
    r = TcapEirCore().receive_tcap(data, 0.0)
    assert r.reply is not None
    f = ref_fields(r.reply)
    assert f["kind"] == "abort" and f["dialogue.application-context-name"] == acn
    assert f["dialogue.result-source-diagnostic"] == ("dialogue-service-user", 2)


def test_v1_begin_when_v1_is_not_supported_gets_a_bare_u_abort() -> None:
    core = TcapEirCore(supported_versions=(2, 3))
    r = core.receive_tcap(encode_check_imei_begin(otid=5, version=1, invoke_id=1, imei=IMEI), 0.0)
    assert r.reply is not None
    f = ref_fields(r.reply)
    assert f == {"kind": "abort", "dtid": b"\x00\x00\x00\x05", "components": []}


def test_aarq_without_version1_gets_no_common_dialogue_portion() -> None:
    data = encode_tcap(
        TcapMessage(
            type=MessageType.BEGIN,
            otid=b"\x01",
            dialogue=Aarq(acn=equipment_mngt_acn(3)),
            components=(check_imei(1),),
        )
    )
    data = data.replace(b"\x80\x02\x07\x80", b"\x80\x02\x07\x00")  # protocol-version without version1
    r = TcapEirCore().receive_tcap(data, 0.0)
    assert r.reply is not None
    f = ref_fields(r.reply)
    assert f["kind"] == "abort" and f["dialogue.result"] == 1
    assert f["dialogue.result-source-diagnostic"] == ("dialogue-service-provider", 2)


def test_garbled_dialogue_portion_gets_abrt_from_provider() -> None:
    data = bytes.fromhex("620e4801016b0528030601006c00")
    data = bytes([0x62, len(data) - 2]) + data[2:]
    r = TcapEirCore().receive_tcap(data, 0.0)
    assert r.reply is not None
    f = ref_fields(r.reply)
    assert f["kind"] == "abort" and f["dialogue"] == "dialogueAbort" and f["dialogue.abort-source"] == 1
    assert r.events[0].kind == "abnormal_dialogue"


# ---------------------------------------------------------------------------------------------
# Transaction portion errors → P-Abort (Q.773 §3.1, Q.774 §3.2.1.2), and messages needing no answer


@pytest.mark.parametrize(
    ("hexdata", "cause"),
    [
        ("6f06480401020304", 0),  # unrecognizedMessageType
        ("6506480101490102", 1),  # Continue: unrecognizedTransactionID
        ("620a4801016c00ff03010203", 2),  # Begin with trailing junk element: badlyFormatted...
        ("6204480101" + "ff", 2),  # bad length inside the Begin, OTID salvaged
        ("6203490101", None),  # Begin without OTID: nobody to answer
    ],
)
def test_transaction_portion_errors(hexdata: str, cause: int | None) -> None:
    data = bytes.fromhex(hexdata)
    r = TcapEirCore().receive_tcap(data, 0.0)
    assert r.invokes == []
    if cause is None:
        assert r.reply is None and r.events[0].kind == "discarded"
    else:
        assert r.reply is not None
        f = ref_fields(r.reply)
        assert f["kind"] == "abort" and f["p_abort"] == cause
        assert decode_check_imei_reply(r.reply).p_abort_cause == cause


@pytest.mark.parametrize(
    "hexdata",
    [
        "",
        "00",
        "6403490101",  # stray End
        "67054903010203",  # Abort
        "61056c03a10100",  # Unidirectional
        "62ff",
    ],
)
def test_messages_needing_no_answer(hexdata: str) -> None:
    r = TcapEirCore().receive_tcap(bytes.fromhex(hexdata), 0.0)
    assert r.invokes == [] and r.reply is None and r.events


# ---------------------------------------------------------------------------------------------
# Memory and time


def test_max_dialogues_gives_resource_limitation() -> None:
    core = TcapEirCore(max_dialogues=2)
    evs = [
        only_invoke(core, encode_check_imei_begin(otid=i, version=2, invoke_id=1, imei=IMEI)) for i in (1, 2)
    ]
    r = core.receive_tcap(encode_check_imei_begin(otid=3, version=2, invoke_id=1, imei=IMEI), 0.0)
    assert r.reply is not None and ref_fields(r.reply)["p_abort"] == 4
    assert core.active_dialogues == 2
    assert core.answer(evs[0], EquipmentStatus.WHITE_LISTED) is not None
    only_invoke(core, encode_check_imei_begin(otid=3, version=2, invoke_id=1, imei=IMEI))


@pytest.mark.parametrize(("version", "dialogue"), [(1, None), (2, "dialogueAbort"), (3, "dialogueAbort")])
def test_stale_dialogues_expire_with_an_abort(version: int, dialogue: str | None) -> None:
    core = TcapEirCore(dialogue_timeout=10.0)
    assert core.get_timer() is None
    r = core.receive_tcap(
        encode_check_imei_begin(otid=1, version=version, invoke_id=1, imei=IMEI), 100.0, route="route-1"
    )
    (ev,) = r.invokes
    r = core.receive_tcap(
        encode_check_imei_begin(otid=2, version=version, invoke_id=1, imei=IMEI), 105.0, route="route-2"
    )
    assert len(r.invokes) == 1
    assert core.get_timer() == 110.0
    assert core.handle_timer(109.9) == []  # early call is safe
    ((route, abort),) = core.handle_timer(110.0)
    assert route == "route-1"  # the Abort goes back the way its dialogue's Begin came
    f = ref_fields(abort)
    assert f["kind"] == "abort" and f["dtid"] == b"\x00\x00\x00\x01" and f.get("dialogue") == dialogue
    if dialogue:
        assert f["dialogue.abort-source"] == 0
    assert core.get_timer() == 115.0
    assert core.answer(ev, EquipmentStatus.WHITE_LISTED) is None  # too late
    assert core.stats.late_answers == 1 and core.stats.expired == 1


def test_reused_otid_replaces_the_pending_dialogue() -> None:
    core = TcapEirCore()
    old = only_invoke(core, encode_check_imei_begin(otid=1, version=3, invoke_id=1, imei=IMEI))
    r = core.receive_tcap(encode_check_imei_begin(otid=1, version=3, invoke_id=2, imei=IMEI), 1.0)
    assert len(r.invokes) == 1 and [e.kind for e in r.events] == ["duplicate_otid"]
    assert core.answer(old, EquipmentStatus.WHITE_LISTED) is None
    assert core.answer(r.invokes[0], EquipmentStatus.WHITE_LISTED) is not None


@pytest.mark.parametrize("version", [2, 3])
def test_late_answer_for_a_replaced_dialogue_does_not_fill_the_new_one(version: int) -> None:
    """The MSC gives up on OTID 1 and reuses it for another IMEI while the first check is still
    running (a store that suspends). The first check's answer must not become the second's: same
    key, same invoke id 1, but another dialogue."""
    core = TcapEirCore()
    old = only_invoke(core, encode_check_imei_begin(otid=1, version=version, invoke_id=1, imei=IMEI))
    other = "490154203237518"
    r = core.receive_tcap(encode_check_imei_begin(otid=1, version=version, invoke_id=1, imei=other), 1.0)
    (new,) = r.invokes
    assert new.imei == other and new.invoke_id == old.invoke_id == 1
    assert core.answer(old, EquipmentStatus.BLACK_LISTED) is None  # stale: dropped and counted
    assert core.stats.stale_answers == 1 and core.stats.late_answers == 1
    end = core.answer(new, EquipmentStatus.WHITE_LISTED)
    assert end is not None
    f = ref_fields(end)
    assert f["kind"] == "end" and f["dtid"] == b"\x00\x00\x00\x01"
    result = f["components"][0]["result"]
    assert result == ("whiteListed" if version == 2 else {"equipmentStatus": "whiteListed"})
    assert core.active_dialogues == 0


def test_peer_scopes_transaction_ids() -> None:
    core = TcapEirCore()
    data = encode_check_imei_begin(otid=1, version=3, invoke_id=1, imei=IMEI)
    a = core.receive_tcap(data, 0.0, peer="msc-a").invokes[0]
    b = core.receive_tcap(data, 0.0, peer="msc-b").invokes[0]
    assert core.active_dialogues == 2
    assert core.answer(a, EquipmentStatus.WHITE_LISTED) is not None
    assert core.answer(b, EquipmentStatus.BLACK_LISTED) is not None


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        TcapEirCore(supported_versions=(4,))
    with pytest.raises(ValueError):
        TcapEirCore(supported_versions=())


# ---------------------------------------------------------------------------------------------
# Vendor variants with random values (general path) and the MSC-side decoder

digits = st.text("0123456789", min_size=6, max_size=15)


@settings(max_examples=150, deadline=None)
@given(
    version=st.sampled_from([2, 3]),
    vendor=st.sampled_from(["huawei", "ericsson"]),
    imei=st.text("0123456789", min_size=14, max_size=16),
    imsi=digits,
    msisdn=st.one_of(st.none(), digits),
    otid=st.integers(0, 2**32 - 1),
    invoke_id=st.integers(-128, 127),
    status=st.sampled_from(list(EquipmentStatus)),
)
def test_vendor_variants_round_trip(
    version: int,
    vendor: str,
    imei: str,
    imsi: str,
    msisdn: str | None,
    otid: int,
    invoke_id: int,
    status: EquipmentStatus,
) -> None:
    if vendor == "ericsson":
        version, msisdn = 3, None
    core = TcapEirCore()
    data = encode_check_imei_begin(
        otid=otid, version=version, invoke_id=invoke_id, imei=imei, imsi=imsi, msisdn=msisdn, vendor=vendor
    )
    ev = only_invoke(core, data)
    expected_imei = imei + "0" if len(imei) == 14 else imei
    assert (ev.imei, ev.imsi, ev.msisdn, ev.vendor) == (expected_imei, imsi, msisdn, vendor)
    assert (ev.dialogue_id, ev.invoke_id, ev.version) == (otid, invoke_id, version)
    end = core.answer(ev, status)
    assert end is not None
    out = decode_check_imei_reply(end)
    assert (out.dtid, out.status, out.invoke_id, out.version) == (otid, status, invoke_id, version)
    assert ref_fields(end)["components"][0]["invokeId"] == invoke_id


def test_stats_count_what_happened() -> None:
    core = TcapEirCore()
    ev = only_invoke(core, encode_check_imei_begin(otid=1, version=3, invoke_id=1, imei=IMEI))
    core.answer(ev, EquipmentStatus.WHITE_LISTED)
    core.receive_tcap(begin(Invoke(invoke_id=4, opcode=2)), 0.0)
    core.receive_tcap(b"\x00", 0.0)
    s = core.stats
    assert (s.messages, s.begins, s.invokes, s.results_sent, s.rejects_sent, s.ends_sent, s.discarded) == (
        3,
        2,
        1,
        1,
        1,
        2,
        1,
    )


@pytest.mark.parametrize(
    ("imei", "imei14", "svn"),
    [("35809101685355", "35809101685355", None), ("3580910168535501", "35809101685355", "01")],
)
def test_spare_digit_is_not_a_check_digit(imei: str, imei14: str, svn: str | None) -> None:
    """Real MSCs send the spare digit 0 as 15th digit (jSS7 trace rows; Luhn would give 5, 2, 3, 3, 9)."""
    ev = only_invoke(TcapEirCore(), encode_check_imei_begin(otid=1, version=2, invoke_id=1, imei=imei))
    assert ev.imei == (imei + "0" if len(imei) == 14 else imei)
    assert (ev.imei14, ev.software_version) == (imei14, svn)


# ---------------------------------------------------------------------------------------------
# The transition table: every pair, driven through the public API (h11 SIMPLE_CASES style)


def _drive(pair: tuple[DialogueState, DialogueInput]) -> tuple[TcapEirCore, bytes | None, list[bytes]]:
    """Put dialogue (None, OTID 1) in ``pair[0]``, apply ``pair[1]``; return the core and what went out."""
    state, inp = pair
    core = TcapEirCore(dialogue_timeout=10.0)
    data = encode_check_imei_begin(otid=1, version=3, invoke_id=1, imei=IMEI)
    ev: CheckImeiInvoked | None = None
    if state is DialogueState.INITIATION_RECEIVED:
        ev = only_invoke(core, data)
    else:  # an event from a dialogue that is gone, for the ANSWER input
        ev = only_invoke(TcapEirCore(), data)
    messages = {
        DialogueInput.BEGIN: data,
        DialogueInput.CONTINUE: bytes.fromhex("6509480109490400000001"),
        DialogueInput.END: bytes.fromhex("64064904000000016c00"),
        DialogueInput.ABORT: bytes.fromhex("67094904000000014a0101"),
        DialogueInput.UNIDIRECTIONAL: bytes.fromhex("61026c00"),
    }
    if inp is DialogueInput.ANSWER:
        return core, core.answer(ev, EquipmentStatus.WHITE_LISTED), []
    if inp is DialogueInput.TIMER_EXPIRY:
        return core, None, [abort for _route, abort in core.handle_timer(100.0)]
    return core, core.receive_tcap(messages[inp], 1.0).reply, []


@pytest.mark.parametrize("pair", list(TRANSITIONS), ids=lambda p: f"{p[0].name}-{p[1].name}")
def test_every_transition(pair: tuple[DialogueState, DialogueInput]) -> None:
    action, new_state = TRANSITIONS[pair]
    core, reply, timer_out = _drive(pair)
    kinds = ref_fields(reply)["kind"] if reply is not None else None
    if action in (DialogueAction.OPEN, DialogueAction.REOPEN):
        assert reply is None and core.active_dialogues == 1
    elif action is DialogueAction.P_ABORT_UNRECOGNIZED_TID:
        assert reply is not None and ref_fields(reply)["p_abort"] == 1
    elif action in (DialogueAction.DISCARD, DialogueAction.LATE):
        assert reply is None and not timer_out
    elif action is DialogueAction.FILL:
        assert kinds == "end"  # the only invoke: FILL then IDLE
    elif action is DialogueAction.U_ABORT:
        (abort,) = timer_out
        assert ref_fields(abort)["dialogue"] == "dialogueAbort"
    expected_open = new_state is DialogueState.INITIATION_RECEIVED and action is not DialogueAction.FILL
    assert core.active_dialogues == (1 if expected_open else 0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60))
def test_parameter_decoders_raise_only_map_parameter_error(data: bytes) -> None:
    for decode in (decode_check_imei_arg, decode_check_imei_res):
        with contextlib.suppress(MapParameterError):
            decode(data)
