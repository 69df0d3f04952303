"""tshark decodes a whole S13 session with the real server (CER/CEA, DWR/DWA, ECR/ECA for every
verdict, two error answers, DPR/DPA) without a single malformed packet or expert warning."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from eir.servers.diameter import start

from .s13_session import Events, TableChecker, run_session, s13_config, write_pcap

pytestmark = [
    pytest.mark.interop,
    pytest.mark.peer("tshark", "Wireshark's Diameter dissector checks our S13 messages independently"),
]


def tshark(*args: str) -> str:
    res = subprocess.run(["tshark", "-n", *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.fixture
async def capture(tmp_path: Path) -> Path:
    server = await start(s13_config(), TableChecker(), Events())
    try:
        host, port, _ = server.addresses()[0]
        rec = await run_session(host, port)
    finally:
        await server.shutdown(1.0)
    path = tmp_path / "s13.pcap"
    write_pcap(str(path), rec)
    return path


async def test_tshark_decodes_the_session(capture: Path) -> None:
    fields = [
        "diameter.cmd.code",
        "diameter.flags.request",
        "diameter.flags.error",
        "diameter.IMEI",
        "diameter.Equipment-Status",
        "diameter.Result-Code",
        "diameter.Experimental-Result-Code",
        "diameter.Session-Id",
        "diameter.Failed-AVP",
    ]
    out = tshark(
        "-r",
        str(capture),
        "-Y",
        "diameter",
        "-T",
        "fields",
        "-E",
        "separator=|",
        *[x for f in fields for x in ("-e", f)],
    )
    rows = [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]
    cmds = [(r["diameter.cmd.code"], r["diameter.flags.request"]) for r in rows]
    assert cmds[:4] == [("257", "1"), ("257", "0"), ("280", "1"), ("280", "0")]
    assert cmds[-2:] == [("282", "1"), ("282", "0")]
    ecas = [r for r in rows if r["diameter.cmd.code"] == "324" and r["diameter.flags.request"] == "0"]
    ecrs = [r for r in rows if r["diameter.cmd.code"] == "324" and r["diameter.flags.request"] == "1"]
    assert [r["diameter.IMEI"] for r in ecrs] == [
        "15123456789012",
        "25123456789012",
        "35123456789012",
        "45123456789012",
        "55123456789012",
        "1234567890123",
    ]
    got = [
        (r["diameter.Result-Code"], r["diameter.Equipment-Status"], r["diameter.Experimental-Result-Code"])
        for r in ecas
    ]
    assert got == [
        ("2001", "0", ""),
        ("2001", "2", ""),
        ("2001", "1", ""),
        ("", "", "5422"),
        ("5012", "", ""),
        ("5004", "", ""),
    ]
    assert ecas[-1]["diameter.Failed-AVP"] != ""
    unknown = [r for r in rows if r["diameter.cmd.code"] == "325" and r["diameter.flags.request"] == "0"]
    assert (
        unknown and unknown[0]["diameter.Result-Code"] == "3001" and unknown[0]["diameter.flags.error"] == "1"
    )
    assert all(r["diameter.Session-Id"] for r in ecas)


async def test_no_malformed_packets_or_expert_infos(capture: Path) -> None:
    data = json.loads(tshark("-r", str(capture), "-T", "json"))
    assert len(data) >= 20
    text = json.dumps(data)
    assert "_ws.malformed" not in text
    expert = tshark("-r", str(capture), "-q", "-z", "expert,note")
    # No expert note, warning or error from any protocol (the SYN handshake chats are fine).
    assert not [ln for ln in expert.splitlines() if ln.strip() and not ln.startswith("=")], expert
