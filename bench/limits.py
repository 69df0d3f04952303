"""Benchmark (figures, no assertions): the exhaustion cases of issue 10 against ``eir serve``
(subprocess), each bounded by a limit — what limit, what answer, what it cost.

* ``m3ua_no_aspup``: N associations that connect and send nothing. Before: held forever. Now: each
  closed by ``m3ua.setup_timeout``; figures: how many the server closed, the latest close counted
  from the first connect (opening N takes a while too), the EIR's file descriptors at the peak and
  after, eir_connections_closed.
* ``m3ua_never_reads``: K associations brought up that flood 16 KB BEATs and never read the
  BEAT ACKs. Now: cut by ``m3ua.write_timeout`` once ``write_buffer_limit`` is queued; figures: cut,
  the EIR's RSS growth while they flooded.
* ``diameter_no_cer``: N connections that never send a CER: closed at Tw (the CER limit).

The limits are set short here (setup 2 s, write 1 s, Tw 6 s — RFC 3539's minimum) so that a run
takes seconds; the defaults are 30 s each. Run alone: ``.venv/bin/python -m bench.limits [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocols.sigtran import m3ua
from testkit.eirproc import EirProcess
from testkit.proc import cpu_seconds

SETUP, WRITE, TW = 2.0, 1.0, 6.0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss_mb(pid: int) -> float:
    m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) / 1024 if m else 0.0


def _closed(eir: EirProcess) -> dict[str, float]:
    h, p = eir.metrics
    with urllib.request.urlopen(f"http://{h}:{p}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for m in re.finditer(
        r'eir_connections_closed_total\{interface="(\w+)",reason="(\w+)"\} ([0-9.e+]+)', text
    ):
        out[f"{m.group(1)}:{m.group(2)}"] = float(m.group(3))
    return {k: v for k, v in out.items() if v}


async def _silent(host: str, port: int, n: int, pid: int, bound: float) -> dict[str, Any]:
    """N connections sending nothing: how many the server closed within ``bound`` s, and when."""
    fds0 = _fds(pid)
    started = time.monotonic()
    conns = [await asyncio.open_connection(host, port) for _ in range(n)]
    peak = _fds(pid)

    async def eof(reader: asyncio.StreamReader) -> float | None:
        try:
            while await asyncio.wait_for(reader.read(65536), bound):
                pass
        except TimeoutError:
            return None
        return time.monotonic() - started

    closes = await asyncio.gather(*(eof(r) for r, _ in conns))
    for _, w in conns:
        w.close()
    await asyncio.sleep(0.5)
    done = [c for c in closes if c is not None]
    return {
        "connections": n,
        "closed_by_server": len(done),
        "last_close_s": round(max(done), 2) if done else None,
        "eir_fds_before": fds0,
        "eir_fds_peak": peak,
        "eir_fds_after": _fds(pid),
    }


async def _never_reads(eir: EirProcess, k: int, pid: int) -> dict[str, Any]:
    """K associations brought up that flood 16 KB BEATs and read nothing back."""
    import socket

    host, port = eir.m3ua
    cut0 = _closed(eir).get("map:write_stalled", 0.0)
    rss0 = _rss_mb(pid)
    loop = asyncio.get_running_loop()
    writers = []
    for _ in range(k):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        await loop.sock_connect(s, (host, port))
        _reader, writer = await asyncio.open_connection(sock=s)
        writer.write(
            m3ua.encode_message(m3ua.MessageType.ASPUP) + m3ua.encode_message(m3ua.MessageType.ASPAC)
        )
        writers.append(writer)
    beat = m3ua.encode_message(m3ua.MessageType.BEAT, [(m3ua.Tag.HEARTBEAT_DATA, b"x" * 16000)])
    started = time.monotonic()
    peak, cut, last = rss0, 0.0, None
    while time.monotonic() - started < WRITE + 30:
        for w in writers:
            while not w.transport.is_closing() and w.transport.get_write_buffer_size() < 1 << 20:
                w.write(beat)  # keep a megabyte queued: the EIR's side fills as fast as it reads
        peak = max(peak, _rss_mb(pid))
        await asyncio.sleep(0.05)
        cut = _closed(eir).get("map:write_stalled", 0.0) - cut0
        if cut >= k:
            last = time.monotonic() - started
            break
    for w in writers:
        w.transport.abort()
    await asyncio.sleep(0.5)
    return {
        "associations": k,
        "cut_by_server": int(cut),
        "last_cut_s": round(last, 2) if last is not None else None,
        "eir_rss_mb_before": round(rss0, 1),
        "eir_rss_mb_peak": round(peak, 1),
        "eir_rss_mb_after": round(_rss_mb(pid), 1),
    }


def run(quick: bool = False) -> dict[str, Any]:
    n = 500 if quick else 2000
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        eir = EirProcess(
            Path(tmp),
            {
                "log": {"level": "info"},
                "m3ua": {"setup_timeout": SETUP, "write_timeout": WRITE, "write_buffer_limit": 65536,
                         "max_connections": 8192, "max_connections_per_source": 8192},
                "diameter": {"watchdog_interval": TW, "max_connections": 8192,
                             "max_connections_per_source": 8192},
                "n5g": {"enabled": False},
            },
        ).start()  # fmt: skip
        try:
            assert eir.proc is not None
            pid = eir.proc.pid
            cpu0 = cpu_seconds(pid) or 0.0
            mh, mp = eir.m3ua
            dh, dp = eir.diameter
            out: dict[str, Any] = {"limits_s": {"m3ua_setup": SETUP, "m3ua_write": WRITE, "diameter_tw": TW}}
            out["m3ua_no_aspup"] = asyncio.run(_silent(mh, mp, n, pid, SETUP + 20))
            out["diameter_no_cer"] = asyncio.run(_silent(dh, dp, n, pid, TW + 20))
            out["m3ua_never_reads"] = asyncio.run(_never_reads(eir, 8 if quick else 32, pid))
            out["eir_connections_closed"] = _closed(eir)
            out["eir_cpu_s"] = round((cpu_seconds(pid) or 0.0) - cpu0, 2)
        finally:
            eir.stop()
    return out


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
