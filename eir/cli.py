"""The ``eir`` command. Subcommands are registered by the modules that implement them:

* ``serve``                      eir.app
* ``check``, ``lists …``         eir.cli_lists
* ``sim mme``                    simulations.mme
* ``sim msc``                    simulations.msc
* ``replay``                     simulations.replay

Each ``register(subparsers)`` adds its parsers with ``set_defaults(func=callable(args) -> int)``.
Exit codes: 0 ok, 1 runtime failure, 2 usage / configuration error, 3 a port could not be bound,
4 the store could not be opened.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_BIND = 3
EXIT_STORE = 4

_MODULES = ("eir.app", "eir.cli_lists", "simulations.replay")
_SIM_MODULES = ("simulations.mme", "simulations.msc")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eir", description="Equipment Identity Register emulator")
    parser.add_argument("--version", action="version", version=f"eir-emulator {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _MODULES:
        importlib.import_module(name).register(sub)
    sim = sub.add_parser("sim", help="simulated network elements (MME over S13, MSC/SGSN over MAP)")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="ELEMENT")
    for name in _SIM_MODULES:
        importlib.import_module(name).register(sim_sub)
    return parser


def _version() -> str:
    from eir import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_CONFIG
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
