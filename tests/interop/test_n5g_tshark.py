"""tshark decodes a real capture (dumpcap on loopback) of an h2c exchange between nghttp and
``eir serve``: the right ``:path`` per stream, the right ``:status`` and JSON body per answer, and
no malformed packet or expert warning."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from protocols.imei import luhn_check_digit
from testkit.eirproc import EirProcess
from testkit.peers import peer_program

pytestmark = [pytest.mark.interop, pytest.mark.system]

API = "/n5g-eir-eic/v1/equipment-status"
WHITE, BLACK = "35209900176148", "35123456789038"
PEIS = {
    f"imei-{WHITE}{luhn_check_digit(WHITE)}": (200, {"status": "WHITELISTED"}),
    f"imeisv-{BLACK}01": (200, {"status": "BLACKLISTED"}),
    "imei-35999999999999": (400, {"cause": "MANDATORY_QUERY_PARAM_INCORRECT"}),
    f"imei-{'3599999999999'}{'90'}": (404, {"cause": "ERROR_EQUIPMENT_UNKNOWN"}),
}


def tshark(*args: str) -> str:
    res = subprocess.run(
        [peer_program("tshark", "tshark", "tshark judges the h2c capture"), "-n", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    tmp_path = tmp_path_factory.mktemp("n5gcap")
    dumpcap = peer_program("dumpcap", "tshark", "dumpcap captures the h2c exchange on loopback")
    nghttp = peer_program("nghttp", "nghttp2-client", "nghttp is an independent HTTP/2 client")
    lists = tmp_path / "lists.csv"
    lists.write_text(f"imei,status\n{WHITE},white\n{BLACK},black\n")
    eir = EirProcess(
        tmp_path / "eir",
        {
            "diameter": {"enabled": False},
            "m3ua": {"enabled": False},
            "policy": {"unknown_equipment": "unknown", "clone": {"enabled": False}},
            "lists": {"import_on_start": [str(lists)]},
        },
    ).start()
    port = eir.n5g[1]
    pcap = tmp_path / "n5g.pcapng"
    dc_log = tmp_path / "dumpcap.log"
    with dc_log.open("wb") as log:
        dc = subprocess.Popen(
            [dumpcap, "-q", "-i", "lo", "-f", f"tcp port {port}", "-w", str(pcap)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 10
        while not pcap.exists() or pcap.stat().st_size == 0:  # dumpcap writes its header once ready
            assert dc.poll() is None and time.monotonic() < deadline, dc_log.read_text()
            time.sleep(0.05)
        urls = [f"{eir.n5g_url}{API}?pei={p}" for p in PEIS]
        res = subprocess.run([nghttp, "-n", *urls], capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stdout + res.stderr
        time.sleep(1.0)  # the last packets reach the capture file (dumpcap writes as it reads)
    finally:
        dc.terminate()
        dc.wait(10)
        eir.stop()
    return pcap, port


def test_tshark_decodes_the_h2c_exchange(capture: tuple[Path, int]) -> None:
    pcap, port = capture
    decode = ["-d", f"tcp.port=={port},http2"]
    data: list[dict[str, Any]] = json.loads(
        tshark("-r", str(pcap), *decode, "-Y", "http2", "-T", "json", "--no-duplicate-keys")
    )
    paths: dict[int, str] = {}
    statuses: dict[int, int] = {}
    bodies: dict[int, bytes] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "http2.streamid" in node and "http2.type" in node:
                sid = int(node["http2.streamid"])
                for h in _headers(node):
                    if h[0] == ":path":
                        paths[sid] = h[1]
                    elif h[0] == ":status":
                        statuses[sid] = int(h[1])
                if node["http2.type"] == "0" and "http2.data.data" in node:
                    bodies[sid] = bodies.get(sid, b"") + bytes.fromhex(
                        node["http2.data.data"].replace(":", "")
                    )
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for pkt in data:
        walk(pkt["_source"]["layers"])
    assert sorted(paths.values()) == sorted(f"{API}?pei={p}" for p in PEIS)
    for sid, path in paths.items():
        status, want = PEIS[path.split("pei=", 1)[1]]
        assert statuses[sid] == status, (path, statuses)
        got = json.loads(bodies[sid])
        assert {k: got[k] for k in want} == want


def _headers(frame: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    hs = frame.get("http2.header")
    for h in hs if isinstance(hs, list) else [hs] if hs else []:
        if isinstance(h, dict) and "http2.header.name" in h:
            out.append((h["http2.header.name"], h.get("http2.header.value", "")))
    return out


def test_no_malformed_packets_or_expert_warnings(capture: tuple[Path, int]) -> None:
    pcap, port = capture
    decode = ["-d", f"tcp.port=={port},http2"]
    text = tshark("-r", str(pcap), *decode, "-T", "json")
    assert "_ws.malformed" not in text and '"http2"' in text
    # No expert info at all from HTTP/2 or JSON. TCP's "Sequence" group (connection closing, a
    # D-SACK now and then) comes from the live loopback capture, not from what was said.
    expert = tshark("-r", str(pcap), *decode, "-q", "-z", "expert,note")
    rows = [ln.split() for ln in expert.splitlines() if ln.strip().split(" ")[0].isdigit()]
    assert all(r[1] == "Sequence" and r[2] == "TCP" for r in rows), expert
