"""freeDiameter 1.2 as an independent MME against ``eir serve`` over S13 (3GPP TS 29.272).

freeDiameter brings its own RFC 6733 peer state machine, watchdog (RFC 3539) and message parser, so
these tests catch what a symmetric bug in our own simulated MME would hide: the EIR's CEA must satisfy
freeDiameter's capability checks, its ECAs must parse against freeDiameter's dictionary (with the V and
M bits TS 29.272 §7.3.1 requires), its DWRs/DWAs/DPA must fit freeDiameter's peer state machine.
The extension (``freediameter/s13_mme.c``) records what freeDiameter saw; the EIR's side is checked
through its log and its ``eir_peers`` metric.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from eir.model import Interface
from protocols.imei import luhn_check_digit
from testkit.freediameter.fd import Ecr, MmeProcess, RunResult, build_extension
from testkit.peers import require_peer

pytestmark = [pytest.mark.interop, pytest.mark.system]

WHITE, GREY, BLACK, UNKNOWN = "35209900176148", "35394206000001", "35394206000002", "35394206000099"
LISTS = f"""imei,status,imsi,reason
{WHITE},white,,freediameter interop
{GREY},grey,,freediameter interop
{BLACK},black,,freediameter interop
"""
# TS 29.272 §7.3.3 Equipment-Status; §7.4.3 DIAMETER_ERROR_EQUIPMENT_UNKNOWN
WHITELISTED, BLACKLISTED, GREYLISTED = 0, 1, 2
DIAMETER_SUCCESS, DIAMETER_ERROR_EQUIPMENT_UNKNOWN = 2001, 5422


@pytest.fixture(scope="session")
def s13_extension(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_peer("freediameter", "freeDiameter is the independent MME of these tests")
    return build_extension(tmp_path_factory.mktemp("fdx"))


def eir_config(tmp: Path, watchdog: float = 30.0) -> dict[str, Any]:
    """Lists imported at start; unknown equipment answered with 5422; EIR watchdog Tw."""
    lists = tmp / "lists.csv"
    lists.write_text(LISTS)
    return {
        "policy": {"unknown_equipment": "unknown"},
        "diameter": {"watchdog_interval": watchdog},
        "lists": {"import_on_start": [str(lists)]},
    }


def eir_peers(eir: Any) -> float:
    """The EIR's ``eir_peers{interface="s13"}`` gauge (0 when not exported yet)."""
    for family in text_string_to_metric_families(eir.metrics_text()):
        if family.name == "eir_peers":
            for s in family.samples:
                if s.labels.get("interface") == Interface.S13.value:
                    return float(s.value)
    return 0.0


def pair(result: RunResult, req_dir: str, req: str, ans: str) -> bool:
    """A request seen in ``req_dir`` and its answer (same hop-by-hop id) in the other direction."""
    ans_dir = "RECV" if req_dir == "SENT" else "SENT"
    hbhs = {m.hop_by_hop for m in result.seen(req_dir, req)}
    return any(m.hop_by_hop in hbhs for m in result.seen(ans_dir, ans))


def wait_metric(eir: Any, pred: Callable[[float], bool], timeout: float = 5.0) -> float:
    """Poll the gauge until ``pred`` holds (bounded); returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = eir_peers(eir)
        if pred(v) or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def test_freediameter_mme_gets_list_verdicts_exchanges_watchdog_and_disconnects(
    eir_factory: Any, s13_extension: Path, tmp_path: Path
) -> None:
    """CER/CEA → OPEN, ECRs answered per the lists, freeDiameter's DWR answered, DPR answered by DPA."""
    eir = eir_factory(eir_config(tmp_path, watchdog=30.0))
    white15 = WHITE + str(luhn_check_digit(WHITE))
    requests = [
        Ecr(WHITE),
        Ecr(GREY),
        Ecr(BLACK),
        Ecr(UNKNOWN),
        Ecr(white15),  # 15 digits with the check digit (TS 23.003 §6.2.1)
        Ecr(BLACK, software_version="01"),  # IMEISV form falls back to the IMEI entry
        Ecr(GREY, imsi="001010123456789"),  # User-Name carries the IMSI
    ]
    # freeDiameter Tw = 6 s (its minimum) so that it sends a DWR within 4..8 s of silence (RFC 3539
    # jitter); the EIR's own watchdog is left at 30 s so that the DWR comes from freeDiameter.
    with MmeProcess(
        tmp_path / "fd", eir.diameter, requests, extension=s13_extension, tw_timer=6, linger=20.0
    ) as mme:
        opened = mme.wait_until(lambda r: r.opened, timeout=10)
        assert opened.opened, opened.describe()
        assert "'STATE_WAITCEA'\t-> 'STATE_OPEN'\t'eir.localdomain'" in opened.log
        ev = eir.wait_for_log("diameter_peer_open", peer_host="mme.localdomain")
        assert ev["product"] == "freeDiameter" and 16777252 in ev["applications"], ev
        assert wait_metric(eir, lambda v: v == 1) == 1, eir.log()[-3000:]

        r = mme.wait_until(lambda r: pair(r, "SENT", "DWR", "DWA"), timeout=15)
        assert pair(r, "SENT", "DWR", "DWA"), r.describe()
        r = mme.stop()

    assert not r.timed_out, r.describe()
    assert r.returncode == 0, r.describe()
    assert r.parse_errors == [] and r.errors == [] and r.timeouts == [], r.describe()
    assert pair(r, "SENT", "CER", "CEA"), r.describe()

    got = {a.index: a for a in r.answers}
    assert sorted(got) == list(range(len(requests))), r.describe()
    for a in r.answers:
        assert a.origin == "eir.localdomain", a
    expected = [
        (DIAMETER_SUCCESS, -1, WHITELISTED),
        (DIAMETER_SUCCESS, -1, GREYLISTED),
        (DIAMETER_SUCCESS, -1, BLACKLISTED),
        (-1, DIAMETER_ERROR_EQUIPMENT_UNKNOWN, -1),
        (DIAMETER_SUCCESS, -1, WHITELISTED),
        (DIAMETER_SUCCESS, -1, BLACKLISTED),
        (DIAMETER_SUCCESS, -1, GREYLISTED),
    ]
    for i, (rc, erc, status) in enumerate(expected):
        a = got[i]
        assert (a.result_code, a.experimental_result_code, a.equipment_status) == (rc, erc, status), a

    # Disconnect (RFC 6733 §5.4): freeDiameter's DPR at shutdown is answered with a DPA.
    assert pair(r, "SENT", "DPR", "DPA"), r.describe()
    assert "'STATE_OPEN'\t-> 'STATE_CLOSING" in r.log, r.log[-3000:]
    eir.wait_for_log("diameter_peer_dpr", peer_host="mme.localdomain")
    eir.wait_for_log("diameter_peer_closed", peer_host="mme.localdomain", reason="peer-dpr")
    assert wait_metric(eir, lambda v: v == 0) == 0, eir.log()[-3000:]


def test_eir_watchdog_and_eir_shutdown_seen_by_freediameter(
    eir_factory: Any, s13_extension: Path, tmp_path: Path
) -> None:
    """The EIR's own DWR (Tw = 6 s) is answered by freeDiameter; at shutdown the EIR sends DPR first.

    freeDiameter's Tw is 30 s here so that the watchdog comes from the EIR. On SIGTERM the EIR
    disconnects gracefully (RFC 6733 §5.4): its DPR is answered by freeDiameter's DPA.
    """
    eir = eir_factory(eir_config(tmp_path, watchdog=6.0))
    with MmeProcess(
        tmp_path / "fd", eir.diameter, [WHITE], extension=s13_extension, tw_timer=30, linger=30.0
    ) as mme:
        r = mme.wait_until(lambda r: pair(r, "RECV", "DWR", "DWA"), timeout=15)
        assert pair(r, "RECV", "DWR", "DWA"), r.describe()
        assert wait_metric(eir, lambda v: v == 1) == 1, eir.log()[-3000:]
        assert eir.stop() == 0, eir.log()[-3000:]
        r = mme.wait_until(lambda r: pair(r, "RECV", "DPR", "DPA"), timeout=10)
        assert pair(r, "RECV", "DPR", "DPA"), r.describe()
        r = mme.stop()
    assert r.parse_errors == [] and r.errors == [], r.describe()
    assert [a.equipment_status for a in r.answers] == [WHITELISTED], r.describe()
    assert "STATE_SUSPECT" not in r.log, r.log[-3000:]
    assert not r.seen("SENT", "DPR"), r.describe()
    # Disconnect-Cause REBOOTING (0): the EIR is going down and will come back.
    assert "Peer 'eir.localdomain' sent a DPR with cause: REBOOTING" in r.log, r.log[-3000:]


def test_pipelined_ecrs_are_all_answered_in_kind(
    eir_factory: Any, s13_extension: Path, tmp_path: Path
) -> None:
    """600 ECRs with 64 outstanding: freeDiameter matches every ECA to its ECR by hop-by-hop id."""
    eir = eir_factory(eir_config(tmp_path))
    cycle = [WHITE, GREY, BLACK, UNKNOWN]
    requests = [cycle[i % 4] for i in range(600)]
    with MmeProcess(tmp_path / "fd", eir.diameter, requests, extension=s13_extension, window=64) as mme:
        r = mme.wait(timeout=60)
    assert r.returncode == 0 and r.done, r.describe()
    assert r.parse_errors == [] and r.errors == [] and r.timeouts == [], r.describe()
    assert len(r.answers) == 600
    assert len({a.hop_by_hop for a in r.answers}) == 600
    want = {
        WHITE: (WHITELISTED, -1),
        GREY: (GREYLISTED, -1),
        BLACK: (BLACKLISTED, -1),
        UNKNOWN: (-1, DIAMETER_ERROR_EQUIPMENT_UNKNOWN),
    }
    for a in r.answers:
        assert (a.equipment_status, a.experimental_result_code) == want[a.imei], a
    assert r.summary is not None and r.summary.answered == 600 and r.summary.failed == 0


def test_relay_peer_realm_routing_and_bad_requests(
    eir_factory: Any, s13_extension: Path, tmp_path: Path
) -> None:
    """A relay-style CER, ECRs routed by realm only, an ECR without Terminal-Information, a bad Luhn digit.

    A DRA in front of MMEs advertises the Relay application (0xFFFFFFFF) in its CER besides S13 and
    sends ECRs without Destination-Host (TS 29.272 §7.2.19: Destination-Host is optional).
    """
    cfg = eir_config(tmp_path)
    cfg["policy"] = {**cfg["policy"], "bad_check_digit": "malformed"}
    eir = eir_factory(cfg)
    bad_luhn = WHITE + str((luhn_check_digit(WHITE) + 1) % 10)
    requests = [Ecr(WHITE), Ecr(""), Ecr(bad_luhn)]
    with MmeProcess(
        tmp_path / "fd", eir.diameter, requests, extension=s13_extension, relay=True, dest_host=None
    ) as mme:
        r = mme.wait(timeout=30)
    assert r.returncode == 0 and r.done, r.describe()
    assert r.parse_errors == [] and r.errors == [] and r.timeouts == [], r.describe()
    ev = eir.wait_for_log("diameter_peer_open", peer_host="mme.localdomain")
    assert set(ev["applications"]) >= {16777252, 0xFFFFFFFF}, ev

    white, missing, luhn = sorted(r.answers, key=lambda a: a.index)
    assert (white.result_code, white.equipment_status) == (DIAMETER_SUCCESS, WHITELISTED), white
    # RFC 6733 §7.1.5: 5005 DIAMETER_MISSING_AVP is a permanent failure (no E bit) and Failed-AVP
    # names the missing AVP: Terminal-Information, 1401, vendor 3GPP.
    assert missing.result_code == 5005 and not missing.error_bit, missing
    assert missing.failed_avp == "1401/10415", missing
    eir.wait_for_log("diameter_protocol_error", result_code=5005)
    # With policy.bad_check_digit=malformed, a 15th digit that is not the Luhn check digit (nor
    # the spare digit 0) is malformed: policy.malformed (black).
    assert (luhn.result_code, luhn.equipment_status) == (DIAMETER_SUCCESS, BLACKLISTED), luhn
    assert pair(r, "SENT", "DPR", "DPA"), r.describe()
