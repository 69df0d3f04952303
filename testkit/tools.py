"""Independent peers the tests run (curl, nghttp, h2load, nghttpd, tshark, dumpcap): found on PATH
(or /usr/sbin), skipped when missing on a developer's machine, a failure in CI (``CI=true``) — a
missing independent peer must never pass silently there (``make deps`` installs them)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin"):
        p = Path(d) / name
        if p.exists():
            return str(p)
    return None


def need_tool(name: str, package: str) -> str:
    """The path of ``name``; else skip (fail under CI), naming the Debian ``package``."""
    path = find_tool(name)
    if path is not None:
        return path
    msg = f"{name} missing (Debian package {package}; `make deps` installs it)"
    if in_ci():
        pytest.fail(msg)
    pytest.skip(msg)
