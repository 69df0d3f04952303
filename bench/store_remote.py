"""Remote identity stores (PostgreSQL, Redis) against ephemeral local servers: import rows/s, lookup
latency (p50/p99, one caller: the round-trip cost on the hot path) and throughput with 32 concurrent
callers, at 1k and 1M listed IMEIs (quick: 1k and 100k), plus clone-observation latency.

Servers are started from the Debian binaries exactly as the tests start them (testkit/services.py):
loopback TCP, PostgreSQL with fsync off. 10M entries are not run by default (several GB of RAM
for Redis and minutes of import on a shared 2-core box); set ``EIR_BENCH_REMOTE_SIZES`` (e.g.
``1000,1000000,10000000``) to choose the sizes.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import statistics
import time
from collections.abc import Iterator
from typing import Any

from eir.model import Status
from eir.store.base import EntryKind, IdentityStore, ListEntry

BASE = 35_000_000_000_000
STEP = 37  # listed IMEIs are BASE + i*STEP: unique, spread over ~40 TACs
N_RANGES = 200
LOOKUPS = 3000
CONCURRENCY = 32


def _key(i: int) -> str:
    return str(BASE + i * STEP)


def _entries(n: int) -> Iterator[ListEntry]:
    """``n`` IMEIs, then ``n // 100`` TACs (capped at 10k, another number block) and 200 nested
    ranges over the IMEI block — lookups exercise exact and range paths together."""
    statuses = (Status.BLACK, Status.GREY, Status.WHITE)
    for i in range(n):
        yield ListEntry(kind=EntryKind.IMEI, key=_key(i), status=statuses[i % 3], reason="bench")
    for j in range(min(n // 100, 10_000)):
        yield ListEntry(kind=EntryKind.TAC, key=str(49_000_000 + j), status=Status.GREY)
    span = max(n * STEP // N_RANGES, 10)
    for k in range(N_RANGES):
        first = BASE + k * span
        yield ListEntry(
            kind=EntryKind.RANGE,
            key=str(first),
            last=str(first + span * 2 - 1 if k % 2 else first + span // 3),
            status=Status.BLACK,
        )


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


async def _measure(store: IdentityStore, n: int, rnd: random.Random) -> dict[str, Any]:
    gc.collect()
    t0 = time.perf_counter()
    v = await store.import_version(_entries(n), [], source=f"bench-{n}")
    t_import = time.perf_counter() - t0
    # half listed IMEIs, half unlisted ones (same TACs, so the range path is hit either way)
    queries = [
        _key(rnd.randrange(n)) if k % 2 == 0 else str(BASE + rnd.randrange(n * STEP)) for k in range(LOOKUPS)
    ]
    for q in queries[:200]:  # warm the pool and statement caches
        await store.lookup(q)
    lat: list[float] = []
    hits = 0
    for q in queries:
        t = time.perf_counter()
        r = await store.lookup(q, q + "01")
        lat.append(time.perf_counter() - t)
        hits += r.imei is not None
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(q: str) -> None:
        async with sem:
            await store.lookup(q)

    t = time.perf_counter()
    await asyncio.gather(*(one(q) for q in queries))
    t_conc = time.perf_counter() - t
    # a delta of 1000 additions and 1000 removals on top of the n entries
    t = time.perf_counter()
    adds = [
        ListEntry(kind=EntryKind.IMEI, key=str(BASE + i * STEP + 1), status=Status.GREY) for i in range(1000)
    ]
    rms = [ListEntry(kind=EntryKind.IMEI, key=_key(i), status=Status.BLACK) for i in range(1000)]
    await store.import_version(adds, [], source="delta", delta=True, removals=rms)
    t_delta = time.perf_counter() - t
    # clone sightings as the write-behind sends them: batches of 5,000 rows
    now = time.time()
    rows = [(_key(k % 300_000), "i", f"26201{k:010d}", now + k * 1e-4) for k in range(50_000)]
    t = time.perf_counter()
    for i in range(0, len(rows), 5000):
        await store.write_sightings(rows[i : i + 5000])
    t_sight = time.perf_counter() - t
    t = time.perf_counter()
    back = await store.read_sightings(now)
    t_read = time.perf_counter() - t
    return {
        "entries": v.entries,
        "import_seconds": round(t_import, 2),
        "import_rows_per_s": round(v.entries / t_import),
        "delta_import_seconds": round(t_delta, 2),
        "lookup_p50_us": round(statistics.median(lat) * 1e6),
        "lookup_p99_us": round(_pct(lat, 0.99) * 1e6),
        "lookup_hit_ratio": round(hits / len(queries), 2),
        f"lookups_per_s_{CONCURRENCY}_concurrent": round(len(queries) / t_conc),
        "sightings_written_per_s": round(len(rows) / t_sight),
        "sightings_read_per_s": round(len(back) / t_read),
    }


async def _bench_backend(kind: str, sizes: list[int]) -> dict[str, Any]:
    from testkit.services import PostgresServer, RedisServer

    out: dict[str, Any] = {}
    srv: PostgresServer | RedisServer
    try:
        srv = PostgresServer() if kind == "postgres" else RedisServer()
    except FileNotFoundError as e:
        return {"skipped": str(e)}
    srv.start()
    try:
        rnd = random.Random(1)
        for n in sizes:
            store: IdentityStore
            if isinstance(srv, PostgresServer):
                from eir.store.postgres import PostgresStore

                store = PostgresStore(
                    srv.new_database(), max_size=CONCURRENCY, command_timeout=600, keep_versions=1
                )
            else:
                from eir.store.redis import RedisStore

                srv.flushall()
                store = RedisStore(srv.url, prefix=f"bench{n}", command_timeout=600, keep_versions=1)
            await store.open()
            try:
                out[f"n={n}"] = await _measure(store, n, rnd)
            finally:
                await store.close()
            print(f"  {kind} n={n}: {out[f'n={n}']}", flush=True)
    finally:
        srv.destroy()
    return out


def run(quick: bool) -> dict[str, Any]:
    env = os.environ.get("EIR_BENCH_REMOTE_SIZES")
    sizes = [int(x) for x in env.split(",")] if env else ([1_000, 100_000] if quick else [1_000, 1_000_000])

    async def main() -> dict[str, Any]:
        return {
            "sizes": sizes,
            "note": "loopback TCP; lookup = exact IMEISV + IMEI + narrowest range/TAC in one round trip",
            "postgres": await _bench_backend("postgres", sizes),
            "redis": await _bench_backend("redis", sizes),
        }

    return asyncio.run(main())


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=os.environ.get("QUICK") == "1"), indent=2))
