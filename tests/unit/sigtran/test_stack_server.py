"""The M3UA asyncio adapter (eir.servers.m3ua) in-process, with checkers that really wait.

The system tests run ``eir serve`` with SQLite, whose checks complete without suspending (the
adapter's eager path). These drive the other path — a check that awaits — plus a failing checker,
back-pressure (``max_in_flight``) and a graceful shutdown with checks still in flight.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest
from pycrate_mobile.M3UA import parse_M3UA
from structlog.testing import capture_logs

from eir.config import Config, M3uaConfig
from eir.events import NullEvents
from eir.metrics import register_metrics
from eir.model import Checker, CheckRequest, Status, Verdict
from eir.servers import m3ua as server_mod
from protocols.sigtran import m3ua
from protocols.sigtran.stack import EirSigtranStack
from simulations.msc import SimulatedMsc

REGISTRY = register_metrics()


class SlowChecker:
    """A Checker whose answer takes ``delay`` seconds (a remote store, say): grey for everything."""

    def __init__(self, delay: float = 0.01, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.seen: list[CheckRequest] = []

    async def check(self, request: CheckRequest) -> Verdict:
        self.seen.append(request)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("store exploded")
        return Verdict(status=Status.GREY, rule="test")


async def start(checker: Checker, **m3ua: object) -> server_mod.M3uaServer:
    cfg = Config(m3ua=M3uaConfig(listen=["127.0.0.1:0"], transports=["tcp"], **m3ua))  # type: ignore[arg-type]
    return await server_mod.start(cfg, checker, NullEvents())


async def test_waiting_checker_answers() -> None:
    checker = SlowChecker()
    srv = await start(checker)
    host, port, transport = srv.addresses()[0]
    assert transport == "tcp"
    msc = await SimulatedMsc.connect(host, port)
    try:
        r = await msc.check("35809101685355", version=3, imsi="262011234567890")
        assert r.verdict == "grey"
        # As received (14 digits + the spare digit 0): the policy's one normaliser decides what a
        # 15th digit is, not the adapter.
        assert checker.seen[0].imei == "358091016853550"
        assert checker.seen[0].imsi == "262011234567890" and checker.seen[0].origin == "491700000008"
        assert checker.seen[0].extras == {"map_version": 3, "vendor": "huawei"}
    finally:
        await msc.close()
        await srv.shutdown(1.0)


async def test_failing_checker_gives_system_failure() -> None:
    srv = await start(SlowChecker(fail=True))
    host, port, _ = srv.addresses()[0]
    msc = await SimulatedMsc.connect(host, port)
    try:
        assert (await msc.check("35809101685355", version=2)).verdict == "error:system_failure"
    finally:
        await msc.close()
        await srv.shutdown(1.0)


async def test_back_pressure_still_answers_everything() -> None:
    srv = await start(SlowChecker(delay=0.001), max_in_flight=4)
    host, port, _ = srv.addresses()[0]
    msc = await SimulatedMsc.connect(host, port)
    try:
        s = await msc.load("35809101685355", count=300, window=64, version=2)
        assert s.verdicts == {"grey": 300}
    finally:
        await msc.close()
        await srv.shutdown(1.0)


async def test_shutdown_lets_in_flight_checks_answer() -> None:
    srv = await start(SlowChecker(delay=0.3))
    host, port, _ = srv.addresses()[0]
    msc = await SimulatedMsc.connect(host, port)
    pending = asyncio.create_task(msc.check("35809101685355", version=2))
    await asyncio.sleep(0.05)
    await srv.shutdown(2.0)
    assert (await pending).verdict == "grey"
    await asyncio.wait_for(msc._p.closed.wait(), 2)
    assert not srv.associations


@pytest.mark.skipif(server_mod.sctp_available() is None, reason="this kernel has SCTP")
class GatedChecker:
    """Grey verdicts that wait until the test releases them, one gate per check."""

    def __init__(self) -> None:
        self.seen: list[CheckRequest] = []
        self.gates: list[asyncio.Event] = []

    async def check(self, request: CheckRequest) -> Verdict:
        gate = asyncio.Event()
        self.seen.append(request)
        self.gates.append(gate)
        await gate.wait()
        return Verdict(status=Status.GREY, rule="test")

    async def wait_seen(self, n: int) -> None:
        async def seen() -> None:
            while len(self.seen) < n:
                await asyncio.sleep(0.001)

        await asyncio.wait_for(seen(), 5)


async def test_shutdown_answers_checks_accepted_while_it_waits() -> None:
    """Inbound (the EIR as SG): a Begin that arrives while the shutdown waits for the check in flight
    is answered too before the transport closes — the wait is for no check in flight, not for a
    snapshot of the checks taken when the shutdown started (whose stragglers the close cancelled)."""
    checker = GatedChecker()
    srv = await start(checker)
    host, port, _ = srv.addresses()[0]
    msc = await SimulatedMsc.connect(host, port)
    first = asyncio.create_task(msc.check("35809101685355", version=2))
    await checker.wait_seen(1)
    shutdown = asyncio.create_task(srv.shutdown(5.0))
    try:
        while not srv.stopping:
            await asyncio.sleep(0)
        second = asyncio.create_task(msc.check("35394206000002", version=3))
        await checker.wait_seen(2)
        checker.gates[0].set()
        assert (await first).verdict == "grey"
        assert not shutdown.done() and not msc._p.closed.is_set()
        checker.gates[1].set()
        assert (await second).verdict == "grey"
        await asyncio.wait_for(shutdown, 5)
        await asyncio.wait_for(msc._p.closed.wait(), 2)
        assert not srv.associations
    finally:
        for gate in checker.gates:
            gate.set()
        await asyncio.wait_for(shutdown, 5)


def test_sctp_unavailable_is_explained() -> None:
    reason = server_mod.sctp_available()
    assert reason is not None and "SCTP" in reason


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_sctp_connector_closes_the_socket_when_connect_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each failed outbound SCTP connect used to leak its socket (one fd per retry, forever).

    This kernel has no SCTP, so the SCTP branch of the connector is driven with TCP sockets standing
    in (IPPROTO_SCTP → IPPROTO_TCP) against a loopback port nobody listens on; the loop is stopped
    after the failures are logged, and the process must hold no more fds than before.
    """
    import socket

    with socket.socket() as probe:  # a free port, closed again: connecting to it is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(socket, "IPPROTO_SCTP", socket.IPPROTO_TCP, raising=False)
    monkeypatch.setattr(server_mod, "sctp_available", lambda: None)
    srv = server_mod.M3uaServer(
        Config(m3ua=M3uaConfig(listen=[], transports=["sctp"])), SlowChecker(), NullEvents()
    )
    failures: list[dict[str, object]] = []

    def warning(event: str, **kw: object) -> None:
        failures.append({"event": event, **kw})
        if len(failures) == 3:
            srv.stopping = True

    monkeypatch.setattr(srv.log, "warning", warning)
    monkeypatch.setattr("eir.servers.m3ua.asyncio.sleep", _no_sleep)
    before = _open_fds()
    await asyncio.wait_for(srv._connect_loop(f"127.0.0.1:{port}"), 10)
    assert [f["event"] for f in failures] == ["m3ua_connect_failed"] * 3
    assert _open_fds() == before


_real_sleep = asyncio.sleep


async def _no_sleep(delay: float, result: object = None) -> object:
    """The connector's back-off (1 s, 2 s …) shortened to one loop turn."""
    return await _real_sleep(0, result)


def _metric(interface: str, error: str) -> float:
    labels = {"interface": interface, "error": error}
    return REGISTRY.get_sample_value("eir_protocol_errors_total", labels) or 0.0


async def test_core_exception_is_an_err_a_log_line_and_a_close(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the core (made to raise here) must not end in asyncio's "Fatal error:
    protocol.data_received() call failed": the adapter logs it with the peer and the input, counts
    eir_protocol_errors{error="internal"}, sends ERR Protocol Error and closes."""
    srv = await start(SlowChecker())
    host, port, _ = srv.addresses()[0]
    reader, writer = await asyncio.open_connection(host, port)
    aspup = m3ua.encode_message(m3ua.MessageType.ASPUP)

    def broken(self: object, data: bytes, now: float, stream: int | None = None) -> list[object]:
        raise RuntimeError("core bug")

    monkeypatch.setattr(EirSigtranStack, "receive_data", broken)
    before = _metric("map", "internal")
    try:
        with capture_logs() as logs:
            writer.write(aspup)
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(), 5)  # everything until the server closes
        msg, err = parse_M3UA(reply)
        assert err == 0
        hdr, params = msg.get_val()
        assert (hdr[2], hdr[3]) == (0, 0)  # ERR
        values = {p[0]: p[2] for p in params}
        assert values[m3ua.Tag.ERROR_CODE] == m3ua.ErrorCode.PROTOCOL_ERROR
        assert values[m3ua.Tag.DIAGNOSTIC_INFO] == aspup
        assert _metric("map", "internal") == before + 1
        (line,) = [e for e in logs if e["event"] == "m3ua_internal_error"]
        assert line["log_level"] == "error" and line["exc_info"] is True
        assert line["data"] == aspup.hex() and line["peer"].startswith("127.0.0.1:")
        assert "Fatal error" not in caplog.text
    finally:
        writer.close()
        await srv.shutdown(1.0)
    assert not srv.associations


# --- netio.sctp: the one home of the SCTP socket code ------------------------------------------


def test_sctp_helpers_are_shared() -> None:
    from eir.servers import diameter
    from netio import sctp as _sctp

    assert server_mod.sctp_available is diameter.sctp_available is _sctp.sctp_available
    # struct sctp_sndrcvinfo: stream, ssn, flags, pad, then the PPID in network byte order
    for ppid in (_sctp.SCTP_PPID_M3UA, _sctp.SCTP_PPID_DIAMETER):
        info = _sctp.default_send_param(ppid)
        assert len(info) == 32 and info[8:12] == ppid.to_bytes(4, "big") and info.count(0) == 31


@pytest.mark.skipif(server_mod.sctp_available() is None, reason="this kernel has SCTP")
async def test_sctp_sockets_fail_cleanly_without_kernel_sctp() -> None:
    from netio import sctp as _sctp

    before = _open_fds()
    with pytest.raises(OSError):
        _sctp.sctp_listen_socket("127.0.0.1", 0, _sctp.SCTP_PPID_M3UA)
    with pytest.raises(OSError):
        await _sctp.sctp_connect_socket("127.0.0.1", 9, _sctp.SCTP_PPID_M3UA)
    assert _open_fds() == before


async def test_sctp_sockets_with_tcp_standing_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """The listen/connect helpers' plumbing (bind, listen, non-blocking connect, close on failure),
    driven with TCP in place of SCTP on a kernel that may not have it."""
    import socket

    from netio import sctp as _sctp

    monkeypatch.setattr(socket, "IPPROTO_SCTP", socket.IPPROTO_TCP, raising=False)
    monkeypatch.setattr(_sctp, "set_default_ppid", lambda sock, ppid: None)  # a TCP option otherwise
    before = _open_fds()
    lsock = _sctp.sctp_listen_socket("127.0.0.1", 0, _sctp.SCTP_PPID_DIAMETER, backlog=4)
    port = lsock.getsockname()[1]
    with lsock:
        assert not lsock.getblocking()
        csock = await _sctp.sctp_connect_socket("127.0.0.1", port, _sctp.SCTP_PPID_DIAMETER)
        with csock:
            assert not csock.getblocking() and csock.getpeername()[1] == port
    with pytest.raises(OSError):  # nobody listens any more: refused, and the socket is closed
        await _sctp.sctp_connect_socket("127.0.0.1", port, _sctp.SCTP_PPID_DIAMETER)
    assert _open_fds() == before


def test_sctp_framers_one_message_per_sctp_message_and_its_stream() -> None:
    """What the SCTP transport sends: the sans-IO cores write several messages at once (and a
    pipelined client even more); each becomes its own SCTP message, M3UA DATA off stream 0 (RFC 4666
    §1.4.7), spread by SLS; a message not yet whole waits for the rest."""
    from netio import sctp as _sctp
    from protocols.diameter.codec import encode_raw
    from protocols.sigtran.m3ua import MessageType, ProtocolData, encode_data, encode_message

    aspup, aspac = encode_message(MessageType.ASPUP), encode_message(MessageType.ASPAC)
    data = [encode_data(ProtocolData(opc=1, dpc=2, sls=sls, data=b"x" * 5)) for sls in (0, 5, 6)]
    buf = bytearray(aspup + data[0] + aspac + data[1] + data[2] + aspup[:5])
    out = _sctp.m3ua_framer(buf, 6)  # 6 outbound streams: DATA on 1 + SLS mod 5
    assert out == [(aspup, 0), (data[0], 1), (aspac, 0), (data[1], 1), (data[2], 2)]
    assert bytes(buf) == aspup[:5]
    buf += aspup[5:]
    assert _sctp.m3ua_framer(buf, 6) == [(aspup, 0)] and not buf
    # one outbound stream only: everything on 0 (the association cannot do better)
    assert _sctp.m3ua_framer(bytearray(data[1]), 1) == [(data[1], 0)]

    msgs = [encode_raw(324, 0x80, 16777252, i, i, b"\0\0\0\0" * i) for i in range(3)]
    buf = bytearray(b"".join(msgs))
    assert _sctp.diameter_framer(buf, 10) == [(m, 0) for m in msgs] and not buf
    # not a message (length below the header): sent as it is rather than held forever
    junk = bytearray(b"\x01\x00\x00\x04" + b"\0" * 20)
    assert _sctp.diameter_framer(junk, 10) == [(b"\x01\x00\x00\x04" + b"\0" * 20, 0)]


# --- TcapStats exported as eir_tcap_* / eir_map_* (read at scrape time) ---------------------------------


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class GateChecker:
    """Grey for everything, once ``gate`` is set: the test decides when the verdict comes."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = 0

    async def check(self, request: CheckRequest) -> Verdict:
        self.started += 1
        await self.gate.wait()
        return Verdict(status=Status.GREY, rule="test")


async def _until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Bounded wait for a condition reached by the server's own loop turns (not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def test_vendor_variants_are_counted_by_vendor() -> None:
    srv = await start(SlowChecker(delay=0))
    host, port, _ = srv.addresses()[0]
    huawei, ericsson = (
        _sample("eir_map_vendor_variants_total", vendor="huawei"),
        _sample("eir_map_vendor_variants_total", vendor="ericsson"),
    )
    invokes = _sample("eir_map_check_imei_invokes_total")
    msc = await SimulatedMsc.connect(host, port)
    try:
        r = await msc.check("35809101685355", version=3, imsi="262011234567890", vendor="huawei")
        assert r.verdict == "grey"
        assert _sample("eir_map_vendor_variants_total", vendor="huawei") == huawei + 1
        assert _sample("eir_map_vendor_variants_total", vendor="ericsson") == ericsson
        r = await msc.check("35809101685355", version=3, imsi="262011234567890", vendor="ericsson")
        assert r.verdict == "grey"
        assert _sample("eir_map_vendor_variants_total", vendor="ericsson") == ericsson + 1
        assert (await msc.check("35809101685355", version=2)).verdict == "grey"  # standard: not counted
    finally:
        await msc.close()
        await srv.shutdown(1.0)
    # the association is gone; its counts stay (counters never go back)
    assert not srv.associations
    assert _sample("eir_map_vendor_variants_total", vendor="huawei") == huawei + 1
    assert _sample("eir_map_vendor_variants_total", vendor="ericsson") == ericsson + 1
    assert _sample("eir_map_check_imei_invokes_total") == invokes + 3


async def test_open_dialogues_gauge_follows_pending_checks() -> None:
    checker = GateChecker()
    srv = await start(checker)
    host, port, _ = srv.addresses()[0]
    base = _sample("eir_tcap_open_dialogues")
    results = _sample("eir_tcap_components_sent_total", component="return_result")
    msc = await SimulatedMsc.connect(host, port)
    try:
        pending = asyncio.gather(*(msc.check("35809101685355", version=v) for v in (1, 2, 3)))
        await _until(lambda: checker.started == 3, "three checks to reach the checker")
        assert _sample("eir_tcap_open_dialogues") == base + 3
        checker.gate.set()
        assert [r.verdict for r in await pending] == ["grey"] * 3
        assert _sample("eir_tcap_open_dialogues") == base
        assert _sample("eir_tcap_components_sent_total", component="return_result") == results + 3
    finally:
        await msc.close()
        await srv.shutdown(1.0)


async def test_dialogue_expiry_and_the_late_answer_are_counted() -> None:
    """A verdict slower than the dialogue timeout: the EIR aborts the dialogue (the MSC sees a
    U-Abort), eir_tcap_dialogues_expired moves; the verdict that comes afterwards finds no dialogue
    and is dropped — eir_map_late_answers moves, nothing is sent."""
    checker = GateChecker()
    srv = server_mod.M3uaServer(
        Config(m3ua=M3uaConfig(listen=["127.0.0.1:0"], transports=["tcp"])),
        checker,
        NullEvents(),
        dialogue_timeout=0.05,
    )
    await srv.listen()
    host, port, _ = srv.addresses()[0]
    expired, late = _sample("eir_tcap_dialogues_expired_total"), _sample("eir_map_late_answers_total")
    aborts = _sample("eir_tcap_messages_sent_total", type="abort")
    msc = await SimulatedMsc.connect(host, port)
    try:
        r = await msc.check("35809101685355", version=3, timeout=5.0)
        assert r.verdict == "aborted" and r.detail is not None and "U-Abort" in r.detail
        assert _sample("eir_tcap_dialogues_expired_total") == expired + 1
        assert _sample("eir_tcap_messages_sent_total", type="abort") == aborts + 1
        assert _sample("eir_map_late_answers_total") == late
        (assoc,) = srv.associations
        assert assoc.stack.tcap.active_dialogues == 0
        checker.gate.set()
        await _until(lambda: not assoc.tasks, "the late verdict")
        assert _sample("eir_map_late_answers_total") == late + 1
        assert assoc.stack.data_to_send() == b""
    finally:
        await msc.close()
        await srv.shutdown(1.0)
