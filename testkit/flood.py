"""A flood of S13 checks from many connections of one hostile peer, with a legitimate MME beside it
(issue 10, global overload control). Used by tests/system/test_overload.py (counts) and
bench/overload.py (the legitimate peer's p99 and error share).

Every connection is a :class:`simulations.mme.SimulatedMme` running a closed-loop ``load`` over a
population of distinct IMEIs (so the checker's cache does not answer them); the flood's connections
all carry the same Origin-Host, as a misbehaving MME with many connections would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass

from simulations.load import LoadSummary
from simulations.mme import SimulatedMme


@dataclass(slots=True)
class FloodResult:
    flood: list[LoadSummary]
    legit: LoadSummary

    def flood_verdicts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.flood:
            for k, v in s.verdicts.items():
                out[k] = out.get(k, 0) + v
        return out


async def flood_s13(
    host: str,
    port: int,
    *,
    connections: int = 8,
    per_connection: int = 400,
    flood_window: int = 128,
    legit_count: int = 200,
    legit_window: int = 4,
    timeout: float = 120.0,
) -> FloodResult:
    """Run the flood and the legitimate MME together; each load answers every request it sent
    (a request never answered fails the load after ``timeout``)."""
    flood = [
        await SimulatedMme.connect(host, port, origin_host="flood.lab", origin_realm="lab")
        for _ in range(connections)
    ]
    legit = await SimulatedMme.connect(host, port, origin_host="mme.legit.lab", origin_realm="lab")
    try:
        flood_loads = [
            m.load(
                f"35{i:02d}0000000000",
                count=per_connection,
                window=flood_window,
                timeout=timeout,
                population=(1_000_000, 1),
            )
            for i, m in enumerate(flood)
        ]

        async def legit_load() -> LoadSummary:
            await asyncio.sleep(0.05)  # the flood first: the legitimate MME arrives into it
            return await legit.load(
                "35990000000000",
                count=legit_count,
                window=legit_window,
                timeout=timeout,
                population=(1_000_000, 1),
            )

        *done, legit_done = await asyncio.gather(*flood_loads, legit_load())
        return FloodResult(flood=list(done), legit=legit_done)
    finally:
        for m in (*flood, legit):
            await m.close()


async def flood_only(
    host: str, port: int, *, connections: int, seconds: float, window: int, chunk: int = 2000
) -> dict[str, int]:
    """The flood alone for ``seconds`` (``python -m testkit.flood``: in a process of its own, so
    that the legitimate MME's latency is not the flood client's event loop lag); the answer mix."""
    flood = [
        await SimulatedMme.connect(host, port, origin_host="flood.lab", origin_realm="lab")
        for _ in range(connections)
    ]
    totals: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def one(i: int, m: SimulatedMme) -> None:
        while loop.time() < end:
            s = await m.load(
                f"35{i:02d}0000000000", count=chunk, window=window, timeout=120, population=(1_000_000, 1)
            )
            for k, v in s.verdicts.items():
                totals[k] = totals.get(k, 0) + v

    try:
        await asyncio.gather(*(one(i, m) for i, m in enumerate(flood)))
    finally:
        for m in flood:
            await m.close()
    return totals


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children. PostgreSQL backends call setsid(), so a signal to the postmaster's
    process group would miss them: SIGSTOP goes to each of these instead."""
    out = [pid]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry))
    return out


def signal_tree(pid: int, sig: int) -> None:
    """Send ``sig`` to ``pid`` and its children (SIGSTOP / SIGCONT a PostgreSQL server)."""
    for p in process_tree(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)


if __name__ == "__main__":  # python -m testkit.flood HOST PORT CONNECTIONS SECONDS WINDOW
    import json
    import sys

    h, p, c, secs, w = sys.argv[1:6]
    out = asyncio.run(flood_only(h, int(p), connections=int(c), seconds=float(secs), window=int(w)))
    print(json.dumps(out), flush=True)
