"""``make bench``: run every benchmark section, print its figures and write them all to JSON.

Sections are modules of this package with ``run(quick: bool) -> dict``. A section that fails is
reported (with its error) and the others still run. Figures, not assertions: performance is judged
from the JSON, never by a test.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

SECTIONS = ("diameter", "freediameter", "map", "tcap_codec", "store", "store_remote")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--out", default="bench/results.json")
    p.add_argument("--quick", action="store_true", help="smaller runs (a minute or two in all)")
    p.add_argument("--only", action="append", choices=SECTIONS, help="run only these sections")
    args = p.parse_args(argv)
    results: dict[str, object] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "quick": args.quick,
    }
    failed = 0
    for name in args.only or SECTIONS:
        print(f"\n=== {name} ===", flush=True)
        t0 = time.monotonic()
        try:
            mod = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"bench.{name}":
                print("  (section not present)")
                continue
            raise
        try:
            res = mod.run(quick=args.quick)
        except Exception as e:
            failed += 1
            traceback.print_exc()
            res = {"error": repr(e)}
        res = dict(res)
        res["section_seconds"] = round(time.monotonic() - t0, 1)
        results[name] = res
        print(json.dumps(res, indent=2, default=str), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
