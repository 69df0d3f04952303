"""Every M3UA message the EIR and the simulated MSC send, decoded by tshark (Wireshark 4.0).

tshark 4.0 has no decode-as for M3UA over TCP. Two ways round it, both used here:

* the message catalogue (every message type, error paths included) comes from the same sans-IO
  stacks the server and the simulator run (``EirSigtranStack`` / ``CheckImeiClient``), wired back to
  back, written one M3UA message per frame with link type DLT 147 (USER0) and tshark told that USER0
  carries M3UA (``uat:user_dlts``);
* a real ``eir serve`` session is recorded by a loopback TCP proxy, written as Ethernet/IPv4/TCP
  frames, and decoded through ``m3ua_tcp.lua`` (M3UA framing by its length field on a TCP port).

Standard messages must decode with no expert item of severity warning or above; the fields that
matter are asserted (opcode 43, IMEI digits, equipment status, application context, SSNs, M3UA
error codes, SCCP return cause).
"""

from __future__ import annotations

import asyncio
import struct
import subprocess
from pathlib import Path

import pytest

from protocols.sigtran import EquipmentStatus, MapError, m3ua, sccp, tcap
from protocols.sigtran.stack import CheckImeiClient, CheckImeiRequested, EirSigtranStack

pytestmark = [
    pytest.mark.interop,
    pytest.mark.peer("tshark", "Wireshark's dissectors check our M3UA/SCCP/TCAP/MAP independently"),
]

USER_DLT = 'uat:user_dlts:"User 0 (DLT=147)","m3ua","0","","0",""'
FIELDS = [
    "frame.number",
    "_ws.expert.severity",
    "_ws.expert.message",
    "m3ua.message_class",
    "m3ua.message_type",
    "m3ua.error_code",
    "m3ua.traffic_mode_type",
    "m3ua.routing_context",
    "m3ua.status_info",
    "sccp.message_type",
    "sccp.called.ssn",
    "sccp.calling.ssn",
    "sccp.calling.digits",
    "sccp.return_cause",
    "gsm_old.localValue",
    "gsm_map.tbcd_digits",
    "gsm_map.ms.equipmentStatus",
    "tcap.application_context_name",
    "gsm_old.errorCode",
    "tcap.dtid",
    "gsm_old.invokeProblem",
    "tcap.generalProblem",
]
WARNING = 0x600000
IMEI = "35809101685355"


def split(data: bytes) -> list[bytes]:
    out = []
    while data:
        n = int.from_bytes(data[4:8], "big")
        out.append(data[:n])
        data = data[n:]
    return out


class Recorder:
    """Wires an MSC client and an EIR stack back to back and keeps every message with a label."""

    def __init__(
        self,
        *,
        map_versions: tuple[int, ...] = (1, 2, 3),
        called_ssn: int = 9,
        extended: bool = False,
        role_ssn: int = 8,
        beat: float = 0.0,
    ) -> None:
        self.eir = EirSigtranStack(
            m3ua_settings=m3ua.M3uaSettings(role=m3ua.Role.SG, beat_interval=beat),
            point_code=2,
            ssn=9,
            global_title="491700000009",
            map_versions=map_versions,
            dialogue_timeout=5.0,
        )
        self.msc = CheckImeiClient(
            m3ua_settings=m3ua.M3uaSettings(
                role=m3ua.Role.ASP, routing_context=5, asp_id=1, info_string="simulated msc"
            ),
            opc=1,
            dpc=2,
            calling=sccp.make_address(ssn=role_ssn, gt="491700000008"),
            called=sccp.make_address(ssn=called_ssn, gt="491700000009"),
            extended=extended,
        )
        self.frames: list[tuple[str, bytes]] = []
        self.requests: list[CheckImeiRequested] = []

    def to_eir(self, label: str, now: float = 0.0) -> None:
        data = self.msc.data_to_send()
        for i, m in enumerate(split(data)):
            self.frames.append((f"{label}#{i}" if i else label, m))
        if data:
            events = self.eir.receive_data(data, now)
            self.requests += [e for e in events if isinstance(e, CheckImeiRequested)]

    def to_msc(self, label: str, now: float = 0.0) -> None:
        data = self.eir.data_to_send()
        for i, m in enumerate(split(data)):
            self.frames.append((f"{label}#{i}" if i else label, m))
        if data:
            self.msc.receive_data(data, now)

    def bring_up(self) -> None:
        self.msc.start(0.0)
        self.to_eir("ASPUP")
        self.to_msc("ASPUP_ACK+NTFY")
        self.to_eir("ASPAC")
        self.to_msc("ASPAC_ACK+NTFY")


def run_tshark(tmp_path: Path, frames: list[tuple[str, bytes]]) -> list[dict[str, str]]:
    path = tmp_path / "m3ua.pcap"
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147))
        for i, (_, m) in enumerate(frames):
            f.write(struct.pack("<IIII", 1_700_000_000 + i, 0, len(m), len(m)) + m)
    cmd = [
        "tshark",
        "-n",
        "-r",
        str(path),
        "-o",
        USER_DLT,
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        "-E",
        "separator=\t",
    ]
    for fld in FIELDS:
        cmd += ["-e", fld]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    rows = [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in res.stdout.splitlines()]
    assert len(rows) == len(frames)
    return rows


def num(row: dict[str, str], field: str) -> int:
    """A single numeric field (tshark prints some in hex, e.g. ``0x09``)."""
    values = [v for v in row[field].split("|") if v]
    assert len(values) == 1, f"{field}: {row[field]!r}"
    return int(values[0], 0)


def no_warnings(rows: list[dict[str, str]], frames: list[tuple[str, bytes]]) -> None:
    for (label, _), row in zip(frames, rows, strict=True):
        sev = [int(s) for s in row["_ws.expert.severity"].split("|") if s]
        assert all(s < WARNING for s in sev), f"{label}: {row['_ws.expert.message']}"


def test_asp_management_and_checks(tmp_path: Path) -> None:
    r = Recorder(beat=10.0)
    r.bring_up()
    statuses = {
        1: EquipmentStatus.WHITE_LISTED,
        2: EquipmentStatus.GREY_LISTED,
        3: EquipmentStatus.BLACK_LISTED,
    }
    for version, status in statuses.items():
        r.msc.send_check_imei(0.0, imei=IMEI, version=version)
        r.to_eir(f"Begin v{version}")
        r.eir.answer(r.requests.pop(), status)
        r.to_msc(f"End v{version}")
    r.msc.send_check_imei(0.0, imei=IMEI, version=2)
    r.to_eir("Begin unknown")
    r.eir.answer_error(r.requests.pop(), MapError.UNKNOWN_EQUIPMENT)
    r.to_msc("End ReturnError")
    r.eir.handle_timer(10.0)
    r.to_msc("BEAT")
    r.to_eir("BEAT_ACK")
    r.msc.m3ua.send_raw(
        m3ua.encode_message(m3ua.MessageType.DAUD, [(m3ua.Tag.AFFECTED_POINT_CODE, struct.pack("!I", 2))])
    )
    r.to_eir("DAUD")
    r.to_msc("DAVA")
    r.msc.stop(1.0)
    r.to_eir("ASPDN")
    r.to_msc("ASPDN_ACK")
    rows = run_tshark(tmp_path, r.frames)
    no_warnings(rows, r.frames)
    by = {label: row for (label, _), row in zip(r.frames, rows, strict=True)}
    assert num(by["ASPUP"], "m3ua.message_type") == 1 and num(by["ASPUP"], "m3ua.message_class") == 3
    assert num(by["ASPUP_ACK+NTFY"], "m3ua.message_type") == 4
    assert num(by["ASPUP_ACK+NTFY#1"], "m3ua.status_info") == 2  # AS-INACTIVE
    assert num(by["ASPAC"], "m3ua.traffic_mode_type") == 2 and num(by["ASPAC"], "m3ua.routing_context") == 5
    assert num(by["ASPAC_ACK+NTFY"], "m3ua.routing_context") == 5
    assert num(by["ASPAC_ACK+NTFY#1"], "m3ua.status_info") == 3  # AS-ACTIVE
    for version, status in statuses.items():
        begin, end = by[f"Begin v{version}"], by[f"End v{version}"]
        assert num(begin, "gsm_old.localValue") == num(end, "gsm_old.localValue") == 43
        assert begin["gsm_map.tbcd_digits"] == IMEI + "0"
        assert num(begin, "sccp.called.ssn") == 9 and num(end, "sccp.called.ssn") == 8
        assert num(end, "sccp.calling.ssn") == 9 and end["sccp.calling.digits"] == "491700000009"
        assert num(end, "gsm_map.ms.equipmentStatus") == int(status)
        acn = f"0.4.0.0.1.0.13.{version}" if version > 1 else ""
        assert begin["tcap.application_context_name"] == end["tcap.application_context_name"] == acn
        assert num(begin, "sccp.message_type") == num(end, "sccp.message_type") == 9  # UDT
    assert by["End ReturnError"]["gsm_old.errorCode"] or by["End ReturnError"]["gsm_old.localValue"]
    assert "7" in by["End ReturnError"]["gsm_old.localValue"].split("|")
    assert num(by["BEAT"], "m3ua.message_type") == 3 and num(by["BEAT_ACK"], "m3ua.message_type") == 6
    assert num(by["DAVA"], "m3ua.message_class") == 2 and num(by["DAVA"], "m3ua.message_type") == 2
    assert num(by["ASPDN_ACK"], "m3ua.message_type") == 5


def test_xudt_sgsn_ac_negotiation_udts_reject_abort_and_errs(tmp_path: Path) -> None:
    frames: list[tuple[str, bytes]] = []
    # XUDT from an SGSN (SSN 149), answered by XUDT
    r = Recorder(extended=True, role_ssn=149)
    r.bring_up()
    r.msc.send_check_imei(0.0, imei=IMEI, version=3)
    r.to_eir("XUDT Begin")
    r.eir.answer(r.requests.pop(), EquipmentStatus.WHITE_LISTED)
    r.to_msc("XUDT End")
    # a Begin with an operation the EIR does not know → Reject in an End
    begin = tcap.encode_tcap(
        tcap.TcapMessage(
            type=tcap.MessageType.BEGIN,
            otid=b"\x00\x00\x00\x63",
            dialogue=tcap.Aarq(acn=(0, 4, 0, 0, 1, 0, 13, 2)),
            components=(
                tcap.Invoke(invoke_id=1, opcode=44, parameter=bytes.fromhex("040853081910863555f0")),
            ),
        )
    )
    r.msc.send_tcap(begin)
    r.to_eir("Begin opcode 44")
    r.to_msc("Reject")
    # an unanswered dialogue is aborted on the timer
    r.msc.send_check_imei(0.0, imei=IMEI, version=3)
    r.to_eir("Begin never answered")
    r.eir.handle_timer(6.0)
    r.to_msc("U-Abort (timeout)")
    frames += r.frames
    # AC negotiation: the EIR accepts v1/v2 only
    r = Recorder(map_versions=(1, 2))
    r.bring_up()
    r.msc.send_check_imei(0.0, imei=IMEI, version=3)
    r.to_eir("Begin v3 to v2 EIR")
    r.to_msc("AC negotiation Abort")
    # a subsystem the EIR does not serve → UDTS
    r2 = Recorder(called_ssn=6)
    r2.bring_up()
    r2.msc.send_check_imei(0.0, imei=IMEI, version=2)
    r2.to_eir("UDT to SSN 6")
    r2.to_msc("UDTS")
    frames += r.frames[4:] + r2.frames[4:]
    # M3UA ERRs: DATA before ASP-ACTIVE, and an ASPAC for a routing context that is not configured
    sg = m3ua.M3uaConnection(m3ua.M3uaSettings(role=m3ua.Role.SG, routing_context=5))
    sg.receive_data(m3ua.encode_data(m3ua.ProtocolData(opc=1, dpc=2, data=b"\x09")), 0.0)
    frames.append(("ERR unexpected", sg.data_to_send()))
    sg.receive_data(m3ua.encode_message(m3ua.MessageType.ASPUP), 0.0)
    sg.data_to_send()
    sg.receive_data(
        m3ua.encode_message(m3ua.MessageType.ASPAC, [(m3ua.Tag.ROUTING_CONTEXT, struct.pack("!I", 9))]), 0.0
    )
    frames.append(("ERR routing context", sg.data_to_send()))
    rows = run_tshark(tmp_path, frames)
    by = {label: row for (label, _), row in zip(frames, rows, strict=True)}
    # "Begin opcode 44" is ours, deliberately wrong for MAP; everything the EIR sends must be clean
    no_warnings(
        [row for (lb, _), row in zip(frames, rows, strict=True) if lb != "Begin opcode 44"],
        [f for f in frames if f[0] != "Begin opcode 44"],
    )
    assert num(by["XUDT Begin"], "sccp.message_type") == num(by["XUDT End"], "sccp.message_type") == 0x11
    assert num(by["XUDT Begin"], "sccp.calling.ssn") == 149 and num(by["XUDT End"], "sccp.called.ssn") == 149
    assert num(by["XUDT End"], "gsm_map.ms.equipmentStatus") == 0
    assert by["XUDT End"]["tcap.application_context_name"] == "0.4.0.0.1.0.13.3"
    assert num(by["Reject"], "gsm_old.invokeProblem") == 1  # unrecognizedOperation
    assert by["U-Abort (timeout)"]["tcap.dtid"]
    assert by["AC negotiation Abort"]["tcap.application_context_name"] == "0.4.0.0.1.0.13.2"
    assert num(by["UDTS"], "sccp.message_type") == 10 and num(by["UDTS"], "sccp.return_cause") == 4
    assert num(by["UDTS"], "sccp.called.ssn") == 8
    assert num(by["ERR unexpected"], "m3ua.error_code") == 6
    assert num(by["ERR routing context"], "m3ua.error_code") == 25


# --- a real ``eir serve`` session over TCP, decoded with the Lua framing dissector --------------------

LUA = Path(__file__).with_name("m3ua_tcp.lua")


class Tap:
    """A loopback TCP proxy in front of the EIR that records every chunk in both directions, as a
    capture on the wire would see the segments."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.chunks: list[tuple[int, int, bytes]] = []  # (connection no, direction 0=to EIR, data)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        conn = len({c for c, _, _ in self.chunks}) + len(self.tasks)
        er, ew = await asyncio.open_connection(*self.target)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, direction: int) -> None:
            while data := await r.read(65536):
                self.chunks.append((conn, direction, data))
                w.write(data)
                await w.drain()
            w.close()

        await asyncio.gather(pipe(cr, ew, 0), pipe(er, cw, 1), return_exceptions=True)

    def write_pcap(self, path: Path, eir_port: int) -> None:
        """Ethernet/IPv4/TCP frames, one per recorded chunk (split at 60000 octets), with consistent
        sequence numbers per direction so that TCP reassembly works."""
        seq: dict[tuple[int, int], int] = {}
        with path.open("wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
            n = 0
            for conn, direction, data in self.chunks:
                for i in range(0, len(data), 60000):
                    part = data[i : i + 60000]
                    key = (conn, direction)
                    s = seq.setdefault(key, 1000)
                    seq[key] = s + len(part)
                    client_port = 40000 + conn
                    sport, dport = (client_port, eir_port) if direction == 0 else (eir_port, client_port)
                    ack = seq.get((conn, 1 - direction), 1000)
                    tcp = struct.pack("!HHIIBBHHH", sport, dport, s, ack, 5 << 4, 0x18, 65535, 0, 0)
                    ip = struct.pack(
                        "!BBHHHBBH4s4s",
                        0x45,
                        0,
                        20 + len(tcp) + len(part),
                        n & 0xFFFF,
                        0,
                        64,
                        6,
                        0,
                        bytes((127, 0, 0, 1)),
                        bytes((127, 0, 0, 2 if direction else 1)),
                    )
                    frame = b"\x00" * 12 + b"\x08\x00" + ip + tcp + part
                    f.write(struct.pack("<IIII", 1_700_000_000, n, len(frame), len(frame)) + frame)
                    n += 1


async def test_real_server_session_over_tcp(eir_factory, tmp_path: Path) -> None:
    from simulations.msc import SimulatedMsc

    lists = tmp_path / "lists.csv"
    lists.write_text(f"imei,status\n{IMEI},grey\n")
    eir = eir_factory({"lists": {"import_on_start": [str(lists)]}, "m3ua": {"map_versions": [1, 2]}})
    tap = Tap(eir.m3ua)
    await tap.start()
    msc = await SimulatedMsc.connect("127.0.0.1", tap.port)
    try:
        verdicts = [await msc.check(IMEI, version=v) for v in (1, 2, 3)]  # v3 falls back to v2
        summary = await msc.load(IMEI, count=200, window=32, version=2)
    finally:
        await msc.close()
    assert [r.verdict for r in verdicts] == ["grey"] * 3 and verdicts[2].fallback_from == 3
    assert summary.verdicts == {"grey": 200}
    tap.server.close()
    pcap = tmp_path / "session.pcap"
    tap.write_pcap(pcap, 2905)
    fields = [
        "_ws.expert.severity",
        "_ws.expert.message",
        "m3ua.message_class",
        "m3ua.message_type",
        "gsm_old.localValue",
        "gsm_map.tbcd_digits",
        "gsm_map.ms.equipmentStatus",
        "tcap.application_context_name",
        "sccp.called.ssn",
    ]
    cmd = [
        "tshark",
        "-n",
        "-r",
        str(pcap),
        "-X",
        f"lua_script:{LUA}",
        "-X",
        "lua_script1:2905",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        "-E",
        "separator=\t",
    ]
    for fld in fields:
        cmd += ["-e", fld]
    res = await asyncio.to_thread(
        subprocess.run, cmd, capture_output=True, text=True, timeout=120, check=True
    )
    cols: dict[str, list[str]] = {f: [] for f in fields}
    for line in res.stdout.splitlines():
        for f, v in zip(fields, line.split("\t"), strict=True):
            cols[f] += [x for x in v.split("|") if x]
    assert all(int(s) < WARNING for s in cols["_ws.expert.severity"]), cols["_ws.expert.message"]
    types = list(zip(cols["m3ua.message_class"], cols["m3ua.message_type"], strict=True))
    for expected in [("3", "1"), ("3", "4"), ("0", "1"), ("4", "1"), ("4", "3"), ("3", "2"), ("3", "5")]:
        assert expected in types  # ASPUP, ASPUP_ACK, NTFY, ASPAC, ASPAC_ACK, ASPDN, ASPDN_ACK
    data_messages = types.count(("1", "1"))
    # 3 + 1 (the refused v3 Begin) requests and as many answers, then 200 + 200
    assert data_messages == 2 * (4 + 200)
    assert cols["gsm_old.localValue"].count("43") == (4 + 200) + (3 + 200)  # Begins + Ends (not the Abort)
    assert cols["gsm_map.tbcd_digits"].count(IMEI + "0") == 4 + 200
    assert cols["gsm_map.ms.equipmentStatus"].count("2") == 3 + 200
    assert "0.4.0.0.1.0.13.3" in cols["tcap.application_context_name"]
    assert {int(x, 0) for x in cols["sccp.called.ssn"]} == {8, 9}
