"""Every user mistake the ``eir`` command can meet ends in one line on stderr and a distinct exit code —
2 for a usage or configuration error, 1 for an environmental one (a missing file or store, a refused
connection) — never in a traceback. Each case is a real ``eir`` subprocess."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.eirproc import ROOT, clean_env, eir_command

BLACK = "35394206000002"  # config/lists/demo.csv

# (arguments, exit code, a fragment of the one stderr line). {cfg}: a valid config whose store holds
# the demo lists; {nostore}: a config whose SQLite file does not exist; {tmp}: the test's directory.
CASES: list[tuple[list[str], int, str]] = [
    # eir check
    (["check", "1234"], 2, "'1234' is not an IMEI: 4 digits"),
    (["check", "35-394206-000002-3"], 2, "wrong check digit 3 (the Luhn digit of 35394206000002 is 9"),
    (["check", "3539420600000x"], 2, "is not an IMEI (digits only"),
    (["check", ""], 2, "is not an IMEI"),
    (["check", BLACK, "--imsi", "abc"], 2, "argument --imsi: 'abc' is not an IMSI"),
    (["check", BLACK, "--sv", "1"], 2, "argument --sv/--software-version: '1' is not a software version"),
    (["check"], 2, "the following arguments are required: imei"),
    (["check", BLACK, "--config", "{tmp}/missing.yaml"], 2, "missing.yaml: cannot read"),
    (["check", BLACK, "--config", "{tmp}/bad.yaml"], 2, "not valid YAML at line 2"),
    (["check", BLACK, "--config", "{tmp}/wrongkey.yaml"], 2, "diameter.listen[0]: expected HOST:PORT"),
    (["check", BLACK, "-q", "--config", "{nostore}"], 1, "no store at "),
    # eir lists
    (["lists", "versions", "-q", "--config", "{nostore}"], 1, "no store at "),
    (["lists", "export", "-q", "--config", "{nostore}"], 1, "no store at "),
    (["lists", "rollback", "1", "-q", "--config", "{nostore}"], 1, "no store at "),
    (
        ["lists", "export", "/missing/dir/x.csv", "-q", "--config", "{cfg}"],
        1,
        "cannot write /missing/dir/x.csv",
    ),
    (["lists", "export", "--kind", "bogus", "--config", "{cfg}"], 2, "argument --kind: invalid choice"),
    (["lists", "import", "{tmp}/missing.csv", "-q", "--config", "{cfg}"], 1, "missing.csv: cannot read"),
    (["lists", "import", "{tmp}", "-q", "--config", "{cfg}"], 1, "cannot read (Is a directory)"),
    (["lists", "import", "x.csv", "--kind", "bogus"], 2, "argument --kind: invalid choice"),
    (["lists", "rollback", "abc"], 2, "argument version: 'abc' is not an integer"),
    (["lists", "rollback", "0"], 2, "argument version: 0 is out of range"),
    (["lists", "rollback", "99", "-q", "--config", "{cfg}"], 1, "no list version 99"),
    # eir serve
    (["serve", "--workers", "0"], 2, "argument --workers: 0 is out of range"),
    (["serve", "--log-level", "loud"], 2, "argument --log-level: invalid choice"),
    (["serve", "--config", "{tmp}/missing.yaml"], 2, "missing.yaml: cannot read"),
    # eir sim mme / msc
    (
        ["sim", "mme", "--connect", "127.0.0.1", "--imei", BLACK],
        2,
        "argument --connect: '127.0.0.1': expected HOST:PORT",
    ),
    (
        ["sim", "msc", "--connect", "127.0.0.1", "--imei", BLACK],
        2,
        "argument --connect: '127.0.0.1': expected HOST:PORT",
    ),
    (["sim", "mme", "--connect", "127.0.0.1:0", "--imei", BLACK], 2, "port 0 cannot be connected to"),
    (
        ["sim", "mme", "--connect", "127.0.0.1:1", "--imei", "1234"],
        2,
        "argument --imei: '1234' is not an IMEI",
    ),
    (
        ["sim", "msc", "--connect", "127.0.0.1:1", "--imei", "1234"],
        2,
        "argument --imei: '1234' is not an IMEI",
    ),
    (
        ["sim", "msc", "--connect", "127.0.0.1:1", "--imei", "abc", "--allow-bad-imei"],
        2,
        "MAP carries 14 to 16 digits",
    ),
    (
        ["sim", "mme", "--connect", "127.0.0.1:1", "--imei", BLACK, "--count", "0"],
        2,
        "argument --count: 0 is out of range",
    ),
    (
        ["sim", "msc", "--connect", "127.0.0.1:1", "--imei", BLACK, "--count", "0"],
        2,
        "argument --count: 0 is out of range",
    ),
    (
        ["sim", "mme", "--connect", "127.0.0.1:1", "--imei", BLACK, "--window", "0"],
        2,
        "argument --window: 0 is out of range",
    ),
    (
        ["sim", "msc", "--connect", "127.0.0.1:1", "--imei", BLACK, "--window", "0"],
        2,
        "argument --window: 0 is out of range",
    ),
    (
        ["sim", "mme", "--connect", "127.0.0.1:1", "--imei", BLACK, "--timeout", "0"],
        2,
        "argument --timeout: 0 must be",
    ),
    (
        ["sim", "mme", "--connect", "127.0.0.1:1", "--imei", BLACK, "--imsi", "abc"],
        2,
        "argument --imsi: 'abc'",
    ),
    (["sim", "mme", "--connect", "127.0.0.1:1", "--imei", BLACK, "--sv", "abc"], 2, "argument --sv: 'abc'"),
    (
        ["sim", "msc", "--connect", "127.0.0.1:1", "--imei", BLACK, "--opc", "-1"],
        2,
        "argument --opc: -1 is out of range",
    ),
    (["sim", "msc", "--connect", "127.0.0.1:1", "--imei", BLACK, "--gt", "abc"], 2, "argument --gt: 'abc'"),
    (
        ["sim", "msc", "--connect", "127.0.0.1:1", "--imei", BLACK, "--map-version", "4"],
        2,
        "argument --map-version",
    ),
    (["sim", "mme", "--imei", BLACK, "--config", "{tmp}/missing.yaml"], 2, "missing.yaml: cannot read"),
    (["sim", "mme", "--connect", "127.0.0.1:1", "--imei", BLACK], 1, "eir sim mme: 127.0.0.1:1: "),
    (["sim", "msc", "--connect", "127.0.0.1:1", "--imei", BLACK], 1, "eir sim msc: 127.0.0.1:1: "),
    # the command itself
    (["frobnicate"], 2, "argument COMMAND: invalid choice: 'frobnicate'"),
    (["check", BLACK, "--no-such-option"], 2, "unrecognized arguments: --no-such-option"),
    # commands added with the admin API, scenarios, sightings and the NRF
    (["scenario", "run", "{tmp}/nonexistent.yaml"], 2, "nonexistent.yaml: No such file or directory"),
    (["admin", "check", "12"], 2, "'12' is not an IMEI: 2 digits"),
    (["faults", "set", "--kind", "bogus"], 2, "invalid choice: 'bogus'"),
    (["sightings", "clear", "notanimei"], 2, "'notanimei' is not an IMEI"),
    (["sim", "nrf", "--listen", "bad"], 2, "--listen: expected HOST:PORT"),
    # duplicate_mk1 flags
    (["duplicates", "show", "12x"], 2, "'12x' is not an IMEI"),
    (["duplicates", "bogus"], 2, "invalid choice: 'bogus'"),
    (["duplicates", "clear"], 2, "the following arguments are required: imei"),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("mistakes")
    store = tmp / "data" / "eir.db"
    (tmp / "eir.yaml").write_text(yaml.safe_dump({"store": {"url": f"sqlite:///{store}"}}))
    (tmp / "nostore.yaml").write_text(
        yaml.safe_dump({"store": {"url": f"sqlite:///{tmp / 'none' / 'eir.db'}"}})
    )
    (tmp / "bad.yaml").write_text("diameter: [1\n")
    (tmp / "wrongkey.yaml").write_text("diameter: {listen: ['3868']}\n")
    run(
        tmp,
        [
            "lists",
            "import",
            str(ROOT / "config" / "lists" / "demo.csv"),
            "-q",
            "--config",
            str(tmp / "eir.yaml"),
        ],
    )
    assert store.exists()
    return tmp


def run(tmp: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    # HOME and cwd in the test's directory: no user configuration and no ./config/eir.yaml is found
    env = clean_env({"HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp / "xdg")})
    return subprocess.run(
        [*eir_command(), *args], capture_output=True, text=True, timeout=60, cwd=tmp, env=env
    )


@pytest.mark.parametrize(("args", "code", "message"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_a_mistake_is_one_line_and_an_exit_code(
    workdir: Path, args: list[str], code: int, message: str
) -> None:
    subst = {"cfg": str(workdir / "eir.yaml"), "nostore": str(workdir / "nostore.yaml"), "tmp": str(workdir)}
    r = run(workdir, [a.format(**subst) for a in args])
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    assert r.returncode == code, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert message.format(**subst) in lines[0]
    assert lines[0].startswith("eir")


def test_read_only_commands_left_no_store_behind(workdir: Path) -> None:
    """The cases above ran check / versions / export / rollback against a missing store: none made one."""
    assert not (workdir / "none").exists()


def test_the_sims_send_a_malformed_imei_only_when_told(eir_factory: Any) -> None:
    """Both sims refuse a malformed IMEI; with --allow-bad-imei they send it and print the EIR's answer."""
    eir = eir_factory({"policy": {"bad_check_digit": "malformed"}})  # (the default, ignore, looks it up)
    dh, dp = eir.diameter
    mh, mp = eir.m3ua
    mme = [*eir_command(), "sim", "mme", "--connect", f"{dh}:{dp}"]
    msc = [*eir_command(), "sim", "msc", "--connect", f"{mh}:{mp}"]
    for cmd, imei in ((mme, "1234"), (msc, "353942060000023")):
        r = subprocess.run([*cmd, "--imei", imei], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and ("is not an IMEI" in r.stderr or "wrong check digit" in r.stderr), (
            r.stderr
        )
    r = subprocess.run(
        [*mme, "--imei", "1234", "--allow-bad-imei"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stdout.startswith("1234: error 5004"), (
        r.stderr
    )  # DIAMETER_INVALID_AVP_VALUE
    r = subprocess.run(
        [*msc, "--imei", "353942060000023", "--allow-bad-imei"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stdout.startswith("353942060000023: black"), r.stderr  # policy.malformed


def test_a_peer_that_never_answers_is_one_line(workdir: Path) -> None:
    """A sim pointed at something that accepts the connection but never answers (a wrong port, a
    firewall): a timeout, said in one line with exit 1."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        for element in ("mme", "msc"):
            args = ["sim", element, "--connect", f"127.0.0.1:{port}", "--imei", BLACK, "--timeout", "0.5"]
            r = run(workdir, args)
            assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"eir sim {element}: 127.0.0.1:{port}: "), r.stderr
            assert "no answer" in lines[0]
