"""README.md's CLI table lists every option the ``eir`` parsers have, and no option they do not have."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from eir.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CLI_SECTION = README[README.index("## The CLI\n") : README.index("\n## ", README.index("## The CLI\n") + 5)]
COMMON = {"--config", "-c", "-q", "--quiet"}
"""Options every command has: the README names them once, in the sentence under the table."""


def _commands(
    parser: argparse.ArgumentParser, path: str = "eir"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for sub in subs:
        for name, p in sub.choices.items():
            yield from _commands(p, f"{path} {name}")


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings if o not in ("-h", "--help")}


COMMANDS = dict(_commands(build_parser()))


def _row(command: str) -> str:
    rows = [
        ln
        for ln in CLI_SECTION.splitlines()
        if ln.startswith(f"| `{command} ") or ln.startswith(f"| `{command}`")
    ]
    assert len(rows) == 1, f"README.md: expected one CLI table row for {command!r}, found {len(rows)}"
    return rows[0]


def _mentions(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def test_the_walk_finds_every_command() -> None:
    assert set(COMMANDS) == {
        "eir serve",
        "eir check",
        "eir lists import",
        "eir lists export",
        "eir lists observations",
        "eir lists sync",
        "eir lists versions",
        "eir lists rollback",
        "eir sightings clear",
        "eir duplicates list",
        "eir duplicates show",
        "eir duplicates clear",
        "eir sightings show",
        "eir sim mme",
        "eir sim msc",
        "eir sim amf",
        "eir sim nrf",
        "eir sim handle",
        "eir replay",
        "eir scenario run",
        *(
            f"eir admin {c}"
            for c in (
                "check",
                "lists add",
                "lists remove",
                "lists import",
                "lists versions",
                "lists rollback",
                "faults set",
                "faults clear",
                "faults list",
                "peers",
                "sightings",
                "config",
            )
        ),
        "eir faults set",
        "eir faults clear",
        "eir faults list",
    }


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_is_in_the_readme_row_of_its_command(command: str) -> None:
    row = _row(command)
    options = _options(COMMANDS[command])
    # replay reads a capture and talks to a target, sim nrf is a stand-alone NRF: no config, no store
    if command not in ("eir replay", "eir sim nrf"):
        assert options >= COMMON, f"{command} lacks the common options"
    missing = sorted(o for o in options - COMMON if not _mentions(row, o))
    assert not missing, f"README.md's row for {command} does not mention {missing}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_readme_row_names_no_option_the_command_lacks(command: str) -> None:
    synopsis = _row(command).split("`")[1]
    named = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", synopsis))
    unknown = sorted(named - _options(COMMANDS[command]))
    assert not unknown, f"README.md's {command} synopsis names {unknown}, which the parser does not have"


def test_common_and_top_level_options_are_named_once() -> None:
    line = next(ln for ln in CLI_SECTION.splitlines() if ln.startswith("Every command takes"))
    for option in sorted(COMMON) + sorted(_options(build_parser())):
        assert _mentions(line, option), f"README.md does not mention {option}"
