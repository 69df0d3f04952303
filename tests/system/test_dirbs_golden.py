"""DIRBS's golden list through a running ``eir serve``: a golden IMEI that is also on the blacklist
and the notification list is white whatever the order ``eir lists import`` read the files in (the
golden list is its own reference table, ranked above the lists). The S13 verdicts come back through
python-diameter's own peer stack, the MAP checkIMEI answers of the simulated MSC are recorded on
the wire and decoded by tshark (independent decoders), and ``eir check --explain`` names what the
golden list overrode."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from simulations.msc import SimulatedMsc
from tests.interop.test_map_tshark import LUA, WARNING, Tap
from tests.interop.test_s13_python_diameter import _node_session

pytestmark = [
    pytest.mark.system,
    pytest.mark.peer("tshark", "Wireshark's dissectors decode the MAP answers independently"),
]

IMSI = "001010123456789"
GOLDEN_BLACK = "35693803564380"  # golden and on the blacklist
GOLDEN_NOTIFIED = "35693803564390"  # golden and notified with a block date passed
BLACK = "35693803564381"  # blacklisted only
GOLDEN_ONLY = "35693803564399"  # golden, on no list

BLOCKING = {
    "blacklist.csv": f"imei,block_date,reasons\n{GOLDEN_BLACK},20250101,LOCAL STOLEN\n{BLACK},20250101,X\n",
    "notifications.csv": "imei,imsi,msisdn,block_date,reasons\n"
    f"{GOLDEN_NOTIFIED},{IMSI},923001234567,20000101,Duplicate IMEI\n",
}
GOLDEN = {"golden.csv": f"golden_imei\n{GOLDEN_BLACK}\n{GOLDEN_NOTIFIED}5\n{GOLDEN_ONLY}\n"}
EXPECTED = {GOLDEN_BLACK: "white", GOLDEN_NOTIFIED: "white", BLACK: "black", GOLDEN_ONLY: "white"}
MAP_STATUS = {"white": "0", "black": "1", "grey": "2"}
S13_STATUS = {"white": 0, "black": 1, "grey": 2}


@pytest.fixture(params=["golden-first", "golden-last"])
def eir(eir_factory: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    p = eir_factory({"m3ua": {"enabled": True}}, start=False)
    files = {**GOLDEN, **BLOCKING} if request.param == "golden-first" else {**BLOCKING, **GOLDEN}
    for name, text in files.items():
        f = tmp_path / name
        f.write_text(text)
        out = p.cli("lists", "import", str(f)).stdout
        assert out.startswith("imported"), out
    return p.start()


def _map_answers(pcap: Path) -> list[tuple[str, str]]:
    """(IMEI asked, equipment status answered) per checkIMEI, in wire order, as tshark reads them."""
    fields = [
        "_ws.expert.severity",
        "_ws.expert.message",
        "gsm_map.tbcd_digits",
        "gsm_map.ms.equipmentStatus",
    ]
    cmd = ["tshark", "-n", "-r", str(pcap), "-X", f"lua_script:{LUA}", "-X", "lua_script1:2905"]
    cmd += ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", "-E", "separator=\t"]
    for fld in fields:
        cmd += ["-e", fld]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    asked: list[str] = []
    out: list[tuple[str, str]] = []
    for line in res.stdout.splitlines():
        sev, msg, digits, status = [*line.split("\t"), "", "", "", ""][:4]
        assert not sev or all(int(s) < WARNING for s in sev.split("|")), msg
        if digits:
            asked.append(digits)
        if status:
            out.append((asked[len(out)][:14], status))
    return out


async def test_golden_wins_over_s13_and_map_in_either_import_order(eir: Any) -> None:
    _, port = eir.diameter
    cases = [(imei, None) for imei in EXPECTED]
    answers = await asyncio.wait_for(asyncio.to_thread(_node_session, port, cases), 60)
    got = {imei: (a.result_code, a.equipment_status) for (imei, _), a in zip(cases, answers, strict=True)}
    assert got == {imei: (2001, S13_STATUS[v]) for imei, v in EXPECTED.items()}

    tap = Tap(eir.m3ua)
    await tap.start()
    msc = await SimulatedMsc.connect("127.0.0.1", tap.port)
    try:
        for imei, verdict in EXPECTED.items():
            assert (await msc.check(imei, version=3)).verdict == verdict, imei
    finally:
        await msc.close()
    assert tap.server is not None
    tap.server.close()
    pcap = eir.tmp / "map.pcap"
    tap.write_pcap(pcap, 2905)
    decoded = await asyncio.to_thread(_map_answers, pcap)
    assert decoded == [(imei, MAP_STATUS[v]) for imei, v in EXPECTED.items()]

    metrics = eir.metrics_text()
    assert 'eir_verdicts_total{interface="s13",rule="golden",status="white"} 3.0' in metrics
    assert 'eir_verdicts_total{interface="map",rule="golden",status="white"} 3.0' in metrics
    explain = eir.cli("check", GOLDEN_BLACK, "--explain").stdout
    line = next(ln for ln in explain.splitlines() if ln.split()[:2] == ["golden", "decided"])
    assert "overrides the black list's" in line and "LOCAL STOLEN" in line, explain
    assert explain.strip().splitlines()[-1].startswith("white  golden")
    assert "golden table: 3 records" in eir.cli("lists", "versions").stdout
