"""MAP addressing and screening in the EIR stack (issue 10): DATA for another DPC gets DUNA, another
NI is discarded, a GT-routed message for another called GT gets UDTS (cause 1, or 0 for a
translation type we do not translate), screening (OPC / calling GT allow-lists, GSMA FS.11 category
1 basics) returns UDTS unqualified; the answer's OPC is always ours. Each reply is decoded by
pycrate (M3UA, SCCP), not by our codec."""

from __future__ import annotations

from typing import Any

import pytest
from pycrate_mobile.M3UA import parse_M3UA
from pycrate_mobile.SCCP import parse_SCCP

from protocols.sigtran import (
    CheckImeiClient,
    CheckImeiRequested,
    EirSigtranStack,
    EquipmentStatus,
    m3ua,
    sccp,
)
from protocols.sigtran.stack import MessageRefused, SccpReturned

IMEI = "35809101685355"
EIR_GT = "491700000009"
MSC_GT = "491700000008"


def make_pair(
    *,
    dpc: int = 2,
    ni: int = 2,
    called_gt: str = EIR_GT,
    tt: int = 0,
    calling_gt: str | None = MSC_GT,
    opc: int = 1,
    return_on_error: bool = True,
    **eir_kw: Any,
) -> tuple[CheckImeiClient, EirSigtranStack]:
    kw: dict[str, Any] = {
        "point_codes": frozenset({2}),
        "accept_global_titles": (EIR_GT,),
    } | eir_kw
    eir = EirSigtranStack(
        m3ua_settings=m3ua.M3uaSettings(role=m3ua.Role.SG), point_code=2, ssn=9, global_title=EIR_GT, **kw
    )
    called = sccp.SccpAddress(ssn=9, gt=sccp.GlobalTitle(digits=called_gt, translation_type=tt))
    client = CheckImeiClient(
        m3ua_settings=m3ua.M3uaSettings(role=m3ua.Role.ASP, routing_context=5),
        opc=opc,
        dpc=dpc,
        ni=ni,
        calling=sccp.make_address(ssn=8, gt=calling_gt)
        if calling_gt
        else sccp.make_address(ssn=8, point_code=opc),
        called=called,
        return_on_error=return_on_error,
    )
    client.start(0.0)
    for _ in range(4):
        if out := client.data_to_send():
            eir.receive_data(out, 0.0)
        if out := eir.data_to_send():
            client.receive_data(out, 0.0)
    assert client.active
    return client, eir


def ask(client: CheckImeiClient, eir: EirSigtranStack) -> tuple[list[Any], bytes]:
    client.send_check_imei(1.0, imei=IMEI, version=2)
    events = eir.receive_data(client.data_to_send(), 1.0)
    for ev in events:
        if isinstance(ev, CheckImeiRequested):
            eir.answer(ev, EquipmentStatus.WHITE_LISTED)
    return events, eir.data_to_send()


def pycrate_m3ua(wire: bytes) -> tuple[tuple[int, int], dict[int, Any]]:
    msg, err = parse_M3UA(wire)
    assert err == 0, wire.hex()
    (_v, _r, cls, typ, _len), params = msg.get_val()
    return (cls, typ), {tag: value for tag, _l, value, _pad in params}


def pycrate_sccp(wire: bytes) -> dict[str, Any]:
    """The SCCP message inside an M3UA DATA, as pycrate reads it: its OPC/DPC/NI too."""
    (cls, typ), params = pycrate_m3ua(wire)
    assert (cls, typ) == (1, 1), "DATA"
    opc, dpc, _si, ni, _mp, _sls, user = params[0x0210]  # pycrate reads Protocol Data's fields
    out: dict[str, Any] = {"opc": opc, "dpc": dpc, "ni": ni}
    msg, err = parse_SCCP(user)
    assert err == 0
    out["type"] = msg["Type"].get_val()
    if out["type"] in (0x0A, 0x12):
        out["cause"] = msg["RetCause"].get_val()
    return out


def refused(events: list[Any]) -> MessageRefused:
    (ev,) = [e for e in events if isinstance(e, MessageRefused)]
    return ev


def test_our_dpc_is_answered_from_our_point_code() -> None:
    client, eir = make_pair()
    events, out = ask(client, eir)
    assert any(isinstance(e, CheckImeiRequested) for e in events)
    got = pycrate_sccp(out)
    assert (got["opc"], got["dpc"], got["type"]) == (2, 1, 0x09)  # UDT from PC 2 to PC 1


def test_another_dpc_gets_duna_naming_it() -> None:
    client, eir = make_pair(dpc=77)
    events, out = ask(client, eir)
    ev = refused(events)
    assert (ev.check, ev.answer, ev.opc) == ("dpc", "duna", 1)
    assert not any(isinstance(e, CheckImeiRequested) for e in events)
    (cls, typ), params = pycrate_m3ua(out)
    assert (cls, typ) == (2, 1)  # SSNM DUNA
    assert params[0x0012] == [[0, 77]]  # Affected Point Code: mask 0, PC 77
    assert params[0x0006] == [5]  # the DATA's routing context


def test_an_extra_point_code_is_answered_from_itself() -> None:
    client, eir = make_pair(dpc=7, point_codes=frozenset({2, 7}))
    _events, out = ask(client, eir)
    assert pycrate_sccp(out)["opc"] == 7


def test_without_the_check_the_answer_still_comes_from_our_point_code() -> None:
    client, eir = make_pair(dpc=77, point_codes=None)
    _events, out = ask(client, eir)
    assert pycrate_sccp(out)["opc"] == 2  # never the DPC the peer made up


def test_another_network_indicator_is_discarded() -> None:
    client, eir = make_pair(ni=0, network_indicators=frozenset({2}))
    events, out = ask(client, eir)
    ev = refused(events)
    assert (ev.check, ev.answer) == ("ni", None)
    assert out == b""


@pytest.mark.parametrize(
    ("called_gt", "tt", "cause"),
    [("491700000099", 0, 1), (EIR_GT, 5, 0)],
    ids=["digits-not-ours", "translation-type"],
)
def test_called_gt_not_ours_gets_udts(called_gt: str, tt: int, cause: int) -> None:
    client, eir = make_pair(called_gt=called_gt, tt=tt)
    events, out = ask(client, eir)
    (ret,) = [e for e in events if isinstance(e, SccpReturned)]
    assert ret.cause == cause and ret.sent
    got = pycrate_sccp(out)
    assert (got["type"], got["cause"], got["opc"], got["dpc"]) == (0x0A, cause, 2, 1)  # UDTS


def test_called_gt_prefix_pattern_is_accepted() -> None:
    client, eir = make_pair(called_gt="491700000099", accept_global_titles=(EIR_GT, "4917000000*"))
    events, _ = ask(client, eir)
    assert any(isinstance(e, CheckImeiRequested) for e in events)


@pytest.mark.parametrize("return_on_error", [True, False])
def test_opc_screening(return_on_error: bool) -> None:
    client, eir = make_pair(opc=9, screen_opcs=frozenset({1}), return_on_error=return_on_error)
    events, out = ask(client, eir)
    ev = refused(events)
    assert ev.check == "screen_opc"
    if return_on_error:
        assert ev.answer == "udts"
        got = pycrate_sccp(out)
        assert (got["type"], got["cause"], got["opc"], got["dpc"]) == (0x0A, 7, 2, 9)
    else:
        assert ev.answer is None and out == b""


@pytest.mark.parametrize(
    ("calling_gt", "allowed"),
    [(MSC_GT, True), ("33600000001", False), (None, False)],
    ids=["home", "foreign", "no-gt"],
)
def test_calling_gt_screening(calling_gt: str | None, allowed: bool) -> None:
    client, eir = make_pair(calling_gt=calling_gt, screen_calling_gt_prefixes=("4917",))
    events, out = ask(client, eir)
    if allowed:
        assert any(isinstance(e, CheckImeiRequested) for e in events)
        assert pycrate_sccp(out)["type"] == 0x09
    else:
        assert refused(events).check == "screen_calling_gt"
        got = pycrate_sccp(out)
        assert (got["type"], got["cause"]) == (0x0A, 7)


def test_screened_shape_never_reaches_the_fast_path() -> None:
    """A refused Begin is not learnt: the second one is refused the same way."""
    client, eir = make_pair(calling_gt="33600000001", screen_calling_gt_prefixes=("4917",))
    for _ in range(3):
        events, _ = ask(client, eir)
        assert refused(events).check == "screen_calling_gt"
