"""In-process identity stores (memory, SQLite): lookup latency at 1k / 1M / 10M entries, import rows/s,
the checker's own cost, and the resident memory of ``eir serve`` on a 10M-entry SQLite store.

Goal: flat lookups (p99 at 10M within 1.2x of p99 at 1k) and >= 200k rows/s into SQLite.

* Lists: ``n`` IMEIs in a scrambled order (``BASE + ((i * 1_000_003) % n) * STEP``: unique, not
  sorted, as a national list is), ``n // 100`` TACs (at most 10k) and 200 nested ranges over the
  IMEI block, so lookups exercise the exact and the range path together. Rows are generated lazily
  as :class:`~eir.store.base.EntryRows` tuples (the CSV importer's own format), so 10M rows never
  sit in memory twice.
* Lookups: ``LOOKUPS`` single calls, half listed IMEIs and half unlisted ones, each with an IMEISV
  (the S13 shape), timed one by one (p50/p99, microseconds), after ``WARM`` other random lookups:
  the steady state of a running server (one second of traffic at 20k checks/s), not its first
  lookups, which fault the SQLite memory map in page by page (10M entries, first 20k lookups after
  opening: p99 ~30 us instead of ~19 us).
* The machine is shared (2 cores, other work running): expect +-30% between runs.
* ``csv_*``: a 1M-row CSV file through ``eir.lists`` (parse + validate + import) — the
  ``eir lists import`` path end to end.
* ``serve_rss_mb``: VmRSS (with RssAnon/RssFile) of a real ``eir serve`` (no traffic) on the largest
  SQLite store, and of a process that opened the same store and did ``LOOKUPS`` random lookups
  (``lookup_process_rss_mb``): RssFile there is the touched part of the memory-mapped database file
  (page cache, shared and reclaimable), RssAnon the process's own memory.

Adding a store is one line in ``FACTORIES`` (``Path -> IdentityStore``, not yet opened).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from eir.model import Status
from eir.store.base import EntryKind, EntryRows, IdentityStore

BASE = 35_000_000_000_000
STEP = 37
SCRAMBLE = 1_000_003
N_RANGES = 200
LOOKUPS = 20_000
WARM = 20_000


def _memory(tmp: Path) -> IdentityStore:
    from eir.store.memory import MemoryStore

    return MemoryStore("memory://", keep_versions=1)


def _sqlite(tmp: Path) -> IdentityStore:
    from eir.store.sqlite import SqliteStore

    return SqliteStore(f"sqlite:///{tmp / 'bench.db'}", str(tmp), keep_versions=1)


FACTORIES: dict[str, Callable[[Path], IdentityStore]] = {
    "memory": _memory,
    "sqlite": _sqlite,
}


def _key(i: int, n: int) -> str:
    return str(BASE + ((i * SCRAMBLE) % n) * STEP)


def _rows(n: int) -> Iterator[tuple[Any, ...]]:
    st = (Status.BLACK, Status.GREY, Status.WHITE)
    imei = EntryKind.IMEI
    for i in range(n):
        yield (imei, str(BASE + ((i * SCRAMBLE) % n) * STEP), None, st[i % 3], None, "bench")
    for j in range(min(n // 100, 10_000)):
        yield (EntryKind.TAC, str(49_000_000 + j), None, Status.GREY, None, None)
    span = max(n * STEP // N_RANGES, 10)
    for k in range(N_RANGES):
        first = BASE + k * span
        last = first + span * 2 - 1 if k % 2 else first + span // 3
        yield (EntryKind.RANGE, str(first), str(last), Status.BLACK, None, None)


def _pct(xs: list[int], p: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * p))] / 1000.0


def _queries(n: int, rnd: random.Random) -> list[str]:
    return [
        _key(rnd.randrange(n), n) if k % 2 == 0 else str(BASE + rnd.randrange(n * STEP))
        for k in range(LOOKUPS)
    ]


async def _lookups(store: IdentityStore, queries: list[str], warm: list[str]) -> dict[str, Any]:
    """Steady state: warmed with other random IMEIs (page cache, statement cache), then timed."""
    for q in warm:
        await store.lookup(q, q + "01")
    lat: list[int] = []
    hits = 0
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for q in queries:
            t = clock()
            r = await store.lookup(q, q + "01")
            lat.append(clock() - t)
            hits += r.imei is not None
    finally:
        gc.enable()
    lat.sort()
    return {
        "lookup_p50_us": round(_pct(lat, 0.5), 2),
        "lookup_p99_us": round(_pct(lat, 0.99), 2),
        "lookup_max_us": round(lat[-1] / 1000, 1),
        "hit_ratio": round(hits / len(queries), 2),
    }


async def _checker(store: IdentityStore, queries: list[str]) -> dict[str, Any]:
    """The whole check (validity, lookup, IMSI rules, clone observation, metrics) per request."""
    from eir.checker import build_checker
    from eir.config import load_config
    from eir.model import CheckRequest, Interface

    out: dict[str, Any] = {}
    for label, clone in (("no_imsi", False), ("imsi_clone", True)):
        cfg = load_config(None, environ={}, overrides={"policy": {"clone": {"enabled": clone}}})

        class Null:
            def publish(self, topic: str, payload: dict[str, Any]) -> None:
                return None

        checker = build_checker(cfg, store, Null())
        reqs = [
            CheckRequest(
                imei=q,
                software_version="01",
                interface=Interface.S13,
                imsi=f"2620100{i % 100_000:08d}" if clone else None,
                origin="mme1.bench" if clone else None,
            )
            for i, q in enumerate(queries[:5000])
        ]
        for r in reqs[:500]:
            await checker.check(r)
        t = time.perf_counter()
        for r in reqs:
            await checker.check(r)
        dt = time.perf_counter() - t
        out[f"checks_per_s_{label}"] = round(len(reqs) / dt)
    return out


async def _thread_hop() -> float:
    """p50 of a bare ``asyncio.to_thread`` round trip: what every SQLite lookup would cost on top if
    it went through a thread (it does not: a point lookup is cheaper than the hop)."""
    lat: list[int] = []
    for _ in range(2000):
        t = time.perf_counter_ns()
        await asyncio.to_thread(int)
        lat.append(time.perf_counter_ns() - t)
    lat.sort()
    return round(_pct(lat, 0.5), 2)


async def _one_store(name: str, sizes: list[int], tmp: Path) -> dict[str, Any]:
    res: dict[str, Any] = {}
    rnd = random.Random(1)
    for n in sizes:
        d = tmp / f"{name}-{n}"
        d.mkdir()
        store = FACTORIES[name](d)
        await store.open()
        gc.collect()
        t0 = time.perf_counter()
        v = await store.import_version(EntryRows(_rows(n)), [], source=f"bench-{n}")  # type: ignore[arg-type]
        t_import = time.perf_counter() - t0
        queries = _queries(n, rnd)
        warm = _queries(n, rnd)[:WARM]
        r: dict[str, Any] = {
            "entries": v.entries,
            "import_s": round(t_import, 2),
            "import_rows_per_s": round(v.entries / t_import),
        }
        r.update(await _lookups(store, queries, warm))
        if n == sizes[-1] or n == 1_000:
            r.update(await _checker(store, queries))
        if name == "sqlite" and n == 1_000:
            r["thread_hop_p50_us"] = await _thread_hop()
        res[str(n)] = r
        print(f"  {name} {n:>10,}: {r}", flush=True)
        await store.close()
        if name == "sqlite" and n == sizes[-1]:
            res["db_file"] = str(d / "bench.db")
        del store
        gc.collect()
    small, big = res[str(sizes[0])], res[str(sizes[-1])]
    res["p99_ratio_largest_vs_1k"] = round(big["lookup_p99_us"] / small["lookup_p99_us"], 2)
    return res


async def _csv_import(tmp: Path, n: int) -> dict[str, Any]:
    from eir.lists import import_parsed, parse_csv
    from eir.store.sqlite import SqliteStore

    path = tmp / "list.csv"
    st = ("white", "grey", "black")
    with path.open("w") as f:
        f.write("imei,status,imsi,reason\n")
        for i in range(n):
            k = _key(i, n)
            f.write(f"{k},{st[i % 3]},,\n" if i % 2 else f"{k}0,{st[i % 3]},,stolen\n")
    d = tmp / "csv"
    d.mkdir()
    store = SqliteStore(f"sqlite:///{d / 'csv.db'}", str(d))
    await store.open()
    t0 = time.perf_counter()
    parsed = parse_csv(path)
    t1 = time.perf_counter()
    v = await import_parsed(store, parsed)
    t2 = time.perf_counter()
    await store.close()
    assert parsed.ok and v.entries == n
    return {
        "csv_rows": n,
        "csv_parse_rows_per_s": round(n / (t1 - t0)),
        "csv_store_rows_per_s": round(n / (t2 - t1)),
        "csv_total_rows_per_s": round(n / (t2 - t0)),
    }


def _rss_mb(pid: int) -> dict[str, float]:
    """VmRSS split into anonymous memory (the process's own) and file pages (the SQLite memory map:
    shared with the page cache, reclaimable)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = round(int(line.split()[1]) / 1024, 1)
    return out


def _serve_rss(db: str, tmp: Path) -> dict[str, Any]:
    import yaml

    d = tmp / "serve"
    d.mkdir()
    cfg = {
        "data_dir": str(d),
        "store": {"url": f"sqlite:///{db}"},
        "log": {"level": "warning"},
        "diameter": {"listen": ["127.0.0.1:0"], "transports": ["tcp"]},
        "m3ua": {"listen": ["127.0.0.1:0"], "transports": ["tcp"]},
        "metrics": {"listen": "127.0.0.1:0"},
        "admin": {"listen": ["127.0.0.1:0"]},
        "lists": {"import_on_start": []},
    }
    (d / "eir.yaml").write_text(yaml.safe_dump(cfg))
    ready = d / "ready.json"
    exe = Path(sys.executable).parent / "eir"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "eir.cli"]
    proc = subprocess.Popen(
        [*cmd, "serve", "--config", str(d / "eir.yaml"), "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    out: dict[str, Any] = {}
    try:
        for _ in range(600):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        if ready.exists():
            time.sleep(0.5)
            out["serve_rss_mb"] = _rss_mb(proc.pid)
        else:
            out["serve_rss_mb"] = f"eir serve did not start (exit {proc.poll()})"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    code = (
        "import asyncio, random, json, sys\n"
        "from eir.store.sqlite import SqliteStore\n"
        "from bench.store import _rss_mb\n"
        "async def m():\n"
        f"    s = SqliteStore('sqlite:///{db}', '{d}')\n"
        "    await s.open()\n"
        "    base = _rss_mb(__import__('os').getpid())\n"
        "    rnd = random.Random(2)\n"
        f"    for _ in range({LOOKUPS}):\n"
        f"        await s.lookup(str({BASE} + rnd.randrange(10**9)))\n"
        "    print(json.dumps([base, _rss_mb(__import__('os').getpid())]))\n"
        "asyncio.run(m())\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    if r.returncode == 0:
        before, after = json.loads(r.stdout)
        out["lookup_process_rss_mb_opened"] = before
        out["lookup_process_rss_mb_after_lookups"] = after
    else:
        out["lookup_process_rss_mb"] = f"failed: {r.stderr[-300:]}"
    return out


def run(quick: bool) -> dict[str, Any]:
    from eir.logging import setup_logging

    setup_logging("error")  # the clone-rule benchmark makes many suspects; their warnings are noise here
    sizes = [1_000, 1_000_000] if quick else [1_000, 1_000_000, 10_000_000]
    res: dict[str, Any] = {"sizes": sizes, "lookups_per_size": LOOKUPS}
    with tempfile.TemporaryDirectory(prefix="eir-bench-store-") as td:
        tmp = Path(td)
        for name in FACTORIES:
            res[name] = asyncio.run(_one_store(name, sizes, tmp))
        res["sqlite_csv_import"] = asyncio.run(_csv_import(tmp, 1_000_000))
        print(f"  csv: {res['sqlite_csv_import']}", flush=True)
        db = res["sqlite"].pop("db_file", None)
        if db:
            res["sqlite_process_memory"] = {
                "entries": res["sqlite"][str(sizes[-1])]["entries"],
                **_serve_rss(db, tmp),
            }
        res["memory"].pop("db_file", None)
    return res


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
    os._exit(0)
