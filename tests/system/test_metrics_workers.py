"""The aggregated /metrics of ``--workers`` (eir/servers/metrics_http.py), in one process: worker
0's listener merges a worker's Unix-socket exposition with its own, labels every sample with its
worker, and still answers when a worker is gone or hangs (eir_worker_up 0). Parsed by
prometheus_client's parser and fetched by curl."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from eir.config import Config, MetricsConfig
from eir.metrics import register_metrics
from eir.servers.metrics_http import MetricsServer

pytestmark = [pytest.mark.system, pytest.mark.peer("curl", "an independent HTTP client scrapes")]


@pytest.fixture
async def servers() -> AsyncIterator[list[MetricsServer]]:
    made: list[MetricsServer] = []
    yield made
    for s in made:
        await s.shutdown()


async def _curl(url: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "10", url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out.decode()


async def test_two_workers_one_exposition(servers: list[MetricsServer], tmp_path: Path) -> None:
    register_metrics()  # as metrics_http.start does
    cfg = Config(workers=3, metrics=MetricsConfig(listen="127.0.0.1:0"))
    w1 = MetricsServer(cfg)
    await w1.listen_unix(str(tmp_path / "w1.sock"))
    w0 = MetricsServer(cfg)
    w0.worker_sockets = [(1, str(tmp_path / "w1.sock")), (2, str(tmp_path / "w2.sock"))]  # worker 2 is gone
    host, port = await w0.listen("127.0.0.1", 0)
    servers += [w1, w0]
    text = await _curl(f"http://{host}:{port}/metrics")
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    up = {s.labels["worker"]: s.value for s in fams["eir_worker_up"].samples}
    assert up == {"0": 1.0, "1": 1.0, "2": 0.0}
    refused = fams["eir_refused"].samples
    workers = {s.labels["worker"] for s in refused}
    assert workers == {"0", "1"}, "each series once per answering worker"
    assert all(set(s.labels) == {"interface", "reason", "worker"} for s in refused)
    assert text.count("# TYPE eir_refused_total counter") == 1


async def test_a_hung_worker_does_not_hang_the_scrape(servers: list[MetricsServer], tmp_path: Path) -> None:
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)

    hung = await asyncio.start_unix_server(never_answer, str(tmp_path / "w1.sock"))
    w0 = MetricsServer(Config(workers=2, metrics=MetricsConfig(listen="127.0.0.1:0")))
    w0.worker_sockets = [(1, str(tmp_path / "w1.sock"))]
    host, port = await w0.listen("127.0.0.1", 0)
    servers.append(w0)
    try:
        text = await _curl(f"http://{host}:{port}/metrics")
    finally:
        for w in held:
            w.close()
        hung.close()
        with contextlib.suppress(Exception):
            await hung.wait_closed()
    fams: dict[str, Any] = {f.name: f for f in text_string_to_metric_families(text)}
    up = {s.labels["worker"]: s.value for s in fams["eir_worker_up"].samples}
    assert up == {"0": 1.0, "1": 0.0}
