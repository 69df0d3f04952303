"""The real ``eir`` console script in subprocesses: lists import/export/versions/rollback and check."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.eirproc import ROOT, clean_env, eir_command

DEMO = ROOT / "config" / "lists" / "demo.csv"


class Cli:
    def __init__(self, tmp: Path, store: dict[str, Any] | None = None) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.config = tmp / "eir.yaml"
        cfg = {
            "data_dir": str(tmp / "data"),
            "store": store or {"url": f"sqlite:///{tmp / 'data' / 'eir.db'}"},
            "log": {"format": "json"},
        }
        self.config.write_text(yaml.safe_dump(cfg))

    def __call__(self, *args: str, config: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [*eir_command(), *args] + (["--config", str(self.config)] if config else [])
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=self.tmp, env=clean_env())

    def ok(self, *args: str) -> str:
        r = self(*args)
        assert r.returncode == 0, f"eir {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
        return r.stdout


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_import_then_check_and_explain(cli: Cli) -> None:
    out = cli.ok("lists", "import", str(DEMO))
    assert out.startswith("imported version 1 (full equipment list from demo.csv)")
    out = cli.ok("check", "35394206000002", "--explain")
    lines = out.strip().splitlines()
    assert lines[-1].startswith("black  imei:black:35394206000002")
    assert any(ln.split()[:2] == ["imei", "matched"] for ln in lines)
    assert lines[0].split()[:2] == ["validity", "ok"]
    assert cli.ok("check", "35209900176148").startswith("white  imei:white:35209900176148")
    assert cli.ok("check", "35691234000500").startswith("grey  range:grey:35691234000000-35691234000999")
    assert cli.ok("check", "86700000123456").startswith("black  tac:black:86700000")
    assert cli.ok("check", "35394206000003", "--sv", "01").startswith("black  imeisv:")
    assert cli.ok("check", "49015420323752").startswith("white  default")  # unknown equipment
    # malformed input is a usage error; --allow-bad-imei asks the policy, whose validity rule answers
    r = cli("check", "123", "--json")
    assert r.returncode == 2 and r.stdout == "" and "is not an IMEI" in r.stderr
    v = json.loads(cli.ok("check", "123", "--json", "--explain", "--allow-bad-imei"))
    assert v["status"] == "black" and v["rule"] == "validity" and v["steps"][0]["outcome"] == "failed"


def test_dry_run_with_bad_rows_reports_lines_and_imports_nothing(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "imei,status,imsi,reason\n"
        "35209900176148,black,,ok\n"
        "1234567,black,,\n"
        "352099001761482,grey,,\n"
        "35209900176155,purple,,\n"
    )
    for extra in ([], ["--dry-run"]):
        r = cli("lists", "import", str(bad), *extra)
        assert r.returncode == 1
        assert "3 bad rows" in r.stderr
        assert "line 3:" in r.stderr and "7 digits" in r.stderr
        assert "line 4:" in r.stderr and "check digit" in r.stderr
        assert "line 5:" in r.stderr and "purple" in r.stderr
        assert "nothing imported" in r.stderr
    assert "no list versions yet" in cli.ok("lists", "versions")
    out = cli.ok("lists", "import", str(DEMO), "--dry-run")
    assert "dry run, nothing imported" in out
    assert "no list versions yet" in cli.ok("lists", "versions")
    out = cli.ok("lists", "import", str(bad), "--skip-bad")
    assert "imported version 1" in out and "now 1 entry," in out
    r = subprocess.run(
        [*eir_command(), "lists", "import", "-", "--config", str(cli.config)],
        input="imei,status\n35209900176155,grey\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert r.returncode == 0 and "imported version 2" in r.stdout
    assert "stdin" in cli.ok("lists", "versions").splitlines()[1]


def test_versions_and_rollback(cli: Cli, tmp_path: Path) -> None:
    cli.ok("lists", "import", str(DEMO))
    second = tmp_path / "second.csv"
    second.write_text("imei,status\n35394206000002,white\n")
    cli.ok("lists", "import", str(second))
    rows = cli.ok("lists", "versions").strip().splitlines()
    assert rows[1].split()[:2] == ["*", "2"] and rows[1].split()[-1] == "second.csv"
    assert rows[2].split()[0] == "1" and rows[2].split()[-1] == "demo.csv"
    assert cli.ok("check", "35394206000002").startswith("white")
    assert cli.ok("lists", "rollback", "1").startswith("version 1 is active")
    assert cli.ok("check", "35394206000002").startswith("black")
    assert cli.ok("lists", "versions").strip().splitlines()[2].split()[:2] == ["*", "1"]
    r = cli("lists", "rollback", "99")
    assert r.returncode == 1 and "no list version 99" in r.stderr and "kept: 2, 1" in r.stderr


def test_export_round_trip_with_pairings_and_a_delta(cli: Cli, tmp_path: Path) -> None:
    cli.ok("lists", "import", str(DEMO))
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("imsi,imei,reason\n262011234567890,35394206000002,police test phone\n")
    r = cli("lists", "import", str(pairs))
    assert r.returncode == 1 and "--kind pairing" in r.stderr
    cli.ok("lists", "import", str(pairs), "--kind", "pairing")
    assert cli.ok("check", "35394206000002", "--imsi", "262011234567890").startswith("white  pairing:")
    delta = tmp_path / "delta.csv"
    delta.write_text("imei,status,reason,op\n35394206000001,,,remove\n35394206000009,black,stolen,add\n")
    out = cli.ok("lists", "import", str(delta))
    assert "delta equipment list" in out
    assert cli.ok("check", "35394206000001").startswith("white  default")
    assert cli.ok("check", "35394206000009").startswith("black  imei:")

    exported = tmp_path / "out.csv"
    cli.ok("lists", "export", str(exported))
    text = exported.read_text()
    assert text.startswith("imei,status,imsi,reason\n")
    assert "35394206000002,pairing,262011234567890,police test phone" in text
    stdout = cli.ok("lists", "export")
    assert sorted(stdout.splitlines()) == sorted(text.splitlines())
    # into a fresh store, and out again: the same lists
    other = Cli(tmp_path / "other")
    other.ok("lists", "import", str(exported))
    assert sorted(other.ok("lists", "export").splitlines()) == sorted(text.splitlines())
    assert other.ok("check", "35394206000002", "--imsi", "262011234567890").startswith("white  pairing:")


def test_configuration_and_store_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("store: {url: 'ftp://x'}\n")
    r = subprocess.run(
        [*eir_command(), "lists", "versions", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert r.returncode == 2 and "store.url" in r.stderr
    (tmp_path / "file").write_text("not a directory")
    cli = Cli(tmp_path, store={"url": f"sqlite:///{tmp_path / 'file' / 'eir.db'}"})
    r = cli("lists", "import", str(DEMO))
    assert r.returncode == 4 and "cannot open" in r.stderr
    r = cli("check", "35394206000002")  # a read-only command does not even try to create it
    assert r.returncode == 1 and f"no store at {tmp_path / 'file' / 'eir.db'}" in r.stderr
    r = Cli(tmp_path / "x")("lists", "import", str(tmp_path / "missing.csv"))
    assert r.returncode == 1 and "cannot read" in r.stderr


def test_a_delta_says_which_removals_matched_nothing(cli: Cli, tmp_path: Path) -> None:
    cli.ok("lists", "import", str(DEMO))
    delta = tmp_path / "delta.csv"
    delta.write_text("imei,status,op\n35394206000001,,remove\n35394206000099,,remove\n86700001,,remove\n")
    for extra in (["--dry-run"], []):
        r = cli("lists", "import", str(delta), "-q", *extra)
        assert r.returncode == 0, r.stderr
        assert "3 removals (2 matching nothing on the active lists)" in r.stdout
        assert r.stderr.strip() == (
            f"eir: {delta}: 2 of 3 removals match nothing on the active lists: 35394206000099, 86700001"
        )
    assert cli.ok("check", "35394206000001", "-q").startswith("white  default")  # the listed one went
    r = cli("lists", "import", str(delta), "-q")  # again: now none of them matches
    assert "3 removals (3 matching nothing" in r.stdout and "35394206000001" in r.stderr


def test_read_only_commands_never_create_a_store(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    store = tmp_path / "data" / "eir.db"
    for args in (
        ["check", "35394206000002"],
        ["lists", "versions"],
        ["lists", "export"],
        ["lists", "rollback", "1"],
    ):
        r = cli(*args)
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.splitlines() == [
            f"eir: config {cli.config}, store sqlite:///{store}",
            f"eir: no store at {store} (config {cli.config}); give --config, set EIR_CONFIG, "
            "or create it with `eir lists import FILE` or `eir serve`",
        ]
        assert not store.exists() and not store.parent.exists()
    cli.ok("lists", "import", str(DEMO))  # import creates it
    assert store.exists()
    r = cli("check", "35394206000002", "-q")
    assert (r.returncode, r.stderr) == (0, "") and r.stdout.startswith("black")
