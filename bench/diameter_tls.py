"""Benchmark: S13 over TLS/TCP (RFC 6733 §13, ``diameter.tls_listen``) beside plain TCP, against one
``eir serve`` (subprocess) listening on both, driven by the simulated MME's pipeline in this process.

Figures per transport: ECR/s and p50/p99 at window 64, and the EIR process's CPU time per ECR
(utime + stime from /proc: robust when other work shares the cores) — what TLS costs the EIR. The
certificates (EC P-256, TLS 1.3 negotiated) are made with the openssl CLI for the run.
Run alone: ``.venv/bin/python -m bench.diameter_tls [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulations.mme import SimulatedMme
from testkit.eirproc import EirProcess
from testkit.proc import cpu_seconds

IMEI = "35123456789012"


def _certificate(tmp: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl not installed (Debian package openssl)")
    cert, key = tmp / "eir.pem", tmp / "eir.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=eir.localdomain",
         "-addext", "subjectAltName=DNS:eir.localdomain"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


async def _measure(
    address: tuple[str, int], pid: int, count: int, tls: ssl.SSLContext | None
) -> dict[str, Any]:
    mme = await SimulatedMme.connect(*address, tls=tls, tls_server_name="eir.localdomain")
    try:
        await mme.load(IMEI, count=min(2000, count), window=64, tally=False)  # warm-up
        cpu0 = cpu_seconds(pid) or 0.0
        s = await mme.load(IMEI, count=count, window=64, tally=False)
        cpu = (cpu_seconds(pid) or 0.0) - cpu0
    finally:
        await mme.close()
    return {
        "ecrs": count,
        "ecr_per_s": round(s.rate, 1),
        "p50_ms": round(s.p50_ms, 3),
        "p99_ms": round(s.p99_ms, 3),
        "eir_cpu_us_per_ecr": round(cpu / count * 1e6, 1),
    }


def run(quick: bool = False) -> dict[str, Any]:
    count = 10000 if quick else 50000
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as d:
        tmp = Path(d)
        cert, key = _certificate(tmp)
        eir = EirProcess(
            tmp / "eir",
            {
                "log": {"level": "info"},
                "policy": {"clone": {"enabled": False}},
                "diameter": {"tls_listen": ["127.0.0.1:0"], "tls_cert": str(cert), "tls_key": str(key)},
                "m3ua": {"enabled": False},
                "n5g": {"enabled": False},
            },
        ).start()
        try:
            assert eir.proc is not None
            pid = eir.proc.pid
            tls_addr = next((h, int(p)) for h, p, t in eir.ready["diameter"] if t == "tls")
            ctx = ssl.create_default_context(cafile=str(cert))
            out = {
                "tcp": asyncio.run(_measure(eir.diameter, pid, count, None)),
                "tls": asyncio.run(_measure(tls_addr, pid, count, ctx)),
            }
        finally:
            eir.stop()
    tcp, tls = out["tcp"]["eir_cpu_us_per_ecr"], out["tls"]["eir_cpu_us_per_ecr"]
    out["tls_cpu_ratio"] = round(tls / tcp, 2) if tcp else None
    return out


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
