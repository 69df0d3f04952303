"""MAP checkIMEI end to end: the simulated MSC/SGSN → ``eir serve`` (subprocess) over M3UA/TCP."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
from typing import ClassVar

import pytest

from eir.config import Config, M3uaConfig
from eir.events import NullEvents
from eir.model import CheckRequest, Status, Verdict
from eir.servers import m3ua as m3ua_server
from eir.servers.m3ua import sctp_available
from protocols.imei import luhn_check_digit
from simulations.msc import SimulatedMsc
from testkit.eirproc import clean_env, eir_command

pytestmark = pytest.mark.system

WHITE, GREY, BLACK, UNLISTED = "35809101685355", "49015420323751", "35693803564380", "01234567890123"
LISTS = f"imei,status\n{WHITE},white\n{GREY},grey\n{BLACK},black\n"


@pytest.fixture
def eir_with_lists(eir_factory, tmp_path):
    """``eir_factory`` with the test lists imported at start (``lists.import_on_start``)."""
    csv = tmp_path / "lists.csv"
    csv.write_text(LISTS)

    def make(config: dict | None = None):
        cfg = dict(config or {})
        cfg["lists"] = {"import_on_start": [str(csv)]}
        return eir_factory(cfg)

    return make


async def connect(eir, **kw) -> SimulatedMsc:
    host, port = eir.m3ua
    return await SimulatedMsc.connect(host, port, **kw)


@pytest.mark.parametrize("version", [1, 2, 3])
async def test_each_version_each_verdict(eir_with_lists, version: int) -> None:
    eir = eir_with_lists()
    msc = await connect(eir)
    try:
        for imei, verdict in ((WHITE, "white"), (GREY, "grey"), (BLACK, "black")):
            r = await msc.check(imei, version=version)
            assert (r.verdict, r.version, r.fallback_from) == (verdict, version, None)
        # the IMEI with its Luhn check digit as the 15th digit is the same equipment
        r = await msc.check(WHITE + str(luhn_check_digit(WHITE)), version=version)
        assert r.verdict == "white"
    finally:
        await msc.close()
    ev = eir.wait_for_log("m3ua_asp_state", new="ACTIVE")
    assert ev["interface"] == "map"
    metrics = eir.metrics_text()
    assert 'eir_check_requests_total{interface="map"} 4.0' in metrics
    assert 'eir_peer_events_total{event="asp_active",interface="map"}' in metrics


async def test_huawei_variant_is_counted_by_vendor(eir_with_lists) -> None:
    """A lab wants to see that its MSC sends Huawei's form: ``eir sim msc --vendor huawei`` sends a
    v3 CheckIMEI-Arg with [0] IMSI; /metrics counts it under vendor="huawei" (and the TCAP core's
    other counters, read at scrape time, agree with one answered dialogue)."""
    eir = eir_with_lists()
    host, port = eir.m3ua
    cmd = [
        *eir_command(),
        "sim",
        "msc",
        "--connect",
        f"{host}:{port}",
        "--imei",
        BLACK,
        "--imsi",
        "262011234567890",
        "--vendor",
        "huawei",
        "--map-version",
        "3",
        "--json",
    ]
    res = await asyncio.to_thread(
        subprocess.run, cmd, capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert (out["verdict"], out["version"]) == ("black", 3)
    ev = eir.wait_for_log("map_vendor_variant")
    assert ev["detail"].startswith("huawei:")
    metrics = eir.metrics_text()
    for line in (
        'eir_map_vendor_variants_total{vendor="huawei"} 1.0',
        'eir_map_vendor_variants_total{vendor="ericsson"} 0.0',
        "eir_map_check_imei_invokes_total 1.0",
        'eir_tcap_components_sent_total{component="return_result"} 1.0',
        'eir_tcap_messages_sent_total{type="end"} 1.0',
        "eir_tcap_dialogues_expired_total 0.0",
        "eir_tcap_open_dialogues 0.0",
    ):
        assert line in metrics, line


async def test_unknown_equipment(eir_with_lists) -> None:
    eir = eir_with_lists({"policy": {"unknown_equipment": "unknown"}})
    msc = await connect(eir)
    try:
        r = await msc.check(UNLISTED, version=2)
        assert r.verdict == "error:unknown_equipment"
        assert (await msc.check(BLACK, version=3)).verdict == "black"
    finally:
        await msc.close()


async def test_ac_fallback_v3_to_v2(eir_with_lists) -> None:
    eir = eir_with_lists({"m3ua": {"map_versions": [1, 2]}})
    msc = await connect(eir)
    try:
        r = await msc.check(GREY, version=3)
        assert (r.verdict, r.version, r.fallback_from) == ("grey", 2, 3)
    finally:
        await msc.close()
    eir.wait_for_log("tcap_error", kind="acn_not_supported")


async def test_sgsn_role(eir_with_lists) -> None:
    eir = eir_with_lists()
    msc = await connect(eir, role="sgsn", routing_context=7)
    try:
        r = await msc.check(BLACK, version=3, imsi="262011234567890")
        assert r.verdict == "black"
    finally:
        await msc.close()
    ev = eir.wait_for_log("check", interface="map")
    assert ev["imsi"] == "262011234567890"


async def test_load_with_window(eir_with_lists) -> None:
    eir = eir_with_lists()
    msc = await connect(eir)
    try:
        s = await msc.load(WHITE, count=500, window=32, version=2)
        assert s.verdicts == {"white": 500} and s.count == 500
    finally:
        await msc.close()


async def test_bad_input_gets_err_log_and_metric(eir_factory) -> None:
    eir = eir_factory()
    host, port = eir.m3ua
    reader, writer = await asyncio.open_connection(host, port)
    try:
        # DATA before ASP-ACTIVE → ERR Unexpected Message (0x06); then a bad length → ERR + close.
        data = bytes.fromhex("010001010000001802100010000000010000000203020000")
        writer.write(data)
        hdr = await asyncio.wait_for(reader.readexactly(8), 5)
        body = await reader.readexactly(struct.unpack("!I", hdr[4:])[0] - 8)
        assert hdr[2:4] == b"\x00\x00" and body[:8] == bytes.fromhex("000c000800000006")
        writer.write(struct.pack("!BBBBI", 1, 0, 3, 1, 3))
        hdr = await asyncio.wait_for(reader.readexactly(8), 5)
        body = await reader.readexactly(struct.unpack("!I", hdr[4:])[0] - 8)
        assert body[:8] == bytes.fromhex("000c000800000007")
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
    finally:
        writer.close()
    eir.wait_for_log("m3ua_error_sent", error="UNEXPECTED_MESSAGE")
    metrics = eir.metrics_text()
    assert 'eir_protocol_errors_total{error="m3ua_unexpected_message",interface="map"} 1.0' in metrics
    assert 'eir_protocol_errors_total{error="m3ua_protocol_error",interface="map"} 1.0' in metrics


async def test_graceful_shutdown_closes_associations(eir_with_lists) -> None:
    eir = eir_with_lists()
    msc = await connect(eir)
    assert (await msc.check(WHITE, version=2)).verdict == "white"
    assert await asyncio.to_thread(eir.stop) == 0
    await asyncio.wait_for(msc._p.closed.wait(), 5)
    assert not msc.active


NO_SCTP = f"no kernel SCTP here: {sctp_available()} (`make test-sctp` runs this in a VM that has it)"


class TableChecker:
    """The verdicts of LISTS, in-process (under the SCTP VM's emulated CPU a subprocess per test
    costs half a minute; ``tests/system/test_sctp_wire.py`` runs ``eir serve`` itself)."""

    TABLE: ClassVar[dict[str, Status]] = {WHITE: Status.WHITE, GREY: Status.GREY, BLACK: Status.BLACK}

    async def check(self, request: CheckRequest) -> Verdict:
        return Verdict(status=self.TABLE.get(request.imei[:14], Status.UNKNOWN), rule="test")


@pytest.mark.sctp
@pytest.mark.skipif(sctp_available() is not None, reason=NO_SCTP)
async def test_sctp() -> None:
    """M3UA over SCTP for real: each MAP version and verdict; an association the MSC aborts is
    cleaned up by the EIR (association gone, ASP no longer counted) and a new one works."""
    server = await m3ua_server.start(
        Config(m3ua=M3uaConfig(listen=["127.0.0.1:0"], transports=["sctp"])), TableChecker(), NullEvents()
    )
    msc: SimulatedMsc | None = None
    try:
        (host, port, transport), *_ = server.addresses()
        assert transport == "sctp"
        msc = await SimulatedMsc.connect(host, port, sctp=True)
        for version in (1, 2, 3):
            for imei, verdict in ((WHITE, "white"), (GREY, "grey"), (BLACK, "black")):
                assert (await msc.check(imei, version=version)).verdict == verdict
        load = await msc.load(WHITE, count=100, window=16, version=3)
        assert load.verdicts == {"white": 100}
        assert not msc._p.errors  # no ERR from the EIR (Invalid Stream Identifier, say)
        assert len(server.associations) == 1
        assert msc._p.transport is not None
        msc._p.transport.abort()  # SCTP ABORT
        await asyncio.wait_for(msc._p.closed.wait(), 5)
        for _ in range(500):
            if not server.associations:
                break
            await asyncio.sleep(0.01)
        assert not server.associations
        msc = await SimulatedMsc.connect(host, port, sctp=True)
        assert (await msc.check(BLACK, version=3)).verdict == "black"
        assert not msc._p.errors
    finally:
        if msc is not None:
            await msc.close()
        await server.shutdown(1.0)


@pytest.mark.sctp
@pytest.mark.skipif(sctp_available() is not None, reason=NO_SCTP)
async def test_sctp_outbound_asp_to_an_stp() -> None:
    """``m3ua.connect`` over SCTP: the EIR dials an STP as an ASP, answers a checkIMEI it forwards
    (DATA on a stream other than 0 both ways, else the cores answer ERR), and redials after the
    STP aborts the association."""
    from netio.sctp import SCTP_PPID_M3UA, m3ua_framer, sctp_serve
    from protocols.sigtran import m3ua, sccp
    from protocols.sigtran.stack import CheckImeiAnswered, CheckImeiClient

    loop = asyncio.get_running_loop()
    actives: list[Stp] = []
    answered: asyncio.Future[CheckImeiAnswered] = loop.create_future()

    class Stp(asyncio.Protocol):
        def __init__(self) -> None:
            self.core = CheckImeiClient(
                m3ua_settings=m3ua.M3uaSettings(role=m3ua.Role.SG),
                opc=1,
                dpc=2,
                calling=sccp.make_address(ssn=8, gt="491700000008"),
                called=sccp.make_address(ssn=9, gt="491700000009"),
            )
            self.errors: list[object] = []

        def connection_made(self, transport) -> None:
            self.transport = transport

        def sctp_data_received(self, data: bytes, stream: int | None) -> None:
            assert stream is not None
            for ev in self.core.receive_data(data, loop.time(), stream):
                if isinstance(ev, m3ua.AspStateChanged) and ev.new is m3ua.AspState.ACTIVE:
                    actives.append(self)
                if isinstance(ev, (m3ua.ErrorSent, m3ua.ErrorReceived)):
                    self.errors.append(ev)
                if isinstance(ev, CheckImeiAnswered) and not answered.done():
                    answered.set_result(ev)
            if out := self.core.data_to_send():
                self.transport.write(out)

    stp = await sctp_serve(Stp, "127.0.0.1", 0, SCTP_PPID_M3UA, framer=m3ua_framer)
    port = stp.sockets[0].getsockname()[1]
    cfg = Config(m3ua=M3uaConfig(listen=[], connect=[f"127.0.0.1:{port}"], transports=["sctp"]))
    server = await m3ua_server.start(cfg, TableChecker(), NullEvents())
    try:
        for _ in range(1000):
            if actives:
                break
            await asyncio.sleep(0.01)
        first = actives[0]
        first.core.send_check_imei(loop.time(), imei=BLACK, version=3)
        first.transport.write(first.core.data_to_send())
        ev = await asyncio.wait_for(answered, 10)
        assert ev.outcome is not None and ev.outcome.status is not None
        assert ev.outcome.status.name == "BLACK_LISTED"
        assert not first.errors
        first.transport.abort()  # the STP aborts: the EIR redials (back-off 1 s)
        for _ in range(1000):
            if len(actives) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(actives) == 2 and not actives[1].errors
    finally:
        await server.shutdown(1.0)
        stp.close()


async def test_outbound_asp_association_to_an_stp(eir_factory, tmp_path) -> None:
    """``m3ua.connect``: the EIR dials an STP/SG as an ASP (ASPUP, ASPAC with its routing context),
    then answers checkIMEIs the STP forwards, and takes the association down (ASPDN) on shutdown."""
    from protocols.sigtran import m3ua, sccp
    from protocols.sigtran.stack import CheckImeiAnswered, CheckImeiClient

    csv = tmp_path / "lists.csv"
    csv.write_text(LISTS)
    loop = asyncio.get_running_loop()
    stp = CheckImeiClient(
        m3ua_settings=m3ua.M3uaSettings(role=m3ua.Role.SG, routing_context=42),
        opc=1,
        dpc=2,
        calling=sccp.make_address(ssn=8, gt="491700000008"),
        called=sccp.make_address(ssn=9, gt="491700000009"),
    )
    active, answered, closed = asyncio.Event(), loop.create_future(), asyncio.Event()
    seen: list[object] = []

    class Stp(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            for ev in stp.receive_data(data, loop.time()):
                seen.append(ev)
                if isinstance(ev, m3ua.AspStateChanged) and ev.new is m3ua.AspState.ACTIVE:
                    active.set()
                if isinstance(ev, CheckImeiAnswered) and not answered.done():
                    answered.set_result(ev)
            if out := stp.data_to_send():
                self.transport.write(out)

        def connection_lost(self, exc) -> None:
            closed.set()

    proto = Stp()
    server = await loop.create_server(lambda: proto, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        eir = eir_factory(
            {
                "m3ua": {"listen": [], "connect": [f"127.0.0.1:{port}"], "routing_context": 42},
                "lists": {"import_on_start": [str(csv)]},
            }
        )
        await asyncio.wait_for(active.wait(), 10)
        assert stp.m3ua.peer_routing_context == (42,)
        stp.send_check_imei(loop.time(), imei=BLACK, version=3)
        proto.transport.write(stp.data_to_send())
        ev = await asyncio.wait_for(answered, 10)
        assert ev.outcome.status is not None and ev.outcome.status.name == "BLACK_LISTED"
        assert await asyncio.to_thread(eir.stop) == 0
        await asyncio.wait_for(closed.wait(), 10)
        states = [e.new for e in seen if isinstance(e, m3ua.AspStateChanged)]
        # ASPDN at the end
        assert states == [m3ua.AspState.INACTIVE, m3ua.AspState.ACTIVE, m3ua.AspState.DOWN]
    finally:
        server.close()
