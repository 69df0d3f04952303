"""Redis store specifics (the shared behaviour is in test_contract.py): another OS process's import
fires watch, segment index size, observation TTLs, key prefixes, delta conflict detection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from eir.model import Status
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


async def test_observations_expire_with_the_window(store: RedisStore) -> None:
    await store.observe("35209900176148", "262010000000001", "mme1", 1000.0, 30)
    ttl = await store.redis.ttl("eir:o:35209900176148")
    assert 0 < ttl <= 31
    # nothing to record (no IMSI, no origin): no key is created
    s = await store.observe("35209900176155", None, None, 1000.0, 30)
    assert (s.distinct_imsis, s.distinct_origins) == (0, 0)
    assert await store.redis.exists("eir:o:35209900176155") == 0


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


async def test_hot_path_started_outside_a_task(store: RedisStore, redis_url: str) -> None:
    """The servers step a check inline in ``data_received`` (no current Task) and wrap it in a
    Task only when it suspends; the client's socket timeouts must still work."""
    await store.import_version([imei("35209900176148", Status.GREY)], [], source="t")
    fresh = RedisStore(redis_url)
    await fresh.open()
    try:
        r = await run_eagerly(lambda: fresh.lookup("35209900176148"))
        assert r.imei is not None and r.imei.status is Status.GREY
        rules = await run_eagerly(lambda: fresh.imsi_rules("262011234567890", "35209900176148"))
        assert not rules.locked
        s = await run_eagerly(lambda: fresh.observe("35209900176148", "262011234567890", "a", 1.0, 60))
        assert s.distinct_imsis == 1
        await run_eagerly(lambda: fresh.watch(lambda _v: None))
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
