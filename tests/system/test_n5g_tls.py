"""N5g-eir over TLS (ALPN h2 and http/1.1) with certificates made in the test: curl --http2 and
--http1.1, httpx (h2), mutual TLS, and the key-log file Wireshark decrypts with."""

from __future__ import annotations

import json
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.eirproc import EirProcess
from testkit.peers import peer_program

pytestmark = pytest.mark.system

API = "/n5g-eir-eic/v1/equipment-status?pei=imei-352099001761481"


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    openssl = peer_program("openssl", "openssl", "the test makes its certificates")
    cert, key = tmp / f"{name}.pem", tmp / f"{name}.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_eir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("n5gtls")
    cert, key = self_signed(tmp, "eir")
    ccert, ckey = self_signed(tmp, "amf")
    lists = tmp / "lists.csv"
    lists.write_text("imei,status\n35209900176148,black\n")
    procs = []

    def make(mutual: bool) -> EirProcess:
        p = EirProcess(
            tmp / f"eir{len(procs)}",
            {
                "diameter": {"enabled": False},
                "m3ua": {"enabled": False},
                "lists": {"import_on_start": [str(lists)]},
                "n5g": {
                    "tls_listen": ["127.0.0.1:0"],
                    "tls_cert": str(cert),
                    "tls_key": str(key),
                    "tls_keylog": str(tmp / f"keylog{len(procs)}.txt"),
                    **({"tls_client_ca": str(ccert)} if mutual else {}),
                },
            },
        )
        procs.append(p)
        return p.start()

    yield make, cert, (ccert, ckey), tmp
    for p in procs:
        p.stop()


def tls_url(p: EirProcess) -> str:
    (_h, port, _t) = next(a for a in p.ready["n5g"] if a[2] == "tls")
    return f"https://localhost:{port}"


@pytest.mark.parametrize(("http", "version"), [("--http2", "2"), ("--http1.1", "1.1")])
def test_curl_over_tls_alpn(tls_eir: Any, http: str, version: str) -> None:
    make, cert, _client, _tmp = tls_eir
    p = make(False)
    curl = peer_program("curl", "curl", "curl (libcurl + nghttp2) is the client the Open5GS AMF uses")
    res = subprocess.run(
        [curl, "-sS", "--cacert", str(cert), http, "-w", "\n%{http_version} %{http_code}", tls_url(p) + API],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    body, _, meta = res.stdout.rpartition("\n")
    assert meta == f"{version} 200" and json.loads(body) == {"status": "BLACKLISTED"}
    # the cleartext port serves too
    assert p.n5g[1] != int(tls_url(p).rsplit(":", 1)[1])


def test_httpx_h2_over_tls_and_keylog(tls_eir: Any) -> None:
    make, cert, _client, _tmp = tls_eir
    p = make(False)
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(cert))) as c:
        r = c.get(tls_url(p) + API)
    assert r.http_version == "HTTP/2" and r.json() == {"status": "BLACKLISTED"}
    keylog = Path(p.config["n5g"]["tls_keylog"]).read_text()
    assert "CLIENT_TRAFFIC_SECRET_0" in keylog or "CLIENT_RANDOM" in keylog


def test_mutual_tls(tls_eir: Any) -> None:
    make, cert, (ccert, ckey), _tmp = tls_eir
    p = make(True)
    curl = peer_program("curl", "curl", "curl (libcurl + nghttp2) is the client the Open5GS AMF uses")
    base = [curl, "-sS", "--cacert", str(cert), "--http2", tls_url(p) + API]
    refused = subprocess.run(base, capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0
    ok = subprocess.run(
        [*base, "--cert", str(ccert), "--key", str(ckey)], capture_output=True, text=True, timeout=30
    )
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"status": "BLACKLISTED"}, ok.stderr
