"""MAP checkIMEI with the EIR as an ASP connecting out to an STP (``m3ua.connect``), end to end.

A small simulated STP lives in the test: it accepts the EIR's association in the SG role
(:class:`protocols.sigtran.m3ua.M3uaConnection`), forwards checkIMEI Begins built with the MSC's own
encoder (:func:`~protocols.sigtran.map_client.encode_check_imei_begin`) in SCCP UDTs and reads the
EIR's Ends back. Everything the EIR sends is also decoded by pycrate (``parse_M3UA``,
``parse_SCCP``, ``TCAP_MAPv2v3``), the independent decoder, so a bug cannot hide by being
symmetric with our own codecs. The EIR is a real ``eir serve`` subprocess, except in the graceful
shutdown test: a check that waits for its store is not possible through ``eir serve`` (SQLite
answers without suspending), so that one runs :class:`eir.servers.m3ua.M3uaServer` in-process with
a checker that answers only when the test lets it.

RFC 4666 §4.3.4 (ASPUP, ASPAC, ASPDN), Q.714 §4.1 (the answer's addresses are the request's,
swapped), TS 29.002 §8.7.1 / §17.6.1 (checkIMEI).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any

import pytest
from pycrate_asn1dir import TCAP_MAPv2v3
from pycrate_mobile.M3UA import parse_M3UA
from pycrate_mobile.SCCP import parse_SCCP

from eir.config import Config, M3uaConfig
from eir.events import NullEvents
from eir.model import CheckRequest, Status, Verdict
from eir.servers import m3ua as m3ua_server
from protocols.sigtran import (
    CheckImeiOutcome,
    EquipmentStatus,
    decode_check_imei_reply,
    encode_check_imei_begin,
    m3ua,
    sccp,
)

pytestmark = pytest.mark.system

BLACK, WHITE = "35394206000002", "35809101685355"
LISTS = f"imei,status\n{BLACK},black\n"
RC = 5
STP_PC, EIR_PC = 1, 2
"""The MSC's point code as the STP presents it (OPC of the Begins), and the EIR's (config default)."""
MSC_GT, EIR_GT = "491700000008", "491700000009"
WAIT = 10.0
"""Bound on every wait for the EIR; nothing waits that long when the EIR works."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One DATA the EIR sent back, decoded by our codecs and by pycrate."""

    pd: m3ua.ProtocolData
    routing_context: int | None
    unitdata: sccp.Unitdata
    outcome: CheckImeiOutcome
    pycrate_sccp: object
    pycrate_tcap: tuple[str, dict[str, object]]


class StpAssociation(asyncio.Protocol):
    """The STP's end of one association with the EIR: an SGP accepting the EIR as an ASP.

    Every complete M3UA message the EIR sends is kept raw (``received``) for the test to decode with
    pycrate; the SG-role core answers ASPUP/ASPAC/ASPDN and hands over DATA.
    """

    def __init__(self, accepted: asyncio.Queue[StpAssociation]) -> None:
        self.core = m3ua.M3uaConnection(
            m3ua.M3uaSettings(role=m3ua.Role.SG, routing_context=RC, info_string="simulated STP")
        )
        self.loop = asyncio.get_running_loop()
        self.accepted = accepted
        self.transport: asyncio.Transport | None = None
        self.received: list[bytes] = []
        self.states: list[m3ua.AspState] = []
        self.errors: list[m3ua.ErrorSent | m3ua.ErrorReceived] = []
        self.data: asyncio.Queue[m3ua.DataReceived] = asyncio.Queue()
        self.active = asyncio.Event()
        self.closed = asyncio.Event()
        self._frame = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.accepted.put_nowait(self)

    def data_received(self, data: bytes) -> None:
        self._frame += data
        while len(self._frame) >= 8:
            length = int.from_bytes(self._frame[4:8], "big")
            if length < 8 or len(self._frame) < length:
                break
            self.received.append(bytes(self._frame[:length]))
            del self._frame[:length]
        for ev in self.core.receive_data(data, self.loop.time()):
            if isinstance(ev, m3ua.AspStateChanged):
                self.states.append(ev.new)
                if ev.new is m3ua.AspState.ACTIVE:
                    self.active.set()
            elif isinstance(ev, m3ua.DataReceived):
                self.data.put_nowait(ev)
            elif isinstance(ev, m3ua.ErrorSent | m3ua.ErrorReceived):
                self.errors.append(ev)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    def flush(self) -> None:
        out = self.core.data_to_send()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)

    def received_types(self) -> list[str]:
        """The names pycrate gives the EIR's M3UA messages (it decodes every one without error)."""
        names = []
        for raw in self.received:
            msg, err = parse_M3UA(raw)
            assert err == 0, raw.hex()
            names.append(msg._name)
        return names

    def send_begin(
        self, *, otid: int, version: int, imei: str, called: sccp.SccpAddress, calling: sccp.SccpAddress
    ) -> bytes:
        """Forward an MSC's checkIMEI Begin to the EIR in a UDT (class 1, return on error)."""
        tcap = encode_check_imei_begin(otid=otid, version=version, invoke_id=1, imei=imei)
        udt = sccp.encode_unitdata(
            called=called.encode(),
            calling=calling.encode(),
            data=tcap,
            protocol_class=1,
            return_on_error=True,
        )
        self.core.send_data(m3ua.ProtocolData(opc=STP_PC, dpc=EIR_PC, si=3, ni=2, sls=otid & 0x0F, data=udt))
        self.flush()
        return udt

    async def reply(self) -> Reply:
        ev = await asyncio.wait_for(self.data.get(), WAIT)
        wire = next(raw for raw in reversed(self.received) if raw[2:4] == b"\x01\x01")  # its DATA
        msg, err = parse_M3UA(wire)
        assert err == 0
        params = {p[0]: p[2] for p in msg.get_val()[1]}
        assert params[m3ua.Tag.ROUTING_CONTEXT] == [RC]
        pd = params[m3ua.Tag.PROTOCOL_DATA]
        assert pd[:5] == [ev.data.opc, ev.data.dpc, ev.data.si, ev.data.ni, ev.data.mp]
        s, err = parse_SCCP(pd[6])
        assert err == 0
        tcap = TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message
        tcap.from_ber(s["Data"][1].get_val())
        unitdata = sccp.decode_message(ev.data.data)
        return Reply(
            pd=ev.data,
            routing_context=ev.routing_context,
            unitdata=unitdata,
            outcome=decode_check_imei_reply(unitdata.data),
            pycrate_sccp=s,
            pycrate_tcap=tcap.get_val(),
        )


class SimulatedStp:
    """Listens on a free loopback port; each association the EIR opens lands in ``accepted``."""

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[StpAssociation] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: StpAssociation(self.accepted), "127.0.0.1", port)
        return int(self.server.sockets[0].getsockname()[1])

    async def association(self) -> StpAssociation:
        assoc = await asyncio.wait_for(self.accepted.get(), WAIT)
        await asyncio.wait_for(assoc.active.wait(), WAIT)
        return assoc

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


MSC = sccp.make_address(ssn=8, gt=MSC_GT)
EIR_BY_GT = sccp.make_address(ssn=9, gt=EIR_GT)
"""Called address as an MSC sends it (route on GT)."""
EIR_BY_SSN = sccp.make_address(ssn=9, point_code=EIR_PC, gt=EIR_GT, route_on_ssn=True)
"""Called address as an STP forwards it after global title translation (route on DPC + SSN)."""


async def check(
    assoc: StpAssociation, *, otid: int, version: int, imei: str, called: sccp.SccpAddress
) -> Reply:
    assoc.send_begin(otid=otid, version=version, imei=imei, called=called, calling=MSC)
    r = await assoc.reply()
    # M3UA: the routing label back the way it came, in the routing context of the association.
    assert (r.pd.opc, r.pd.dpc, r.pd.si, r.pd.ni) == (EIR_PC, STP_PC, 3, 2)
    assert r.routing_context == RC
    # SCCP: a UDT of the request's class, the called/calling addresses swapped (Q.714 §4.1).
    u = r.unitdata
    assert u.type is sccp.MessageType.UDT and u.protocol_class == 1
    assert u.raw_called == MSC.encode()
    assert (u.calling.ssn, u.calling.gt.digits if u.calling.gt else None) == (9, EIR_GT)
    assert u.calling.route_on_ssn is called.route_on_ssn
    assert u.calling.point_code == called.point_code
    s = r.pycrate_sccp
    assert s["Type"].get_val() == 9  # type: ignore[index]
    assert s["CalledPartyAddr"][1]["SSN"].get_val() == 8  # type: ignore[index]
    assert s["CalledPartyAddr"].get_gt().get_addr() == MSC_GT  # type: ignore[index]
    assert s["CallingPartyAddr"][1]["SSN"].get_val() == 9  # type: ignore[index]
    assert s["CallingPartyAddr"].get_gt().get_addr() == EIR_GT  # type: ignore[index]
    # TCAP/MAP: an End for our dialogue, confirming the AC version, with the verdict.
    assert r.outcome.raw_kind == "end" and r.outcome.dtid == otid and r.outcome.version == version
    kind, body = r.pycrate_tcap
    assert kind == "end" and body["dtid"] == otid.to_bytes(4, "big")
    acn = body["dialoguePortion"]["encoding"][1][1][1]["application-context-name"]  # type: ignore[index]
    assert acn == (0, 4, 0, 0, 1, 0, 13, version)
    comp = body["components"][0][1]  # type: ignore[index]
    assert comp[0] == "returnResult" and comp[1]["result"]["opcode"] == ("local", 43)
    return r


def pycrate_status(r: Reply) -> str:
    """equipmentStatus as pycrate reads it: v2 sends the bare ENUMERATED, v3 a CheckIMEI-Res SEQUENCE."""
    result = r.pycrate_tcap[1]["components"][0][1][1]["result"]["result"][1]  # type: ignore[index]
    return str(result["equipmentStatus"] if isinstance(result, dict) else result)


async def test_eir_connects_out_to_an_stp_answers_reconnects_and_goes_down(eir_factory: Any) -> None:
    stp = SimulatedStp()
    port = await stp.start()
    try:
        config = {
            "m3ua": {"listen": [], "connect": [f"127.0.0.1:{port}"], "routing_context": RC, "asp_id": 42}
        }
        # In a thread: the simulated STP on this loop must answer the EIR's ASPUP while it starts.
        eir = await asyncio.to_thread(eir_factory, config, lists=LISTS)
        first = await stp.association()

        # ASPUP (with the configured ASP Identifier), then ASPAC naming the routing context
        # (Loadshare), both acknowledged by the STP.
        assert first.received_types()[:2] == ["M3UA_ASPUp", "M3UA_ASPAct"]
        assert first.core.asp_id == 42
        aspac = parse_M3UA(first.received[1])[0].get_val()[1]
        assert {p[0]: p[2] for p in aspac}[m3ua.Tag.ROUTING_CONTEXT] == [RC]
        assert {p[0]: p[2] for p in aspac}[m3ua.Tag.TRAFFIC_MODE_TYPE] == m3ua.TrafficMode.LOADSHARE
        assert first.states == [m3ua.AspState.INACTIVE, m3ua.AspState.ACTIVE]
        assert first.core.peer_routing_context == (RC,)

        # checkIMEI v2 and v3, for a listed (black) and an unlisted (white by policy) IMEI.
        r = await check(first, otid=0x1001, version=2, imei=BLACK, called=EIR_BY_GT)
        assert r.outcome.status is EquipmentStatus.BLACK_LISTED and pycrate_status(r) == "blackListed"
        r = await check(first, otid=0x1002, version=3, imei=WHITE, called=EIR_BY_SSN)
        assert r.outcome.status is EquipmentStatus.WHITE_LISTED and pycrate_status(r) == "whiteListed"
        r = await check(first, otid=0x1003, version=3, imei=BLACK, called=EIR_BY_GT)
        assert r.outcome.status is EquipmentStatus.BLACK_LISTED and pycrate_status(r) == "blackListed"

        # The STP drops the association: the EIR comes back by itself and answers again.
        assert first.transport is not None
        first.transport.close()
        await asyncio.wait_for(first.closed.wait(), WAIT)
        second = await stp.association()
        assert second.received_types()[:2] == ["M3UA_ASPUp", "M3UA_ASPAct"]
        r = await check(second, otid=0x2001, version=2, imei=WHITE, called=EIR_BY_SSN)
        assert r.outcome.status is EquipmentStatus.WHITE_LISTED and pycrate_status(r) == "whiteListed"
        r = await check(second, otid=0x2002, version=3, imei=BLACK, called=EIR_BY_GT)
        assert r.outcome.status is EquipmentStatus.BLACK_LISTED and pycrate_status(r) == "blackListed"

        # Shutdown: ASPDN (acknowledged by the STP), then the EIR closes the association.
        assert await asyncio.to_thread(eir.stop) == 0
        await asyncio.wait_for(second.closed.wait(), WAIT)
        assert second.received_types()[-1] == "M3UA_ASPDown"
        assert second.states == [m3ua.AspState.INACTIVE, m3ua.AspState.ACTIVE, m3ua.AspState.DOWN]
        assert not first.errors and not second.errors
        assert stp.accepted.empty()  # no third association
    finally:
        stp.close()

    # The log tells the story: connected as an ASP, each ASP state change, the reconnect.
    events = eir.log_events()
    peer = f"127.0.0.1:{port}"
    connected = [e for e in events if e.get("event") == "m3ua_connected"]
    assert [(e["peer"], e["role"], e["interface"]) for e in connected] == [(peer, "asp", "map")] * 2
    states = [(e["old"], e["new"]) for e in events if e.get("event") == "m3ua_asp_state"]
    cycle = [("DOWN", "INACTIVE"), ("INACTIVE", "ACTIVE"), ("ACTIVE", "DOWN")]
    assert states == cycle * 2
    active = [e for e in events if e.get("event") == "m3ua_asp_state" and e["new"] == "ACTIVE"]
    assert all(e["routing_context"] == [RC] and e["peer"] == peer for e in active)
    assert len([e for e in events if e.get("event") == "m3ua_disconnected"]) == 2
    reconnecting = [e for e in events if e.get("event") == "m3ua_reconnecting"]
    assert [(e["address"], e["retry_in"], e["was_active"]) for e in reconnecting] == [(peer, 1.0, True)]
    assert not [
        e
        for e in events
        if e.get("event") in ("m3ua_error_sent", "m3ua_error_received", "m3ua_internal_error", "tcap_error")
    ]
    checks = [e for e in events if e.get("event") == "check" and e.get("interface") == "map"]
    assert [e.get("origin") for e in checks] == [MSC_GT] * 5


async def test_eir_started_before_the_stp_connects_when_it_comes_up(eir_factory: Any) -> None:
    """Labs start the EIR first: the refused connect is logged and retried, and the association comes
    up once the STP listens, without restarting the EIR."""
    with socket.socket() as probe:  # a free port, closed again: nothing listens there yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {"m3ua": {"listen": [], "connect": [f"127.0.0.1:{port}"], "routing_context": RC}}
    eir = await asyncio.to_thread(eir_factory, config, lists=LISTS)
    failed = await asyncio.to_thread(eir.wait_for_log, "m3ua_connect_failed", WAIT)
    assert failed["address"] == f"127.0.0.1:{port}" and failed["retry_in"] == 1.0
    stp = SimulatedStp()
    await stp.start(port)
    try:
        assoc = await stp.association()
        r = await check(assoc, otid=7, version=3, imei=BLACK, called=EIR_BY_GT)
        assert r.outcome.status is EquipmentStatus.BLACK_LISTED and pycrate_status(r) == "blackListed"
        assert await asyncio.to_thread(eir.stop) == 0
        await asyncio.wait_for(assoc.closed.wait(), WAIT)
        assert assoc.received_types()[-1] == "M3UA_ASPDown"
    finally:
        stp.close()


class GatedChecker:
    """A Checker whose verdicts (grey) wait until the test releases them, one gate per check: a
    PostgreSQL/Redis store that suspends, held for as long as the test needs."""

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

        await asyncio.wait_for(seen(), WAIT)


async def test_outbound_shutdown_answers_every_check_in_flight_before_aspdn() -> None:
    """Shutdown of an outbound association while checks wait for the store: each one — the check
    pending when the shutdown starts and a Begin the STP still routes to the EIR meanwhile (the
    association is ASP-ACTIVE) — gets its End before the ASPDN, and only then the EIR closes.
    Before, the second one was cancelled by the close and never answered."""
    stp = SimulatedStp()
    port = await stp.start()
    checker = GatedChecker()
    cfg = Config(
        m3ua=M3uaConfig(listen=[], connect=[f"127.0.0.1:{port}"], transports=["tcp"], routing_context=RC)
    )
    srv = await m3ua_server.start(cfg, checker, NullEvents())
    shutdown: asyncio.Task[None] | None = None
    try:
        assoc = await stp.association()
        assoc.send_begin(otid=0x3001, version=3, imei=WHITE, called=EIR_BY_GT, calling=MSC)
        await checker.wait_seen(1)

        shutdown = asyncio.create_task(srv.shutdown(WAIT))
        while not srv.stopping:
            await asyncio.sleep(0)
        assoc.send_begin(otid=0x3002, version=2, imei=BLACK, called=EIR_BY_SSN, calling=MSC)
        await checker.wait_seen(2)  # accepted while the EIR is shutting down

        checker.gates[0].set()
        first = await assoc.reply()
        assert first.outcome.raw_kind == "end" and first.outcome.dtid == 0x3001
        assert first.outcome.status is EquipmentStatus.GREY_LISTED and pycrate_status(first) == "greyListed"
        assert "M3UA_ASPDown" not in assoc.received_types()  # the second check is still owed its End
        assert not shutdown.done()

        checker.gates[1].set()
        second = await assoc.reply()
        assert second.outcome.raw_kind == "end" and second.outcome.dtid == 0x3002
        assert second.outcome.status is EquipmentStatus.GREY_LISTED and pycrate_status(second) == "greyListed"

        await asyncio.wait_for(shutdown, WAIT)
        await asyncio.wait_for(assoc.closed.wait(), WAIT)
        assert assoc.received_types() == [
            "M3UA_ASPUp",
            "M3UA_ASPAct",
            "M3UA_DATA",
            "M3UA_DATA",
            "M3UA_ASPDown",
        ]
        assert assoc.states == [m3ua.AspState.INACTIVE, m3ua.AspState.ACTIVE, m3ua.AspState.DOWN]
        assert not assoc.errors
        assert not srv.associations
    finally:
        for gate in checker.gates:
            gate.set()
        if shutdown is None:
            await srv.shutdown(0.5)
        elif not shutdown.done():
            await asyncio.wait_for(shutdown, WAIT)
        stp.close()
