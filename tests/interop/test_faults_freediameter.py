"""DWR silence (issue 7 §4 fault ``dwr_silence``) seen from freeDiameter as the MME: its RFC 3539
watchdog must find the EIR silent, mark the peer SUSPECT, close the connection and reconnect — the
failover a lab wants to test. freeDiameter's own peer state machine is the independent judge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testkit.freediameter.fd import MmeProcess, RunResult, build_extension
from testkit.peers import require_peer

pytestmark = [pytest.mark.interop, pytest.mark.system]

WHITE = "35209900176148"


@pytest.fixture(scope="module")
def s13_extension(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_peer("freediameter", "freeDiameter is the independent MME of this test")
    return build_extension(tmp_path_factory.mktemp("fdx"))


def unanswered_dwrs(r: RunResult) -> list[int]:
    answered = {m.hop_by_hop for m in r.seen("RECV", "DWA")}
    return [m.hop_by_hop for m in r.seen("SENT", "DWR") if m.hop_by_hop not in answered]


def test_dwr_silence_makes_freediameter_fail_over_and_reconnect(
    eir_factory: Any, s13_extension: Path, tmp_path: Path
) -> None:
    lists = tmp_path / "lists.csv"
    lists.write_text(f"imei,status\n{WHITE},white\n")
    eir = eir_factory(
        {
            "lists": {"import_on_start": [str(lists)]},
            # the EIR's own watchdog stays quiet (30 s): the DWRs come from freeDiameter (Tw 6 s)
            "diameter": {"watchdog_interval": 30.0},
            "faults": [{"kind": "dwr_silence", "peer": "mme.localdomain", "count": 1, "id": "mute"}],
        }
    )
    with MmeProcess(
        tmp_path / "fd", eir.diameter, [WHITE], extension=s13_extension, tw_timer=6, tc_timer=3, linger=60.0
    ) as mme:
        # DWR at Tw (4..8 s), unanswered: SUSPECT; silent for another Tw: closed; TcTimer: reconnect
        r = mme.wait_until(lambda r: r.log.count("-> 'STATE_OPEN'") >= 2, timeout=45)
        assert r.log.count("-> 'STATE_OPEN'") >= 2, r.describe()
        r = mme.stop()
    assert "STATE_SUSPECT" in r.log, r.describe()
    assert len(unanswered_dwrs(r)) >= 1, r.describe()
    assert [a.equipment_status for a in r.answers][:1] == [0], r.describe()  # answered before the fault
    opens = [e for e in eir.log_events() if e.get("event") == "diameter_peer_open"]
    assert len(opens) >= 2 and all(e.get("peer_host") == "mme.localdomain" for e in opens)
    injected = [e for e in eir.log_events() if e.get("event") == "fault_injected"]
    assert [(e.get("kind"), e.get("rule")) for e in injected] == [("dwr_silence", "mute")]
    assert 'eir_faults_injected_total{kind="dwr_silence"} 1.0' in eir.metrics_text()
