"""MQTT events against a real Mosquitto broker that the test starts on a free port
(testkit.services.MosquittoServer, persistence on as a production broker has it).

The publisher must never block a check: with the broker down, publish() returns at once, the
bounded buffer keeps the newest events (the oldest dropped and counted); when the broker comes back
the publisher reconnects by itself and the buffered events leave in order. An event leaves the
buffer only once the broker has acknowledged it, so a restart in the middle of traffic loses none.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest

from eir.events import MqttEvents
from eir.metrics import EVENTS_DROPPED, MQTT_BUFFERED
from testkit.services import MosquittoServer

pytestmark = pytest.mark.peer("mosquitto", "MQTT events are published to a real broker")


async def _collect(
    port: int, topic: str, n: int, ready: asyncio.Event, timeout: float = 10, until: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(topic, qos=1)
        ready.set()
        async with asyncio.timeout(timeout):
            async for msg in client.messages:
                out.append((str(msg.topic), json.loads(bytes(msg.payload))))
                if len(out) >= n and (until is None or out[-1][0] == until):
                    break
    return out


async def _durable_subscriber(
    port: int, topic: str, identifier: str, ready: asyncio.Event, sink: list[int], last: int
) -> None:
    """A QoS 1 subscriber with a persistent session: it reconnects across a broker restart and gets
    what the broker queued for it meanwhile. Appends each message's ``n`` until ``last`` arrives."""
    while True:
        try:
            async with aiomqtt.Client("127.0.0.1", port, identifier=identifier, clean_session=False) as c:
                await c.subscribe(topic, qos=1)
                ready.set()
                async for msg in c.messages:
                    n = json.loads(bytes(msg.payload))["n"]  # type: ignore[arg-type,unused-ignore]
                    sink.append(n)
                    if n == last:
                        return
        except aiomqtt.MqttError:
            await asyncio.sleep(0.1)


@pytest.fixture
async def subscriber_factory() -> AsyncIterator[list[asyncio.Task[object]]]:
    tasks: list[asyncio.Task[object]] = []
    yield tasks
    for t in tasks:
        t.cancel()


async def test_events_reach_a_subscriber_with_prefix_and_timestamp(mosquitto: MosquittoServer) -> None:
    ready = asyncio.Event()
    sub = asyncio.create_task(_collect(mosquitto.port, "lab/#", 4, ready, until="lab/verdict/black"))
    await ready.wait()
    ev = MqttEvents(mosquitto.url, "lab")
    await ev.start()
    await asyncio.wait_for(ev.connected.wait(), 10)
    ev.publish("clone", {"imei": "35209900176148", "imsis": 3})
    ev.publish("peer", {"interface": "s13", "peer": "mme.lab", "state": "open"})
    ev.publish("verdict/black", {"imei": "35394206000002", "rule": "imei"})
    got = await asyncio.wait_for(sub, 15)
    await ev.close()
    # the status (published first, at connect) is also under lab/#
    assert got[0][0] == "lab/status" and got[0][1]["state"] == "online"
    got = got[1:]
    topics = [t for t, _ in got]
    assert topics == ["lab/clone", "lab/peer", "lab/verdict/black"]
    assert got[0][1]["imei"] == "35209900176148" and isinstance(got[0][1]["ts"], float)
    assert got[1][1]["state"] == "open"


async def test_masked_identities_in_events(mosquitto: MosquittoServer) -> None:
    ready = asyncio.Event()
    sub = asyncio.create_task(_collect(mosquitto.port, "eir/clone", 1, ready))
    await ready.wait()
    ev = MqttEvents(mosquitto.url, "eir", mask=True)
    await ev.start()
    ev.publish("clone", {"imei": "35209900176148", "imsis": ["001010123456789", "001010000000001"]})
    ((_, body),) = await asyncio.wait_for(sub, 15)
    await ev.close()
    assert body["imei"] == "35209900******"
    assert body["imsis"] == ["00101**********", "00101**********"]


async def test_status_is_retained_online_then_offline_on_close(mosquitto: MosquittoServer) -> None:
    ev = MqttEvents(mosquitto.url, "eir", client_id="eir-status-test")
    await ev.start()
    await asyncio.wait_for(ev.connected.wait(), 10)
    ready = asyncio.Event()
    # a subscriber arriving later still gets the state: it is retained
    ((topic, body),) = await asyncio.wait_for(_collect(mosquitto.port, "eir/status", 1, ready), 15)
    assert (topic, body["state"], body["client_id"]) == ("eir/status", "online", "eir-status-test")
    await ev.close()
    ((topic, body),) = await asyncio.wait_for(_collect(mosquitto.port, "eir/status", 1, asyncio.Event()), 15)
    assert body["state"] == "offline"


async def test_broker_down_keeps_the_newest_events_and_sends_them_in_order(
    mosquitto: MosquittoServer,
) -> None:
    # a subscriber whose session the broker keeps: it gets what was published while it was away
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="late-sub", clean_session=False) as c:
        await c.subscribe("eir/clone", qos=1)
    mosquitto.stop()
    ev = MqttEvents(mosquitto.url, "eir", queue_size=4)
    await ev.start()
    before = EVENTS_DROPPED._value.get()
    t0 = time.perf_counter()
    for i in range(50):
        ev.publish("clone", {"n": i})
    assert time.perf_counter() - t0 < 1.0  # bounded sanity, not a benchmark: publish never waits
    assert EVENTS_DROPPED._value.get() - before == 46  # the buffer holds 4; the 46 oldest are dropped
    assert ev.buffered == 4 and MQTT_BUFFERED._value.get() == 4
    assert not ev.connected.is_set()
    mosquitto.start()
    got: list[int] = []
    await asyncio.wait_for(
        _durable_subscriber(mosquitto.port, "eir/clone", "late-sub", asyncio.Event(), got, 49), 40
    )
    assert got == [46, 47, 48, 49]
    await ev.close()


async def test_broker_restart_in_the_middle_of_traffic_loses_nothing_and_keeps_order(
    mosquitto: MosquittoServer, subscriber_factory: list[asyncio.Task[object]]
) -> None:
    total = 600
    got: list[int] = []
    ready = asyncio.Event()
    sub = asyncio.create_task(
        _durable_subscriber(mosquitto.port, "eir/seq", "durable-sub", ready, got, total - 1)
    )
    subscriber_factory.append(sub)  # type: ignore[arg-type,unused-ignore]
    await asyncio.wait_for(ready.wait(), 10)
    ev = MqttEvents(mosquitto.url, "eir", queue_size=total)
    await ev.start()
    await asyncio.wait_for(ev.connected.wait(), 10)
    for i in range(total // 2):
        ev.publish("seq", {"n": i})
    # restart while those are leaving (some acknowledged, some in flight, some still buffered)
    async with asyncio.timeout(15):
        while not got:
            await asyncio.sleep(0.005)
    mosquitto.stop()
    for i in range(total // 2, total):
        ev.publish("seq", {"n": i})  # the broker is away: buffered
    mosquitto.start()
    await asyncio.wait_for(sub, 60)
    await ev.close()
    assert ev.connects >= 2, "the publisher reconnected"
    first_seen = list(dict.fromkeys(got))  # QoS 1 is at least once: a resent event may repeat
    assert first_seen == list(range(total)), "every event, in publishing order"
