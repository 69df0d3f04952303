"""M3UA allow-lists and connection limits over a real socket (issue 10), against the asyncio server on
loopback: a source not allowed gets ERR Refused - Management Blocking at accept, an ASP Identifier or
routing context not allowed gets its ERR and the close — every ERR read back by pycrate — and each
refusal is counted in eir_refused."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pycrate_mobile.M3UA import parse_M3UA

from eir.config import Config, M3uaConfig
from eir.metrics import REFUSED
from eir.servers.m3ua import start
from protocols.sigtran import m3ua
from protocols.sigtran.m3ua import ErrorCode, MessageType, Tag
from tests.interop.s13_session import Events, TableChecker

pytestmark = pytest.mark.system

U32 = struct.Struct("!I").pack


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    """``await serve(**m3ua_config) -> port``: the M3UA server in this event loop."""
    servers = []

    async def make(**kw: Any) -> int:
        cfg = Config(m3ua=M3uaConfig(listen=["127.0.0.1:0"], transports=["tcp"], **kw))
        server = await start(cfg, TableChecker(), Events())
        servers.append(server)
        return int(server.addresses()[0][1])

    yield make
    for server in servers:
        await server.shutdown(1.0)


async def read_message(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readexactly(8), 5)
    return head + await asyncio.wait_for(reader.readexactly(int.from_bytes(head[4:8], "big") - 8), 5)


def pycrate(wire: bytes) -> tuple[tuple[int, int], dict[int, Any]]:
    """((class, type), {tag: value}) as pycrate decodes ``wire``."""
    msg, err = parse_M3UA(wire)
    assert err == 0, wire.hex()
    (_v, _r, cls, typ, _len), params = msg.get_val()
    return (cls, typ), {tag: value for tag, _l, value, _pad in params}


async def exchange(port: int, *messages: bytes) -> list[bytes]:
    """Send ``messages`` one by one, reading one answer each (an ACK, or the ERR), then until EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = []
    try:
        for m in messages:
            writer.write(m)
            await writer.drain()
            got.append(await read_message(reader))
            if pycrate(got[-1])[0] == (0, 0):
                break
        while True:  # what follows (NTFY …) up to the server's close
            try:
                got.append(await read_message(reader))
            except asyncio.IncompleteReadError as e:
                assert e.partial == b""
                return got
    finally:
        writer.close()


def refused(reason: str) -> float:
    return REFUSED.labels("map", reason)._value.get()


def errors(wires: list[bytes]) -> list[int]:
    return [int(p[Tag.ERROR_CODE]) for kind, p in map(pycrate, wires) if kind == (0, 0)]


async def test_source_not_allowed_gets_err_0x0d_at_accept(serve: Any) -> None:
    port = await serve(allow_sources=["192.0.2.0/24"])
    before = refused("source_address")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        wire = await read_message(reader)  # before we send anything
        assert await asyncio.wait_for(reader.read(1), 5) == b""
    finally:
        writer.close()
    assert pycrate(wire) == ((0, 0), {Tag.ERROR_CODE: ErrorCode.REFUSED_MANAGEMENT_BLOCKING})
    assert refused("source_address") == before + 1


async def test_source_allowed_goes_up(serve: Any) -> None:
    port = await serve(allow_sources=["127.0.0.0/8"])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(m3ua.encode_message(MessageType.ASPUP))
        assert pycrate(await read_message(reader))[0] == (3, 4)  # ASPSM ASPUP ACK
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ([], ErrorCode.ASP_IDENTIFIER_REQUIRED),
        ([(Tag.ASP_IDENTIFIER, U32(8))], ErrorCode.REFUSED_MANAGEMENT_BLOCKING),
    ],
    ids=["none", "not-listed"],
)
async def test_asp_id_not_allowed(serve: Any, params: list[tuple[int, bytes]], code: ErrorCode) -> None:
    port = await serve(allow_asp_ids=[7])
    before = refused("asp_id")
    got = await exchange(port, m3ua.encode_message(MessageType.ASPUP, params))
    assert errors(got) == [code]
    assert refused("asp_id") == before + 1


async def test_routing_context_not_allowed(serve: Any) -> None:
    port = await serve(allow_routing_contexts=[1])
    before = refused("routing_context")
    got = await exchange(
        port,
        m3ua.encode_message(MessageType.ASPUP),
        m3ua.encode_message(MessageType.ASPAC, [(Tag.ROUTING_CONTEXT, U32(2))]),
    )
    assert errors(got) == [ErrorCode.INVALID_ROUTING_CONTEXT]
    assert refused("routing_context") == before + 1


async def test_associations_per_source_are_limited(serve: Any) -> None:
    port = await serve(max_connections_per_source=1)
    before = refused("connection_limit_per_source")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(m3ua.encode_message(MessageType.ASPUP))
        assert pycrate(await read_message(reader))[0] == (3, 4)
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        try:
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                w2.write(m3ua.encode_message(MessageType.ASPUP))
                await read_message(r2)  # closed at accept, nothing answered
        finally:
            w2.close()
    finally:
        writer.close()
    assert refused("connection_limit_per_source") == before + 1
