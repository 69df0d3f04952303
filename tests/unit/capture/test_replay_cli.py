"""``eir replay`` on bad input and bad usage: one line on stderr, exit 2, never a traceback; ``--show``;
``--map``; and the recorder's rotation."""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt
import pytest

from eir.cli import main
from eir.recording import PcapRecorder
from protocols.capture.pcapng import (
    TcpSynth,
    enhanced_packet_block,
    interface_description_block,
    section_header_block,
)
from simulations.replay import ReplayReport, Result, load_exchanges

from .helpers import EIR, MME, eca, ecr


def pcapng(path: Path, packets: list[bytes]) -> Path:
    path.write_bytes(
        section_header_block()
        + interface_description_block()
        + b"".join(enhanced_packet_block(1.0 + i / 10, p) for i, p in enumerate(packets))
    )
    return path


def pcap(path: Path, packets: list[bytes]) -> Path:
    with path.open("wb") as f:
        w = dpkt.pcap.Writer(f, linktype=101)
        for i, p in enumerate(packets):
            w.writepkt(p, ts=1.0 + i)
    return path


def session() -> list[bytes]:
    s = TcpSynth(EIR, MME)
    return s.open() + s.data(True, ecr(1) + ecr(2)) + s.data(False, eca(1, status=1)) + s.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["replay", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty file"),
        (lambda p: (p.write_bytes(b"hello, this is no capture at all"), p)[1], "not a pcap or pcapng"),
        (lambda p: (p.write_bytes(pcapng(p, session()).read_bytes()[:-30]), p)[1], "truncated"),
        (lambda p: (p.write_bytes(pcap(p, session()).read_bytes()[:-7]), p)[1], "truncated"),
        (lambda p: (p.write_bytes(pcap(p, session()).read_bytes()[:26]), p)[1], "truncated"),
        (
            lambda p: (p.write_bytes(pcapng(p, session()).read_bytes()[:40] + b"\xff" * 40), p)[1],
            "corrupt",
        ),
        (lambda p: pcapng(p, TcpSynth(EIR, MME).data(True, b"GET / HTTP/1.1\r\n\r\n")), "no S13"),
        (lambda p: pcapng(p, []), "no S13"),
    ],
    ids=[
        "missing",
        "empty",
        "not-a-capture",
        "truncated-ng",
        "truncated-pcap",
        "truncated-header",
        "corrupt",
        "no-diameter",
        "no-packets",
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, message: str
) -> None:
    path = make(tmp_path / "c.pcap")  # type: ignore[operator]
    rc, out, err = run(capsys, str(path), "--target", "127.0.0.1:1")
    assert rc == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert out == ""


def test_unreachable_target_and_bad_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cap = pcapng(tmp_path / "ok.pcapng", session())
    rc, _, err = run(capsys, str(cap), "--target", f"127.0.0.1:{free_port()}", "--timeout", "2")
    assert rc == 2 and err.startswith("eir replay: s13 target 127.0.0.1:") and err.count("\n") == 1, err
    for bad in (
        ["--target", "nowhere"],
        ["--target", "x25=1.2.3.4:5"],
        ["--speed", "fast"],
        ["--speed", "0"],
    ):
        rc, _, err = run(capsys, str(cap), *bad)
        assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, (bad, err)
    rc, _, err = run(capsys, str(cap), "--map", str(tmp_path / "nope.yaml"))
    assert rc == 2 and "--map" in err


def test_show_lists_the_exchanges_without_a_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for cap in (pcapng(tmp_path / "s.pcapng", session()), pcap(tmp_path / "s.pcap", session())):
        rc, out, _ = run(capsys, str(cap), "--show")
        assert rc == 0
        lines = out.splitlines()
        assert "S13 ECR" in lines[0] and "imei=35209900176148" in lines[0] and lines[0].endswith("→ black")
        assert lines[1].endswith("→ (no recorded answer)")
        assert lines[-1].startswith("2 exchanges (1 answered)")


def test_map_file_widens_what_matches(tmp_path: Path) -> None:
    loaded = load_exchanges(pcapng(tmp_path / "s.pcapng", session()))
    ex = loaded.exchanges[0]
    assert ex.expected == "black"
    report = ReplayReport(results=[Result(ex, "t", got="grey")])
    assert report.exit_code() == 1
    report.acceptable = {"black": ["grey"]}
    assert report.exit_code() == 0 and report.counts()["matched"] == 1
    no_exp = Result(loaded.exchanges[1], "t", got="white")
    assert no_exp.status({}) == "no expectation"


def test_recorder_rotates_and_every_file_stands_alone(tmp_path: Path) -> None:
    rec = PcapRecorder(tmp_path / "r.pcapng", max_bytes=4000, keep=3)
    s = TcpSynth(EIR, MME)
    for i in range(40):
        rec.write_packets(s.data(True, ecr(i)))
    rec.close()
    files = sorted(tmp_path.glob("r.pcapng*"))
    assert [f.name for f in files] == ["r.pcapng", "r.pcapng.1", "r.pcapng.2"]
    for f in files:
        assert f.stat().st_size <= 4000
        assert load_exchanges(f).exchanges  # each file has its own header blocks


def test_record_config_from_file_environment_and_cli(tmp_path: Path) -> None:
    from eir.config import ConfigError, load_config

    f = tmp_path / "eir.yaml"
    f.write_text("record:\n  pcap: data/x.pcapng\n  max_mb: 10\n")
    cfg = load_config(f, environ={})
    assert (cfg.record.pcap, cfg.record.max_mb, cfg.record.keep) == ("data/x.pcapng", 10.0, 5)
    cfg = load_config(f, environ={"EIR_RECORD_PCAP": "y.pcapng"}, overrides={"record": {"max_mb": 2}})
    assert (cfg.record.pcap, cfg.record.max_mb) == ("y.pcapng", 2.0)
    assert load_config(None, environ={}).record.pcap is None
    with pytest.raises(ConfigError, match=r"record\.max_mb"):
        load_config(None, environ={"EIR_RECORD_MAX_MB": "-1"})
    with pytest.raises(ConfigError, match=r"record\.keep"):
        load_config(None, environ={}, overrides={"record": {"keep": 0}})


def test_junit_names_are_stable_and_name_the_target_only_when_there_are_several(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    ex = load_exchanges(pcapng(tmp_path / "s.pcapng", session())).exchanges
    one = ReplayReport(results=[Result(ex[0], "127.0.0.1:1111", got="grey"), Result(ex[1], "127.0.0.1:1111")])
    suite = ET.fromstring(one.junit("s.pcapng")).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "1", "1")
    names = [c.get("name", "") for c in suite.iter("testcase")]
    assert names[0] == "#0 s13 35209900176148 hbh=0x00001001 e2e=0x00002001"
    failure = suite.find("testcase/failure")
    assert failure is not None and failure.get("message") == "expected black, got grey"
    two = ReplayReport(results=[Result(ex[0], "a:1", got="black"), Result(ex[0], "b:2", got="black")])
    s2 = ET.fromstring(two.junit("s")).find("testsuite")
    assert s2 is not None
    assert [c.get("name", "").rsplit(" ", 1)[1] for c in s2.iter("testcase")] == ["@a:1", "@b:2"]
