"""The load generator's open loop against ``eir serve`` (issue 7 part 5's benchmark): does it hold
10k ECR/s, and is its p99 — measured from each request's *intended* send time, so without coordinated
omission — within 2x the p99 of a closed loop paced at the same rate (measured from the actual send)?

Both runs use one simulated MME connection in this process (:mod:`simulations.load`) against the EIR
in its own process (SQLite store, clone detection on: the defaults). Figures: achieved send and answer
rates, p50/p90/p99/p99.9/max, requests lost, the generator's worst lateness, and CPU time per ECR of
the EIR and of the generator (CPU time, because the wall clock of a shared 2-core machine is noisy).
``--quick``: 10 s per run instead of 60.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

RATE = 10_000.0
WINDOW = 128


async def _runs(addr: tuple[str, int], duration: float, pid: int) -> dict[str, Any]:
    from bench.diameter import IMEI
    from simulations.load import drive, load_plan
    from simulations.mme import SimulatedMme
    from testkit.proc import cpu_seconds

    mme = await SimulatedMme.connect(*addr)
    out: dict[str, Any] = {}
    try:
        await mme.load(IMEI, count=5000, window=64, tally=False)  # warm-up
        # what the connection can do at all (closed loop, window 128, 5 s worth at 10k/s)
        s = await mme.load(IMEI, count=50_000, window=WINDOW, tally=False)
        out["closed_max"] = {"ecr_per_s": round(s.rate), "p99_ms": s.p99_ms, "window": WINDOW}
        for name, window in (("closed_paced", WINDOW), ("open", None)):
            plan = load_plan(count=None, window=window, rate=RATE, duration=duration, timeout=10.0)
            c0 = cpu_seconds(pid)
            s = await drive([mme.sender(IMEI, tally=False)], plan)
            c1 = cpu_seconds(pid)
            fig = {k: v for k, v in asdict(s).items() if k not in ("count", "window", "error")}
            fig["window"] = window
            fig["eir_cpu_us_per_ecr"] = round((c1 - c0) / max(1, s.answered) * 1e6, 2) if c0 and c1 else None
            fig["client_cpu_us_per_ecr"] = round(s.cpu_seconds / max(1, s.sent) * 1e6, 2)
            for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms", "max_send_lag_ms"):
                fig[k] = round(fig[k], 3)
            for k in ("seconds", "rate", "send_rate", "cpu_seconds"):
                fig[k] = round(fig[k], 2)
            out[name] = fig
    finally:
        await mme.close()
    return out


def run(quick: bool) -> dict[str, Any]:
    from bench.diameter import _start_eir, _stop

    duration = 10.0 if quick else 60.0
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    with tempfile.TemporaryDirectory(prefix="bench-openloop-") as td:
        proc, addr, _real = _start_eir(Path(td))
        try:
            res: dict[str, Any] = runner(_runs(addr, duration, proc.pid))
        finally:
            _stop(proc)
    res["rate"] = RATE
    res["duration_s"] = duration
    op, cl = res["open"], res["closed_paced"]
    res["open_p99_vs_closed_paced_p99"] = round(op["p99_ms"] / cl["p99_ms"], 2) if cl["p99_ms"] else None
    res["open_held_rate"] = bool(op["send_rate"] >= 0.99 * RATE and op["lost"] == 0)
    res["target"] = "open loop holds 10k ECR/s (send rate >= 99 %, nothing lost), p99 <= 2 x closed paced p99"
    res["target_met"] = bool(
        res["open_held_rate"]
        and res["open_p99_vs_closed_paced_p99"] is not None
        and res["open_p99_vs_closed_paced_p99"] <= 2.0
    )
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.openloop")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    print(json.dumps(run(args.quick), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
