"""N5g-eir end to end: ``eir serve`` (subprocess) asked by independent HTTP stacks — curl (libcurl +
nghttp2) with HTTP/2 prior knowledge and HTTP/1.1, nghttp, h2load, httpx (h2) — every answer and
ProblemDetails validated against the 3GPP OpenAPI files (specs/3gpp, openapi-core); and the same
verdicts over S13, MAP and N5g-eir for the same IMEIs."""

from __future__ import annotations

import asyncio
import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.imei import luhn_check_digit
from simulations.mme import SimulatedMme
from simulations.msc import SimulatedMsc
from testkit.eirproc import EirProcess
from testkit.peers import peer_program

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "specs" / "3gpp" / "TS29511_N5g-eir_EquipmentIdentityCheck.yaml"
API = "/n5g-eir-eic/v1/equipment-status"

WHITE, GREY, BLACK, UNLISTED = "35209900176148", "35123456789020", "35123456789038", "35999999999999"
SV_BLACK = "3539420600000301"  # only this software version is black
LISTS = f"imei,status\n{WHITE},white\n{GREY},grey\n{BLACK},black\n{SV_BLACK},black\n"


def cd(imei14: str) -> str:
    return imei14 + str(luhn_check_digit(imei14))


@pytest.fixture(scope="module")
def eir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("n5g")
    lists = tmp / "lists.csv"
    lists.write_text(LISTS)
    p = EirProcess(
        tmp / "eir",
        {
            "policy": {"unknown_equipment": "unknown", "clone": {"enabled": False}},
            "lists": {"import_on_start": [str(lists)]},
            "log": {"level": "info"},
        },
    )
    p.start()
    yield p
    p.stop()


@cache
def openapi() -> Any:
    from openapi_core import Config, OpenAPI

    return OpenAPI.from_file_path(
        str(SPEC), config=Config(extra_media_type_deserializers={"application/problem+json": json.loads})
    )


def validate(target: str, status: int, content_type: str, body: bytes) -> None:
    """The answer against TS29511 (+ TS29571 ProblemDetails): openapi-core raises on a violation.
    405 is not in the API's responses (it is HTTP's): checked by hand."""
    from openapi_core.testing import MockRequest, MockResponse

    if status == 405:
        pd = json.loads(body)
        assert content_type == "application/problem+json" and pd["status"] == 405
        return
    _path, _, query = target.partition("?")
    args: dict[str, str] = {}
    for part in query.split("&") if query else []:
        k, _, v = part.partition("=")
        args.setdefault(k, v)
    req = MockRequest("http://127.0.0.1", "get", API, args=args)
    openapi().validate_response(req, MockResponse(body, status_code=status, content_type=content_type))


# (request target, status, content type, what the body must hold)
CASES: list[tuple[str, int, str, dict[str, Any]]] = [
    (f"{API}?pei=imei-{cd(WHITE)}", 200, "application/json", {"status": "WHITELISTED"}),
    (
        f"{API}?pei=imei-{cd(GREY)}&supi=imsi-001010000000001",
        200,
        "application/json",
        {"status": "GREYLISTED"},
    ),
    (
        f"{API}?pei=imeisv-{BLACK}07&gpsi=msisdn-491711234567",
        200,
        "application/json",
        {"status": "BLACKLISTED"},
    ),
    (f"{API}?pei=imeisv-{SV_BLACK}", 200, "application/json", {"status": "BLACKLISTED"}),
    (
        f"{API}?pei=imeisv-{SV_BLACK[:14]}02",
        404,
        "application/problem+json",
        {"cause": "ERROR_EQUIPMENT_UNKNOWN"},
    ),
    (f"{API}?pei={cd(WHITE)}", 200, "application/json", {"status": "WHITELISTED"}),  # bare digits
    (f"{API}?pei=imei-{cd(UNLISTED)}", 404, "application/problem+json", {"cause": "ERROR_EQUIPMENT_UNKNOWN"}),
    (
        f"{API}?pei=mac-00-11-22-33-44-55",
        404,
        "application/problem+json",
        {"cause": "ERROR_EQUIPMENT_UNKNOWN"},
    ),
    (f"{API}", 400, "application/problem+json", {"cause": "MANDATORY_QUERY_PARAM_MISSING"}),
    (f"{API}?pei=imei-123", 400, "application/problem+json", {"cause": "MANDATORY_QUERY_PARAM_INCORRECT"}),
    (
        f"{API}?pei=imei-{cd(WHITE)}&supi=bob",
        400,
        "application/problem+json",
        {"cause": "OPTIONAL_QUERY_PARAM_INCORRECT", "invalidParams": [{"param": "query supi"}]},
    ),
    ("/n5g-eir-eic/v2/equipment-status", 404, "application/problem+json", {"status": 404}),
    (f"{API}?pei=imei-{cd(WHITE)}&pad={'9' * 3000}", 414, "application/problem+json", {"status": 414}),
]


def check_body(body: bytes, want: dict[str, Any]) -> None:
    got = json.loads(body)
    for k, v in want.items():
        if k == "invalidParams":
            assert [p["param"] for p in got[k]] == [p["param"] for p in v]
        else:
            assert got[k] == v, got


def curl(url: str, *opts: str) -> tuple[int, str, str, bytes, str]:
    """(status, content type, HTTP version, body, raw headers) as curl saw them."""
    exe = peer_program("curl", "curl", "curl (libcurl + nghttp2) is the client the Open5GS AMF uses")
    res = subprocess.run(
        [exe, "-sS", "-D", "-", "-o", "/dev/stderr", "-w", "\n%{json}", *opts, url],
        capture_output=True,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    head, _, meta = res.stdout.rpartition(b"\n")
    info = json.loads(meta)
    return int(info["http_code"]), info["content_type"], info["http_version"], res.stderr, head.decode()


@pytest.mark.parametrize(("target", "status", "ctype", "want"), CASES, ids=[c[0][-40:] for c in CASES])
@pytest.mark.parametrize("http", ["--http2-prior-knowledge", "--http1.1"])
def test_curl(eir: Any, http: str, target: str, status: int, ctype: str, want: dict[str, Any]) -> None:
    got_status, got_ctype, version, body, _ = curl(eir.n5g_url + target, http)
    assert (got_status, got_ctype) == (status, ctype), body
    assert version == ("2" if http == "--http2-prior-knowledge" else "1.1")
    check_body(body, want)
    validate(target, got_status, got_ctype, body)


@pytest.mark.parametrize("http", ["--http2-prior-knowledge", "--http1.1"])
def test_curl_method_not_allowed(eir: Any, http: str) -> None:
    status, ctype, _, body, head = curl(eir.n5g_url + f"{API}?pei=imei-{cd(WHITE)}", http, "-X", "POST")
    assert status == 405 and "\nallow: get\r" in head.lower(), head
    validate(API, status, ctype, body)


def test_nghttp(eir: Any) -> None:
    """nghttp (nghttp2's client; direct HTTP/2 for http:// URIs): several streams on one connection,
    no RST_STREAM or GOAWAY with an error from the EIR."""
    exe = peer_program("nghttp", "nghttp2-client", "nghttp is an independent HTTP/2 client")
    urls = [eir.n5g_url + t for t, *_ in CASES[:4]]
    res = subprocess.run([exe, "-v", "-n", *urls], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert out.count("recv HEADERS frame") == 4 and out.count(":status: 200") == 4, out
    assert "recv RST_STREAM" not in out and "error_code=PROTOCOL_ERROR" not in out
    assert "SETTINGS_MAX_CONCURRENT_STREAMS(0x03):256" in out


def test_h2load(eir: Any) -> None:
    """h2load, a third HTTP/2 stack, 4 connections with 32 concurrent streams each."""
    exe = peer_program("h2load", "nghttp2-client", "h2load is a third HTTP/2 stack")
    url = eir.n5g_url + f"{API}?pei=imei-{cd(BLACK)}"
    res = subprocess.run(
        [exe, "-n", "4000", "-c", "4", "-m", "32", url], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4000 succeeded, 0 failed, 0 errored, 0 timeout" in res.stdout, res.stdout
    assert "status codes: 4000 2xx" in res.stdout, res.stdout


async def test_httpx_http2_concurrent(eir: Any) -> None:
    async with httpx.AsyncClient(http1=False, http2=True, base_url=eir.n5g_url, timeout=10) as client:
        targets = [t for t, *_ in CASES] * 5
        answers = await asyncio.gather(*(client.get(t) for t in targets))
    for (target, status, ctype, want), r in zip(CASES * 5, answers, strict=True):
        assert r.http_version == "HTTP/2"
        assert r.status_code == status and r.headers["content-type"] == ctype, (target, r.text)
        assert int(r.headers["content-length"]) == len(r.content)
        check_body(r.content, want)


def test_metrics_and_logs(eir: Any) -> None:
    with httpx.Client(http1=False, http2=True, base_url=eir.n5g_url) as c:
        assert c.get(API).status_code == 400
        assert c.get(f"{API}?pei=imei-{cd(BLACK)}").json() == {"status": "BLACKLISTED"}
    text = eir.metrics_text()
    assert 'eir_protocol_errors_total{error="mandatory_query_param_missing",interface="n5g"}' in text
    assert 'eir_verdicts_total{interface="n5g",rule="imei",status="black"}' in text
    assert 'eir_check_duration_seconds_count{interface="n5g"}' in text
    assert 'eir_protocol_errors_total{error="internal",interface="n5g"} 0.0' in text
    assert eir.wait_for_log("n5g_listening")["port"] == eir.n5g[1]


# --- one policy, three interfaces --------------------------------------------------------------------


def _n5g_word(r: httpx.Response) -> str:
    if r.status_code == 200:
        return {"WHITELISTED": "white", "GREYLISTED": "grey", "BLACKLISTED": "black"}[r.json()["status"]]
    if r.status_code == 404 and r.json().get("cause") == "ERROR_EQUIPMENT_UNKNOWN":
        return "unknown"
    return f"http {r.status_code}"


def _map_word(v: str) -> str:
    return "unknown" if v == "error:unknown_equipment" else v


@pytest.mark.parametrize(
    ("imei14", "sv", "expected"),
    [
        (WHITE, None, "white"),
        (GREY, None, "grey"),
        (BLACK, None, "black"),
        (UNLISTED, None, "unknown"),
        (SV_BLACK[:14], SV_BLACK[14:], "black"),
        (SV_BLACK[:14], "02", "unknown"),
    ],
)
async def test_same_verdicts_over_s13_map_and_n5g(
    eir: Any, imei14: str, sv: str | None, expected: str
) -> None:
    mme = await SimulatedMme.connect(*eir.diameter)
    msc = await SimulatedMsc.connect(*eir.m3ua)
    try:
        s13 = (await mme.check(imei14, software_version=sv)).verdict
        mapv = _map_word((await msc.check(imei14 + sv if sv else imei14)).verdict)
    finally:
        await mme.close()
        await msc.close()
    pei = f"imeisv-{imei14}{sv}" if sv else f"imei-{cd(imei14)}"
    async with httpx.AsyncClient(http1=False, http2=True, base_url=eir.n5g_url) as c:
        n5g = _n5g_word(await c.get(API, params={"pei": pei}))
    assert (s13, mapv, n5g) == (expected, expected, expected)


# --- shutdown ---------------------------------------------------------------------------------------


def test_sigterm_closes_h2_connections_with_goaway(tmp_path: Path) -> None:
    p = EirProcess(tmp_path / "eir", {"diameter": {"enabled": False}, "m3ua": {"enabled": False}})
    p.start()
    try:
        c = httpx.Client(http1=False, http2=True, base_url=p.n5g_url)
        assert c.get(f"{API}?pei=imei-{cd(WHITE)}").status_code == 200
        assert p.stop() == 0
        c.close()
    finally:
        p.stop()
    assert "n5g" not in [e.get("interface") for e in p.log_events() if e.get("event") == "shutdown_error"]


# --- the simulated AMF ----------------------------------------------------------------------------


async def test_sim_amf_library(eir: Any) -> None:
    from simulations.amf import ILLEGAL_ME, SimulatedAmf

    amf = await SimulatedAmf.connect(eir.n5g_url, unknown_action="reject")
    try:
        black = await amf.check(f"imei-{cd(BLACK)}", supi="imsi-001010000000001")
        unknown = await amf.check(f"imei-{cd(UNLISTED)}")
        bad = await amf.check("imei-1")
        load = await amf.load(f"imei-{cd(WHITE)}", count=300, window=32)
        paced = await amf.load(f"imei-{cd(WHITE)}", count=20, window=4, rate=200.0)
    finally:
        await amf.close()
    assert (black.verdict, black.action) == ("black", ILLEGAL_ME)
    assert (unknown.verdict, unknown.action) == ("unknown", "reject (unknown_action)")
    assert bad.verdict == "error 400 MANDATORY_QUERY_PARAM_INCORRECT" and bad.action.startswith("accept")
    assert load.verdicts == {"white": 300} and load.count == 300
    assert paced.verdicts == {"white": 20} and paced.count == 20


def test_sim_amf_cli(eir: Any) -> None:
    from testkit.eirproc import eir_command

    base = [*eir_command(), "sim", "amf", "--connect", eir.n5g_url]
    one = subprocess.run([*base, "--pei", f"imeisv-{SV_BLACK}"], capture_output=True, text=True, timeout=30)
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith(f"imeisv-{SV_BLACK}: black → AMF: reject: 5GMM cause #6 ILLEGAL_ME")
    many = subprocess.run(
        [*base, "--pei", f"imei-{cd(GREY)}", "--count", "200", "--window", "16"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert many.returncode == 0, many.stderr
    assert "200 GetEquipmentStatus (window 16)" in many.stdout and "'grey': 200" in many.stdout


# --- fuzzing the contract (what schemathesis would do with the YAML) --------------------------------

_PEI = st.one_of(
    st.from_regex(r"\Aimei-[0-9]{15}\Z"),
    st.from_regex(r"\Aimeisv-[0-9]{16}\Z"),
    st.from_regex(r"\Amac(-[0-9a-fA-F]{2}){6}(-untrusted)?\Z"),
    st.from_regex(r"\Aeui(-[0-9a-fA-F]{2}){8}\Z"),
    st.from_regex(r"\A[0-9]{13,17}\Z"),
    st.text(max_size=40),
)
_SUPI = st.one_of(
    st.none(), st.from_regex(r"\Aimsi-[0-9]{3,16}\Z"), st.from_regex(r"\Anai-.+@.+\Z"), st.text(max_size=20)
)
_GPSI = st.one_of(st.none(), st.from_regex(r"\Amsisdn-[0-9]{3,16}\Z"), st.text(max_size=20))
_SF = st.one_of(st.none(), st.from_regex(r"\A[0-9a-fA-F]{0,8}\Z"), st.text(max_size=8))


def test_random_queries_get_documented_answers(eir: Any) -> None:
    """Random PEI/SUPI/GPSI/supported-features (the spec's patterns and junk): every answer is a
    status the API documents, valid against TS29511/TS29571 (openapi-core), never a 5xx."""
    from urllib.parse import quote

    with httpx.Client(http1=False, http2=True, base_url=eir.n5g_url, timeout=10) as client:

        @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
        @given(_PEI, _SUPI, _GPSI, _SF, st.booleans())
        def prop(pei: str, supi: str | None, gpsi: str | None, sf: str | None, omit_pei: bool) -> None:
            params = [("supi", supi), ("gpsi", gpsi), ("supported-features", sf)]
            if not omit_pei:
                params.insert(0, ("pei", pei))
            query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params if v is not None)
            target = f"{API}?{query}" if query else API
            r = client.get(target)
            assert r.status_code in (200, 400, 404, 414), (target, r.status_code, r.text)
            validate(target, r.status_code, r.headers["content-type"], r.content)

        prop()
