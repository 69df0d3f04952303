"""Global overload control (issue 10): with PostgreSQL stopped (SIGSTOP on its process group), a
flood from many connections of one peer is refused with 3004 DIAMETER_TOO_BUSY beyond its budget,
while a legitimate MME beside it is still answered — every request of both gets an answer, none is
queued without bound. Counts, not timings; the timings are bench/overload.py's."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from simulations.mme import SimulatedMme
from testkit.flood import flood_s13, signal_tree
from testkit.services import PostgresServer, start_postgres

pytestmark = pytest.mark.system

WHITE = "35123456789012"


@pytest.fixture
def pg() -> Iterator[PostgresServer]:
    srv = start_postgres()  # a private server: this test stops it
    yield srv
    if srv.proc is not None:
        signal_tree(srv.proc.pid, signal.SIGCONT)
    srv.destroy()


def metric(text: str, line_start: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def test_flood_with_store_paused_leaves_the_legitimate_mme_answered(
    eir_factory: Any, pg: PostgresServer
) -> None:
    eir = eir_factory(
        {
            "store": {"url": pg.url(), "call_timeout": 0.5},
            "policy": {"clone": {"enabled": False}},
            "overload": {"max_in_flight": 64, "max_in_flight_per_peer": 48},
        },
        lists=f"imei,status\n{WHITE},white\n",
    )
    host, port = eir.diameter
    assert pg.proc is not None
    signal_tree(pg.proc.pid, signal.SIGSTOP)  # postmaster and every backend: the store hangs
    try:
        result = asyncio.run(
            flood_s13(host, port, connections=8, per_connection=300, flood_window=64, legit_count=100)
        )
    finally:
        signal_tree(pg.proc.pid, signal.SIGCONT)
    flood = result.flood_verdicts()
    legit = result.legit.verdicts
    # every request answered (a load that misses one fails), nothing left over
    assert sum(flood.values()) == 8 * 300 and sum(legit.values()) == 100, (flood, legit)
    # the flood went over its peer budget and was refused with 3004; the legitimate MME never was
    assert flood.get("error 3004", 0) > 0, flood
    assert "error 3004" not in legit, legit
    # the store being stopped: the on_unavailable answer (5012) within call_timeout, never a hang
    assert set(legit) <= {"error 5012"}, (
        legit,
        flood,
        [e for e in eir.log_events() if "store" in str(e.get("event"))][:5],
    )
    text = eir.metrics_text()
    assert metric(text, 'eir_overload_refused_total{interface="s13",scope="peer"}') > 0, text
    assert metric(text, "eir_checks_in_flight") == 0  # every slot given back
    events = [e.get("event") for e in eir.log_events()]
    assert "overload_refused" in events and "store_unavailable" in events

    # the store back (SIGCONT above): checks get their verdicts again, from the same connections pool
    async def recovered() -> list[str]:
        mme = await SimulatedMme.connect(host, port, origin_host="mme.legit.lab", origin_realm="lab")
        got = []
        try:
            for _ in range(100):  # bounded: the store is retried after store failures
                got.append((await mme.check(WHITE)).verdict)
                if got[-1] == "white":
                    break
                await asyncio.sleep(0.1)
        finally:
            await mme.close()
        return got

    assert asyncio.run(recovered())[-1] == "white"
    assert "store_recovered" in [e.get("event") for e in eir.log_events()]
