"""The metrics listener (issue 10): GET /metrics from the event loop, 404 / 405 / 400 otherwise,
keep-alive, a read timeout for a request that never completes, bounded connections — over loopback
sockets, with the standard library's HTTP client as the independent peer where it fits."""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import AsyncIterator
from typing import Any

import pytest

from eir.config import Config, MetricsConfig
from eir.metrics import REFUSED
from eir.servers import metrics_http

pytestmark = pytest.mark.system


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    servers = []

    async def make(**kw: Any) -> tuple[str, int]:
        server, address = await metrics_http.start(Config(metrics=MetricsConfig(listen="127.0.0.1:0", **kw)))
        servers.append(server)
        return address

    yield make
    for s in servers:
        await s.shutdown()


def refused(reason: str) -> float:
    return REFUSED.labels("metrics", reason)._value.get()


def _client_session(host: str, port: int) -> list[tuple[int, str | None, str | None, bytes]]:
    """http.client over one keep-alive connection (runs in a thread)."""
    c = http.client.HTTPConnection(host, port, timeout=10)
    out = []
    try:
        for method, path in (("GET", "/metrics"), ("GET", "/"), ("POST", "/metrics"), ("HEAD", "/metrics")):
            c.request(method, path, body=b"x=1" if method == "POST" else None)
            r = c.getresponse()
            out.append((r.status, r.getheader("Content-Type"), r.getheader("Allow"), r.read()))
            if r.getheader("Connection") == "close":
                c.close()
                c = http.client.HTTPConnection(host, port, timeout=10)
    finally:
        c.close()
    return out


async def test_paths_methods_and_keep_alive(serve: Any) -> None:
    host, port = await serve()
    before = refused("not_found"), refused("method")
    got = await asyncio.to_thread(_client_session, host, port)
    (ok, ok_type, _, body), (nf, *_), (na, _, allow, _), (head, _, _, head_body) = got
    assert ok == 200 and ok_type is not None and ok_type.startswith("text/plain; version=0.0.4")
    assert b"# TYPE eir_refused_total counter" in body
    assert nf == 404 and na == 405 and allow == "GET, HEAD"
    assert head == 200 and head_body == b""
    assert (refused("not_found"), refused("method")) == (before[0] + 1, before[1] + 1)


async def test_pipelined_requests_on_one_connection(serve: Any) -> None:
    host, port = await serve()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        data = await asyncio.wait_for(reader.read(), 10)  # until the server closes after the second
    finally:
        writer.close()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 404 Not Found\r\n" in data


@pytest.mark.parametrize(
    "request_bytes",
    [b"garbage\r\n\r\n", b"GET /metrics SPDY/3\r\n\r\n", b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n"],
)
async def test_bad_requests_get_400_and_the_close(serve: Any, request_bytes: bytes) -> None:
    host, port = await serve()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request_bytes)
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")


async def test_oversized_head_gets_431(serve: Any) -> None:
    host, port = await serve()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000)
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert data.startswith(b"HTTP/1.1 431 ")


async def test_a_half_sent_request_is_closed_after_the_read_timeout(serve: Any) -> None:
    host, port = await serve(read_timeout=0.2)
    before = refused("read_timeout")
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"GET /metr")
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, nothing answered
    finally:
        writer.close()
    assert refused("read_timeout") == before + 1


async def test_connections_are_bounded(serve: Any) -> None:
    host, port = await serve(max_connections=2, max_connections_per_source=2)
    before = refused("connection_limit")
    held = [await asyncio.open_connection(host, port) for _ in range(2)]
    try:
        for r, w in held:  # both admitted: they are answered
            w.write(b"GET /metrics HTTP/1.1\r\n\r\n")
            assert (await asyncio.wait_for(r.readline(), 10)).startswith(b"HTTP/1.1 200")
        r3, w3 = await asyncio.open_connection(host, port)
        try:
            w3.write(b"GET /metrics HTTP/1.1\r\n\r\n")
            with pytest.raises(ConnectionError):
                if await asyncio.wait_for(r3.read(), 10) == b"":
                    raise ConnectionResetError  # closed without an answer
        finally:
            w3.close()
    finally:
        for _, w in held:
            w.close()
    assert refused("connection_limit") == before + 1
