"""Small deltas (one entry changed through the admin API) on every backend: whatever a backend does to
make them cheap (SQLite: an overlay on a full version, folded into a full copy when it grows), the
contract holds — each delta is its own version, lookups/exports of the active one are exact, every
kept version can be rolled back to (also after the versions it builds on left the listing), and
another handle sees the change. The SQLite test at the end pins the cost in rows written."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from eir.model import Status
from eir.store.base import EntryKind, EntryRows, IdentityStore, ListEntry, Pairing
from tests.store.test_contract import imei, imeisv, pairing, rng, wait_until

W, G, B = Status.WHITE, Status.GREY, Status.BLACK
KEYS = [f"3520990017{i:04d}" for i in range(40)]


async def _exact_state(store: IdentityStore) -> dict[tuple[str, str], tuple[Status, str | None]]:
    return {
        (e.kind.value, e.key): (e.status, e.reason)
        async for e in store.export()
        if isinstance(e, ListEntry) and e.kind in (EntryKind.IMEI, EntryKind.IMEISV)
    }


async def test_a_run_of_small_deltas_keeps_every_version_exact(
    store: IdentityStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eir.store.memory as memory_store
    import eir.store.postgres as postgres_store
    import eir.store.redis as redis_store
    import eir.store.sqlite as sqlite_store

    for m in (sqlite_store, postgres_store, redis_store):
        monkeypatch.setattr(m, "OVERLAY_MAX", 6)  # several folds within the run
    monkeypatch.setattr(memory_store, "SMALL_DELTA", 6)
    rnd = random.Random(9)
    model: dict[tuple[str, str], tuple[Status, str | None]] = {("imei", k): (B, "base") for k in KEYS[:20]}
    await store.import_version(
        [imei(k, B, reason="base") for k in KEYS[:20]], [pairing("262011234567890", KEYS[0])], source="full"
    )
    history: dict[int, dict[tuple[str, str], tuple[Status, str | None]]] = {}
    for step in range(30):
        adds: list[ListEntry] = []
        rms: list[ListEntry | Pairing] = []
        for _ in range(rnd.randint(1, 3)):
            k = rnd.choice(KEYS)
            if rnd.random() < 0.35:
                rms.append(imei(k))
                model.pop(("imei", k), None)
            else:
                st = rnd.choice([W, G, B])
                adds.append(imei(k, st, reason=f"s{step}"))
        if step % 7 == 3:
            adds.append(imeisv(f"{KEYS[step]}0{step % 10}", G))
        if step == 15:  # a range in the delta: not an overlay, everything folded into a copy
            adds.append(rng("35209900170000", "35209900170099", W))
        for r in rms:  # removals before additions
            assert isinstance(r, ListEntry)
        for a in adds:
            if a.kind is not EntryKind.RANGE:
                model[(a.kind.value, a.key)] = (a.status, a.reason)
        v = await store.import_version(adds, [], source=f"d{step}", delta=True, removals=rms)
        assert v.entries == len(model) + (1 if step >= 15 else 0)
        assert await _exact_state(store) == model
        for (kind, key), (st, reason) in rnd.sample(sorted(model.items()), 5):
            found = await store.lookup(key[:14], key if kind == "imeisv" else None)
            e = found.imeisv if kind == "imeisv" else found.imei
            assert e is not None and e.status is st and e.reason == reason
        gone = [k for k in KEYS if ("imei", k) not in model]
        if gone:
            assert (await store.lookup(gone[0])).imei is None
        assert (await store.imsi_rules("262011234567890", KEYS[0])).pairing is not None
        history[v.id] = dict(model)
    kept = [v.id for v in await store.versions()]
    assert len(kept) >= 2
    for vid in reversed(kept):  # every kept version, built on versions no longer listed
        await store.rollback(vid)
        assert await _exact_state(store) == history[vid]
        for (kind, key), (st, _r) in history[vid].items():
            if kind == "imei":
                e = (await store.lookup(key)).imei
                assert e is not None and e.status is st
    # a delta on a rolled-back version builds on that one
    await store.rollback(kept[-1])
    await store.import_version([imei(KEYS[39], G)], [], source="after", delta=True)
    want = dict(history[kept[-1]])
    want[("imei", KEYS[39])] = (G, None)
    assert await _exact_state(store) == want


async def test_another_handle_sees_a_small_delta(store: IdentityStore, second_handle: IdentityStore) -> None:
    await store.import_version([imei(k, B) for k in KEYS], [], source="full")
    seen: list[int] = []
    await second_handle.watch(seen.append)
    v = await store.import_version([imei(KEYS[1], G)], [], source="put", delta=True, removals=[imei(KEYS[2])])

    async def sees() -> bool:
        a = (await second_handle.lookup(KEYS[1])).imei
        return a is not None and a.status is G and (await second_handle.lookup(KEYS[2])).imei is None

    await wait_until(sees)

    async def notified() -> bool:
        return v.id in seen

    await wait_until(notified)


async def test_sqlite_small_delta_on_a_large_version_writes_only_the_change(tmp_path: Path) -> None:
    """SQLite's own count of rows written (``total_changes``): a one-entry change on a 50k-entry
    list writes a handful of rows, not the list; the overlay stays small until folded."""
    from eir.store.sqlite import OVERLAY_MAX, SqliteStore

    s = SqliteStore(f"sqlite:///{tmp_path / 'eir.db'}", str(tmp_path), keep_versions=3)
    await s.open()
    try:
        n = 50_000
        rows = EntryRows(
            [(EntryKind.IMEI, f"{35000000000000 + i:014d}", None, B, None, None) for i in range(n)]
        )
        await s.import_version(rows, [], source="big")
        assert s.last_import_changes >= n
        for i in range(10):
            v = await s.import_version(
                [imei("35394206000093", G if i % 2 else B)],
                [],
                source="put",
                delta=True,
                removals=[imei(f"{35000000000000 + i:014d}")],
            )
            # the versions row (insert + update), the active pointer, the accumulated overlay
            assert s.last_import_changes <= 4 + 2 * (i + 1)
            assert v.entries == n + 1 - (i + 1)
        assert (await s.lookup("35394206000093")).imei.status is G  # type: ignore[union-attr]
        assert (await s.lookup("35000000000003")).imei is None
        assert (await s.lookup("35000000000010")).imei is not None
        # a delta too big for an overlay folds: a full copy
        await s.import_version(
            [imei(f"{36000000000000 + i:014d}", W) for i in range(OVERLAY_MAX + 1)],
            [],
            source="big delta",
            delta=True,
        )
        assert s.last_import_changes >= n
        assert (await s.lookup("35000000000003")).imei is None
        assert (await s.lookup("35394206000093")).imei.status is G  # type: ignore[union-attr]
    finally:
        await s.close()


async def test_postgres_small_delta_creates_no_partitions_and_writes_only_the_change(
    tmp_path: Path,
) -> None:
    """PostgreSQL's catalog and tables, read on a connection of their own: a one-entry change on a
    50k-entry list adds no partition (a full version adds three, each a copy of the list) and
    leaves the overlay holding exactly the changes since the full version; a big delta folds it."""
    import asyncpg

    from eir.store.postgres import OVERLAY_MAX, PostgresStore
    from testkit.services import shared_postgres

    url = shared_postgres().new_database()
    s = PostgresStore(url, keep_versions=3)
    await s.open()
    con = await asyncpg.connect(url)
    parts = "SELECT count(*) FROM pg_inherits WHERE inhparent = 'eir_exact'::regclass"
    try:
        n = 50_000
        rows = EntryRows(
            [(EntryKind.IMEI, f"{35000000000000 + i:014d}", None, B, None, None) for i in range(n)]
        )
        await s.import_version(rows, [], source="big")
        assert await con.fetchval(parts) == 1
        for i in range(10):
            v = await s.import_version(
                [imei("35394206000093", G if i % 2 else B)],
                [],
                source="put",
                delta=True,
                removals=[imei(f"{35000000000000 + i:014d}")],
            )
            assert v.entries == n + 1 - (i + 1)
            assert await con.fetchval(parts) == 1
            assert await con.fetchval("SELECT count(*) FROM eir_overlay WHERE version_id = $1", v.id) == i + 2
        assert s.last_import_rows == 12  # the 10 rows of the overlay carried over, the 2 changes
        assert len(await s.versions()) == 3  # pruned; the full version's partition is still read
        assert (await s.lookup("35394206000093")).imei.status is G  # type: ignore[union-attr]
        assert (await s.lookup("35000000000003")).imei is None
        assert (await s.lookup("35000000000010")).imei is not None
        await s.import_version(
            [imei(f"{36000000000000 + i:014d}", W) for i in range(OVERLAY_MAX + 1)],
            [],
            source="big delta",
            delta=True,
        )
        assert s.last_import_rows >= n
        assert (await s.lookup("35000000000003")).imei is None
        assert (await s.lookup("35394206000093")).imei.status is G  # type: ignore[union-attr]
        # three more small deltas prune the overlays on the first full version: its partition goes
        for _ in range(3):
            await s.import_version([imei("35394206000093", W)], [], source="put", delta=True)
        assert await con.fetchval(parts) == 1
        assert await con.fetchval("SELECT count(DISTINCT version_id) FROM eir_overlay") == 3
    finally:
        await con.close()
        await s.close()


async def _version_bytes(s: Any, vid: int) -> int:
    """Redis's own account (MEMORY USAGE) of the keys of one version."""
    r = s.redis
    pipe = r.pipeline(transaction=False)
    for k in s._vkeys(vid):
        pipe.memory_usage(k)
    return sum(int(x or 0) for x in await pipe.execute())


async def test_redis_small_delta_on_a_large_version_writes_only_the_change(tmp_path: Path) -> None:
    """Redis: a one-entry change on a 50k-entry list is an overlay of a few rows — the new version's
    keys hold a few hundred octets (MEMORY USAGE) instead of a copy of the list; a kept overlay keeps
    the full version under it after that left the listing; a big delta folds it into a copy."""
    from eir.store.redis import OVERLAY_MAX, RedisStore
    from testkit.services import shared_redis

    s = RedisStore(shared_redis().url, prefix=f"t{random.randrange(1 << 30)}", keep_versions=3)
    await s.open()
    try:
        n = 50_000
        rows = EntryRows(
            [(EntryKind.IMEI, f"{35000000000000 + i:014d}", None, B, None, None) for i in range(n)]
        )
        full = await s.import_version(rows, [pairing("262011234567890", "35000000000001")], source="big")
        assert s.last_import_changes >= n
        full_bytes = await _version_bytes(s, full.id)
        assert full_bytes > 1_000_000
        for i in range(10):
            v = await s.import_version(
                [imei("35394206000093", G if i % 2 else B)],
                [],
                source="put",
                delta=True,
                removals=[imei(f"{35000000000000 + i:014d}")],
            )
            assert s.last_import_changes <= 1 + 2 * (i + 1)  # the meta, the accumulated overlay
            assert await _version_bytes(s, v.id) < 4096
            assert v.entries == n + 1 - (i + 1) and v.pairings == 1
        assert (await s.lookup("35394206000093")).imei.status is G  # type: ignore[union-attr]
        assert (await s.lookup("35000000000003")).imei is None
        assert (await s.lookup("35000000000010")).imei is not None
        assert (await s.imsi_rules("262011234567890", "35000000000001")).pairing is not None
        listed = [x.id for x in await s.versions()]
        assert full.id not in listed  # pruned from the listing, its keys kept for the overlays
        await s.rollback(listed[-1])
        assert (await s.lookup("35000000000010")).imei is not None
        # a delta too big for an overlay folds: a full copy
        await s.import_version(
            [imei(f"{36000000000000 + i:014d}", W) for i in range(OVERLAY_MAX + 1)],
            [],
            source="big delta",
            delta=True,
        )
        assert s.last_import_changes >= n
        # (on the rolled-back version: the 8th change's, removals 0-7)
        assert (await s.lookup("35000000000007")).imei is None
        assert (await s.lookup("35000000000008")).imei is not None
        assert (await s.lookup("35394206000093")).imei.status is G  # type: ignore[union-attr]
        assert (await s.lookup("36000000000000")).imei.status is W  # type: ignore[union-attr]
        # three more versions: no kept version needs the first full one any more, its keys go
        for i in range(3):
            await s.import_version([imei("35394206000093", W)], [], source=f"more{i}", delta=True)
        assert await _version_bytes(s, full.id) == 0
    finally:
        await s.close()
