"""Global overload control (issue 10): a legitimate MME beside a flood from many connections of one
peer, against ``eir serve`` on an ephemeral PostgreSQL (testkit/services.py).

Scenarios, each on a fresh server:

* ``alone``: the legitimate MME by itself (the reference p99);
* ``flood``: the flood beside it, store healthy, overload control at its defaults scaled down
  (``max_in_flight`` 256, per peer 192);
* ``flood_no_control``: the same with the budgets out of reach (10^6): what the control buys;
* ``flood_store_stopped``: the flood with PostgreSQL stopped (SIGSTOP on the postmaster and every
  backend), ``store.call_timeout`` 0.5 s: the legitimate MME is answered 5012 within the time
  limit instead of waiting 8 s, and the flood's excess gets 3004.

The flood runs in a process of its own (``python -m testkit.flood``), the legitimate MME in this
one, so that its latency is the EIR's and not the flood client's event loop lag.

Figures: the legitimate peer's p50/p99 (ms) and its error share, the flood's answer mix, and the
EIR's CPU seconds per scenario (the wall clock of a shared 2-core box is noisy; CPU time is less).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from simulations.load import LoadSummary
from simulations.mme import SimulatedMme
from testkit.eirproc import ROOT, EirProcess
from testkit.flood import signal_tree
from testkit.proc import cpu_seconds
from testkit.services import start_postgres

WHITE = "35123456789012"


def _share(verdicts: dict[str, int], pred: Any) -> float:
    total = sum(verdicts.values()) or 1
    return round(sum(n for k, n in verdicts.items() if pred(k)) / total, 4)


async def _legit(host: str, port: int, count: int) -> LoadSummary:
    mme = await SimulatedMme.connect(host, port, origin_host="mme.legit.lab", origin_realm="lab")
    try:
        return await mme.load("35990000000000", count=count, window=4, timeout=120, population=(1_000_000, 1))
    finally:
        await mme.close()


def _scenario(
    tmp: Path, pg: Any, name: str, *, flood: bool, overload: dict[str, Any], stop_store: bool, quick: bool
) -> dict[str, Any]:
    seconds = 10 if quick else 40
    outlasted = False
    url = pg.new_database()
    proc = EirProcess(
        tmp / name,
        {
            "log": {"level": "info"},
            "store": {"url": url, "call_timeout": 0.5},
            "policy": {"clone": {"enabled": False}},
            "overload": overload,
        },
        None,
    )
    (tmp / "lists.csv").write_text(f"imei,status\n{WHITE},white\n")
    proc.cli("lists", "import", str(tmp / "lists.csv"))
    proc.start()
    try:
        host, port = proc.diameter
        pid = proc.proc.pid if proc.proc is not None else None
        c0 = cpu_seconds(pid)
        if stop_store:
            assert pg.proc is not None
            signal_tree(pg.proc.pid, signal.SIGSTOP)
        flood_proc = None
        try:
            if flood:  # in a process of its own: the legitimate MME's latency is not its loop lag
                flood_proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "testkit.flood",
                        host,
                        str(port),
                        str(8 if quick else 16),  # connections
                        str(seconds),
                        "128",  # window per connection
                    ],
                    stdout=subprocess.PIPE,
                    cwd=ROOT,
                )
                time.sleep(0.5)  # the flood first: the legitimate MME arrives into it
            legit = asyncio.run(_legit(host, port, 1000 if quick else 5000))
            outlasted = flood_proc is not None and flood_proc.poll() is None
            fv = (
                json.loads(flood_proc.communicate(timeout=seconds + 120)[0]) if flood_proc is not None else {}
            )
        finally:
            if flood_proc is not None and flood_proc.poll() is None:
                flood_proc.kill()
                flood_proc.wait()
            if stop_store and pg.proc is not None:
                signal_tree(pg.proc.pid, signal.SIGCONT)
        c1 = cpu_seconds(pid)
    finally:
        proc.stop()
        pg.drop_database(url)
    return {
        "legit": {
            "count": legit.count,
            "p50_ms": round(legit.p50_ms, 2),
            "p99_ms": round(legit.p99_ms, 2),
            "error_share": _share(legit.verdicts, lambda k: k.startswith("error")),
            "answers": legit.verdicts,
        },
        "flood": {
            "seconds": seconds if flood else 0,
            "still_running_when_the_legitimate_mme_finished": outlasted,
            "count": sum(fv.values()),
            "too_busy_share": _share(fv, lambda k: k == "error 3004"),
            "answers": fv,
        },
        "eir_cpu_seconds": round(c1 - c0, 2) if c0 is not None and c1 is not None else None,
    }


def run(quick: bool) -> dict[str, Any]:
    control = {"max_in_flight": 64, "max_in_flight_per_peer": 32}
    off = {"max_in_flight": 1_000_000, "max_in_flight_per_peer": 1_000_000}
    pg = start_postgres()
    out: dict[str, Any] = {"store": "postgresql (ephemeral, loopback)", "store_call_timeout_s": 0.5}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-overload-") as td:
            tmp = Path(td)
            for name, flood, ov, stop in (
                ("alone", False, control, False),
                ("flood", True, control, False),
                ("flood_no_control", True, off, False),
                ("flood_store_stopped", True, control, True),
            ):
                out[name] = _scenario(tmp, pg, name, flood=flood, overload=ov, stop_store=stop, quick=quick)
                o = out[name]
                print(
                    f"  {name}: legit p99 {o['legit']['p99_ms']} ms, errors {o['legit']['error_share']:.1%}; "
                    f"flood 3004 {o['flood']['too_busy_share']:.1%}",
                    flush=True,
                )
    finally:
        pg.destroy()
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
