"""``eir sightings show|clear`` — the real console script against the SQLite store and a shared
Redis (the suite's ephemeral server): an operator clears a clone suspicion."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from eir.sightings import SightingTracker
from eir.store.redis import RedisStore
from eir.store.sqlite import SqliteStore
from testkit.services import redis_server, redis_url
from tests.system.test_cli_lists import DEMO, Cli

__all__ = ["redis_server", "redis_url"]  # fixtures used here

IMEI = "35209900176148"
IMSIS = ["262010000000001", "262010000000002", "262010000000003"]


def _seed(store: SqliteStore | RedisStore, now: float) -> None:
    async def run() -> None:
        await store.open()
        try:
            await store.write_sightings(
                [(IMEI, "i", imsi, now - i) for i, imsi in enumerate(IMSIS)], writer="w1"
            )
            await store.write_sightings([("35209900176155", "i", IMSIS[0], now)], writer="w2")
        finally:
            await store.close()

    asyncio.run(run())


def test_show_then_clear_on_sqlite(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    now = time.time()
    _seed(SqliteStore(f"sqlite:///{tmp_path / 'data' / 'eir.db'}", str(tmp_path / "data")), now)
    shown = json.loads(cli.ok("sightings", "show", IMEI + "0", "--json"))
    assert shown["imei"] == IMEI
    assert [(r["kind"], r["value"]) for r in shown["sightings"]] == [("imsi", i) for i in IMSIS]
    # `eir check` with a fourth IMSI: the clone rule counts the stored three
    assert cli.ok("check", IMEI, "--imsi", "262010000000009").startswith("grey  clone")
    out = cli.ok("sightings", "clear", "35-209900-176148")
    assert out.strip() == f"cleared {IMEI}: 3 sightings deleted"
    shown = json.loads(cli.ok("sightings", "show", IMEI, "--json"))
    assert [r["kind"] for r in shown["sightings"]] == ["cleared"]
    assert cli.ok("check", IMEI, "--imsi", "262010000000009").startswith("white  default")
    # the other IMEI's sightings stay; a text listing has one line per sighting
    assert cli.ok("sightings", "show", "35209900176155").count("imsi") == 1
    # mistakes are one line and exit 2
    r = cli("sightings", "clear", "123")
    assert r.returncode == 2 and "is not an IMEI" in r.stderr and len(r.stderr.splitlines()) == 1


def test_clear_reaches_a_serving_instance_through_redis(tmp_path: Path, redis_url: str) -> None:
    """Instances sharing Redis: a tracker holding the IMEI's sightings drops them when it next
    shares after a CLI clear (the clear row)."""
    cli = Cli(tmp_path, {"url": f"sqlite:///{tmp_path / 'data' / 'eir.db'}", "observations_url": redis_url})
    cli.ok("lists", "import", str(DEMO))  # the list store (SQLite) these commands also open
    now = time.time()
    _seed(RedisStore(redis_url), now)

    async def serving() -> None:
        store = RedisStore(redis_url)
        await store.open()
        t = SightingTracker(store, 3600.0, share_interval=None)
        await t.start()  # reads the window back: the three IMSIs
        try:
            assert t.observe(IMEI, None, None, time.time()).distinct_imsis == 3
            done = await asyncio.to_thread(cli.ok, "sightings", "clear", IMEI)
            assert "3 sightings deleted" in done
            t.merge(await store.read_sightings(now - 60, exclude_writer=t.writer))  # what _share does
            assert t.observe(IMEI, None, None, time.time()).distinct_imsis == 0
        finally:
            await t.close()
            await store.close()

    asyncio.run(serving())
