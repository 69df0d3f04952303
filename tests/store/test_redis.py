"""Redis store specifics (the shared behaviour is in test_contract.py): another OS process's import
fires watch, segment index size, observation TTLs, key prefixes, delta conflict detection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from eir.checker import build_checker
from eir.config import Config
from eir.events import NullEvents
from eir.model import CheckRequest, Interface, Status
from eir.store.base import EntryKind, ListEntry, StoreError
from eir.store.redis import RedisStore
from testkit.services import import_in_other_process, redis_server, redis_url, run_eagerly

__all__ = ["redis_server", "redis_url"]  # fixtures used here


def imei(key: str, status: Status = Status.BLACK) -> ListEntry:
    return ListEntry(kind=EntryKind.IMEI, key=key, status=status)


def rng(first: str, last: str, status: Status = Status.BLACK) -> ListEntry:
    return ListEntry(kind=EntryKind.RANGE, key=first, last=last, status=status)


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    s = RedisStore(redis_url, keep_versions=2)
    await s.open()
    yield s
    await s.close()


async def test_import_in_another_process_fires_watch(store: RedisStore) -> None:
    seen: list[int] = []
    await store.watch(seen.append)
    vid = await asyncio.to_thread(import_in_other_process, "redis", store.url, "35209900176148", "grey")
    # the lookup script reads the active pointer atomically with the data
    assert (await store.lookup("35209900176148")).imei.status is Status.GREY  # type: ignore[union-attr]
    for _ in range(200):
        if vid in seen:
            break
        await asyncio.sleep(0.02)
    assert seen == [vid]


async def test_nested_ranges_make_at_most_2n_minus_1_segments(store: RedisStore) -> None:
    ranges = [
        rng("35209900000000", "35209900999999"),
        rng("35209900100000", "35209900199999"),
        rng("35209900150000", "35209900150099"),
        rng("35209900190000", "35209901290000"),
        rng("35209900500000", "35209900500000"),
    ]
    v = await store.import_version(ranges, [], source="t")
    n = await store.redis.zcard(f"eir:v:{v.id}:s")
    assert 0 < n <= 2 * len(ranges) - 1
    assert (await store.lookup("35209900500000")).range == ranges[4]
    assert (await store.lookup("35209900500001")).range == ranges[0]
    assert (await store.lookup("35209901000000")).range == ranges[3]


async def test_sightings_keys(store: RedisStore) -> None:
    """One sorted set by time per writer for all IMEIs and no key per IMEI (a new key per fresh
    IMEI was most of the server's cost per row); pruning empties it. A clear also removes the
    per-IMEI set that earlier versions kept."""
    a = "35209900176148"
    await store.write_sightings([(a, "i", "262010000000001", 1000.0)])
    assert await store.redis.zscore("eir:obs:t", f"{a}|i262010000000001") == 1000.0
    assert await store.redis.keys("eir:o:*") == []
    assert await store.read_sightings(0.0, imei=a) == [(a, "i", "262010000000001", 1000.0)]
    await store.prune_sightings(1001.0)
    assert await store.redis.exists("eir:obs:t") == 0
    await store.redis.zadd(f"eir:o:{a}", {"i262010000000002": 900.0})  # an earlier version's
    await store.write_sightings([(a, "i", "262010000000002", 1002.0)], writer="w1")
    assert await store.clear_sightings(a) == 1
    assert await store.redis.exists(f"eir:o:{a}", "eir:obs:w:w1") == 0


async def test_one_imeis_sightings_are_found_among_many(store: RedisStore) -> None:
    """``read_sightings(imei=…)`` and ``clear_sightings`` scan the writers' sets (ZSCAN with the
    IMEI as a literal prefix): found among 20,000 other rows, whatever the set's encoding."""
    a = "35209900176148"
    rows = [(f"3520990{i:07d}", "i", f"26201{i:010d}", 2000.0 + i * 1e-3) for i in range(20_000)]
    await store.write_sightings(rows, writer="w1")
    await store.write_sightings([(a, "o", "mme*1", 2001.0), (a, "i", "262010000000009", 2100.0)], writer="w2")
    assert await store.read_sightings(2000.5, imei=a) == [
        (a, "i", "262010000000009", 2100.0),
        (a, "o", "mme*1", 2001.0),
    ]
    assert await store.read_sightings(0.0, imei=a, exclude_writer="w2") == []
    assert await store.clear_sightings(a) == 2
    assert await store.count_sightings() == 20_000


async def test_prefix_from_the_url_separates_keyspaces(redis_url: str) -> None:
    a = RedisStore(redis_url + "?prefix=lab-a")
    b = RedisStore(redis_url, prefix="lab-b")
    await a.open()
    await b.open()
    try:
        await a.import_version([imei("35209900176148")], [], source="a")
        assert (await b.lookup("35209900176148")).imei is None
        assert await a.redis.exists("lab-a:active") == 1
        assert await a.redis.exists("eir:active") == 0
    finally:
        await a.close()
        await b.close()


async def test_delta_that_raced_another_import_fails_cleanly(store: RedisStore) -> None:
    """A delta is built on the version active when it starts; if another process flips the active
    version meanwhile, the flip script refuses (nothing is lost silently) and the other import stays."""
    await store.import_version([imei("35209900000001")], [], source="base")
    other: list[int] = []

    def entries() -> Iterator[ListEntry]:
        yield imei("35209900000002")
        other.append(import_in_other_process("redis", store.url, "35209900000003", "white"))
        yield imei("35209900000004")

    with pytest.raises(StoreError, match="changed during a delta"):
        await store.import_version(entries(), [], source="delta", delta=True)
    assert await store.active_version() == other[0]
    assert (await store.lookup("35209900000003")).imei is not None
    assert (await store.lookup("35209900000002")).imei is None
    keys = await store.redis.keys("eir:v:*")
    assert all(k.startswith(f"eir:v:{other[0]}:") or k.startswith("eir:v:1:") for k in keys), keys


async def test_checks_started_outside_a_task(store: RedisStore, redis_url: str) -> None:
    """The servers take a check's first step inline in ``data_received`` (no current Task) and wrap
    it in a Task only when it suspends; redis-py's socket timeouts need a Task. The store says so
    (``needs_task``) and the checker yields once before reaching it: a cold store (empty pool, no
    watch yet, nothing cached) still answers through an eager start."""
    await store.import_version([imei("35209900176148", Status.GREY)], [], source="t")
    fresh = RedisStore(redis_url)
    await fresh.open()
    assert fresh.needs_task
    try:
        checker = build_checker(Config(), fresh, NullEvents())
        req = CheckRequest(imei="35209900176148", imsi="262011234567890", interface=Interface.S13)
        v = await run_eagerly(lambda: checker.check(req))
        assert (v.status, v.rule) == (Status.GREY, "imei")
    finally:
        await fresh.close()


async def test_delta_over_many_buckets(store: RedisStore) -> None:
    base = [imei(str(35209900000000 + i * 7)) for i in range(30_000)]
    await store.import_version(base, [], source="full")
    removed = base[::10]
    added = [imei(str(35209910000000 + i), Status.GREY) for i in range(500)]
    v = await store.import_version(added, [], source="delta", delta=True, removals=removed)
    assert v.entries == 30_000 - len(removed) + len(added)
    assert (await store.lookup(removed[7].key)).imei is None
    assert (await store.lookup(base[11].key)).imei is not None
    assert (await store.lookup(added[-1].key)).imei.status is Status.GREY  # type: ignore[union-attr]
    assert len([x async for x in store.export()]) == v.entries
