"""protocols/ is sans-IO: it never imports I/O, clocks, the environment, logging or the upper layers;
nothing that ships imports the reference codec (pycrate)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"
REFERENCE_CODEC = {
    # pycrate (the `pycrate` distribution's top-level packages): the independent reference codec of
    # the tests and benchmarks (testkit/tcap_ref.py), a dev dependency only — nothing that ships
    # may need it, and the hand-written codecs must not lean on it.
    "pycrate",
    "pycrate_asn1c",
    "pycrate_asn1dir",
    "pycrate_asn1rt",
    "pycrate_core",
    "pycrate_corenet",
    "pycrate_crypto",
    "pycrate_csn1",
    "pycrate_csn1dir",
    "pycrate_diameter",
    "pycrate_ether",
    "pycrate_gmr1",
    "pycrate_gmr1_csn1",
    "pycrate_media",
    "pycrate_mobile",
    "pycrate_osmo",
    "pycrate_sys",
}
FORBIDDEN = REFERENCE_CODEC | {
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
    ("eir", {"simulations", "testkit", "tests", "bench"} | REFERENCE_CODEC),
    ("netio", {"eir", "simulations", "protocols", "testkit", "tests", "bench"} | REFERENCE_CODEC),
    ("simulations", {"testkit", "tests", "bench"} | REFERENCE_CODEC),
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


# The one exception: the simulated NRF is a *server* the EIR registers with, built on the EIR's
# reusable HTTP server layer (issue 8 asks for that reuse). It cannot hide an EIR bug by symmetry:
# the EIR's side of that conversation is httpx, and the sim NRF's server side is also exercised by
# httpx and curl in the tests.
_SERVER_LAYER_USERS = {("nrf.py", "eir.servers._http")}


def test_simulations_use_no_server_internals() -> None:
    """The simulated peers talk to the EIR over the wire only; shared socket code lives in netio."""
    for path in sorted((ROOT / "simulations").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if (path.name, node.module) in _SERVER_LAYER_USERS:
                    continue
                assert not node.module.startswith("eir.servers"), f"{path.name} imports {node.module}"
