"""MQTT over TLS with a username and password, against a Mosquitto with a TLS listener and a
password file (certificates made by openssl in the test). The subscriber is Mosquitto's own
``mosquitto_sub``: an independent client reads what the EIR published."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator

import pytest

from eir.events import MqttEvents, tls_context
from testkit.services import MosquittoServer

pytestmark = pytest.mark.peer("mosquitto", "MQTT over TLS is tested against a real broker")

USERS = {"eir": "s3cret-eir", "ceir": "s3cret-ceir"}


@pytest.fixture
def tls_broker() -> Iterator[MosquittoServer]:
    srv = MosquittoServer(tls=True, users=USERS)
    srv.start()
    yield srv
    srv.destroy()


async def _mosquitto_sub(broker: MosquittoServer, topic: str) -> asyncio.subprocess.Process:
    """``mosquitto_sub`` over TLS, returned once the broker has acknowledged its subscription."""
    proc = await asyncio.create_subprocess_exec(
        "stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
        "--cafile", str(broker.certs["ca"]),
        "-u", "ceir", "-P", USERS["ceir"], "-t", topic, "-q", "1", "-C", "1", "-v", "-d",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(15):
        while b"SUBACK" not in await proc.stdout.readline():
            pass
    return proc


async def test_events_over_tls_with_password_reach_mosquitto_sub(tls_broker: MosquittoServer) -> None:
    sub = await _mosquitto_sub(tls_broker, "eir/clone")
    ev = MqttEvents(
        tls_broker.url,
        "eir",
        username="eir",
        password=USERS["eir"],
        tls=tls_context(str(tls_broker.certs["ca"])),
    )
    assert ev.broker == f"mqtts://127.0.0.1:{tls_broker.port}" and "s3cret" not in ev.broker
    await ev.start()
    await asyncio.wait_for(ev.connected.wait(), 15)
    ev.publish("clone", {"imei": "35209900176148", "imsis": 3})
    out, _ = await asyncio.wait_for(sub.communicate(), 15)
    await ev.close()
    line = next(x for x in out.decode().splitlines() if x.startswith("eir/clone "))
    assert json.loads(line.split(" ", 1)[1])["imei"] == "35209900176148"


async def test_wrong_password_is_refused_and_retried(tls_broker: MosquittoServer) -> None:
    ev = MqttEvents(
        tls_broker.url, "eir", username="eir", password="wrong", tls=tls_context(str(tls_broker.certs["ca"]))
    )
    await ev.start()
    async with asyncio.timeout(20):
        while ev.failures < 2:  # refused, then refused again after the backoff
            await asyncio.sleep(0.05)
    assert ev.connects == 0 and not ev.connected.is_set()
    assert ev.last_error is not None and "wrong" not in ev.last_error
    assert "authoriz" in ev.last_error.lower() or "password" in ev.last_error.lower(), ev.last_error
    ev.publish("clone", {"n": 1})  # still never blocks: buffered
    assert ev.buffered == 1
    await ev.close()


async def test_a_broker_certificate_from_an_unknown_ca_is_refused(tls_broker: MosquittoServer) -> None:
    ev = MqttEvents(tls_broker.url, "eir", username="eir", password=USERS["eir"])  # system CAs only
    await ev.start()
    async with asyncio.timeout(20):
        while ev.failures < 1:
            await asyncio.sleep(0.05)
    assert ev.connects == 0
    assert ev.last_error is not None and "certificate" in ev.last_error.lower(), ev.last_error
    await ev.close()


def test_plain_mqtt_client_cannot_talk_to_the_tls_listener(tls_broker: MosquittoServer) -> None:
    r = subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(tls_broker.port), "-u", "eir", "-P", USERS["eir"],
         "-t", "x", "-m", "y"],
        capture_output=True, timeout=20,
    )  # fmt: skip
    assert r.returncode != 0
