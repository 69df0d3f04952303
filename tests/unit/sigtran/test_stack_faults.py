"""EirSigtranStack.abort (TC-U-Abort instead of an answer) and take_down (an unsolicited ASP Down
Ack), for fault injection and overload; every message sent is decoded by pycrate."""

from __future__ import annotations

from pycrate_mobile.M3UA import parse_M3UA

from protocols.sigtran import CheckImeiRequested, EquipmentStatus, m3ua
from tests.unit.sigtran.test_stack import IMEI, decode_with_pycrate, make_pair


def test_abort_ends_the_dialogue_with_a_u_abort() -> None:
    for version, has_dialogue in ((3, True), (1, False)):
        client, eir = make_pair()
        client.send_check_imei(0.0, imei=IMEI, version=version)
        req = next(
            e for e in eir.receive_data(client.data_to_send(), 0.0) if isinstance(e, CheckImeiRequested)
        )
        eir.abort(req)
        wire = eir.data_to_send()
        (ans,) = client.receive_data(wire, 0.0)
        assert ans.outcome is not None and ans.outcome.aborted
        _, s, (kind, body) = decode_with_pycrate(wire)
        assert kind == "abort" and s["CalledPartyAddr"][1]["SSN"].get_val() == 8
        if has_dialogue:  # ABRT with abort-source dialogue-service-user (Q.773 §3.1, Q.774)
            assert body["reason"][0] == "u-abortCause"
        else:
            assert "reason" not in body
        assert eir.tcap.active_dialogues == 0 and eir.tcap.stats.aborts_sent == 1
        eir.answer(req, EquipmentStatus.WHITE_LISTED)  # gone: a late answer, nothing sent
        assert eir.data_to_send() == b"" and eir.tcap.stats.late_answers == 1


def test_take_down_sends_an_unsolicited_asp_down_ack() -> None:
    client, eir = make_pair()
    events = eir.take_down(1.0)
    assert [(e.old, e.new) for e in events if isinstance(e, m3ua.AspStateChanged)] == [
        (m3ua.AspState.ACTIVE, m3ua.AspState.DOWN)
    ]
    wire = eir.data_to_send()
    msg, err = parse_M3UA(wire)
    assert err == 0
    (_v, _r, cls, typ, _len), _params = msg.get_val()
    assert (cls, typ) == (3, 5)  # ASPSM, ASP Down Ack (RFC 4666 §3.5.4)
    client.receive_data(wire, 1.0)
    assert not client.active  # the ASP took it: down
    # DATA now gets ERR Unexpected Message; the ASP comes back with ASPUP / ASPAC
    assert eir.take_down(2.0) == [] and eir.data_to_send() == b""  # already down: nothing more
