"""The reference-table part of the store contract (every backend): TAC table and registration
list, replaced atomically, answered by the same ``lookup`` as the lists, seen by another handle;
and the tagged reasons external lists keep their metadata in (eir/formats) stored verbatim."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from eir.formats.records import encode
from eir.model import Status
from eir.store.base import REGISTERED, EntryKind, IdentityStore, ListEntry
from tests.store.conftest import FACTORIES, SHARED

IMEI = "35693803564380"
DEVICE = encode("tac", {"brand_name": "Samsung", "model_name": "Galaxy X", "device_type": "Smartphone"})


async def test_no_tables_means_silent_fields(store: IdentityStore) -> None:
    assert await store.reference_tables() == []
    await store.import_version(
        [ListEntry(kind=EntryKind.IMEI, key=IMEI, status=Status.BLACK)], [], source="t"
    )
    lk = await store.lookup(IMEI)
    assert lk.imei is not None
    assert (lk.tac_table, lk.device, lk.registration_list, lk.registration) == (False, None, False, None)
    assert await store.reference("tac", IMEI[:8]) is None


async def test_tables_load_replace_and_unload(store: IdentityStore) -> None:
    v = await store.import_version([], [], source="empty")
    seen: list[int] = []
    await store.watch(seen.append)
    t = await store.import_reference("tac", [(IMEI[:8], DEVICE), ("01234567", "{}")], source="gsma-tac: a")
    assert (t.name, t.rows, t.source) == ("tac", 2, "gsma-tac: a")
    r = await store.import_reference("registration", [(IMEI, '{"make": "S"}')], source="reg")
    assert r.rows == 1
    # answered at once, no new version; this handle's watchers were told (drop cached answers)
    assert seen == [v.id, v.id] and await store.active_version() == v.id
    lk = await store.lookup(IMEI)
    assert lk.tac_table and lk.registration_list
    # the record itself, or REGISTERED from a store that leaves it out of the hot path (SQLite)
    assert lk.device == DEVICE and lk.registration in ('{"make": "S"}', REGISTERED)
    assert await store.reference("registration", IMEI) == '{"make": "S"}'
    assert (lk.imei, lk.range) == (None, None)
    other = await store.lookup("35693804564380")
    assert other.tac_table and other.device is None and other.registration is None
    assert {x.name: x.rows for x in await store.reference_tables()} == {"tac": 2, "registration": 1}
    assert await store.reference("tac", "01234567") == "{}"

    # a second import replaces the whole table
    await store.import_reference("tac", [("99999999", "{}")], source="b")
    assert (await store.lookup(IMEI)).device is None
    assert await store.reference("tac", "99999999") == "{}"
    assert await store.reference("tac", IMEI[:8]) is None

    # empty: unloaded, the rule goes silent
    await store.import_reference("tac", [], source="c")
    lk = await store.lookup(IMEI)
    assert not lk.tac_table and lk.registration_list
    assert [x.name for x in await store.reference_tables()] == ["registration"]


async def test_tagged_reasons_are_kept_verbatim(store: IdentityStore) -> None:
    reason = "dirbs-notifications;block_date=20260131;reasons=A|B, c=d;msisdn=923001234567"
    await store.import_version(
        [ListEntry(kind=EntryKind.IMEI, key=IMEI, status=Status.GREY, imsi="410011234567890", reason=reason)],
        [],
        source="t",
    )
    e = (await store.lookup(IMEI)).imei
    assert e is not None and e.reason == reason and e.imsi == "410011234567890"
    exported = [x async for x in store.export()]
    assert [x.reason for x in exported if isinstance(x, ListEntry)] == [reason]


@pytest.mark.parametrize("backend", sorted(SHARED))
async def test_another_handle_sees_the_tables(backend: str, tmp_path: Path) -> None:
    a = await FACTORIES[backend](tmp_path, True)
    try:
        await a.import_version([], [], source="empty")
        b = await FACTORIES[backend](tmp_path, False)
        try:
            seen: list[int] = []
            await b.watch(seen.append)
            active = await a.active_version()
            assert active is not None
            await a.import_reference("tac", [(IMEI[:8], DEVICE)], source="x")
            # the other handle's watchers hear of it with the same version id (drop cached answers)
            for _ in range(200):
                if seen:
                    break
                await asyncio.sleep(0.02)
            assert seen[-1:] == [active]
            lk = await b.lookup(IMEI)
            assert lk.tac_table and lk.device == DEVICE
            assert [t.name for t in await b.reference_tables()] == ["tac"]
        finally:
            await b.close()
    finally:
        await a.close()


GOLDEN_BLACK = ListEntry(kind=EntryKind.IMEI, key=IMEI, status=Status.BLACK, reason="dirbs-blacklist")


async def _golden(store: IdentityStore) -> None:
    await store.import_version([GOLDEN_BLACK], [], source="t")
    await store.import_reference("golden", [(IMEI, ""), ("35693803564381", "")], source="dirbs-golden: g")


async def test_another_handle_sees_the_golden_table(
    store: IdentityStore, second_handle: IdentityStore
) -> None:
    await _golden(store)
    await asyncio.sleep(0.2)  # SQLite's poll (0.05 s in these tests)
    lk = await second_handle.lookup(IMEI)
    assert lk.golden and lk.imei == GOLDEN_BLACK
    assert not (await second_handle.lookup("35693803564382")).golden


async def test_the_golden_table_marks_its_imeis_beside_the_lists(store: IdentityStore) -> None:
    """``Lookup.golden`` for an IMEI on the golden table, whatever the lists hold for it (the list
    entry is still answered: the policy decides), with or without the other tables; an empty
    import unloads it."""
    black = GOLDEN_BLACK
    await _golden(store)
    for handle in (store,):
        lk = await handle.lookup(IMEI)
        assert lk.golden and lk.imei == black, handle
        assert (await handle.lookup("35693803564381")).golden  # on no list
        assert not (await handle.lookup("35693803564382")).golden
    await store.import_reference("tac", [(IMEI[:8], DEVICE)], source="gsma-tac: a")
    await store.import_reference("registration", [("35693803564382", "")], source="reg")
    lk = await store.lookup("35693803564381")
    assert lk.golden and lk.tac_table and lk.registration is None
    assert not (await store.lookup("35693803564382")).golden
    assert not (await store.lookup("35693803564383")).golden
    assert {x.name: x.rows for x in await store.reference_tables()}["golden"] == 2
    await store.import_reference("golden", [], source="empty")
    assert not (await store.lookup(IMEI)).golden
    assert not (await store.lookup("35693803564381")).golden
