"""PostgreSQL store specifics (the shared behaviour is in test_contract.py): migrations, another OS
process's import seen at once, versions dropped whole, concurrent imports, observation sweeping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from eir.checker import build_checker
from eir.config import Config
from eir.events import NullEvents
from eir.model import CheckRequest, Interface, Status
from eir.store.base import EntryKind, ListEntry, StoreError
from eir.store.postgres import _MIGRATIONS, PostgresStore
from testkit.services import (
    PostgresServer,
    import_in_other_process,
    postgres_server,
    postgres_url,
    run_eagerly,
)

__all__ = ["postgres_server", "postgres_url"]  # fixtures used here


def imei(key: str, status: Status = Status.BLACK) -> ListEntry:
    return ListEntry(kind=EntryKind.IMEI, key=key, status=status)


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(postgres_url, keep_versions=2)
    await s.open()
    yield s
    await s.close()


async def _sql(url: str, query: str) -> list[asyncpg.Record]:
    con = await asyncpg.connect(url)
    try:
        return list(await con.fetch(query))
    finally:
        await con.close()


async def test_migrations_are_idempotent_and_safe_concurrently(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))  # serialised by the advisory lock
    await stores[0].close()
    await stores[0].open()  # again: nothing to do
    for s in stores:
        await s.close()
    rows = await _sql(postgres_url, "SELECT version FROM eir_schema")
    assert [r["version"] for r in rows] == [v for v, _ in _MIGRATIONS]  # each applied once


async def test_import_in_another_process_is_seen_at_once(store: PostgresStore) -> None:
    seen: list[int] = []
    await store.watch(seen.append)
    vid = await asyncio.to_thread(import_in_other_process, "postgres", store.url, "35209900176148", "grey")
    # the lookup reads the active pointer in the same statement: no waiting for the notification
    assert (await store.lookup("35209900176148")).imei.status is Status.GREY  # type: ignore[union-attr]
    for _ in range(200):
        if vid in seen:
            break
        await asyncio.sleep(0.02)
    assert seen == [vid]


async def test_old_versions_are_dropped_whole(store: PostgresStore) -> None:
    ids = [(await store.import_version([imei(f"3520990000000{i}")], [], source=f"v{i}")).id for i in range(4)]
    await store.rollback(ids[2])
    await store.import_version([imei("35209900176148")], [], source="v4")
    versions = [v.id for v in await store.versions()]  # (waits for the pruning after the import)
    rows = await _sql(
        store.url,
        "SELECT relname FROM pg_class WHERE relkind = 'r' "
        "AND relname ~ '^eir_exact_v[0-9]+$' ORDER BY relname",
    )
    assert sorted(int(r["relname"].rsplit("_v", 1)[1]) for r in rows) == sorted(versions)
    assert len(versions) == 2


async def test_concurrent_delta_imports_both_apply(store: PostgresStore, postgres_url: str) -> None:
    """Imports are serialised on the active-version row: a delta builds on the version that is
    active when it runs, so two concurrent deltas from two processes lose nothing."""
    other = PostgresStore(postgres_url)
    await other.open()
    try:
        await store.import_version([imei("35209900000001")], [], source="base")
        ea = [imei(f"352099001{i:05d}") for i in range(2000)]
        eb = [imei(f"352099002{i:05d}") for i in range(2000)]
        a, b = await asyncio.gather(
            store.import_version(ea, [], source="a", delta=True),
            other.import_version(eb, [], source="b", delta=True),
        )
        final = await store.active_version()
        assert final == max(a.id, b.id)
        assert max(a.entries, b.entries) == 4001
        for key in ("35209900000001", "35209900100000", "35209900201999"):
            assert (await store.lookup(key)).imei is not None, key
    finally:
        await other.close()


async def test_postgres_scheme_alias_and_lookup_of_15_digits(postgres_server: PostgresServer) -> None:
    url = postgres_server.new_database().replace("postgresql://", "postgres://")
    s = PostgresStore(url)
    await s.open()
    try:
        await s.import_version([imei("35209900176148", Status.GREY)], [], source="t")
        # a 15-digit IMEI (with its check digit) finds the 14-digit entry
        assert (await s.lookup("352099001761481")).imei is not None
        assert (await s.imsi_rules("262011234567890", "352099001761481")).pairing is None
    finally:
        await s.close()


async def test_checks_started_outside_a_task(store: PostgresStore) -> None:
    """The servers take a check's first step inline in ``data_received`` (no current Task) and wrap
    it in a Task only when it suspends; asyncpg's timeouts need a Task. The store says so
    (``needs_task``) and the checker yields once before reaching it: a cold store (empty pool, no
    watch yet, nothing cached) still answers through an eager start."""
    await store.import_version([imei("35209900176148", Status.GREY)], [], source="t")
    fresh = PostgresStore(store.url)  # an empty pool: the first call must connect
    await fresh.open()
    assert fresh.needs_task
    try:
        await fresh._get_pool().expire_connections()
        checker = build_checker(Config(), fresh, NullEvents())
        req = CheckRequest(imei="35209900176148", imsi="262011234567890", interface=Interface.S13)
        v = await run_eagerly(lambda: checker.check(req))
        assert (v.status, v.rule) == (Status.GREY, "imei")
    finally:
        await fresh.close()


async def test_imports_during_a_long_export(store: PostgresStore) -> None:
    """An export holds its snapshot (and locks that a partition DROP must wait for): imports still
    complete, lookups still answer, the export still sees its own version; the old versions are
    dropped after a later import."""
    await store.import_version([imei(f"3520990000{i:04d}") for i in range(3000)], [], source="big")
    export = store.export()
    first = await anext(export)
    assert first.kind is EntryKind.IMEI  # type: ignore[union-attr]
    for i in range(3):
        v = await store.import_version([imei("35209900176148", Status.GREY)], [], source=f"v{i}")
        assert (await store.lookup("35209900176148")).imei.status is Status.GREY  # type: ignore[union-attr]
    rest = [x async for x in export]
    assert len(rest) == 2999  # the export's version, whole, though it is no longer active
    v = await store.import_version([imei("35209900176148", Status.BLACK)], [], source="after")
    await store.versions()  # the pruning runs after the import has returned; versions() waits for it
    rows = await _sql(
        store.url,
        "SELECT count(*) AS n FROM pg_class WHERE relkind = 'r' AND relname ~ '^eir_exact_v[0-9]+$'",
    )
    assert rows[0]["n"] == 2 and await store.active_version() == v.id


async def test_open_without_rights_is_a_clear_store_error(postgres_server: PostgresServer) -> None:
    url = postgres_server.new_database()
    db = url.rsplit("/", 1)[1]
    postgres_server.psql(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'eir_ro') "
        "THEN CREATE ROLE eir_ro LOGIN; END IF; END $$",
        db,
    )
    postgres_server.psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC", db)
    s = PostgresStore(url.replace("postgres@", "eir_ro@"))
    with pytest.raises(StoreError, match="cannot set up the schema"):
        await s.open()
    await s.close()


async def test_a_schema_1_database_gains_the_reference_tables(postgres_url: str) -> None:
    """A database made before the reference tables (schema 1, lists imported) is migrated to the
    current schema at open (2: reference tables, 3: overlay versions, 4: the first-sighting and
    duplicate history, 5: the sightings log) and keeps its lists."""
    from eir.store import postgres as pg

    old = PostgresStore(postgres_url)
    saved = pg._MIGRATIONS[:]
    pg._MIGRATIONS[:] = saved[:1]
    try:
        await old.open()
    finally:
        pg._MIGRATIONS[:] = saved
        await old.close()
    # a version as schema 1's code left it (today's code writes columns schema 1 lacks)
    for t in ("eir_exact", "eir_ranges", "eir_pairings"):
        await _sql(postgres_url, f"CREATE TABLE {t}_v1 PARTITION OF {t} FOR VALUES IN (1)")
    await _sql(
        postgres_url, "INSERT INTO eir_exact VALUES (1, '35209900176148', 'imei', 'black', NULL, NULL)"
    )
    await _sql(postgres_url, "INSERT INTO eir_versions VALUES (1, 0, 'before', 1, 0)")
    await _sql(postgres_url, "UPDATE eir_active SET version_id = 1")
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        assert (await store.lookup("35209900176148")).imei is not None
        await store.import_reference("tac", [("35209900", "x")], source="t")
        assert (await store.lookup("35209900176148")).device == "x"
    finally:
        await store.close()
    rows = await _sql(postgres_url, "SELECT version FROM eir_schema ORDER BY version")
    assert [r["version"] for r in rows] == [1, 2, 3, 4, 5]


async def test_the_keyed_sightings_of_schema_4_carry_over_into_the_log(postgres_url: str) -> None:
    """Schema 4 kept sightings in a keyed table (one row per IMEI and value, upserted); schema 5's
    append-only log takes its rows, their writers (or none, from before writer ids) included."""
    from eir.store import postgres as pg

    old = PostgresStore(postgres_url)
    saved = pg._MIGRATIONS[:]
    pg._MIGRATIONS[:] = saved[:4]
    try:
        await old.open()
    finally:
        pg._MIGRATIONS[:] = saved
        await old.close()
    a = "35209900176148"
    await _sql(
        postgres_url,
        f"INSERT INTO eir_observations VALUES ('{a}', 'i', '262010000000001', 100.5), "
        f"('{a}', 'o', 'mme1', 101.0)",
    )
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        assert await store.read_sightings(0.0) == [
            (a, "o", "mme1", 101.0),
            (a, "i", "262010000000001", 100.5),
        ]
        await store.write_sightings([(a, "i", "262010000000001", 102.0)], writer="w1")
        assert await store.read_sightings(0.0, exclude_writer="w1") == [
            (a, "o", "mme1", 101.0),
            (a, "i", "262010000000001", 100.5),
        ]
        assert (await store.read_sightings(0.0))[0] == (a, "i", "262010000000001", 102.0)
    finally:
        await store.close()
    assert not await _sql(postgres_url, "SELECT 1 FROM pg_tables WHERE tablename = 'eir_observations'")


async def test_pruning_never_drops_a_version_a_rollback_is_activating(
    store: PostgresStore, postgres_url: str
) -> None:
    """The deferred prune reads which version is active; a rollback from another process to a
    version the prune chose, committing meanwhile, must not leave the active version dropped."""
    for key in ("35209900176148", "35209900176155"):  # versions 1 and 2 (keep_versions=2: both kept)
        await store.import_version([imei(key)], [], source="t")
    await store._pruned()
    versions = {v.id: v for v in await store.versions()}
    old = min(versions)
    assert versions[old].active is False
    store.keep_versions = 1  # the prune now drops every version but the active one: old included
    con = await asyncpg.connect(postgres_url)
    try:
        tr = con.transaction()
        await tr.start()  # another process's rollback to `old`, not yet committed
        await con.execute("SELECT version_id FROM eir_active FOR UPDATE")
        await con.execute("UPDATE eir_active SET version_id = $1, base = NULL", old)
        await store._prune_versions()  # waits for the rollback's lock (at most 100 ms): drops nothing
        await tr.commit()
    finally:
        await con.close()
    rows = await _sql(postgres_url, "SELECT version_id FROM eir_active")
    assert rows[0]["version_id"] == old
    assert old in {v.id for v in await store.versions()}
    assert await _sql(postgres_url, f"SELECT count(*) AS n FROM eir_exact_v{old}")  # its table is there


async def test_the_sightings_estimate_follows_the_log_from_the_statistics(
    store: PostgresStore, postgres_url: str
) -> None:
    """estimate_sightings reads the server's statistics (no count(*) of the log): it follows writes
    and evictions within the statistics' lag (polled, at most 20 s), and a statistics reset (a crash
    restart, a failover) does not make a full log look empty."""
    t = 1_000_000.0
    rows = [(f"{35209900000000 + i}", "e", f"{262010000000000 + i}", t + i) for i in range(3000)]
    await store.write_sightings(rows, writer="w")

    async def settles_at(n: int) -> int:
        got = -1
        for _ in range(200):
            got = await store.estimate_sightings()
            if got == n:
                break
            await asyncio.sleep(0.1)
        return got

    assert await settles_at(3000) == 3000 == await store.count_sightings()
    await _sql(postgres_url, "SELECT pg_stat_reset()")  # n_live_tup back to 0
    assert await store.estimate_sightings() == 3000, "not 0: the planner's count, or the exact one"
    assert await store.evict_sightings(1000) == 2000
    assert await settles_at(1000) == 1000 == await store.count_sightings()
