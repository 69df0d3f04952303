"""The per-check metrics (lock-free for the event loop thread) export exactly what prometheus_client's
own Counter and Histogram export for the same observations."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from eir.metrics import CHECK_SECONDS, REQUESTS, VERDICTS, register_metrics

REGISTRY = register_metrics()


LABEL = "test-metrics"


def _samples(registry: CollectorRegistry, name: str, label: str) -> list[tuple[str, float]]:
    return sorted(
        (s.name + repr(sorted(s.labels.items())), s.value)
        for m in registry.collect()
        if m.name == name
        for s in m.samples
        if s.labels.get("interface") == label
    )


def test_histogram_matches_the_library() -> None:
    ref_reg = CollectorRegistry()
    ref = Histogram(
        "eir_check_duration_seconds",
        "ref",
        ["interface"],
        registry=ref_reg,
        buckets=CHECK_SECONDS._upper_bounds[:-1],
    )
    rng = random.Random(7)
    values = [0.0, 0.0001, 0.00025, 0.001, 1.0, 1.5, 99.0, float("nan"), float("inf")]
    values += [rng.random() * 0.02 for _ in range(2000)]
    for v in values:
        CHECK_SECONDS.labels(LABEL).observe(v)
        ref.labels(LABEL).observe(v)
    got = _samples(REGISTRY, "eir_check_duration_seconds", LABEL)
    want = _samples(ref_reg, "eir_check_duration_seconds", LABEL)
    assert [k for k, _ in got] == [k for k, _ in want]
    for (_, a), (_, b) in zip(got, want, strict=True):
        assert a == b or (a != a and b != b)  # the sum is NaN once a NaN was observed


def test_counters_match_the_library() -> None:
    ref_reg = CollectorRegistry()
    ref = Counter("eir_verdicts", "ref", ["interface", "status", "rule"], registry=ref_reg)
    for i in range(100):
        for c in (VERDICTS.labels(LABEL, "white", "imei"), ref.labels(LABEL, "white", "imei")):
            c.inc()
            c.inc(i * 0.5)
    assert _samples(REGISTRY, "eir_verdicts", LABEL) == _samples(ref_reg, "eir_verdicts", LABEL)
    before = REGISTRY.get_sample_value("eir_check_requests_total", {"interface": LABEL}) or 0.0
    REQUESTS.labels(LABEL).inc()
    assert REGISTRY.get_sample_value("eir_check_requests_total", {"interface": LABEL}) == before + 1


def test_misuse_is_refused_as_by_the_library() -> None:
    with pytest.raises(ValueError):
        REQUESTS.inc()  # no label values
    with pytest.raises(ValueError):
        REQUESTS.labels(LABEL).inc(-1)
    with pytest.raises(ValueError):
        CHECK_SECONDS.observe(0.1)


def test_importing_the_server_modules_registers_nothing() -> None:
    """Metrics are registered at start-up (``eir serve``), not as a side effect of an import."""
    import subprocess
    import sys

    code = (
        "import eir.servers.m3ua, eir.servers.diameter, eir.checker, eir.events, eir.store.sqlite\n"
        "from eir.metrics import REGISTRY\n"
        "names = [m.name for m in REGISTRY.collect()]\n"
        "assert names == [], names\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_alerting_series_exist_at_zero_from_start_up(tmp_path: object) -> None:
    """eir_store_errors_total, eir_clone_suspicions_total and eir_protocol_errors_total have a
    sample before their first increase, so rate() and alerts work from the start."""
    from eir.checker import build_checker
    from eir.config import Config, DiameterConfig, M3uaConfig
    from eir.events import NullEvents
    from eir.servers import diameter, m3ua
    from eir.store.memory import MemoryStore

    cfg = Config(
        diameter=DiameterConfig(listen=["127.0.0.1:0"], transports=["tcp"]),
        m3ua=M3uaConfig(listen=["127.0.0.1:0"], transports=["tcp"]),
    )
    store = MemoryStore()
    await store.open()
    checker = build_checker(cfg, store, NullEvents())
    servers = [await diameter.start(cfg, checker, NullEvents()), await m3ua.start(cfg, checker, NullEvents())]
    try:
        for name, labels in [
            ("eir_store_errors_total", {"store": "memory"}),
            ("eir_clone_suspicions_total", {"reason": "imsis"}),
            ("eir_clone_suspicions_total", {"reason": "origins"}),
            ("eir_protocol_errors_total", {"interface": "s13", "error": "internal"}),
            ("eir_protocol_errors_total", {"interface": "s13", "error": "invalid_avp_value"}),
            ("eir_protocol_errors_total", {"interface": "map", "error": "internal"}),
            ("eir_protocol_errors_total", {"interface": "map", "error": "m3ua_protocol_error"}),
            ("eir_protocol_errors_total", {"interface": "map", "error": "sccp_discarded"}),
        ]:
            assert REGISTRY.get_sample_value(name, labels) is not None, (name, labels)
    finally:
        for s in servers:
            await s.shutdown(0.1)
        await store.close()


BOUNDED_LABELS = {
    "interface",
    "status",
    "rule",
    "error",
    "event",
    "store",
    "reason",
    "kind",
    "result",
    "operation",
    "vendor",
    "component",
    "type",
    "le",
    "scope",  # eir_overload_refused: global | peer (never the peer itself)
    "outcome",  # eir_nrf_requests_total: the HTTP status or the error kind (never a URL)
    "state",  # eir_nrf_state: the NRF client's states (registering, registered, …)
}
"""Label names whose values come from fixed sets. Never an IMEI, TAC, IMSI, MSISDN or peer address
(PyHSS's per-TAC labels are the warning: one series per handset model)."""


def test_every_metric_label_is_from_a_bounded_set() -> None:
    import eir.servers.m3ua  # noqa: F401 - registers its collectors at start; import for the names

    for m in REGISTRY.collect():
        for s in m.samples:
            assert set(s.labels) <= BOUNDED_LABELS, f"{s.name} has labels {set(s.labels) - BOUNDED_LABELS}"
    for c in REGISTRY._collector_to_names:
        names = set(getattr(c, "_labelnames", ()))
        assert names <= BOUNDED_LABELS, f"{c}: {names - BOUNDED_LABELS}"
