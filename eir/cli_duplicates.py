"""``eir duplicates list|show|clear``: the flags of DIRBS ``duplicate_mk1`` (eir/duplicates.py) in
the observations store, for an operator.

``clear`` deletes the flag and the IMEI's per-day history, so the IMEI stays cleared until the rule
triggers again on observations made after the clear. A running ``eir serve`` drops the flag from
its memory at its next classification (``policy.duplicate.classify_interval``); its admin API
(``DELETE /api/v1/duplicates/{imei}``) clears that process at once. ``show`` prints the rule's
inputs on the day the IMEI was flagged, from the history the store still holds. All three open
``store.observations_url`` when set, else ``store.url``.
Exit codes as every ``eir`` command: 0 ok, 1 failure (``show``/``clear`` of an IMEI not flagged),
2 usage, 4 the store could not be opened.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from eir.cli import EXIT_FAILURE, EXIT_OK, add_config_options, help_command, imei_text
from eir.cli_lists import _run
from eir.cli_sightings import _observations
from eir.config import Config


def register(sub: Any) -> None:
    p = sub.add_parser("duplicates", help="DIRBS duplicate_mk1 flags: list, show or clear them")
    sp = p.add_subparsers(dest="duplicates_command", metavar="ACTION")
    p.set_defaults(func=help_command(p))

    ls = sp.add_parser("list", help="the flagged IMEIs and when they were flagged")
    ls.add_argument("--json", action="store_true", help="print them as JSON")
    add_config_options(ls)
    ls.set_defaults(func=list_command, read_only=True)

    s = sp.add_parser("show", help="one flag with the rule's inputs on the day it was flagged")
    s.add_argument("imei", type=imei_text, help="14 to 16 digits (the first 14 are the key)")
    s.add_argument("--json", action="store_true", help="print it as JSON")
    add_config_options(s)
    s.set_defaults(func=show_command, read_only=True)

    c = sp.add_parser("clear", help="clear a flag: delete it and the IMEI's history")
    c.add_argument("imei", type=imei_text, help="14 to 16 digits (the first 14 are the key)")
    add_config_options(c)
    c.set_defaults(func=clear_command, read_only=True)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def list_command(args: argparse.Namespace) -> int:
    async def body(config: Config, store: Any) -> int:
        obs = await _observations(config, store)
        try:
            flags = sorted((await obs.duplicates()).items())
        finally:
            if obs is not store:
                await obs.close()
        if args.json:
            print(json.dumps({"duplicates": [{"imei": i, "flagged": ts} for i, ts in flags]}))
        else:
            for imei, ts in flags:
                print(f"{imei}  {_when(ts)}")
        return EXIT_OK

    return _run(args, body)


def show_command(args: argparse.Namespace) -> int:
    async def body(config: Config, store: Any) -> int:
        from eir.duplicates import DAY, duplicate_inputs

        imei = args.imei[:14]
        obs = await _observations(config, store)
        try:
            ts = (await obs.duplicates()).get(imei)
            history = await obs.daily_history(imei) if ts is not None else []
        finally:
            if obs is not store:
                await obs.close()
        if ts is None:
            print(f"eir: {imei} is not flagged as duplicated", file=sys.stderr)
            return EXIT_FAILURE
        inputs = duplicate_inputs(history, today=int(ts // DAY), cfg=config.policy.duplicate)
        if args.json:
            print(json.dumps({"imei": imei, "flagged": ts, "inputs": inputs}))
            return EXIT_OK
        print(f"{imei} flagged {_when(ts)}")
        print(
            f"  distinct {'MSISDNs' if inputs['counts'] == 'msisdns' else 'IMSIs'} over "
            f"{inputs['period_days']} days: {inputs['distinct_imsis']} "
            f"(threshold {inputs['threshold']})"
        )
        print(
            f"  daily average over {inputs['daily_avg_days']} days: {inputs['daily_average']} "
            f"(daily_avg {inputs['daily_avg']}), days seen {inputs['days_seen']} "
            f"(min_seen_days {inputs['min_seen_days']})"
        )
        per_day: dict[str, int] = inputs["per_day"]  # type: ignore[assignment]
        for day, n in per_day.items():
            print(f"  {datetime.fromtimestamp(int(day) * DAY, UTC).date()}  {n} IMSIs")
        return EXIT_OK

    return _run(args, body)


def clear_command(args: argparse.Namespace) -> int:
    async def body(config: Config, store: Any) -> int:
        imei = args.imei[:14]
        obs = await _observations(config, store)
        try:
            # an IMEI not flagged: nothing changes, not even its history
            was, rows = await obs.clear_duplicate(imei) if imei in await obs.duplicates() else (False, 0)
        finally:
            if obs is not store:
                await obs.close()
        if not was:
            print(f"eir: {imei} is not flagged as duplicated", file=sys.stderr)
            return EXIT_FAILURE
        print(f"cleared {imei}: flag and {rows} history row{'s' if rows != 1 else ''} deleted")
        return EXIT_OK

    return _run(args, body)
