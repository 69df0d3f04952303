"""README.md's "Try it" section, run as written: ``eir serve`` started the way ``make run`` starts it
(the Makefile's recipe, in a copy of the checkout's config/), then every ``$`` command of the section in
order, each output compared with the lines the README shows under it (``…`` matches anything).

Only what a shared test machine forces is changed: the EIR listens on free ports (``EIR_*_LISTEN``),
and the README's fixed addresses in the commands are replaced by those."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.eirproc import ROOT, clean_env, first_address, wait_ready

README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent


def try_it() -> list[tuple[str, list[str]]]:
    """The section's ``$`` commands, each with the output lines shown under it."""
    section = README[README.index("## Try it\n") :]
    section = section[: section.index("\n## ")]
    block = re.search(r"```console\n(.*?)```", section, re.S)
    assert block is not None, "README.md's Try it section has no ```console block"
    steps: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before the first command: {line!r}"
            steps[-1][1].append(line)
    return steps


def make_run_command() -> list[str]:
    """What ``make run`` runs, from the Makefile: ``$(BIN)/eir serve --config $(CONFIG)``."""
    makefile = (ROOT / "Makefile").read_text()
    config = re.search(r"^CONFIG \?= (\S+)$", makefile, re.M)
    recipe = re.search(r"^run: .*\n\t(.+)$", makefile, re.M)
    assert config and recipe, "Makefile: no CONFIG ?= or run: recipe"
    line = recipe.group(1).replace("$(BIN)", str(BIN)).replace("$(CONFIG)", config.group(1))
    return line.split()


def matches(expected: list[str], actual: list[str]) -> bool:
    if len(expected) != len(actual):
        return False
    for e, a in zip(expected, actual, strict=True):
        pattern = ".*".join(re.escape(part) for part in e.split("…"))
        if re.fullmatch(pattern, a) is None:
            return False
    return True


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], dict[str, str]]]:
    """A checkout as ``make run`` sees it (config/ copied, no data/), the EIR running in it, the
    environment for the commands, and the README's addresses mapped to the running ones."""
    project = tmp_path / "eir-emulator"
    shutil.copytree(ROOT / "config", project / "config")
    env = clean_env({"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    serve_env = dict(
        env,
        EIR_DIAMETER_LISTEN="127.0.0.1:0",
        EIR_DIAMETER_TRANSPORTS="tcp",
        EIR_M3UA_LISTEN="127.0.0.1:0",
        EIR_M3UA_TRANSPORTS="tcp",
        EIR_METRICS_LISTEN="127.0.0.1:0",
    )
    ready_path = tmp_path / "ready.json"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*make_run_command(), "--ready-file", str(ready_path)],
            cwd=project,
            env=serve_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = wait_ready(proc, ready_path, 30, lambda: log_path.read_text(errors="replace"))
        mh, mp = ready["metrics"]
        addresses = {
            "127.0.0.1:3868": first_address(ready, "diameter"),
            "127.0.0.1:2905": first_address(ready, "m3ua"),
            "127.0.0.1:9464": f"{mh}:{mp}",
        }
        # README: "`make run` starts the EIR with config/eir.yaml: SQLite store under data/, the demo
        # lists of config/lists/demo.csv imported into an empty store"
        first = log_path.read_text().splitlines()[0]
        assert (
            first
            == f"eir: config {project / 'config' / 'eir.yaml'}, store sqlite:///{project / 'data' / 'eir.db'}"
        )
        assert (project / "data" / "eir.db").exists()
        yield project, env, addresses
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, log_path.read_text(errors="replace")


def test_readme_try_it_as_written(checkout: tuple[Path, dict[str, str], dict[str, str]]) -> None:
    project, env, addresses = checkout
    steps = try_it()
    assert len(steps) >= 5, steps
    env = dict(env, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    for command, expected in steps:
        line = command.replace(".venv/bin/eir", str(BIN / "eir"))
        for readme_address, actual_address in addresses.items():
            line = line.replace(readme_address, actual_address)
        r = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )
        actual = r.stdout.rstrip("\n").splitlines()
        assert r.returncode == 0, f"$ {command}\n{r.stdout}"
        assert matches(expected, actual), (
            f"$ {command}\nREADME shows:\n"
            + "\n".join(expected)
            + ("\nbut it printed:\n" + "\n".join(actual))
        )


def test_the_matcher_can_say_no() -> None:
    assert matches(["a […] b"], ["a [0.61 ms] b"])
    assert not matches(["a […] b"], ["a [0.61 ms] c"])
    assert not matches(["x"], ["x", "y"])
