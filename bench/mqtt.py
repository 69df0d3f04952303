"""MQTT and metrics figures: events through a real Mosquitto (QoS 1, ordered, acknowledged), the
cost of ``publish()`` on the check path, list updates over MQTT (publish → applied → ack), and the
cost of the aggregated ``/metrics`` of ``--workers``.

Wall-clock figures on a shared 2-core machine are noisy; CPU seconds of this process are printed
beside them (the broker's CPU is not counted).
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def _events(port: int, n: int) -> dict[str, Any]:
    import aiomqtt

    from eir.events import MqttEvents

    got = 0
    done = asyncio.Event()

    async def subscriber(ready: asyncio.Event) -> None:
        nonlocal got
        async with aiomqtt.Client("127.0.0.1", port, max_queued_incoming_messages=0) as c:
            await c.subscribe("bench/seq", qos=1)
            ready.set()
            async for _ in c.messages:
                got += 1
                if got == n:
                    done.set()
                    return

    ready = asyncio.Event()
    sub = asyncio.create_task(subscriber(ready))
    await ready.wait()
    ev = MqttEvents(f"mqtt://127.0.0.1:{port}", "bench", queue_size=n + 10)
    await ev.start()
    await asyncio.wait_for(ev.connected.wait(), 10)
    payload = {"imei": "35394206000002", "imsi": "001010123456789", "interface": "s13", "status": "black"}
    c0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(n):
        ev.publish("seq", {**payload, "n": i})
    publish_cpu = time.process_time() - c0
    while ev.buffered:
        await asyncio.sleep(0.005)
    acked = time.perf_counter() - t0
    acked_cpu = time.process_time() - c0
    await asyncio.wait_for(done.wait(), 60)
    delivered = time.perf_counter() - t0
    await ev.close()
    sub.cancel()
    return {
        "events": n,
        "publish_call_us_cpu": round(publish_cpu / n * 1e6, 2),
        "acked_per_s_wall": round(n / acked),
        "acked_per_s_cpu": round(n / acked_cpu),
        "delivered_to_subscriber_s": round(delivered, 2),
    }


async def _list_updates(port: int, n: int, rows: int) -> dict[str, Any]:
    import aiomqtt

    from eir.events import MqttEvents
    from eir.mqtt_lists import ListUpdates
    from eir.store import create_store

    with tempfile.TemporaryDirectory() as tmp:
        store = create_store(f"sqlite:///{Path(tmp) / 'eir.db'}", tmp)
        await store.open()
        await store.import_version([], [], source="empty")
        ev = MqttEvents(
            f"mqtt://127.0.0.1:{port}",
            "eir",
            client_id="bench-eir",
            subscribe="bench/lists",
            on_message=ListUpdates(store).handle,
        )
        await ev.start()
        await asyncio.wait_for(ev.connected.wait(), 10)
        lat: list[float] = []
        # the CEIR, with TCP_NODELAY as the EIR has it (else its PUBLISH after a PUBACK waits for
        # the broker's delayed ACK: 40 ms)
        nodelay = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
        async with aiomqtt.Client("127.0.0.1", port, socket_options=nodelay) as c:
            await c.subscribe("eir/lists/ack", qos=1)
            msgs = c.messages.__aiter__()
            for i in range(n):
                imei = f"353942{i:08d}"
                body = json.dumps({"id": f"b-{i}", "rows": [{"imei": imei, "status": "black"}]}).encode()
                t0 = time.perf_counter()
                await c.publish("bench/lists", body, qos=1)
                ack = json.loads(bytes((await msgs.__anext__()).payload))  # type: ignore[arg-type,unused-ignore]
                lat.append(time.perf_counter() - t0)
                assert ack["ok"], ack
            lines = "\n".join(f"35{i:012d},black" for i in range(rows))
            big = f"imei,status\n{lines}\n".encode()
            c0 = time.process_time()
            t0 = time.perf_counter()
            await c.publish("bench/lists", big, qos=1)
            ack = json.loads(bytes((await msgs.__anext__()).payload))  # type: ignore[arg-type,unused-ignore]
            big_s = time.perf_counter() - t0
            big_cpu = time.process_time() - c0
            assert ack["ok"] and ack["entries"] == rows, ack
        await ev.close()
        await store.close()
    return {
        "delta_updates": n,
        "delta_publish_to_ack_ms_p50": round(statistics.median(lat) * 1000, 2),
        "delta_publish_to_ack_ms_p99": round(_pct(lat, 0.99) * 1000, 2),
        "csv_rows": rows,
        "csv_bytes": len(big),
        "csv_publish_to_ack_s": round(big_s, 2),
        "csv_cpu_s": round(big_cpu, 2),
    }


async def _aggregated_scrape(n: int) -> dict[str, Any]:
    from prometheus_client import generate_latest

    from eir.config import Config, MetricsConfig
    from eir.metrics import REGISTRY, VERDICTS, register_metrics
    from eir.servers.metrics_http import MetricsServer

    register_metrics()
    for iface in ("s13", "map", "n5g"):
        for st in ("white", "grey", "black"):
            VERDICTS.labels(iface, st, "imei").inc()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config(metrics=MetricsConfig(listen="127.0.0.1:0"))
        peer = MetricsServer(cfg)
        await peer.listen_unix(str(Path(tmp) / "w1.sock"))
        agg = MetricsServer(cfg)
        agg.worker_sockets = [(1, str(Path(tmp) / "w1.sock"))]
        size = len(await agg.aggregated())
        c0 = time.process_time()
        for _ in range(n):
            generate_latest(REGISTRY)
        plain_cpu = (time.process_time() - c0) / n
        c0 = time.process_time()
        for _ in range(n):
            await agg.aggregated()
        agg_cpu = (time.process_time() - c0) / n
        await peer.shutdown()
    return {
        "scrapes": n,
        "one_worker_render_ms_cpu": round(plain_cpu * 1000, 2),
        "two_workers_aggregated_ms_cpu": round(agg_cpu * 1000, 2),
        "aggregated_bytes": size,
    }


def _logging(n: int) -> dict[str, Any]:
    import io

    import structlog

    from eir.logging import get_logger, setup_logging

    out: dict[str, Any] = {"lines": n}
    for mask in (False, True):
        setup_logging("debug", "json", io.StringIO(), mask_identities=mask)
        log = get_logger(interface="s13")
        c0 = time.process_time()
        for _ in range(n):
            log.debug(
                "check", imei="35394206000002", sv=None, imsi="001010123456789", origin="mme", status="white"
            )
        out[f"debug_check_line_us_cpu{'_masked' if mask else ''}"] = round(
            (time.process_time() - c0) / n * 1e6, 2
        )
        structlog.reset_defaults()
    return out


def run(quick: bool = False) -> dict[str, Any]:
    from testkit.services import MosquittoServer

    broker = MosquittoServer(persistence=False)
    broker.start()
    try:
        res: dict[str, Any] = {}
        res["events"] = asyncio.run(_events(broker.port, 5_000 if quick else 50_000))
        res["list_updates"] = asyncio.run(
            _list_updates(broker.port, 50 if quick else 300, 20_000 if quick else 200_000)
        )
        res["metrics_workers"] = asyncio.run(_aggregated_scrape(50 if quick else 300))
        res["logging"] = _logging(5_000 if quick else 50_000)
        return res
    finally:
        broker.destroy()


if __name__ == "__main__":
    print(json.dumps(run(quick=True), indent=2))
