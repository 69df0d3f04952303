"""MQTT events against a real Mosquitto broker that the test starts on a free port.

The publisher must never block a check: with the broker down, publish() returns at once and the
events are counted as dropped; when the broker comes back the publisher reconnects by itself.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from eir.events import MqttEvents
from eir.metrics import EVENTS_DROPPED
from testkit.services import free_port

pytestmark = pytest.mark.peer("mosquitto", "MQTT events are published to a real broker")


class Broker:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


async def _collect(
    port: int, topic: str, n: int, ready: asyncio.Event, timeout: float = 10, until: str | None = None
) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(topic, qos=1)
        ready.set()
        async with asyncio.timeout(timeout):
            async for msg in client.messages:
                out.append((str(msg.topic), json.loads(bytes(msg.payload))))  # type: ignore[arg-type]
                if len(out) >= n and (until is None or out[-1][0] == until):
                    break
    return out


async def test_events_reach_a_subscriber_with_prefix_and_timestamp(broker: Broker) -> None:
    ready = asyncio.Event()
    sub = asyncio.create_task(_collect(broker.port, "lab/#", 3, ready))
    await ready.wait()
    ev = MqttEvents(f"mqtt://127.0.0.1:{broker.port}", "lab")
    await ev.start()
    await asyncio.wait_for(ev.connected.wait(), 10)
    ev.publish("clone", {"imei": "35209900176148", "imsis": 3})
    ev.publish("peer", {"interface": "s13", "peer": "mme.lab", "state": "open"})
    ev.publish("verdict/black", {"imei": "35394206000002", "rule": "imei"})
    got = await asyncio.wait_for(sub, 15)
    await ev.close()
    topics = [t for t, _ in got]
    assert topics == ["lab/clone", "lab/peer", "lab/verdict/black"]
    assert got[0][1]["imei"] == "35209900176148" and isinstance(got[0][1]["ts"], float)
    assert got[1][1]["state"] == "open"


async def test_broker_down_drops_without_blocking_then_reconnects(broker: Broker) -> None:
    broker.stop()
    ev = MqttEvents(f"mqtt://127.0.0.1:{broker.port}", "eir", queue_size=4)
    await ev.start()
    before = EVENTS_DROPPED._value.get()
    t0 = time.perf_counter()
    for i in range(50):
        ev.publish("clone", {"n": i})
    assert time.perf_counter() - t0 < 1.0  # bounded sanity, not a benchmark: publish never waits
    assert EVENTS_DROPPED._value.get() - before >= 46  # the queue holds 4; the rest are dropped
    assert not ev.connected.is_set()
    broker.start()
    await asyncio.wait_for(ev.connected.wait(), 20)
    ready = asyncio.Event()
    sub = asyncio.create_task(_collect(broker.port, "eir/#", 1, ready, until="eir/lists"))
    await ready.wait()
    ev.publish("lists", {"version": 7})
    got = await asyncio.wait_for(sub, 15)
    await ev.close()
    # What the bounded queue held while the broker was down may arrive first (at most 4 of them).
    assert got[-1][0] == "eir/lists" and got[-1][1]["version"] == 7
    assert len(got) <= 5 and all(t == "eir/clone" for t, _ in got[:-1])
