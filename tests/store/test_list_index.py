"""The SQLite store's in-memory list index (eir/store/listindex.py) against its SQL path.

The index lets the store answer "not listed" (and a range's entry) without a statement. Its one
duty is to change nothing: every lookup must equal what the SQL path answers on the same file. The
differential tests below compare a store with the index installed against a second handle on the
same file without one (``index_max_keys=0``, the default), over random lists of exact IMEIs,
IMEISVs, nested ranges and TACs, through overlays (small deltas with removals), full versions,
rollbacks and a version imported by another handle; and they count the statements the indexed
store runs, so that an index that silently fell back to SQL would fail too. Every test runs with
both forms of the exact keys: a set (lists up to SET_MAX_KEYS) and the Bloom filter (above).
"""

from __future__ import annotations

import asyncio
import random
from array import array
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eir.model import Status
from eir.store import listindex
from eir.store.base import ListEntry, Pairing
from eir.store.listindex import BITS_PER_KEY, ListIndex
from eir.store.sqlite import SV_OFFSET, SqliteStore
from tests.store.test_contract import imei, imeisv, rng, tac, wait_until

W, G, B = Status.WHITE, Status.GREY, Status.BLACK
ON = 1_000_000
"""``index_max_keys`` for an indexed store (``eir serve`` sets ``store.index_max_keys``; a store
made without it, as the CLI makes them, has no index)."""
TACS = ["35209900", "35209901", "86012345"]


def _url(tmp: Path, **q: int) -> str:
    query = "&".join(f"{k}={v}" for k, v in q.items())
    return f"sqlite:///{tmp / 'eir.db'}" + (f"?{query}" if query else "")


@pytest.fixture(autouse=True, params=["set", "bitmap"])
def keys_form(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The exact keys' form every test here runs with: a set, or (SET_MAX_KEYS 0) the bitmap."""
    if request.param == "bitmap":
        monkeypatch.setattr(listindex, "SET_MAX_KEYS", 0)
    return str(request.param)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    """(indexed store, the same file through the SQL path only)."""
    a = SqliteStore(_url(tmp_path), str(tmp_path), poll_interval=0.02, keep_versions=10, index_max_keys=ON)
    b = SqliteStore(_url(tmp_path), str(tmp_path), poll_interval=0.02, keep_versions=10)
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def _random_list(rnd: random.Random, n: int) -> list[ListEntry]:
    entries: list[ListEntry] = []
    for _ in range(n):
        t = rnd.choice(TACS)
        key = f"{t}{rnd.randrange(10**6):06d}"
        r = rnd.random()
        if r < 0.6:
            entries.append(imei(key, rnd.choice([W, G, B]), reason=f"r{rnd.randrange(5)}"))
        elif r < 0.8:
            entries.append(imeisv(f"{key}{rnd.randrange(100):02d}", rnd.choice([W, G, B])))
        elif r < 0.95:
            last = int(key) + rnd.randrange(1, 5000)
            entries.append(rng(key, f"{last:014d}", rnd.choice([W, G, B]), imsi="26201"))
        else:
            entries.append(tac(t, rnd.choice([W, G, B])))
    return entries


def _probes(rnd: random.Random, entries: list[ListEntry]) -> list[tuple[str, str | None]]:
    """Every listed key and its neighbours, range bounds ±1, and random IMEIs of the same TACs,
    each without an IMEISV, with a listed one and with an unlisted one."""
    imeis: set[int] = set()
    svs: list[str] = []
    for e in entries:
        if e.kind.value == "imeisv":
            svs.append(e.key)
            base = int(e.key[:14])
        elif e.kind.value == "tac":
            base = int(e.key) * 10**6
            imeis.update((base - 1, base + 10**6 - 1, base + 10**6))
        else:
            base = int(e.key)
        imeis.update((base - 1, base, base + 1))
        if e.last is not None:
            imeis.update((int(e.last) - 1, int(e.last), int(e.last) + 1))
    for _ in range(400):
        imeis.add(int(rnd.choice(TACS)) * 10**6 + rnd.randrange(10**6))
    out: list[tuple[str, str | None]] = []
    for n in sorted(imeis):
        k = f"{n:014d}"
        out.append((k, None))
        out.append((k, f"{k}{rnd.randrange(100):02d}"))
    out.extend((sv[:14], sv) for sv in svs)
    return out


async def _caught_up(b: SqliteStore, a: SqliteStore) -> None:
    """``b`` has seen ``a``'s newest change (its own poll, as a lookup would run it)."""

    async def same() -> bool:
        b._poll()
        return b._version == a._version and b._ref_stamp == a._ref_stamp

    await wait_until(same)


def _count_statements(store: SqliteStore) -> list[str]:
    seen: list[str] = []
    store._conn().set_trace_callback(seen.append)
    return seen


async def _assert_same(
    a: SqliteStore,
    b: SqliteStore,
    probes: list[tuple[str, str | None]],
    asked: list[tuple[str, str | None]] | None = None,
) -> int:
    """Every probe answered alike by both; how many the indexed store answered without a
    statement (its index is installed for the active version first); ``asked`` receives the
    probes it ran a statement for."""
    idx = await a.list_index()
    assert idx is not None and idx.version == a._version == b._version
    statements = _count_statements(a)
    a._next_poll = float("inf")  # no version poll among the statements counted (caught up already)
    from_memory = 0
    for key, sv in probes:
        before = len(statements)
        got, want = a.lookup_inline(key, sv), b.lookup_inline(key, sv)
        assert got == want, (key, sv)
        from_memory += len(statements) == before
        if asked is not None and len(statements) != before:
            asked.append((key, sv))
    a._conn().set_trace_callback(None)
    a._next_poll = 0.0
    return from_memory


@pytest.mark.parametrize("rows_kept", [True, False], ids=["segment-rows", "segment-bounds-only"])
async def test_the_index_answers_as_the_sql_path_over_random_lists(
    pair: tuple[SqliteStore, SqliteStore], rows_kept: bool, monkeypatch: pytest.MonkeyPatch, keys_form: str
) -> None:
    """Without the segments' rows (a list of more than SEGMENT_ROWS_MAX ranges) an IMEI inside a
    range is asked of SQLite, one outside every range still answered from memory. With the set,
    and the rows kept, SQLite is asked of listed keys only (the filter also sends some others)."""
    if not rows_kept:
        monkeypatch.setattr(listindex, "SEGMENT_ROWS_MAX", 0)
    a, b = pair
    rnd = random.Random(13)
    entries = _random_list(rnd, 600)
    await a.import_version(entries, [], source="full")
    await _caught_up(b, a)
    probes = _probes(rnd, entries)
    asked: list[tuple[str, str | None]] = []
    from_memory = await _assert_same(a, b, probes, asked)
    if keys_form == "set" and rows_kept:
        exact = {int(e.key) for e in entries if e.kind.value == "imei"}
        exact |= {SV_OFFSET + int(e.key) for e in entries if e.kind.value == "imeisv"}
        listed = [(k, sv) for k, sv in probes if int(k) in exact or (sv and SV_OFFSET + int(sv) in exact)]
        assert asked == listed
    # most probes are unlisted IMEIs: answered from memory (a listed key, or another key's bit
    # in the bitmap, goes to SQLite); without the rows, only those outside every range (the
    # list's TACs cover most probes)
    assert from_memory > (len(probes) // 2 if rows_kept else 0)


async def test_the_index_follows_overlays_full_versions_and_rollbacks(
    pair: tuple[SqliteStore, SqliteStore],
) -> None:
    a, b = pair
    rnd = random.Random(5)
    entries = _random_list(rnd, 300)
    first = await a.import_version(entries, [], source="full")
    listed = [e for e in entries if e.kind.value in ("imei", "imeisv")]
    for step in range(6):
        # small deltas (overlays): removals of listed keys, new keys, a status change
        gone = rnd.sample(listed, 3)
        new = _random_list(random.Random(step), 4)
        new = [e for e in new if e.kind.value in ("imei", "imeisv")]
        removals: list[ListEntry | Pairing] = list(gone)
        overlay = await a.import_version(new, [], source=f"delta {step}", delta=True, removals=removals)
        listed = [e for e in listed if e not in gone] + new
        await _caught_up(b, a)
        assert await _assert_same(a, b, _probes(rnd, entries + new)) > 0
    # a full version with ranges again, then a rollback to the first
    second = _random_list(random.Random(99), 200)
    await a.import_version(second, [], source="full 2")
    await _caught_up(b, a)
    assert await _assert_same(a, b, _probes(rnd, second + entries)) > 0
    for back in (first.id, overlay.id):  # a full version, then an overlay on it
        await a.rollback(back)
        await _caught_up(b, a)
        assert b._version == back
        assert await _assert_same(a, b, _probes(rnd, entries + second)) > 0


async def test_the_index_answers_with_the_reference_tables(pair: tuple[SqliteStore, SqliteStore]) -> None:
    a, b = pair
    rnd = random.Random(3)
    entries = _random_list(rnd, 200)
    await a.import_version(entries, [], source="full")
    await a.import_reference("tac", [(t, '{"brand": "x"}') for t in TACS[:2]], source="gsma")
    unlisted = "35209900999999"
    await a.import_reference("registration", [(unlisted, "{}")], source="reg")
    await a.import_reference("golden", [("35209901999999", "{}")], source="gold")
    await _caught_up(b, a)
    assert b._ref_loaded == a._ref_loaded
    probes = [*_probes(rnd, entries), (unlisted, None), ("35209901999999", None)]
    assert await _assert_same(a, b, probes) > 0
    got = a.lookup_inline(unlisted)
    assert got.registration is not None and got.device is not None


async def test_a_version_imported_by_another_handle_is_answered_at_once_then_indexed(
    pair: tuple[SqliteStore, SqliteStore],
) -> None:
    """Another process imports: the indexed store never answers from the old version's index —
    the poll that sees the new version drops it before the lookup, the SQL path answers until the
    new one is built."""
    a, b = pair
    await a.import_version([imei("35209900000001", W)], [], source="one")
    old = await a.list_index()
    assert old is not None
    key = "35209900123456"
    assert a.lookup_inline(key).imei is None
    v2 = await b.import_version([imei(key, B, reason="stolen")], [], source="two")

    async def seen() -> bool:
        return a.lookup_inline(key).imei is not None

    await wait_until(seen)
    found = a.lookup_inline(key).imei
    assert found is not None and found.status is B and found.reason == "stolen"
    idx = await a.list_index()
    assert idx is not None and idx.version == v2.id and idx is not old
    assert a.lookup_inline(key).imei == found


async def test_a_list_over_index_max_keys_is_not_indexed_and_answers_alike(tmp_path: Path) -> None:
    a = SqliteStore(_url(tmp_path, index_max_keys=50), str(tmp_path), poll_interval=0.02)
    await a.open()
    try:
        entries = [imei(f"352099000{i:05d}", G) for i in range(51)]
        await a.import_version(entries, [], source="big")
        assert await a.list_index() is None
        assert a.lookup_inline("35209900000007").imei == entries[7]
        assert a.lookup_inline("35209900099999") == a.lookup_inline("35209900099998")
        await a.import_version(entries[:50], [], source="fits")
        idx = await a.list_index()
        assert idx is not None and idx.keys == 50
        # an overlay past the bound (extending the last index would hold 51 keys): none
        await a.import_version([entries[50]], [], source="one more", delta=True)
        assert await a.list_index() is None
        assert a.lookup_inline(entries[50].key).imei == entries[50]
    finally:
        await a.close()


def test_the_bitmap_never_forgets_a_key_and_rejects_most_others() -> None:
    """What makes the index safe (no listed key reads as unlisted) and worth having (most
    unlisted keys do), on the shapes real lists and loads have: consecutive IMEIs (a batch of
    handsets), IMEIs every 120 over a narrow stretch, IMEISV keys; probed by the unlisted IMEIs of
    that stretch in order (a load generator's) and at random. The bound is the theory's for two
    bits a key at 16 bits a key or more, (1 - e^(-2/16))^2 ≈ 1.4 %: hashes that ignore part of the
    key (a first version's second bit took 29k positions for 100k such keys) pass several times more."""
    from eir.store.listindex import _bitmap, _mark

    base = 35209900000000
    keys = [base + i for i in range(20_000)]
    keys += [base + 10**6 + 120 * i for i in range(60_000)]
    keys += [SV_OFFSET + 3520990100000000 + i for i in range(5_000)]
    bits, shift = _bitmap(len(keys))
    assert len(bits) * 8 == 1 << (64 - shift) >= BITS_PER_KEY * len(keys)
    _mark(bits, shift, keys)
    idx = ListIndex(1, 1, len(keys), None, bits, shift, array("q"), array("q"), [])
    assert all(idx.may_list(k) for k in keys)
    rnd = random.Random(1)
    listed = set(keys)
    for probes in (
        range(base + 10**6, base + 10**6 + 200_000),
        [rnd.randrange(base, base + 10**7) for _ in range(100_000)],
        [rnd.randrange(10**13, 10**14) for _ in range(50_000)],
    ):
        others = [k for k in probes if k not in listed]
        false_positive = sum(idx.may_list(k) for k in others) / len(others)
        assert false_positive < 0.014


async def test_eir_serve_indexes_and_a_cli_store_does_not(tmp_path: Path) -> None:
    """``store.index_max_keys`` reaches the list store of ``eir serve`` (serving_options); the
    stores the CLI opens (store_options) build no index: ``eir check`` exits after one look-up and
    its stdout carries the answer only."""
    from eir.config import ConfigError, load_config
    from eir.store import create_store, serving_options, store_options

    path = tmp_path / "eir.yaml"
    path.write_text("store:\n  index_max_keys: 123\n")
    cfg = load_config(path)
    served = create_store(_url(tmp_path), str(tmp_path), **serving_options(cfg.store))
    assert isinstance(served, SqliteStore) and served.index_max_keys == 123
    cli = create_store(_url(tmp_path), str(tmp_path), **store_options(cfg.store))
    assert isinstance(cli, SqliteStore) and cli.index_max_keys == 0
    await cli.open()
    try:
        await cli.import_version([imei("35209900000001", B)], [], source="cli")
        assert cli.lookup_inline("35209900000001").imei is not None
        assert await cli.list_index() is None and cli._index_build is None
    finally:
        await cli.close()
    path.write_text("store:\n  index_max_keys: -1\n")
    with pytest.raises(ConfigError, match="index_max_keys"):
        load_config(path)


async def test_an_import_alone_builds_no_index_the_first_lookup_does(tmp_path: Path) -> None:
    """``eir lists import`` exits after its import: it must not build (or wait for) an index."""
    a = SqliteStore(_url(tmp_path), str(tmp_path), index_max_keys=ON)
    await a.open()
    try:
        await a.import_version([imei("35209900000001", B)], [], source="cli")
        assert a._index_build is None and a._index is None
        assert a.lookup_inline("35209900000001").imei is not None  # the SQL path, meanwhile
        assert a._index_build is not None
        idx = await a.list_index()
        assert idx is not None and idx.version == a._version
    finally:
        await a.close()


async def test_a_set_outgrown_by_overlays_becomes_the_bitmap(
    pair: tuple[SqliteStore, SqliteStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exact keys up to SET_MAX_KEYS are a set, more a bitmap: an overlay that takes a set past
    the bound is indexed afresh (read whole, as the bitmap), and answers alike. (The same under
    both forms' runs: the bound is set here.)"""
    monkeypatch.setattr(listindex, "SET_MAX_KEYS", 40)
    a, b = pair
    entries = [imei(f"352099000{i:05d}", G) for i in range(38)]
    await a.import_version(entries, [], source="full")
    idx = await a.list_index()
    assert idx is not None and idx.exact == frozenset(int(e.key) for e in entries) and not idx.bits
    more = [imei(f"352099010{i:05d}", B) for i in range(5)]
    await a.import_version(more, [], source="delta", delta=True)
    idx = await a.list_index()
    assert idx is not None and idx.exact is None and idx.bits and idx.keys == 43
    await _caught_up(b, a)
    assert await _assert_same(a, b, _probes(random.Random(8), entries + more)) > 0


async def test_an_overlay_extends_the_last_index_instead_of_rebuilding_it(
    pair: tuple[SqliteStore, SqliteStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An admin API change (a small delta: an overlay) costs a copy of the bitmap plus its own
    keys, not a read of the whole list; a full version is read whole again."""
    import eir.store.sqlite as sqlite_store

    calls: list[str] = []
    for name in ("read_index", "extend_index"):
        real = getattr(sqlite_store, name)

        def spy(*args: object, _real: object = real, _name: str = name) -> object:
            calls.append(_name)
            return _real(*args)  # type: ignore[operator]

        monkeypatch.setattr(sqlite_store, name, spy)
    a, b = pair
    rnd = random.Random(21)
    entries = _random_list(rnd, 300)
    await a.import_version(entries, [], source="full")
    await a.list_index()
    assert calls == ["read_index"]
    for step in range(3):
        key = f"3520990{step}123456"
        await a.import_version([imei(key, G)], [], source=f"one {step}", delta=True)
        idx = await a.list_index()
        assert idx is not None and idx.version == a._version and idx.may_list(int(key))
        assert a.lookup_inline(key).imei == imei(key, G)
    assert calls == ["read_index", "extend_index", "extend_index", "extend_index"]
    await _caught_up(b, a)
    assert await _assert_same(a, b, _probes(rnd, entries)) > 0
    await a.import_version(entries[:100], [], source="full again")
    await a.list_index()
    assert calls[-1] == "read_index"


async def test_a_build_overtaken_by_a_newer_version_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version changes while its index is being built: the old build, when it ends, must not
    be installed (it would answer for the wrong list)."""
    import threading

    import eir.store.sqlite as sqlite_store

    release = threading.Event()
    real = sqlite_store.read_index
    held: list[object] = []

    def slow(*args: object) -> object:
        if not held:  # the first build (version 1's) waits; the next one runs at once
            held.append(args)
            release.wait(10)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_store, "read_index", slow)
    a = SqliteStore(_url(tmp_path), str(tmp_path), index_max_keys=ON)
    await a.open()
    try:
        key = "35209900123456"
        await a.import_version([imei("35209900000001", W)], [], source="one")
        assert a.lookup_inline(key).imei is None  # starts the (held) build of version 1
        old = a._index_build
        v2 = await a.import_version([imei(key, B)], [], source="two")
        assert a.lookup_inline(key).imei is not None  # starts version 2's build
        idx = await a.list_index()
        assert idx is not None and idx.version == v2.id
        release.set()  # version 1's build ends now, after version 2's was installed
        assert old is not None
        await asyncio.wait_for(asyncio.shield(old), 10)
        await asyncio.sleep(0)  # (its done-callback runs)
        assert a._index is idx
        assert a.lookup_inline(key).imei == imei(key, B)
    finally:
        release.set()
        await a.close()


async def test_a_reopened_handle_indexes_again_and_a_closed_one_is_an_outage(tmp_path: Path) -> None:
    from eir.store.base import StoreUnavailableError

    a = SqliteStore(_url(tmp_path), str(tmp_path), index_max_keys=ON)
    await a.open()
    await a.import_version([imei("35209900000001", B)], [], source="one")
    assert await a.list_index() is not None
    await a.close()
    with pytest.raises(StoreUnavailableError):
        a.lookup_inline("35209900000002")  # not "not listed": the store is gone
    await a.open()
    try:
        idx = await a.list_index()
        assert idx is not None and idx.version == a._version
        assert a.lookup_inline("35209900000001").imei is not None
    finally:
        await a.close()
