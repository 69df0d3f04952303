"""The verdict policy through the real checker, against the memory store (and SQLite where the
backend matters): every rule, the order between them, metrics, events, store outages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eir.checker import PolicyChecker, build_checker
from eir.config import Config, load_config
from eir.metrics import register_metrics
from eir.model import CheckRequest, Interface, Status, Verdict
from eir.store.base import (
    EntryKind,
    IdentityStore,
    ImsiRules,
    ListEntry,
    Lookup,
    Pairing,
    PairingKind,
    StoreUnavailableError,
)
from eir.store.memory import MemoryStore
from eir.store.sqlite import SqliteStore

REGISTRY = register_metrics()

W, G, B = Status.WHITE, Status.GREY, Status.BLACK
IMEI = "35209900176148"  # Luhn check digit 1
IMEI15 = "352099001761481"
IMSI1, IMSI2, IMSI3 = "262010000000001", "262010000000002", "262010000000003"


class Events:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.sent.append((topic, payload))


def E(
    kind: EntryKind, key: str, status: Status, last: str | None = None, reason: str | None = None
) -> ListEntry:
    return ListEntry(kind=kind, key=key, last=last, status=status, reason=reason)


def cfg(**policy: Any) -> Config:
    return load_config(None, environ={}, overrides={"policy": policy} if policy else None)


async def make(
    entries: list[ListEntry] = (),
    pairings: list[Pairing] = (),
    config: Config | None = None,  # type: ignore[assignment]
    store: IdentityStore | None = None,
    **checker_kw: Any,
) -> tuple[Any, IdentityStore, Events]:
    s = store or MemoryStore()
    await s.open()
    if entries or pairings:
        await s.import_version(entries, pairings, source="test")
    ev = Events()
    if checker_kw:
        return PolicyChecker(config or cfg(), s, ev, **checker_kw), s, ev
    return build_checker(config or cfg(), s, ev), s, ev


class Clock:
    """Time the test steps by hand (the checker's ``clock``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def req(imei: str = IMEI, **kw: Any) -> CheckRequest:
    return CheckRequest(imei=imei, **kw)


# --- 1. validity ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("imei", "sv", "why"),
    [
        ("3520990017614", None, "13 characters"),
        ("35209900176148123", None, "17 characters"),
        ("3520990017614a", None, "expected 14-16 digits"),
        ("".join(chr(0xFF10 + int(c)) for c in IMEI), None, "expected 14-16 digits"),  # full-width digits
        ("352099001761482", None, "bad check digit 2, expected 1"),
        (IMEI, "1", "bad software version"),
        (IMEI, "ab", "bad software version"),
        ("00000000000000", None, "all-zero IMEI"),
        ("000000000000000", None, "all-zero IMEI"),
        ("00000000123456", None, "reserved TAC 00000000"),
        ("", None, "0 characters"),
    ],
)
async def test_malformed_identities(imei: str, sv: str | None, why: str) -> None:
    checker, _s, _e = await make([E(EntryKind.IMEI, IMEI, W)], config=cfg(bad_check_digit="malformed"))
    v = await checker.check(req(imei, software_version=sv))
    assert v.status is B and v.rule == "validity" and why in v.detail


async def test_malformed_verdict_luhn_switch_and_reserved_tacs_are_configurable() -> None:
    checker, _s, _e = await make(config=cfg(malformed="grey", check_luhn=False, reserved_tacs=["35209900"]))
    assert (await checker.check(req("352099001761481"))).status is G  # reserved TAC now
    v = await checker.check(req("490154203237519"))  # wrong CD, Luhn not checked
    assert v.rule == "default" and v.status is W


# UERANSIM's stock UE IMEI: its 15th digit 3 is not the Luhn digit (9) of 35693803564380
UERANSIM = "356938035643803"


async def test_bad_check_digit_default_ignores_it_so_a_stock_ueransim_lab_registers() -> None:
    checker, _s, _e = await make([E(EntryKind.IMEI, "35693803564380", G)])
    v = await checker.check(req(UERANSIM))
    assert (v.status, v.rule, v.entry) == (G, "imei", "35693803564380")
    steps = await checker.explain(req(UERANSIM))
    assert steps[0].rule == "check_digit" and steps[0].outcome == "ignored"
    assert "policy.bad_check_digit=ignore" in steps[0].detail and "expected 9" in steps[0].detail


@pytest.mark.parametrize(
    ("setting", "status", "rule"),
    [
        ("malformed", B, "validity"),
        ("ignore", W, "default"),
        ("grey", G, "check_digit"),
        ("unknown", Status.UNKNOWN, "check_digit"),
        ("white", W, "check_digit"),
    ],
)
async def test_bad_check_digit_settings(setting: str, status: Status, rule: str) -> None:
    checker, _s, _e = await make(config=cfg(bad_check_digit=setting))
    v = await checker.check(req(UERANSIM))
    assert (v.status, v.rule) == (status, rule)
    steps = await checker.explain(req(UERANSIM))
    assert any(s.rule == "check_digit" and f"policy.bad_check_digit={setting}" in s.detail for s in steps)
    # a correct check digit or the spare digit never reaches the setting
    for ok in ("356938035643809", "356938035643800"):
        assert (await checker.check(req(ok))).rule == "default"
        assert not any(s.rule == "check_digit" for s in await checker.explain(req(ok)))


async def test_deprecated_check_luhn_switch_still_works() -> None:
    checker, _s, _e = await make(config=cfg(check_luhn=True))
    assert (await checker.check(req(UERANSIM))).rule == "validity"


async def test_valid_forms_reach_the_lists() -> None:
    checker, _s, _e = await make([E(EntryKind.IMEI, IMEI, B)])
    for form in (IMEI, IMEI15, IMEI + "0", IMEI + "07"):  # 14, +CD, +spare digit, IMEISV
        v = await checker.check(req(form))
        assert (v.status, v.rule, v.entry) == (B, "imei", IMEI)


# --- 2.-4. lists ----------------------------------------------------------------------------------


@pytest.mark.parametrize("imei", ["358091016853550", "356467044989910", "866943039634440"])
async def test_real_trace_imeis_with_spare_digit_are_valid(imei: str) -> None:
    """IMEIs from real MAP captures (shared/traces) end in the spare digit 0, not a Luhn digit."""
    checker, _s, _e = await make()
    assert (await checker.check(req(imei))).rule == "default"


async def test_most_specific_entry_decides() -> None:
    entries = [
        E(EntryKind.IMEISV, IMEI + "23", W, reason="fixed firmware"),
        E(EntryKind.IMEI, IMEI, B),
        E(EntryKind.RANGE, "35209900176100", G, last="35209900176199"),
        E(EntryKind.TAC, "35209900", W),
    ]
    checker, _s, _e = await make(entries)
    v = await checker.check(req(IMEI, software_version="23"))
    assert (v.status, v.rule, v.list_name, v.entry, v.detail) == (
        W,
        "imeisv",
        "white",
        IMEI + "23",
        "fixed firmware",
    )
    assert v.reason == f"imeisv:white:{IMEI}23"
    v = await checker.check(req(IMEI + "24"))
    assert (v.status, v.rule) == (B, "imei")
    v = await checker.check(req("35209900176155"))
    assert (v.status, v.rule, v.entry) == (G, "range", "35209900176100-35209900176199")
    v = await checker.check(req("35209900000000"))
    assert (v.status, v.rule, v.entry) == (W, "tac", "35209900")


@pytest.mark.parametrize("unknown", ["white", "grey", "black", "unknown"])
async def test_default_for_unknown_equipment(unknown: str) -> None:
    checker, _s, _e = await make(
        [E(EntryKind.IMEI, "35209900176155", B)], config=cfg(unknown_equipment=unknown)
    )
    v = await checker.check(req())
    assert (v.status, v.rule) == (Status(unknown), "default")


# --- 5. pairing and lock --------------------------------------------------------------------------


async def test_pairing_exception_whitens_black_and_grey_for_that_imsi_only() -> None:
    checker, _s, _e = await make(
        [E(EntryKind.IMEI, IMEI, B), E(EntryKind.TAC, "49015420", G)],
        [
            Pairing(kind=PairingKind.PAIRING, imsi=IMSI1, imei=IMEI, reason="police test phone"),
            Pairing(kind=PairingKind.PAIRING, imsi=IMSI1, imei="49015420323751"),
        ],
    )
    v = await checker.check(req(imsi=IMSI1))
    assert (v.status, v.rule, v.list_name, v.entry, v.detail) == (
        W,
        "pairing",
        "pairing",
        f"{IMSI1}/{IMEI}",
        "police test phone",
    )
    assert (await checker.check(req("49015420323751", imsi=IMSI1))).rule == "pairing"
    v = await checker.check(req(imsi=IMSI2))
    assert (v.status, v.rule) == (B, "imei")
    assert (await checker.check(req())).status is B


async def test_lock_restricts_an_imsi_to_its_imeis() -> None:
    checker, _s, _e = await make(
        [E(EntryKind.IMEI, "35209900176155", B)], [Pairing(kind=PairingKind.LOCK, imsi=IMSI1, imei=IMEI)]
    )
    v = await checker.check(req(imsi=IMSI1))
    assert (v.status, v.rule) == (W, "default")  # its own IMEI: the lists decide
    v = await checker.check(req("49015420323751", imsi=IMSI1))
    assert (v.status, v.rule, v.list_name, v.entry) == (B, "lock", "lock", f"{IMSI1}/49015420323751")
    v = await checker.check(req("49015420323751", imsi=IMSI2))
    assert (v.status, v.rule) == (W, "default")  # other IMSIs are not locked


async def test_lock_only_makes_stricter() -> None:
    checker, _s, _e = await make(
        [E(EntryKind.IMEI, "35209900176155", B)],
        [Pairing(kind=PairingKind.LOCK, imsi=IMSI1, imei=IMEI)],
        config=cfg(lock_verdict="grey"),
    )
    v = await checker.check(req("35209900176155", imsi=IMSI1))
    assert (v.status, v.rule) == (B, "imei")
    v = await checker.check(req("49015420323751", imsi=IMSI1))
    assert (v.status, v.rule) == (G, "lock")


# --- 6. clone -------------------------------------------------------------------------------------


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_clone_by_distinct_imsis_greys_white_once_event_per_window() -> None:
    checker, _s, ev = await make(
        [E(EntryKind.IMEI, "35209900176155", B)],
        config=cfg(clone={"max_imsis": 3, "distinct_origins": False}),
    )
    before = _metric("eir_clone_suspicions_total", reason="imsis")
    assert (await checker.check(req(imsi=IMSI1))).status is W
    assert (await checker.check(req(imsi=IMSI2))).status is W
    v = await checker.check(req(imsi=IMSI3))
    assert (v.status, v.rule, v.list_name, v.entry) == (G, "clone", "observations", IMEI)
    assert "3 IMSIs" in v.detail
    v = await checker.check(req(imsi=IMSI1))
    assert v.rule == "clone"
    clones = [p for t, p in ev.sent if t == "clone"]
    assert len(clones) == 1
    assert clones[0]["imei"] == IMEI and clones[0]["distinct_imsis"] == 3 and clones[0]["reason"] == "imsis"
    assert _metric("eir_clone_suspicions_total", reason="imsis") == before + 1
    # a black entry stays black, but the suspicion is still reported
    for imsi in (IMSI1, IMSI2, IMSI3):
        v = await checker.check(req("35209900176155", imsi=imsi))
    assert (v.status, v.rule) == (B, "imei")
    assert len([p for t, p in ev.sent if t == "clone"]) == 2


async def test_clone_by_two_origins_and_disabled() -> None:
    checker, _s, _e = await make()  # by default two origins are normal (CSFB, MME pools)
    assert (await checker.check(req(imsi=IMSI1, origin="mme1.lab"))).status is W
    assert (await checker.check(req(imsi=IMSI1, origin="msc1.lab"))).status is W
    checker, _s, ev = await make(config=cfg(clone={"distinct_origins": True}))
    before = _metric("eir_clone_suspicions_total", reason="origins")
    assert (await checker.check(req(imsi=IMSI1, origin="mme1.lab"))).status is W
    v = await checker.check(req(imsi=IMSI1, origin="mme2.lab"))
    assert (v.status, v.rule) == (G, "clone") and "2 origins" in v.detail
    # one IMSI, two origins: the suspicion is reported (event and metric) by its reason
    clones = [p for t, p in ev.sent if t == "clone"]
    assert [(p["reason"], p["distinct_imsis"], p["distinct_origins"]) for p in clones] == [("origins", 1, 2)]
    assert _metric("eir_clone_suspicions_total", reason="origins") == before + 1
    checker, _s, _e = await make(config=cfg(clone={"enabled": False}))
    for i in range(5):
        assert (await checker.check(req(imsi=f"26201000000000{i}", origin=f"m{i}"))).rule == "default"


async def test_pairing_is_final_even_for_a_clone_suspect() -> None:
    checker, _s, _e = await make([], [Pairing(kind=PairingKind.PAIRING, imsi=IMSI3, imei=IMEI)])
    await checker.check(req(imsi=IMSI1))
    await checker.check(req(imsi=IMSI2))
    assert (await checker.check(req(imsi=IMSI3))).rule == "pairing"
    assert (await checker.check(req(imsi="262010000000004"))).rule == "clone"


async def test_clone_observations_in_a_separate_store() -> None:
    store, obs = MemoryStore(), MemoryStore()
    await store.open()
    await obs.open()
    checker = build_checker(cfg(clone={"distinct_origins": True}), store, Events(), obs)
    await checker.start()
    await checker.check(req(imsi=IMSI1, origin="a"))
    assert (await checker.check(req(imsi=IMSI1, origin="b"))).rule == "clone"
    await checker.close()  # writes the sightings behind
    assert await store.read_sightings(0.0) == []
    assert {(i, k, v) for i, k, v, _t in await obs.read_sightings(0.0)} == {
        (IMEI, "i", IMSI1),
        (IMEI, "o", "a"),
        (IMEI, "o", "b"),
    }


# --- store outage ---------------------------------------------------------------------------------


class FlakyStore(MemoryStore):
    """A real memory store that can be switched off, as a dead database would be."""

    name = "flaky"
    down = False

    async def lookup(self, imei: str, imeisv: str | None = None) -> Lookup:
        if self.down:
            raise StoreUnavailableError("connection refused")
        return await super().lookup(imei, imeisv)

    async def imsi_rules(self, imsi: str, imei: str) -> ImsiRules:
        if self.down:
            raise ConnectionResetError("reset")
        return await super().imsi_rules(imsi, imei)

    async def observe(self, *a: Any, **kw: Any) -> Any:
        if self.down:
            raise OSError("observations gone")
        return await super().observe(*a, **kw)


@pytest.mark.parametrize("fallback", ["failure", "grey"])
async def test_store_outage_gives_the_fallback_and_recovers(fallback: str) -> None:
    s = FlakyStore()
    config = load_config(None, environ={}, overrides={"store": {"on_unavailable": fallback}})
    clock = Clock()
    checker, _s, _e = await make([E(EntryKind.IMEI, IMEI, B)], config=config, store=s, clock=clock)
    errors = _metric("eir_store_errors_total", store="flaky")
    assert (await checker.check(req())).status is B
    s.down = True
    v = await checker.check(req())
    assert (v.status, v.rule) == (Status.FAILURE if fallback == "failure" else G, "store")
    clock.now += checker.retry_after  # the retry delay has passed: the store is asked again
    v = await checker.check(req(imsi=IMSI1))
    assert v.rule == "store"
    assert _metric("eir_store_errors_total", store="flaky") == errors + 2
    assert (await checker.explain(req()))[-2].rule == "store"
    s.down = False
    v = await checker.check(req(imsi=IMSI1))
    assert v.rule == "store", "still inside the retry delay: the fallback, without asking the store"
    clock.now += checker.retry_after
    v = await checker.check(req(imsi=IMSI1))
    assert (v.status, v.rule) == (B, "imei")


async def test_after_a_failure_the_store_is_left_alone_briefly() -> None:
    s = FlakyStore()
    checker, _s, _e = await make([E(EntryKind.IMEI, IMEI, B)], store=s)
    s.down = True
    errors = _metric("eir_store_errors_total", store="flaky")
    for _ in range(5):
        assert (await checker.check(req())).rule == "store"
    assert _metric("eir_store_errors_total", store="flaky") == errors + 1  # one attempt, then fallback


async def test_sqlite_store_closed_underneath_is_an_outage(tmp_path: Path) -> None:
    s = SqliteStore(f"sqlite:///{tmp_path / 'e.db'}", str(tmp_path))
    checker, _s, _e = await make([E(EntryKind.IMEI, IMEI, B)], store=s)
    assert (await checker.check(req())).rule == "imei"
    await s.close()
    # SQLite answers are cached per list version (cache_lookups): an IMEI asked before still gets its
    # answer; one that was not is an outage
    assert (await checker.check(req())).rule == "imei"
    assert (await checker.check(req("35209900176155"))).status is Status.FAILURE


# --- metrics, events, cache, explain --------------------------------------------------------------


async def test_metrics_count_requests_and_verdicts_by_rule() -> None:
    checker, _s, _e = await make([E(EntryKind.IMEI, IMEI, B)])
    r0 = _metric("eir_check_requests_total", interface="s13")
    v0 = _metric("eir_verdicts_total", interface="s13", status="black", rule="imei")
    m0 = _metric("eir_verdicts_total", interface="s13", status="black", rule="validity")
    await checker.check(req(interface=Interface.S13))
    await checker.check(req(interface=Interface.S13))
    await checker.check(req("1", interface=Interface.S13))
    assert _metric("eir_check_requests_total", interface="s13") == r0 + 3
    assert _metric("eir_verdicts_total", interface="s13", status="black", rule="imei") == v0 + 2
    assert _metric("eir_verdicts_total", interface="s13", status="black", rule="validity") == m0 + 1


async def test_verdict_events_only_when_configured() -> None:
    config = load_config(None, environ={}, overrides={"mqtt": {"enabled": True, "publish_verdicts": True}})
    checker, _s, ev = await make([E(EntryKind.IMEI, IMEI, B)], config=config)
    await checker.check(req(interface=Interface.MAP))
    assert ev.sent[-1][0] == "verdict/black" and ev.sent[-1][1]["rule"] == "imei"
    checker, _s, ev = await make([E(EntryKind.IMEI, IMEI, B)])
    await checker.check(req())
    assert ev.sent == []


class CachingStore(MemoryStore):
    cache_lookups = True
    calls = 0

    async def lookup(self, imei: str, imeisv: str | None = None) -> Lookup:
        self.calls += 1
        return await super().lookup(imei, imeisv)


async def test_cache_is_dropped_when_the_version_changes() -> None:
    s = CachingStore()
    checker, _s, _e = await make([E(EntryKind.IMEI, IMEI, B)], store=s)
    for _ in range(3):
        assert (await checker.check(req())).status is B
    assert s.calls == 1
    await s.import_version([E(EntryKind.IMEI, IMEI, W)], [], source="new")
    assert (await checker.check(req())).status is W
    assert s.calls == 2


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_store_that_answers_inline_is_asked_without_a_coroutine(kind: str, tmp_path: Any) -> None:
    """SQLite and memory answer a fresh IMEI through lookup_inline (no coroutine: a population
    load looks up nearly every check); a store whose lookup is overridden (a failing store, a
    wrapper) is awaited as before; both give the same verdicts (listed, ranged, unknown, IMEISV)."""
    from eir.store.base import answers_inline
    from eir.store.sqlite import SqliteStore

    base = MemoryStore if kind == "memory" else SqliteStore

    class Counting(base):  # type: ignore[valid-type,misc]
        inline = 0

        def lookup_inline(self, imei: str, imeisv: str | None = None) -> Lookup:
            type(self).inline += 1
            return super().lookup_inline(imei, imeisv)

    def new() -> Any:
        return Counting() if kind == "memory" else Counting(f"sqlite:///{tmp_path / 'eir.db'}", str(tmp_path))

    entries = [
        E(EntryKind.IMEI, IMEI, B),
        E(EntryKind.TAC, "35209901", G),
        E(EntryKind.IMEISV, "3520990217614801", W),
    ]
    checker, s, _e = await make(entries, store=new())
    assert answers_inline(s) and not answers_inline(FlakyStore())
    awaited, _s2, _e2 = await make(store=s)
    awaited._lookup_inline = None  # the coroutine path, on the same store
    coroutine = s.lookup
    awaits = [0]

    async def counted(imei: str, imeisv: str | None = None) -> Lookup:  # the awaited lookup, counted
        awaits[0] += 1
        return await coroutine(imei, imeisv)

    s.lookup = counted  # on the instance: the type's lookup keeps its inline mark
    imeis = [IMEI, "35209901000001", "35209902176148", "49015420323751"]
    sent = [x for imei in imeis for x in (imei, imei + "01")]  # IMEIs and IMEISVs
    got = [(v.status, v.rule) for v in [await checker.check(req(x)) for x in sent]]
    assert (Counting.inline, awaits[0]) == (len(sent), 0), "inline, no coroutine, for each fresh check"
    assert got == [(v.status, v.rule) for v in [await awaited.check(req(x)) for x in sent]]
    assert awaits[0] == len(sent), "the coroutine path awaited the store's lookup"
    assert {st for st, _ in got} >= {W, G, B}, got
    if kind == "sqlite":
        await s.close()


async def test_a_bug_becomes_a_failure_answer_not_a_crash() -> None:
    class Broken(MemoryStore):
        async def lookup(self, imei: str, imeisv: str | None = None) -> Lookup:
            raise ZeroDivisionError("bug")

    checker, _s, _e = await make(store=Broken())
    v = await checker.check(req())
    assert (v.status, v.rule) == (Status.FAILURE, "error")


async def test_explain_walks_every_rule() -> None:
    checker, _s, _e = await make(
        [E(EntryKind.IMEI, IMEI, B, reason="stolen"), E(EntryKind.TAC, "35209900", W)],
        [Pairing(kind=PairingKind.LOCK, imsi=IMSI1, imei="49015420323751")],
    )
    steps = await checker.explain(req(imsi=IMSI1, origin="mme1"))
    rules = [(s.rule, s.outcome) for s in steps]
    assert rules == [
        ("validity", "ok"),
        ("imeisv", "no match"),
        ("imei", "matched"),
        ("tac", "shadowed"),
        ("pairing", "no match"),
        ("lock", "matched"),
        ("clone", "no match"),
        ("verdict", "black"),
    ]
    assert "stolen" in str(steps[2]) and steps[-1].detail == f"imei:black:{IMEI}"
    steps = await checker.explain(req("123"))
    assert [(s.rule, s.outcome) for s in steps] == [("validity", "failed"), ("verdict", "black")]
    steps = await checker.explain(req("49015420323751"))
    assert steps[-2].rule == "default" and steps[-1].outcome == "white"


def test_verdicts_are_values() -> None:
    assert Verdict(status=W, rule="default").reason == "default"


async def test_sqlite_checker_sees_another_process_import(tmp_path: Path) -> None:
    """A second handle stands for ``eir lists import`` in another process: the serving checker's
    answer cache is dropped when the store notices the new version (data_version polling)."""
    import asyncio

    url = f"sqlite:///{tmp_path / 'e.db'}"
    serving = SqliteStore(url, str(tmp_path), poll_interval=0.05)
    other = SqliteStore(url, str(tmp_path))
    await other.open()
    await other.import_version([E(EntryKind.IMEI, IMEI, B)], [], source="one")
    checker, _s, _e = await make(store=serving)
    assert (await checker.check(req())).status is B
    await other.import_version([E(EntryKind.IMEI, IMEI, W)], [], source="two")
    for _ in range(250):
        if (await checker.check(req())).status is W:
            break
        await asyncio.sleep(0.02)
    assert (await checker.check(req())).status is W
    assert _metric("eir_list_version") == 2
    await other.close()
    await serving.close()


class CountingSqlite(SqliteStore):
    rules_calls = 0

    async def imsi_rules(self, imsi: str, imei: str) -> ImsiRules:
        self.rules_calls += 1
        return await super().imsi_rules(imsi, imei)


async def test_no_pairing_lookup_while_the_active_version_has_none_until_another_process_adds_one(
    tmp_path: Path,
) -> None:
    """A population of IMSIs against lists without pairings: the checker asks the store for an
    IMSI's rules only once it knows the active version's pairing count is 0 — and asks again from
    the moment another process activates a version with pairings (the store's watch)."""
    import asyncio

    url = f"sqlite:///{tmp_path / 'e.db'}"
    serving = CountingSqlite(url, str(tmp_path), poll_interval=0.05)
    other = SqliteStore(url, str(tmp_path))
    await other.open()
    await other.import_version([E(EntryKind.IMEI, IMEI, B)], [], source="one")
    checker, _s, _e = await make(store=serving)
    assert (await checker.check(req(imsi=IMSI1))).status is B
    for _ in range(100):  # the version's count is read in a task
        if checker._no_pairs:
            break
        await asyncio.sleep(0.01)
    asked = serving.rules_calls
    for k in range(50):
        assert (await checker.check(req(imsi=f"2620100000001{k:02d}"))).status is B
    assert serving.rules_calls == asked  # not asked, nothing cached
    assert list(checker._rules) == [(IMSI1, IMEI)]  # the one check before the count was known
    await other.import_version(
        [E(EntryKind.IMEI, IMEI, B)], [Pairing(kind=PairingKind.PAIRING, imsi=IMSI1, imei=IMEI)], source="two"
    )
    for _ in range(250):
        if (await checker.check(req(imsi=IMSI1))).rule == "pairing":
            break
        await asyncio.sleep(0.02)
    v = await checker.check(req(imsi=IMSI1))
    assert (v.status, v.rule) == (W, "pairing")
    assert serving.rules_calls > asked
    await asyncio.sleep(0.1)  # the new version's count read: it has pairings, so still asked
    assert not checker._no_pairs
    assert (await checker.check(req(imsi=IMSI2))).status is B
    await other.close()
    await serving.close()


async def test_no_list_at_all_no_pairing_lookup_until_a_version_is_imported(tmp_path: Path) -> None:
    """No list version yet (``lists.import_on_start: []``, as bench.clone runs): nothing to pair
    with, so an IMSI costs no look-up — until a version with pairings is activated."""
    import asyncio

    url = f"sqlite:///{tmp_path / 'e.db'}"
    serving = CountingSqlite(url, str(tmp_path), poll_interval=0.05)
    other = SqliteStore(url, str(tmp_path))
    await other.open()
    checker, _s, _e = await make(store=serving)
    for k in range(20):
        assert (await checker.check(req(imsi=f"2620100000001{k:02d}"))).rule in ("default", "clone")
    assert serving.rules_calls == 0 and not checker._rules
    await other.import_version(
        [E(EntryKind.IMEI, IMEI, B)], [Pairing(kind=PairingKind.PAIRING, imsi=IMSI1, imei=IMEI)], source="one"
    )
    for _ in range(250):
        if (await checker.check(req(imsi=IMSI1))).rule == "pairing":
            break
        await asyncio.sleep(0.02)
    assert (await checker.check(req(imsi=IMSI1))).rule == "pairing"
    assert serving.rules_calls > 0
    await other.close()
    await serving.close()


async def test_watch_is_registered_once_even_while_the_store_is_down() -> None:
    """A store down at start-up must not collect one callback per check; once it is back, a new
    list version clears the cache and is announced as a ``lists`` event."""

    class DownAtFirst(FlakyStore):
        async def active_version(self) -> int | None:
            if self.down:
                raise StoreUnavailableError("connection refused")
            return await super().active_version()

    s = DownAtFirst()
    clock = Clock()
    checker, _s, ev = await make([E(EntryKind.IMEI, IMEI, B)], store=s, clock=clock)
    s.down = True
    for _ in range(3):
        await checker.check(req())
        clock.now += checker.retry_after
    s.down = False
    await checker.check(req())
    assert len(s._callbacks) == 1
    await s.import_version([E(EntryKind.IMEI, IMEI, G)], [], source="t")
    assert (await checker.check(req())).status is G
    assert [p["version"] for t, p in ev.sent if t == "lists"] == [await s.active_version()]


async def test_a_store_slow_to_fail_is_still_left_alone_for_the_retry_delay() -> None:
    """A black-holed server fails only after its timeout: the retry delay runs from the failure,
    so the next checks get the fallback at once instead of waiting for a timeout each."""

    clock = Clock()

    class SlowToFail(FlakyStore):
        calls = 0

        async def lookup(self, imei: str, imeisv: str | None = None) -> Lookup:
            if self.down:
                SlowToFail.calls += 1
                clock.now += 1.0  # the "timeout": longer than the retry delay
                raise StoreUnavailableError("timeout")
            return await super().lookup(imei, imeisv)

    s = SlowToFail()
    checker, _s, _e = await make([E(EntryKind.IMEI, IMEI, B)], store=s, clock=clock, retry_after=0.5)
    assert (await checker.check(req())).status is B
    s.down = True
    for _ in range(4):
        assert (await checker.check(req())).status is Status.FAILURE
    assert SlowToFail.calls == 1
    clock.now += 0.5
    assert (await checker.check(req())).status is Status.FAILURE
    assert SlowToFail.calls == 2, "once the retry delay has passed the store is asked again"


async def test_an_explained_check_evaluates_the_policy_once() -> None:
    """``eir check --explain`` and the admin API's check: the steps come from the counted check's
    own evaluation (one store look-up, one counted verdict), ending with the verdict step."""
    from eir.explain import explained_check

    class Counting(MemoryStore):
        asked = 0

        def lookup_inline(self, imei: str, imeisv: str | None = None) -> Lookup:
            type(self).asked += 1
            return super().lookup_inline(imei, imeisv)

    checker, _s, _e = await make([E(EntryKind.IMEI, IMEI, B)], store=Counting())
    verdict, steps = await explained_check(checker, req())
    assert Counting.asked == 1, "one evaluation"
    assert steps is not None and steps[-1].rule == "verdict" and steps[-1].outcome == verdict.status.value
    assert verdict.status is B and any(s.rule != "verdict" for s in steps)
    plain, none = await explained_check(checker, req(), explain=False)
    assert (plain.status, none, Counting.asked) == (B, None, 2)
