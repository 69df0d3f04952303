"""M3UA time and buffer limits over a real socket (issue 10): a peer that never sends ASPUP, an idle
association, a peer that stops answering BEATs and a peer that never reads are each closed by the
server — asserted by the close itself and by eir_connections_closed{interface="map", reason}, never
by how long it took (the limits are set small so that the tests stay short)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from eir.config import Config, M3uaConfig
from eir.servers._trust import CLOSED
from eir.servers.m3ua import start
from protocols.sigtran import m3ua
from protocols.sigtran.m3ua import MessageType, Tag
from tests.interop.s13_session import Events, TableChecker
from tests.system.test_m3ua_trust import pycrate, read_message

pytestmark = pytest.mark.system

LIMIT = 30.0
"""The most any wait here may take: a bound against a hang, not a timing assertion."""


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    """``await serve(**m3ua_config) -> server``: the M3UA server in this event loop."""
    servers = []

    async def make(**kw: Any) -> Any:
        base: dict[str, Any] = {"beat_interval": 0, "setup_timeout": 0, "idle_timeout": 0}
        cfg = Config(m3ua=M3uaConfig(listen=["127.0.0.1:0"], transports=["tcp"], **(base | kw)))
        server = await start(cfg, TableChecker(), Events())
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.shutdown(1.0)


def closed(reason: str) -> float:
    return float(CLOSED.labels("map", reason)._value.get())


async def until_eof(reader: asyncio.StreamReader) -> list[bytes]:
    """Every message the server sends until it closes the association."""
    got = []
    while True:
        try:
            got.append(await asyncio.wait_for(read_message(reader), LIMIT))
        except asyncio.IncompleteReadError as e:
            assert e.partial == b""
            return got


async def bring_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    for msg, ack in ((MessageType.ASPUP, (3, 4)), (MessageType.ASPAC, (4, 3))):
        writer.write(m3ua.encode_message(msg))
        while pycrate(await read_message(reader))[0] != ack:  # the NTFY after ASPUP ACK
            pass
    assert pycrate(await read_message(reader))[0] == (0, 1)  # NTFY AS-ACTIVE after the ASPAC ACK


async def test_no_aspup_is_closed_at_the_setup_limit(serve: Any) -> None:
    server = await serve(setup_timeout=0.2)
    before = closed("setup_timeout")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.addresses()[0][1])
    assert await until_eof(reader) == []  # nothing, then the close
    writer.close()
    assert closed("setup_timeout") == before + 1


async def test_aspup_without_aspac_is_closed_at_the_setup_limit(serve: Any) -> None:
    server = await serve(setup_timeout=0.2)
    before = closed("setup_timeout")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.addresses()[0][1])
    writer.write(m3ua.encode_message(MessageType.ASPUP))
    got = [pycrate(m)[0] for m in await until_eof(reader)]
    assert got == [(3, 4), (0, 1)]  # ASPUP ACK, NTFY AS-INACTIVE; then the close
    writer.close()
    assert closed("setup_timeout") == before + 1


async def test_idle_association_is_closed(serve: Any) -> None:
    server = await serve(idle_timeout=0.3, setup_timeout=30)
    before = closed("idle_timeout")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.addresses()[0][1])
    await bring_up(reader, writer)
    assert await until_eof(reader) == []
    writer.close()
    assert closed("idle_timeout") == before + 1
    assert closed("setup_timeout") >= 0  # the set-up limit was met: not what closed it


async def test_unanswered_beats_close_it(serve: Any) -> None:
    server = await serve(beat_interval=0.1)
    before = closed("heartbeat_timeout")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.addresses()[0][1])
    await bring_up(reader, writer)
    beats = [pycrate(m)[0] for m in await until_eof(reader)]  # read, never answered
    assert beats == [(3, 3), (3, 3)]  # two BEATs, then the close
    writer.close()
    assert closed("heartbeat_timeout") == before + 1


async def test_answered_beats_keep_it_up(serve: Any) -> None:
    server = await serve(beat_interval=0.05)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.addresses()[0][1])
    await bring_up(reader, writer)
    for _ in range(6):  # each BEAT answered with its ACK (data echoed, RFC 4666 §3.5.6)
        beat = await asyncio.wait_for(read_message(reader), LIMIT)
        (cls_typ, params) = pycrate(beat)
        assert cls_typ == (3, 3)
        writer.write(
            m3ua.encode_message(MessageType.BEAT_ACK, [(Tag.HEARTBEAT_DATA, params[Tag.HEARTBEAT_DATA])])
        )
    assert len(server.associations) == 1
    writer.close()


async def test_peer_that_never_reads_is_cut(serve: Any) -> None:
    """BEATs with 16 KB of data, echoed by the server's BEAT ACKs, while the client reads nothing:
    the kernel buffers fill, then the transport's, and the write-side limit cuts the association."""
    server = await serve(write_timeout=0.2, write_buffer_limit=16384)
    before = closed("write_stalled")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the buffers fill early
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", server.addresses()[0][1]))
    reader, writer = await asyncio.open_connection(sock=sock)
    await bring_up(reader, writer)
    beat = m3ua.encode_message(MessageType.BEAT, [(Tag.HEARTBEAT_DATA, b"x" * 16000)])
    for _ in range(2000):  # ≤ 32 MB offered; the server stops reading long before
        if not server.associations:
            break
        writer.write(beat)
        await asyncio.sleep(0)
        if writer.transport.get_write_buffer_size() > 1 << 20:
            await asyncio.sleep(0.05)  # the server is not reading: wait for its limit
    for _ in range(int(LIMIT / 0.05)):
        if not server.associations:
            break
        await asyncio.sleep(0.05)
    assert not server.associations
    writer.transport.abort()
    assert closed("write_stalled") == before + 1


async def test_slowloris_after_asp_active_is_closed_as_idle(serve: Any) -> None:
    """A peer dribbling one message a byte at a time: bytes arrive all along, but no whole message
    within the idle limit, so the association is closed as idle."""
    server = await serve(idle_timeout=0.3)
    before = closed("idle_timeout")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.addresses()[0][1])
    await bring_up(reader, writer)
    beat = m3ua.encode_message(MessageType.BEAT, [(Tag.HEARTBEAT_DATA, b"x" * 1000)])
    for i in range(len(beat) - 1):  # never the last byte
        if not server.associations:
            break
        writer.write(beat[i : i + 1])
        await asyncio.sleep(0.02)
    assert await until_eof(reader) == []
    writer.close()
    assert closed("idle_timeout") == before + 1


async def test_close_of_a_peer_that_never_reads_is_bounded(serve: Any) -> None:
    """Our answers stuck below the high-water mark (set out of reach here) and the association
    ended by a limit (BEATs unanswered): ``close()`` would wait for ever to write them; the
    association is aborted write_timeout later instead."""
    server = await serve(beat_interval=0.2, write_timeout=0.3, write_buffer_limit=1 << 30)
    before = closed("heartbeat_timeout")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.addresses()[0][1]))
    reader, writer = await asyncio.open_connection(sock=sock)
    await bring_up(reader, writer)
    beat = m3ua.encode_message(MessageType.BEAT, [(Tag.HEARTBEAT_DATA, b"x" * 16000)])
    writer.write(beat * 600)  # ≈ 9.6 MB of BEAT ACKs owed: more than the kernel buffers hold
    for _ in range(int(LIMIT / 0.05)):
        if not server.associations:
            break
        await asyncio.sleep(0.05)
    assert not server.associations
    writer.transport.abort()
    assert closed("heartbeat_timeout") == before + 1
