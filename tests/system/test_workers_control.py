"""``eir serve --workers 2``: a fault set through the admin API (which worker 0 serves) reaches
every worker over the control channel (eir/control.py) — every S13 connection gets it, whichever
process the kernel gave it to (both do: the per-worker label of /metrics says so) — and clearing it
reaches every worker too."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request

import httpx
import pytest

from simulations.mme import SimulatedMme
from testkit.services import free_port

pytestmark = pytest.mark.system

TOKEN = "control-test-token"
IMEI = "35394206000002"


async def _codes(host: str, port: int, n: int) -> list[int | None]:
    out = []
    for _ in range(n):
        mme = await SimulatedMme.connect(host, port)
        r = await mme.check(IMEI)
        out.append(r.result_code)
        await mme.close()
    return out


def _per_worker(text: str, family: str, labels: str) -> dict[str, float]:
    rx = rf'^{family}\{{{labels}worker="(\d+)"\}} (\S+)$'
    return {m.group(1): float(m.group(2)) for m in re.finditer(rx, text, re.M)}


def test_a_fault_set_through_the_admin_api_reaches_every_worker(eir_factory) -> None:  # type: ignore[no-untyped-def]
    port, metrics_port = free_port(), free_port()
    eir = eir_factory(
        {
            "workers": 2,
            "diameter": {"listen": [f"127.0.0.1:{port}"]},
            "m3ua": {"enabled": False},
            "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
            "admin": {"token": TOKEN},
        },
        lists=f"imei,status\n{IMEI},black\n",
    )
    eir.wait_for_log("eir_ready", worker=1, timeout=20)
    api = httpx.Client(base_url=eir.admin_url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=10)
    r = api.post("/faults", json={"id": "busy", "kind": "result_code", "result_code": 3004})
    assert r.status_code == 201, r.text
    eir.wait_for_log("control_faults_applied", worker=1, rules=1, timeout=10)
    codes = asyncio.run(_codes("127.0.0.1", port, 24))
    assert codes == [3004] * 24, codes  # DIAMETER_TOO_BUSY on every connection, on both workers
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as m:
        text = m.read().decode()
    injected = _per_worker(text, "eir_faults_injected_total", 'kind="result_code",')
    assert set(injected) == {"0", "1"} and all(v > 0 for v in injected.values()), injected
    assert sum(injected.values()) == 24
    # cleared through the API: every worker answers normally again
    assert api.delete("/faults/busy").status_code == 204
    for _ in range(100):  # worker 1 logs each rule set it applies: the last one is now empty
        applied = [
            e for e in eir.log_events() if e.get("event") == "control_faults_applied" and e.get("worker") == 1
        ]
        if applied and applied[-1]["rules"] == 0:
            break
        time.sleep(0.05)
    codes = asyncio.run(_codes("127.0.0.1", port, 16))
    assert codes == [2001] * 16, codes
    workers = {e.get("worker") for e in eir.log_events() if e.get("event") == "diameter_peer_open"}
    assert workers == {0, 1}, "the kernel spread the connections over both processes"
    api.close()


def test_peers_lists_the_connections_of_every_worker(eir_factory) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    eir = eir_factory(
        {
            "workers": 2,
            "diameter": {"listen": [f"127.0.0.1:{port}"]},
            "m3ua": {"enabled": False},
            "admin": {"token": TOKEN},
        },
        lists=f"imei,status\n{IMEI},black\n",
    )
    eir.wait_for_log("eir_ready", worker=1, timeout=20)

    async def main() -> tuple[dict[str, object], list[int]]:
        mmes = [await SimulatedMme.connect("127.0.0.1", port) for _ in range(16)]
        try:
            for m in mmes:
                assert (await m.check(IMEI)).result_code == 2001
            async with httpx.AsyncClient(
                base_url=eir.admin_url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=10
            ) as api:
                r = await api.get("/peers")
                assert r.status_code == 200, r.text
                return r.json(), [m._proto.transport.get_extra_info("sockname")[1] for m in mmes]
        finally:
            for m in mmes:
                await m.close()

    peers, ports = asyncio.run(main())
    s13 = peers["s13"]
    assert isinstance(s13, list) and len(s13) == 16, peers
    assert sorted(int(p["address"].rsplit(":", 1)[1]) for p in s13) == sorted(ports)
    assert {p["worker"] for p in s13} == {0, 1}, "the kernel spread the 16 connections over both workers"
    assert all(p["state"] == "OPEN" and p["checks"] == 1 for p in s13), s13
    assert peers["map"] == [] and peers["n5g"] == [] and peers["incomplete_workers"] == []
