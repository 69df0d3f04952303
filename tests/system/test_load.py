"""The load generator against `eir serve`: open loop measured from the intended send time (a stall
of the EIR shows in every request due during it), unanswered requests counted as lost, --peers and
--imei-file on the MME, MSC and AMF, --json, and the usage errors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from simulations.load import drive, load_plan
from simulations.mme import SimulatedMme
from testkit.eirproc import eir_command

pytestmark = pytest.mark.system

WHITE, BLACK = "35209900176148", "35394206000002"
LISTS = f"imei,status,reason\n{WHITE},white,ok\n{BLACK},black,stolen\n"


@pytest.fixture
def eir(eir_factory: Any) -> Any:
    return eir_factory({"policy": {"clone": {"enabled": False}}}, lists=LISTS)


def _sim(eir: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*eir_command(), "sim", *args, "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        env=eir.env,
        cwd=eir.tmp,
    )


async def test_open_loop_counts_a_stall_in_every_request_due_during_it(eir: Any) -> None:
    """The EIR is stopped (SIGSTOP) for 0.5 s in the middle of a 2 s open-loop run at 400/s: the ~200
    requests due meanwhile wait for it, and their latency counts from when they were due — at least a
    tenth of all requests (those due in the first 0.3 s of the stall) waited 0.2 s or more."""
    host, port = eir.diameter
    mme = await SimulatedMme.connect(host, port)
    pid = eir.proc.pid
    try:

        async def stall() -> None:
            await asyncio.sleep(0.6)
            os.kill(pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(0.5)
            finally:
                os.kill(pid, signal.SIGCONT)

        plan = load_plan(count=None, window=None, rate=400.0, duration=2.0, timeout=10.0)
        task = asyncio.ensure_future(stall())
        s = await drive([mme.sender(WHITE)], plan)
        await task
    finally:
        await mme.close()
    assert s.mode == "open" and s.sent == 800 and s.answered == 800 and s.lost == 0
    assert s.verdicts == {"white": 800}
    assert s.p90_ms >= 200.0, s
    assert s.max_ms >= 400.0, s


async def test_unanswered_requests_are_lost_not_dropped(eir: Any) -> None:
    host, port = eir.diameter
    mme = await SimulatedMme.connect(host, port)
    pid = eir.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        plan = load_plan(count=None, window=None, rate=200.0, duration=0.25, timeout=0.3)
        s = await drive([mme.sender(WHITE)], plan)
    finally:
        os.kill(pid, signal.SIGCONT)
        await mme.close()
    assert s.sent == 50 and s.answered == 0 and s.lost == 50
    assert s.verdicts == {"timeout": 50}
    assert s.p50_ms >= 300.0  # recorded with the wait they had reached, not left out


def test_sim_mme_open_loop_json(eir: Any) -> None:
    h, p = eir.diameter
    r = _sim(
        eir, "mme", "--connect", f"{h}:{p}", "--imei", WHITE, "--rate", "400", "--duration", "1", "--json"
    )
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["mode"], s["sent"], s["answered"], s["lost"], s["peers"]) == ("open", 400, 400, 0, 1)
    assert s["verdicts"] == {"white": 400}
    assert 0 < s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["p999_ms"] <= s["max_ms"]
    assert s["target_rate"] == 400.0


def test_sim_mme_peers_and_imei_file(eir: Any, tmp_path: Path) -> None:
    f = tmp_path / "imeis.txt"
    f.write_text(f"{WHITE}\n{BLACK}\n")
    h, p = eir.diameter
    r = _sim(
        eir, "mme", "--connect", f"{h}:{p}", "--imei", WHITE, "--count", "200", "--window", "4",
        "--peers", "2", "--imei-file", str(f),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("200 ECR (window 4, 2 peers) in ")
    assert (
        "verdicts {'white': 100, 'black': 100}" in r.stdout
        or "verdicts {'black': 100, 'white': 100}" in r.stdout
    )
    events = [e for e in eir.log_events() if e.get("event") == "diameter_peer_open"]
    hosts = {e.get("peer_host") for e in events}
    assert {"mme-1.sim.localdomain", "mme-2.sim.localdomain"} <= hosts, events


def test_sim_msc_paced_peers_and_imei_file(eir: Any, tmp_path: Path) -> None:
    f = tmp_path / "imeis.csv"
    f.write_text(f"imei\n{WHITE}\n{BLACK}\n")
    h, p = eir.m3ua
    r = _sim(
        eir, "msc", "--connect", f"{h}:{p}", "--imei", WHITE, "--rate", "300", "--duration", "1",
        "--window", "8", "--peers", "2", "--imei-file", str(f), "--map-version", "2", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["mode"], s["sent"], s["answered"], s["peers"], s["window"]) == ("paced", 300, 300, 2, 8)
    assert s["verdicts"] == {"white": 150, "black": 150}


def test_sim_amf_open_loop_with_imei_file(eir: Any, tmp_path: Path) -> None:
    f = tmp_path / "imeis.csv"
    f.write_text(f"{WHITE}\n{BLACK}\n")
    r = _sim(
        eir, "amf", "--connect", eir.n5g_url, "--pei", f"imei-{WHITE}0", "--rate", "200", "--duration", "1",
        "--imei-file", str(f), "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["mode"], s["sent"], s["answered"]) == ("open", 200, 200)
    assert s["verdicts"] == {"white": 100, "black": 100}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "1"], "--duration needs --rate"),
        (["--rate", "100"], "--rate needs --duration"),
        (["--peers", "2"], "--peers is for load runs"),
        (["--count", "10", "--imei-file", "/nonexistent/imeis"], "/nonexistent/imeis"),
        (["--imei-file", "/nonexistent/imeis"], "/nonexistent/imeis"),
    ],
)
def test_usage_errors(eir: Any, args: list[str], message: str) -> None:
    h, p = eir.diameter
    r = _sim(eir, "mme", "--connect", f"{h}:{p}", "--imei", WHITE, *args)
    assert r.returncode == 2
    assert r.stdout == ""
    assert message in r.stderr and r.stderr.count("\n") == 1, r.stderr
