"""The reference rules' time-dependent parts (issue 11): the ``tac_not_allocated`` grace period
counted from an IMEI's first sighting (eir/first_seen.py), kept across a restart by SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eir.checker import PolicyChecker
from eir.config import Config, load_config
from eir.first_seen import FirstSeen
from eir.model import CheckRequest, Interface, Status
from eir.store.base import EntryKind, IdentityStore, ListEntry
from eir.store.memory import MemoryStore
from eir.store.sqlite import SqliteStore

DAY = 86400.0
T0 = 1_780_000_000.0  # 2026-05-28
UNALLOCATED = "35000000000002"  # TAC 35000000, not in the table
ALLOCATED = "35693803564380"  # TAC 35693803


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class NoEvents:
    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        return None


def cfg(**tac: Any) -> Config:
    return load_config(None, environ={}, overrides={"policy": {"tac_not_allocated": tac}})


async def verdict(c: PolicyChecker, imei: str) -> tuple[str, str, str]:
    v = await c.check(CheckRequest(imei=imei, interface=Interface.S13))
    return v.status.value, v.rule, v.detail


async def tables(store: IdentityStore) -> None:
    await store.import_version(
        [ListEntry(kind=EntryKind.IMEI, key="35000000000001", status=Status.WHITE)], [], source="t"
    )
    await store.import_reference("tac", [("35693803", "Samsung")], source="gsma-tac: t")


async def test_grace_period_from_the_first_sighting_with_a_moved_clock(tmp_path: Path) -> None:
    clock = Clock()
    store = SqliteStore(f"sqlite:///{tmp_path / 'eir.db'}", str(tmp_path))
    await store.open()
    await tables(store)
    c = PolicyChecker(cfg(grace_days=2, after_grace="black"), store, NoEvents(), wall=clock)
    await c.start()
    assert c.first_seen is not None
    assert await verdict(c, UNALLOCATED) == ("grey", "tac_not_allocated", "TAC not in the TAC table")
    clock.now = T0 + 2 * DAY - 1  # still inside the grace period
    assert (await verdict(c, UNALLOCATED))[:2] == ("grey", "tac_not_allocated")
    # another IMEI of the same TAC first seen now has its own clock
    assert (await verdict(c, "35000000000003"))[:2] == ("grey", "tac_not_allocated")
    clock.now = T0 + 2 * DAY
    assert await verdict(c, UNALLOCATED) == (
        "black",
        "tac_not_allocated",
        "TAC not in the TAC table; grace period over",
    )
    assert (await verdict(c, "35000000000003"))[:2] == ("grey", "tac_not_allocated")
    # listed and allocated IMEIs are not counted (their first sighting is not recorded)
    assert (await verdict(c, "35000000000001"))[:2] == ("white", "imei")
    assert (await verdict(c, ALLOCATED))[:2] == ("white", "default")
    assert len(c.first_seen) == 2
    steps = {s.rule: s for s in await c.explain(CheckRequest(imei=UNALLOCATED, interface=Interface.CLI))}
    assert "grace over 2026-05-30" in steps["tac_alloc"].detail
    assert steps["tac_alloc"].detail.startswith(
        "TAC 35000000 not in the TAC table → black (first seen 2026-05-28"
    )
    await c.close()  # the first sightings are written behind (and on close)

    # a restart keeps the clock: the same IMEI is black at once, the other still grey
    c2 = PolicyChecker(cfg(grace_days=2, after_grace="black"), store, NoEvents(), wall=clock)
    await c2.start()
    assert (await verdict(c2, UNALLOCATED))[:2] == ("black", "tac_not_allocated")
    assert (await verdict(c2, "35000000000003"))[:2] == ("grey", "tac_not_allocated")
    await c2.close()
    await store.close()

    # and so does a new process on the same file, `eir check` (which starts nothing) included
    store2 = SqliteStore(f"sqlite:///{tmp_path / 'eir.db'}", str(tmp_path))
    await store2.open()
    cli = PolicyChecker(cfg(grace_days=2, after_grace="black"), store2, NoEvents(), wall=clock)
    assert (await verdict(cli, UNALLOCATED))[:2] == ("black", "tac_not_allocated")
    assert dict(await store2.read_first_seen(10)) == {UNALLOCATED: T0, "35000000000003": T0 + 2 * DAY - 1}
    await store2.close()


async def test_no_grace_configured_records_nothing() -> None:
    store = MemoryStore()
    await tables(store)
    c = PolicyChecker(cfg(), store, NoEvents())
    assert c.first_seen is None
    assert (await verdict(c, UNALLOCATED))[:2] == ("grey", "tac_not_allocated")


async def test_first_seen_is_bounded_and_keeps_the_earliest_time() -> None:
    store = MemoryStore()
    fs = FirstSeen(store, max_imeis=3, clock=lambda: T0)
    fs.running = True
    for i in range(5):
        assert fs.first_seen(f"3500000000000{i}", T0 + i) == T0 + i
    assert len(fs) == 3 and fs.first_seen("35000000000004", T0 + 99) == T0 + 4
    # as many wait for the store as are held; the excess is counted (and logged)
    assert fs.dropped == 2 and await fs.flush() == 3
    await store.write_first_seen([("35000000000004", T0 - 5)])  # an earlier time wins
    await store.write_first_seen([("35000000000004", T0 + 50)])
    assert dict(await store.read_first_seen(10))["35000000000004"] == T0 - 5
    assert dict(await store.read_first_seen(2)) == {"35000000000001": T0 + 1, "35000000000002": T0 + 2}


# --- DIRBS duplicate_mk1 on the per-day observation history ----------------------------------------------

DUP: dict[str, Any] = {
    "threshold": 4,
    "period_days": 20,
    "daily_avg": 2.0,
    "daily_avg_days": 10,
    "min_seen_days": 3,
}
TODAY = int(T0 // DAY)


def synthetic_history() -> list[tuple[str, int, str]]:
    """IMEIs made to sit on either side of each condition (today = TODAY)."""
    h: list[tuple[str, int, str]] = []

    def seen(imei: str, days_ago: int, *imsis: str) -> None:
        h.extend((imei, TODAY - days_ago, i) for i in imsis)

    dup = "35000000000010"  # 4 IMSIs, 3 days seen with 2 IMSIs each: both dimensions hold
    seen(dup, 1, "a", "b")
    seen(dup, 2, "c", "d")
    seen(dup, 3, "a", "c")
    few_days = "35000000000011"  # 4 IMSIs and a daily average of 2, but seen on 2 days only
    seen(few_days, 1, "a", "b")
    seen(few_days, 2, "c", "d")
    low_avg = "35000000000012"  # 4 IMSIs over 4 days, one a day: average 1 < 2
    for d, i in enumerate("abcd"):
        seen(low_avg, d, i)
    old = "35000000000013"  # like dup, but the IMSIs fell out of the 20-day window
    seen(old, 25, "a", "b")
    seen(old, 26, "c", "d")
    seen(old, 1, "a", "b")
    seen(old, 2, "a", "b")
    seen(old, 3, "a", "b")
    few_imsis = "35000000000014"  # 3 IMSIs < 4, every day 2 of them
    for d in range(5):
        seen(few_imsis, d, "a", "b" if d % 2 else "c")
    future = "35000000000015"  # rows after today do not count
    seen(future, -1, "a", "b", "c", "d")
    seen(future, -2, "a", "b")
    seen(future, -3, "c", "d")
    seen(dup, 1, "a")  # a repeat is one row
    return h


def test_duplicate_mk1_reference_on_a_synthetic_history() -> None:
    from eir.duplicates import duplicate_mk1

    assert duplicate_mk1(synthetic_history(), today=TODAY, **DUP) == {"35000000000010"}
    # the long-window IMEI counts once its old IMSIs are inside the window
    assert "35000000000013" in duplicate_mk1(synthetic_history(), today=TODAY, **{**DUP, "period_days": 30})
    assert "35000000000011" in duplicate_mk1(synthetic_history(), today=TODAY, **{**DUP, "min_seen_days": 2})


async def test_duplicate_rule_flags_sticky_and_stricter(tmp_path: Path) -> None:
    """SQLite's query and the memory default agree with the reference; the flag survives the
    history's pruning and a restart; the verdict is only ever made stricter."""
    for backend in ("memory", "sqlite"):
        clock = Clock()
        store: IdentityStore = MemoryStore()
        if backend == "sqlite":
            store = SqliteStore(f"sqlite:///{tmp_path / 'dup.db'}", str(tmp_path))
            await store.open()
        await store.import_version(
            [ListEntry(kind=EntryKind.IMEI, key="35000000000011", status=Status.BLACK)], [], source="t"
        )
        config = load_config(
            None,
            environ={},
            overrides={"policy": {"duplicate": {"enabled": True, **DUP}, "clone": {"enabled": False}}},
        )
        c = PolicyChecker(config, store, NoEvents(), wall=clock)
        await c.start()
        dup = c.duplicates
        assert dup is not None
        history = synthetic_history()
        # the checks of the last days feed the same history through the write-behind
        for imei, day, imsi in history:
            if day == TODAY:
                clock.now = day * DAY + 60
                await c.check(CheckRequest(imei=imei, imsi=imsi, interface=Interface.S13))
        await dup.flush()
        await store.write_daily([r for r in history if r[1] != TODAY])
        clock.now = T0
        assert await store.classify_duplicates(today=TODAY, **DUP) == {"35000000000010"}, backend
        assert await dup.classify() == ["35000000000010"]
        assert await verdict(c, "35000000000010") == ("grey", "duplicate", dup_detail(c))
        assert (await verdict(c, "35000000000012"))[:2] == ("white", "default")
        steps = {
            s.rule: s for s in await c.explain(CheckRequest(imei="35000000000010", interface=Interface.CLI))
        }
        assert steps["duplicate"].outcome == "decided" and "sticky" in steps["duplicate"].detail

        # sticky: the history is pruned a year on, the flag stays
        clock.now = T0 + 365 * DAY
        assert await dup.classify() == []
        assert await store.classify_duplicates(today=TODAY + 365, **DUP) == set()
        assert (await verdict(c, "35000000000010"))[:2] == ("grey", "duplicate")
        await c.close()
        if backend == "sqlite":  # a restart (and `eir check`, which starts nothing) reads the flags back
            c2 = PolicyChecker(config, store, NoEvents(), wall=clock)
            assert (await verdict(c2, "35000000000010"))[:2] == ("grey", "duplicate")
            await store.close()


def dup_detail(_c: PolicyChecker) -> str:
    return (
        "flagged by duplicate_mk1 (>= 4 IMSIs over 20 days and a daily average >= 2 over 10 days, "
        "seen on >= 3 days; sticky)"
    )


async def test_a_black_listed_duplicate_stays_black() -> None:
    store = MemoryStore()
    await store.import_version(
        [ListEntry(kind=EntryKind.IMEI, key="35000000000010", status=Status.BLACK)], [], source="t"
    )
    await store.write_daily([("35000000000010", TODAY, "a")])  # a flag needs history
    await store.flag_duplicates(["35000000000010"], T0)
    config = load_config(None, environ={}, overrides={"policy": {"duplicate": {"enabled": True}}})
    c = PolicyChecker(config, store, NoEvents())
    assert (await verdict(c, "35000000000010"))[:2] == ("black", "imei")
    steps = {s.rule: s for s in await c.explain(CheckRequest(imei="35000000000010", interface=Interface.CLI))}
    assert steps["duplicate"].outcome == "flagged"


async def test_duplicate_history_records_only_trusted_origins() -> None:
    """policy.clone.trusted_origins guards the history as it guards the real-time clone rule."""
    store = MemoryStore()
    await store.import_version([], [], source="t")
    config = load_config(
        None,
        environ={},
        overrides={"policy": {"duplicate": {"enabled": True}, "clone": {"trusted_origins": ["mme*.lab"]}}},
    )
    c = PolicyChecker(config, store, NoEvents(), wall=Clock())
    await c.start()
    for i, origin in enumerate(("mme1.lab", "evil.example", None, "MME2.LAB")):
        await c.check(
            CheckRequest(
                imei="35000000000010", imsi=f"41001000000000{i}", origin=origin, interface=Interface.S13
            )
        )
    assert c.duplicates is not None and c.duplicates.untrusted == 2
    await c.close()
    assert await store.classify_duplicates(
        today=TODAY, threshold=1, period_days=1, daily_avg=0.0, daily_avg_days=1, min_seen_days=1
    ) == {"35000000000010"}
    assert await store.classify_duplicates(
        today=TODAY, threshold=2, period_days=1, daily_avg=0.0, daily_avg_days=1, min_seen_days=1
    ) == {"35000000000010"}
    assert (
        await store.classify_duplicates(
            today=TODAY, threshold=3, period_days=1, daily_avg=0.0, daily_avg_days=1, min_seen_days=1
        )
        == set()
    )


# --- DIRBS's period_months and use_msisdn ---------------------------------------------------------


def _day(text: str) -> int:
    from datetime import date

    return (date.fromisoformat(text) - date(1970, 1, 1)).days


def test_period_months_counts_calendar_months_back() -> None:
    """relativedelta(months=N) as DIRBS-Core's analysis window: the same day N months before, the
    last day of that month when it is shorter."""
    from eir.config import DuplicateConfig
    from eir.duplicates import threshold_days

    assert threshold_days(DuplicateConfig(period_days=7), _day("2026-03-31")) == 7
    for today, months, days in (
        ("2026-03-31", 1, 31),  # back to 2026-02-28
        ("2026-05-15", 1, 30),  # 2026-04-15
        ("2026-05-31", 3, 92),  # 2026-02-28
        ("2024-03-30", 1, 30),  # 2024-02-29 (leap year)
        ("2026-01-10", 2, 61),  # 2025-11-10, across the year
        ("2026-06-01", 12, 365),
    ):
        cfg = DuplicateConfig(period_days=7, period_months=months)
        assert threshold_days(cfg, _day(today)) == days, (today, months)


async def test_period_months_and_use_msisdn_in_the_tracker() -> None:
    """``period_months`` widens the threshold window to the calendar months (a 31-day month
    counts an IMSI seen 30 days ago that ``period_days: 30`` leaves out); ``use_msisdn`` records
    and counts the checks' MSISDNs, so checks without one (S13) feed nothing."""
    today = _day("2026-03-31")
    imei = "35000000000010"
    params = {"threshold": 3, "daily_avg": 1.0, "daily_avg_days": 40, "min_seen_days": 1}
    history = [(imei, today - 30, "a"), (imei, today - 1, "b"), (imei, today, "c")]

    async def flagged(**dup: Any) -> list[str]:
        store = MemoryStore()
        await store.write_daily(history)
        config = load_config(
            None, environ={}, overrides={"policy": {"duplicate": {"enabled": True, **params, **dup}}}
        )
        c = PolicyChecker(config, store, NoEvents(), wall=lambda: today * DAY + 60)
        assert c.duplicates is not None
        return await c.duplicates.classify()

    assert await flagged(period_days=30) == []
    assert await flagged(period_days=30, period_months=1) == [imei]

    clock = Clock()
    clock.now = today * DAY + 60
    store = MemoryStore()
    config = load_config(
        None,
        environ={},
        overrides={
            "policy": {
                "duplicate": {"enabled": True, "use_msisdn": True, **params},
                "clone": {"enabled": False},
            }
        },
    )
    c = PolicyChecker(config, store, NoEvents(), wall=clock)
    dup = c.duplicates
    assert dup is not None
    await dup.start()
    try:
        other = "35000000000011"
        for i in range(3):  # one IMSI, three MSISDNs (MAP, Huawei forms): counted as 3
            await c.check(
                CheckRequest(
                    imei=imei, imsi="262010000000001", msisdn=f"4917000000{i}", interface=Interface.MAP
                )
            )
            # three IMSIs and no MSISDN (S13): nothing recorded
            await c.check(CheckRequest(imei=other, imsi=f"26201000000000{i}", interface=Interface.S13))
        await dup.flush()
        assert sorted(await store.daily_history(imei)) == [(today, f"4917000000{i}") for i in range(3)]
        assert await store.daily_history(other) == []
        assert await dup.classify() == [imei]
        v = await c.check(CheckRequest(imei=imei, interface=Interface.S13))
        assert (v.status.value, v.rule) == ("grey", "duplicate")
        assert v.detail.startswith("flagged by duplicate_mk1 (>= 3 MSISDNs over 120 days")
    finally:
        await dup.close()
