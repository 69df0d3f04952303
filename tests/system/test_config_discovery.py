"""``eir`` finds its configuration the way users expect, from any directory: ``--config``, then
``EIR_CONFIG``, then ``./config/eir.yaml``, then the user's ``~/.config/eir/eir.yaml``; the shipped
config's relative store path means the checkout's ``data/eir.db`` wherever the command runs, and the
demo's black handset stays black from another directory (it used to come back white, from a new empty
store made in the working directory)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from testkit.eirproc import ROOT, clean_env, eir_command

BLACK = "35394206000002"  # config/lists/demo.csv


class Where:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.project = tmp / "eir-emulator"
        shutil.copytree(ROOT / "config", self.project / "config")
        self.elsewhere = tmp / "elsewhere"
        self.elsewhere.mkdir()
        self.config = self.project / "config" / "eir.yaml"
        self.store = self.project / "data" / "eir.db"

    def run(self, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        e = clean_env({"HOME": str(self.tmp / "home"), **env})
        e.pop("XDG_CONFIG_HOME", None)
        e.update({k: v for k, v in env.items()})
        return subprocess.run(
            [*eir_command(), *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=e
        )


@pytest.fixture
def where(tmp_path: Path) -> Where:
    w = Where(tmp_path)
    r = w.run(w.project, "lists", "import", "config/lists/demo.csv")  # in the checkout: ./config/eir.yaml
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == f"eir: config {w.config}, store sqlite:///{w.store}"
    assert w.store.exists()
    return w


def test_in_the_checkout_and_from_a_subdirectory_of_it_by_name(where: Where) -> None:
    r = where.run(where.project, "check", BLACK)
    assert r.returncode == 0 and r.stdout.startswith("black"), r.stderr
    sub = where.project / "config" / "lists"
    r = where.run(sub, "check", BLACK, "--config", "../eir.yaml")  # relative to the working directory
    assert r.returncode == 0 and r.stdout.startswith("black"), r.stderr
    assert r.stderr == f"eir: config {where.config}, store sqlite:///{where.store}\n"


def test_from_another_directory_with_eir_config(where: Where) -> None:
    r = where.run(where.elsewhere, "check", BLACK, EIR_CONFIG=str(where.config))
    assert r.returncode == 0 and r.stdout.startswith("black  imei:black:35394206000002"), r.stderr
    assert r.stderr == f"eir: config {where.config}, store sqlite:///{where.store}\n"
    r = where.run(where.elsewhere, "lists", "versions", "-q", EIR_CONFIG=str(where.config))
    assert r.returncode == 0 and r.stderr == "" and "demo.csv" in r.stdout
    assert list(where.elsewhere.iterdir()) == []  # nothing made where the command ran


def test_the_user_config(where: Where) -> None:
    user = where.tmp / "home" / ".config" / "eir" / "eir.yaml"
    user.parent.mkdir(parents=True)
    user.write_text(f"store: {{url: 'sqlite:///{where.store}'}}\n")
    r = where.run(where.elsewhere, "check", BLACK)
    assert r.returncode == 0 and r.stdout.startswith("black"), r.stderr
    assert r.stderr == f"eir: config {user}, store sqlite:///{where.store}\n"
    xdg = where.tmp / "xdg" / "eir" / "eir.yaml"
    xdg.parent.mkdir(parents=True)
    xdg.write_text("store: {url: 'sqlite:///lists.db'}\n")  # relative: next to the file
    r = where.run(where.elsewhere, "check", BLACK, XDG_CONFIG_HOME=str(where.tmp / "xdg"))
    assert r.returncode == 1 and f"no store at {xdg.parent / 'lists.db'}" in r.stderr
    assert not (xdg.parent / "lists.db").exists()


def test_no_config_anywhere_is_a_clear_error_not_a_new_empty_store(where: Where) -> None:
    r = where.run(where.elsewhere, "check", BLACK)
    assert r.returncode == 1 and r.stdout == ""
    store = where.elsewhere / "data" / "eir.db"
    assert r.stderr.splitlines() == [
        f"eir: config none found (built-in defaults), store sqlite:///{store}",
        f"eir: no store at {store} (no config file found, built-in defaults); give --config, set "
        "EIR_CONFIG, or create it with `eir lists import FILE` or `eir serve`",
    ]
    assert list(where.elsewhere.iterdir()) == []
