"""The independent peers the test suite runs against, and one rule for when one is missing.

A peer is a program (or a library) the suite does not ship: tshark, freeDiameter (daemon, headers and
gcc for its S13 extension), redis-server, mosquitto, PostgreSQL's initdb. ``make test`` and ``.ci/run``
install the Debian packages first (``.ci/debian-deps``); where that is impossible:

* on a developer's machine a test that needs a missing peer is **skipped**, with the reason and the
  package to install (``pytest -rs`` lists them; the session summary counts them per peer);
* under CI (``CI=true``) it **fails**: a green CI run must not hide ~80 tests that never ran.

Tests say what they need with ``require_peer(name, why)`` (in code and fixtures) or the marker
``@pytest.mark.peer(name, why)`` (tests/conftest.py applies it), never with their own ``skipif``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

__all__ = ["PEERS", "in_ci", "missing", "peer_program", "require_peer"]


def _which(program: str, package: str) -> Callable[[], str | None]:
    def check() -> str | None:
        return None if shutil.which(program) else f"{program} is not installed (Debian package {package})"

    return check


def _where(program: str) -> str | None:
    """``program`` on PATH, or in /usr/sbin (nghttpd is there, and a user's PATH may not have it)."""
    found = shutil.which(program)
    if found:
        return found
    sbin = Path("/usr/sbin") / program
    return str(sbin) if sbin.exists() else None


def _programs(programs: tuple[str, ...], package: str) -> Callable[[], str | None]:
    def check() -> str | None:
        gone = [p for p in programs if _where(p) is None]
        return f"{', '.join(gone)} not installed (Debian package {package})" if gone else None

    return check


def _freediameter() -> str | None:
    from testkit.freediameter.fd import unavailable

    return unavailable()


def _postgresql() -> str | None:
    from testkit.services import PG_BIN

    if (PG_BIN / "initdb").exists():
        return None
    return f"PostgreSQL's initdb is not in {PG_BIN} (Debian package postgresql, or set EIR_TEST_PG_BIN)"


PEERS: dict[str, Callable[[], str | None]] = {
    "tshark": _which("tshark", "tshark"),
    "freediameter": _freediameter,
    "redis-server": _which("redis-server", "redis-server"),
    "mosquitto": _which("mosquitto", "mosquitto"),
    "postgresql": _postgresql,
    # N5g-eir: independent HTTP/2 stacks and the TLS tooling of its tests and benchmark
    "curl": _programs(("curl",), "curl"),
    "nghttp2-client": _programs(("nghttp", "h2load"), "nghttp2-client"),
    "nghttp2-server": _programs(("nghttpd",), "nghttp2-server"),
    "openssl": _programs(("openssl",), "openssl"),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(name: str) -> str | None:
    """Why the peer cannot be used here, or None when it can."""
    if name not in PEERS:
        raise KeyError(f"unknown peer {name!r} (known: {', '.join(PEERS)})")
    return PEERS[name]()


def require_peer(name: str, why: str) -> None:
    """Return when the peer is there; else skip the calling test — or, under ``CI=true``, fail it."""
    reason = missing(name)
    if reason is None:
        return
    message = f"peer {name} missing: {reason}; needed because {why}"
    if in_ci():
        pytest.fail(f"CI=true: {message} (.ci/debian-deps installs it)", pytrace=False)
    pytest.skip(f"{message} (`make deps` installs it)")


def peer_program(program: str, peer: str, why: str) -> str:
    """The path of ``program`` of ``peer`` after :func:`require_peer` (skip, or fail under CI)."""
    require_peer(peer, why)
    path = _where(program)
    if path is None:  # the peer's check names its programs: not reached
        pytest.fail(f"{program} of peer {peer} not found", pytrace=False)
    return path
