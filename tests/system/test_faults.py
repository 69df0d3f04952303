"""Fault injection (issue 7 §4): every kind, on a real server with a real checker and store, seen
from the simulated MME / MSC / AMF and decoded again by an independent decoder — python-diameter
for S13, pycrate for M3UA/SCCP/TCAP, httpx for N5g-eir — from the bytes a tapping proxy between
them recorded. DWR silence is observed from freeDiameter (tests/interop/test_faults_freediameter.py).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from diameter.message import Message as PdMessage
from pycrate_asn1dir import TCAP_MAPv2v3
from pycrate_mobile.M3UA import parse_M3UA
from pycrate_mobile.SCCP import parse_SCCP

from eir.checker import PolicyChecker
from eir.config import (
    CloneConfig,
    Config,
    DiameterConfig,
    M3uaConfig,
    N5gConfig,
    OverloadConfig,
    PolicyConfig,
)
from eir.events import NullEvents
from eir.faults import REGISTRY
from eir.metrics import FAULTS_INJECTED, OVERLOAD_REFUSED
from eir.model import Status
from eir.overload import ADMISSION
from eir.servers import diameter, m3ua, n5g
from eir.store.base import EntryKind, ListEntry
from eir.store.memory import MemoryStore
from simulations.amf import SimulatedAmf
from simulations.mme import SimulatedMme
from simulations.msc import SimulatedMsc

pytestmark = pytest.mark.system

WHITE, BLACK, OTHER = "35123456789012", "35123456789038", "35999999999999"


@dataclass
class Tap:
    """A TCP proxy in front of the EIR: what the EIR sent to the client, as it went."""

    target: tuple[str, int]
    received: bytearray = field(default_factory=bytearray)
    server: asyncio.Server | None = None
    port: int = 0

    async def start(self) -> Tap:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection(*self.target)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, record: bool) -> None:
            try:
                while data := await r.read(65536):
                    if record:
                        self.received += data
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(cr, sw, False), pipe(sr, cw, True))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


def diameter_frames(buf: bytes) -> list[PdMessage]:
    out, pos = [], 0
    while pos + 20 <= len(buf):
        n = int.from_bytes(buf[pos + 1 : pos + 4], "big")
        out.append(PdMessage.from_bytes(bytes(buf[pos : pos + n])))
        pos += n
    return out


def ecas(tap: Tap) -> list[PdMessage]:
    return [m for m in diameter_frames(bytes(tap.received)) if m.header.command_code == 324]


def m3ua_messages(tap: Tap) -> list[tuple[tuple[int, int], dict[int, Any]]]:
    """Each message as pycrate decodes it: ((class, type), {tag: value})."""
    out = []
    pos, buf = 0, bytes(tap.received)
    while pos + 8 <= len(buf):
        n = int.from_bytes(buf[pos + 4 : pos + 8], "big")
        msg, err = parse_M3UA(buf[pos : pos + n])
        assert err == 0
        (_v, _r, cls, typ, _len), params = msg.get_val()
        out.append(((cls, typ), {tag: value for tag, _l, value, _pad in params}))
        pos += n
    return out


def tcap_answers(tap: Tap) -> list[tuple[str, dict[str, Any]]]:
    """The TCAP messages in the DATA the EIR sent, decoded by pycrate (M3UA → SCCP → TCAP)."""
    out = []
    for (cls, typ), params in m3ua_messages(tap):
        if (cls, typ) != (1, 1):
            continue
        s, err = parse_SCCP(params[0x0210][6])
        assert err == 0
        tcap = TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message
        tcap.from_ber(s["Data"][1].get_val())
        out.append(tcap.get_val())
    return out


def avp(m: PdMessage, code: int) -> Any:
    return next(a.value for a in m.avps if a.code == code)


def result_code(m: PdMessage) -> int:
    return int(avp(m, 268))  # Result-Code


def injected(kind: str) -> float:
    return FAULTS_INJECTED.labels(kind)._value.get()  # type: ignore[no-any-return]


@pytest.fixture
async def checker() -> AsyncIterator[PolicyChecker]:
    store = MemoryStore()
    await store.open()
    await store.import_version(
        [
            ListEntry(kind=EntryKind.IMEI, key=WHITE, status=Status.WHITE),
            ListEntry(kind=EntryKind.IMEI, key=BLACK, status=Status.BLACK),
        ],
        [],
        source="test",
    )
    cfg = Config(policy=PolicyConfig(clone=CloneConfig(enabled=False)))
    yield PolicyChecker(cfg, store, NullEvents())
    await store.close()


@pytest.fixture(autouse=True)
def clean_registry() -> Any:
    REGISTRY.clear()
    yield
    REGISTRY.clear()


def config(**kw: Any) -> Config:
    return Config(
        diameter=DiameterConfig(listen=["127.0.0.1:0"], transports=["tcp"]),
        m3ua=M3uaConfig(listen=["127.0.0.1:0"], transports=["tcp"]),
        n5g=N5gConfig(listen=["127.0.0.1:0"]),
        shutdown_grace=1.0,
        **kw,
    )


async def until(pred: Callable[[], bool], what: str, limit: int = 500) -> None:
    for _ in range(limit):  # bounded: 500 times 10 ms
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


# --- S13 ------------------------------------------------------------------------------------------


@pytest.fixture
async def s13(checker: PolicyChecker) -> AsyncIterator[tuple[Any, Tap]]:
    server = await diameter.start(config(), checker, NullEvents())
    host, port, _ = server.addresses()[0]
    tap = await Tap((host, port)).start()
    yield server, tap
    await tap.close()
    await server.shutdown(1.0)


async def test_s13_result_codes_by_peer_and_imei_range(s13: tuple[Any, Tap]) -> None:
    _, tap = s13
    before = injected("result_code")
    REGISTRY.add({"kind": "result_code", "result_code": 3004, "peer": "mme-busy.*", "id": "busy"})
    REGISTRY.add({"kind": "result_code", "result_code": 5012, "imei": "35123456789030-35123456789039"})
    busy = await SimulatedMme.connect("127.0.0.1", tap.port, origin_host="mme-busy.lab", origin_realm="lab")
    calm = await SimulatedMme.connect("127.0.0.1", tap.port, origin_host="mme-calm.lab", origin_realm="lab")
    try:
        got = [
            (await busy.check(WHITE)).verdict,
            (await calm.check(WHITE)).verdict,
            (await calm.check(BLACK)).verdict,  # in the range: 5012
        ]
    finally:
        await busy.close()
        await calm.close()
    assert got == ["error 3004", "white", "error 5012"]
    decoded = ecas(tap)  # python-diameter, from the bytes on the wire
    assert [result_code(m) for m in decoded] == [3004, 2001, 5012]
    assert decoded[0].header.is_error and not decoded[2].header.is_error  # 3xxx: E bit (RFC 6733 §7.1)
    assert injected("result_code") == before + 2
    assert REGISTRY.rules()[0].injected == 1


async def test_s13_count_probability_delay_and_no_answer(s13: tuple[Any, Tap]) -> None:
    _, tap = s13
    REGISTRY.add({"kind": "result_code", "count": 2, "imei": WHITE})
    REGISTRY.add({"kind": "result_code", "probability": 0.0})  # never fires
    mme = await SimulatedMme.connect("127.0.0.1", tap.port, origin_host="mme.lab", origin_realm="lab")
    try:
        got = [(await mme.check(WHITE)).verdict for _ in range(3)]
        assert got == ["error 3004", "error 3004", "white"]  # the rule removed itself after 2
        assert len(REGISTRY.rules()) == 1
        REGISTRY.clear()
        # delay: the delayed ECR is answered after one sent later (answers by hop-by-hop id)
        REGISTRY.add({"kind": "delay", "delay_ms": 300, "imei": BLACK, "count": 1})
        slow = asyncio.ensure_future(mme.check(BLACK))
        await until(lambda: REGISTRY.rules() == [], "the delay rule fired")
        fast = await mme.check(WHITE)
        assert not slow.done() and fast.verdict == "white"
        assert (await slow).verdict == "black"
        # no answer: the ECR is dropped; the next one is answered
        REGISTRY.add({"kind": "no_answer", "imei": OTHER, "count": 1})
        lost = asyncio.ensure_future(mme.check(OTHER, timeout=30))
        await until(lambda: REGISTRY.rules() == [], "the no_answer rule fired")
        assert (await mme.check(WHITE)).verdict == "white"
        assert not lost.done()
        lost.cancel()
    finally:
        await mme.close()
    codes = [(m.header.hop_by_hop_identifier, result_code(m)) for m in ecas(tap)]
    assert [c for _, c in codes] == [3004, 3004, 2001, 2001, 2001, 2001]  # WHITE, then BLACK after WHITE
    black = next(m for m in ecas(tap) if m.header.hop_by_hop_identifier == codes[4][0])
    assert int(avp(black, 1445)) == 1  # Equipment-Status BLACKLISTED, decoded by python-diameter


async def test_s13_close(s13: tuple[Any, Tap]) -> None:
    _, tap = s13
    REGISTRY.add({"kind": "close", "interfaces": ["s13"], "imei": BLACK})
    mme = await SimulatedMme.connect("127.0.0.1", tap.port, origin_host="mme.lab", origin_realm="lab")
    assert (await mme.check(WHITE)).verdict == "white"
    with pytest.raises((ConnectionError, asyncio.TimeoutError)):
        await mme.check(BLACK, timeout=10)
    await until(lambda: mme.closed, "the MME saw the connection close")
    assert [result_code(m) for m in ecas(tap)] == [2001]  # no answer to the second ECR, no DPR
    assert all(m.header.command_code != 282 for m in diameter_frames(bytes(tap.received)))


# --- MAP ------------------------------------------------------------------------------------------


@pytest.fixture
async def sigtran(checker: PolicyChecker) -> AsyncIterator[tuple[Any, Tap]]:
    server = await m3ua.start(config(), checker, NullEvents())
    host, port, _ = server.addresses()[0]
    tap = await Tap((host, port)).start()
    yield server, tap
    await tap.close()
    await server.shutdown(1.0)


def components(tcap: tuple[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [c for _, c in tcap[1].get("components", [])]


async def test_map_error_and_tcap_abort_by_gt_and_point_code(sigtran: tuple[Any, Tap]) -> None:
    _, tap = sigtran
    REGISTRY.add({"kind": "map_error", "peer": "gt:4917099*", "imei": WHITE})  # 34 systemFailure
    REGISTRY.add({"kind": "map_error", "map_error": 7, "peer": "pc:11", "imei": BLACK})
    REGISTRY.add({"kind": "tcap_abort", "imei": OTHER})
    msc = await SimulatedMsc.connect("127.0.0.1", tap.port, opc=11, gt="491709900001")
    try:
        got = [(await msc.check(imei)).verdict for imei in (WHITE, BLACK, OTHER)]
        got.append((await msc.check(OTHER, version=1)).verdict)  # v1: a bare Abort
    finally:
        await msc.close()
    assert got == ["error:system_failure", "error:unknown_equipment", "aborted", "aborted"]
    answers = tcap_answers(tap)  # pycrate, from the bytes on the wire
    kinds = [a[0] for a in answers]
    assert kinds == ["end", "end", "abort", "abort"]
    errs = [components(a)[0] for a in answers[:2]]
    assert [e[1]["errcode"][1] for e in errs] == [34, 7]
    u_abort = answers[2][1]["reason"]
    assert u_abort[0] == "u-abortCause"  # ABRT dialogue-service-user in the dialogue portion
    assert "reason" not in answers[3][1]  # v1: no dialogue portion
    assert injected("tcap_abort") >= 2


async def test_map_asp_down(sigtran: tuple[Any, Tap]) -> None:
    _, tap = sigtran
    REGISTRY.add({"kind": "asp_down", "imei": BLACK, "count": 1})
    msc = await SimulatedMsc.connect("127.0.0.1", tap.port)
    try:
        assert (await msc.check(WHITE)).verdict == "white"
        lost = asyncio.ensure_future(msc.check(BLACK, timeout=30))
        await until(lambda: not msc.active, "the MSC's ASP went down")
        lost.cancel()
    finally:
        await msc.close()
    types = [t for t, _ in m3ua_messages(tap)]
    assert (3, 5) in types  # ASPSM ASP Down Ack (unsolicited), decoded by pycrate
    assert types.index((3, 5)) > types.index((1, 1))  # after the first answer
    assert len([t for t in types if t == (1, 1)]) == 1  # the second check got no DATA


async def test_map_close_and_no_answer(sigtran: tuple[Any, Tap]) -> None:
    _, tap = sigtran
    REGISTRY.add({"kind": "no_answer", "imei": OTHER, "count": 1})
    REGISTRY.add({"kind": "close", "imei": BLACK})
    msc = await SimulatedMsc.connect("127.0.0.1", tap.port)
    lost = asyncio.ensure_future(msc.check(OTHER, timeout=30))
    await until(lambda: REGISTRY.rules()[0].kind != "no_answer", "the no_answer rule fired")
    assert (await msc.check(WHITE)).verdict == "white"
    assert not lost.done()
    with pytest.raises(ConnectionError):
        await msc.check(BLACK, timeout=30)
    await until(lambda: msc.closed, "the association closed")
    lost.cancel()
    assert [a[0] for a in tcap_answers(tap)] == ["end"]


# --- N5g-eir --------------------------------------------------------------------------------------


@pytest.fixture
async def sbi(checker: PolicyChecker) -> AsyncIterator[tuple[Any, str]]:
    server = await n5g.start(config(), checker, NullEvents())
    host, port, _ = server.addresses()[0]
    yield server, f"http://{host}:{port}"
    await server.shutdown(1.0)


async def test_n5g_http_status(sbi: tuple[Any, str]) -> None:
    _, base = sbi
    REGISTRY.add({"kind": "http_status", "http_status": 503, "imei": WHITE})
    REGISTRY.add({"kind": "http_status", "http_status": 429, "imei": BLACK})
    REGISTRY.add({"kind": "http_status", "http_status": 500, "imei": OTHER})
    amf = await SimulatedAmf.connect(base)
    try:
        seen = [(await amf.check(f"imei-{imei}0")).verdict for imei in (WHITE, BLACK, OTHER)]
    finally:
        await amf.close()
    assert seen == ["error 503 NF_CONGESTION", "error 429 NF_CONGESTION_RISK", "error 500 SYSTEM_FAILURE"]
    async with httpx.AsyncClient(base_url=base) as client:  # the independent decoder
        path = "/n5g-eir-eic/v1/equipment-status"
        r503 = await client.get(path, params={"pei": f"imei-{WHITE}0"})
        r429 = await client.get(path, params={"pei": f"imei-{BLACK}0"})
        r500 = await client.get(path, params={"pei": f"imei-{OTHER}0"})
    assert (r503.status_code, r503.headers["retry-after"], r503.json()["cause"]) == (
        503,
        "1",
        "NF_CONGESTION",
    )
    assert (r429.status_code, r429.json()["cause"]) == (429, "NF_CONGESTION_RISK")
    assert r429.headers["content-type"] == "application/problem+json"
    assert (r500.status_code, r500.json()["cause"], "retry-after" in r500.headers) == (
        500,
        "SYSTEM_FAILURE",
        False,
    )


async def test_n5g_close_and_delay(sbi: tuple[Any, str]) -> None:
    _, base = sbi
    REGISTRY.add({"kind": "close", "interfaces": ["n5g"], "imei": BLACK})
    REGISTRY.add({"kind": "delay", "delay_ms": 50, "imei": WHITE, "count": 1})
    path = "/n5g-eir-eic/v1/equipment-status"
    async with httpx.AsyncClient(base_url=base) as client:
        ok = await client.get(path, params={"pei": f"imei-{WHITE}0"})
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(path, params={"pei": f"imei-{BLACK}0"})
    assert (ok.status_code, ok.json()) == (200, {"status": "WHITELISTED"})
    assert injected("delay") >= 1 and injected("close") >= 1


# --- from config, counted and exported --------------------------------------------------------


def test_faults_from_config_counted_in_metrics(eir_factory: Any) -> None:
    eir = eir_factory(
        {
            "policy": {"clone": {"enabled": False}},
            "faults": [{"kind": "result_code", "result_code": 5012, "imei": BLACK, "id": "cfg"}],
        },
        lists=f"imei,status\n{WHITE},white\n{BLACK},black\n",
    )
    host, port = eir.diameter

    async def run() -> list[str]:
        mme = await SimulatedMme.connect(host, port, origin_host="mme.lab", origin_realm="lab")
        try:
            return [(await mme.check(i)).verdict for i in (WHITE, BLACK)]
        finally:
            await mme.close()

    assert asyncio.run(run()) == ["white", "error 5012"]
    mh, mp = eir.metrics
    text = urllib.request.urlopen(f"http://{mh}:{mp}/metrics", timeout=5).read().decode()
    assert 'eir_faults_injected_total{kind="result_code"} 1.0' in text
    for kind in ("delay", "no_answer", "map_error", "tcap_abort", "http_status", "close", "dwr_silence"):
        assert f'eir_faults_injected_total{{kind="{kind}"}} 0.0' in text
    for iface in ("s13", "map", "n5g"):
        for scope in ("global", "peer"):
            assert f'eir_overload_refused_total{{interface="{iface}",scope="{scope}"}} 0.0' in text
    assert "eir_checks_in_flight 0.0" in text
    events = eir.log_events()
    assert any(e.get("event") == "fault_injected" and e.get("rule") == "cfg" for e in events)
    assert any(e.get("event") == "faults_configured" for e in events)
    json.dumps(events[-1])  # the log stays JSON lines


# --- the overload answers, with delay faults holding the budget's slots ------------------------


@pytest.fixture
def small_budget() -> Any:
    yield OverloadConfig(max_in_flight=2, max_in_flight_per_peer=2)
    ADMISSION.configure_from(OverloadConfig())  # the defaults again for the tests that follow


async def test_overload_answers_on_every_interface(checker: PolicyChecker, small_budget: Any) -> None:
    cfg = config(overload=small_budget)
    s13_server = await diameter.start(cfg, checker, NullEvents())
    host, port, _ = s13_server.addresses()[0]
    tap = await Tap((host, port)).start()
    REGISTRY.add({"kind": "delay", "delay_ms": 60_000, "imei": OTHER, "interfaces": ["s13"]})
    mme = await SimulatedMme.connect("127.0.0.1", tap.port, origin_host="mme.lab", origin_realm="lab")
    held = [asyncio.ensure_future(mme.check(OTHER, timeout=120)) for _ in range(2)]
    await until(lambda: ADMISSION.in_flight == 2, "two delayed checks hold the budget")
    try:
        assert (await mme.check(WHITE)).verdict == "error 3004"
        busy = ecas(tap)[-1]  # python-diameter
        assert result_code(busy) == 3004 and busy.header.is_error
        # MAP: systemFailure by default; a TC-U-Abort with overload.map_answer: tc_abort
        for answer, expected in (("system_failure", "error:system_failure"), ("tc_abort", "aborted")):
            cfg.overload.map_answer = answer  # type: ignore[assignment]
            m3ua_server = await m3ua.start(cfg, checker, NullEvents())
            mh, mp, _ = m3ua_server.addresses()[0]
            mtap = await Tap((mh, mp)).start()
            msc = await SimulatedMsc.connect("127.0.0.1", mtap.port)
            try:
                assert (await msc.check(WHITE)).verdict == expected
            finally:
                await msc.close()
                await mtap.close()
                await m3ua_server.shutdown(1.0)
            last = tcap_answers(mtap)[-1]
            if answer == "tc_abort":
                assert last[0] == "abort" and last[1]["reason"][0] == "u-abortCause"
            else:
                assert last[0] == "end" and components(last)[0][1]["errcode"][1] == 34
        # N5g-eir: 503 NF_CONGESTION with Retry-After
        n5g_server = await n5g.start(config(overload=small_budget), checker, NullEvents())
        nh, np_, _ = n5g_server.addresses()[0]
        try:
            async with httpx.AsyncClient(base_url=f"http://{nh}:{np_}") as client:
                r = await client.get("/n5g-eir-eic/v1/equipment-status", params={"pei": f"imei-{WHITE}0"})
        finally:
            await n5g_server.shutdown(1.0)
        assert (r.status_code, r.headers["retry-after"], r.json()["cause"]) == (503, "1", "NF_CONGESTION")
        refused = OVERLOAD_REFUSED.labels("s13", "global")._value.get()
        assert refused >= 1
    finally:
        REGISTRY.clear()
        for t in held:
            t.cancel()
        await mme.close()
        await tap.close()
        await s13_server.shutdown(1.0)
    assert ADMISSION.in_flight == 0  # the slots came back when the connection went


async def test_n5g_no_answer_and_map_delay(checker: PolicyChecker, sbi: tuple[Any, str]) -> None:
    _, base = sbi
    REGISTRY.add({"kind": "no_answer", "interfaces": ["n5g"], "imei": OTHER, "count": 1})
    amf = await SimulatedAmf.connect(base)  # HTTP/2: the two requests on one connection
    try:
        lost = asyncio.ensure_future(amf.check(f"imei-{OTHER}0", timeout=60))
        await until(lambda: REGISTRY.rules() == [], "the no_answer rule fired")
        assert (await amf.check(f"imei-{WHITE}0")).verdict == "white"
        assert not lost.done()
        lost.cancel()
    finally:
        await amf.close()
    server = await m3ua.start(config(), checker, NullEvents())
    host, port, _ = server.addresses()[0]
    tap = await Tap((host, port)).start()
    REGISTRY.add({"kind": "delay", "delay_ms": 300, "interfaces": ["map"], "imei": BLACK, "count": 1})
    msc = await SimulatedMsc.connect("127.0.0.1", tap.port)
    try:
        slow = asyncio.ensure_future(msc.check(BLACK))
        await until(lambda: REGISTRY.rules() == [], "the delay rule fired")
        assert (await msc.check(WHITE)).verdict == "white"
        assert not slow.done()
        assert (await slow).verdict == "black"
    finally:
        await msc.close()
        await tap.close()
        await server.shutdown(1.0)
    ends = tcap_answers(tap)  # pycrate: the delayed dialogue's End came second
    statuses = [components(e)[0][1]["result"]["result"][1]["equipmentStatus"] for e in ends]
    assert statuses == ["whiteListed", "blackListed"], statuses
