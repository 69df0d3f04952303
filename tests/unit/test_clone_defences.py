"""Clone-rule poisoning defences (issue 10 item 1) and the sightings storage cap (eir/sightings.py,
eir/checker.py): trusted origins, per-origin and global budgets of new sightings, decay, the
white/pairing exemption, an operator's clear (shared through the store), the cap on stored rows."""

from __future__ import annotations

import time
from typing import Any

from eir.checker import build_checker
from eir.config import Config, load_config
from eir.metrics import register_metrics
from eir.model import CheckRequest, Interface, Status
from eir.sightings import SightingTracker
from eir.store.base import EntryKind, ListEntry, Pairing, PairingKind
from eir.store.memory import MemoryStore

IMEI, OTHER = "35209900176148", "35209900176155"
IMSI = [f"26201000000000{i}" for i in range(10)]
W, G = Status.WHITE, Status.GREY
REGISTRY = register_metrics()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Events:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.sent.append((topic, payload))


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def cfg(**clone: Any) -> Config:
    return load_config(None, environ={}, overrides={"policy": {"clone": clone}})


async def _tracker(store: MemoryStore | None = None, **kw: Any) -> tuple[SightingTracker, MemoryStore, Clock]:
    s = store or MemoryStore()
    await s.open()
    clock = Clock()
    t = SightingTracker(s, 3600.0, share_interval=None, flush_interval=3600.0, clock=clock, **kw)
    await t.start()
    return t, s, clock


async def test_only_trusted_origins_record_sightings() -> None:
    """An untrusted peer's IMSIs are not recorded (counted instead); its checks are still answered
    against what trusted peers recorded."""
    t, s, c = await _tracker(trusted_origins=["MME*.epc.lab", "4917*"])
    before = _metric("eir_sightings_refused_total", reason="untrusted")
    try:
        assert t.observe(IMEI, IMSI[0], None, c.now, "mme1.epc.lab").distinct_imsis == 1
        assert t.observe(IMEI, IMSI[1], None, c.now, "491700000008").distinct_imsis == 2
        for i in range(2, 8):  # a hostile peer: nothing recorded, the count is what trusted peers saw
            assert t.observe(IMEI, IMSI[i], None, c.now, "evil.example").distinct_imsis == 2
        assert t.observe(OTHER, IMSI[9], None, c.now, None).distinct_imsis == 0
        await t.flush()
        assert sorted(r[2] for r in await s.read_sightings(0.0)) == IMSI[:2]
        assert _metric("eir_sightings_refused_total", reason="untrusted") == before + 7
    finally:
        await t.close()


async def test_budgets_of_new_sightings_per_origin_and_in_total() -> None:
    t, s, c = await _tracker(max_new_per_origin=3, max_new_per_second=5)
    peer0 = _metric("eir_sightings_refused_total", reason="peer_budget")
    all0 = _metric("eir_sightings_refused_total", reason="global_budget")
    try:
        imeis = [f"3520990017{i:04d}" for i in range(20)]
        # origin a: 3 new sightings recorded, 2 over its budget
        got = [t.observe(imeis[i], IMSI[0], None, c.now, "a").distinct_imsis for i in range(5)]
        assert got == [1, 1, 1, 0, 0]
        # seen again: no new sighting, no budget spent
        assert t.observe(imeis[0], IMSI[0], None, c.now, "a").distinct_imsis == 1
        # origin b has a budget of its own, but only 2 are left in the global one
        got = [t.observe(imeis[10 + i], IMSI[1], None, c.now, "b").distinct_imsis for i in range(3)]
        assert got == [1, 1, 0]
        assert _metric("eir_sightings_refused_total", reason="peer_budget") == peer0 + 2
        assert _metric("eir_sightings_refused_total", reason="global_budget") == all0 + 1
        # a second later both buckets are full again
        c.now += 1.0
        assert t.observe(imeis[3], IMSI[0], None, c.now, "a").distinct_imsis == 1
        await t.flush()
        assert len(await s.read_sightings(0.0)) == 6
    finally:
        await t.close()


async def test_a_budget_below_one_a_second_lets_one_through_now_and_then() -> None:
    t, s, c = await _tracker(max_new_per_origin=0.5)
    try:
        got = [t.observe(f"3520990017{i:04d}", IMSI[0], None, c.now, "a").distinct_imsis for i in range(3)]
        assert got == [1, 0, 0]
        c.now += 1.0
        assert t.observe("35209900179999", IMSI[0], None, c.now, "a").distinct_imsis == 0
        c.now += 1.0
        assert t.observe("35209900179999", IMSI[0], None, c.now, "a").distinct_imsis == 1
        await t.flush()
        assert len(await s.read_sightings(0.0)) == 2
    finally:
        await t.close()


async def test_a_suspicion_decays_with_the_half_life() -> None:
    """Three IMSIs at once count 3 and then decay: the rounded-up sum of 2^(-age/half_life) drops to
    2 after log2(3/2) ≈ 0.58 half-lives; renewed evidence keeps the count up; the window still
    bounds it."""
    t, _s, c = await _tracker(half_life=100.0)
    try:
        t0 = c.now
        for i in range(3):
            t.observe(IMEI, IMSI[i], None, t0)
        assert t.observe(IMEI, None, None, t0).distinct_imsis == 3
        assert t.observe(IMEI, None, None, t0 + 58).distinct_imsis == 3
        assert t.observe(IMEI, None, None, t0 + 59).distinct_imsis == 2
        assert t.observe(IMEI, None, None, t0 + 250).distinct_imsis == 1
        # the same IMSIs seen again renew their weight
        for i in range(3):
            t.observe(IMEI, IMSI[i], None, t0 + 250)
        assert t.observe(IMEI, None, None, t0 + 250).distinct_imsis == 3
        assert t.observe(IMEI, None, None, t0 + 250 + 3600.5).distinct_imsis == 0
    finally:
        await t.close()


async def test_a_checker_with_decay_stops_suspecting() -> None:
    clock = Clock()
    store = MemoryStore()
    await store.open()
    checker = build_checker(cfg(half_life=60.0), store, Events())
    checker._wall = clock  # type: ignore[attr-defined]  # the sightings' wall clock, stepped here
    for i in range(3):
        v = await checker.check(CheckRequest(imei=IMEI, imsi=IMSI[i], interface=Interface.S13))
    assert (v.status, v.rule) == (G, "clone")
    clock.now += 40.0  # 0.67 half-lives
    v = await checker.check(CheckRequest(imei=IMEI, interface=Interface.S13, imsi=IMSI[0]))
    assert v.status is G, "IMSI 0 renewed: 1 + 2 x 0.63 rounds up to 3"
    clock.now += 40.0  # IMSI 0 renewed again: 1 + 2 x 0.40 rounds up to 2
    v = await checker.check(CheckRequest(imei=IMEI, interface=Interface.S13, imsi=IMSI[0]))
    assert (v.status, v.rule) == (W, "default")


async def test_white_or_paired_imeis_can_be_exempt() -> None:
    store = MemoryStore()
    await store.open()
    await store.import_version(
        [ListEntry(kind=EntryKind.IMEI, key=IMEI, status=W)],
        [Pairing(kind=PairingKind.PAIRING, imsi=IMSI[5], imei=OTHER)],
        source="test",
    )
    for exempt in (False, True):
        checker = build_checker(cfg(exempt_white=exempt), store, Events())
        for i in range(4):
            v = await checker.check(CheckRequest(imei=IMEI, imsi=IMSI[i], interface=Interface.S13))
        assert v.status is (W if exempt else G)
        steps = await checker.explain(CheckRequest(imei=IMEI, imsi=IMSI[9], interface=Interface.S13))
        assert any(s.rule == "clone" and s.outcome == "exempt" for s in steps) is exempt
    # paired with the IMSI checked: exempt too (OTHER is on no list; its default is white)
    checker = build_checker(cfg(exempt_white=True), store, Events())
    for i in range(3):
        await checker.check(CheckRequest(imei=OTHER, imsi=IMSI[i], interface=Interface.S13))
    assert (
        await checker.check(CheckRequest(imei=OTHER, imsi=IMSI[5], interface=Interface.S13))
    ).rule == "pairing"
    assert (
        await checker.check(CheckRequest(imei=OTHER, imsi=IMSI[6], interface=Interface.S13))
    ).rule == "clone"


async def test_an_operator_clears_a_suspicion_here_in_the_store_and_on_other_instances() -> None:
    """checker.clear_sightings (the admin API's call): memory, queued rows and stored rows go; the
    clear row makes another instance sharing the store drop its copy, and rows older than the
    clear that reach it later are ignored."""
    store = MemoryStore()
    await store.open()
    one = build_checker(cfg(), store, Events())
    two = SightingTracker(store, 3600.0, share_interval=None, flush_interval=3600.0)
    await one.start()
    await two.start()
    cleared0 = _metric("eir_sightings_cleared_total")
    try:
        for i in range(3):
            v = await one.check(CheckRequest(imei=IMEI, imsi=IMSI[i], interface=Interface.S13))
        assert v.rule == "clone"
        assert one.sightings is not None
        await one.sightings.flush()
        two.merge(await store.read_sightings(0.0))  # what sharing does
        assert two.observe(IMEI, None, None, _now()).distinct_imsis == 3
        late = await store.read_sightings(0.0)  # rows another instance would merge late
        assert await one.clear_sightings(IMEI + "0") == 3
        assert _metric("eir_sightings_cleared_total") == cleared0 + 1
        assert [r[1] for r in await store.read_sightings(0.0)] == ["c"]
        v = await one.check(CheckRequest(imei=IMEI, imsi=IMSI[3], interface=Interface.S13))
        assert (v.status, v.rule) == (W, "default")
        # the other instance reads the clear row, and ignores the older rows merged after it
        two.merge(await store.read_sightings(0.0, exclude_writer=two.writer))
        two.merge(late)
        assert two.observe(IMEI, None, None, _now()).distinct_imsis == 0
    finally:
        await one.close()
        await two.close()


def _now() -> float:
    return time.time()


async def test_clear_refuses_what_is_not_an_imei() -> None:
    store = MemoryStore()
    await store.open()
    checker = build_checker(cfg(), store, Events())
    for bad in ("1234", "3520990017614x"):
        try:
            await checker.clear_sightings(bad)
        except ValueError as e:
            assert "not an IMEI" in str(e)
        else:
            raise AssertionError(bad)


async def test_the_store_is_capped_oldest_first_with_a_metric() -> None:
    t, s, c = await _tracker(max_stored=10)
    evicted0 = _metric("eir_sightings_evicted_total")
    try:
        for i in range(25):
            t.observe(f"3520990017{i:04d}", IMSI[0], None, c.now + i)
        await t.flush()
        assert await t.cap() == 16  # down to 90 % of the cap
        rows = await s.read_sightings(0.0)
        assert sorted(r[3] for r in rows) == [c.now + i for i in range(16, 25)]
        assert await t.cap() == 0
        assert _metric("eir_sightings_evicted_total") == evicted0 + 16
        assert t.stats()["evicted"] == 16
    finally:
        await t.close()


async def test_the_checker_records_the_interface_and_a_valid_msisdn() -> None:
    """What the observations dump reads (eir/formats/export.py): the interface as the row's kind,
    the MSISDN of a MAP or N5g-eir request (E.164 digits only) after the IMSI; S13 keeps none."""
    store = MemoryStore()
    await store.open()
    checker = build_checker(cfg(), store, Events())
    tracker = checker.sightings
    assert tracker is not None
    await tracker.start()
    try:
        reqs = [
            CheckRequest(imei=IMEI, imsi=IMSI[0], msisdn="923001234567", interface=Interface.MAP),
            CheckRequest(imei=IMEI, imsi=IMSI[1], msisdn="4915112345678", interface=Interface.N5G),
            CheckRequest(imei=IMEI, imsi=IMSI[2], msisdn="923001234567", interface=Interface.S13),
            CheckRequest(imei=OTHER, imsi=IMSI[3], msisdn="92300*123", interface=Interface.MAP),
            CheckRequest(imei=OTHER, imsi=IMSI[4], msisdn="1" * 16, interface=Interface.N5G),
            CheckRequest(imei=OTHER, imsi=IMSI[5], msisdn="٣٣٣", interface=Interface.MAP),  # not ASCII
        ]
        for r in reqs:
            await checker.check(r)
        await tracker.flush()
        rows = sorted((r[0], r[1], r[2]) for r in await store.read_sightings(0.0))
    finally:
        await tracker.close()
    assert rows == sorted(
        [
            (IMEI, "g", f"{IMSI[0]} 923001234567"),
            (IMEI, "n", f"{IMSI[1]} 4915112345678"),
            (IMEI, "e", IMSI[2]),
            (OTHER, "g", IMSI[3]),
            (OTHER, "n", IMSI[4]),
            (OTHER, "g", IMSI[5]),
        ]
    )


async def test_a_large_cap_counts_only_when_the_estimate_nears_it() -> None:
    """From ESTIMATE_ABOVE rows on, cap() asks the store's cheap estimate and counts exactly only
    when it reaches 90 % of the cap (PostgreSQL's count(*) reads every row); a small cap counts."""
    from eir.sightings import ESTIMATE_ABOVE, EXACT_EVERY

    class Estimating(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.estimate, self.calls = 0, [0, 0]

        async def estimate_sightings(self) -> int:
            self.calls[0] += 1
            return self.estimate

        async def count_sightings(self) -> int:
            self.calls[1] += 1
            return await super().count_sightings()

    store = Estimating()
    cap = ESTIMATE_ABOVE
    t, _s, _c = await _tracker(store, max_stored=cap)
    try:
        store.estimate = cap * 9 // 10 - 1
        assert await t.cap() == 0 and store.calls == [1, 0], "well below: no count"
        store.estimate = cap * 9 // 10
        assert await t.cap() == 0 and store.calls == [2, 1], "near the cap: counted (0 rows)"
        store.estimate = 0  # statistics that say nothing (reset): an exact count now and then
        for _ in range(EXACT_EVERY - 2):
            await t.cap()
        assert store.calls == [EXACT_EVERY - 1, 2], f"every {EXACT_EVERY}th check counts"
    finally:
        await t.close()
    small, s2, _ = await _tracker(Estimating(), max_stored=10)
    try:
        assert await small.cap() == 0
        assert s2.calls == [0, 1], "a small cap is counted every time"  # type: ignore[attr-defined]
    finally:
        await small.close()
