"""Prometheus metrics, one registry for the process, served on ``metrics.listen`` at /metrics.

Label sets are small and bounded: interface, status, rule (never an IMEI or a peer address).
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

# The *_created series double the output and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("eir_check_requests", "IMEI checks received", ["interface"], registry=REGISTRY)
VERDICTS = Counter("eir_verdicts", "Verdicts given, by status and deciding rule",
                   ["interface", "status", "rule"], registry=REGISTRY)
CHECK_SECONDS = Histogram("eir_check_duration_seconds", "Time from request decoded to answer queued",
                          ["interface"], registry=REGISTRY,
                          buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0))
PROTOCOL_ERRORS = Counter("eir_protocol_errors", "Bad input answered with a protocol error",
                          ["interface", "error"], registry=REGISTRY)
PEERS = Gauge("eir_peers", "Connected peers (Diameter peers in OPEN, M3UA ASPs active)",
              ["interface"], registry=REGISTRY)
PEER_EVENTS = Counter("eir_peer_events", "Peer state changes", ["interface", "event"], registry=REGISTRY)
STORE_ERRORS = Counter("eir_store_errors", "Store operations that failed (store unavailable)",
                       ["store"], registry=REGISTRY)
LIST_VERSION = Gauge("eir_list_version", "Active list version id", registry=REGISTRY)
CLONE_SUSPICIONS = Counter("eir_clone_suspicions", "IMEIs suspected cloned", ["reason"], registry=REGISTRY)
EVENTS_DROPPED = Counter("eir_events_dropped", "MQTT events dropped (broker down or queue full)",
                         registry=REGISTRY)


def start_metrics_server(host: str, port: int) -> tuple[object, object]:
    """Serve /metrics in a daemon thread (prometheus_client's own server)."""
    return start_http_server(port, addr=host, registry=REGISTRY)
