"""``eir serve --workers N``: N processes on the same ports (SO_REUSEPORT), one store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from simulations.mme import SimulatedMme
from testkit.services import free_port

pytestmark = pytest.mark.system


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


async def _check_many(host: str, port: int, imei: str, n: int) -> list[str]:
    verdicts = []
    for _ in range(n):
        mme = await SimulatedMme.connect(host, port)
        verdicts.append((await mme.check(imei)).verdict)
        await mme.close()
    return verdicts


def test_two_workers_share_the_port_and_the_lists(eir_factory) -> None:  # type: ignore[no-untyped-def]
    port, metrics_port = free_port(), free_port()
    eir = eir_factory(
        {
            "workers": 2,
            "diameter": {"listen": [f"127.0.0.1:{port}"]},
            "m3ua": {"enabled": False},
            "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        },
        lists="imei,status\n35394206000002,black\n",
    )
    eir.wait_for_log("eir_ready", worker=1, timeout=20)
    assert len(_children(eir.proc.pid)) == 1
    verdicts = asyncio.run(_check_many("127.0.0.1", port, "35394206000002", 24))
    assert set(verdicts) == {"black"}
    workers = {e.get("worker") for e in eir.log_events() if e.get("event") == "diameter_peer_open"}
    assert workers == {0, 1}, "the kernel spread 24 connections over both processes"
    # one /metrics for both: every series once per worker, labelled; together they count every check
    import re
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    per_worker = {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r'^eir_check_requests_total\{interface="s13",worker="(\d+)"\} (\S+)$', text, re.M
        )
    }
    assert set(per_worker) == {"0", "1"}, text[:800]
    assert sum(per_worker.values()) == 24
    assert per_worker["0"] > 0 and per_worker["1"] > 0
    assert re.search(r'^eir_worker_up\{worker="1"\} 1\.0$', text, re.M)
    assert text.count("# TYPE eir_check_requests_total counter") == 1, "one family, both workers' samples"
    child = _children(eir.proc.pid)[0]
    assert eir.stop() == 0
    assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()


def test_a_worker_that_dies_is_started_again(eir_factory) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal as sig

    port = free_port()
    eir = eir_factory(
        {
            "workers": 2,
            "diameter": {"listen": [f"127.0.0.1:{port}"]},
            "m3ua": {"enabled": False},
            "metrics": {"enabled": False},
        }
    )
    eir.wait_for_log("eir_ready", worker=1, timeout=20)
    [child] = _children(eir.proc.pid)
    os.kill(child, sig.SIGKILL)
    exited = eir.wait_for_log("worker_exited", timeout=10)
    assert (exited["worker"], exited["pid"], exited["exit_code"]) == (1, child, -9)
    restarted = eir.wait_for_log("worker_restarted", timeout=10)
    assert restarted["pid"] != child and restarted["pid"] in _children(eir.proc.pid)
    assert eir.stop() == 0
    status = Path(f"/proc/{restarted['pid']}/status")
    assert not status.exists() or "zombie" in status.read_text()
