"""The ``store`` fixture the contract suite runs against: one param per backend.

Adding a backend is three lines: an async factory ``(tmp_path, fresh) -> opened store`` (empty
when ``fresh``; ``fresh=False`` opens a second handle on the same data, as another EIR process
would; ``pytest.skip`` with a reason when its server is not reachable), its name in ``FACTORIES``,
and in ``SHARED`` when a second handle sees the first one's data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from eir.store.base import IdentityStore


async def _memory(tmp: Path, fresh: bool = True) -> IdentityStore:
    from eir.store.memory import MemoryStore

    s = MemoryStore("memory://", keep_versions=3)
    await s.open()
    return s


async def _sqlite(tmp: Path, fresh: bool = True) -> IdentityStore:
    from eir.store.sqlite import SqliteStore

    s = SqliteStore(f"sqlite:///{tmp / 'eir.db'}", str(tmp), poll_interval=0.05, keep_versions=3)
    await s.open()
    return s


async def _postgres(tmp: Path, fresh: bool = True) -> IdentityStore:
    from eir.store.postgres import PostgresStore
    from testkit.services import shared_postgres

    marker = tmp / "postgres.url"  # a fresh database per test; a second handle reuses it
    if fresh:
        marker.write_text(shared_postgres().new_database())
    s = PostgresStore(marker.read_text(), keep_versions=3)
    await s.open()
    return s


async def _redis(tmp: Path, fresh: bool = True) -> IdentityStore:
    from eir.store.redis import RedisStore
    from testkit.services import shared_redis

    marker = tmp / "redis.prefix"  # a fresh key prefix per test; a second handle reuses it
    if fresh:
        marker.write_text(f"eirtest-{tmp.name}")
    s = RedisStore(shared_redis().url, prefix=marker.read_text(), keep_versions=3)
    await s.open()
    return s


Factory = Callable[[Path, bool], Awaitable[IdentityStore]]

FACTORIES: dict[str, Factory] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": _postgres,
    "redis": _redis,
}

# Backends whose second handle (same URL) sees the first one's data: the "other process" tests.
SHARED = {"sqlite", "postgres", "redis"}


@pytest.fixture(params=list(FACTORIES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IdentityStore]:
    s = await FACTORIES[request.param](tmp_path, True)
    s.backend = request.param  # type: ignore[attr-defined]
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def second_handle(
    request: pytest.FixtureRequest, store: IdentityStore, tmp_path: Path
) -> AsyncIterator[IdentityStore]:
    """Another handle on the same store (as another EIR process would have)."""
    backend = store.backend  # type: ignore[attr-defined]
    if backend not in SHARED:
        pytest.skip(f"{backend}: every handle is its own store")
    s = await FACTORIES[backend](tmp_path, False)
    try:
        yield s
    finally:
        await s.close()
