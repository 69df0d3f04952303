"""``eir check`` and ``eir lists import|export|versions|rollback``.

They open the configured store directly (the same SQLite file, PostgreSQL database or Redis a
running ``eir serve`` uses): an import is picked up by running servers through the store's change
notifications. Exit codes (eir/cli.py): 0 ok, 1 failure (bad rows, a FAILURE verdict, unknown
version, a missing store), 2 usage/configuration, 4 the store could not be opened.

``check``, ``lists versions``, ``lists export`` and ``lists rollback`` never create a store: a SQLite
file that does not exist is an error that says where it was looked for (only ``lists import`` and
``eir serve`` create one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from eir.cli import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_STORE,
    add_config_options,
    help_command,
    imei_text,
    imsi_text,
    int_range,
    load_cli_config,
    software_version,
    usage_error,
)
from eir.config import Config, ConfigError
from eir.model import CheckRequest, Interface, Status


def register(sub: Any) -> None:
    common = add_config_options

    p = sub.add_parser("check", help="check one IMEI against the lists and policy, as an interface would")
    p.add_argument(
        "imei",
        help="14 (IMEI), 15 (IMEI + check/spare digit) or 16 (IMEISV) digits; dashes and spaces are dropped",
    )
    p.add_argument("--imsi", type=imsi_text, help="IMSI of the subscriber (pairings, locks, clone detection)")
    p.add_argument(
        "--sv",
        "--software-version",
        dest="sv",
        type=software_version,
        help="2-digit software version (as S13 sends it)",
    )
    p.add_argument("--origin", help="who asks (MME host / MSC GT); counts for clone detection")
    p.add_argument("--explain", action="store_true", help="print the decision path, rule by rule")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.add_argument(
        "--allow-bad-imei",
        action="store_true",
        help="let a malformed IMEI through to the policy (its validity rule answers) instead of refusing it",
    )
    common(p)
    p.set_defaults(func=check_command, read_only=True)

    lists = sub.add_parser("lists", help="import, export, list and roll back equipment lists")
    ls = lists.add_subparsers(dest="lists_command", metavar="ACTION")
    lists.set_defaults(func=help_command(lists))

    from eir.formats import FORMATS

    p = ls.add_parser("import", help="validate a list file and swap it in atomically")
    p.add_argument(
        "path",
        help="list file (- for stdin): imei,status[,imsi][,reason][,op] or imsi,imei[,reason][,op], "
        "or a --format file",
    )
    p.add_argument(
        "--format",
        dest="fmt",
        choices=FORMATS,
        metavar="NAME",
        help="file format: " + ", ".join(FORMATS) + " (default: recognised by its header, else eir)",
    )
    p.add_argument("--dry-run", action="store_true", help="validate only; import nothing")
    p.add_argument(
        "--delta", action="store_true", help="apply on top of the active version (implied by an op column)"
    )
    p.add_argument(
        "--kind",
        choices=["equipment", "pairing", "lock"],
        default="equipment",
        help="what the file lists (imsi,imei files: pairing or lock)",
    )
    p.add_argument("--skip-bad", action="store_true", help="import the good rows even if some are bad")
    common(p)
    p.set_defaults(func=import_command)

    p = ls.add_parser("export", help="write the active version as CSV (re-importable)")
    p.add_argument("path", nargs="?", default="-", help="output file, - for stdout (default)")
    p.add_argument("--kind", choices=["all", "equipment", "pairing", "lock"], default="all")
    p.add_argument(
        "--format",
        dest="fmt",
        choices=["eir", "dirbs-blacklist", "dirbs-notifications", "dirbs-exceptions"],
        default="eir",
        help="eir (default), or a DIRBS list another EIR or a CEIR imports: the black entries "
        "(dirbs-blacklist), the notification entries (dirbs-notifications) or the pairings",
    )
    common(p)
    p.set_defaults(func=export_command, read_only=True)

    p = ls.add_parser("sync", help="follow a central list: fetch a URL (if changed) and import it")
    p.add_argument("--from", dest="url", help="http(s) URL of a list file (default: lists.sync_from)")
    p.add_argument(
        "--format", dest="fmt", choices=FORMATS, metavar="NAME", help="its format (default: by its header)"
    )
    p.add_argument(
        "--every",
        type=float,
        metavar="SECONDS",
        help="fetch again every SECONDS until stopped (default: lists.sync_interval; 0 = once)",
    )
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds per request (30)")
    common(p)
    p.set_defaults(func=sync_command)

    p = ls.add_parser(
        "observations",
        help="write what the EIR saw as a DIRBS operator dump (date,imei,imsi,msisdn,rat)",
    )
    p.add_argument("path", nargs="?", default="-", help="output file, - for stdout (default)")
    p.add_argument("--since", help="first day (YYYY-MM-DD or YYYYMMDD, UTC; default: all kept)")
    p.add_argument("--until", help="last day, inclusive (default: today)")
    p.add_argument(
        "--daily",
        action="store_true",
        help="PATH is a directory: one file per day, <PATH>/<YYYYMMDD>_observations.csv",
    )
    common(p)
    p.set_defaults(func=observations_command, read_only=True)

    p = ls.add_parser("versions", help="the list versions kept (the active one marked *)")
    common(p)
    p.set_defaults(func=versions_command, read_only=True)

    p = ls.add_parser("rollback", help="make an older version active again")
    p.add_argument("version", type=int_range(1), help="a version id from eir lists versions")
    common(p)
    p.set_defaults(func=rollback_command, read_only=True)


# --- plumbing -------------------------------------------------------------------------------------


class _NullEvents:
    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        return None


def _err(msg: str) -> None:
    print(f"eir: {msg}", file=sys.stderr)


def _run(args: argparse.Namespace, body: Callable[[Config, Any], Awaitable[int]]) -> int:
    try:
        config = load_cli_config(args)
    except ConfigError as e:
        _err(f"configuration error: {e}")
        return EXIT_CONFIG
    if getattr(args, "read_only", False) and (missing := _missing_store(config, args)) is not None:
        _err(missing)
        return EXIT_FAILURE
    from eir.logging import setup_logging

    setup_logging("debug" if config.log.level == "debug" else "warning", config.log.format)
    return asyncio.run(_with_store(config, body))


def _missing_store(config: Config, args: argparse.Namespace) -> str | None:
    """Why a command that only reads cannot run: its SQLite file does not exist (opening it would
    create an empty store and answer from it, as if every list were empty)."""
    if not config.store.url.lower().startswith("sqlite:"):
        return None
    from eir.store.base import StoreError
    from eir.store.sqlite import sqlite_path

    try:
        path = sqlite_path(config.store.url, config.data_dir)
    except StoreError:
        return None  # the store's own open() names the bad URL
    if path.exists():
        return None
    source = f"config {args.config}" if args.config else "no config file found, built-in defaults"
    return (
        f"no store at {path.absolute()} ({source}); give --config, set EIR_CONFIG, "
        "or create it with `eir lists import FILE` or `eir serve`"
    )


async def _with_store(config: Config, body: Callable[[Config, Any], Awaitable[int]]) -> int:
    from eir.store import create_store, store_options
    from eir.store.base import StoreError

    try:
        store = create_store(config.store.url, config.data_dir, **store_options(config.store))
        await store.open()
    except Exception as e:
        _err(f"store {config.store.url}: cannot open ({e})")
        return EXIT_STORE
    try:
        return await body(config, store)
    except StoreError as e:
        _err(str(e))
        return EXIT_FAILURE
    finally:
        with contextlib.suppress(Exception):
            await store.close()


# --- eir check --------------------------------------------------------------------------------------


def check_command(args: argparse.Namespace) -> int:
    if not args.allow_bad_imei:
        try:
            args.imei = imei_text(args.imei)
        except argparse.ArgumentTypeError as e:
            return usage_error("eir check", f"argument imei: {e}; --allow-bad-imei hands it to the policy")

    async def body(config: Config, store: Any) -> int:
        from eir.checker import build_checker
        from eir.explain import explained_check, verdict_json

        observations = None
        if config.store.observations_url:
            from eir.store import create_store, store_options

            observations = create_store(
                config.store.observations_url, config.data_dir, **store_options(config.store)
            )
            try:
                await observations.open()
            except Exception as e:
                _err(f"observations store {config.store.observations_url}: cannot open ({e})")
                return EXIT_STORE
        try:
            checker = build_checker(config, store, _NullEvents(), observations)
            req = CheckRequest(
                imei=args.imei,
                software_version=args.sv,
                imsi=args.imsi,
                origin=args.origin,
                interface=Interface.CLI,
            )
            verdict, steps = await explained_check(checker, req, explain=args.explain)
        finally:
            if observations is not None:
                with contextlib.suppress(Exception):
                    await observations.close()
        if args.json:
            print(json.dumps(verdict_json(verdict, steps)))
        else:
            if steps:
                for s in steps[:-1]:
                    print(f"  {s}")
            detail = f"  ({verdict.detail})" if verdict.detail else ""
            print(f"{verdict.status.value}  {verdict.reason}{detail}")
        return EXIT_FAILURE if verdict.status is Status.FAILURE else EXIT_OK

    return _run(args, body)


# --- eir lists ----------------------------------------------------------------------------------------


def import_command(args: argparse.Namespace) -> int:
    from eir.lists import (
        ListFileError,
        ParsedReference,
        counted,
        find_absent_removals,
        import_parsed,
        parse_file,
        progress_bar,
        removal_text,
    )

    async def body(config: Config, store: Any) -> int:
        t0 = time.monotonic()
        try:
            source: Any = sys.stdin if args.path == "-" else args.path
            if source is sys.stdin and args.fmt is None:
                # stdin cannot be peeked at: read it so that its header can say its format
                import io

                source = io.StringIO(sys.stdin.read())
                source.name = "stdin"
            parsed = parse_file(
                source,
                fmt=args.fmt,
                kind=args.kind,
                delta=True if args.delta else None,
                progress=None if args.path == "-" else progress_bar(f"reading {os.path.basename(args.path)}"),
            )
        except ListFileError as e:
            _err(str(e))
            return EXIT_FAILURE
        t_parse = time.monotonic() - t0
        if isinstance(parsed, ParsedReference):
            return await _import_reference(args, store, parsed, t0, t_parse)
        if args.delta and not parsed.delta:
            parsed.delta = True
            parsed.slice_tag = None
        if parsed.ignored_columns:
            _err(f"{args.path}: ignoring unknown columns {', '.join(parsed.ignored_columns)}")
        if not parsed.ok:
            print(f"{args.path}: {parsed.bad_count} bad rows:", file=sys.stderr)
            print(parsed.report(), file=sys.stderr)
            if not args.skip_bad:
                print(f"{args.path}: nothing imported ({parsed.summary()})", file=sys.stderr)
                return EXIT_FAILURE
        what = "delta" if parsed.delta else "full"
        if parsed.removals:
            parsed.absent_removals = await find_absent_removals(store, parsed.removals)
            if parsed.absent_removals:
                shown = ", ".join(removal_text(r) for r in parsed.absent_removals[:20])
                more = len(parsed.absent_removals) - 20
                _err(
                    f"{args.path}: {len(parsed.absent_removals)} of {len(parsed.removals)} removals match "
                    f"nothing on the active lists: {shown}" + (f" and {more} more" if more > 0 else "")
                )
        if args.dry_run:
            print(
                f"{args.path}: valid {what} {parsed.kind} list: {parsed.summary()} "
                f"({_rate(parsed.rows, t_parse)}); dry run, nothing imported"
            )
            return EXIT_OK if parsed.ok else EXIT_FAILURE
        if sys.stderr.isatty() and parsed.rows >= 100_000:
            print(f"importing {parsed.rows} rows …", file=sys.stderr)
        t1 = time.monotonic()
        try:
            v = await import_parsed(
                store, parsed, skip_bad=args.skip_bad, source="stdin" if args.path == "-" else None
            )
        except ListFileError as e:
            _err(str(e))
            return EXIT_FAILURE
        t_all = time.monotonic() - t0
        listed = parsed.kind if parsed.format == "eir" else parsed.format
        print(
            f"imported version {v.id} ({what} {listed} list from {os.path.basename(args.path)}): "
            f"{parsed.summary()}; now {counted(v.entries, 'entry', 'entries')}, "
            f"{counted(v.pairings, 'pairing/lock row')} "
            f"in {t_all:.2f}s ({_rate(parsed.rows, t_all)}; store {time.monotonic() - t1:.2f}s)"
        )
        return EXIT_OK

    return _run(args, body)


async def _import_reference(
    args: argparse.Namespace, store: Any, parsed: Any, t0: float, t_parse: float
) -> int:
    from eir.lists import ListFileError, import_reference

    if parsed.ignored_columns:
        _err(f"{args.path}: ignoring unknown columns {', '.join(parsed.ignored_columns)}")
    if not parsed.ok:
        print(f"{args.path}: {parsed.bad_count} bad rows:", file=sys.stderr)
        print(parsed.report(), file=sys.stderr)
        if not args.skip_bad:
            print(f"{args.path}: nothing imported ({parsed.summary()})", file=sys.stderr)
            return EXIT_FAILURE
    if args.dry_run:
        print(
            f"{args.path}: valid {parsed.format} file ({parsed.table} table): {parsed.summary()} "
            f"({_rate(parsed.rows, t_parse)}); dry run, nothing imported"
        )
        return EXIT_OK if parsed.ok else EXIT_FAILURE
    try:
        table = await import_reference(
            store, parsed, skip_bad=args.skip_bad, source="stdin" if args.path == "-" else None
        )
    except ListFileError as e:
        _err(str(e))
        return EXIT_FAILURE
    t_all = time.monotonic() - t0
    print(
        f"imported the {table.name} table ({parsed.format} from {os.path.basename(args.path)}): "
        f"{parsed.summary()}; now {table.rows} {table.name} records "
        f"in {t_all:.2f}s ({_rate(parsed.rows, t_all)})"
    )
    return EXIT_OK


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f} rows/s" if seconds > 0 and rows else f"{seconds:.2f}s"


def export_command(args: argparse.Namespace) -> int:
    from eir.formats.export import export_dirbs
    from eir.lists import export_csv

    async def write(out: Any, store: Any) -> int:
        if args.fmt == "eir":
            return await export_csv(store.export(), out, kind=args.kind)
        return await export_dirbs(args.fmt, store.export(), out)

    async def body(config: Config, store: Any) -> int:
        if await store.active_version() is None:
            _err("no list version yet (eir lists import FILE)")
            return EXIT_FAILURE
        if args.path == "-":
            n = await write(sys.stdout, store)
            sys.stdout.flush()
        else:
            tmp = args.path + ".tmp"
            try:
                with open(tmp, "w", newline="", encoding="utf-8") as f:
                    n = await write(f, store)
                os.replace(tmp, args.path)
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                _err(f"cannot write {args.path}: {e.strerror or e}")
                return EXIT_FAILURE
            print(f"exported {n} rows to {args.path}", file=sys.stderr)
        return EXIT_OK

    return _run(args, body)


def sync_command(args: argparse.Namespace) -> int:
    from eir.list_sync import sync_once

    async def once(config: Config, store: Any, url: str) -> int:
        out = await sync_once(store, url, config.data_dir, fmt=args.fmt, timeout=args.timeout)
        if not out.ok:
            _err(out.message)
            return EXIT_FAILURE
        print(out.message)
        return EXIT_OK

    async def body(config: Config, store: Any) -> int:
        url = args.url or config.lists.sync_from
        if not url:
            _err("no URL: give --from URL or set lists.sync_from")
            return EXIT_CONFIG
        every = config.lists.sync_interval if args.every is None else args.every
        if every < 0:
            _err("--every must be >= 0")
            return EXIT_CONFIG
        rc = await once(config, store, url)
        while every > 0:
            await asyncio.sleep(every)
            rc = await once(config, store, url)
            sys.stdout.flush()
        return rc

    return _run(args, body)


def observations_command(args: argparse.Namespace) -> int:
    from eir.formats.export import day_bounds, export_observations, write_daily

    try:
        since, until = day_bounds(args.since, args.until, time.time())
    except ValueError as e:
        return usage_error("eir lists observations", str(e))

    async def body(config: Config, store: Any) -> int:
        obs = store
        if config.store.observations_url:
            from eir.store import create_store, store_options

            obs = create_store(config.store.observations_url, config.data_dir, **store_options(config.store))
            try:
                await obs.open()
            except Exception as e:
                _err(f"observations store {config.store.observations_url}: cannot open ({e})")
                return EXIT_STORE
        try:
            # without the clear markers an operator's `eir sightings clear` leaves (eir/sightings.py)
            rows = [r for r in await obs.read_sightings(since) if r[1] != "c"]
        finally:
            if obs is not store:
                with contextlib.suppress(Exception):
                    await obs.close()
        if args.daily:
            if args.path == "-":
                return usage_error("eir lists observations", "--daily needs a directory as PATH")
            try:
                files = write_daily(rows, args.path, since=since, until=until)
            except OSError as e:
                _err(f"cannot write {args.path}: {e.strerror or e}")
                return EXIT_FAILURE
            for name, n in files:
                print(f"{name}: {n} observations")
            return EXIT_OK
        if args.path == "-":
            n = export_observations(rows, sys.stdout, until=until)
            sys.stdout.flush()
        else:
            try:
                with open(args.path, "w", newline="", encoding="utf-8") as f:
                    n = export_observations(rows, f, until=until)
            except OSError as e:
                _err(f"cannot write {args.path}: {e.strerror or e}")
                return EXIT_FAILURE
            print(f"exported {n} observations to {args.path}", file=sys.stderr)
        return EXIT_OK

    return _run(args, body)


def versions_command(args: argparse.Namespace) -> int:
    async def body(config: Config, store: Any) -> int:
        vs = await store.versions()
        for t in await store.reference_tables():
            loaded = datetime.fromtimestamp(t.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
            print(f"{t.name} table: {t.rows} records, loaded {loaded} UTC from {t.source}")
        if not vs:
            print("no list versions yet (eir lists import FILE)")
            return EXIT_OK
        print(f"  {'id':>5}  {'created (UTC)':<19}  {'entries':>10}  {'pairings':>8}  source")
        for v in vs:
            created = datetime.fromtimestamp(v.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
            print(
                f"{'*' if v.active else ' '} {v.id:>5}  {created:<19}  {v.entries:>10}  {v.pairings:>8}  "
                f"{v.source}"
            )
        return EXIT_OK

    return _run(args, body)


def rollback_command(args: argparse.Namespace) -> int:
    from eir.store.base import VersionNotFoundError

    async def body(config: Config, store: Any) -> int:
        try:
            v = await store.rollback(args.version)
        except VersionNotFoundError as e:
            kept = ", ".join(str(x.id) for x in await store.versions()) or "none"
            _err(f"{e} (kept: {kept})")
            return EXIT_FAILURE
        print(f"version {v.id} is active ({v.entries} entries, {v.pairings} pairing/lock rows, {v.source})")
        return EXIT_OK

    return _run(args, body)
