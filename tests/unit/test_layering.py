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


ROOT = PROTOCOLS.parent
UPWARD = [
    # (package, what it must never import): the layers of DESIGN.md plus the test support split
    ("eir", {"simulations", "testkit", "tests", "bench"}),
    ("netio", {"eir", "simulations", "protocols", "testkit", "tests", "bench"}),
    ("simulations", {"testkit", "tests", "bench"}),
    ("testkit", {"tests", "bench"}),
    ("bench", {"tests"}),
]


@pytest.mark.parametrize(
    ("path", "forbidden"),
    [(p, bad) for pkg, bad in UPWARD for p in sorted((ROOT / pkg).rglob("*.py"))],
    ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else "",
)
def test_no_upward_or_test_imports(path: Path, forbidden: set[str]) -> None:
    bad = _imports(path) & forbidden
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_simulations_use_no_server_internals() -> None:
    """The simulated peers talk to the EIR over the wire only; shared socket code lives in netio."""
    for path in sorted((ROOT / "simulations").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("eir.servers"), f"{path.name} imports {node.module}"
