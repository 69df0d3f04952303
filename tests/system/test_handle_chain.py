"""The X.1255 handle rule end to end: ``eir sim handle`` (a subprocess serving records from a CSV)
and ``eir serve`` with ``policy.handle`` on, asked over S13 by python-diameter's own peer stack and
over MAP by the simulated MSC with its answers recorded on the wire and decoded by tshark. A record
found decides (black / grey), a handle not found and a look-up that times out (the handle server
restarted with ``--delay``) leave the configured default (``on_failure: skip``), never a held
check; a listed IMEI is not looked up."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulations.msc import SimulatedMsc
from testkit.eirproc import clean_env, eir_command
from testkit.services import free_port
from tests.interop.test_map_tshark import Tap
from tests.interop.test_s13_python_diameter import _node_session
from tests.system.test_dirbs_golden import MAP_STATUS, S13_STATUS, _map_answers

pytestmark = [
    pytest.mark.system,
    pytest.mark.peer("tshark", "Wireshark's dissectors decode the MAP answers independently"),
]

PREFIX = "20.500.12345"
S13_FOUND = {"35693803564380": "black", "35693803564381": "grey"}
MAP_FOUND = {"35693803564382": "black", "35693803564383": "grey"}
NOT_FOUND = ("35693803564384", "35693803564385")  # S13, MAP
TIMED_OUT = ("35693803564386", "35693803564387")  # S13, MAP: asked while the server dawdles
LISTED = "35693803564388"  # white on the lists; its black handle record is never asked for
RECORDS = (
    "imei,status,tac,brand,model,reason\n"
    + "".join(f"{i},{s},35693803,Acme,A1,reported {s}\n" for i, s in {**S13_FOUND, **MAP_FOUND}.items())
    + f"{LISTED},black,35693803,Acme,A1,never asked\n"
    + "".join(f"{i},black,35693803,Acme,A1,too late\n" for i in TIMED_OUT)
)


class SimHandle:
    """``eir sim handle`` as a subprocess on a fixed port (so that it can be restarted on it)."""

    def __init__(self, csv: Path, port: int) -> None:
        self.csv, self.port = csv, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        cmd = [*eir_command(), "sim", "handle", "--csv", str(self.csv), "--prefix", PREFIX]
        cmd += ["--listen", f"127.0.0.1:{self.port}", *extra]
        log = self.csv.with_suffix(".log")
        with log.open("ab") as err:
            self.proc = subprocess.Popen(cmd, env=clean_env(), stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("eir sim handle did not listen")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def chain(eir_factory: Any, tmp_path: Path) -> Iterator[tuple[Any, SimHandle]]:
    csv = tmp_path / "records.csv"
    csv.write_text(RECORDS)
    sim = SimHandle(csv, free_port())
    sim.start()
    lists = f"imei,status\n{LISTED},white\n"
    config = {
        "m3ua": {"enabled": True},
        "policy": {
            "unknown_equipment": "white",
            "clone": {"enabled": False},
            "handle": {
                "enabled": True,
                "url": f"http://127.0.0.1:{sim.port}",
                "prefix": PREFIX,
                "timeout": 0.3,
                "on_failure": "skip",
            },
        },
    }
    try:
        yield eir_factory(config, lists=lists), sim
    finally:
        sim.stop()


async def _s13(eir: Any, imeis: list[str]) -> dict[str, tuple[int, int]]:
    _, port = eir.diameter
    cases = [(imei, None) for imei in imeis]
    answers = await asyncio.wait_for(asyncio.to_thread(_node_session, port, cases), 60)
    return {imei: (a.result_code, a.equipment_status) for (imei, _), a in zip(cases, answers, strict=True)}


async def _map(eir: Any, imeis: list[str], pcap: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    tap = Tap(eir.m3ua)
    await tap.start()
    msc = await SimulatedMsc.connect("127.0.0.1", tap.port)
    try:
        got = {imei: (await msc.check(imei, version=3)).verdict for imei in imeis}
    finally:
        await msc.close()
    assert tap.server is not None
    tap.server.close()
    tap.write_pcap(pcap, 2905)
    return got, await asyncio.to_thread(_map_answers, pcap)


async def test_handle_records_decide_over_s13_and_map(chain: tuple[Any, SimHandle]) -> None:
    eir, sim = chain
    want_s13 = {**S13_FOUND, NOT_FOUND[0]: "white", LISTED: "white"}
    assert await _s13(eir, list(want_s13)) == {i: (2001, S13_STATUS[v]) for i, v in want_s13.items()}
    want_map = {**MAP_FOUND, NOT_FOUND[1]: "white", LISTED: "white"}
    got, decoded = await _map(eir, list(want_map), eir.tmp / "found.pcap")
    assert got == want_map
    assert decoded == [(i, MAP_STATUS[v]) for i, v in want_map.items()]

    # the handle server answers too late (5 s, the time-out is 0.3 s): the default stands
    sim.stop()
    sim.start("--delay", "5")
    assert await _s13(eir, [TIMED_OUT[0]]) == {TIMED_OUT[0]: (2001, 0)}
    got, decoded = await _map(eir, [TIMED_OUT[1]], eir.tmp / "timeout.pcap")
    assert (got, decoded) == ({TIMED_OUT[1]: "white"}, [(TIMED_OUT[1], "0")])
    # a record found before is answered from the cache meanwhile
    assert await _s13(eir, list(S13_FOUND)) == {i: (2001, S13_STATUS[v]) for i, v in S13_FOUND.items()}

    metrics = eir.metrics_text()
    for iface, found in (("s13", S13_FOUND), ("map", MAP_FOUND)):
        for status in set(found.values()):
            assert f'eir_verdicts_total{{interface="{iface}",rule="handle",status="{status}"}}' in metrics
    counts = {
        ln.split("{")[1].split('"')[1]: float(ln.split()[-1])
        for ln in metrics.splitlines()
        if ln.startswith("eir_handle_lookups_total{")
    }
    assert counts["found"] == 4 and counts["not_found"] == 2 and counts["timeout"] == 2, counts
    assert counts["cached"] >= 2, counts
