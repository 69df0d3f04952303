"""The metrics listener's optional authentication (basic / bearer) and TLS (issue 10), with curl as
the independent client; certificates are made by openssl in the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from eir.config import Config, MetricsConfig
from eir.metrics import REFUSED
from eir.servers import metrics_http
from testkit.services import make_certificates

pytestmark = [
    pytest.mark.system,
    pytest.mark.peer("curl", "the metrics listener is scraped by an independent HTTP client"),
]


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


async def curl(*args: str) -> tuple[int, dict[str, list[str]], str, int]:
    """(HTTP status, headers, body, curl exit code) of one request."""
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "10", "-D", "-", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    text = out.decode("utf-8", "replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return status, headers, body, proc.returncode or 0


def refused(reason: str) -> float:
    return REFUSED.labels("metrics", reason)._value.get()


async def test_basic_and_bearer_authentication(serve: Any) -> None:
    host, port = await serve(username="prom", password="pa:ss word", token="t0ken")
    url = f"http://{host}:{port}/metrics"
    before = refused("unauthorized")
    status, headers, body, _ = await curl(url)
    assert status == 401
    assert set(headers["www-authenticate"]) == {
        'Basic realm="eir metrics", charset="UTF-8"',
        'Bearer realm="eir metrics"',
    }
    assert "eir_" not in body
    status, _, body, _ = await curl("-u", "prom:pa:ss word", url)
    assert status == 200 and "# TYPE eir_refused_total counter" in body
    assert (await curl("-u", "prom:wrong", url))[0] == 401
    assert (await curl("-H", "Authorization: Bearer t0ken", url))[0] == 200
    assert (await curl("-H", "Authorization: Bearer t0ke", url))[0] == 401
    # authentication comes before the path: an unauthenticated client learns nothing of what exists
    assert (await curl(f"http://{host}:{port}/other"))[0] == 401
    assert (await curl("-u", "prom:pa:ss word", f"http://{host}:{port}/other"))[0] == 404
    assert refused("unauthorized") - before == 4


async def test_no_credentials_configured_means_open(serve: Any) -> None:
    host, port = await serve()
    status, _, body, _ = await curl(f"http://{host}:{port}/metrics")
    assert status == 200 and "# TYPE eir_refused_total counter" in body


@pytest.mark.peer("openssl", "the test makes its certificates")
async def test_tls_with_bearer_token(serve: Any, tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    host, port = await serve(tls_cert=str(certs["cert"]), tls_key=str(certs["key"]), token="t0ken")
    https = f"https://{host}:{port}/metrics"
    status, headers, body, _ = await curl(
        "--cacert", str(certs["ca"]), "-H", "Authorization: Bearer t0ken", https
    )
    assert status == 200 and headers["content-type"] == ["text/plain; version=0.0.4; charset=utf-8"]
    assert "# TYPE eir_refused_total counter" in body
    assert (await curl("--cacert", str(certs["ca"]), https))[0] == 401
    # a client that does not trust the certificate, and plain HTTP on the TLS port, get nowhere
    assert (await curl("-H", "Authorization: Bearer t0ken", https))[3] != 0
    assert (await curl(f"http://{host}:{port}/metrics"))[0] != 200
