"""A delta's removal rows that match nothing on the active lists are found and reported, for every
kind of row (IMEI, IMEISV, range, TAC, pairing, lock), on the memory and the SQLite store."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eir.lists import ParsedList, find_absent_removals, import_parsed, parse_csv, removal_text
from eir.store.base import IdentityStore
from eir.store.memory import MemoryStore
from eir.store.sqlite import SqliteStore

LISTED = (
    "imei,status,imsi\n"
    "35209900176148,black,\n"
    "3520990017615501,black,\n"
    "35691234000000-35691234000999,grey,\n"
    "35691234000100-35691234000199,black,\n"  # a narrower range inside the first one
    "86700000,black,\n"
    "35209900176163,pairing,262011234567890\n"
    "35209900176171,lock,262011234567891\n"
)

DELTA = (
    "imei,status,imsi,op\n"
    # present: each kind once
    "35209900176148,,,remove\n"
    "3520990017615501,,,remove\n"
    "35691234000000-35691234000999,,,remove\n"  # its first IMEI's narrowest match is itself
    "35691234000100-35691234000199,,,remove\n"
    "86700000,,,remove\n"
    "35209900176163,pairing,262011234567890,remove\n"
    "35209900176171,lock,262011234567891,remove\n"
    # absent: same kinds, nothing listed under these keys
    "35209900176189,,,remove\n"
    "3520990017615599,,,remove\n"
    "35691234000000-35691234000500,,,remove\n"  # overlaps listed ranges but is not one of them
    "86700001,,,remove\n"
    "35209900176163,pairing,262011234567899,remove\n"  # the IMEI is paired, but with another IMSI
    "35209900176163,lock,262011234567890,remove\n"  # a pairing row, not a lock row
)

ABSENT = [
    "35209900176189",
    "3520990017615599",
    "35691234000000-35691234000500",
    "86700001",
    "pairing 262011234567899,35209900176163",
    "lock 262011234567890,35209900176163",
]


def parse(text: str) -> ParsedList:
    return parse_csv(io.StringIO(text), kind="auto")


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IdentityStore]:
    s: IdentityStore = (
        MemoryStore("memory://")
        if request.param == "memory"
        else SqliteStore(f"sqlite:///{tmp_path / 'e.db'}")
    )
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_absent_removals_are_found_for_every_kind(store: IdentityStore) -> None:
    await import_parsed(store, parse(LISTED))
    delta = parse(DELTA)
    assert delta.ok and delta.delta, delta.report()
    absent = await find_absent_removals(store, delta.removals)
    assert sorted(removal_text(r) for r in absent) == sorted(ABSENT)
    delta.absent_removals = absent
    assert "13 removals (6 matching nothing on the active lists)" in delta.summary()
    # the import itself removes what was there and leaves the rest
    v = await import_parsed(store, delta)
    assert (v.entries, v.pairings) == (0, 0)


async def test_on_an_empty_store_every_removal_is_absent(store: IdentityStore) -> None:
    delta = parse("imei,status,op\n35209900176148,,remove\n86700000,,remove\n")
    assert [removal_text(r) for r in await find_absent_removals(store, delta.removals)] == [
        "35209900176148",
        "86700000",
    ]


def test_summary_without_a_lookup_says_nothing_about_matches() -> None:
    delta = parse("imei,status,op\n35209900176148,,remove\n")
    assert delta.summary() == "1 row, 0 entries, 1 removal"
