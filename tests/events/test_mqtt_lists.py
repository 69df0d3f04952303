"""List updates in over MQTT (eir/mqtt_lists.py) against a real Mosquitto and a real store.

A central EIR / CEIR (here an aiomqtt client of the test) publishes list changes; the EIR applies
them as a new list version with the validation of ``eir lists import`` and acknowledges with the
version id or the bad rows. An update published while the EIR is reconnecting is kept by the broker
(persistent session, QoS 1) and applied once the EIR is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from eir.events import MqttEvents
from eir.metrics import LIST_UPDATES
from eir.mqtt_lists import ListUpdates, UpdateError, update_to_csv
from eir.store import create_store
from eir.store.base import IdentityStore
from testkit.services import MosquittoServer

pytestmark = pytest.mark.peer("mosquitto", "list updates arrive through a real broker")

TOPIC = "ceir/lists"


class Gate:
    """A TCP relay in front of the broker that the test can shut: the EIR loses its connection
    and cannot reconnect until :meth:`open`; the broker itself stays up."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.server: asyncio.Server | None = None
        self.port = 0
        self.pipes: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def shut(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.pipes):
            w.transport.abort()
        await self.server.wait_closed()

    async def _relay(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        br, bw = await asyncio.open_connection("127.0.0.1", self.target)
        self.pipes |= {w, bw}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(r, bw), pump(br, w))
        self.pipes -= {w, bw}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[IdentityStore]:
    s = create_store(f"sqlite:///{tmp_path / 'eir.db'}", str(tmp_path))
    await s.open()
    await s.import_version([], [], source="empty")
    yield s
    await s.close()


async def _eir(port: int, store: IdentityStore) -> MqttEvents:
    updates = ListUpdates(store)
    ev = MqttEvents(
        f"mqtt://127.0.0.1:{port}",
        "eir",
        client_id="eir-lists-test",
        subscribe=TOPIC,
        on_message=updates.handle,
    )
    await ev.start()
    await asyncio.wait_for(ev.connected.wait(), 15)
    return ev


async def _publish_and_ack(
    port: int, bodies: list[bytes], *, timeout: float = 30, then: Any = None
) -> list[dict[str, Any]]:
    """Publish each body (QoS 1) as the CEIR and wait for as many acknowledgements; ``then()`` is
    awaited once the broker has acknowledged every publish."""
    acks: list[dict[str, Any]] = []
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.subscribe("eir/lists/ack", qos=1)
        for b in bodies:
            await c.publish(TOPIC, b, qos=1)
        if then is not None:
            await then()
        async with asyncio.timeout(timeout):
            async for msg in c.messages:
                acks.append(json.loads(bytes(msg.payload)))  # type: ignore[arg-type,unused-ignore]
                if len(acks) == len(bodies):
                    break
    return acks


async def _status(store: IdentityStore, imei: str) -> str | None:
    hit = (await store.lookup(imei)).imei
    return hit.status.value if hit is not None else None


async def test_json_rows_become_a_delta_version_and_are_acknowledged(
    mosquitto: MosquittoServer, store: IdentityStore
) -> None:
    before = await store.active_version()
    ev = await _eir(mosquitto.port, store)
    add = {
        "id": "u-1",
        "rows": [
            {"imei": "35394206000002", "status": "black", "reason": "stolen"},
            {"op": "add", "imei": "353942060000037", "status": "grey"},  # 15 digits, Luhn ok
        ],
    }
    remove = {"id": "u-2", "rows": [{"op": "remove", "imei": "35394206000002"}]}
    (ack1,) = await _publish_and_ack(mosquitto.port, [json.dumps(add).encode()])
    assert ack1["ok"] is True and ack1["id"] == "u-1" and ack1["delta"] is True and ack1["rows"] == 2
    assert ack1["version"] != before and ack1["version"] == await store.active_version()
    assert await _status(store, "35394206000002") == "black"
    assert await _status(store, "35394206000003") == "grey"
    (ack2,) = await _publish_and_ack(mosquitto.port, [json.dumps(remove).encode()])
    assert ack2["ok"] is True and ack2["version"] > ack1["version"]
    assert await _status(store, "35394206000002") is None
    assert await _status(store, "35394206000003") == "grey", "a delta changes only what it names"
    # QoS 1 may deliver twice: the same id is acknowledged again, not applied again
    dup_before = LIST_UPDATES.labels("duplicate")._value.get()
    (ack3,) = await _publish_and_ack(mosquitto.port, [json.dumps(remove).encode()])
    assert ack3["duplicate"] is True and ack3["version"] == ack2["version"]
    assert await store.active_version() == ack2["version"]
    assert LIST_UPDATES.labels("duplicate")._value.get() == dup_before + 1
    await ev.close()


async def test_a_whole_csv_file_replaces_the_list(mosquitto: MosquittoServer, store: IdentityStore) -> None:
    await store.import_version([], [], source="x")
    ev = await _eir(mosquitto.port, store)
    first = b"imei,status,reason\n35394206000002,black,stolen\n35209900176148,grey,\n"
    second = b"imei,status\n35209900176148,white\n"
    ack1, ack2 = await _publish_and_ack(mosquitto.port, [first, second])
    assert ack1["ok"] and ack2["ok"] and ack2["version"] > ack1["version"]
    assert ack1["delta"] is False and ack1["entries"] == 2 and ack2["entries"] == 1
    assert await _status(store, "35394206000002") is None, "a full file replaces the equipment list"
    assert await _status(store, "35209900176148") == "white"
    await ev.close()


async def test_national_formats_over_mqtt(mosquitto: MosquittoServer, store: IdentityStore) -> None:
    """The formats of ``eir lists import --format`` come in too: a DIRBS blacklist recognised by its
    header, Open5GS eird JSON lines sent raw, and a GSMA TAC table named by ``format`` (a reference
    table, no new list version); a bad DIRBS row is refused with its line."""
    ev = await _eir(mosquitto.port, store)
    dirbs = b"imei,block_date,reasons\n35394206000002,20260101,stolen|duplicate\n"
    open5gs = b'{"pei": "imei-490154203237518", "status": "BLACKLISTED"}\n'
    tac = {
        "id": "tac-1",
        "format": "gsma-tac",
        "csv": "TAC|Marketing Name|Internal Model Name|Manufacturer|Bands|Allocation Date|Country Code|"
        "Fixed Code|Manufacturer Code|Radio Interface|Brand Name|Model Name|Operating System|NFC|"
        "Bluetooth|WLAN|Device Type\n35394206|Lab Phone|LP1|Lab|GSM|01-Jan-2020|840|0|M1|LTE|Lab|LP|"
        "Android|Y|Y|Y|Smartphone\n",
    }
    bad = b"imei,block_date,reasons\nnot-an-imei,20260101,stolen\n"
    a1, a2, a3, a4 = await _publish_and_ack(mosquitto.port, [dirbs, open5gs, json.dumps(tac).encode(), bad])
    assert a1["ok"] and a1["format"] == "dirbs-blacklist", a1
    assert await _status(store, "35394206000002") == "black"
    assert a2["ok"] and a2["format"] == "open5gs-eir", a2
    assert await _status(store, "49015420323751") == "black"
    assert a3["ok"] and a3["table"] == "tac" and a3["version"] == a2["version"], a3
    assert not a4["ok"] and a4["errors"] and a4["errors"][0]["line"] == 2, a4
    assert await store.active_version() == a2["version"]
    await ev.close()


async def test_bad_rows_are_reported_and_nothing_is_applied(
    mosquitto: MosquittoServer, store: IdentityStore
) -> None:
    ev = await _eir(mosquitto.port, store)
    before = await store.active_version()
    bad = {
        "id": "u-bad",
        "rows": [
            {"imei": "35394206000002", "status": "black"},
            {"imei": "3539420600000", "status": "black"},  # 13 digits
            {"imei": "35394206000002", "status": "purple"},
        ],
    }
    acks = await _publish_and_ack(
        mosquitto.port,
        [json.dumps(bad).encode(), b"not,a,list\n1,2,3\n", b'{"id": "x", "rows": [], "colour": 1}', b"{"],
    )
    rows_ack, csv_ack, shape_ack, json_ack = acks
    assert rows_ack["ok"] is False and rows_ack["id"] == "u-bad" and rows_ack["bad_rows"] == 2
    assert [e["line"] for e in rows_ack["errors"]] == [3, 4], "CSV line numbers (header is line 1)"
    assert "nothing applied" in rows_ack["error"]
    assert csv_ack["ok"] is False and "header" in csv_ack["error"]
    assert shape_ack["ok"] is False and "unknown field colour" in shape_ack["error"]
    assert json_ack["ok"] is False and "not valid JSON" in json_ack["error"]
    assert await store.active_version() == before
    assert await _status(store, "35394206000002") is None
    await ev.close()


async def test_an_update_published_while_the_eir_reconnects_is_applied_when_it_is_back(
    mosquitto: MosquittoServer, store: IdentityStore
) -> None:
    gate = Gate(mosquitto.port)
    await gate.open()
    ev = await _eir(gate.port, store)
    await gate.shut()  # the EIR loses the broker and keeps trying
    async with asyncio.timeout(15):
        while ev.connected.is_set():
            await asyncio.sleep(0.01)
    update = {"id": "while-away", "rows": [{"imei": "35394206000002", "status": "black"}]}

    async def eir_comes_back() -> None:
        # the broker holds the update for the EIR's session; nothing applied yet
        assert await _status(store, "35394206000002") is None and ev.connects == 1
        await gate.open()  # the same port: the EIR's next attempt gets through

    (ack,) = await _publish_and_ack(
        mosquitto.port, [json.dumps(update).encode()], then=eir_comes_back, timeout=60
    )
    assert ev.connects == 2
    assert ack["ok"] is True and ack["id"] == "while-away"
    assert await _status(store, "35394206000002") == "black"
    await ev.close()
    await gate.shut()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty message"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"rows": ', "not valid JSON"),
        (b'{"rows": [1]}', "rows[0]: an object"),
        (b'{"rows": [{"imei": true}]}', "rows[0].imei: a string"),
        (b'{"rows": [{"imei": "1", "colour": "x"}]}', "unknown field colour"),
        (b'{"csv": "imei,status", "rows": []}', "either rows"),
        (b'{"kind": "friends", "rows": [{}]}', "kind: equipment, pairing or lock"),
        (b"x" * 2000, "larger than mqtt.max_update_bytes"),
    ],
)
def test_update_shapes_refused_with_a_reason(payload: bytes, message: str) -> None:
    with pytest.raises(UpdateError, match=message.replace("[", r"\[").replace("]", r"\]")):
        update_to_csv(payload, 1000)


def test_pairing_rows_become_a_pairing_csv() -> None:
    uid, kind, text, delta = update_to_csv(
        b'{"id": 5, "kind": "pairing", "rows": [{"imsi": "001010123456789", "imei": "35394206000002"}]}', 1000
    )
    assert (uid, kind, delta) == ("5", "pairing", True)
    assert text == "op,imsi,imei,reason\nadd,001010123456789,35394206000002,\n"


async def test_a_large_file_is_parsed_off_the_loop_and_applied(
    mosquitto: MosquittoServer, store: IdentityStore
) -> None:
    from eir.mqtt_lists import INLINE_PARSE

    ev = await _eir(mosquitto.port, store)
    rows = "".join(f"35{i:012d},grey\n" for i in range(6000))
    body = f"imei,status\n{rows}".encode()
    assert len(body) > INLINE_PARSE
    (ack,) = await _publish_and_ack(mosquitto.port, [body])
    assert ack["ok"] is True and ack["entries"] == 6000 and ack["rows"] == 6000
    assert await _status(store, "35000000005999") == "grey"
    await ev.close()
