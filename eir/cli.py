"""The ``eir`` command. Subcommands are registered by the modules that implement them:

* ``serve``                      eir.app
* ``check``, ``lists …``         eir.cli_lists
* ``sightings clear|show``       eir.cli_sightings
* ``duplicates list|show|clear``  eir.cli_duplicates
* ``sim mme``                    simulations.mme
* ``sim msc``                    simulations.msc
* ``sim amf``                    simulations.amf
* ``sim nrf``                    simulations.nrf
* ``sim handle``                 simulations.handle
* ``replay``                     simulations.replay
* ``scenario run``               simulations.scenario
* ``admin …``, ``faults …``      eir.cli_remote (through a running server's admin API)

Each ``register(subparsers)`` adds its parsers with ``set_defaults(func=callable(args) -> int)``.
Exit codes: 0 ok, 1 runtime failure, 2 usage / configuration error, 3 a port could not be bound,
4 the store could not be opened.

A user mistake is never a traceback: a bad argument is one line on stderr and exit 2
(:class:`Parser` and the argument types below, shared by every subcommand), an environmental error
(a missing file, a refused connection) one line and exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_BIND = 3
EXIT_STORE = 4

_MODULES = (
    "eir.app",
    "eir.cli_lists",
    "eir.cli_remote",
    "eir.cli_sightings",
    "eir.cli_duplicates",
    "simulations.replay",
    "simulations.scenario",
)
_SIM_MODULES = (
    "simulations.mme",
    "simulations.msc",
    "simulations.amf",
    "simulations.nrf",
    "simulations.handle",
)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (argparse prints the whole usage first,
    which for ``eir sim msc`` is five lines before the one that matters)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --- argument types: each raises ArgumentTypeError, which Parser turns into one line + exit 2 -------


def imei_text(value: str) -> str:
    """An IMEI as people write it: 14 digits, 15 with the Luhn check digit (or the spare digit 0 the
    network sends), or 16 (IMEISV); dashes and spaces of a handset label (``35-394206-000002-9``)
    are dropped."""
    digits = value.replace("-", "").replace(" ", "")
    if not (digits.isascii() and digits.isdigit()):
        raise argparse.ArgumentTypeError(f"{value!r} is not an IMEI (digits only, 14 to 16 of them)")
    if len(digits) not in (14, 15, 16):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an IMEI: {len(digits)} digits, expected 14 (IMEI), 15 (IMEI + check digit) "
            "or 16 (IMEISV)"
        )
    if len(digits) == 15:
        from protocols.imei import check_digit_ok, luhn_check_digit

        if not check_digit_ok(digits):
            raise argparse.ArgumentTypeError(
                f"{value!r}: wrong check digit {digits[14]} (the Luhn digit of {digits[:14]} is "
                f"{luhn_check_digit(digits)}; the spare digit 0 is accepted too)"
            )
    return digits


def imsi_text(value: str) -> str:
    """An IMSI: 5 to 15 digits (the same rule as the list files)."""
    v = value.strip()
    if not (v.isascii() and v.isdigit() and 5 <= len(v) <= 15):
        raise argparse.ArgumentTypeError(f"{value!r} is not an IMSI (5 to 15 digits)")
    return v


def software_version(value: str) -> str:
    v = value.strip()
    if not (v.isascii() and v.isdigit() and len(v) == 2):
        raise argparse.ArgumentTypeError(f"{value!r} is not a software version (2 digits)")
    return v


def digits_text(value: str) -> str:
    """Digits only (a global title)."""
    v = value.strip()
    if not (v.isascii() and v.isdigit() and 1 <= len(v) <= 15):
        raise argparse.ArgumentTypeError(f"{value!r} is not a global title (1 to 15 digits)")
    return v


def host_port(value: str) -> str:
    """``HOST:PORT`` or ``[v6]:PORT`` with a port 1..65535 (an address to connect to)."""
    from eir.config import ConfigError, parse_hostport

    try:
        _host, port = parse_hostport(value, "address")
    except ConfigError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected HOST:PORT (e.g. 127.0.0.1:3868) or [IPv6]:PORT"
        ) from None
    if port == 0:
        raise argparse.ArgumentTypeError(f"{value!r}: port 0 cannot be connected to")
    return value.strip()


def int_range(low: int, high: int | None = None) -> Any:
    """An integer type for argparse, ``low <= n`` (``<= high``)."""

    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
        if n < low or (high is not None and n > high):
            bound = f"{low}..{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range ({bound})")
        return n

    parse.__name__ = "integer"
    return parse


def positive_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not x > 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a positive number of seconds")
    return x


def add_config_options(p: argparse.ArgumentParser, what: str = "YAML config file") -> None:
    """``--config``/``-c`` and ``-q``/``--quiet``, the same on every subcommand."""
    p.add_argument(
        "--config",
        "-c",
        default=None,
        metavar="PATH",
        help=f"{what} (default: $EIR_CONFIG, ./config/eir.yaml, ~/.config/eir/eir.yaml, /etc/eir/eir.yaml)",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="do not print which config file and store are used"
    )


def load_cli_config(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Any:
    """Find and load the configuration for a command, and say on stderr which file and store it used
    (one line; ``-q`` silences it). Sets ``args.config`` to the file found, so that what a command
    starts (``serve --workers``) uses the same one. Raises :class:`eir.config.ConfigError`."""
    from eir.config import describe_store, find_config, load_config

    path = find_config(args.config)
    config = load_config(path, overrides=overrides)
    args.config = str(path) if path is not None else None
    if not getattr(args, "quiet", False):
        where = str(path) if path is not None else "none found (built-in defaults)"
        print(f"eir: config {where}, store {describe_store(config)}", file=sys.stderr)
    return config


def help_command(parser: argparse.ArgumentParser) -> Any:
    """The ``func`` of a command group given without its subcommand (``eir lists``): help, exit 2."""

    def show(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_CONFIG

    return show


def usage_error(prog: str, message: str) -> int:
    """A usage error found after parsing: one line on stderr, exit 2 (as :class:`Parser` does)."""
    print(f"{prog}: error: {message} (see {prog} --help)", file=sys.stderr)
    return EXIT_CONFIG


def sim_imei(
    prog: str, value: str, allow_bad: bool, *, wire_digits: tuple[int, int] | None = None
) -> str | None:
    """The ``--imei`` of a simulated element: a valid IMEI (:func:`imei_text`) unless ``allow_bad``
    (the user sends malformed ones on purpose, to see the EIR's error); then anything the wire can
    carry: ``wire_digits`` (min, max) digits for MAP's 8-octet TBCD-STRING, any text for S13's
    UTF8String. None after a usage error was printed."""
    if not allow_bad:
        try:
            return imei_text(value)
        except argparse.ArgumentTypeError as e:
            usage_error(prog, f"argument --imei: {e}; --allow-bad-imei sends it as given")
            return None
    if wire_digits is not None:
        low, high = wire_digits
        if not (value.isascii() and value.isdigit() and low <= len(value) <= high):
            usage_error(
                prog, f"argument --imei: {value!r}: MAP carries {low} to {high} digits, even for a bad IMEI"
            )
            return None
    if not value:
        usage_error(prog, "argument --imei: empty")
        return None
    return value


def default_address(args: argparse.Namespace, key: str, fallback: str) -> str | None:
    """Where a simulated element connects: ``--connect``, else the first ``diameter.listen`` /
    ``m3ua.listen`` address (``key``) of the configuration found (a wildcard host becomes loopback),
    else ``fallback``. Says which on stderr unless ``-q``. None after printing a configuration error."""
    if args.connect:
        return str(args.connect)
    from eir.config import ConfigError, find_config, load_config, parse_hostport

    try:
        path = find_config(args.config)
        cfg = load_config(path)
    except ConfigError as e:
        print(f"eir: configuration error: {e}", file=sys.stderr)
        return None
    section, _, field = key.partition(".")
    listen = getattr(getattr(cfg, section), field)
    address = fallback
    if listen:
        host, port = parse_hostport(listen[0])
        if port:
            host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if not getattr(args, "quiet", False):
        where = str(path) if path is not None else "none found (built-in defaults)"
        print(f"eir: config {where}, connecting to {address} ({key})", file=sys.stderr)
    return address


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="eir", description="Equipment Identity Register emulator")
    parser.add_argument("--version", action="version", version=f"eir-emulator {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _MODULES:
        importlib.import_module(name).register(sub)
    sim = sub.add_parser(
        "sim", help="simulated network elements (MME over S13, MSC/SGSN over MAP, AMF over N5g-eir)"
    )
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="ELEMENT")
    sim.set_defaults(func=help_command(sim))
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
        parser.print_help(sys.stderr)
        return EXIT_CONFIG
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `eir lists export | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK


def error(message: str) -> None:
    """One line on stderr, ``eir: <message>``."""
    print(f"eir: {message}", file=sys.stderr)


__all__ = [
    "EXIT_BIND",
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_STORE",
    "Parser",
    "add_config_options",
    "build_parser",
    "default_address",
    "digits_text",
    "error",
    "help_command",
    "host_port",
    "imei_text",
    "imsi_text",
    "int_range",
    "load_cli_config",
    "main",
    "positive_float",
    "sim_imei",
    "software_version",
    "usage_error",
]

if __name__ == "__main__":
    sys.exit(main())
