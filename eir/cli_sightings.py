"""``eir sightings clear IMEI`` and ``eir sightings show IMEI``: the clone rule's sightings in the
store, for an operator (issue 10: a suspicion an operator can clear).

``clear`` deletes the IMEI's stored sightings and writes a *clear* row (eir/sightings.py): serving
instances that share the store (PostgreSQL, Redis, ``--workers`` on one SQLite file) drop what
they hold of the IMEI within ``policy.clone.share_interval``. A single ``eir serve`` on its own
SQLite file does not read the store back while it runs: clear through its admin API
(``checker.clear_sightings``), or restart it after the clear. ``show`` lists the sightings inside
``policy.clone.window``. Both open ``store.observations_url`` when set, else ``store.url``.
Exit codes as every ``eir`` command: 0 ok, 1 failure, 2 usage, 4 the store could not be opened.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from eir.cli import EXIT_OK, add_config_options, help_command, imei_text
from eir.cli_lists import _run
from eir.config import Config


def register(sub: Any) -> None:
    p = sub.add_parser("sightings", help="the clone rule's sightings of one IMEI: show or clear them")
    sp = p.add_subparsers(dest="sightings_command", metavar="ACTION")
    p.set_defaults(func=help_command(p))

    c = sp.add_parser("clear", help="clear an IMEI's clone suspicion: delete its sightings (all instances)")
    c.add_argument("imei", type=imei_text, help="14 to 16 digits (the first 14 are the key)")
    add_config_options(c)
    c.set_defaults(func=clear_command, read_only=True)

    s = sp.add_parser("show", help="the IMEI's sightings inside the clone window")
    s.add_argument("imei", type=imei_text, help="14 to 16 digits (the first 14 are the key)")
    s.add_argument("--json", action="store_true", help="print them as JSON")
    add_config_options(s)
    s.set_defaults(func=show_command, read_only=True)


def clear_command(args: argparse.Namespace) -> int:
    async def body(config: Config, store: Any) -> int:
        from eir.sightings import SightingTracker

        obs = await _observations(config, store)
        try:
            tracker = SightingTracker(obs, config.policy.clone.window)
            imei = args.imei[:14]
            gone = await tracker.clear_stored(imei, time.time())
        finally:
            if obs is not store:
                await obs.close()
        print(f"cleared {imei}: {gone} sighting{'s' if gone != 1 else ''} deleted")
        return EXIT_OK

    return _run(args, body)


def show_command(args: argparse.Namespace) -> int:
    async def body(config: Config, store: Any) -> int:
        obs = await _observations(config, store)
        try:
            since = time.time() - config.policy.clone.window
            rows = await obs.read_sightings(since, imei=args.imei[:14])
        finally:
            if obs is not store:
                await obs.close()
        from eir.sightings import imsi_of

        kinds = {"i": "imsi", "e": "imsi", "g": "imsi", "n": "imsi", "o": "origin", "c": "cleared"}
        out = [{"kind": kinds.get(k, k), "value": imsi_of(k, v), "seen": t} for _i, k, v, t in rows]
        if args.json:
            print(json.dumps({"imei": args.imei[:14], "sightings": out}))
        else:
            for r in out:
                seen = datetime.fromtimestamp(r["seen"], UTC).isoformat(timespec="seconds")
                print(f"{seen}  {r['kind']:7s} {r['value']}")
        return EXIT_OK

    return _run(args, body)


async def _observations(config: Config, store: Any) -> Any:
    """The observations store (opened), or the list store when they are one."""
    if not config.store.observations_url:
        return store
    from eir.store import create_store, store_options

    obs = create_store(config.store.observations_url, config.data_dir, **store_options(config.store))
    await obs.open()
    return obs
