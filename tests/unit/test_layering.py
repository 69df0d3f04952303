"""protocols/ is sans-IO: it never imports I/O, clocks, the environment, logging or the upper layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"
FORBIDDEN = {
    "asyncio",
    "socket",
    "selectors",
    "threading",
    "time",
    "os",
    "logging",
    "structlog",
    "subprocess",
    "signal",
    "eir",
    "simulations",
    "uvloop",
    "prometheus_client",
    "aiomqtt",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(PROTOCOLS.rglob("*.py")), ids=lambda p: str(p.relative_to(PROTOCOLS)))
def test_protocols_module_is_sans_io(path: Path) -> None:
    bad = _imports(path) & FORBIDDEN
    assert not bad, f"{path.name} imports {sorted(bad)}"
