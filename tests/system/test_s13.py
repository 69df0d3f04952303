"""`eir serve` in a subprocess, lists imported through the CLI, the simulated MME (library and CLI)
checking white, grey, black and unknown IMEIs over S13; metrics, logs and graceful shutdown."""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import urllib.request
from typing import Any

import pytest

from eir.config import Config, DiameterConfig
from eir.model import CheckRequest, Status, Verdict
from eir.servers.diameter import sctp_available, start
from protocols.diameter import dictionary as d
from protocols.diameter.codec import encode_raw
from simulations.mme import SimulatedMme
from testkit.eirproc import eir_command

pytestmark = pytest.mark.system

WHITE, GREY, BLACK, UNKNOWN = "35123456789012", "35123456789020", "35123456789038", "35999999999999"
LISTS = f"imei,status,reason\n{WHITE},white,ok\n{GREY},grey,watch\n{BLACK},black,stolen\n"


@pytest.fixture
def eir(eir_factory: Any) -> Any:
    return eir_factory({"policy": {"unknown_equipment": "unknown", "clone": {"enabled": False}}}, lists=LISTS)


async def test_verdicts_over_s13(eir: Any) -> None:
    host, port = eir.diameter
    mme = await SimulatedMme.connect(host, port, origin_host="mme1.lab", origin_realm="lab")
    try:
        got = {
            imei: (await mme.check(imei, software_version="01", imsi="001010123456789")).verdict
            for imei in (WHITE, GREY, BLACK, UNKNOWN)
        }
        bad = await mme.check("3512345678901")  # 13 digits: 5004 from the protocol layer
        load = await mme.load(WHITE, count=300, window=32)
    finally:
        await mme.close()
    assert got == {WHITE: "white", GREY: "grey", BLACK: "black", UNKNOWN: "unknown"}
    assert bad.verdict == "error 5004"
    assert load.verdicts == {"white": 300}
    assert mme.closed and mme.close_reason == "dpr"

    mh, mp = eir.metrics
    text = urllib.request.urlopen(f"http://{mh}:{mp}/metrics", timeout=5).read().decode()
    assert 'eir_verdicts_total{interface="s13",rule="imei",status="black"} 1.0' in text
    assert 'eir_protocol_errors_total{error="invalid_avp_value",interface="s13"} 1.0' in text
    assert 'eir_check_duration_seconds_count{interface="s13"}' in text
    events = [e.get("event") for e in eir.log_events()]
    assert "diameter_peer_open" in events and "diameter_protocol_error" in events
    assert "diameter_peer_closed" in events


def test_sim_mme_cli(eir: Any) -> None:
    host, port = eir.diameter
    base = [*eir_command(), "sim", "mme", "--connect", f"{host}:{port}"]
    one = subprocess.run(
        [*base, "--imei", BLACK, "--sv", "01", "--imsi", "001010123456789"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith(f"{BLACK}: black")
    many = subprocess.run(
        [*base, "--imei", UNKNOWN, "--count", "200", "--window", "16"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert many.returncode == 0, many.stderr
    assert "200 ECR (window 16)" in many.stdout and "p99" in many.stdout and "'unknown': 200" in many.stdout
    # the same through `eir … --config` (the default --connect comes from the config when its port is fixed)
    res = eir.cli("sim", "mme", "--connect", f"{host}:{port}", "--imei", GREY)
    assert res.stdout.startswith(f"{GREY}: grey")


async def test_graceful_shutdown_sends_dpr(eir: Any) -> None:
    host, port = eir.diameter
    mme = await SimulatedMme.connect(host, port)
    assert (await mme.check(WHITE)).verdict == "white"
    import asyncio

    rc = await asyncio.to_thread(eir.stop)
    assert rc == 0
    await _until(lambda: mme.closed)
    assert mme.close_reason == "peer-dpr"


# --- the asyncio server in-process (no subprocess): transports, back-pressure, shutdown ----------


async def _until(cond: Any, timeout: float = 10.0) -> None:
    """Wait for a condition the test needs before going on (not a timing assertion)."""
    for _ in range(int(timeout / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


class GateChecker:
    """Holds every check until released; records the order it was asked in."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.seen: list[str] = []

    async def check(self, request: CheckRequest) -> Verdict:
        self.seen.append(request.imei)
        if request.imei.startswith("9"):  # the slow ones wait for the gate
            await self.gate.wait()
        return Verdict(status=Status.WHITE if request.imei[1] == "1" else Status.BLACK, rule="test")


class Sink:
    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.items.append((topic, payload))


def _config(**kw: Any) -> Config:
    base: dict[str, Any] = {"listen": ["127.0.0.1:0"], "transports": ["tcp"]}
    base.update(kw)
    return Config(diameter=DiameterConfig(**base), shutdown_grace=2.0)


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def test_several_listen_addresses_and_sctp_detection(capsys: Any) -> None:
    listen = ["127.0.0.1:0", "[::1]:0"] if _has_ipv6() else ["127.0.0.1:0", "127.0.0.2:0"]
    server = await start(_config(listen=listen, transports=["tcp", "sctp"]), GateChecker(), Sink())
    try:
        addrs = server.addresses()
        assert len([a for a in addrs if a[2] == "tcp"]) == 2 and all(a[1] > 0 for a in addrs)
        for host, port, transport in addrs:
            if transport == "tcp":
                mme = await SimulatedMme.connect(host, port)
                assert (await mme.check("31123456789012")).verdict == "white"
                await mme.close()
        if sctp_available() is None:
            assert any(t == "sctp" for _, _, t in addrs)
        else:
            assert "sctp_unavailable" in capsys.readouterr().out
    finally:
        await server.shutdown(1.0)


NO_SCTP = f"no kernel SCTP here: {sctp_available()} (`make test-sctp` runs this in a VM that has it)"


@pytest.mark.sctp
@pytest.mark.skipif(sctp_available() is not None, reason=NO_SCTP)
async def test_sctp_transport() -> None:
    """S13 over SCTP for real: verdicts, a pipelined load (several ECRs per write, each its own
    SCTP message), DPR; then an association the MME aborts is cleaned up and a new one works."""
    server = await start(_config(transports=["sctp"]), GateChecker(), Sink())
    try:
        (host, port, transport), *_ = server.addresses()
        assert transport == "sctp"
        mme = await SimulatedMme.connect(host, port, sctp=True)
        assert (await mme.check("31123456789012")).verdict == "white"
        assert (await mme.check("32123456789012")).verdict == "black"
        load = await mme.load("31123456789012", count=200, window=16)
        assert load.verdicts == {"white": 200}
        await mme.close()
        assert mme.close_reason == "dpr"
        await _until(lambda: not server.connections)

        # ABORT from the client: the server's connection goes, with nothing left behind
        mme = await SimulatedMme.connect(host, port, sctp=True)
        assert (await mme.check("31123456789012")).verdict == "white"
        await _until(lambda: len(server.connections) == 1)
        assert mme._proto.transport is not None
        mme._proto.transport.abort()
        await _until(lambda: not server.connections)
        # restart: a new association to the same listener
        mme = await SimulatedMme.connect(host, port, sctp=True)
        assert (await mme.check("32123456789012")).verdict == "black"
        await mme.close()
    finally:
        await server.shutdown(1.0)


async def test_pipelined_answers_do_not_wait_for_a_slow_check_and_backpressure() -> None:
    checker = GateChecker()
    server = await start(_config(max_in_flight=4), checker, Sink())
    host, port, _ = server.addresses()[0]
    mme = await SimulatedMme.connect(host, port)
    try:
        slow = [asyncio.ensure_future(mme.check(f"9{i}123456789012", timeout=10)) for i in range(1, 5)]
        await _until(lambda: len(checker.seen) == 4)
        fast = asyncio.ensure_future(mme.check("31123456789012", timeout=10))
        await asyncio.sleep(0.3)
        # four slow checks are outstanding: the server stopped reading, the fifth is not even asked yet
        # (messages already read when the limit is reached are still processed; reading stops after)
        assert len(checker.seen) == 4 and not fast.done()
        checker.gate.set()
        results = await asyncio.gather(*slow, fast)
        assert [r.verdict for r in results] == ["white", "black", "black", "black", "white"]
        # gate closed again: a fast check overtakes the slow one on the same connection
        checker.gate.clear()
        slow2 = asyncio.ensure_future(mme.check("91123456789012", timeout=10))
        await _until(lambda: len(checker.seen) == 6)
        assert (await mme.check("32123456789012")).verdict == "black" and not slow2.done()
        checker.gate.set()
        assert (await slow2).verdict == "white"
    finally:
        await mme.close()
        await server.shutdown(1.0)


async def test_shutdown_answers_outstanding_checks_then_dpr() -> None:
    checker = GateChecker()
    sink = Sink()
    server = await start(_config(), checker, sink)
    host, port, _ = server.addresses()[0]
    mme = await SimulatedMme.connect(host, port)
    pending = asyncio.ensure_future(mme.check("91123456789012", timeout=10))
    await _until(lambda: len(checker.seen) == 1)
    stopping = asyncio.ensure_future(server.shutdown(3.0))
    await asyncio.sleep(0.1)
    checker.gate.set()
    assert (await pending).verdict == "white"
    await stopping
    await _until(lambda: mme.closed)
    assert mme.close_reason == "peer-dpr"
    events = [p["event"] for t, p in sink.items if t == "peer"]
    assert events == ["connected", "open", "closed", "disconnected"]


async def test_silent_peer_is_closed_by_the_watchdog() -> None:
    server = await start(_config(watchdog_interval=0.2), GateChecker(), Sink())
    host, port, _ = server.addresses()[0]
    reader, writer = await asyncio.open_connection(host, port)
    from tests.unit.diameter.helpers import cer

    writer.write(cer())
    try:
        cea = await asyncio.wait_for(reader.read(4096), 5)
        assert cea[5:8] == b"\0\1\1"
        # we never answer the DWR: the EIR sends it after Tw, suspects after 2*Tw, closes after 3*Tw
        data = await asyncio.wait_for(reader.read(4096), 5)
        assert data[4] & 0x80 and data[5:8] == b"\0\1\x18"  # DWR (280)
        assert await asyncio.wait_for(reader.read(4096), 5) == b""  # closed
    finally:
        writer.close()
        await server.shutdown(1.0)


async def test_lost_framing_closes_the_connection() -> None:
    server = await start(_config(), GateChecker(), Sink())
    host, port, _ = server.addresses()[0]
    mme = await SimulatedMme.connect(host, port)
    await mme.send_raw(b"\x02\x00\x00\x14" + b"\x80\x00\x01\x44" + b"\0" * 12)  # version 2
    await _until(lambda: mme.closed)
    await server.shutdown(1.0)


async def test_error_answer_keeps_the_connection(tmp_path: Any) -> None:
    server = await start(_config(), GateChecker(), Sink())
    host, port, _ = server.addresses()[0]
    mme = await SimulatedMme.connect(host, port)
    origin = d.ORIGIN_HOST.encode("mme.sim.localdomain") + d.ORIGIN_REALM.encode("sim.localdomain")
    await mme.send_raw(encode_raw(999, 0x80, 0, 1, 1, origin))  # unknown base command → 3001
    assert (await mme.check("31123456789012")).verdict == "white"
    await mme.close()
    await server.shutdown(1.0)


async def test_core_exception_is_logged_counted_and_closes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the core (made to raise here) on an OPEN connection must not end in asyncio's
    "Fatal error: protocol.data_received() call failed": the adapter logs it with the peer and the
    input, counts eir_protocol_errors{error="internal"} and just closes (no DPR, no answer: nothing
    the core holds can be trusted)."""
    from diameter.message import Message as PdMessage
    from structlog.testing import capture_logs

    from eir.metrics import register_metrics

    REGISTRY = register_metrics()
    from tests.unit.diameter.helpers import cer

    server = await start(_config(), GateChecker(), Sink())
    host, port, _ = server.addresses()[0]
    reader, writer = await asyncio.open_connection(host, port)
    labels = {"interface": "s13", "error": "internal"}
    try:
        writer.write(cer())
        cea = PdMessage.from_bytes(await asyncio.wait_for(reader.read(4096), 5))
        assert cea.header.command_code == 257 and cea.result_code == 2001
        (conn,) = server.connections
        assert conn.open

        def broken(data: bytes, now: float) -> list[Any]:
            raise RuntimeError("core bug")

        monkeypatch.setattr(conn.core, "receive_data", broken)
        before = REGISTRY.get_sample_value("eir_protocol_errors_total", labels) or 0.0
        dwr = bytes.fromhex("0100001480000118000000000000000100000001")
        with capture_logs() as logs:
            writer.write(dwr)
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, and nothing sent first
            await asyncio.wait_for(conn.closed.wait(), 5)
        assert REGISTRY.get_sample_value("eir_protocol_errors_total", labels) == before + 1
        (line,) = [e for e in logs if e["event"] == "diameter_internal_error"]
        assert line["log_level"] == "error" and line["exc_info"] is True
        assert line["data"] == dwr.hex() and line["peer"].startswith("127.0.0.1:")
        assert "Fatal error" not in caplog.text
        assert not server.connections and not conn.open
    finally:
        writer.close()
        await server.shutdown(1.0)


async def test_a_peer_that_just_drops_the_connection_is_closed_with_its_reason() -> None:
    """No DPR, the TCP connection simply goes: the core's ConnectionClosed(peer-disconnected) is
    counted and published like every other close (it used to be dropped in connection_lost)."""
    from eir.metrics import register_metrics

    registry = register_metrics()
    labels = {"interface": "s13", "event": "closed_peer-disconnected"}
    before = registry.get_sample_value("eir_peer_events_total", labels) or 0.0
    sink = Sink()
    server = await start(_config(), GateChecker(), sink)
    host, port, _ = server.addresses()[0]
    mme = await SimulatedMme.connect(host, port)
    (conn,) = server.connections
    tr = mme._proto.transport
    assert tr is not None
    # gone without DPR and without FIN: SO_LINGER 0 makes the close a reset, so the EIR learns of it
    # in connection_lost (an orderly FIN would reach eof_received first)
    sock = tr.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    tr.abort()
    await asyncio.wait_for(conn.closed.wait(), 5)
    await server.shutdown(1.0)
    assert registry.get_sample_value("eir_peer_events_total", labels) == before + 1
    closed = [p for t, p in sink.items if t == "peer" and p["event"] == "closed"]
    assert [p["reason"] for p in closed] == ["peer-disconnected"]
