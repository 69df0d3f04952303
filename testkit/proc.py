"""Process figures the benchmarks report: CPU time from Linux /proc."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process (/proc/PID/stat fields 14 and 15), or None when it cannot be read:
    figures per CPU-second of the EIR hold when other work shares the machine's cores."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
