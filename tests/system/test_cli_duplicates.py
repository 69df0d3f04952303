"""``eir duplicates list|show|clear`` — the real console script on a SQLite store: an operator
lists the duplicate_mk1 flags, reads what flagged one, and clears it (``eir check`` follows)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import yaml

from eir.duplicates import DAY
from eir.store.sqlite import SqliteStore
from tests.system.test_cli_lists import Cli

IMEI = "35209900176148"


def test_list_show_clear_on_sqlite(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cfg = yaml.safe_load(cli.config.read_text())
    cfg["policy"] = {
        "duplicate": {
            "enabled": True,
            "threshold": 3,
            "daily_avg": 1.5,
            "daily_avg_days": 10,
            "min_seen_days": 2,
        },
        "clone": {"enabled": False},
    }
    cli.config.write_text(yaml.safe_dump(cfg))
    now = time.time()
    today = int(now // DAY)
    store = SqliteStore(f"sqlite:///{tmp_path / 'data' / 'eir.db'}", str(tmp_path / "data"))

    async def seed() -> None:
        await store.open()
        try:
            rows = [(IMEI, today - 1, "262010000000001"), (IMEI, today - 1, "262010000000002")]
            rows += [(IMEI, today, "262010000000003"), (IMEI, today, "262010000000001")]
            await store.write_daily(rows)
            await store.write_daily([("35209900176155", today, "262010000000001")])
            await store.flag_duplicates([IMEI], now)
        finally:
            await store.close()

    asyncio.run(seed())
    listed = json.loads(cli.ok("duplicates", "list", "--json"))
    assert listed == {"duplicates": [{"imei": IMEI, "flagged": now}]}
    assert cli.ok("duplicates", "list").split()[0] == IMEI
    shown = json.loads(cli.ok("duplicates", "show", IMEI + "0", "--json"))
    inputs = shown["inputs"]
    assert (inputs["distinct_imsis"], inputs["days_seen"], inputs["daily_average"]) == (3, 2, 2.0)
    assert inputs["per_day"] == {str(today - 1): 2, str(today): 2} and inputs["meets_rule"] is True
    text = cli.ok("duplicates", "show", IMEI)
    assert "distinct IMSIs over 120 days: 3 (threshold 3)" in text
    assert cli.ok("check", IMEI).startswith("grey  duplicate")

    out = cli.ok("duplicates", "clear", "35-209900-176148")
    assert out.strip() == f"cleared {IMEI}: flag and 4 history rows deleted"
    assert cli.ok("check", IMEI).startswith("white  default")
    assert json.loads(cli.ok("duplicates", "list", "--json")) == {"duplicates": []}
    # not flagged: exit 1 and one line, and the other IMEI's history stays
    for action in ("show", "clear"):
        r = cli("duplicates", action, "35209900176155")
        assert r.returncode == 1
        assert r.stderr.splitlines()[-1] == "eir: 35209900176155 is not flagged as duplicated"

    async def left() -> list[tuple[int, str]]:
        await store.open()
        try:
            return await store.daily_history("35209900176155")
        finally:
            await store.close()

    assert asyncio.run(left()) == [(today, "262010000000001")]
    r = cli("duplicates", "clear", "123")
    assert r.returncode == 2 and "is not an IMEI" in r.stderr and len(r.stderr.splitlines()) == 1
