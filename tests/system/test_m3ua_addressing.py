"""MAP addressing and screening against the running M3UA server (issue 10), with the simulated MSC
as the peer and every exchange decoded by tshark: a calling GT or an OPC screening refuses gets UDTS
cause unqualified (7), a called GT we do not translate UDTS cause 1, a DPC not ours DUNA naming it;
the answers' OPC is always ours; each refusal counted (eir_refused / eir_protocol_errors)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from eir.config import Config, M3uaConfig
from eir.metrics import PROTOCOL_ERRORS, REFUSED
from eir.servers.m3ua import start
from simulations.msc import SimulatedMsc
from tests.interop.s13_session import Events, TableChecker
from tests.interop.test_map_tshark import LUA, WARNING, Tap

pytestmark = [
    pytest.mark.system,
    pytest.mark.peer("tshark", "Wireshark's dissectors read the UDTS / DUNA the EIR sends"),
]

IMEI = "35809101685355"
FIELDS = [
    "tcp.srcport",
    "_ws.expert.severity",
    "_ws.expert.message",
    "m3ua.message_class",
    "m3ua.message_type",
    "m3ua.protocol_data_opc",
    "m3ua.affected_point_code_pc",
    "sccp.message_type",
    "sccp.return_cause",
    "sccp.called.ssn",
    "gsm_map.ms.equipmentStatus",
]


@pytest.fixture
async def server() -> AsyncIterator[Any]:
    cfg = Config(
        m3ua=M3uaConfig(
            listen=["127.0.0.1:0"],
            transports=["tcp"],
            screen_opcs=[1, 9],
            screen_calling_gt_prefixes=["4917"],
        )
    )
    srv = await start(cfg, TableChecker(), Events())
    yield srv
    await srv.shutdown(1.0)


def count(metric: Any, *labels: str) -> float:
    return float(metric.labels(*labels)._value.get())


def tshark_columns(pcap: Path, eir_port: int) -> list[dict[str, list[str]]]:
    cmd = ["tshark", "-n", "-r", str(pcap), "-X", f"lua_script:{LUA}", "-X", f"lua_script1:{eir_port}"]
    cmd += ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", "-E", "separator=\t"]
    for f in FIELDS:
        cmd += ["-e", f]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    rows = []
    for line in res.stdout.splitlines():
        rows.append(
            {f: [x for x in v.split("|") if x] for f, v in zip(FIELDS, line.split("\t"), strict=True)}
        )
    return rows


async def test_screening_and_addressing_decoded_by_tshark(server: Any, tmp_path: Path) -> None:
    port = int(server.addresses()[0][1])
    tap = Tap(("127.0.0.1", port))
    await tap.start()
    before = {k: count(REFUSED, "map", k) for k in ("screen_calling_gt", "screen_opc", "dpc")} | {
        "gt": count(PROTOCOL_ERRORS, "map", "sccp_no_translation_for_address")
    }
    cases = {
        "home": {},
        "foreign_calling_gt": {"gt": "33600000001"},
        "opc_not_allowed": {"opc": 5},
        "called_gt_not_ours": {"eir_gt": "491700000099"},
        "dpc_not_ours": {"dpc": 77},
    }
    verdicts: dict[str, str] = {}
    for name, kw in cases.items():
        msc = await SimulatedMsc.connect("127.0.0.1", tap.port, **kw)
        try:
            # a DUNA answers the DPC case, not a TCAP End: the check itself gets no answer
            res = await msc.check(IMEI, version=2, timeout=1.0 if name == "dpc_not_ours" else 5.0)
            verdicts[name] = res.verdict
        finally:
            await msc.close()
    assert verdicts == {
        "home": "black",  # TableChecker's verdict for this IMEI
        "foreign_calling_gt": "returned:unqualified",
        "opc_not_allowed": "returned:unqualified",
        "called_gt_not_ours": "returned:no_translation_for_address",
        "dpc_not_ours": "timeout",
    }
    assert count(REFUSED, "map", "screen_calling_gt") == before["screen_calling_gt"] + 1
    assert count(REFUSED, "map", "screen_opc") == before["screen_opc"] + 1
    assert count(REFUSED, "map", "dpc") == before["dpc"] + 1
    assert count(PROTOCOL_ERRORS, "map", "sccp_no_translation_for_address") == before["gt"] + 1

    assert tap.server is not None
    tap.server.close()
    pcap = tmp_path / "addressing.pcap"
    tap.write_pcap(pcap, port)
    rows = await asyncio.to_thread(tshark_columns, pcap, port)
    assert all(int(s) < WARNING for r in rows for s in r["_ws.expert.severity"]), [
        r["_ws.expert.message"] for r in rows
    ]
    from_eir = [r for r in rows if r["tcp.srcport"] == [str(port)]]
    udts_causes = sorted(
        int(c, 0)
        for r in from_eir
        if 10 in [int(t, 0) for t in r["sccp.message_type"]]
        for c in r["sccp.return_cause"]
    )
    assert udts_causes == [1, 7, 7]  # called GT not ours; calling GT and OPC screened
    opcs = {opc for r in from_eir for opc in r["m3ua.protocol_data_opc"]}
    assert opcs == {"2"}  # every DATA the EIR sent, from its own point code
    duna = [
        r for r in from_eir if ("2", "1") in zip(r["m3ua.message_class"], r["m3ua.message_type"], strict=True)
    ]
    assert len(duna) == 1 and duna[0]["m3ua.affected_point_code_pc"] == ["77"]
    assert [s for r in from_eir for s in r["gsm_map.ms.equipmentStatus"]] == ["1"]  # "home" alone
