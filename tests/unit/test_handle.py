"""X.1255 handle look-ups: the record codec (protocols/handle.py, checked by curl and the json
module as independent decoders), ``eir sim handle``'s server, the resolver (found, not found,
cache with a moved clock, time-out, refused) and the ``handle`` rule through the real checker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from eir.checker import PolicyChecker
from eir.config import load_config
from eir.handle import HandleResolver
from eir.metrics import register_metrics
from eir.model import CheckRequest, Interface, Status
from eir.store.base import EntryKind, ListEntry
from eir.store.memory import MemoryStore
from protocols.handle import (
    HandleProtocolError,
    HandleRecord,
    build_get,
    decode_record,
    encode_record,
    parse_http_response,
)
from simulations.handle import HandleServer, load_records
from testkit.peers import peer_program

REGISTRY = register_metrics()
PREFIX = "20.500.12345"
BLACK, WHITE, NONE, LISTED = "35693803564380", "35693803564381", "35693803564382", "35693803564383"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def records(tmp: Path) -> dict[str, HandleRecord]:
    p = tmp / "handles.csv"
    p.write_text(
        "imei,status,tac,brand,model,reason\n"
        f"{BLACK}7,black,35693803,Samsung,Galaxy X,reported stolen\n"
        f"{WHITE},white,,,,\n"
        f"{LISTED},white,,,,\n"
    )
    return load_records(p, PREFIX)


def test_codec_round_trip_and_errors() -> None:
    rec = HandleRecord(handle=f"{PREFIX}/imei-{BLACK}", values={"EIR.STATUS": "black", "EIR.TAC": "35693803"})
    status, body = encode_record(rec, rec.handle)
    doc = json.loads(body)  # the json module as an independent reader of what we send
    assert status == 200 and doc["responseCode"] == 1 and doc["handle"] == rec.handle
    assert doc["values"][0] == {
        "index": 1,
        "type": "EIR.STATUS",
        "data": {"format": "string", "value": "black"},
    }
    assert decode_record(status, body) == rec
    status, body = encode_record(None, "x/imei-1")
    assert (status, json.loads(body)) == (404, {"responseCode": 100, "handle": "x/imei-1"})
    assert decode_record(status, body) is None
    assert build_get("h:1", "20.500.1/imei-1") == (
        b"GET /api/handles/20.500.1/imei-1 HTTP/1.0\r\nHost: h:1\r\nAccept: application/json\r\n\r\n"
    )
    assert parse_http_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}xx") == (200, b"{}")
    for bad in (b"garbage", b"SMTP 220\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 70000):
        with pytest.raises(HandleProtocolError):
            parse_http_response(bad)
    for status, body in (
        (200, b"not json"),
        (500, b'{"responseCode": 1}'),
        (200, b'{"responseCode": 2}'),
        (200, b"[]"),
    ):
        with pytest.raises(HandleProtocolError):
            decode_record(status, body)


async def test_curl_reads_the_simulated_server(tmp_path: Path) -> None:
    curl = peer_program("curl", "curl", "an independent HTTP client decodes eir sim handle's answers")
    server = HandleServer(records(tmp_path))
    host, port = await server.start()
    try:
        for handle, code in ((f"{PREFIX}/imei-{BLACK}", 200), (f"{PREFIX}/imei-{NONE}", 404)):
            proc = await asyncio.create_subprocess_exec(
                curl,
                "-s",
                "-w",
                "\n%{http_code}",
                f"http://{host}:{port}/api/handles/{handle}",
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
            body, _, status = out.decode().rpartition("\n")
            doc = json.loads(body)
            assert int(status) == code and doc["handle"] == handle
            if code == 200:
                assert doc["responseCode"] == 1
                assert {v["type"]: v["data"]["value"] for v in doc["values"]} == {
                    "EIR.STATUS": "black",
                    "EIR.TAC": "35693803",
                    "EIR.BRAND": "Samsung",
                    "EIR.MODEL": "Galaxy X",
                    "EIR.REASON": "reported stolen",
                }
            else:
                assert doc["responseCode"] == 100
    finally:
        await server.close()


async def test_resolver_found_not_found_cache_timeout_and_refused(tmp_path: Path) -> None:
    server = HandleServer(records(tmp_path))
    host, port = await server.start()
    clock = Clock()
    r = HandleResolver(f"http://{host}:{port}", PREFIX, timeout=5.0, ttl=60.0, clock=clock)
    try:
        a = await r.resolve(BLACK)
        assert (a.result, a.record and a.record.status, a.cached) == ("found", "black", False)
        assert (await r.resolve(NONE)).result == "not_found"
        assert server.requests == 2
        assert (await r.resolve(BLACK)).cached and server.requests == 2
        clock.now += 61  # past the TTL: asked again
        assert not (await r.resolve(BLACK)).cached and server.requests == 3
        # a server that answers too late: the look-up gives up at the time-out
        server.delay = 5.0
        slow = HandleResolver(f"http://{host}:{port}", PREFIX, timeout=0.05, ttl=60.0, clock=clock)
        t = await slow.resolve(WHITE)
        assert t.result == "timeout" and "0.05" in t.detail
    finally:
        await server.close()
    refused = await HandleResolver(f"http://{host}:{port}", PREFIX, timeout=5.0, clock=clock).resolve(BLACK)
    assert refused.result == "error"


async def test_the_handle_rule_through_the_checker(tmp_path: Path) -> None:
    server = HandleServer(records(tmp_path))
    host, port = await server.start()
    store = MemoryStore()
    await store.import_version(
        [ListEntry(kind=EntryKind.IMEI, key=LISTED, status=Status.BLACK)],
        [],
        source="t",
    )

    class NoEvents:
        def publish(self, topic: str, payload: dict[str, Any]) -> None:
            return None

    def checker(**handle: Any) -> PolicyChecker:
        cfg = load_config(
            None,
            environ={},
            overrides={
                "policy": {
                    "clone": {"enabled": False},
                    "handle": {"enabled": True, "url": f"http://{host}:{port}", "prefix": PREFIX, **handle},
                }
            },
        )
        return PolicyChecker(cfg, store, NoEvents())

    async def verdict(c: PolicyChecker, imei: str) -> tuple[str, str]:
        v = await c.check(CheckRequest(imei=imei, interface=Interface.S13))
        return v.status.value, v.rule

    try:
        c = checker()
        assert await verdict(c, BLACK) == ("black", "handle")
        assert await verdict(c, WHITE) == ("white", "handle")
        assert await verdict(c, NONE) == ("white", "default")
        asked = server.requests
        assert await verdict(c, LISTED) == ("black", "imei")  # listed: no look-up at all
        assert server.requests == asked
        steps = {s.rule: s for s in await c.explain(CheckRequest(imei=BLACK, interface=Interface.CLI))}
        assert steps["handle"].outcome == "decided"
        assert "black (cached) reported stolen" in steps["handle"].detail
        server.delay = 5.0
        grey = checker(timeout=0.05, on_failure="grey")
        assert await verdict(grey, NONE) == ("grey", "handle")
        skip = checker(timeout=0.05)
        assert await verdict(skip, NONE) == ("white", "default")
        steps = {s.rule: s for s in await skip.explain(CheckRequest(imei=NONE, interface=Interface.CLI))}
        assert steps["handle"].outcome == "timeout" and "skipped" in steps["handle"].detail
    finally:
        await server.close()
    text = generate_latest(REGISTRY).decode()
    assert 'eir_handle_lookups_total{result="timeout"}' in text
