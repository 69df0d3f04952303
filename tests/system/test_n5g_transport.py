"""N5g-eir transport, in-process on loopback with independent clients: curl's h2c upgrade
(`curl --http2` on http:// sends `Upgrade: h2c`) answered over HTTP/2; HTTP/1.1 pipelining (three
requests in one write, three answers in order)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from eir.config import Config, N5gConfig
from eir.model import CheckRequest, Status, Verdict
from eir.servers.n5g import start
from testkit.peers import require_peer

pytestmark = pytest.mark.system

API = "/n5g-eir-eic/v1/equipment-status"


class FirstDigitChecker:
    async def check(self, request: CheckRequest) -> Verdict:
        s = {"1": Status.WHITE, "2": Status.GREY, "3": Status.BLACK}.get(request.imei[0], Status.UNKNOWN)
        return Verdict(status=s, rule="test")


class Events:
    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        pass


async def serve() -> Any:
    return await start(Config(n5g=N5gConfig(listen=["127.0.0.1:0"])), FirstDigitChecker(), Events())


async def test_curl_h2c_upgrade_is_answered_over_http2() -> None:
    require_peer("curl", "independent HTTP/2 client (h2c upgrade)")
    eir = await serve()
    try:
        host, port, _ = eir.addresses()[0]
        url = f"http://{host}:{port}{API}?pei=imei-300000000000000"
        p = await asyncio.create_subprocess_exec(
            "curl", "-sv", "--http2", "-w", "\n%{http_version} %{http_code}", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(p.communicate(), 30)
        body, _, tail = out.decode().rpartition("\n")
        assert tail == "2 200", err.decode()
        assert json.loads(body) == {"status": "BLACKLISTED"}
        trace = err.decode()
        assert "> Upgrade: h2c" in trace and "< HTTP/1.1 101 Switching Protocols" in trace
        assert "< HTTP/2 200" in trace
    finally:
        await eir.shutdown(1.0)


async def test_http11_pipelined_requests_answered_in_order() -> None:
    eir = await serve()
    try:
        host, port, _ = eir.addresses()[0]
        r, w = await asyncio.open_connection(host, port)
        peis = ["imei-100000000000009", "imei-300000000000000", "imei-200000000000001"]
        w.write(b"".join(f"GET {API}?pei={p} HTTP/1.1\r\nHost: eir\r\n\r\n".encode() for p in peis))
        want = [b"WHITELISTED", b"BLACKLISTED", b"GREYLISTED"]
        got = b""
        async with asyncio.timeout(10):
            while got.count(b"LISTED") < 3:
                chunk = await r.read(65536)
                assert chunk, got
                got += chunk
        answers = [a for a in got.split(b"HTTP/1.1 ")[1:]]
        assert [a[:3] for a in answers] == [b"200"] * 3
        assert [next(x for x in want if x in a) for a in answers] == want
        w.close()
    finally:
        await eir.shutdown(1.0)


async def test_tls_and_cleartext_on_one_port(tmp_path: Any) -> None:
    """n5g.tls_sniff: curl over TLS (ALPN h2), curl h2c prior knowledge and HTTP/1.1, all to the
    one listen port; a client that sends garbage where a TLS handshake should be is counted."""
    require_peer("curl", "independent HTTP/2 client over TLS")
    from eir.metrics import REGISTRY
    from tests.system.test_n5g_tls import self_signed

    cert, key = self_signed(tmp_path, "localhost")
    cfg = Config(n5g=N5gConfig(listen=["127.0.0.1:0"], tls_cert=str(cert), tls_key=str(key), tls_sniff=True))
    eir = await start(cfg, FirstDigitChecker(), Events())
    try:
        [(host, port, _t)] = eir.addresses()
        path = f"{API}?pei=imei-100000000000009"
        runs = [
            (["--http2", "--cacert", str(cert), f"https://localhost:{port}{path}"], "2"),
            (["--http2-prior-knowledge", f"http://{host}:{port}{path}"], "2"),
            (["--http1.1", f"http://{host}:{port}{path}"], "1.1"),
        ]
        for opts, version in runs:
            p = await asyncio.create_subprocess_exec(
                "curl", "-s", "-w", "\n%{http_version} %{http_code} %{scheme}", *opts,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(p.communicate(), 30)
            body, _, tail = out.decode().rpartition("\n")
            scheme = "HTTPS" if opts[-1].startswith("https") else "HTTP"
            assert tail == f"{version} 200 {scheme}", (opts, err.decode())
            assert json.loads(body) == {"status": "WHITELISTED"}

        def failed() -> float:
            v = REGISTRY.get_sample_value(
                "eir_protocol_errors_total", {"interface": "n5g", "error": "tls_handshake"}
            )
            return v or 0.0

        before = failed()
        r, w = await asyncio.open_connection(host, port)
        w.write(b"\x16\x03\x01\x00\x05hello")  # a TLS record header, then nonsense
        async with asyncio.timeout(10):
            await r.read()  # the server ends it (an alert, then the close)
        w.close()
        for _ in range(1000):  # until the handshake failure is counted (a state, bounded)
            if failed() > before:
                break
            await asyncio.sleep(0.01)
        assert failed() == before + 1
    finally:
        await eir.shutdown(1.0)
