"""The fuzz targets (fuzz/) stay runnable: each keeps its invariant on its seeds and on a few hundred
mutations of them, and the runner reports a failing input instead of losing it. (The long runs are
``make fuzz`` / ``make fuzz-smoke``; this keeps the harnesses from rotting between them.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuzz import __main__ as runner
from fuzz.targets import TARGETS, seeds


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_keeps_its_invariant_on_seeds_and_mutations(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    found = list(seeds(name))
    assert found, "every target has seeds"
    for s in found:
        TARGETS[name](s)
    res = runner._run_builtin(name, runs=300, seconds=None, seed=7)
    assert res["ok"], res.get("failure")
    assert res["inputs"] == 300


def test_runner_saves_the_failing_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def brittle(data: bytes) -> None:
        assert b"\x00\x00" not in data, "two zero octets"

    monkeypatch.setattr(runner, "ROOT", tmp_path)
    monkeypatch.setitem(TARGETS, "diameter_ecr", brittle)  # its seeds hold zero runs
    res = runner._run_builtin("diameter_ecr", runs=50, seconds=None, seed=1)
    assert not res["ok"] and "two zero octets" in res["failure"]
    assert b"\x00\x00" in Path(res["artifact"]).read_bytes()


def test_main_writes_results_and_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    rc = runner.main(["run", "n5g_request", "tcap_begin", "--engine", "builtin", "--runs", "100"])
    assert rc == 0
    out = json.loads((tmp_path / "results.json").read_text())
    assert [t["target"] for t in out["targets"]] == ["n5g_request", "tcap_begin"]
    assert all(t["ok"] and t["inputs"] == 100 for t in out["targets"])


def test_sigtran_stack_target_takes_tcap_longer_than_a_udt() -> None:
    """Found by the first CI fuzz smoke: a fuzzed TCAP of more than 255 octets made the harness's
    own client refuse to encode the UDT (a harness error, not the EIR's); the target cuts it."""
    from fuzz.targets import sigtran_stack

    sigtran_stack(b"\x02" + b"\x62\x81\xff" + b"\xab" * 400)
