"""National lists through a running ``eir serve``: DIRBS blacklist, notifications and exceptions
and a GSMA TAC table imported with the real ``eir lists import`` (formats recognised by their
headers), then the verdicts asked over S13 by python-diameter's own peer stack (an independent
Diameter implementation decodes the answers) and over MAP checkIMEI by the simulated MSC."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from simulations.msc import SimulatedMsc
from tests.interop.test_s13_python_diameter import _node_session

pytestmark = pytest.mark.system

IMSI = "001010123456789"  # what the python-diameter session sends as User-Name
BLACK = "35693803564380"
EXCEPTED = "35693803564381"  # blacklisted, but paired with IMSI by the exception list
NOTIFIED_PAST = "35693803564390"  # block date passed: black
NOTIFIED_FUTURE = "35693803564391"  # block date ahead: grey
ALLOCATED = "35693803564399"  # on no list, TAC in the table: the default (white)
UNALLOCATED = "49015420323751"  # on no list, TAC not in the table: tac_not_allocated (grey)

FILES = {
    "blacklist.csv": "imei,block_date,reasons\n"
    f"{BLACK}7,20250101,LOCAL STOLEN\n{EXCEPTED},20250101,DUPLICATE\n",
    "notifications.csv": "imei,imsi,msisdn,block_date,reasons,amnesty_granted\n"
    f"{NOTIFIED_PAST},{IMSI},923001234567,20000101,Duplicate IMEI,False\n"
    f"{NOTIFIED_FUTURE},{IMSI},923001234567,20991231,Not registered,False\n",
    "exceptions.csv": f"imei,imsi,msisdn\n{EXCEPTED},{IMSI},923001234567\n",
    "tac.txt": "TAC|Marketing Name|Internal Model Name|Manufacturer|Bands|Allocation Date|Country Code|"
    "Fixed Code|Manufacturer Code|Radio Interface|Brand Name|Model Name|Operating System|NFC|Bluetooth|"
    "WLAN|Device Type\n"
    "35693803|Galaxy X|SM-X100|Samsung Korea|LTE|01-Jan-2020|410|0|M1|LTE|Samsung|Galaxy X|Android|Y|Y|Y|"
    "Smartphone\n",
}

EXPECTED_S13 = {  # with the IMSI in User-Name
    BLACK: 1,
    EXCEPTED: 0,
    NOTIFIED_PAST: 1,
    NOTIFIED_FUTURE: 2,
    ALLOCATED: 0,
    UNALLOCATED: 2,
}
EXPECTED_MAP = {  # no IMSI in a standard checkIMEI: the exception does not apply
    BLACK: "black",
    EXCEPTED: "black",
    NOTIFIED_PAST: "black",
    NOTIFIED_FUTURE: "grey",
    ALLOCATED: "white",
    UNALLOCATED: "grey",
}


@pytest.fixture
def eir(eir_factory: Any, tmp_path: Path) -> Any:
    p = eir_factory(start=False)
    for name, text in FILES.items():
        f = tmp_path / name
        f.write_text(text)
        dry = p.cli("lists", "import", "--dry-run", str(f))
        assert "dry run, nothing imported" in dry.stdout
        out = p.cli("lists", "import", str(f)).stdout
        assert out.startswith("imported"), out
    return p.start()


async def test_verdicts_over_s13_and_map(eir: Any) -> None:
    _, port = eir.diameter
    cases = [(imei, None) for imei in EXPECTED_S13]
    answers = await asyncio.wait_for(asyncio.to_thread(_node_session, port, cases), 60)
    got = {imei: (a.result_code, a.equipment_status) for (imei, _), a in zip(cases, answers, strict=True)}
    assert got == {imei: (2001, st) for imei, st in EXPECTED_S13.items()}

    host, mport = eir.m3ua
    msc = await SimulatedMsc.connect(host, mport)
    try:
        for imei, verdict in EXPECTED_MAP.items():
            r = await msc.check(imei, version=3)
            assert r.verdict == verdict, imei
    finally:
        await msc.close()
    metrics = eir.metrics_text()
    assert 'eir_verdicts_total{interface="s13",rule="notification",status="black"} 1.0' in metrics
    # what the EIR saw goes out as a DIRBS operator dump (the sightings are written behind)
    for _ in range(50):
        dump = eir.cli("lists", "observations").stdout.splitlines()
        if len(dump) > len(EXPECTED_S13):
            break
        await asyncio.sleep(0.1)
    assert dump[0] == "date,imei,imsi,msisdn,rat"
    assert sorted(row.split(",")[1:] for row in dump[1:]) == sorted(
        [imei, IMSI, "", "006"]
        for imei in EXPECTED_S13  # seen over S13: E-UTRAN
    )
    assert 'eir_verdicts_total{interface="map",rule="tac_not_allocated",status="grey"} 1.0' in metrics


def test_explain_shows_device_and_list_metadata(eir: Any) -> None:
    out = json.loads(eir.cli("check", BLACK, "--explain", "--json").stdout)
    steps = {s["rule"]: s for s in out["steps"]}
    assert steps["device"]["detail"] == "TAC 35693803: Samsung Galaxy X (Smartphone, Android, LTE)"
    assert "[dirbs-blacklist] block date 20250101, reasons LOCAL STOLEN" in steps["imei"]["detail"]
    out = json.loads(eir.cli("check", UNALLOCATED, "--explain", "--json").stdout)
    assert (out["status"], out["rule"]) == ("grey", "tac_not_allocated")
    versions = eir.cli("lists", "versions").stdout
    assert "tac table: 1 records" in versions and "dirbs-notifications: notifications.csv" in versions
    exported = eir.cli("lists", "export", "--format", "dirbs-blacklist").stdout.splitlines()
    assert exported == [
        "imei,block_date,reasons",
        f"{BLACK},20250101,LOCAL STOLEN",
        f"{EXCEPTED},20250101,DUPLICATE",
    ]


def test_stdin_is_recognised_by_its_header(tmp_path: Path) -> None:
    import subprocess

    from testkit.eirproc import clean_env, eir_command
    from tests.system.test_cli_lists import Cli

    cli = Cli(tmp_path)
    r = subprocess.run(
        [*eir_command(), "lists", "import", "-", "--config", str(cli.config)],
        input=FILES["notifications.csv"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=clean_env(),
    )
    assert r.returncode == 0, r.stderr
    assert "(full dirbs-notifications list from -)" in r.stdout
    assert cli.ok("check", NOTIFIED_PAST).startswith("black  notification:notification:")
