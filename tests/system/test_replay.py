"""``eir replay`` on captures made by dumpcap of real exchanges, and ``eir serve --pcap`` read by tshark.

* freeDiameter (an independent MME) → ``eir serve`` on a non-standard port, captured on ``lo`` as pcap
  (Ethernet framing); the sim MSC → ``eir serve`` captured on ``any`` as pcapng (Linux cooked).
  Replayed against a second EIR with the same lists: nothing differs; against one with one entry
  changed: exactly that IMEI's requests differ, exit 1, and the JUnit file says so.
* The sims' S13 session captured on ``lo`` (Ethernet) and their MAP session on ``any`` (Linux cooked),
  merged by mergecap into one pcapng with two interfaces: each packet read with its own link type.
* The EIR's own recording: tshark dissects every ECR/ECA and checkIMEI/result with the right fields and
  no malformed packet or expert warning — from a process killed with SIGKILL — and it replays with
  no difference.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from simulations.mme import SimulatedMme
from simulations.msc import SimulatedMsc
from testkit.capture import dumpcap, missing, require
from testkit.eirproc import eir_command
from testkit.freediameter.fd import Ecr, build_extension, run_mme, unavailable

pytestmark = [pytest.mark.system, pytest.mark.interop]

WHITE, GREY, BLACK, UNKNOWN = "35209900176148", "35394206000001", "35394206000002", "35394206000099"
LISTS = f"imei,status\n{WHITE},white\n{GREY},grey\n{BLACK},black\n"
CHANGED = LISTS.replace(f"{BLACK},black", f"{BLACK},grey")


def eir_config(tmp: Path, lists: str, name: str, **extra: Any) -> dict[str, Any]:
    p = tmp / f"{name}.csv"
    p.write_text(lists)
    return {"policy": {"unknown_equipment": "unknown"}, "lists": {"import_on_start": [str(p)]}, **extra}


def replay(capture: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*eir_command(), "replay", str(capture), *args], capture_output=True, text=True, timeout=60
    )


def junit_counts(path: Path) -> tuple[int, int, list[str]]:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    failed = [c.get("name", "") for c in suite.iter("testcase") if c.find("failure") is not None]
    return int(suite.get("tests", "0")), int(suite.get("failures", "0")), failed


def check_replays(eir_factory: Any, tmp: Path, capture: Path, iface: str, n: int, n_black: int) -> None:
    """Same lists → all match; BLACK turned grey → exactly BLACK's requests differ."""
    same = eir_factory(eir_config(tmp, LISTS, "same"))
    host, port = same.diameter if iface == "s13" else same.m3ua
    r = replay(capture, "--target", f"{iface}={host}:{port}", "--junit", str(tmp / "same.xml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{n} matched, 0 differed, 0 unanswered" in r.stdout, r.stdout
    assert junit_counts(tmp / "same.xml")[:2] == (n, 0)

    changed = eir_factory(eir_config(tmp, CHANGED, "changed"))
    host, port = changed.diameter if iface == "s13" else changed.m3ua
    r = replay(capture, "--target", f"{host}:{port}", "--junit", str(tmp / "changed.xml"), "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    res = json.loads(r.stdout)
    differed = [x for x in res["results"] if x["status"] == "differed"]
    assert {x["imei"] for x in differed} == {BLACK}, differed
    assert len(differed) == n_black and {(x["expected"], x["got"]) for x in differed} == {("black", "grey")}
    tests, failures, names = junit_counts(tmp / "changed.xml")
    assert (tests, failures) == (n, n_black) and all(BLACK in name for name in names)


def test_replay_a_freediameter_session_captured_on_lo_as_pcap(
    eir_factory: Any, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require(unavailable() or missing("dumpcap"))
    ext = build_extension(tmp_path_factory.mktemp("fdx"))
    eir = eir_factory(eir_config(tmp_path, LISTS, "orig"))
    requests = [
        Ecr(WHITE),
        Ecr(GREY),
        Ecr(BLACK),
        Ecr(UNKNOWN),
        Ecr(BLACK, software_version="01"),
        Ecr(GREY, imsi="001010123456789"),
    ]
    cap = tmp_path / "fd.pcap"
    with dumpcap(cap, f"tcp port {eir.diameter[1]}", interface="lo", pcap=True):
        res = run_mme(tmp_path / "fd", eir.diameter, requests, extension=ext, window=4)
    assert len(res.answers) == len(requests), res.describe()

    show = replay(cap, "--show")
    assert show.returncode == 0, show.stderr
    assert f"{len(requests)} exchanges ({len(requests)} answered)" in show.stdout, show.stdout
    check_replays(eir_factory, tmp_path, cap, "s13", len(requests), 2)


async def msc_session(host: str, port: int) -> int:
    msc = await SimulatedMsc.connect(host, port)
    n = 0
    try:
        for version in (1, 2, 3):
            for imei in (WHITE, GREY, BLACK, UNKNOWN):
                await msc.check(imei, version=version)
                n += 1
        await msc.check(BLACK, version=2, imsi="001010123456789", vendor="huawei")
        await msc.check(BLACK, version=3, imsi="001010123456789", vendor="ericsson")
        n += 2
    finally:
        await msc.close()
    return n


def test_replay_a_sim_msc_session_captured_on_any_as_pcapng(eir_factory: Any, tmp_path: Path) -> None:
    require(missing("dumpcap"))
    eir = eir_factory(eir_config(tmp_path, LISTS, "orig"))
    cap, cap2 = tmp_path / "msc.pcapng", tmp_path / "msc-sll2.pcapng"
    bpf = f"tcp port {eir.m3ua[1]}"
    with (
        dumpcap(cap, bpf, interface="any", pcap=False),
        dumpcap(cap2, bpf, interface="any", pcap=False, linktype="LINUX_SLL2"),
    ):
        n = asyncio.run(msc_session(*eir.m3ua))
    show = replay(cap, "--show")
    assert f"{n} exchanges ({n} answered)" in show.stdout, show.stdout + show.stderr

    def exchanges(out: str) -> list[list[str]]:  # without the timestamp column
        return [line.split("  ")[2:] for line in out.splitlines()]

    assert exchanges(replay(cap2, "--show").stdout) == exchanges(show.stdout)  # Linux cooked v2
    assert "(huawei)" in show.stdout and "(ericsson)" in show.stdout
    check_replays(eir_factory, tmp_path, cap, "map", n, 3 + 2)


async def sims_session(eir: Any) -> int:
    mme = await SimulatedMme.connect(*eir.diameter)
    try:
        for imei in (WHITE, GREY, BLACK, UNKNOWN):
            await mme.check(imei, imsi="001010123456789")
        s = await mme.load(WHITE, count=200, window=32)
        assert s.count == 200
    finally:
        await mme.close()
    msc = await SimulatedMsc.connect(*eir.m3ua)
    try:
        for version in (1, 2, 3):
            for imei in (WHITE, GREY, BLACK, UNKNOWN):
                await msc.check(imei, version=version)
    finally:
        await msc.close()
    return 4 + 200 + 12


def test_replay_a_capture_merged_from_interfaces_of_different_link_types(
    eir_factory: Any, tmp_path: Path
) -> None:
    require(missing("dumpcap", "mergecap"))
    from protocols.capture.pcapng import pcapng_linktypes

    eir = eir_factory(eir_config(tmp_path, LISTS, "orig"))
    eth, cooked = tmp_path / "s13-lo.pcapng", tmp_path / "map-any.pcapng"
    with (
        dumpcap(eth, f"tcp port {eir.diameter[1]}", interface="lo", pcap=False),
        dumpcap(cooked, f"tcp port {eir.m3ua[1]}", interface="any", pcap=False),
    ):
        n = asyncio.run(sims_session(eir))
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-w", str(merged), str(eth), str(cooked)], check=True, timeout=60)
    types = set(pcapng_linktypes(merged.read_bytes()))
    assert 1 in types and types & {113, 276}, types  # Ethernet, and Linux cooked (v1 or v2)

    show = replay(merged, "--show")
    assert show.returncode == 0, show.stderr
    assert f"{n} exchanges ({n} answered)" in show.stdout, show.stdout[-2000:]
    assert "2 Diameter requests not replayed: 1 CER, 1 DPR (session plumbing)" in show.stdout, show.stdout[
        -500:
    ]
    other = eir_factory(eir_config(tmp_path, LISTS, "same"))
    (dh, dp), (mh, mp) = other.diameter, other.m3ua
    r = replay(merged, "--target", f"s13={dh}:{dp}", "--target", f"map={mh}:{mp}", "--json")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    res = json.loads(r.stdout)
    assert res["summary"] == {"matched": n, "differed": 0, "no expectation": 0}
    assert res["not_replayed"] == {"CER": 1, "DPR": 1}


def tshark(*args: str) -> str:
    r = subprocess.run(["tshark", "-n", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_recording_is_dissected_by_tshark_and_replays_without_difference(
    eir_factory: Any, tmp_path: Path
) -> None:
    require(missing("tshark"))
    rec = tmp_path / "rec.pcapng"
    eir = eir_factory(eir_config(tmp_path, LISTS, "orig", record={"pcap": str(rec)}))
    n = asyncio.run(sims_session(eir))
    assert eir.proc is not None
    eir.proc.send_signal(signal.SIGKILL)  # what was written must be readable all the same
    eir.proc.wait(10)
    dport = f"tcp.port=={eir.diameter[1]},diameter"

    expert = tshark("-r", str(rec), "-d", dport, "-q", "-z", "expert,warn")
    assert "Malformed" not in expert and "Warns" not in expert and "Errors" not in expert, expert

    ecr = tshark("-r", str(rec), "-d", dport, "-Y", "diameter.cmd.code == 324", "-T", "fields",
                 "-e", "diameter.flags.request", "-e", "diameter.IMEI", "-e", "diameter.Equipment-Status",
                 "-e", "diameter.Experimental-Result-Code")  # fmt: skip
    rows = [line.split("\t") for line in ecr.splitlines()]  # a segment may carry several messages
    flags = [f for r in rows for f in r[0].split(",")]
    assert flags.count("1") == flags.count("0") == 204, ecr[:2000]
    requests = [r for r in rows if r[0] == "1"]
    answers = [r for r in rows if r[0] == "0"]
    assert [r[1] for r in requests[:4]] == [WHITE, GREY, BLACK, UNKNOWN]
    assert [(a[2], a[3]) for a in answers[:4]] == [("0", ""), ("2", ""), ("1", ""), ("", "5422")]
    assert all(v == WHITE for r in rows[8:] for v in r[1].split(",") if v)

    mapf = tshark("-r", str(rec), "-Y", "gsm_old.localValue == 43", "-T", "fields",
                  "-e", "gsm_map.ms.equipmentStatus", "-e", "tcap.tid")  # fmt: skip
    lines = mapf.splitlines()
    assert len(lines) == 12 * 2 - 3, mapf  # Begins and results carry opcode 43; ReturnErrors do not
    statuses = [line.split("\t")[0] for line in lines if line.split("\t")[0]]
    assert statuses == ["0", "2", "1"] * 3, mapf
    errors = tshark("-r", str(rec), "-Y", "gsm_old.localValue == 7", "-T", "fields", "-e", "tcap.tid")
    assert len(errors.splitlines()) == 3, errors

    other = eir_factory(eir_config(tmp_path, LISTS, "same"))
    (dh, dp), (mh, mp) = other.diameter, other.m3ua
    r = replay(rec, "--target", f"s13={dh}:{dp}", "--target", f"map={mh}:{mp}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{n} matched, 0 differed, 0 unanswered" in r.stdout, r.stdout[-2000:]
