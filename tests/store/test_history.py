"""The observation history each backend keeps for the reference rules (issue 11): first
sightings (the tac_not_allocated grace clock) and the per-day (IMEI, day, IMSI) history of DIRBS
duplicate_mk1 with its sticky flags — the stores' own queries against the reference
:func:`eir.duplicates.duplicate_mk1` on one synthetic history."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from eir.duplicates import duplicate_mk1
from eir.store.base import IdentityStore
from tests.unit.test_reference_rules import DUP, T0, TODAY, synthetic_history

DURABLE = {"sqlite", "postgres", "redis"}
"""Backends whose second handle (another process) sees the history."""


async def test_first_seen_keeps_the_earliest(store: IdentityStore) -> None:
    await store.write_first_seen([("35000000000001", T0 + 5), ("35000000000002", T0 + 1)])
    await store.write_first_seen([("35000000000001", T0), ("35000000000001", T0 + 9)])
    assert await store.read_first_seen(10) == [("35000000000001", T0), ("35000000000002", T0 + 1)]
    assert await store.read_first_seen(1) == [("35000000000002", T0 + 1)]  # the most recent


async def test_duplicate_history_classify_flag_prune(store: IdentityStore) -> None:
    history = synthetic_history()
    await store.write_daily(history[: len(history) // 2])
    await store.write_daily(history[len(history) // 2 :])
    await store.write_daily(history[:3])  # repeats are one row
    for params in (DUP, {**DUP, "period_days": 30}, {**DUP, "min_seen_days": 2}, {**DUP, "daily_avg": 1.0}):
        want = duplicate_mk1(history, today=TODAY, **params)
        assert await store.classify_duplicates(today=TODAY, **params) == want, params
    await store.flag_duplicates(["35000000000010"], T0)
    await store.flag_duplicates(["35000000000010", "35000000000011"], T0 + 1)  # the first time stays
    assert await store.duplicates() == {"35000000000010": T0, "35000000000011": T0 + 1}
    # pruning: days up to TODAY - 3 go; then whole oldest days until at most 6 rows remain
    gone = await store.prune_daily(TODAY - 3, 0)
    assert gone == sum(1 for r in set(history) if r[1] <= TODAY - 3)
    assert await store.classify_duplicates(today=TODAY, **DUP) == duplicate_mk1(
        [r for r in history if r[1] > TODAY - 3], today=TODAY, **DUP
    )
    await store.prune_daily(TODAY - 3, 6)
    left = [r for r in set(history) if r[1] > TODAY - 3]
    assert await store.classify_duplicates(
        today=TODAY + 3, **{**DUP, "threshold": 1, "daily_avg": 0.0, "min_seen_days": 1}
    ) <= {r[0] for r in left}
    assert await store.duplicates() == {"35000000000010": T0, "35000000000011": T0 + 1}  # sticky


async def test_a_second_handle_sees_the_history(store: IdentityStore, second_handle: IdentityStore) -> None:
    if store.backend not in DURABLE:  # type: ignore[attr-defined]
        return  # the memory store: every handle is its own store
    await store.write_daily(synthetic_history())
    await store.flag_duplicates(["35000000000010"], T0)
    await store.write_first_seen([("35000000000001", T0)])
    assert await second_handle.classify_duplicates(today=TODAY, **DUP) == {"35000000000010"}
    assert await second_handle.duplicates() == {"35000000000010": T0}
    assert await second_handle.read_first_seen(5) == [("35000000000001", T0)]


async def test_a_cleared_duplicate_flag_loses_its_history(
    store: IdentityStore, second_handle: IdentityStore
) -> None:
    """``clear_duplicate`` deletes the flag and the IMEI's whole history (only observations after
    the clear count again), and nothing of the other IMEIs; ``daily_history`` reads one IMEI's."""
    history = synthetic_history()
    await store.write_daily(history)
    await store.flag_duplicates(["35000000000010", "35000000000011"], T0)
    mine = sorted({(d, i) for imei, d, i in history if imei == "35000000000010"})
    assert await store.daily_history("35000000000010") == mine
    assert await store.daily_history("35000000000010", limit=2) == mine[:2]
    assert await store.daily_history("35000000000099") == []

    assert await store.clear_duplicate("35000000000010") == (True, len(mine))
    assert await store.duplicates() == {"35000000000011": T0}
    assert await store.daily_history("35000000000010") == []
    others = [r for r in history if r[0] != "35000000000010"]
    assert await store.classify_duplicates(today=TODAY, **DUP) == duplicate_mk1(others, today=TODAY, **DUP)
    assert "35000000000010" not in await store.classify_duplicates(today=TODAY, **DUP)
    assert await store.daily_history("35000000000012") == sorted(
        (d, i) for imei, d, i in set(history) if imei == "35000000000012"
    )
    assert await store.clear_duplicate("35000000000010") == (False, 0)  # nothing left

    # new observations flag it again
    await store.write_daily([(r[0], r[1], r[2] + "-new") for r in history if r[0] == "35000000000010"])
    assert "35000000000010" in await store.classify_duplicates(today=TODAY, **DUP)
    if store.backend in DURABLE:  # type: ignore[attr-defined]
        assert await second_handle.duplicates() == {"35000000000011": T0}
        assert len(await second_handle.daily_history("35000000000010")) == len(mine)


async def test_a_clear_between_classify_and_flag_is_not_undone(store: IdentityStore, tmp_path: Path) -> None:
    """F5: the tracker counts (classify_duplicates), then reads the flags, then flags what is new,
    each awaited on its own; an operator's clear committed in between (another process) must not
    be undone — flag_duplicates flags only an IMEI that still has history."""
    from tests.store.conftest import FACTORIES, SHARED

    dup, kept, never = "35000000000010", "35000000000012", "35000000000099"
    backend = store.backend  # type: ignore[attr-defined]
    await store.write_daily(synthetic_history())
    await store.flag_duplicates([dup], T0 - 5)
    assert dup in await store.classify_duplicates(today=TODAY, **DUP)
    other = await FACTORIES[backend](tmp_path, False) if backend in SHARED else store
    try:
        assert (await other.clear_duplicate(dup))[0] is True  # the operator, between the two
        await store.flag_duplicates([dup, kept, never], T0)  # the tracker's "new" flags
        assert await store.duplicates() == {kept: T0}  # dup stays cleared; never has no history
        assert await other.duplicates() == {kept: T0}
    finally:
        if other is not store:
            await other.close()


async def test_postgres_a_clear_in_flight_wins_over_a_flag(store: IdentityStore, tmp_path: Path) -> None:
    """F5 on PostgreSQL with two connections: a clear whose transaction is open when the flag's
    INSERT runs; the INSERT waits for it and then finds no history."""
    import asyncpg

    if store.backend != "postgres":  # type: ignore[attr-defined]
        pytest.skip("two connections at once: the PostgreSQL store")
    dup = "35000000000010"
    await store.write_daily(synthetic_history())
    await store.flag_duplicates([dup], T0 - 5)
    con = await asyncpg.connect((tmp_path / "postgres.url").read_text())
    try:
        tr = con.transaction()
        await tr.start()  # what clear_duplicate does, held open
        await con.execute("DELETE FROM eir_daily WHERE imei = $1", dup)
        await con.execute("DELETE FROM eir_duplicates WHERE imei = $1", dup)
        flag = asyncio.ensure_future(store.flag_duplicates([dup], T0))
        await asyncio.sleep(0.2)
        await tr.commit()
        await asyncio.wait_for(flag, 10)
    finally:
        await con.close()
    assert dup not in await store.duplicates()


async def test_flags_are_paged_by_the_store_in_imei_order(store: IdentityStore) -> None:
    imeis = [f"350000000001{i:02d}" for i in range(25)]
    await store.write_daily([(i, TODAY, "a") for i in imeis])
    await store.flag_duplicates(imeis[::-1], T0)  # inserted in reverse: the page is by IMEI
    assert await store.duplicates_page(10, 0) == ([(i, T0) for i in imeis[:10]], 25)
    assert await store.duplicates_page(10, 20) == ([(i, T0) for i in imeis[20:]], 25)
    assert await store.duplicates_page(10, 30) == ([], 25)
    assert await store.duplicate_flag(imeis[3]) == T0
    assert await store.duplicate_flag("35000000000099") is None
    await store.clear_duplicate(imeis[0])
    page, total = await store.duplicates_page(2, 0)
    assert (page, total) == ([(imeis[1], T0), (imeis[2], T0)], 24)
    if store.backend == "redis":  # type: ignore[attr-defined]
        # flags written before the index existed (an older version) are indexed on the first page
        r = store.redis  # type: ignore[attr-defined]
        await r.delete(store._k("duplicates", "index"))  # type: ignore[attr-defined]
        assert await store.duplicates_page(1, 23) == ([(imeis[24], T0)], 24)
