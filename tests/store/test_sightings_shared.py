"""Clone sightings shared by instances through each shareable store (SQLite file, PostgreSQL,
Redis): what one instance saw reaches another within flush_interval + share_interval, so a clone
split across instances is caught — at worst a check or two late, as eir/sightings.py says."""

from __future__ import annotations

import asyncio
import time

from eir.sightings import SightingTracker
from eir.store.base import IdentityStore

IMEI = "35209900176148"
FLUSH, SHARE = 0.05, 0.1


async def test_instances_see_each_others_sightings_within_the_bound(
    store: IdentityStore, second_handle: IdentityStore
) -> None:
    a = SightingTracker(store, 3600.0, flush_interval=FLUSH, share_interval=SHARE)
    b = SightingTracker(second_handle, 3600.0, flush_interval=FLUSH, share_interval=SHARE)
    await a.start()
    await b.start()
    try:
        assert a.observe(IMEI, "262010000000001", "mme-a", time.time()).distinct_imsis == 1
        assert a.observe(IMEI, "262010000000002", "mme-a", time.time()).distinct_imsis == 2
        # b has not heard of them yet (within the bound), then it has: bounded polling, not a sleep
        seen = b.observe(IMEI, "262010000000003", "mme-b", time.time()).distinct_imsis
        deadline = time.monotonic() + 10 * (FLUSH + SHARE) + 5
        while seen < 3 and time.monotonic() < deadline:
            await asyncio.sleep(SHARE / 2)
            seen = b.observe(IMEI, "262010000000003", "mme-b", time.time()).distinct_imsis
        assert seen == 3, "b counts a's two IMSIs and its own"
    finally:
        await a.close()
        await b.close()


async def test_an_instance_does_not_read_its_own_rows_back(
    store: IdentityStore, second_handle: IdentityStore
) -> None:
    """Sharing reads only what the other instances wrote (writer ids): with a lone writer, every
    share reads nothing, however many sightings it wrote."""
    a = SightingTracker(store, 3600.0, flush_interval=FLUSH, share_interval=SHARE)
    b = SightingTracker(second_handle, 3600.0, flush_interval=FLUSH, share_interval=SHARE)
    reads: list[int] = []
    shared = b.store.read_sightings

    async def counted(since: float, **kw: object) -> list[tuple[str, str, str, float]]:
        rows = await shared(since, **kw)  # type: ignore[arg-type]
        if kw.get("exclude_writer") == b.writer:
            reads.append(len(rows))
        return rows

    b.store.read_sightings = counted  # type: ignore[method-assign]
    await a.start()
    await b.start()
    try:
        for i in range(50):
            b.observe(f"3520990017{i:04d}", "262010000000001", None, time.time())
        deadline = time.monotonic() + 10 * (FLUSH + SHARE) + 5
        while (len(reads) < 3 or b.written < 50) and time.monotonic() < deadline:
            await asyncio.sleep(SHARE / 2)
        assert b.written == 50 and len(reads) >= 3
        assert set(reads) == {0}, "b read none of its own 50 rows back"
        a.observe(IMEI, "262010000000002", None, time.time())
        while (not reads or reads[-1] == 0) and time.monotonic() < deadline:
            await asyncio.sleep(SHARE / 2)
        assert reads[-1] == 1, "and reads a's row"
    finally:
        await a.close()
        await b.close()


async def test_a_restarted_instance_reads_the_window_back(store: IdentityStore) -> None:
    a = SightingTracker(store, 3600.0, share_interval=None)
    await a.start()
    a.observe(IMEI, "262010000000001", None, time.time())
    a.observe(IMEI, "262010000000002", None, time.time())
    await a.close()
    b = SightingTracker(store, 3600.0, share_interval=None)
    await b.start()
    try:
        assert b.observe(IMEI, "262010000000003", None, time.time()).distinct_imsis == 3
    finally:
        await b.close()


async def test_sqlite_keeps_the_rows_of_the_keyed_table_of_earlier_versions(tmp_path: object) -> None:
    """Earlier versions kept sightings in a keyed table ``obs``; the append-only log takes its rows."""
    import sqlite3
    from pathlib import Path

    from eir.store.sqlite import SqliteStore

    tmp = Path(str(tmp_path))
    obs_file = tmp / "eir.db-obs"
    con = sqlite3.connect(obs_file)
    con.execute(
        "CREATE TABLE obs(imei TEXT, kind INTEGER, value TEXT, ts REAL, PRIMARY KEY(imei, kind, value))"
    )
    con.execute(
        "INSERT INTO obs VALUES (?, 0, '262010000000001', 100.0), (?, 1, 'mme1', 101.0)", (IMEI, IMEI)
    )
    con.commit()
    con.close()
    s = SqliteStore(f"sqlite:///{tmp / 'eir.db'}", str(tmp))
    await s.open()
    try:
        assert await s.read_sightings(0.0) == [
            (IMEI, "o", "mme1", 101.0),
            (IMEI, "i", "262010000000001", 100.0),
        ]
    finally:
        await s.close()


async def test_sqlite_prune_keeps_the_window_of_a_large_log(tmp_path: object) -> None:
    from pathlib import Path

    from eir.store.sqlite import SqliteStore

    tmp = Path(str(tmp_path))
    s = SqliteStore(f"sqlite:///{tmp / 'eir.db'}", str(tmp))
    await s.open()
    try:
        old = [(f"{35209900000000 + i}", "i", "262010000000001", 1000.0 + i * 1e-3) for i in range(25_000)]
        new = [(f"{35209910000000 + i}", "i", "262010000000002", 2000.0 + i * 1e-3) for i in range(3)]
        for i in range(0, len(old), 5000):
            await s.write_sightings(old[i : i + 5000])
        await s.write_sightings(new)
        await s.prune_sightings(1500.0)
        assert sorted(await s.read_sightings(0.0)) == sorted(new)
        assert await s.read_sightings(0.0, imei=new[1][0]) == [new[1]]
    finally:
        await s.close()
