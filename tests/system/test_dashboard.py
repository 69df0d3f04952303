"""config/grafana/eir-dashboard.json and config/prometheus.yml: every metric the dashboard queries
exists on a live ``eir serve``'s /metrics (read with prometheus_client's parser), and the labels it
groups by are labels those metrics have."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from simulations.mme import SimulatedMme

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "config" / "grafana" / "eir-dashboard.json"
SUFFIXES = ("_bucket", "_sum", "_count", "_total")


def _queries(dash: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        q = var.get("query")
        if isinstance(q, dict):
            exprs.append(q["query"])
    return exprs


def test_dashboard_is_well_formed() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for wanted in ("verdict", "latency", "peers", "errors", "list version", "list size", "store latency",
                   "clone", "faults"):  # fmt: skip
        assert wanted in titles, f"a panel about {wanted}"
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]
        for t in p["targets"]:
            e = t["expr"]
            assert e.count("(") == e.count(")") and e.count("{") == e.count("}"), e
            assert 'job=~"$job"' in e, f"every query follows the job selector: {e}"


def test_prometheus_example_scrapes_the_default_metrics_address() -> None:
    conf = yaml.safe_load((ROOT / "config" / "prometheus.yml").read_text())
    job = conf["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9464"]


def test_every_queried_metric_exists_on_a_live_server(eir_factory) -> None:  # type: ignore[no-untyped-def]
    eir = eir_factory(lists="imei,status\n35394206000002,black\n")

    async def one_check() -> None:
        mme = await SimulatedMme.connect(*eir.diameter)
        assert (await mme.check("35394206000002", imsi="001010123456789")).verdict == "black"
        await mme.close()

    asyncio.run(one_check())
    families = {f.name: f for f in text_string_to_metric_families(eir.metrics_text())}
    samples = {s.name: s for f in families.values() for s in f.samples}
    dash = json.loads(DASHBOARD.read_text())
    queried: dict[str, set[str]] = {}
    for expr in _queries(dash):
        by = set()
        for m in re.finditer(r"\b(?:by|without) \(([^)]*)\)", expr):
            by |= {x.strip() for x in m.group(1).split(",") if x.strip() and x.strip() != "le"}
        for name in re.findall(r"\b(eir_[a-z0-9_]+)\b", expr):
            queried.setdefault(name, set()).update(by)
    assert len(queried) >= 15
    missing = []
    for name, labels in sorted(queried.items()):
        base = name
        for suf in SUFFIXES:
            if name.endswith(suf) and name[: -len(suf)] in families:
                base = name[: -len(suf)]
        fam = families.get(base)
        if fam is None:
            missing.append(name)
            continue
        declared = {lbl for s in fam.samples for lbl in s.labels}
        if fam.samples:
            assert labels <= declared, f"{name}: grouped by {labels - declared}, which it does not have"
    assert not missing, f"queried by the dashboard, absent from /metrics: {missing}"
    # the panels a person looks at first have data after one check
    for name in ("eir_verdicts_total", "eir_check_duration_seconds_bucket", "eir_list_version",
                 "eir_list_entries", "eir_store_duration_seconds_bucket", "eir_peers"):  # fmt: skip
        assert name in samples, f"{name} has a sample after one check"
    assert eir.stop() == 0
