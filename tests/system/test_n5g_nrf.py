"""N5g-eir with an NRF and OAuth2, in-process on loopback: the EIR registers with `eir sim nrf`,
heartbeats at the NRF's timer, registers again after an NRF restart and deregisters on stop; the
simulated AMF discovers it through the NRF (library and CLI); bearer tokens are accepted or refused
with 401/403 ProblemDetails valid against the 3GPP YAML (openapi-core, TS29511 + TS29571).
Waits are for states (bounded), never timed assertions."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from eir.config import Config, N5gConfig
from eir.metrics import REGISTRY
from eir.model import CheckRequest, Status, Verdict
from eir.servers.n5g import start
from simulations.amf import ILLEGAL_ME, SimulatedAmf, find_eir
from simulations.nrf import SimulatedNrf
from testkit.eirproc import clean_env

pytestmark = pytest.mark.system

API = "/n5g-eir-eic/v1/equipment-status"
SECRET = b"0123456789abcdef0123456789abcdef-lab-secret"


class FirstDigitChecker:
    """1 → white, 3 → black, else unknown."""

    async def check(self, request: CheckRequest) -> Verdict:
        s = {"1": Status.WHITE, "3": Status.BLACK}.get(request.imei[0], Status.UNKNOWN)
        return Verdict(status=s, rule="test")


class Events:
    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        pass


async def serve(**n5g: Any) -> Any:
    return await start(Config(n5g=N5gConfig(listen=["127.0.0.1:0"], **n5g)), FirstDigitChecker(), Events())


def metric(name: str, **labels: str) -> float:
    v = REGISTRY.get_sample_value(name, labels)
    return 0.0 if v is None else v


async def test_register_heartbeat_nrf_restart_and_deregister_on_stop() -> None:
    nrf = await SimulatedNrf.start(heartbeat=1)
    eir = None
    try:
        eir = await serve(nrf=nrf.url, nrf_heartbeat=30)
        port = eir.addresses()[0][1]
        await nrf.wait_for(lambda: nrf.count("PUT", 201) == 1)
        [(nf_id, profile)] = nrf.profiles.items()
        assert eir.nrf.core.instance_id == nf_id
        assert (profile["nfType"], profile["nfStatus"], profile["allowedNfTypes"]) == (
            "5G_EIR",
            "REGISTERED",
            ["AMF"],
        )
        assert profile["heartBeatTimer"] == 1  # the NRF's, not our proposal of 30
        svc = profile["nfServiceList"]["n5g-eir-eic"]
        assert svc["ipEndPoints"] == [{"transport": "TCP", "port": port, "ipv4Address": "127.0.0.1"}]
        # heartbeats at the timer the NRF returned (1 s, not our 30): two arrive
        await nrf.wait_for(lambda: nrf.count("PATCH", 204) >= 2)
        assert eir.nrf.registered.is_set()
        assert metric("eir_nrf_state", state="registered") == 1
        assert (
            metric("eir_nrf_requests_total", operation="heartbeat", outcome="204") >= 1
        )  # (its answer to the 2nd may be on the way)

        # the NRF restarts and forgets everything: the EIR registers again (heartbeat fails → PUT)
        await nrf.restart()
        await nrf.wait_for(lambda: nrf.count("PUT", 201) == 2 and nf_id in nrf.profiles)
        assert nrf.log.index(("RESTART", "", 0)) < len(nrf.log) - 1
        await nrf.wait_for(lambda: nrf.count("PATCH", 204) >= 3)

        # stop: DELETE before the listeners close; the NRF no longer lists it
        await eir.shutdown(2.0)
        eir = None
        assert nrf.log[-1] == ("DELETE", nf_id, 204)
        assert nrf.profiles == {}
        assert metric("eir_nrf_state", state="deregistered") == 1
    finally:
        if eir is not None:
            await eir.shutdown(1.0)
        await nrf.stop()


async def test_nrf_away_at_start_then_back() -> None:
    """Registration retries with back-off while nothing listens on the NRF's port, and succeeds once
    the NRF comes up there; the EIR serves meanwhile."""
    nrf = await SimulatedNrf.start(heartbeat=5)
    port = nrf.port
    await nrf.stop()
    eir = await serve(nrf=f"http://127.0.0.1:{port}", nrf_retry_max=1.0)
    try:
        failed = metric("eir_nrf_requests_total", operation="register", outcome="unreachable")
        for _ in range(2000):  # until the first attempt has failed (a state, bounded)
            if metric("eir_nrf_requests_total", operation="register", outcome="unreachable") > failed:
                break
            await asyncio.sleep(0.005)
        assert eir.nrf.state.value == "retrying"
        host, eport, _ = eir.addresses()[0]
        amf = await SimulatedAmf.connect(f"http://{host}:{eport}")
        assert (await amf.check("imei-100000000000009")).verdict == "white"
        await amf.close()
        nrf = await SimulatedNrf.start(port=port, heartbeat=5)
        await asyncio.wait_for(eir.nrf.registered.wait(), 30)
        assert nrf.count("PUT", 201) == 1
    finally:
        await eir.shutdown(1.0)
        await nrf.stop()


async def test_sim_amf_discovers_the_eir_through_the_nrf() -> None:
    nrf = await SimulatedNrf.start(heartbeat=10)
    eir = await serve(nrf=nrf.url)
    try:
        await asyncio.wait_for(eir.nrf.registered.wait(), 30)
        port = eir.addresses()[0][1]
        assert await find_eir(nrf.url) == [f"http://127.0.0.1:{port}"]
        amf = await SimulatedAmf.discover(nrf.url)
        try:
            r = await amf.check("imei-300000000000000")
            assert (r.verdict, r.action) == ("black", ILLEGAL_ME)
        finally:
            await amf.close()
        # discovery by an NF type the EIR does not allow finds nothing (curl as an independent client)
        async with httpx.AsyncClient(http1=False, http2=True) as c:
            r2 = await c.get(
                f"{nrf.url}/nnrf-disc/v1/nf-instances?target-nf-type=5G_EIR&requester-nf-type=SMF"
            )
            assert r2.http_version == "HTTP/2" and r2.json()["nfInstances"] == []
        # the CLI
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "eir.cli",
            "sim",
            "amf",
            "--nrf",
            nrf.url,
            "--pei",
            "imei-100000000000009",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=clean_env(),
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        text = out.decode()
        assert f"5G-EIR at http://127.0.0.1:{port}" in text and "white → AMF: accept" in text
    finally:
        await eir.shutdown(1.0)
        await nrf.stop()
    # no EIR registered any more: the CLI says so and fails
    nrf = await SimulatedNrf.start()
    try:
        with pytest.raises(ConnectionError, match="no 5G-EIR"):
            await find_eir(nrf.url)
    finally:
        await nrf.stop()


# --- OAuth2 ------------------------------------------------------------------------------------------


def token(nf_id: str, **over: Any) -> str:
    import time

    c: dict[str, Any] = {
        "iss": "nrf",
        "sub": "amf",
        "aud": nf_id,
        "scope": "n5g-eir-eic",
        "exp": time.time() + 600,
    }
    c.update(over)
    return jwt.encode({k: v for k, v in c.items() if v is not None}, SECRET, algorithm="HS256")


def validate(target: str, r: httpx.Response) -> None:
    from tests.system.test_n5g import validate as validate_n5g

    validate_n5g(target, r.status_code, r.headers["content-type"], r.content)


async def test_oauth2_accepts_and_refuses(tmp_path: Path) -> None:
    key = tmp_path / "nrf.key"
    key.write_bytes(SECRET + b"\n")
    eir = await serve(oauth2_key=str(key), oauth2_issuer="nrf")
    try:
        host, port, _ = eir.addresses()[0]
        nf_id = eir.verifier and next(a for a in eir.verifier.audiences if a != "5G_EIR")
        target = f"{API}?pei=imei-100000000000009"
        cases: list[tuple[dict[str, str], int, str | None]] = [
            ({"authorization": f"Bearer {token(nf_id)}"}, 200, None),
            ({"authorization": f"Bearer {token('5G_EIR')}"}, 200, None),  # the NF type as audience
            ({}, 401, None),
            ({"authorization": "Basic YTpi"}, 401, None),
            ({"authorization": f"Bearer {token(nf_id, exp=1)}"}, 401, "invalid_token"),
            ({"authorization": f"Bearer {token(nf_id, iss='rogue')}"}, 401, "invalid_token"),
            ({"authorization": f"Bearer {token('another-nf')}"}, 401, "invalid_token"),
            ({"authorization": f"Bearer {token(nf_id)[:-4]}AAAA"}, 401, "invalid_token"),
            ({"authorization": f"Bearer {token(nf_id, scope='nudm-sdm')}"}, 403, "insufficient_scope"),
        ]
        before = metric("eir_protocol_errors_total", interface="n5g", error="unauthorized")
        async with httpx.AsyncClient(http1=False, http2=True, base_url=f"http://{host}:{port}") as c:
            for headers, status, error in cases:
                r = await c.get(target, headers=headers)
                assert r.status_code == status, (headers, r.text)
                validate(target, r)
                if status == 200:
                    assert r.json() == {"status": "WHITELISTED"}
                    continue
                challenge = r.headers["www-authenticate"]
                assert challenge.startswith('Bearer realm="5G-EIR"')
                assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)
                assert r.json()["status"] == status
        assert metric("eir_protocol_errors_total", interface="n5g", error="unauthorized") == before + 6
        # the simulated AMF with and without its token
        amf = await SimulatedAmf.connect(f"http://{host}:{port}", token=token(nf_id))
        assert (await amf.check("imei-300000000000000")).verdict == "black"
        await amf.close()
        amf = await SimulatedAmf.connect(f"http://{host}:{port}")
        assert (await amf.check("imei-300000000000000")).verdict == "error 401"
        await amf.close()
    finally:
        await eir.shutdown(1.0)


def test_the_nrf_answers_curl_over_h2c_and_http11() -> None:
    """The simulated NRF's wire is checked by an independent client too (curl)."""
    import subprocess

    from testkit.peers import require_peer

    require_peer("curl", "independent HTTP/2 client")

    async def run() -> None:
        nrf = await SimulatedNrf.start(heartbeat=7)
        try:
            nf = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
            body = json.dumps({"nfInstanceId": nf, "nfType": "5G_EIR", "nfStatus": "REGISTERED"})
            url = f"{nrf.url}/nnrf-nfm/v1/nf-instances/{nf}"
            for opts, want in ((["--http2-prior-knowledge"], "201"), ([], "200")):
                p = await asyncio.create_subprocess_exec(
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_version} %{http_code}",
                    *opts,
                    "-X",
                    "PUT",
                    "-H",
                    "content-type: application/json",
                    "--data",
                    body,
                    url,
                    stdout=subprocess.PIPE,
                )
                out, _ = await p.communicate()
                version, code = out.decode().split()
                assert code == want and version == ("2" if opts else "1.1")
            assert nrf.profiles[nf]["heartBeatTimer"] == 7
        finally:
            await nrf.stop()

    asyncio.run(run())


async def test_sim_nrf_cli_prints_each_registration_event() -> None:
    import signal

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "eir.cli", "sim", "nrf", "--listen", "127.0.0.1:0", "--heartbeat", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            first = (await proc.stdout.readline()).decode()
        assert first.startswith("NRF listening on http://127.0.0.1:") and "heartBeatTimer 3 s" in first
        url = first.split()[3]
        nf = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
        body = {"nfInstanceId": nf, "nfType": "5G_EIR", "nfStatus": "REGISTERED"}
        async with httpx.AsyncClient(http1=False, http2=True, base_url=url) as c:
            r = await c.put(f"/nnrf-nfm/v1/nf-instances/{nf}", json=body)
            assert r.status_code == 201 and r.json()["heartBeatTimer"] == 3
            assert r.headers["location"].endswith(f"/nnrf-nfm/v1/nf-instances/{nf}")
            patch = [{"op": "replace", "path": "/nfStatus", "value": "REGISTERED"}]
            r = await c.patch(
                f"/nnrf-nfm/v1/nf-instances/{nf}",
                content=json.dumps(patch),
                headers={"content-type": "application/json-patch+json"},
            )
            assert r.status_code == 204
            assert (await c.delete(f"/nnrf-nfm/v1/nf-instances/{nf}")).status_code == 204
            assert (await c.delete(f"/nnrf-nfm/v1/nf-instances/{nf}")).status_code == 404
            bad = await c.put(f"/nnrf-nfm/v1/nf-instances/{nf}", content=b"{")
            assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
        lines = []
        async with asyncio.timeout(30):
            for _ in range(3):
                lines.append((await proc.stdout.readline()).decode().strip())
        assert lines == [
            f"registered {nf} 5G_EIR [201]",
            f"heartbeat {nf} 5G_EIR [204]",
            f"deregistered {nf} [204]",
        ]
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_register_with_an_https_nrf_checked_against_nrf_ca(tmp_path: Path) -> None:
    from eir.servers._http import server_tls_context
    from tests.system.test_n5g_tls import self_signed

    cert, key = self_signed(tmp_path, "localhost")
    nrf = await SimulatedNrf.start(heartbeat=5, ssl_context=server_tls_context(str(cert), str(key)))
    url = nrf.url.replace("127.0.0.1", "localhost")  # the certificate's name
    eir = await serve(nrf=url, nrf_ca=str(cert))
    try:
        await nrf.wait_for(lambda: nrf.count("PUT", 201) == 1)
        await asyncio.wait_for(eir.nrf.registered.wait(), 30)
    finally:
        await eir.shutdown(1.0)
        await nrf.stop()
    assert nrf.log[-1][0] == "DELETE"
    # without the lab's CA the certificate is refused: nothing registers, the EIR keeps retrying
    nrf = await SimulatedNrf.start(heartbeat=5, ssl_context=server_tls_context(str(cert), str(key)))
    eir = await serve(nrf=nrf.url.replace("127.0.0.1", "localhost"))
    try:
        before = metric("eir_nrf_requests_total", operation="register", outcome="unreachable")
        for _ in range(2000):
            if metric("eir_nrf_requests_total", operation="register", outcome="unreachable") > before:
                break
            await asyncio.sleep(0.005)
        assert eir.nrf.state.value == "retrying" and nrf.profiles == {}
    finally:
        await eir.shutdown(1.0)
        await nrf.stop()


async def test_sim_amf_discovers_a_tls_only_eir_and_asks_over_tls(tmp_path: Path) -> None:
    """An EIR listening on TLS only registers scheme https; the simulated AMF discovers it and asks
    over TLS (ALPN h2), the certificate checked against cafile."""
    from tests.system.test_n5g_tls import self_signed

    cert, key = self_signed(tmp_path, "localhost")
    nrf = await SimulatedNrf.start(heartbeat=10)
    n5g = N5gConfig(
        listen=[],
        tls_listen=["127.0.0.1:0"],
        tls_cert=str(cert),
        tls_key=str(key),
        nrf=nrf.url,
        nrf_advertise="localhost",
    )
    eir = await start(Config(n5g=n5g), FirstDigitChecker(), Events())
    try:
        await asyncio.wait_for(eir.nrf.registered.wait(), 30)
        [(_h, tls_port, _t)] = eir.addresses()
        [profile] = nrf.profiles.values()
        svc = profile["nfServiceList"]["n5g-eir-eic"]
        assert (svc["scheme"], svc["fqdn"], svc["ipEndPoints"][0]["port"]) == ("https", "localhost", tls_port)
        assert await find_eir(nrf.url) == [f"https://localhost:{tls_port}"]
        amf = await SimulatedAmf.discover(nrf.url, cafile=str(cert))
        try:
            assert (await amf.check("imei-300000000000000")).verdict == "black"
        finally:
            await amf.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            await SimulatedAmf.discover(nrf.url)  # the system's CAs do not know the lab's
    finally:
        await eir.shutdown(1.0)
        await nrf.stop()
