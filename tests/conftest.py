"""Shared fixtures and hooks.

* ``eir_factory`` runs real ``eir serve`` subprocesses on free loopback ports.
* ``@pytest.mark.peer(name, why)``: the test needs an independent peer (tshark, freediameter,
  redis-server, mosquitto, postgresql): skipped when it is missing, failed under ``CI=true``
  (:func:`testkit.peers.require_peer`); the session summary says which peers were missing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit import peers
from testkit.eirproc import EirProcess


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "peer(name, why): needs an independent peer; skipped when missing, a failure under CI=true"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("peer"):
        peers.require_peer(*mark.args, **mark.kwargs)


_PEER_SKIP = re.compile(r"peer (\S+) missing")
_skipped: Counter[str] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and isinstance(report.longrepr, tuple) and (m := _PEER_SKIP.search(report.longrepr[2])):
        _skipped[m.group(1)] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _skipped:
        return
    total = sum(_skipped.values())
    terminalreporter.section("missing peers", sep="!", red=True, bold=True)
    terminalreporter.line(
        f"{total} interop tests did NOT run because independent peers are missing "
        "(install them with `make deps` as root or with sudo; under CI=true this is a failure):",
        red=True,
    )
    for name, n in sorted(_skipped.items()):
        terminalreporter.line(f"  {name}: {n} tests skipped — {peers.missing(name)}")


@pytest.fixture
def eir_factory(tmp_path: Path) -> Iterator[Any]:
    """``eir_factory(config=None, lists=None, env=None) -> EirProcess`` (started).

    ``config`` is merged over the test defaults (every port 0, SQLite in tmp); ``lists`` is a CSV path
    or CSV text imported through ``eir lists import`` before the server starts.
    """
    procs: list[EirProcess] = []

    def make(
        config: dict[str, Any] | None = None,
        lists: str | Path | None = None,
        env: dict[str, str] | None = None,
        start: bool = True,
    ) -> EirProcess:
        p = EirProcess(tmp_path / f"eir{len(procs)}", config, env)
        procs.append(p)
        if lists is not None:
            path = Path(lists) if isinstance(lists, Path) or "\n" not in str(lists) else None
            if path is None:
                path = p.tmp / "lists.csv"
                path.write_text(str(lists))
            p.cli("lists", "import", str(path))
        return p.start() if start else p

    yield make
    for p in procs:
        p.stop()
