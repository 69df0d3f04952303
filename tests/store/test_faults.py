"""Remote stores under faults, against real servers that the tests stop and restart.

* The server goes away mid-use: every operation raises StoreUnavailableError promptly (bounded
  timeouts; no hang), and the SAME store object works again once the server is back — including
  ``watch``, which re-subscribes by itself.
* An import killed midway (its connection dropped during COPY, or the process gone) leaves the
  previous version in force and nothing half-built visible.

Each test module gets private servers (they are stopped here), not the shared ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from eir.model import Status
from eir.store import postgres as pgmod
from eir.store.base import EntryKind, IdentityStore, ListEntry, StoreUnavailableError
from eir.store.postgres import PostgresStore
from eir.store.redis import RedisStore
from testkit.services import PostgresServer, RedisServer, start_postgres, start_redis

BOUND = 15.0  # no operation may hang longer than this while a server is down


def imei(key: str, status: Status = Status.BLACK) -> ListEntry:
    return ListEntry(kind=EntryKind.IMEI, key=key, status=status)


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    srv = start_postgres()
    yield srv
    srv.destroy()


@pytest.fixture(scope="module")
def rd() -> Iterator[RedisServer]:
    srv = start_redis()
    yield srv
    srv.destroy()


@pytest.fixture
async def pg_store(pg: PostgresServer) -> AsyncIterator[PostgresStore]:
    pg.start()
    s = PostgresStore(pg.new_database(), connect_timeout=2.0, command_timeout=3.0)
    await s.open()
    yield s
    await s.close()
    pg.start()


@pytest.fixture
async def rd_store(rd: RedisServer) -> AsyncIterator[RedisStore]:
    rd.start()
    rd.flushall()
    s = RedisStore(rd.url, connect_timeout=1.0, command_timeout=2.0)
    await s.open()
    yield s
    await s.close()
    rd.start()


async def wait_for(pred, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def _every_operation_is_unavailable(store: IdentityStore) -> None:
    ops = [
        lambda: store.lookup("35209900176148", "3520990017614801"),
        lambda: store.imsi_rules("262011234567890", "35209900176148"),
        lambda: store.write_sightings([("35209900176148", "i", "262011234567890", time.time())]),
        lambda: store.read_sightings(time.time() - 60),
        lambda: store.prune_sightings(time.time() - 60),
        lambda: store.import_version([imei("35209900176155")], [], source="during outage"),
        lambda: store.versions(),
        lambda: store.rollback(1),
        lambda: store.active_version(),
    ]
    for op in ops:
        with pytest.raises(StoreUnavailableError):
            await asyncio.wait_for(op(), BOUND)
    with pytest.raises(StoreUnavailableError):
        await asyncio.wait_for(_drain(store), BOUND)


async def _drain(store: IdentityStore) -> None:
    async for _x in store.export():
        pass


async def _outage_and_recovery(store: IdentityStore, other: IdentityStore, stop, start) -> None:  # type: ignore[no-untyped-def]
    v1 = await store.import_version([imei("35209900176148", Status.BLACK)], [], source="before")
    seen: list[int] = []
    await store.watch(seen.append)
    assert (await store.lookup("35209900176148")).imei is not None

    stop()
    await _every_operation_is_unavailable(store)
    # and still unavailable on a second round (no state broken by the first failures)
    with pytest.raises(StoreUnavailableError):
        await asyncio.wait_for(store.lookup("35209900176148"), BOUND)
    start()

    # the same object recovers by itself, without re-opening
    async def recovered() -> bool:
        try:
            await store.lookup("35209900176148")
        except StoreUnavailableError:
            return False
        return True

    for _ in range(100):
        if await recovered():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("store did not recover")
    if isinstance(store, PostgresStore):  # (the test Redis has no persistence: it restarts empty)
        assert await store.active_version() == v1.id
        assert (await store.lookup("35209900176148")).imei is not None

    # watch re-subscribed: an import through another handle is reported to this one
    await other.open()
    try:
        v2 = await other.import_version([imei("35209900176155", Status.GREY)], [], source="after")
        await wait_for(lambda: v2.id in seen)
    finally:
        await other.close()
    assert (await store.lookup("35209900176155")).imei.status is Status.GREY  # type: ignore[union-attr]


async def test_postgres_outage_and_recovery(pg: PostgresServer, pg_store: PostgresStore) -> None:
    other = PostgresStore(pg_store.url)
    await _outage_and_recovery(pg_store, other, pg.stop, pg.start)


async def test_postgres_crash_and_recovery(pg: PostgresServer, pg_store: PostgresStore) -> None:
    """An immediate shutdown (like a crash: no goodbye to clients) then crash recovery."""
    other = PostgresStore(pg_store.url)
    await _outage_and_recovery(pg_store, other, lambda: pg.stop("immediate"), pg.start)


async def test_redis_outage_and_recovery(rd: RedisServer, rd_store: RedisStore) -> None:
    other = RedisStore(rd.url)
    await _outage_and_recovery(rd_store, other, rd.stop, rd.start)


async def test_postgres_open_while_down_then_up(pg: PostgresServer) -> None:
    url = pg.new_database()
    pg.stop()
    s = PostgresStore(url, connect_timeout=2.0)
    try:
        with pytest.raises(StoreUnavailableError):
            await asyncio.wait_for(s.open(), BOUND)
        pg.start()
        await s.open()
        assert await s.active_version() is None
    finally:
        await s.close()
        pg.start()


async def test_redis_open_while_down_then_up(rd: RedisServer) -> None:
    rd.stop()
    s = RedisStore(rd.url, connect_timeout=1.0)
    try:
        with pytest.raises(StoreUnavailableError):
            await asyncio.wait_for(s.open(), BOUND)
        rd.start()
        await s.open()
        assert await s.active_version() is None
    finally:
        await s.close()
        rd.start()


# --- killed imports ---------------------------------------------------------------------------------


def _entries_then(n: int, action) -> Iterator[ListEntry]:  # type: ignore[no-untyped-def]
    for i in range(n):
        if i == n // 2:
            action()
        yield imei(f"{35209900000000 + i}", Status.WHITE)


async def test_postgres_connection_dropped_during_copy(
    pg: PostgresServer, pg_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server ends the importing session between two COPY chunks (as when the network or the
    importing process dies): the transaction is rolled back by the server, v1 stays in force."""
    monkeypatch.setattr(pgmod, "COPY_CHUNK", 500)
    v1 = await pg_store.import_version([imei("35209900176148", Status.BLACK)], [], source="good")
    db = pg_store.url.rsplit("/", 1)[1]

    def kill_import() -> None:
        out = pg.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = '{db}' AND state = 'idle in transaction'"
        )
        assert out.strip() == "1", out

    with pytest.raises(StoreUnavailableError):
        await asyncio.wait_for(
            pg_store.import_version(_entries_then(5000, kill_import), [], source="bad"), BOUND
        )
    assert await pg_store.active_version() == v1.id
    assert [v.id for v in await pg_store.versions()] == [v1.id]
    assert (await pg_store.lookup("35209900176148")).imei is not None
    assert (await pg_store.lookup("35209900000001")).imei is None
    # nothing half-built is left: only v1's partitions exist
    tables = pg.psql(
        "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class "
        "WHERE relname ~ '^eir_(exact|ranges|pairings)_v[0-9]+$' AND relkind = 'r'",
        db,
    )
    assert tables.strip() == f"eir_exact_v{v1.id},eir_pairings_v{v1.id},eir_ranges_v{v1.id}"
    # and the store goes on: the next import works on the same object
    v3 = await pg_store.import_version([imei("35209900000001")], [], source="good2")
    assert await pg_store.active_version() == v3.id


async def test_postgres_server_stopped_during_import(
    pg: PostgresServer, pg_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgmod, "COPY_CHUNK", 500)
    v1 = await pg_store.import_version([imei("35209900176148", Status.BLACK)], [], source="good")
    with pytest.raises(StoreUnavailableError):
        await asyncio.wait_for(pg_store.import_version(_entries_then(5000, pg.stop), [], source="bad"), BOUND)
    pg.start()
    for _ in range(50):
        try:
            assert await pg_store.active_version() == v1.id
            break
        except StoreUnavailableError:
            await asyncio.sleep(0.1)
    assert [v.id for v in await pg_store.versions()] == [v1.id]
    assert (await pg_store.lookup("35209900000001")).imei is None


async def test_redis_failed_import_cleans_up_its_keys(rd_store: RedisStore) -> None:
    """An import that fails after many pipelines were flushed removes what it wrote."""
    v1 = await rd_store.import_version([imei("35209900176148", Status.BLACK)], [], source="good")

    def boom() -> None:
        raise RuntimeError("source broke midway")

    with pytest.raises(RuntimeError, match="midway"):
        await rd_store.import_version(_entries_then(120_000, boom), [], source="bad")
    assert await rd_store.active_version() == v1.id
    keys = sorted(await rd_store.redis.keys("eir:v:*"))
    assert all(k.startswith(f"eir:v:{v1.id}:") for k in keys), keys
    assert await rd_store.redis.zcard("eir:building") == 0
    assert (await rd_store.lookup("35209900000001")).imei is None


async def test_redis_import_abandoned_by_a_dead_process_is_swept(rd_store: RedisStore) -> None:
    """A process killed mid-import leaves its version's keys behind, never active; the next import
    sweeps them once they are older than STALE_BUILD."""
    r = rd_store.redis
    await r.hset("eir:v:77:x:5", mapping={"35209900000001": "junk"})
    await r.zadd("eir:building", {"77": time.time() - 7200})
    await r.hset("eir:v:78:x:5", mapping={"35209900000002": "junk"})
    await r.zadd("eir:building", {"78": time.time()})  # maybe still running elsewhere: kept
    v = await rd_store.import_version([imei("35209900176148")], [], source="next")
    assert await r.exists("eir:v:77:x:5") == 0
    assert await r.exists("eir:v:78:x:5") == 1
    assert await r.zrange("eir:building", 0, -1) == ["78"]
    assert await rd_store.active_version() == v.id


# --- the change-notification connection alone is cut ------------------------------------------------


async def test_postgres_watch_survives_its_connection_being_killed(
    pg: PostgresServer, pg_store: PostgresStore
) -> None:
    seen: list[int] = []
    await pg_store.watch(seen.append)
    db = pg_store.url.rsplit("/", 1)[1]
    killed = pg.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE datname = '{db}' AND application_name = 'eir-listen'"
    )
    assert killed.strip() == "1"
    other = PostgresStore(pg_store.url)
    await other.open()
    try:
        v = await other.import_version([imei("35209900176148")], [], source="while reconnecting")
    finally:
        await other.close()
    # notified either by LISTEN on the new connection or by the catch-up after reconnecting
    await wait_for(lambda: v.id in seen)


async def test_redis_watch_survives_its_connection_being_killed(rd_store: RedisStore) -> None:
    seen: list[int] = []
    await rd_store.watch(seen.append)
    assert await rd_store.redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 1
    other = RedisStore(rd_store.url)
    await other.open()
    try:
        v = await other.import_version([imei("35209900176148")], [], source="while reconnecting")
    finally:
        await other.close()
    await wait_for(lambda: v.id in seen)
