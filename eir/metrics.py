"""Prometheus metrics, one registry for the process, served on ``metrics.listen`` at /metrics
(:mod:`eir.servers.metrics_http`, on the event loop).

Label sets are small and bounded: interface, status, rule (never an IMEI or a peer address).

Importing this module registers nothing: the metric objects exist (so the hot path holds its label
children in module constants), and :func:`register_metrics` puts them into :data:`REGISTRY` when
``eir serve`` starts (tests call it too). Label children that an alert may watch are created at
start-up by their owners (the checker, the adapters), so their series read 0 before the first
event instead of being absent — ``rate()`` and ``increase()`` need a sample to start from.

The per-check counters and the histogram subclass prometheus_client's classes and write their
private value fields (``_value``, ``_sum``, ``_buckets``): pyproject.toml pins prometheus-client
to the minor version tests/unit/test_metrics.py proves equivalent to the library's own classes.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
"""The process's registry; empty until :func:`register_metrics`."""


class _LoopValue:
    """prometheus_client's MutexValue without the mutex, for series that only the event loop
    thread writes (the per-check ones: a lock round trip per increment cost more than the rest of
    the increment). Scrapes run on the event loop too (eir.servers.metrics_http); a collector
    read from another thread would see a float, which the GIL keeps whole."""

    _multiprocess = False
    __slots__ = ("_exemplar", "_value")

    def __init__(self, value: float = 0.0) -> None:
        self._value = value
        self._exemplar: Any = None

    def inc(self, amount: float) -> None:
        self._value += amount

    def set(self, value: float, timestamp: float | None = None) -> None:
        self._value = value

    def set_exemplar(self, exemplar: Any) -> None:
        self._exemplar = exemplar

    def get(self) -> float:
        return self._value

    def get_exemplar(self) -> Any:
        return self._exemplar


class _LoopCounter(Counter):
    """A Counter for the event loop thread only (see :class:`_LoopValue`): same series, cheaper
    ``inc``."""

    def _metric_init(self) -> None:
        super()._metric_init()
        self._value = _LoopValue()

    def inc(self, amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
        if amount < 0 or exemplar or (self._labelnames and not self._labelvalues):
            super().inc(amount, exemplar)  # the library's errors and exemplars
            return
        self._value._value += amount


class _LoopHistogram(Histogram):
    """A Histogram for the event loop thread only: one bisect instead of a scan, no locks."""

    def _metric_init(self) -> None:
        super()._metric_init()
        self._sum = _LoopValue()
        self._buckets = [_LoopValue() for _ in self._upper_bounds]

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        if exemplar or amount != amount or (self._labelnames and not self._labelvalues):
            super().observe(amount, exemplar)  # NaN (no bucket), exemplars, misuse: the library
            return
        self._sum._value += amount
        # the first bucket whose upper bound is >= amount, as Histogram.observe's scan finds it
        self._buckets[bisect_left(self._upper_bounds, amount)]._value += 1


REQUESTS = _LoopCounter("eir_check_requests", "IMEI checks received", ["interface"], registry=None)
VERDICTS = _LoopCounter(
    "eir_verdicts",
    "Verdicts given, by status and deciding rule",
    ["interface", "status", "rule"],
    registry=None,
)
CHECK_SECONDS = _LoopHistogram(
    "eir_check_duration_seconds",
    "Time from request decoded to answer queued",
    ["interface"],
    registry=None,
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0),
)
PROTOCOL_ERRORS = Counter(
    "eir_protocol_errors",
    "Bad input answered with a protocol error",
    ["interface", "error"],
    registry=None,
)
PEERS = Gauge(
    "eir_peers",
    "Connected peers (Diameter peers in OPEN, M3UA ASPs active)",
    ["interface"],
    registry=None,
)
PEER_EVENTS = Counter("eir_peer_events", "Peer state changes", ["interface", "event"], registry=None)
STORE_ERRORS = Counter(
    "eir_store_errors", "Store operations that failed (store unavailable)", ["store"], registry=None
)
LIST_VERSION = Gauge("eir_list_version", "Active list version id", registry=None)
CLONE_SUSPICIONS = Counter("eir_clone_suspicions", "IMEIs suspected cloned", ["reason"], registry=None)
SIGHTINGS_WRITTEN = Counter(
    "eir_sightings_written", "Clone sightings written behind to the store", registry=None
)
SIGHTINGS_DROPPED = Counter(
    "eir_sightings_dropped",
    "Clone sightings never written: the write-behind queue was full (oldest dropped) or the store "
    "failed a batch. The clone rule still counted them in memory.",
    registry=None,
)
SIGHTINGS_TRACKED = Gauge(
    "eir_sightings_tracked_imeis", "IMEIs whose clone sightings are held in memory", registry=None
)
SIGHTINGS_REFUSED = Counter(
    "eir_sightings_refused",
    "New clone sightings not recorded (policy.clone: untrusted = from an origin outside "
    "trusted_origins; peer_budget / global_budget = over max_new_per_origin / max_new_per_second)",
    ["reason"],
    registry=None,
)
SIGHTINGS_EVICTED = Counter(
    "eir_sightings_evicted",
    "Stored clone sightings deleted, oldest first, to keep the store under policy.clone.max_stored",
    registry=None,
)
SIGHTINGS_CLEARED = Counter(
    "eir_sightings_cleared", "IMEIs whose clone sightings an operator cleared", registry=None
)
REFUSED = Counter(
    "eir_refused",
    "Connections, peers and requests refused by an allow-list, an addressing rule or a connection "
    "limit, by interface (s13, map, metrics) and reason",
    ["interface", "reason"],
    registry=None,
)
LOG_SUPPRESSED = Counter(
    "eir_log_suppressed",
    "Warnings left out of the log by the rate limit (log.rate_limit_*), by kind; the events "
    "themselves are counted by their own metrics",
    ["kind"],
    registry=None,
)
EVENTS_DROPPED = Counter(
    "eir_events_dropped",
    "MQTT events dropped: the buffer (mqtt.buffer_size) overflowed while the broker was away; the "
    "oldest go first",
    registry=None,
)
EVENTS_PUBLISHED = Counter(
    "eir_events_published", "MQTT messages the broker acknowledged (or sent, at QoS 0)", registry=None
)
MQTT_CONNECTED = Gauge("eir_mqtt_connected", "1 while connected to the MQTT broker", registry=None)
MQTT_BUFFERED = Gauge(
    "eir_mqtt_buffered", "MQTT events waiting to be sent (the broker away or slow)", registry=None
)
LIST_UPDATES = Counter(
    "eir_list_updates",
    "List updates received over MQTT, by result: applied (a new version), rejected (validation "
    "errors, nothing applied), duplicate (an id already applied: acknowledged again)",
    ["result"],
    registry=None,
)
LIST_ENTRIES = Gauge(
    "eir_list_entries",
    "Entries of the active list version by kind (equipment, pairing) — set at start and on each "
    "list change this process makes or sees",
    ["kind"],
    registry=None,
)
FAULTS_INJECTED = Counter(
    "eir_faults_injected",
    "Faults injected on purpose (eir/faults.py rules from faults: or the admin API), by kind",
    ["kind"],
    registry=None,
)
STORE_SECONDS = _LoopHistogram(
    "eir_store_duration_seconds",
    "Time a store call of a check took (a cached answer is not counted), by operation: lookup "
    "(equipment lists), imsi_rules (pairings and locks)",
    ["operation"],
    registry=None,
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0),
)
HANDLE_LOOKUPS = Counter(
    "eir_handle_lookups",
    "X.1255 handle look-ups (policy.handle) by result: found, not_found, timeout, error, cached",
    ["result"],
    registry=None,
)
OVERLOAD_REFUSED = Counter(
    "eir_overload_refused",
    "Checks refused by the overload control (overload.*) instead of waiting for the store, by "
    "interface and scope (global: the process budget; peer: the peer's budget or fair share)",
    ["interface", "scope"],
    registry=None,
)
CHECKS_IN_FLIGHT = Gauge(
    "eir_checks_in_flight",
    "Checks waiting for the store (or a delay fault), whole process: what overload.max_in_flight bounds",
    registry=None,
)

DUPLICATES_FLAGGED = Gauge(
    "eir_duplicates_flagged",
    "IMEIs the DIRBS duplicate_mk1 rule (policy.duplicate) has flagged; sticky, so it only grows",
    registry=None,
)
HISTORY_DROPPED = Counter(
    "eir_history_dropped",
    "Observations not kept because a bound was reached, by kind: first_seen (policy.tac_not_allocated "
    "grace: max_first_seen) or duplicate_history (policy.duplicate: max_pending)",
    ["kind"],
    registry=None,
)
CONTROL_UNDELIVERED = Counter(
    "eir_control_undelivered",
    "Control messages between workers (--workers: fault rules, clears) never delivered: given up "
    "after the retries, too large, or a send error (eir/control.py)",
    registry=None,
)
for _kind in ("first_seen", "duplicate_history"):  # exported at 0 from start
    HISTORY_DROPPED.labels(_kind)


_OWN: tuple[Collector, ...] = (
    REQUESTS,
    VERDICTS,
    CHECK_SECONDS,
    PROTOCOL_ERRORS,
    PEERS,
    PEER_EVENTS,
    STORE_ERRORS,
    LIST_VERSION,
    CLONE_SUSPICIONS,
    SIGHTINGS_WRITTEN,
    SIGHTINGS_DROPPED,
    SIGHTINGS_TRACKED,
    SIGHTINGS_REFUSED,
    SIGHTINGS_EVICTED,
    SIGHTINGS_CLEARED,
    REFUSED,
    LOG_SUPPRESSED,
    EVENTS_DROPPED,
    EVENTS_PUBLISHED,
    MQTT_CONNECTED,
    MQTT_BUFFERED,
    LIST_UPDATES,
    LIST_ENTRIES,
    FAULTS_INJECTED,
    STORE_SECONDS,
    HANDLE_LOOKUPS,
    OVERLOAD_REFUSED,
    CHECKS_IN_FLIGHT,
    DUPLICATES_FLAGGED,
    HISTORY_DROPPED,
    CONTROL_UNDELIVERED,
)
_registered: set[int] = set()


def register_metrics(*extra: Collector) -> CollectorRegistry:
    """Put this module's metrics and ``extra`` collectors into :data:`REGISTRY`; each collector
    once, however often this is called (``eir serve`` calls it at start-up, each interface adds
    its own collectors when it starts)."""
    # The *_created series double the output and no dashboard of ours reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    for c in (*_OWN, *extra):
        if id(c) not in _registered:
            REGISTRY.register(c)
            _registered.add(id(c))
    return REGISTRY
