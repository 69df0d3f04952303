"""dumpcap around a test: capture loopback traffic to a file while a block runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def require(reason: str | None) -> None:
    """Skip when an independent peer is missing — but fail under CI (``CI=true``): a CI run that
    silently skipped its interop tests would pass for the wrong reason."""
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"required by the test suite in CI: {reason}")
    pytest.skip(reason)


def missing(*tools: str) -> str | None:
    for t in tools:
        if shutil.which(t) is None:
            return f"{t} not installed (Debian package {'tshark' if t == 'tshark' else 'wireshark-common'})"
    return None


def _has_header(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


@contextmanager
def dumpcap(
    path: Path, bpf: str, *, interface: str = "lo", pcap: bool = True, linktype: str | None = None
) -> Iterator[Path]:
    """Capture ``bpf`` on ``interface`` into ``path`` (pcap with ``pcap``, else pcapng) while the
    block runs; waits until dumpcap says it is capturing, stops it with SIGINT (it then flushes)."""
    log = path.with_suffix(path.suffix + ".log")
    cmd = ["dumpcap", "-q", "-i", interface, "-f", bpf, "-w", str(path)]
    if pcap:
        cmd.append("-P")
    if linktype:
        cmd += ["-y", linktype]
    with log.open("wb") as lf:
        proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        # dumpcap prints "Capturing on" before it opens the interface; it writes the file's header
        # only once the interface is open with the filter set, so that is the moment to go on
        while "Capturing on" not in log.read_text(errors="replace") or not _has_header(path):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dumpcap did not start: {log.read_text(errors='replace')}")
            time.sleep(0.02)
        yield path
        time.sleep(0.3)  # the last packets reach the capture buffer
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
