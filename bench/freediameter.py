"""Benchmark: freeDiameter 1.2 as the MME, ``eir serve`` as the EIR, S13 ECR/ECA over TCP loopback.

The load comes from an independent C implementation (``testkit/freediameter/s13_mme.c``), so the
figures measure the EIR, not a Python load generator sharing its weaknesses. Window 1 gives the
round-trip latency of one ECR; window 128 the throughput with many requests outstanding. Latencies
are measured inside freeDiameter (send → answer callback, CLOCK_MONOTONIC).

The same driver also runs against bench/diameter.py's minimal no-logic responder (fixed CEA/ECA,
``python -m bench.diameter --minimal-responder``): the difference is the cost of the EIR's decoding,
policy and store path.

Run alone: ``.venv/bin/python -m bench.freediameter [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testkit.eirproc import EirProcess  # noqa: E402
from testkit.freediameter.fd import Ecr, build_extension, run_mme, unavailable  # noqa: E402
from testkit.proc import cpu_seconds  # noqa: E402

IMEIS = [("35209900176148", "white"), ("35394206000001", "grey"), ("35394206000002", "black")]


def _figures(result: Any) -> dict[str, Any]:
    s = result.summary
    if s is None or not result.opened:
        raise RuntimeError(f"freeDiameter run did not complete:\n{result.describe()}")
    return {
        "requests": s.sent,
        "answered": s.answered,
        "failed": s.failed,
        "window": s.window,
        "elapsed_s": round(s.elapsed_us / 1e6, 3),
        "ecr_per_s": round(s.rate, 1),
        "p50_ms": round(s.p50_us / 1000, 3),
        "p99_ms": round(s.p99_us / 1000, 3),
    }


def _drive(
    tmp: Path,
    name: str,
    addr: tuple[str, int],
    ext: Path,
    plan: list[tuple[int, int]],
    requests: list[Ecr | str],
    pid: int | None = None,
) -> dict[str, Any]:
    """Run the plan; with ``pid`` (the server's process) also its CPU time per answered ECR, a
    figure that other load on a shared machine disturbs far less than the rate."""
    out: dict[str, Any] = {}
    for window, count in plan:
        cpu0 = cpu_seconds(pid)
        res = run_mme(
            tmp / f"{name}-w{window}",
            addr,
            requests,
            extension=ext,
            window=window,
            count=count,
            timeout=300.0,
            answer_timeout=10.0,
        )
        cpu1 = cpu_seconds(pid)
        fig = _figures(res)
        cpu = ""
        if cpu0 is not None and cpu1 is not None and fig["answered"]:
            # includes the CER/DPR of the run: negligible against thousands of ECRs
            fig["server_cpu_us_per_ecr"] = round((cpu1 - cpu0) / fig["answered"] * 1e6, 2)
            cpu = f"  server CPU {fig['server_cpu_us_per_ecr']:.2f} us/ECR"
        out[f"window_{window}"] = fig
        print(
            f"  {name:9s} window {window:4d}: {fig['answered']:7d} ECRs in {fig['elapsed_s']:7.3f} s "
            f"= {fig['ecr_per_s']:9.1f} ECR/s  p50 {fig['p50_ms']:.3f} ms  p99 {fig['p99_ms']:.3f} ms{cpu}",
            flush=True,
        )
    return out


@contextlib.contextmanager
def _eir(tmp: Path) -> Iterator[EirProcess]:
    lists = tmp / "lists.csv"
    lists.write_text("imei,status\n" + "".join(f"{i},{s}\n" for i, s in IMEIS))
    eir = EirProcess(
        tmp / "eir",
        {
            "log": {"level": "warning"},
            "m3ua": {"enabled": False},
            "policy": {"unknown_equipment": "unknown"},
            "lists": {"import_on_start": [str(lists)]},
        },
    )
    eir.start()
    try:
        yield eir
    finally:
        eir.stop()


@contextlib.contextmanager
def _minimal_responder(tmp: Path) -> Iterator[tuple[tuple[str, int], int]]:
    """``python -m bench.diameter --minimal-responder PORTFILE``: fixed CEA/ECA, no decoding."""
    port_file = tmp / "minimal.port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.diameter", "--minimal-responder", str(port_file)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"minimal responder did not start (rc={proc.poll()})")
            time.sleep(0.05)
        yield ("127.0.0.1", int(port_file.read_text())), proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run(quick: bool) -> dict[str, Any]:
    if (reason := unavailable()) is not None:
        print(f"  skipped: {reason}")
        return {"skipped": reason}
    plan = [(1, 1000), (128, 10000)] if quick else [(1, 5000), (128, 100000)]
    requests: list[Ecr | str] = [imei for imei, _ in IMEIS]
    results: dict[str, Any] = {"driver": "freeDiameter 1.2.1 + s13_mme.fdx, TCP loopback"}
    with tempfile.TemporaryDirectory(prefix="bench-fd-") as d:
        tmp = Path(d)
        ext = build_extension(tmp / "ext")
        with _eir(tmp) as eir:
            results["eir"] = _drive(
                tmp, "eir", eir.diameter, ext, plan, requests, eir.proc.pid if eir.proc is not None else None
            )
        if importlib.util.find_spec("bench.diameter") is None:
            results["minimal_responder"] = "not provided by bench/diameter.py"
        else:
            with _minimal_responder(tmp) as (addr, pid):
                results["minimal_responder"] = _drive(tmp, "minimal", addr, ext, plan, requests, pid)
            eir128 = results["eir"]["window_128"]["ecr_per_s"]
            min128 = results["minimal_responder"]["window_128"]["ecr_per_s"]
            results["eir_vs_minimal_window_128"] = round(eir128 / min128, 3)
    return results


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.freediameter", description=__doc__)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    print(json.dumps(run(args.quick), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
