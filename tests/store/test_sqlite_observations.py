"""SQLite clone sightings shared by processes on one file: a repeated sighting costs no write and no
count query, and another process's sightings are seen within a bounded horizon (1 s)."""

from __future__ import annotations

from pathlib import Path

from eir.store.sqlite import SqliteStore

IMEI = "35209900176148"


async def test_repeated_sightings_see_another_process_within_one_second(tmp_path: Path) -> None:
    a = SqliteStore(f"sqlite:///{tmp_path / 'eir.db'}", str(tmp_path))
    b = SqliteStore(f"sqlite:///{tmp_path / 'eir.db'}", str(tmp_path))
    await a.open()
    await b.open()
    try:
        t, window = 1000.0, 3600.0
        assert (await a.observe(IMEI, "001010000000001", "msc-a", t, window)).distinct_imsis == 1
        assert (await b.observe(IMEI, "001010000000002", "msc-b", t + 0.01, window)).distinct_imsis == 2
        # a's own repeat inside the horizon may answer from what it counted last ...
        stale = await a.observe(IMEI, "001010000000001", "msc-a", t + 0.02, window)
        assert stale.distinct_imsis in (1, 2)
        # ... but never beyond it.
        later = await a.observe(IMEI, "001010000000001", "msc-a", t + 1.5, window)
        assert (later.distinct_imsis, later.distinct_origins) == (2, 2)
        # A new IMSI seen by a itself is counted at once.
        now = await a.observe(IMEI, "001010000000003", "msc-a", t + 1.51, window)
        assert now.distinct_imsis == 3
        again = await a.observe(IMEI, "001010000000001", "msc-a", t + 1.52, window)
        assert again.distinct_imsis == 3
    finally:
        await a.close()
        await b.close()


async def test_sightings_past_the_window_are_pruned_off_the_event_loop(tmp_path: Path) -> None:
    import asyncio
    import sqlite3

    s = SqliteStore(f"sqlite:///{tmp_path / 'eir.db'}", str(tmp_path))
    await s.open()
    try:
        window = 100.0
        for i in range(5000):  # more than one pruning chunk
            await s.observe(f"{35209900000000 + i}", "001010000000001", None, 1000.0, window)
        if s._prune_task is not None:  # the first sighting's prune (nothing to drop yet)
            await s._prune_task
        await s.observe(IMEI, "001010000000002", None, 1200.0, window)  # starts the prune
        assert s._prune_task is not None
        await asyncio.wait_for(s._prune_task, 10)
        con = sqlite3.connect(s.obs_path)
        try:
            assert con.execute("SELECT count(*) FROM obs").fetchone()[0] == 1
        finally:
            con.close()
        assert (await s.observe(IMEI, "001010000000003", None, 1201.0, window)).distinct_imsis == 2
    finally:
        await s.close()


async def _old_sightings(s: SqliteStore, n: int, ts: float) -> None:
    import sqlite3

    con = sqlite3.connect(s.obs_path)
    with con:
        con.executemany(
            "INSERT INTO obs VALUES (?, 0, '001010000000001', ?)",
            [(f"{35209900000000 + i}", ts) for i in range(n)],
        )
    con.close()


async def test_sightings_are_recorded_while_a_prune_runs(tmp_path: Path) -> None:
    """The prune deletes in short transactions: the loop's own writes get through meanwhile
    (or are skipped and counted), and never turn into a store outage."""
    import asyncio

    s = SqliteStore(f"sqlite:///{tmp_path / 'eir.db'}", str(tmp_path))
    await s.open()
    try:
        await s.observe(IMEI, "001010000000009", None, 100.0, 100.0)
        if s._prune_task is not None:
            await s._prune_task
        await _old_sightings(s, 60_000, 100.0)
        await s.observe(IMEI, "001010000000009", None, 300.0, 100.0)  # starts the prune
        task = s._prune_task
        assert task is not None
        seen = 0
        while not task.done():
            seen += 1
            imsi = f"0010200{seen:08d}"
            got = await s.observe("35394206000002", imsi, None, 300.0 + seen / 1000, 100.0)
            assert got.distinct_imsis >= 1
            await asyncio.sleep(0)
        await task
        total = await s.observe("35394206000002", "001010000000777", None, 301.0 + seen / 1000, 100.0)
        assert total.distinct_imsis == seen + 1 - s._obs_busy
    finally:
        await s.close()


async def test_close_stops_a_running_prune(tmp_path: Path) -> None:
    import sqlite3

    s = SqliteStore(f"sqlite:///{tmp_path / 'eir.db'}", str(tmp_path))
    await s.open()
    await s.observe(IMEI, "001010000000009", None, 100.0, 100.0)
    if s._prune_task is not None:
        await s._prune_task
    await _old_sightings(s, 200_000, 100.0)
    await s.observe(IMEI, "001010000000009", None, 300.0, 100.0)
    assert s._prune_task is not None
    import asyncio

    await asyncio.sleep(0.05)  # under way: 100 chunks with a 2 ms pause each take at least 0.2 s
    await s.close()  # returns between two chunks, not after the whole table
    assert s._prune_task is None
    con = sqlite3.connect(s.obs_path)
    left = con.execute("SELECT count(*) FROM obs").fetchone()[0]
    con.close()
    assert left > 0
