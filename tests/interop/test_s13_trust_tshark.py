"""tshark reads the EIR's refusals (issue 10) independently: 3003 REALM_NOT_SERVED and 3002
UNABLE_TO_DELIVER with the E bit and Failed-AVP, 5012 for an ECR whose Origin-Host is not the CER's,
and CEA 3010 UNKNOWN_PEER for a peer not on the allow-list — with no malformed packet or expert note."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from eir.servers.diameter import start
from protocols.diameter import DiameterPeer, Role

from .s13_session import Events, Recorder, TableChecker, read_messages, s13_config, write_pcap

pytestmark = [
    pytest.mark.interop,
    pytest.mark.peer("tshark", "Wireshark's Diameter dissector checks our refusals independently"),
]

FIELDS = [
    "diameter.cmd.code",
    "diameter.flags.request",
    "diameter.flags.error",
    "diameter.Result-Code",
    "diameter.Failed-AVP",
    "diameter.Error-Reporting-Host",
]


def tshark(*args: str) -> str:
    res = subprocess.run(["tshark", "-n", *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


async def _session(port: int, origin_host: str, ecrs: list[dict[str, str]]) -> Recorder:
    rec = Recorder()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    mme = DiameterPeer(
        role=Role.INITIATOR, origin_host=origin_host, origin_realm="lab", destination_realm="localdomain"
    )
    mme.start(0.0)

    async def send(data: bytes) -> None:
        rec.chunks.append((True, data))
        writer.write(data)
        await writer.drain()
        for m in await read_messages(reader, 1, rec):
            mme.receive_data(m, 0.0)
        mme.data_to_send()

    try:
        await send(mme.data_to_send())  # CER → CEA
        for i, kw in enumerate(ecrs):
            origin = kw.pop("origin_host", None)
            if origin:
                mme.origin_host = origin
            mme.send_ecr(0.0, session_id=f"{origin_host};1;{i}", imei="15123456789012", **kw)
            await send(mme.data_to_send())
    finally:
        writer.close()
    return rec


def _rows(pcap: Path) -> list[dict[str, str]]:
    fields = [x for f in FIELDS for x in ("-e", f)]
    out = tshark("-r", str(pcap), "-Y", "diameter", "-T", "fields", "-E", "separator=|", *fields)
    return [dict(zip(FIELDS, line.split("|"), strict=True)) for line in out.splitlines()]


def _clean(pcap: Path) -> None:
    assert "_ws.malformed" not in json.dumps(json.loads(tshark("-r", str(pcap), "-T", "json")))
    expert = tshark("-r", str(pcap), "-q", "-z", "expert,note")
    assert not [ln for ln in expert.splitlines() if ln.strip() and not ln.startswith("=")], expert


async def test_tshark_reads_the_refusals(tmp_path: Path) -> None:
    server = await start(s13_config(allow_hosts=["mme1.lab"]), TableChecker(), Events())
    try:
        port = server.addresses()[0][1]
        served = await _session(
            port,
            "mme1.lab",
            [
                {"destination_realm": "other.lab"},
                {"destination_host": "hss.localdomain"},
                {"origin_host": "mme9.lab"},
            ],
        )
        refused = await _session(port, "mme2.lab", [])
    finally:
        await server.shutdown(1.0)
    a, b = tmp_path / "served.pcap", tmp_path / "refused.pcap"
    write_pcap(str(a), served)
    write_pcap(str(b), refused)
    rows = [r for r in _rows(a) if r["diameter.flags.request"] == "0"]
    answers = [
        (
            r["diameter.cmd.code"],
            r["diameter.flags.error"],
            r["diameter.Result-Code"],
            r["diameter.Failed-AVP"] != "",
        )
        for r in rows
    ]
    assert answers == [
        ("257", "0", "2001", False),
        ("324", "1", "3003", True),
        ("324", "1", "3002", True),
        ("324", "0", "5012", True),
    ]
    assert not any(r["diameter.Error-Reporting-Host"] for r in _rows(a))
    cea = [r for r in _rows(b) if r["diameter.flags.request"] == "0"]
    assert [(r["diameter.cmd.code"], r["diameter.flags.error"], r["diameter.Result-Code"]) for r in cea] == [
        ("257", "1", "3010")
    ]
    _clean(a)
    _clean(b)
