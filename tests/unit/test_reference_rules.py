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

    # and so does a new process on the same file
    store2 = SqliteStore(f"sqlite:///{tmp_path / 'eir.db'}", str(tmp_path))
    await store2.open()
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
