"""``POST /lists/import`` streams its body (a write token's import): a 50 MB CSV over HTTP/1.1 and
over HTTP/2 with prior knowledge, sent by curl (an independent HTTP stack), is imported as one new
version with the CLI's report while the server's peak RSS grows by far less than the body; 413 still
comes for a body over ``admin.max_import_body``; a client that goes away mid-body leaves the previous
version active, counted in ``eir_protocol_errors{error="body_aborted"}``."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testkit.eirproc import EirProcess
from testkit.peers import peer_program

pytestmark = pytest.mark.system

WRITE = "write-token-for-streaming"
ROW = b"35394206000002,black,,stolen " + b"r" * 80 + b"\n"
BODY_MB = 50
RSS_BOUND_MB = 24
"""Peak RSS growth allowed for a 50 MB import. Gathering it whole cost ~5x the body (the bytes,
their copy, the decoded text and a StringIO of it); streamed, the server holds at most a flow-control
window (1 MiB on HTTP/2, 256 KiB queued on HTTP/1.1) and the spool's 1 MiB in memory, plus the
parse's own buffers."""


@pytest.fixture(scope="module")
def eir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EirProcess]:
    tmp = tmp_path_factory.mktemp("streamed")
    p = EirProcess(
        tmp,
        {
            "admin": {"token": WRITE, "max_import_body": 64 << 20},
            "policy": {"unknown_equipment": "white"},
            "log": {"level": "info", "format": "json"},
        },
    )
    p.start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("body") / "big.csv"
    n = BODY_MB * 1_000_000 // len(ROW)
    with path.open("wb") as f:
        f.write(b"imei,status,imsi,reason\n")
        f.write(b"35394206000010,grey,,distinct\n")
        for _ in range(n // 1000):
            f.write(ROW * 1000)
    return path


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _reset_peak(pid: int) -> None:
    """Linux ≥ 4.0: writing 5 to clear_refs resets VmHWM to the current RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _curl(eir: EirProcess, body: Path, *opts: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    curl = peer_program("curl", "curl", "an independent HTTP client")
    return subprocess.run(
        [
            curl,
            "-sS",
            *opts,
            "-H",
            f"Authorization: Bearer {WRITE}",
            "-H",
            "content-type: text/csv",
            "--data-binary",
            f"@{body}",
            "-o",
            "-",
            "-w",
            "\n%{http_version} %{http_code}",
            f"{eir.admin_url}/lists/import",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _versions(eir: EirProcess) -> list[int]:
    r = httpx.get(f"{eir.admin_url}/lists/versions", headers={"authorization": f"Bearer {WRITE}"})
    assert r.status_code == 200, r.text
    return [v["id"] for v in r.json()["versions"]]


@pytest.mark.parametrize(("proto", "opt"), [("1.1", "--http1.1"), ("2", "--http2-prior-knowledge")])
def test_a_50mb_import_is_streamed_with_bounded_memory(
    eir: EirProcess, big_csv: Path, proto: str, opt: str
) -> None:
    assert eir.proc is not None
    pid = eir.proc.pid
    before_versions = _versions(eir)
    _reset_peak(pid)
    base = _peak_rss_kb(pid)
    out = _curl(eir, big_csv, opt)
    peak = _peak_rss_kb(pid)
    payload, _, tail = out.stdout.rpartition("\n")
    assert tail == f"{proto} 200", (tail, payload[:500], out.stderr)
    report = json.loads(payload)
    rows = 1 + (
        big_csv.stat().st_size - len(b"imei,status,imsi,reason\n35394206000010,grey,,distinct\n")
    ) // len(ROW)
    assert report["valid"] and report["rows"] == rows, report
    assert report["entries"] == 2 and report["duplicates"] == report["rows"] - 2, report
    assert report["version"] not in before_versions and _versions(eir)[0] == report["version"]
    growth_mb = (peak - base) / 1024
    print(f"HTTP/{proto}: {big_csv.stat().st_size / 1e6:.1f} MB body, peak RSS +{growth_mb:.1f} MB")
    assert growth_mb < RSS_BOUND_MB, f"peak RSS grew {growth_mb:.1f} MB for a {BODY_MB} MB body"
    r = httpx.get(
        f"{eir.admin_url}/check",
        params={"imei": "35394206000010"},
        headers={"authorization": f"Bearer {WRITE}"},
    )
    assert r.json()["status"] == "grey"


@pytest.mark.parametrize(("proto", "opt"), [("1.1", "--http1.1"), ("2", "--http2-prior-knowledge")])
def test_over_the_import_limit_is_413(eir: EirProcess, tmp_path: Path, proto: str, opt: str) -> None:
    """413 (the HTTP core's answer, whatever the service answered when its reader saw the abort),
    counted once in ``eir_protocol_errors{error="body_too_large"}`` and logged once, on both
    HTTP versions."""
    body = tmp_path / "over.csv"
    with body.open("wb") as f:
        f.write(b"imei,status\n")
        for _ in range((64 << 20) // (len(ROW) * 1000) + 1):
            f.write(ROW * 1000)
    before = _versions(eir)
    counted = _errors(eir, "body_too_large")
    logged = _too_large_lines(eir)
    out = _curl(eir, body, opt)
    payload, _, tail = out.stdout.rpartition("\n")
    assert tail == f"{proto} 413", (tail, payload[:300], out.stderr)
    problem = json.loads(payload)
    assert problem["status"] == 413 and problem["cause"] == "body_too_large"
    assert problem["detail"].startswith("request body too large")  # the core's answer, not the service's
    assert _versions(eir) == before
    assert _errors(eir, "body_too_large") == counted + 1
    assert _too_large_lines(eir) == logged + 1


def _errors(eir: EirProcess, label: str) -> float:
    for line in eir.metrics_text().splitlines():
        if line.startswith(f'eir_protocol_errors_total{{error="{label}",interface="admin"}}'):
            return float(line.split()[-1])
    return 0.0


def _too_large_lines(eir: EirProcess) -> int:
    return sum(
        1
        for e in eir.log_events()
        if e.get("event") == "http_protocol_error" and e.get("error") == "body_too_large"
    )


@pytest.mark.parametrize(("proto", "opt"), [("1.1", "--http1.1"), ("2", "--http2-prior-knowledge")])
def test_a_client_gone_mid_body_changes_nothing(eir: EirProcess, big_csv: Path, proto: str, opt: str) -> None:
    before = _versions(eir)

    def aborted() -> float:
        for line in eir.metrics_text().splitlines():
            if line.startswith('eir_protocol_errors_total{error="body_aborted",interface="admin"}'):
                return float(line.split()[-1])
        return 0.0

    n = aborted()
    # about 4 MB at 2 MB/s, then curl gives up (exit 28) with most of the body unsent
    out = _curl(eir, big_csv, opt, "--limit-rate", "2M", "--max-time", "2")
    assert out.returncode == 28, (out.returncode, out.stdout[-300:], out.stderr)
    for _ in range(50):  # the server sees the connection go a moment later
        if aborted() >= n + 1:
            break
        time.sleep(0.1)
    assert aborted() == n + 1
    assert _versions(eir) == before
    assert httpx.get(f"{eir.admin_url}/health").status_code == 200
    assert "http_body_aborted" in eir.log()
