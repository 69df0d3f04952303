"""eir/sightings.py: clone sightings counted in memory, written behind in batches, bounded."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eir.sightings import SightingTracker, _inside, _weighed
from eir.store.base import Sighting, Sightings, StoreUnavailableError
from eir.store.memory import MemoryStore

IMEI, OTHER = "35209900176148", "35209900176155"
IMSI = [f"26201000000000{i}" for i in range(10)]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(MemoryStore):
    """The memory store, counting batches; ``fail`` makes every batch fail as an outage would."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.fail = False

    async def write_sightings(self, rows: Sequence[Sighting], *, writer: str = "") -> None:
        if self.fail:
            raise StoreUnavailableError("down")
        self.batches.append(len(rows))
        await super().write_sightings(rows, writer=writer)


async def tracker(
    store: MemoryStore | None = None, **kw: object
) -> tuple[SightingTracker, CountingStore, Clock]:
    s = store if isinstance(store, CountingStore) else CountingStore()
    await s.open()
    clock = Clock()
    kw.setdefault("flush_interval", 3600.0)  # tests flush by hand
    t = SightingTracker(s, 60.0, share_interval=None, clock=clock, **kw)  # type: ignore[arg-type]
    await t.start()
    return t, s, clock


async def test_counts_distinct_values_inside_the_window() -> None:
    t, _s, c = await tracker()
    try:
        now = c.now
        assert (t.observe(IMEI, IMSI[1], "mme1", now).distinct_imsis, 1) == (1, 1)
        s = t.observe(IMEI, IMSI[1], "mme1", now + 1)
        assert (s.distinct_imsis, s.distinct_origins) == (1, 1)
        s = t.observe(IMEI, IMSI[2], "mme2", now + 2)
        assert (s.distinct_imsis, s.distinct_origins) == (2, 2)
        s = t.observe(IMEI, IMSI[3], None, now + 3)
        assert (s.distinct_imsis, s.distinct_origins) == (3, 2)
        s = t.observe(OTHER, IMSI[9], "mme1", now + 3)  # another IMEI is counted apart
        assert (s.distinct_imsis, s.distinct_origins) == (1, 1)
        # 61.5 s after IMSI 1 (last seen at +1): IMSIs 2, 3 and the new one are inside the window
        s = t.observe(IMEI, IMSI[4], "mme2", now + 61.5)
        assert (s.distinct_imsis, s.distinct_origins) == (3, 1)
        s = t.observe(IMEI, IMSI[1], "mme1", now + 1000)
        assert (s.distinct_imsis, s.distinct_origins) == (1, 1)
    finally:
        await t.close()


async def test_written_behind_in_batches_and_not_twice_when_seen_again_at_once() -> None:
    t, s, c = await tracker()
    try:
        for i in range(5):
            t.observe(IMEI, IMSI[i], None, c.now)
            t.observe(IMEI, IMSI[i], None, c.now + 0.1)  # again within min(1 s, window/100): no write
        assert await s.read_sightings(0.0) == [], "nothing is written on the hot path"
        await t.flush()
        assert s.batches == [5]
        assert sorted(await s.read_sightings(0.0)) == sorted((IMEI, "i", IMSI[i], c.now) for i in range(5))
        t.observe(IMEI, IMSI[0], None, c.now + 5)  # seen again later: the newer time is written
        await t.flush()
        assert (IMEI, "i", IMSI[0], c.now + 5) in await s.read_sightings(0.0)
        assert t.written == 6 and t.dropped == 0
    finally:
        await t.close()


async def test_a_batch_is_sent_as_soon_as_batch_size_rows_wait() -> None:
    import asyncio

    t, s, c = await tracker(batch_size=10)
    try:
        for i in range(10):
            t.observe(f"{35209900000000 + i}", IMSI[0], None, c.now)
        for _ in range(100):
            if s.batches:
                break
            await asyncio.sleep(0.01)
        assert s.batches == [10], "the writer woke up before its interval"
    finally:
        await t.close()


async def test_a_queue_longer_than_a_batch_goes_in_batch_size_pieces_in_order() -> None:
    """The whole queue is taken at once when it fits a batch, else batch_size rows at a time,
    oldest first; nothing lost, nothing written twice."""
    t, s, c = await tracker(batch_size=3)
    try:
        imeis = [f"{35209900000000 + i}" for i in range(7)]
        for i, imei in enumerate(imeis):
            t.observe(imei, IMSI[i], None, c.now + i)
        await t.flush()
        assert sorted(s.batches) == [1, 3, 3]
        assert t.written == 7 and t.dropped == 0 and t.stats()["pending"] == 0
        assert [r[0] for r in await s.read_sightings(0.0)] == imeis[::-1], "newest first"
    finally:
        await t.close()


async def test_the_oldest_unwritten_are_dropped_and_counted_when_the_queue_is_full() -> None:
    t, s, c = await tracker(max_pending=3, batch_size=100)
    try:
        for i in range(5):
            assert t.observe(f"{35209900000000 + i}", IMSI[i], None, c.now + i).distinct_imsis == 1
        assert t.dropped == 2
        await t.flush()
        assert sorted(r[0] for r in await s.read_sightings(0.0)) == [
            f"{35209900000000 + i}" for i in (2, 3, 4)
        ]
    finally:
        await t.close()


async def test_close_ends_the_write_behind_woken_by_a_full_batch() -> None:
    """A full batch wakes the write-behind just before close() cancels it: the cancellation is
    not lost (Python 3.11's wait_for returned the event's result instead, and close() waited on
    the write-behind for good: a shutdown that never ended)."""
    t, s, c = await tracker(batch_size=3)
    await asyncio.sleep(0)  # the write-behind waits for its wake-up
    for i in range(3):
        t.observe(f"{35209900000000 + i}", IMSI[i], None, c.now)
    closing = asyncio.ensure_future(t.close())
    done, _ = await asyncio.wait({closing}, timeout=5.0)
    assert done == {closing}, "close() did not end"
    assert sum(s.batches) == 3 and not t._tasks


class SlowStore(CountingStore):
    """A store whose writes take ``delay`` seconds (a PostgreSQL COPY, a Redis script in flight);
    ``writing`` is set while one is under way."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.writing = asyncio.Event()

    async def write_sightings(self, rows: Sequence[Sighting], *, writer: str = "") -> None:
        self.writing.set()
        await asyncio.sleep(self.delay)
        await super().write_sightings(rows, writer=writer)


async def test_close_lets_the_batch_being_written_finish() -> None:
    """close() during a write: the batch in flight is written, then the rest (cancelled at once,
    the write was abandoned and its rows lost, uncounted)."""
    store = SlowStore(0.3)
    t, s, c = await tracker(store, batch_size=3)
    for i in range(5):
        t.observe(f"{35209900000000 + i}", IMSI[i], None, c.now)
    await asyncio.wait_for(store.writing.wait(), 5.0)
    await t.close()
    assert s.batches == [3, 2] and t.dropped == 0
    assert len(await s.read_sightings(0.0)) == 5


async def test_close_gives_up_on_a_hung_write_and_counts_its_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    import eir.sightings

    monkeypatch.setattr(eir.sightings, "CLOSE_WAIT", 0.1)
    store = SlowStore(3600.0)
    t, _s, c = await tracker(store, batch_size=3)
    for i in range(3):
        t.observe(f"{35209900000000 + i}", IMSI[i], None, c.now)
    await asyncio.wait_for(store.writing.wait(), 5.0)
    await asyncio.wait_for(t.close(), 5.0)
    assert t.dropped == 3 and not t._pending


async def test_a_failing_store_costs_the_batch_never_an_answer() -> None:
    t, s, c = await tracker()
    try:
        s.fail = True
        for i in range(4):
            assert t.observe(IMEI, IMSI[i], None, c.now).distinct_imsis == i + 1
        await t.flush()
        assert t.dropped == 4 and t.written == 0
        s.fail = False
        t.observe(IMEI, IMSI[5], None, c.now)
        await t.flush()
        assert t.written == 1
    finally:
        await t.close()


async def test_bounded_per_imei_and_in_total() -> None:
    t, _s, c = await tracker(max_values_per_imei=4, max_tracked_imeis=10)
    try:
        for i in range(6):  # 6 IMSIs, 4 kept: the oldest two are forgotten
            s = t.observe(IMEI, IMSI[i], None, c.now + i)
        assert s.distinct_imsis == 4
        for i in range(30):
            t.observe(f"{35209910000000 + i}", IMSI[0], None, c.now)
        assert t.stats()["imeis"] <= 10
    finally:
        await t.close()


async def test_a_restart_keeps_the_window() -> None:
    store = CountingStore()
    t, _s, c = await tracker(store)
    t.observe(IMEI, IMSI[1], "mme1", c.now)
    t.observe(IMEI, IMSI[2], "mme1", c.now)
    await t.close()  # a clean stop writes what was queued
    t2, _s, c2 = await tracker(store)
    try:
        c2.now = c.now + 10
        assert t2.observe(IMEI, IMSI[3], "mme1", c2.now).distinct_imsis == 3
        c2.now = c.now + 65  # IMSIs 1 and 2 (at +0) left the 60 s window, IMSI 3 (at +10) did not
        assert t2.observe(IMEI, IMSI[4], "mme1", c2.now).distinct_imsis == 2
    finally:
        await t2.close()


async def test_a_tracker_that_is_not_running_records_nothing() -> None:
    """``eir check``: reads one IMEI's stored sightings, counts the request itself, writes nothing."""
    store = CountingStore()
    await store.open()
    await store.write_sightings([(IMEI, "i", IMSI[1], 999_990.0), (OTHER, "i", IMSI[2], 999_990.0)])
    store.batches.clear()
    t = SightingTracker(store, 60.0, clock=Clock())
    await t.load_imei(IMEI)
    assert t.observe(IMEI, IMSI[3], None, 1_000_000.0).distinct_imsis == 2
    assert t.stats() == {"imeis": 1, "pending": 0, "written": 0, "dropped": 0, "evicted": 0}
    await t.close()
    assert store.batches == []


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"max_tracked_imeis": 5},
        {"max_pending": 4, "batch_size": 100},
        {"batch_size": 3},
        {"trusted_origins": ["mme*"]},
        {"max_new_per_second": 2.0},
        {"half_life": 30.0},
    ],
    ids=["plain", "bound", "queue-full", "batches", "trusted", "budget", "decay"],
)
async def test_first_imsi_records_what_observe_would(kw: dict[str, object]) -> None:
    """``first_imsi`` (the checker's first try for a request with an IMSI, no origin, no MSISDN)
    against ``observe`` alone, over the same random requests: the same counts, the same IMEIs held,
    the same rows queued and dropped — whether the fast path applies or hands back to ``observe``
    (an IMEI tracked already, the bound, origins held, trusted origins, budgets, decay)."""
    import random

    rng = random.Random(13)
    fast, _s1, c1 = await tracker(None, **kw)
    slow, _s2, c2 = await tracker(None, **kw)
    taken = 0
    try:
        for step in range(400):
            imei = f"{35209900000000 + rng.randrange(200)}"
            imsi = rng.choice([*IMSI[:4], None])
            # origins from the second half on: once one is held, observe takes every request
            origin = rng.choice([None, None, None, "mme1", "other"]) if step >= 200 else None
            c1.now = c2.now = now = 1_000_000.0 + step * rng.choice([0.01, 0.5, 3.0])
            want = slow.observe(imei, imsi, origin, now, origin, "i")
            got = None
            if imsi and origin is None:
                got = fast.first_imsi(imei, imsi, now, "i")
                taken += got is not None
            if got is None:
                got = fast.observe(imei, imsi, origin, now, origin, "i")
            assert got == want, step
            assert fast._imsis == slow._imsis and list(fast._pending) == list(slow._pending), step
            assert (fast.dropped, fast._origins) == (slow.dropped, slow._origins), step
        plain = not kw.get("trusted_origins") and not kw.get("max_new_per_second")
        assert (taken >= (4 if "max_tracked_imeis" in kw else 50)) if plain else taken == 0
    finally:
        await fast.close()
        await slow.close()


async def test_first_imsi_leaves_a_tracker_that_is_not_running_to_observe() -> None:
    store = CountingStore()
    await store.open()
    t = SightingTracker(store, 60.0, clock=Clock())
    assert t.first_imsi(IMEI, IMSI[1], 1_000_000.0, "i") is None  # `eir check`: before start
    await t.start()
    assert t.first_imsi(IMEI, IMSI[1], 1_000_000.0, "i") is not None
    await t.close()
    assert t.first_imsi(OTHER, IMSI[1], 1_000_000.0, "i") is None and OTHER not in t._imsis


async def test_the_checker_records_a_first_sighting_on_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A population check (a fresh IMEI with an IMSI) goes through ``first_imsi``, not
    ``observe`` (48 bytecodes fewer a check, eir/sightings.py); one with
    an MSISDN, or an IMEI seen before, through ``observe``. Both count and queue alike."""
    from eir.checker import PolicyChecker
    from eir.config import load_config
    from eir.events import NullEvents
    from eir.model import CheckRequest, Interface

    store = CountingStore()
    await store.open()
    checker = PolicyChecker(load_config(None, environ={}), store, NullEvents())
    await checker.start()
    t = checker.sightings
    assert t is not None
    observed: list[str] = []
    real = t.observe

    def spy(imei: str, *a: Any, **k: Any) -> Sightings:
        observed.append(imei)
        return real(imei, *a, **k)

    monkeypatch.setattr(t, "observe", spy)
    await checker.check(CheckRequest(imei=IMEI, imsi=IMSI[1], origin="mme1", interface=Interface.S13))
    held = t._imsis[IMEI]
    assert observed == [] and isinstance(held, tuple) and held[0] == IMSI[1]
    await checker.check(CheckRequest(imei=IMEI, imsi=IMSI[2], origin="mme1", interface=Interface.S13))
    await checker.check(
        CheckRequest(imei=OTHER, imsi=IMSI[3], msisdn="491701234567", interface=Interface.MAP)
    )
    assert observed == [IMEI, OTHER]
    # an IMSI longer than a sighting keeps: observe, which cuts it (the fast path would not)
    long_imsi = "9" * 40
    third = "35209900176163"
    await checker.check(CheckRequest(imei=third, imsi=long_imsi, interface=Interface.S13))
    held = t._imsis[third]
    assert observed[-1] == third and isinstance(held, tuple) and held[0] == long_imsi[:32]
    await checker.close()
    rows = sorted((r[0], r[1], r[2]) for r in await store.read_sightings(0.0))
    assert rows == [
        (IMEI, "e", IMSI[1]),
        (IMEI, "e", IMSI[2]),
        (OTHER, "g", f"{IMSI[3]} 491701234567"),
        (third, "e", long_imsi[:32]),
    ]


@pytest.mark.parametrize("n", [1, 3])
async def test_the_checker_answers_clone_from_memory_and_writes_on_close(n: int) -> None:
    from eir.checker import PolicyChecker
    from eir.config import load_config
    from eir.events import NullEvents
    from eir.model import CheckRequest, Interface, Status

    store = CountingStore()
    await store.open()
    config = load_config(None, environ={}, overrides={"policy": {"clone": {"max_imsis": 3}}})
    checker = PolicyChecker(config, store, NullEvents())
    await checker.start()
    verdicts = []
    for i in range(n):
        req = CheckRequest(imei=IMEI, imsi=IMSI[i], origin="mme1", interface=Interface.S13)
        verdicts.append(await checker.check(req))
    assert store.batches == [] or sum(store.batches) < 2 * n
    await checker.close()
    # n IMSIs; no origin rows: the origins rule (which would read them) is off by default
    assert sorted(r[2] for r in await store.read_sightings(0.0)) == IMSI[:n]
    assert (verdicts[-1].status, verdicts[-1].rule) == (
        (Status.GREY, "clone") if n == 3 else (Status.WHITE, "default")
    )


async def test_close_during_a_sqlite_batch_writes_everything(tmp_path: Path) -> None:
    """close() cancels the write-behind task while its batch runs in a worker thread: the thread
    keeps the write connection until it ends, then close() writes the rest — all rows on disk,
    nothing dropped (it used to begin a transaction inside the running one and drop the rest)."""
    from eir.store.sqlite import SqliteStore

    store = SqliteStore(f"sqlite:///{tmp_path / 'eir.db'}", str(tmp_path))
    await store.open()
    t = SightingTracker(store, 3600.0, share_interval=None, flush_interval=3600.0, batch_size=20_000)
    await t.start()
    n = 60_000
    for i in range(n):
        t.observe(f"{35209900000000 + i}", IMSI[i % 10], None, 1_000_000.0)
    for _ in range(100):  # until the woken writer's batch is in its thread
        await asyncio.sleep(0.001)
        if len(t._pending) < n:
            break
    assert len(t._pending) < n
    await t.close()
    assert (t.dropped, t.stats()["pending"]) == (0, 0)
    assert len(await store.read_sightings(0.0)) == n
    await store.close()


async def test_an_imei_with_one_imsi_is_held_as_a_pair_and_counted_alike() -> None:
    """Most IMEIs of a population load are seen with one IMSI: they are held as an (IMSI, time)
    pair, not a dict (eir/sightings.py), and counted, renewed, written, merged, cleared and swept
    exactly as the dict form is."""
    t, s, c = await tracker()
    try:
        now = c.now
        assert t.observe(IMEI, IMSI[1], None, now).distinct_imsis == 1
        assert t._imsis[IMEI] == (IMSI[1], now)
        assert t.observe(IMEI, IMSI[1], None, now + 0.5).distinct_imsis == 1  # seen a moment ago
        assert t.observe(IMEI, IMSI[1], None, now + 5).distinct_imsis == 1  # renewed, written again
        assert t._imsis[IMEI] == (IMSI[1], now + 5)
        assert t.seen(IMEI) == ({IMSI[1]: now + 5}, {})
        assert t.observe(IMEI, None, None, now + 6).distinct_imsis == 1  # no IMSI: counted only
        assert t.observe(IMEI, None, None, now + 66).distinct_imsis == 0  # out of the 60 s window
        assert t.observe(IMEI, IMSI[2], None, now + 7).distinct_imsis == 2  # becomes a dict
        assert t.seen(IMEI) == ({IMSI[1]: now + 5, IMSI[2]: now + 7}, {})
        await t.flush()
        assert [(r[2], r[3]) for r in await s.read_sightings(0.0, imei=IMEI)] == [
            (IMSI[2], now + 7),
            (IMSI[1], now + 5),
        ]
        assert s.batches == [3]
        # merged into a pair, cleared from a pair, swept as a pair
        t.observe(OTHER, IMSI[3], None, now)
        t.merge([(OTHER, "i", IMSI[3], now + 2)])
        assert t.seen(OTHER) == ({IMSI[3]: now + 2}, {})
        assert t.clear(OTHER, now + 3) == 1 and t.seen(OTHER) == ({}, {})
        t.observe(OTHER, IMSI[4], None, now + 4)
        c.now = now + 100
        await t._sweep(c.now - 60)
        assert OTHER not in t._imsis and IMEI not in t._imsis
    finally:
        await t.close()


async def test_an_imsi_row_names_its_interface_and_counts_once() -> None:
    """``kind`` (the interface's IMSI kind) goes to the store with the row, on the first-sighting
    fast path and on the dict path; the same IMSI over two interfaces is one IMSI to the rule,
    here and after a restart reads the rows back."""
    t, s, c = await tracker()
    try:
        now = c.now
        assert t.observe(IMEI, IMSI[1], None, now, None, "e").distinct_imsis == 1  # fast path
        assert t.observe(IMEI, IMSI[1], None, now + 5, None, "g").distinct_imsis == 1  # the pair again
        assert t.observe(IMEI, IMSI[2], None, now + 6, None, "n").distinct_imsis == 2  # dict path
        assert t.observe(OTHER, IMSI[3], "mme1", now + 7).distinct_imsis == 1  # default kind: i
        await t.flush()
        rows = await s.read_sightings(now - 1)
        assert sorted((r[0], r[1], r[2]) for r in rows) == sorted(
            [
                (IMEI, "e", IMSI[1]),
                (IMEI, "g", IMSI[1]),
                (IMEI, "n", IMSI[2]),
                (OTHER, "i", IMSI[3]),
                (OTHER, "o", "mme1"),
            ]
        )
    finally:
        await t.close()
    again = SightingTracker(s, 60.0, share_interval=None, clock=c)
    await again.start()
    try:
        assert again.observe(IMEI, None, None, c.now + 8).distinct_imsis == 2
        assert again.seen(OTHER) == ({IMSI[3]: c.now + 7}, {"mme1": c.now + 7})
    finally:
        await again.close()


async def test_an_msisdn_rides_in_the_row_not_in_the_count() -> None:
    t, s, c = await tracker()
    try:
        now = c.now
        assert t.observe(IMEI, IMSI[1], None, now, None, "g", "923001234567").distinct_imsis == 1
        assert t.observe(IMEI, IMSI[2], None, now + 1, None, "n", "4915112345678").distinct_imsis == 2
        assert t.observe(IMEI, IMSI[1], None, now + 2, None, "e").distinct_imsis == 2
        assert t.seen(IMEI)[0] == {IMSI[1]: now + 2, IMSI[2]: now + 1}
        await t.flush()
        values = sorted((r[1], r[2]) for r in await s.read_sightings(now - 1))
        assert values == [("e", IMSI[1]), ("g", f"{IMSI[1]} 923001234567"), ("n", f"{IMSI[2]} 4915112345678")]
    finally:
        await t.close()
    again = SightingTracker(s, 60.0, share_interval=None, clock=c)
    await again.start()  # reads back: the MSISDN is not an IMSI
    try:
        assert again.seen(IMEI)[0] == {IMSI[1]: c.now + 2, IMSI[2]: c.now + 1}
    finally:
        await again.close()


_STEPS = st.lists(
    st.tuples(
        st.sampled_from([IMEI, OTHER]),
        st.sampled_from([None, IMSI[1], IMSI[1], IMSI[2], IMSI[3]]),
        st.sampled_from([None, None, "mme1", "mme2"]),
        # a moment (inside `fresh`), seconds, past the 60 s window, and a clock stepping back
        st.sampled_from([0.0, 0.2, 0.7, 3.0, 45.0, 70.0, -0.5, -5.0]),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_STEPS, track_origins=st.booleans(), half_life=st.sampled_from([0.0, 20.0]))
# the same pair again after an origin was recorded: the early return must not drop the origin count
@example(
    steps=[(IMEI, IMSI[1], None, 0.0), (IMEI, IMSI[1], "mme1", 0.0), (IMEI, IMSI[1], None, 0.0)],
    track_origins=True,
    half_life=0.0,
)
def test_every_count_is_what_the_held_values_give(
    steps: list[tuple[str, str | None, str | None, float]], track_origins: bool, half_life: float
) -> None:
    """Whatever path observe takes — a fresh IMEI, the same pair again (returned early while no
    origin is tracked and nothing decays), a pair turning into a dict — the counts it returns are
    those of the values it then holds (``seen``), counted the general way."""

    async def run() -> None:
        t, _s, c = await tracker(half_life=half_life)
        try:
            now = c.now
            for imei, imsi, origin, dt in steps:
                now += dt
                got = t.observe(imei, imsi, origin if track_origins else None, now)
                imsis, origins = t.seen(imei)
                cutoff = now - 60.0
                if half_life:
                    decay = math.log(2) / half_life
                    want = (_weighed(imsis, cutoff, now, decay), _weighed(origins, cutoff, now, decay))
                else:
                    want = (_inside(imsis, cutoff), _inside(origins, cutoff))
                assert (got.distinct_imsis, got.distinct_origins) == want, (imei, imsi, origin, now)
        finally:
            await t.close()

    asyncio.run(run())


async def test_sqlite_counts_its_log_without_reading_it(tmp_path: Path) -> None:
    """The storage cap counts the log every CAP_INTERVAL, holding the write-behind's lock: two
    B-tree descents, whatever the log's length. (``SELECT min(rowid), max(rowid)`` scanned every
    row: SQLite's min/max optimisation takes a single aggregate.) Counted in SQLite VM steps."""
    from eir.store.sqlite import SqliteStore

    store = SqliteStore(f"sqlite:///{tmp_path / 'eir.db'}", str(tmp_path))
    await store.open()
    try:
        n = 20_000
        await store.write_sightings(
            [(f"{35209900000000 + i}", "i", IMSI[i % 10], 1_000_000.0 + i) for i in range(n)]
        )
        steps = [0]

        def tick() -> int:
            steps[0] += 1
            return 0

        store._obs_writer().set_progress_handler(tick, 100)  # called every 100 VM steps
        assert await store.count_sightings() == n
        assert steps[0] < 5, f"{steps[0] * 100} VM steps to count {n} rows"
        steps[0] = 0
        assert await store.evict_sightings(n) == 0
        assert steps[0] < 5, f"{steps[0] * 100} VM steps to find nothing to evict"
    finally:
        await store.close()
