"""``make soak``: S13 and MAP together at 80 % of what they reach together, for 10 minutes (issue 10).

What a lab needs to trust before a long load test: nothing goes unanswered, memory does not creep,
latency does not drift. The run:

1. starts ``eir serve`` (SQLite, demo-sized list, clone rule on; Diameter and M3UA over TCP);
2. measures each interface's maximum alone: a simulated MME, then a simulated MSC, in closed loop
   (window 128) for about ``--probe`` seconds each. The EIR and the generator share the cores, so
   together the machine does ``r_s13 / max_s13 + r_map / max_map = 1`` at most; the soak gives each
   half, times ``--fraction`` (0.8);
3. runs both at once in **open loop** (:mod:`simulations.load`: latency from the intended send time,
   no coordinated omission) at those rates for ``--minutes`` (10), in slices of ``--slice``
   seconds, sampling the EIR's resident memory after each slice.

Pass: 0 requests unanswered on either interface; RSS at the end within 5 % of RSS after the first
slice (the first slice is the warm-up: caches, buffers, the allocator's arenas); every slice's p99
within 3 x the median slice p99 of its interface. Figures are printed per slice and written to
``bench/soak.json``; exit 1 when a criterion fails. The single IMEI keeps the clone tracker in its
steady state, so growth would be a leak rather than a bounded table filling up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

IMEI = "49015420323751"
WINDOW = 128


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _soak(
    eir_pid: int,
    s13: tuple[str, int],
    m3ua: tuple[str, int],
    *,
    minutes: float,
    fraction: float,
    slice_s: float,
    probe_s: float,
) -> dict[str, Any]:
    from simulations.load import drive, load_plan
    from simulations.mme import SimulatedMme
    from simulations.msc import SimulatedMsc
    from testkit.proc import cpu_seconds

    mme = await SimulatedMme.connect(*s13)
    msc = await SimulatedMsc.connect(*m3ua)
    out: dict[str, Any] = {}
    try:
        await asyncio.gather(mme.load(IMEI, count=3000, window=64), msc.load(IMEI, count=3000, window=64))
        # Each interface's maximum alone (closed loop, window 128, about ``probe_s`` seconds each):
        # the EIR and this generator share the machine's cores, so together they can do a share t of
        # one and 1 - t of the other; the soak takes half of each (S13 and MAP alike), times
        # ``fraction``: r_s13 / max_s13 + r_map / max_map = fraction.
        first_s13 = await mme.load(IMEI, count=20_000, window=WINDOW)
        first_map = await msc.load(IMEI, count=10_000, window=WINDOW)
        a_s13 = await mme.load(IMEI, count=max(5000, round(first_s13.rate * probe_s)), window=WINDOW)
        a_map = await msc.load(IMEI, count=max(5000, round(first_map.rate * probe_s)), window=WINDOW)
        rates = {"s13": fraction * 0.5 * a_s13.rate, "map": fraction * 0.5 * a_map.rate}
        out["alone_max"] = {"s13": round(a_s13.rate), "map": round(a_map.rate)}
        out["soak_rate"] = {k: round(v) for k, v in rates.items()}
        print(
            f"  alone, closed loop window {WINDOW}: S13 {a_s13.rate:,.0f}/s, MAP {a_map.rate:,.0f}/s; "
            f"together at {fraction:.0%} of the machine (half each): S13 {rates['s13']:,.0f}/s + "
            f"MAP {rates['map']:,.0f}/s for {minutes:g} min",
            flush=True,
        )
        slices: list[dict[str, Any]] = []
        n = max(1, round(minutes * 60 / slice_s))
        started = time.monotonic()
        for i in range(n):
            c0 = cpu_seconds(eir_pid)
            r_s13, r_map = await asyncio.gather(
                drive(
                    [mme.sender(IMEI, tally=False)],
                    load_plan(count=None, window=None, rate=rates["s13"], duration=slice_s, timeout=10.0),
                ),
                drive(
                    [msc.sender(IMEI)],
                    load_plan(count=None, window=None, rate=rates["map"], duration=slice_s, timeout=10.0),
                ),
            )
            c1 = cpu_seconds(eir_pid)
            rss = _rss_kib(eir_pid)
            row = {
                "slice": i + 1,
                "t_s": round(time.monotonic() - started, 1),
                "rss_kib": rss,
                "eir_cpu_share": round((c1 - c0) / slice_s, 2) if c0 is not None and c1 is not None else None,
            }
            for name, r in (("s13", r_s13), ("map", r_map)):
                row[name] = {
                    "sent": r.sent,
                    "answered": r.answered,
                    "lost": r.lost,
                    "rate": round(r.rate),
                    "p50_ms": round(r.p50_ms, 2),
                    "p99_ms": round(r.p99_ms, 2),
                    "p999_ms": round(r.p999_ms, 2),
                    "verdicts": r.verdicts,
                    "error": r.error,
                }
            slices.append(row)
            print(
                f"  slice {i + 1:3d}/{n} t={row['t_s']:6.0f}s  S13 {r_s13.answered:>8,}/{r_s13.sent:<8,} "
                f"p99 {r_s13.p99_ms:6.2f} ms  MAP {r_map.answered:>7,}/{r_map.sent:<7,} "
                f"p99 {r_map.p99_ms:6.2f} ms  RSS {rss / 1024:6.1f} MiB  EIR CPU {row['eir_cpu_share']}",
                flush=True,
            )
            if r_s13.error or r_map.error:
                break
        out["slices"] = slices
    finally:
        await mme.close()
        await msc.close()
    return out


def _verdict(res: dict[str, Any]) -> dict[str, Any]:
    slices = res["slices"]
    lost = {k: sum(s[k]["sent"] - s[k]["answered"] for s in slices) for k in ("s13", "map")}
    base = slices[0]["rss_kib"]
    end = slices[-1]["rss_kib"]
    growth = (end - base) / base if base else 0.0
    drift: dict[str, float] = {}
    for k in ("s13", "map"):
        p99s = [s[k]["p99_ms"] for s in slices]
        med = statistics.median(p99s)
        drift[k] = round(max(p99s) / med, 2) if med else 0.0
    checks = {
        "unanswered_zero": lost["s13"] == 0
        and lost["map"] == 0
        and not any(s[k]["error"] for s in slices for k in ("s13", "map")),
        "rss_growth_under_5pct": growth < 0.05,
        "p99_stable_3x_median": all(v <= 3.0 for v in drift.values()),
    }
    return {
        "unanswered": lost,
        "rss_first_slice_mib": round(base / 1024, 1),
        "rss_end_mib": round(end / 1024, 1),
        "rss_growth_pct": round(growth * 100, 2),
        "p99_max_over_median": drift,
        "checks": checks,
        "passed": all(checks.values()),
    }


def run(
    minutes: float = 10.0, fraction: float = 0.8, slice_s: float = 30.0, probe_s: float = 10.0
) -> dict[str, Any]:
    from testkit.eirproc import EirProcess

    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    with tempfile.TemporaryDirectory(prefix="eir-soak-") as td:
        tmp = Path(td)
        lists = tmp / "lists.csv"
        lists.write_text(f"imei,status\n{IMEI},white\n")
        eir = EirProcess(
            tmp / "eir",
            {
                "log": {"level": "warning"},
                "n5g": {"enabled": False},
                "lists": {"import_on_start": [str(lists)]},
            },
        )
        eir.start()
        try:
            res = runner(
                _soak(
                    int(eir.ready["pid"]),
                    eir.diameter,
                    eir.m3ua,
                    minutes=minutes,
                    fraction=fraction,
                    slice_s=slice_s,
                    probe_s=probe_s,
                )
            )
        finally:
            eir.stop()
    res.update(minutes=minutes, fraction=fraction, slice_s=slice_s)
    res["result"] = _verdict(res)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument(
        "--fraction", type=float, default=0.8, help="of what the machine does (S13 and MAP half each)"
    )
    p.add_argument("--slice", type=float, default=30.0, help="seconds per reported slice")
    p.add_argument("--probe", type=float, default=10.0, help="seconds of the maximum measurement")
    p.add_argument("--out", default="bench/soak.json")
    a = p.parse_args(argv)
    res = run(a.minutes, a.fraction, a.slice, a.probe)
    r = res["result"]
    print(
        f"soak: unanswered S13 {r['unanswered']['s13']} MAP {r['unanswered']['map']}; RSS "
        f"{r['rss_first_slice_mib']} → {r['rss_end_mib']} MiB ({r['rss_growth_pct']:+.2f} %); p99 max/median "
        f"S13 {r['p99_max_over_median']['s13']} MAP {r['p99_max_over_median']['map']} — "
        f"{'PASSED' if r['passed'] else 'FAILED ' + str([k for k, v in r['checks'].items() if not v])}"
    )
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0 if r["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
