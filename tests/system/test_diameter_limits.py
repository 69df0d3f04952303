"""Diameter time and buffer limits over a real socket (issue 10): a connection that never sends its
CER is closed (Tw), and a peer that never reads its ECAs is cut by the write-side limit — asserted
by the close and by eir_connections_closed{interface="s13", reason}, not by how long it took."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from eir.servers._trust import CLOSED
from eir.servers.diameter import start
from protocols.diameter import DiameterPeer, Role
from tests.interop.s13_session import Events, TableChecker, s13_config

pytestmark = pytest.mark.system

LIMIT = 30.0
"""The most any wait here may take: a bound against a hang, not a timing assertion."""


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    servers = []

    async def make(**diameter: Any) -> Any:
        server = await start(s13_config(**diameter), TableChecker(), Events())
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.shutdown(1.0)


def closed(reason: str) -> float:
    return float(CLOSED.labels("s13", reason)._value.get())


async def test_no_cer_is_closed_within_tw(serve: Any) -> None:
    server = await serve(watchdog_interval=0.3)
    before = closed("setup_timeout")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.addresses()[0][1])
    assert await asyncio.wait_for(reader.read(), LIMIT) == b""  # nothing, then the close
    writer.close()
    assert closed("setup_timeout") == before + 1


async def test_peer_that_never_reads_is_cut(serve: Any) -> None:
    server = await serve(write_timeout=0.2, write_buffer_limit=16384, max_in_flight=100000)
    before = closed("write_stalled")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.addresses()[0][1]))
    reader, writer = await asyncio.open_connection(sock=sock)
    mme = DiameterPeer(role=Role.INITIATOR, origin_host="mme1.lab", origin_realm="lab", identifier_seed=5)
    mme.start(0.0)
    writer.write(mme.data_to_send())
    cea = await asyncio.wait_for(reader.read(65536), LIMIT)  # the CEA: the last thing read
    mme.receive_data(cea, 0.0)
    batch = []
    for i in range(500):
        mme.send_ecr(0.0, session_id=f"s;{i}", imei="35209900176148")
        batch.append(mme.data_to_send())
    ecrs = b"".join(batch)
    for _ in range(200):  # ≤ 100k ECRs offered; the server stops reading long before
        if not server.connections:
            break
        writer.write(ecrs)
        await asyncio.sleep(0)
        if writer.transport.get_write_buffer_size() > 1 << 20:
            await asyncio.sleep(0.05)
    for _ in range(int(LIMIT / 0.05)):
        if not server.connections:
            break
        await asyncio.sleep(0.05)
    assert not server.connections
    writer.transport.abort()
    assert closed("write_stalled") == before + 1
