"""S13 throughput and latency: the EIR (``eir serve`` in its own process, real checker and SQLite
store) against a minimal no-logic asyncio responder (also its own process, same event loop kind),
both driven by the simulated MME's pipeline in this process.

Figures: ECR/s and p50/p99 latency at window 1 and window 128 for each, and the ratio EIR /
minimal responder at window 128 (target ≥ 0.8, p99 ≤ 5 ms).

``python -m bench.diameter --minimal-responder PORTFILE`` runs the responder alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
IMEI = "35123456789012"


# --- the minimal responder ------------------------------------------------------------------------


def _minimal_responder(port_file: str) -> None:
    """Answers CER with a fixed CEA, ECR with a fixed ECA (ids patched), DWR/DPR likewise. No
    decoding beyond the 20-byte header: the floor of what an asyncio Diameter server costs."""
    from protocols.diameter import dictionary as d
    from protocols.diameter.codec import encode_raw

    origin = d.ORIGIN_HOST.encode("eir.localdomain") + d.ORIGIN_REALM.encode("localdomain")
    vsai = d.VENDOR_SPECIFIC_APPLICATION_ID.encode(
        d.VENDOR_ID.encode(10415) + d.AUTH_APPLICATION_ID.encode(16777252)
    )
    ok = d.RESULT_CODE.encode(2001)
    templates = {
        257: encode_raw(
            257,
            0,
            0,
            0,
            0,
            ok
            + origin
            + d.HOST_IP_ADDRESS.encode("127.0.0.1")
            + d.VENDOR_ID.encode(0)
            + d.PRODUCT_NAME.encode("minimal")
            + vsai,
        ),
        280: encode_raw(280, 0, 0, 0, 0, ok + origin),
        282: encode_raw(282, 0, 0, 0, 0, ok + origin),
        324: encode_raw(
            324,
            0x40,
            16777252,
            0,
            0,
            d.SESSION_ID.encode("eir.localdomain;1;1")
            + vsai
            + ok
            + d.AUTH_SESSION_STATE.encode(1)
            + origin
            + d.EQUIPMENT_STATUS.encode(0),
        ),
    }
    hdr = struct.Struct(">IIIII")

    class Responder(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport
            self.buf = bytearray()

        def data_received(self, data: bytes) -> None:
            buf = self.buf
            buf += data
            pos, n, out = 0, len(buf), []
            while n - pos >= 20:
                w0, w1, _a, hbh, e2e = hdr.unpack_from(buf, pos)
                length = w0 & 0xFFFFFF
                if n - pos < length:
                    break
                t = templates.get(w1 & 0xFFFFFF)
                if t is not None and w1 >> 24 & 0x80:
                    out.append(t[:12] + struct.pack(">II", hbh, e2e) + t[20:])
                pos += length
            del buf[:pos]
            if out:
                self.t.write(b"".join(out))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(Responder, "127.0.0.1", 0)
        Path(port_file).write_text(str(srv.sockets[0].getsockname()[1]))
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover
        asyncio.run(main())


# --- processes ---------------------------------------------------------------------------------------


def _wait_for(path: Path, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready")


def _start_eir(tmp: Path, clone: bool = True) -> tuple[subprocess.Popen[bytes], tuple[str, int], bool]:
    """`eir serve` with a list holding the benchmark IMEI. Returns (process, address, real checker)."""
    eir = [sys.executable, "-m", "eir.cli"]
    cfg = {
        "data_dir": str(tmp / "data"),
        "log": {"level": "info", "format": "json"},
        "diameter": {"listen": ["127.0.0.1:0"], "transports": ["tcp"]},
        "m3ua": {"enabled": False},
        "n5g": {"enabled": False},  # its default port may be taken by another EIR on the machine
        "metrics": {"listen": "127.0.0.1:0"},
        "admin": {"listen": ["127.0.0.1:0"]},
        "store": {"url": f"sqlite:///{tmp / 'data' / 'eir.db'}"},
        "shutdown_grace": 1.0,
        "policy": {"clone": {"enabled": clone}},
    }
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    conf = tmp / "eir.yaml"
    conf.write_text(yaml.safe_dump(cfg))
    lists = tmp / "lists.csv"
    lists.write_text(f"imei,status\n{IMEI},white\n")
    subprocess.run(
        [*eir, "lists", "import", str(lists), "--config", str(conf)],
        check=True,
        cwd=tmp,
        capture_output=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    ready = tmp / "ready.json"
    log = (tmp / "eir.log").open("wb")
    proc = subprocess.Popen(
        [*eir, "serve", "--config", str(conf), "--ready-file", str(ready)],
        cwd=tmp,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    info = json.loads(_wait_for(ready, proc, "eir serve"))
    host, port = info["diameter"][0][:2]
    return proc, (host, int(port)), True


def _start_minimal(tmp: Path) -> tuple[subprocess.Popen[bytes], tuple[str, int]]:
    pf = tmp / "minimal.port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.diameter", "--minimal-responder", str(pf)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    return proc, ("127.0.0.1", int(_wait_for(pf, proc, "minimal responder")))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --- measuring ---------------------------------------------------------------------------------------


async def _measure(
    addr: tuple[str, int], runs: list[tuple[int, int]], repeat: int, pid: int | None = None
) -> dict[str, Any]:
    """Best of ``repeat`` runs per window; with ``pid`` also the server's CPU time per ECR (the
    smallest of the runs: the least disturbed by other work on the machine)."""
    from simulations.mme import SimulatedMme
    from testkit.proc import cpu_seconds as _cpu_seconds

    mme = await SimulatedMme.connect(*addr)
    out: dict[str, Any] = {}
    try:
        await mme.load(IMEI, count=2000, window=64, tally=False)  # warm-up
        for window, count in runs:
            best: Any = None
            cpu_us: float | None = None
            for _ in range(repeat):
                c0 = _cpu_seconds(pid) if pid else None
                s = await mme.load(IMEI, count=count, window=window, tally=False)
                c1 = _cpu_seconds(pid) if pid else None
                if c0 is not None and c1 is not None and c1 > c0:
                    us = (c1 - c0) / count * 1e6
                    cpu_us = us if cpu_us is None else min(cpu_us, us)
                if best is None or s.rate > best.rate:
                    best = s
            check = await mme.load(IMEI, count=50, window=8, tally=True)
            out[f"w{window}"] = {
                "count": count,
                "ecr_per_s": round(best.rate),
                "p50_ms": round(best.p50_ms, 3),
                "p99_ms": round(best.p99_ms, 3),
                "answers": check.verdicts,
            }
            if cpu_us is not None:
                out[f"w{window}"]["eir_cpu_us_per_ecr"] = round(cpu_us, 2)
    finally:
        await mme.close()
    return out


def run(quick: bool) -> dict[str, Any]:
    runs = [(1, 2000 if quick else 5000), (128, 30000 if quick else 150000)]
    repeat = 2 if quick else 3
    try:
        import uvloop

        runner: Any = uvloop.run
        loop_name = "uvloop"
    except ImportError:  # pragma: no cover
        runner, loop_name = asyncio.run, "asyncio"
    results: dict[str, Any] = {
        "client": f"simulations.mme pipeline ({loop_name}, this process)",
        "server_loop": loop_name,
    }
    with tempfile.TemporaryDirectory(prefix="bench-s13-") as td:
        tmp = Path(td)
        proc, addr = _start_minimal(tmp)
        try:
            results["minimal_responder"] = runner(_measure(addr, runs, repeat))
        finally:
            _stop(proc)
        proc, addr, real = _start_eir(tmp)
        try:
            results["eir"] = runner(_measure(addr, runs, repeat, proc.pid))
        finally:
            _stop(proc)
        # the same without clone detection (which records an observation per check in SQLite)
        proc, addr, _ = _start_eir(tmp / "noclone", clone=False)
        try:
            results["eir_clone_detection_off"] = runner(_measure(addr, runs, repeat))
        finally:
            _stop(proc)
        results["checker"] = "eir.checker.build_checker (policy + SQLite store)" if real else "constant"
    eir128 = results["eir"]["w128"]["ecr_per_s"]
    min128 = results["minimal_responder"]["w128"]["ecr_per_s"]
    results["ratio_w128"] = round(eir128 / min128, 3) if min128 else None
    results["brief_reference_minimal_ecr_per_s"] = 23000
    results["ratio_w128_vs_brief_reference"] = round(eir128 / 23000, 3)
    results["note"] = (
        "the minimal responder is measured with the same pre-encoded pipelined client as the EIR; with "
        "it the no-logic floor is far above the ~23k ECR/s quoted in the brief for a simpler client, so "
        "ratio_w128 compares full decoding + policy + SQLite against header patching only"
    )
    results["target"] = "ratio_w128 >= 0.8 and eir p99 <= 5 ms"
    results["target_met"] = bool(
        results["ratio_w128"] and results["ratio_w128"] >= 0.8 and results["eir"]["w128"]["p99_ms"] <= 5.0
    )
    print(json.dumps(results, indent=2))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.diameter")
    p.add_argument("--minimal-responder", metavar="PORTFILE", default=None)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.minimal_responder:
        _minimal_responder(args.minimal_responder)
        return 0
    run(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
