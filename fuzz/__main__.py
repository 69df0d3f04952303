"""``python -m fuzz``: run the fuzz targets of :mod:`fuzz.targets`.

    python -m fuzz list
    python -m fuzz run all --runs 1000000          # make fuzz: 1M inputs per target
    python -m fuzz run all --seconds 30            # make fuzz-smoke (CI): 30 s per target
    python -m fuzz run diameter_peer --engine builtin --seconds 5

Engines: ``atheris`` (libFuzzer, coverage-guided: the ``fuzz`` extra installs it) runs each target in
a process of its own, since libFuzzer owns the process it runs in; ``builtin`` is a plain mutation
loop over the seeds (bit flips, byte changes, inserts, deletes, splices), for machines without
atheris. ``auto`` picks atheris when it imports. Under ``CI=true`` a missing atheris is an error,
never a quiet fall-back.

Corpora are kept in ``.fuzz/corpus/TARGET`` (so runs build on each other), a failing input is saved
as ``.fuzz/artifacts/TARGET-…``, and the figures (inputs run, inputs/s, result per target) go to
stdout and ``.fuzz/results.json``. Exit 1 when any target found a failure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(".fuzz")


def _have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def _corpus(name: str) -> Path:
    from fuzz.targets import seeds

    d = ROOT / "corpus" / name
    d.mkdir(parents=True, exist_ok=True)
    for s in seeds(name):
        (d / ("seed-" + hashlib.sha1(s).hexdigest()[:16])).write_bytes(s)
    return d


# --- atheris -------------------------------------------------------------------------------------


def _atheris_child(name: str, argv: list[str]) -> None:  # pragma: no cover - runs under libFuzzer
    import atheris

    with atheris.instrument_imports(include=["protocols", "h2", "h11", "hpack"]):
        from fuzz.targets import TARGETS
    atheris.Setup([sys.argv[0], *argv], TARGETS[name])
    atheris.Fuzz()


_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STAT = re.compile(r"#(\d+)\s+\w+.*?exec/s: (\d+)")


def _run_atheris(name: str, runs: int | None, seconds: float | None) -> dict[str, Any]:
    corpus = _corpus(name)
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    args = [
        f"-artifact_prefix={artifacts}/{name}-",
        "-max_len=4096",
        "-rss_limit_mb=2048",
        "-timeout=10",
        "-print_final_stats=1",
    ]
    if runs is not None:
        args.append(f"-runs={runs}")
    if seconds is not None:
        args.append(f"-max_total_time={int(seconds)}")
    cmd = [sys.executable, "-m", "fuzz", "_atheris", name, *args, str(corpus)]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    done = _DONE.search(out)
    stats = _STAT.findall(out)
    executed = int(done.group(1)) if done else (int(stats[-1][0]) if stats else 0)
    result: dict[str, Any] = {
        "target": name,
        "engine": "atheris",
        "inputs": executed,
        "seconds": round(elapsed, 1),
        "inputs_per_s": round(executed / elapsed) if elapsed else 0,
        "ok": proc.returncode == 0,
    }
    if proc.returncode != 0:
        tail = "\n".join(out.splitlines()[-40:])
        result["failure"] = tail
    return result


# --- builtin ---------------------------------------------------------------------------------------


def _mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        if op == 0 and b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[rng.randrange(len(b))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:
            i = rng.randrange(len(b) + 1)
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and b:
            i = rng.randrange(len(b))
            del b[i : i + rng.randint(1, 8)]
        elif op == 4 and b:
            del b[rng.randrange(len(b) + 1) :]
        elif op == 5 and pool:
            other = rng.choice(pool)
            i, j = rng.randrange(len(b) + 1), rng.randrange(len(other) + 1)
            b = b[:i] + other[j:]
        elif op == 6 and len(b) >= 4:  # a length-looking field set to an edge value
            i = rng.randrange(len(b) - 3)
            b[i : i + 4] = rng.choice((0, 1, 0xFFFFFFFF, len(b), len(b) + 4)).to_bytes(4, "big")
    return bytes(b[:4096])


def _run_builtin(name: str, runs: int | None, seconds: float | None, seed: int) -> dict[str, Any]:
    from fuzz.targets import TARGETS

    target = TARGETS[name]
    corpus = _corpus(name)
    pool = [p.read_bytes() for p in sorted(corpus.iterdir()) if p.is_file()][:512]
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds if seconds is not None else None
    started = time.monotonic()
    n = 0
    result: dict[str, Any] = {"target": name, "engine": "builtin", "ok": True}
    while (runs is None or n < runs) and (deadline is None or n % 256 or time.monotonic() < deadline):
        data = pool[n % len(pool)] if n < len(pool) else _mutate(rng, rng.choice(pool), pool)
        n += 1
        try:
            target(data)
        except Exception:
            art = ROOT / "artifacts"
            art.mkdir(parents=True, exist_ok=True)
            path = art / f"{name}-{hashlib.sha1(data).hexdigest()[:16]}"
            path.write_bytes(data)
            result.update(ok=False, failure=traceback.format_exc(limit=8), artifact=str(path))
            break
    elapsed = time.monotonic() - started
    result.update(inputs=n, seconds=round(elapsed, 1), inputs_per_s=round(n / elapsed) if elapsed else 0)
    return result


# --- command line ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_atheris"]:  # pragma: no cover - the per-target child
        _atheris_child(argv[1], argv[2:])
        return 0
    from fuzz.targets import TARGETS

    p = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the targets")
    r = sub.add_parser("run", help="fuzz targets")
    r.add_argument("targets", nargs="+", help="target names, or all")
    r.add_argument("--runs", type=int, default=None, help="inputs per target")
    r.add_argument("--seconds", type=float, default=None, help="time per target")
    r.add_argument("--engine", choices=["auto", "atheris", "builtin"], default="auto")
    r.add_argument("--jobs", type=int, default=1, help="targets run at once (atheris: processes)")
    r.add_argument("--seed", type=int, default=1, help="builtin engine: the random seed")
    args = p.parse_args(argv)
    if args.cmd == "list":
        for name, fn in TARGETS.items():
            print(f"{name:15} {(fn.__doc__ or '').splitlines()[0]}")
        return 0
    names = list(TARGETS) if args.targets == ["all"] else args.targets
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        p.error(f"unknown target(s): {', '.join(unknown)} (python -m fuzz list)")
    if args.runs is None and args.seconds is None:
        p.error("give --runs and/or --seconds")
    engine = args.engine
    if engine == "auto":
        if not _have_atheris() and os.environ.get("CI") == "true":
            print(
                "fuzz: atheris is not installed (pip install -e '.[fuzz]'); CI=true needs it", file=sys.stderr
            )
            return 2
        engine = "atheris" if _have_atheris() else "builtin"

    def one(name: str) -> dict[str, Any]:
        if engine == "atheris":
            return _run_atheris(name, args.runs, args.seconds)
        return _run_builtin(name, args.runs, args.seconds, args.seed)

    results: list[dict[str, Any]] = []
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, args.jobs if engine == "atheris" else 1)
    ) as ex:
        for res in ex.map(one, names):
            results.append(res)
            mark = "ok" if res["ok"] else "FAILED"
            print(
                f"{res['target']:15} {res['engine']:8} {res['inputs']:>10,} inputs "
                f"{res['seconds']:>7.1f} s {res['inputs_per_s']:>8,}/s  {mark}",
                flush=True,
            )
            if not res["ok"]:
                print(res.get("failure", ""), file=sys.stderr)
    ROOT.mkdir(exist_ok=True)
    (ROOT / "results.json").write_text(json.dumps({"engine": engine, "targets": results}, indent=2) + "\n")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
