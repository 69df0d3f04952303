"""The identity store CONTRACT: every backend (``store`` fixture params) must pass all of it.

What a backend promises (eir/store/base.py): one ``lookup`` answers exact IMEISV, exact IMEI and the
narrowest range/TAC; IMSI pairings and locks; clone observations within a window; versioned imports
(replace or delta with removals) swapped in atomically; rollback; export that re-imports to the same
lists; ``watch`` callbacks (also for changes made through another handle).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

from eir.model import Status
from eir.store.base import (
    EntryKind,
    IdentityStore,
    ListEntry,
    Pairing,
    PairingKind,
    StoreError,
    VersionNotFoundError,
)

W, G, B = Status.WHITE, Status.GREY, Status.BLACK


def imei(key: str, status: Status = B, **kw: str) -> ListEntry:
    return ListEntry(kind=EntryKind.IMEI, key=key, status=status, **kw)


def imeisv(key: str, status: Status = B, **kw: str) -> ListEntry:
    return ListEntry(kind=EntryKind.IMEISV, key=key, status=status, **kw)


def tac(key: str, status: Status = G, **kw: str) -> ListEntry:
    return ListEntry(kind=EntryKind.TAC, key=key, status=status, **kw)


def rng(first: str, last: str, status: Status = B, **kw: str) -> ListEntry:
    return ListEntry(kind=EntryKind.RANGE, key=first, last=last, status=status, **kw)


def pairing(imsi: str, imei_: str, reason: str | None = None) -> Pairing:
    return Pairing(kind=PairingKind.PAIRING, imsi=imsi, imei=imei_, reason=reason)


def lock(imsi: str, imei_: str) -> Pairing:
    return Pairing(kind=PairingKind.LOCK, imsi=imsi, imei=imei_)


async def wait_until(pred, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Bounded wait for something another handle does on its own schedule (polling)."""
    for _ in range(int(timeout / 0.02)):
        if await pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


# --- empty store ---------------------------------------------------------------------------------


async def test_empty_store_answers_nothing(store: IdentityStore) -> None:
    r = await store.lookup("35209900176148", "3520990017614801")
    assert (r.imeisv, r.imei, r.range) == (None, None, None)
    rules = await store.imsi_rules("262011234567890", "35209900176148")
    assert rules.pairing is None and not rules.locked
    assert await store.versions() == []
    assert await store.active_version() is None
    assert [x async for x in store.export()] == []
    assert await store.pairings() == []


# --- lookups ---------------------------------------------------------------------------------------


async def test_exact_imei_and_imeisv(store: IdentityStore) -> None:
    await store.import_version(
        [
            imei("35209900176148", B, reason="stolen", imsi="262011234567890"),
            imeisv("3520990017614823", G),
            imei("01234567890123", W),
        ],
        [],
        source="t",
    )
    r = await store.lookup("35209900176148")
    assert r.imei == imei("35209900176148", B, reason="stolen", imsi="262011234567890")
    assert r.imeisv is None and r.range is None
    r = await store.lookup("35209900176148", "3520990017614823")
    assert r.imeisv == imeisv("3520990017614823", G)
    assert r.imei is not None and r.imei.status is B
    r = await store.lookup("35209900176148", "3520990017614899")
    assert r.imeisv is None
    # leading zeros survive (TAC 01…)
    r = await store.lookup("01234567890123")
    assert r.imei is not None and r.imei.key == "01234567890123" and r.imei.status is W
    assert (await store.lookup("35209900176149")).imei is None


async def test_range_and_tac_bounds(store: IdentityStore) -> None:
    await store.import_version(
        [tac("35209900", G), rng("49015420323740", "49015420323759", B), tac("01000000", W)], [], source="t"
    )
    r = await store.lookup("35209900000000")
    assert r.range == tac("35209900", G)
    assert (await store.lookup("35209900999999")).range == tac("35209900", G)
    assert (await store.lookup("35209901000000")).range is None
    assert (await store.lookup("35209899999999")).range is None
    assert (await store.lookup("49015420323740")).range == rng("49015420323740", "49015420323759", B)
    assert (await store.lookup("49015420323759")).range == rng("49015420323740", "49015420323759", B)
    assert (await store.lookup("49015420323760")).range is None
    assert (await store.lookup("49015420323739")).range is None
    assert (await store.lookup("01000000123456")).range == tac("01000000", W)


async def test_longest_match_is_the_narrowest_range(store: IdentityStore) -> None:
    await store.import_version(
        [
            tac("35209900", G),
            rng("35209900100000", "35209900199999", B),  # inside the TAC
            rng("35209900150000", "35209900150099", W),  # inside that
            rng("35209900190000", "35209900290000", W),  # overlaps the black range's end, span 100001
        ],
        [],
        source="t",
    )
    assert (await store.lookup("35209900000001")).range.status is G  # type: ignore[union-attr]
    assert (await store.lookup("35209900100000")).range.status is B  # type: ignore[union-attr]
    assert (await store.lookup("35209900150050")).range.status is W  # type: ignore[union-attr]
    assert (await store.lookup("35209900150100")).range.status is B  # type: ignore[union-attr]
    # overlap: black span 100000 < white span 100001 → black
    assert (await store.lookup("35209900195000")).range.status is B  # type: ignore[union-attr]
    # past the black range: the overlapping white (narrower than the TAC)
    assert (await store.lookup("35209900250000")).range.status is W  # type: ignore[union-attr]
    # beyond the TAC, still in the white range
    assert (await store.lookup("35209901000000")).range is None
    assert (await store.lookup("35209900290000")).range.status is W  # type: ignore[union-attr]


async def test_equal_spans_prefer_the_lower_first(store: IdentityStore) -> None:
    await store.import_version(
        [rng("10000000000010", "10000000000019", B), rng("10000000000005", "10000000000014", W)],
        [],
        source="t",
    )
    assert (await store.lookup("10000000000012")).range.status is W  # type: ignore[union-attr]
    assert (await store.lookup("10000000000016")).range.status is B  # type: ignore[union-attr]


async def test_lookup_answers_all_three_at_once(store: IdentityStore) -> None:
    await store.import_version(
        [imeisv("3520990017614801", W), imei("35209900176148", G), tac("35209900", B)], [], source="t"
    )
    r = await store.lookup("35209900176148", "3520990017614801")
    assert (r.imeisv.status, r.imei.status, r.range.status) == (W, G, B)  # type: ignore[union-attr]


async def test_random_ranges_match_brute_force(store: IdentityStore) -> None:
    rnd = random.Random(7)
    base = 35_000_000_000_000
    entries: dict[tuple[int, int], Status] = {}
    for _ in range(150):
        f = base + rnd.randrange(0, 5000)
        entries[(f, f + rnd.choice([0, 1, 5, 30, 200, 1000, 4000]))] = rnd.choice([W, G, B])
    await store.import_version(
        [rng(str(f), str(last), st) for (f, last), st in entries.items()], [], source="random"
    )
    for _ in range(400):
        q = base + rnd.randrange(-10, 9100)
        containing = [(last - f, f, st) for (f, last), st in entries.items() if f <= q <= last]
        got = (await store.lookup(str(q))).range
        if not containing:
            assert got is None, q
        else:
            _span, f, st = min(containing, key=lambda t: (t[0], t[1]))
            assert got is not None and (int(got.key), got.status) == (f, st), q


# --- pairings and locks -----------------------------------------------------------------------------


async def test_pairings_and_locks(store: IdentityStore) -> None:
    await store.import_version(
        [],
        [
            pairing("262011234567890", "35209900176148", "exception 42"),
            lock("001010000000001", "35209900176148"),
            lock("001010000000001", "35209900176155"),
        ],
        source="t",
    )
    r = await store.imsi_rules("262011234567890", "35209900176148")
    assert r.pairing == pairing("262011234567890", "35209900176148", "exception 42")
    assert not r.locked
    r = await store.imsi_rules("262011234567890", "35209900176155")
    assert r.pairing is None and not r.locked
    r = await store.imsi_rules("001010000000001", "35209900176155")
    assert r.locked and r.lock_allows and r.pairing is None
    r = await store.imsi_rules("001010000000001", "35209900000000")
    assert r.locked and not r.lock_allows
    r = await store.imsi_rules("999999999999999", "35209900176148")
    assert r.pairing is None and not r.locked and not r.lock_allows
    assert sorted((p.kind, p.imsi, p.imei) for p in await store.pairings()) == sorted(
        [
            (PairingKind.PAIRING, "262011234567890", "35209900176148"),
            (PairingKind.LOCK, "001010000000001", "35209900176148"),
            (PairingKind.LOCK, "001010000000001", "35209900176155"),
        ]
    )


# --- observations -------------------------------------------------------------------------------------


async def test_sightings_upsert_newest_wins(store: IdentityStore) -> None:
    t = 1_000_000.0
    a, b = "35209900176148", "35209900176155"
    await store.write_sightings(
        [(a, "i", "262010000000001", t), (a, "o", "mme1", t), (b, "i", "262010000000009", t + 3)]
    )
    # the same key again, older and newer, and twice in one batch: one row, the newest time
    await store.write_sightings([(a, "i", "262010000000001", t - 50), (a, "i", "262010000000002", t + 2)])
    await store.write_sightings([(a, "i", "262010000000002", t + 4), (a, "i", "262010000000002", t + 3)])
    rows = await store.read_sightings(t - 100)
    assert sorted(rows) == sorted(
        [
            (a, "i", "262010000000001", t),
            (a, "o", "mme1", t),
            (a, "i", "262010000000002", t + 4),
            (b, "i", "262010000000009", t + 3),
        ]
    )
    assert [r[3] for r in rows] == sorted((r[3] for r in rows), reverse=True), "newest first"


async def test_sightings_values_and_times_round_trip_exactly(store: IdentityStore) -> None:
    """What the wire sent comes back unchanged: an origin with quotes, a backslash, a bar, spaces, a
    newline and non-ASCII letters, and times at full float precision (the PostgreSQL batch travels
    as one JSON text, the Redis one as one string of rows); a batch may be any sequence."""
    t = 1_796_152_417.652501
    a = "35209900176148"
    odd = 'mme|1 "q" \\ x\nÿ-é-\u4e2d'
    rows = ((a, "o", odd, t), (a, "i", "262010000000001", t + 1e-6), (a, "o", "mme2", t + 0.1))
    await store.write_sightings(rows, writer="w1")
    assert await store.read_sightings(t - 1) == [
        (a, "o", "mme2", t + 0.1),
        (a, "i", "262010000000001", t + 1e-6),
        (a, "o", odd, t),
    ]
    assert await store.read_sightings(t - 1, imei=a, exclude_writer="w2", limit=1) == [
        (a, "o", "mme2", t + 0.1)
    ]


async def test_sightings_keep_the_interface_kind_of_an_imsi(store: IdentityStore) -> None:
    """An IMSI's kind names the interface it came on (eir/sightings.py: S13 e, MAP g, N5g n; i
    unknown): each comes back as written, and the same IMSI on two interfaces is two rows (the
    observations dump joins their RAT codes; the tracker's merge counts the IMSI once)."""
    t = 1_796_152_417.5
    a = "35209900176148"
    rows = [(a, k, "262010000000001", t + n) for n, k in enumerate("iegn")]
    await store.write_sightings(rows, writer="w1")
    assert await store.read_sightings(t - 1) == rows[::-1]
    assert await store.read_sightings(t - 1, imei=a, exclude_writer="w2") == rows[::-1]


async def test_sightings_a_large_batch_arrives_whole(store: IdentityStore) -> None:
    """A batch of several statements' worth of rows (SQLite writes 500 to an INSERT) and an odd
    remainder: every row stored once, with its own time."""
    t = 2_000_000.0
    rows = [(f"{35209900000000 + i}", "i", f"26201{i:010d}", t + i / 8) for i in range(1234)]
    await store.write_sightings(rows, writer="w1")
    back = await store.read_sightings(t)
    assert len(back) == 1234
    assert sorted(back) == sorted(rows)


async def test_sightings_small_batches_of_every_length_arrive_whole(store: IdentityStore) -> None:
    """The write-behind's small batches (a low rate flushes a few rows at a time; SQLite splits
    them into statements of powers of two): every length, every row once."""
    t = 2_000_000.0
    rows = [(f"{35209900000000 + i}", "i", f"26201{i:010d}", t + i / 8) for i in range(sum(range(1, 34)))]
    at = 0
    for n in range(1, 34):
        await store.write_sightings(rows[at : at + n], writer="w1")
        at += n
    back = await store.read_sightings(t)
    assert sorted(back) == sorted(rows)


async def test_sightings_read_by_time_imei_and_limit(store: IdentityStore) -> None:
    t = 2_000_000.0
    a, b = "35209900176148", "35209900176155"
    await store.write_sightings([(a, "i", f"26201000000000{i}", t + i) for i in range(5)])
    await store.write_sightings([(b, "o", "msc.lab", t + 10)])
    assert [r[3] for r in await store.read_sightings(t + 3)] == [t + 10, t + 4, t + 3]
    assert await store.read_sightings(t + 3, imei=a) == [
        (a, "i", "262010000000004", t + 4),
        (a, "i", "262010000000003", t + 3),
    ]
    assert await store.read_sightings(t, imei=b) == [(b, "o", "msc.lab", t + 10)]
    assert await store.read_sightings(t, limit=2) == [
        (b, "o", "msc.lab", t + 10),
        (a, "i", "262010000000004", t + 4),
    ]
    assert await store.read_sightings(t + 11) == []


async def test_sightings_pruned_before_a_time(store: IdentityStore) -> None:
    t = 3_000_000.0
    a = "35209900176148"
    await store.write_sightings([(a, "i", "262010000000001", t), (a, "i", "262010000000002", t + 10)])
    await store.write_sightings([(a, "o", "mme1", t + 5)])
    await store.prune_sightings(t + 5)
    assert await store.read_sightings(0.0) == [(a, "i", "262010000000002", t + 10), (a, "o", "mme1", t + 5)]
    assert await store.read_sightings(0.0, imei=a) == [
        (a, "i", "262010000000002", t + 10),
        (a, "o", "mme1", t + 5),
    ]
    await store.prune_sightings(t + 100)
    assert await store.read_sightings(0.0) == []
    assert await store.read_sightings(0.0, imei=a) == []


async def test_sightings_read_without_a_writers_own_rows(store: IdentityStore) -> None:
    """An instance sharing the store reads what the others wrote, not its own rows back; a row
    another writer touched last is theirs; without ``exclude_writer`` every row is read."""
    t = 4_000_000.0
    a, b = "35209900176148", "35209900176155"
    await store.write_sightings([(a, "i", "262010000000001", t), (b, "i", "262010000000002", t)], writer="w1")
    await store.write_sightings([(a, "i", "262010000000003", t + 1)], writer="w2")
    await store.write_sightings([(b, "i", "262010000000002", t + 2)], writer="w2")  # now w2's
    await store.write_sightings([(a, "i", "262010000000001", t - 9)], writer="w1")  # older: no change
    await store.write_sightings([(a, "o", "mme", t + 3)])  # no writer named
    assert await store.read_sightings(t - 100, exclude_writer="w1") == [
        (a, "o", "mme", t + 3),
        (b, "i", "262010000000002", t + 2),
        (a, "i", "262010000000003", t + 1),
    ]
    rows = await store.read_sightings(t - 100, exclude_writer="w2")
    older_copy = (b, "i", "262010000000002", t)  # w1's, which w2 wrote again later
    assert [r for r in rows if r != older_copy] == [(a, "o", "mme", t + 3), (a, "i", "262010000000001", t)]
    assert len(await store.read_sightings(t - 100)) == 4
    assert await store.read_sightings(t - 100, exclude_writer="w3", limit=1) == [(a, "o", "mme", t + 3)]


async def test_sightings_keep_every_kind_and_a_quoted_writer_name(store: IdentityStore) -> None:
    """Every kind a tracker writes comes back as written, and a quote in a writer id is neither an
    error nor a way into a statement (SQLite writes the id as a literal)."""
    t = 4_500_000.0
    a, b = "35209900176148", "35209900176155"
    odd = "w'); DROP TABLE sightings; --"
    kinds = [("i", "262010000000001"), ("o", "mme1.lab"), ("e", "262010000000002")]
    kinds += [("g", "262010000000003 491700000001"), ("n", "262010000000004")]
    rows = [(a, k, v, t + i) for i, (k, v) in enumerate(kinds)] + [(b, "c", "", t + 9)]
    await store.write_sightings(rows, writer=odd)
    assert await store.read_sightings(t - 1, exclude_writer="w1") == rows[::-1]
    assert await store.read_sightings(t - 1, exclude_writer=odd) == []
    assert await store.count_sightings() == len(rows)


async def test_sightings_cleared_for_one_imei(store: IdentityStore) -> None:
    """An operator's clear deletes one IMEI's rows, from every writer, by time and by IMEI."""
    t = 5_000_000.0
    a, b = "35209900176148", "35209900176155"
    await store.write_sightings([(a, "i", "262010000000001", t), (b, "i", "262010000000009", t)], writer="w1")
    await store.write_sightings([(a, "i", "262010000000002", t + 1), (a, "o", "mme", t + 1)], writer="w2")
    assert await store.clear_sightings(a) >= 2
    assert await store.read_sightings(0.0) == [(b, "i", "262010000000009", t)]
    assert await store.read_sightings(0.0, imei=a) == []
    assert await store.clear_sightings(a) == 0
    # a clear row (kind c) is a row like the others
    await store.write_sightings([(a, "c", "", t + 2)], writer="w1")
    assert await store.read_sightings(t + 1, imei=a) == [(a, "c", "", t + 2)]


async def test_sightings_counted_and_the_oldest_evicted(store: IdentityStore) -> None:
    """The storage cap: count the rows, evict the oldest down to a number (over all writers)."""
    t = 6_000_000.0
    rows = [(f"352099001761{i:02d}", "i", f"2620100000000{i:02d}", t + i) for i in range(30)]
    # in time order, by batches, as write-behind does it
    await store.write_sightings(rows[0:10], writer="w1")
    await store.write_sightings(rows[10:20], writer="w2")
    await store.write_sightings(rows[20:30], writer="w1")
    assert await store.count_sightings() == 30
    assert await store.evict_sightings(30) == 0
    gone = await store.evict_sightings(10)
    assert 20 <= gone <= 21 and await store.count_sightings() == 30 - gone
    left = await store.read_sightings(0.0)
    assert {r[3] for r in left} == {t + i for i in range(gone, 30)}, "the oldest went"
    assert await store.read_sightings(0.0, imei=rows[0][0]) == [], "by IMEI too"
    assert await store.read_sightings(0.0, imei=rows[29][0]) == [rows[29]]


# --- imports -----------------------------------------------------------------------------------------


async def test_full_import_replaces_everything(store: IdentityStore) -> None:
    v1 = await store.import_version(
        [imei("35209900176148", B), tac("35209900", G)],
        [pairing("262011234567890", "35209900176148")],
        source="one",
    )
    v2 = await store.import_version([imei("35209900176155", W)], [], source="two")
    assert v2.id > v1.id and v2.active and v2.entries == 1 and v2.pairings == 0 and v2.source == "two"
    assert (await store.lookup("35209900176148")).imei is None
    assert (await store.lookup("35209900176148")).range is None
    assert (await store.lookup("35209900176155")).imei.status is W  # type: ignore[union-attr]
    assert (await store.imsi_rules("262011234567890", "35209900176148")).pairing is None


async def test_duplicates_last_one_wins(store: IdentityStore) -> None:
    await store.import_version([imei("35209900176148", B), imei("35209900176148", W)], [], source="t")
    assert (await store.lookup("35209900176148")).imei.status is W  # type: ignore[union-attr]
    assert (await store.versions())[0].entries == 1


async def test_delta_adds_replaces_and_removes(store: IdentityStore) -> None:
    await store.import_version(
        [
            imei("35209900176148", B),
            imei("35209900176155", G),
            tac("35209900", G),
            rng("49015420323740", "49015420323759", B),
        ],
        [pairing("262011234567890", "35209900176148"), lock("262019999999999", "35209900176148")],
        source="full",
    )
    v = await store.import_version(
        [imei("35209900176155", W), imei("35209900176163", B), tac("35209900", B)],
        [pairing("262011234567891", "35209900176148")],
        source="delta",
        delta=True,
        removals=[
            imei("35209900176148", W),  # status does not matter for a removal
            rng("49015420323740", "49015420323759", W),
            lock("262019999999999", "35209900176148"),
        ],
    )
    assert v.entries == 3 and v.pairings == 2
    assert (await store.lookup("35209900176148")).imei is None
    assert (await store.lookup("35209900176155")).imei.status is W  # type: ignore[union-attr]
    assert (await store.lookup("35209900176163")).imei.status is B  # type: ignore[union-attr]
    assert (await store.lookup("35209900000000")).range.status is B  # type: ignore[union-attr]
    assert (await store.lookup("49015420323745")).range is None
    assert (await store.imsi_rules("262011234567890", "35209900176148")).pairing is not None
    assert (await store.imsi_rules("262011234567891", "35209900176148")).pairing is not None
    assert not (await store.imsi_rules("262019999999999", "35209900000000")).locked


async def test_delta_removal_then_add_of_the_same_key_keeps_it(store: IdentityStore) -> None:
    await store.import_version([imei("35209900176148", B)], [], source="full")
    await store.import_version(
        [imei("35209900176148", G)], [], source="d", delta=True, removals=[imei("35209900176148")]
    )
    assert (await store.lookup("35209900176148")).imei.status is G  # type: ignore[union-attr]


async def test_delta_on_an_empty_store(store: IdentityStore) -> None:
    await store.import_version(
        [imei("35209900176148", B)], [], source="d", delta=True, removals=[imei("35209900176155")]
    )
    assert (await store.lookup("35209900176148")).imei.status is B  # type: ignore[union-attr]


def _failing(n: int) -> Iterator[ListEntry]:
    for i in range(n):
        yield imei(f"{35209900000000 + i}", W)
    raise RuntimeError("source broke midway")


@pytest.mark.parametrize("delta", [False, True])
async def test_failed_import_leaves_previous_version(store: IdentityStore, delta: bool) -> None:
    v1 = await store.import_version(
        [imei("35209900176148", B), tac("35209900", G)],
        [pairing("262011234567890", "35209900176148")],
        source="good",
    )
    with pytest.raises(RuntimeError, match="midway"):
        await store.import_version(_failing(5000), [], source="bad", delta=delta)
    assert [v.id for v in await store.versions()] == [v1.id]
    assert await store.active_version() == v1.id
    assert (await store.lookup("35209900176148")).imei.status is B  # type: ignore[union-attr]
    assert (await store.lookup("35209900000001")).imei is None
    assert (await store.imsi_rules("262011234567890", "35209900176148")).pairing is not None
    # an invalid row is a StoreError, same guarantee
    with pytest.raises(StoreError):
        await store.import_version([imei("35209900000001", W), imei("123", B)], [], source="bad2")
    with pytest.raises(StoreError):
        await store.import_version([rng("35209900000009", "35209900000001", B)], [], source="bad3")
    with pytest.raises(StoreError):
        await store.import_version([], [pairing("26201", "1234")], source="bad4")
    assert await store.active_version() == v1.id
    assert (await store.lookup("35209900000001")).imei is None
    # and the next good import works
    v2 = await store.import_version([imei("35209900000001", W)], [], source="good2")
    assert await store.active_version() == v2.id


# --- versions ------------------------------------------------------------------------------------------


async def test_versions_and_rollback(store: IdentityStore) -> None:
    v1 = await store.import_version([imei("35209900176148", B)], [], source="one")
    v2 = await store.import_version([imei("35209900176148", W)], [], source="two")
    vs = await store.versions()
    assert [v.id for v in vs] == [v2.id, v1.id]
    assert [v.active for v in vs] == [True, False]
    assert vs[1].source == "one" and vs[1].entries == 1 and vs[1].created > 0
    rb = await store.rollback(v1.id)
    assert rb.id == v1.id and rb.active
    assert await store.active_version() == v1.id
    assert (await store.lookup("35209900176148")).imei.status is B  # type: ignore[union-attr]
    assert [v.active for v in await store.versions()] == [False, True]
    with pytest.raises(VersionNotFoundError):
        await store.rollback(9999)
    await store.rollback(v2.id)
    assert (await store.lookup("35209900176148")).imei.status is W  # type: ignore[union-attr]


async def test_old_versions_are_pruned_and_delta_builds_on_the_active(store: IdentityStore) -> None:
    ids = [
        (await store.import_version([imei(f"352099000000{i:02d}", B)], [], source=f"v{i}")).id
        for i in range(8)
    ]
    kept = [v.id for v in await store.versions()]
    assert 1 < len(kept) < 8 and kept == sorted(kept, reverse=True) and kept[0] == ids[-1]
    oldest = kept[-1]
    n = ids.index(oldest)
    await store.rollback(oldest)
    v = await store.import_version([imei("35209900176155", G)], [], source="d", delta=True)
    assert v.entries == 2
    assert (await store.lookup(f"352099000000{n:02d}")).imei is not None
    assert (await store.lookup(f"352099000000{n + 1:02d}")).imei is None


# --- export --------------------------------------------------------------------------------------------


async def test_export_round_trip(store: IdentityStore) -> None:
    entries = [
        imei("35209900176148", B, reason="stolen, reported", imsi="262011234567890"),
        imei("01234567890123", W),
        imeisv("3520990017614823", G),
        tac("35209900", G),
        tac("01000000", W),
        rng("49015420323740", "49015420323759", B, reason="batch"),
    ]
    pairs = [pairing("262011234567890", "35209900176148", "ok"), lock("001010000000001", "01234567890123")]
    await store.import_version(entries, pairs, source="one")
    out = [x async for x in store.export()]
    got_e = [x for x in out if isinstance(x, ListEntry)]
    got_p = [x for x in out if isinstance(x, Pairing)]
    key = lambda e: (e.kind, e.key, e.last or "")  # noqa: E731
    assert sorted(got_e, key=key) == sorted(entries, key=key)
    assert sorted(got_p, key=lambda p: (p.kind, p.imsi)) == sorted(pairs, key=lambda p: (p.kind, p.imsi))
    await store.import_version([], [], source="empty")
    await store.import_version(got_e, got_p, source="re-import")
    again = [x async for x in store.export()]
    assert sorted(map(repr, again)) == sorted(map(repr, out))


# --- watch ---------------------------------------------------------------------------------------------


async def test_watch_reports_imports_and_rollbacks(store: IdentityStore) -> None:
    seen: list[int] = []
    await store.watch(seen.append)
    v1 = await store.import_version([imei("35209900176148", B)], [], source="one")
    v2 = await store.import_version([imei("35209900176148", W)], [], source="two")

    async def saw(x: int) -> bool:
        return x in seen

    await wait_until(lambda: saw(v2.id))
    await store.rollback(v1.id)
    await wait_until(lambda: saw(v1.id))
    assert seen[-1] == v1.id


async def test_another_handle_sees_changes(store: IdentityStore, second_handle: IdentityStore) -> None:
    seen: list[int] = []
    await second_handle.watch(seen.append)
    v1 = await store.import_version(
        [imei("35209900176148", B)], [pairing("262011234567890", "35209900176148")], source="one"
    )

    async def sees_black() -> bool:
        r = (await second_handle.lookup("35209900176148")).imei
        return r is not None and r.status is B

    await wait_until(sees_black)
    assert (await second_handle.imsi_rules("262011234567890", "35209900176148")).pairing is not None

    async def notified() -> bool:
        return v1.id in seen

    await wait_until(notified)
    v2 = await store.import_version([imei("35209900176148", W)], [], source="two")

    async def notified2() -> bool:
        return v2.id in seen

    await wait_until(notified2)
    assert (await second_handle.lookup("35209900176148")).imei.status is W  # type: ignore[union-attr]
    assert await second_handle.active_version() == v2.id
    # sightings are shared too
    await store.write_sightings([("35209900176148", "i", "262010000000001", 100.0)])
    await second_handle.write_sightings([("35209900176148", "o", "b", 101.0)])
    assert await second_handle.read_sightings(50.0) == [
        ("35209900176148", "o", "b", 101.0),
        ("35209900176148", "i", "262010000000001", 100.0),
    ]
