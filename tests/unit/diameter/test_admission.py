"""Admission and addressing in the core (RFC 6733 §5.3, §6.1.4, §7.1.3): a CER from a peer the
adapter does not allow gets 3010 and the connection closes; an ECR for a realm or host we do not
serve gets 3003 / 3002 with the E bit and Failed-AVP; an ECR whose Origin-Host is not the CER's
gets 5012 unless the peer may forward. Every answer is read back by python-diameter."""

from __future__ import annotations

from typing import Any

import pytest

from protocols.diameter import (
    CapabilitiesExchanged,
    ConnectionClosed,
    EquipmentCheckRequested,
    PeerState,
    ProtocolErrorOccurred,
)
from protocols.diameter import dictionary as d
from protocols.diameter.s13 import build_ecr

from .helpers import EIR_HOST, EIR_REALM, IMEI, MME_HOST, MME_REALM, cer, encode_message, pd, responder


def _ecr(*, realm: str = EIR_REALM, host: str | None = None, origin: str = MME_HOST, hbh: int = 100) -> bytes:
    return encode_message(
        build_ecr(
            session_id=f"{origin};1;{hbh}",
            origin_host=origin,
            origin_realm=MME_REALM,
            destination_realm=realm,
            destination_host=host,
            imei=IMEI,
            software_version="01",
            imsi="001010123456789",
            hop_by_hop=hbh,
            end_to_end=hbh,
        )
    )


def _open(**kw: Any) -> Any:
    eir = responder(**kw)
    ev = eir.receive_data(cer(), 1.0)
    assert [type(e) for e in ev] == [CapabilitiesExchanged]
    eir.data_to_send()
    return eir


def _failed_avp_codes(answer: Any) -> list[int]:
    """The codes inside Failed-AVP, read from python-diameter's generic AVP tree (an E-bit answer
    is decoded without the command's own grouped classes)."""
    (failed,) = [a for a in answer.avps if a.code == d.FAILED_AVP.code]
    return [a.code for a in failed.value]


def test_cer_from_a_peer_not_allowed_gets_3010_with_the_e_bit_and_closes() -> None:
    seen: list[tuple[str, str]] = []

    def authorize(host: str, realm: str) -> str | None:
        seen.append((host, realm))
        return f"peer {host} not allowed"

    eir = responder(authorize_peer=authorize)
    ev = eir.receive_data(cer(), 1.0)
    assert seen == [(MME_HOST, MME_REALM)]
    assert [type(e) for e in ev] == [ProtocolErrorOccurred, ConnectionClosed]
    assert ev[0].refusal == "unknown-peer" and ev[0].result_code == 3010
    assert ev[1].reason == "unknown-peer" and ev[1].result_code == 3010
    m = pd(eir.data_to_send())
    assert type(m).__name__ == "CapabilitiesExchangeAnswer"
    assert m.header.is_error and m.result_code == 3010
    assert m.origin_host == EIR_HOST.encode() and m.origin_realm == EIR_REALM.encode()
    assert "not allowed" in m.error_message
    assert eir.state is PeerState.CLOSED


def test_allowed_peer_is_open() -> None:
    eir = _open(authorize_peer=lambda h, r: None)
    assert eir.state is PeerState.OPEN


@pytest.mark.parametrize(
    ("kw", "code", "refusal", "failed"),
    [
        ({"realm": "other.realm"}, 3003, "realm-not-served", d.DESTINATION_REALM.code),
        ({"host": "hss.localdomain"}, 3002, "host-not-served", d.DESTINATION_HOST.code),
        ({"realm": "other.realm", "host": "hss.other.realm"}, 3003, "realm-not-served", 283),
    ],
    ids=["realm", "host", "realm-first"],
)
def test_ecr_for_an_address_we_do_not_serve(kw: dict[str, Any], code: int, refusal: str, failed: int) -> None:
    eir = _open()
    ev = eir.receive_data(_ecr(**kw), 2.0)
    assert [type(e) for e in ev] == [ProtocolErrorOccurred]
    assert ev[0].result_code == code and ev[0].refusal == refusal and ev[0].answered
    m = pd(eir.data_to_send())
    assert m.header.is_error and m.result_code == code and m.header.hop_by_hop_identifier == 100
    assert m.session_id == f"{MME_HOST};1;100"
    assert _failed_avp_codes(m) == [failed]
    # RFC 6733 §7.4: no Error-Reporting-Host (we are the answer's Origin-Host)
    assert not m.find_avps((d.ERROR_REPORTING_HOST.code, 0))
    assert eir.state is PeerState.OPEN


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"host": EIR_HOST},
        {"realm": EIR_REALM.upper(), "host": EIR_HOST.upper()},  # DiameterIdentity: an FQDN
        {"realm": "extra.realm"},
        {"host": "eir2.localdomain"},
    ],
    ids=["realm-only", "our-host", "other-case", "extra-realm", "extra-host"],
)
def test_ecr_for_us_is_delivered(kw: dict[str, Any]) -> None:
    eir = _open(served_realms=["extra.realm"], served_hosts=["eir2.localdomain"])
    ev = eir.receive_data(_ecr(**kw), 2.0)
    assert [type(e) for e in ev] == [EquipmentCheckRequested]
    assert eir.data_to_send() == b""


def test_origin_host_must_be_the_cers() -> None:
    eir = _open(origin_host_check=lambda host: False)
    assert [type(e) for e in eir.receive_data(_ecr(), 2.0)] == [EquipmentCheckRequested]
    ev = eir.receive_data(_ecr(origin="spoofed.lab", hbh=101), 2.0)
    assert [type(e) for e in ev] == [ProtocolErrorOccurred]
    assert ev[0].result_code == 5012 and ev[0].refusal == "origin-mismatch"
    m = pd(eir.data_to_send())
    assert type(m).__name__ == "MeIdentityCheckAnswer"
    assert not m.header.is_error and m.result_code == 5012 and m.auth_session_state == 1
    assert _failed_avp_codes(m) == [d.ORIGIN_HOST.code]
    assert eir.state is PeerState.OPEN


def test_a_forwarding_peer_may_carry_other_origins() -> None:
    asked: list[str] = []
    eir = _open(origin_host_check=lambda host: asked.append(host) or True)
    assert asked == [MME_HOST]
    assert [type(e) for e in eir.receive_data(_ecr(origin="mme9.lab"), 2.0)] == [EquipmentCheckRequested]


def test_no_origin_check_by_default_in_the_core() -> None:
    eir = _open()
    assert [type(e) for e in eir.receive_data(_ecr(origin="mme9.lab"), 2.0)] == [EquipmentCheckRequested]


def test_the_memoised_fast_path_still_checks_each_ecr() -> None:
    """The fast decoder remembers the constant AVP run: a realm that changes is still seen."""
    eir = _open()
    for i in range(3):
        assert [type(e) for e in eir.receive_data(_ecr(hbh=200 + i), 2.0)] == [EquipmentCheckRequested]
    ev = eir.receive_data(_ecr(realm="other.realm", hbh=300), 2.0)
    assert ev[0].result_code == 3003
    assert pd(eir.data_to_send()).result_code == 3003
