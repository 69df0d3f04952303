"""Scenario files: the JSON Schema and the loader's errors, which name the file line of the problem."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from simulations.scenario import SCHEMA, ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "config" / "scenarios").rglob("*.yaml"))


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_the_conformance_set_is_there_and_valid() -> None:
    names = {p.stem for p in SHIPPED}
    assert {
        "s13-verdicts",
        "map-verdicts",
        "n5g-verdicts",
        "imeisv-precedence",
        "pairing-exception",
        "peer-restart",
        "map-fallback",
    } <= names
    for p in SHIPPED:
        sc = load_scenario(p)
        assert sc.steps, p


def _load(tmp_path: Path, text: str) -> Exception:
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(ScenarioError) as e:
        load_scenario(f)
    return e.value


GOOD_STEP = '  - s13: {imei: "35209900176148"}\n    expect: white\n'


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        # an unknown key in a step, on line 6
        (
            "name: x\nsteps:\n" + GOOD_STEP + '  - s13: {imei: "35209900176148"}\n    expekt: white\n',
            6,
            ["expekt"],
        ),
        # an unknown key inside the check, on line 3
        ('steps:\n  - s13:\n      imie: "35209900176148"\n    expect: white\n', 3, ["imie"]),
        # an unknown top-level key
        ("steps:\n" + GOOD_STEP + "target: x\n", 4, ["target"]),
        # an IMEI YAML reads as a number
        ("steps:\n  - s13: {imei: 35209900176148}\n    expect: white\n", 2, ["quote"]),
        # a bad expectation
        ("steps:\n" + GOOD_STEP + '  - map: {imei: "35209900176148"}\n    expect: blak\n', 5, ["blak"]),
        # two actions in one step
        ('steps:\n  - s13: {imei: "35209900176148"}\n    wait: 1\n    expect: white\n', 2, ["exactly one"]),
        # a check without an expectation
        ("steps:\n" + GOOD_STEP + "  - n5g: {pei: imei-490154203237518}\n", 4, ["expect"]),
        # expect on a wait step
        ("steps:\n  - wait: 1\n    expect: white\n", 3, ["expect", "wait"]),
        # a MAP version that does not exist
        ('steps:\n  - map: {imei: "35209900176148", version: 4}\n    expect: white\n', 2, ["version"]),
        # a key given twice
        ('steps:\n  - s13: {imei: "35209900176148"}\n    expect: white\n    expect: black\n', 4, ["twice"]),
        # a pairing without its IMSI
        ('steps:\n  - list: {set: {imei: "35209900176148", status: pairing}}\n', 2, ["imsi"]),
        # not YAML at all
        ('steps:\n  - s13: {imei: "1"\n', 3, ["not YAML"]),
    ],
)
def test_errors_name_the_line(tmp_path: Path, text: str, line: int, words: list[str]) -> None:
    msg = str(_load(tmp_path, text))
    assert msg.startswith(f"{tmp_path / 's.yaml'}:{line}: "), msg
    for w in words:
        assert w in msg, msg


def test_empty_and_missing_files(tmp_path: Path) -> None:
    assert "empty" in str(_load(tmp_path, ""))
    assert "steps" in str(_load(tmp_path, "name: x\n"))
    with pytest.raises(ScenarioError, match="No such file"):
        load_scenario(tmp_path / "nothing.yaml")


def test_steps_keep_their_lines_and_names(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "name: demo\ntimeout: 2\nsteps:\n"
        + GOOD_STEP
        + "  - name: wait a bit\n    wait: 0.1\n"
        + '  - map: {imeisv: "3539420600000301", version: 2}\n'
        + "    expect: [black, grey]\n    answered_version: 2\n"
    )
    sc = load_scenario(f)
    assert sc.name == "demo" and sc.timeout == 2
    assert [(s.index, s.line, s.action) for s in sc.steps] == [(1, 4, "s13"), (2, 6, "wait"), (3, 8, "map")]
    assert sc.steps[0].name == "s13 35209900176148"
    assert sc.steps[1].name == "wait a bit"
    assert sc.steps[2].expected == ["black", "grey"]
