"""A running ``eir serve`` with MQTT: a list update published by a CEIR changes the verdict an MME
gets at once; the retained status says online, and offline when the process dies without a word
(the broker's last-will) — against a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import aiomqtt
import pytest

from simulations.mme import SimulatedMme
from testkit.services import MosquittoServer

pytestmark = [pytest.mark.system, pytest.mark.peer("mosquitto", "a real broker between the CEIR and the EIR")]

IMEI = "35394206000002"


async def _status(port: int) -> dict[str, Any]:
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.subscribe("eir/status", qos=1)
        async with asyncio.timeout(10):
            async for msg in c.messages:
                return dict(json.loads(bytes(msg.payload)))  # type: ignore[arg-type,unused-ignore]
    raise AssertionError("no retained status")


async def _update(port: int, body: dict[str, Any]) -> dict[str, Any]:
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.subscribe("eir/lists/ack", qos=1)
        await c.publish("eir/lists/update", json.dumps(body).encode(), qos=1)
        async with asyncio.timeout(20):
            async for msg in c.messages:
                return dict(json.loads(bytes(msg.payload)))  # type: ignore[arg-type,unused-ignore]
    raise AssertionError("no acknowledgement")


def test_list_update_over_mqtt_changes_the_s13_verdict_and_status_follows_the_process(
    eir_factory: Any, mosquitto: MosquittoServer
) -> None:
    eir = eir_factory(
        {"mqtt": {"enabled": True, "url": mosquitto.url, "lists_in": True}},
        lists=f"imei,status\n{IMEI},white\n",
    )
    eir.wait_for_log("mqtt_connected")
    ready = eir.wait_for_log("eir_ready")
    assert ready["mqtt"] == mosquitto.url

    async def scenario() -> None:
        status = await _status(mosquitto.port)
        assert status["state"] == "online" and status["client_id"] == "eir-eir.localdomain"
        mme = await SimulatedMme.connect(*eir.diameter)
        assert (await mme.check(IMEI)).verdict == "white"
        ack = await _update(mosquitto.port, {"id": "c-1", "rows": [{"imei": IMEI, "status": "black"}]})
        assert ack["ok"] is True and ack["id"] == "c-1"
        assert (await mme.check(IMEI)).verdict == "black", "the new version answers at once"
        await mme.close()

    asyncio.run(scenario())
    text = eir.metrics_text()
    assert 'eir_list_updates_total{result="applied"} 1.0' in text
    assert "eir_mqtt_connected 1.0" in text
    assert eir.proc is not None
    eir.proc.send_signal(signal.SIGKILL)  # no goodbye: the broker publishes the last-will
    eir.proc.wait(10)
    assert asyncio.run(_status(mosquitto.port))["state"] == "offline"
