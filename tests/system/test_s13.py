"""`eir serve` in a subprocess, lists imported through the CLI, the simulated MME (library and CLI)
checking white, grey, black and unknown IMEIs over S13; metrics, logs and graceful shutdown."""

from __future__ import annotations

import subprocess
import urllib.request
from typing import Any

import pytest

from simulations.mme import SimulatedMme
from tests.eirproc import eir_command

pytestmark = pytest.mark.system

WHITE, GREY, BLACK, UNKNOWN = "35123456789012", "35123456789020", "35123456789038", "35999999999999"
LISTS = f"imei,status,reason\n{WHITE},white,ok\n{GREY},grey,watch\n{BLACK},black,stolen\n"


@pytest.fixture
def eir(eir_factory: Any) -> Any:
    return eir_factory({"policy": {"unknown_equipment": "unknown", "clone": {"enabled": False}}}, lists=LISTS)


async def test_verdicts_over_s13(eir: Any) -> None:
    host, port = eir.diameter
    mme = await SimulatedMme.connect(host, port, origin_host="mme1.lab", origin_realm="lab")
    try:
        got = {
            imei: (await mme.check(imei, software_version="01", imsi="001010123456789")).verdict
            for imei in (WHITE, GREY, BLACK, UNKNOWN)
        }
        bad = await mme.check("3512345678901")  # 13 digits: 5004 from the protocol layer
        load = await mme.load(WHITE, count=300, window=32)
    finally:
        await mme.close()
    assert got == {WHITE: "white", GREY: "grey", BLACK: "black", UNKNOWN: "unknown"}
    assert bad.verdict == "error 5004"
    assert load.verdicts == {"white": 300}
    assert mme.closed and mme.close_reason == "dpr"

    mh, mp = eir.metrics
    text = urllib.request.urlopen(f"http://{mh}:{mp}/metrics", timeout=5).read().decode()
    assert 'eir_verdicts_total{interface="s13",rule="imei",status="black"} 1.0' in text
    assert 'eir_protocol_errors_total{error="invalid_avp_value",interface="s13"} 1.0' in text
    assert 'eir_check_duration_seconds_count{interface="s13"}' in text
    events = [e.get("event") for e in eir.log_events()]
    assert "diameter_peer_open" in events and "diameter_protocol_error" in events
    assert "diameter_peer_closed" in events


def test_sim_mme_cli(eir: Any) -> None:
    host, port = eir.diameter
    base = [*eir_command(), "sim", "mme", "--connect", f"{host}:{port}"]
    one = subprocess.run(
        [*base, "--imei", BLACK, "--sv", "01", "--imsi", "001010123456789"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith(f"{BLACK}: black")
    many = subprocess.run(
        [*base, "--imei", UNKNOWN, "--count", "200", "--window", "16"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert many.returncode == 0, many.stderr
    assert "200 ECR (window 16)" in many.stdout and "p99" in many.stdout and "'unknown': 200" in many.stdout
    # the same through `eir … --config` (the default --connect comes from the config when its port is fixed)
    res = eir.cli("sim", "mme", "--connect", f"{host}:{port}", "--imei", GREY)
    assert res.stdout.startswith(f"{GREY}: grey")


async def test_graceful_shutdown_sends_dpr(eir: Any) -> None:
    host, port = eir.diameter
    mme = await SimulatedMme.connect(host, port)
    assert (await mme.check(WHITE)).verdict == "white"
    import asyncio

    rc = await asyncio.to_thread(eir.stop)
    await asyncio.sleep(0)
    assert rc == 0
    assert mme.closed and mme.close_reason == "peer-dpr"
