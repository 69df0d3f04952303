"""Shared fixtures. ``eir_factory`` runs real ``eir serve`` subprocesses on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.eirproc import EirProcess


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
