"""Clone detection at line rate: S13 and MAP with an IMSI in every request, against the same runs
without one, in one ``eir serve`` per observation store (SQLite, PostgreSQL, Redis).

A realistic load test simulates a population of subscribers: every check carries an IMSI, and
most IMEI/IMSI pairs are fresh, so the clone rule records a new sighting per check. The figures:

* ``s13_no_imsi`` / ``s13_imeis_no_imsi`` / ``s13_population``: the simulated MME's pipeline,
  window 128: one IMEI without an IMSI; IMEIs drawn from 1M without an IMSI; IMEIs drawn from the
  next 1M each with an IMSI drawn from 100k (a fresh pair for most requests, and a fresh IMEI for the
  checker's answer cache: :data:`ROUND_SPAN`);
* ``map_no_imsi`` / ``map_imeis_no_imsi`` / ``map_population``: the simulated MSC, MAP v3, window
  128, likewise over the two millions after those (:data:`MAP_IMEI`), so that its pairs are fresh
  too; the IMSI travels in the Huawei form (the standard checkIMEI has none);
* the ratios population / no-IMSI (the issue's target ≥ 0.8: it also pays a list lookup per fresh
  IMEI, which one repeated IMEI answers from the checker's cache) and population / as many fresh
  IMEIs without IMSI (what the sightings alone cost), and the EIR's CPU per check.

Each interface's three runs go in :data:`REPEAT` rounds (``--repeat N``, 3 by default, 1 with
``--quick``), each round over fresh IMEIs; a figure is the median of the rounds' and each ratio the
median of the rounds' own ratios, its range in ``…_range`` (the per-round figures in
``<iface>_rounds``): on a shared virtual machine the EIR's CPU per check drifts by a third within
minutes, and a round's three runs, adjacent in time, share the drift.

Run alone: ``.venv/bin/python -m bench.clone [--quick] [--repeat N] [--list-entries N]
[--stores sqlite,postgres,redis]``. Besides the rate ratios it prints the same ratios from the
EIR's CPU per check (``…_cpu``), steadier on a shared machine. ``--profile DIR`` runs each
``eir serve`` under cProfile (``DIR/<store>.prof``, read with ``python -m pstats``): what a check
and the write-behind cost inside the EIR.

The CPU figures are load-independent enough to compare runs taken on a busy shared machine:
``eir_us_per_check`` (the EIR process, /proc), ``store_server_us_per_check`` (the PostgreSQL or Redis
server process and its children, /proc) and their sum ``total_us_per_check`` — the two share the
cores in a single-box lab, so the ratio to hold to 0.8 is ``…_population_vs_no_imsi_cpu_total``
(the no-IMSI run's total over the population run's). /proc counts in 10 ms ticks: 100k checks per run
give 0.1 µs per check. The store server's cost per sighting alone is ``--write-cost``'s
``server_cpu_us_per_row``. ``--callgrind DIR`` runs each ``eir serve`` under ``valgrind --tool=callgrind``
instead and reports the EIR's instructions per check (``eir_instr_per_check``, zeroed and dumped
around each run with ``callgrind_control``; the write-behind's threads included): repeatable to a
fraction of a percent whatever else the machine runs, the instruction ratio
``…_population_vs_no_imsi_instr`` next to the CPU one (instructions are not time: a cache miss costs
no more than a hit there). Under valgrind the EIR runs about 50 times slower; use ``--count 10000``.

``--write-cost`` measures instead what the write-behind costs the EIR per sighting: batches of
5,000 rows (the default ``batch_size``) of fresh pairs written by ``write_sightings`` to each store,
and the writing process's CPU time (its threads included: SQLite writes in a worker thread) per row.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import testkit.eirproc  # noqa: E402
from simulations.mme import SimulatedMme  # noqa: E402
from simulations.msc import SimulatedMsc  # noqa: E402
from testkit.eirproc import EirProcess  # noqa: E402
from testkit.proc import cpu_seconds  # noqa: E402

IMEI, IMSI = "35209900000000", "262010000000000"
MAP_IMEI = "35209902000000"
"""The MAP runs' IMEI, and the start of their spreads, two millions after the S13 runs' (another
TAC): run after the S13 runs in the same EIR, with the same IMEIs they would meet the S13
population's pairs again — a sighting seen before, not the fresh pair for most requests the issue
measures (nor a separate handset population, as an MSC's and an MME's are)."""
POPULATION = (1_000_000, 100_000)
WARM_IMEI = "35209800000000"
"""The warm-ups' population, below every round's IMEIs (:data:`ROUND_SPAN`): a serving EIR has
its write-behind's statements compiled already (SQLite's parse of a 500-row INSERT is ≈ 1.4M
instructions, the statements of the batches' power-of-two tails as many more): without a warm-up
with IMSIs, the first population run paid them, ≈ 1.1k of the S13 run's instructions a check
under ``--callgrind``'s 10k checks. Its pairs are never met again: nothing measured is cached."""
WARM_POPULATION = (100_000, 100_000)
"""The warm-ups' IMEIs and IMSIs (S13 from :data:`WARM_IMEI`, MAP a million further): 5,000 checks
over them are nearly all fresh pairs, as in the runs measured."""


def tree_cpu(pid: int | None) -> float | None:
    """CPU seconds of a process and its children (a PostgreSQL server's backends), from /proc."""
    if pid is None:
        return None
    pids = {pid}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                pids.add(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    total = [c for c in (cpu_seconds(p) for p in pids) if c is not None]
    return sum(total) if total else None


def _figure(
    name: str,
    count: int,
    seconds: float,
    cpu: float | None,
    server_cpu: float | None = None,
    instructions: int | None = None,
) -> dict[str, Any]:
    fig: dict[str, Any] = {"checks": count, "checks_per_s": round(count / seconds, 1)}
    if cpu and not instructions:  # under valgrind the EIR's CPU time is valgrind's
        fig["eir_us_per_check"] = round(cpu / count * 1e6, 2)
    if server_cpu is not None and not instructions:
        # (under valgrind a check takes ~50 times longer, and the server's work by the clock — its
        # checkpoints, vacuum, the other instance's reads every share_interval — lands on fewer
        # checks: not a figure per check)
        fig["store_server_us_per_check"] = round(server_cpu / count * 1e6, 2)
    if "eir_us_per_check" in fig:
        fig["total_us_per_check"] = round(
            fig["eir_us_per_check"] + fig.get("store_server_us_per_check", 0.0), 2
        )
    if instructions:
        fig["eir_instr_per_check"] = round(instructions / count)
    print(
        f"    {name:20s} {fig['checks_per_s']:9.1f}/s  "
        + (f"{fig['eir_instr_per_check']} EIR instructions per check" if instructions else "")
        + (f"{fig['eir_us_per_check']} us EIR CPU per check" if "eir_us_per_check" in fig else "")
        + (
            f", {fig['store_server_us_per_check']} us store server CPU"
            if "store_server_us_per_check" in fig
            else ""
        ),
        flush=True,
    )
    return fig


def _callgrind(pid: int, what: str) -> int | None:
    """``callgrind_control`` on the EIR under valgrind: ``zero`` the counters, or ``dump`` them and
    return the instructions counted since (the dump's ``summary:`` line)."""
    assert CALLGRIND is not None
    if what == "zero":
        subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)
        return None
    before = set(CALLGRIND.glob(f"*.{pid}*"))
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
    for _ in range(600):  # the dump is written by the EIR process between two of its own instructions
        new = [f for f in set(CALLGRIND.glob(f"*.{pid}*")) - before if f.stat().st_size]
        for f in new:
            for line in f.read_text(errors="replace").splitlines():
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
        time.sleep(0.1)
    raise RuntimeError("callgrind wrote no dump")


def _sys_seconds(pid: int) -> float | None:
    """The stime of a process (/proc/PID/stat field 15), its threads included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[12]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


async def _settle(pid: int) -> None:
    """Wait (at most 60 s) until the EIR is idle, so that a run is not charged with the write-behind
    of the run before it (the MAP no-IMSI run once carried 4.6k to 9.2k instructions per check of the
    S13 population run's sightings)."""
    step = 1.0 if CALLGRIND is not None else 0.5
    last = cpu_seconds(pid)
    for _ in range(int(60 / step)):
        await asyncio.sleep(step)
        now = cpu_seconds(pid)
        if last is None or now is None or now - last < 0.05 * step:
            return
        last = now


async def _measure(
    eir: EirProcess,
    iface: str,
    count: int,
    load: Callable[..., Awaitable[Any]],
    server: int | None = None,
    imei: str = IMEI,
) -> dict[str, Any]:
    """The three runs of one interface: one IMEI without IMSI, IMEIs spread without IMSI, and
    another spread as wide each with an IMSI; the EIR's CPU per check from /proc. ``--repeat`` rounds
    of the three, one after the other (a round's runs share the machine's state of the moment),
    each round over IMEIs of its own (:data:`ROUND_SPAN`) so that its pairs are fresh: a figure is
    the median of its rounds, and ``rounds`` keeps each round's (:func:`_ratios` takes a ratio per
    round)."""
    rounds: list[dict[str, Any]] = []
    for k in range(_rounds):
        spread = int(imei) + k * ROUND_SPAN
        one: dict[str, Any] = {}
        for name, first, kw in (
            (f"{iface}_no_imsi", imei, {}),
            (f"{iface}_imeis_no_imsi", f"{spread:014d}", {"population": POPULATION}),
            (
                f"{iface}_population",
                f"{spread + POPULATION[0]:014d}",
                {"imsi": IMSI, "population": POPULATION},
            ),
        ):
            assert eir.proc is not None
            await _settle(eir.proc.pid)
            if CALLGRIND is not None:
                _callgrind(eir.proc.pid, "zero")
            c0, s0, k0 = cpu_seconds(eir.proc.pid), tree_cpu(server), _sys_seconds(eir.proc.pid)
            s = await load(first, count=count, window=128, **kw)
            c1, s1, k1 = cpu_seconds(eir.proc.pid), tree_cpu(server), _sys_seconds(eir.proc.pid)
            instr = _callgrind(eir.proc.pid, "dump") if CALLGRIND is not None else None
            if sum(s.verdicts.values()) != count or set(s.verdicts) - {"white", "grey"}:
                raise RuntimeError(f"{name}: unexpected verdicts {dict(s.verdicts)}")
            one[name] = _figure(
                name,
                count,
                s.seconds,
                c1 - c0 if c0 is not None and c1 is not None else None,
                s1 - s0 if s0 is not None and s1 is not None else None,
                instr,
            )
            if k0 is not None and k1 is not None and CALLGRIND is None:
                # the kernel's part of the EIR's CPU (sockets, and the write-behind thread's GIL
                # hand-overs and disk writes): no instruction count sees it
                one[name]["eir_sys_us_per_check"] = round((k1 - k0) / count * 1e6, 2)
        rounds.append(one)
    out: dict[str, Any] = {name: _median_figure([r[name] for r in rounds]) for name in rounds[0]}
    out[f"{iface}_rounds"] = rounds
    return out


def _median_figure(figs: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's figures from several rounds: each number the median of the rounds'."""
    out: dict[str, Any] = {}
    for key in figs[0]:
        values = sorted(f[key] for f in figs if f.get(key) is not None)
        if values:
            m = statistics.median(values)
            out[key] = int(m) if all(isinstance(v, int) for v in values) and m == int(m) else round(m, 2)
    if len(figs) > 1:
        out["rounds"] = len(figs)
    return out


async def _s13(eir: EirProcess, count: int, server: int | None = None) -> dict[str, Any]:
    mme = await SimulatedMme.connect(*eir.diameter)
    try:
        await mme.load(IMEI, count=2000, window=64)  # warm-up
        await mme.load(WARM_IMEI, count=5000, window=128, imsi=IMSI, population=WARM_POPULATION)
        return await _measure(eir, "s13", count, mme.load, server)
    finally:
        await mme.close()


async def _map(eir: EirProcess, count: int, server: int | None = None) -> dict[str, Any]:
    msc = await SimulatedMsc.connect(*eir.m3ua)
    try:
        await msc.load(MAP_IMEI, count=2000, window=64, version=3)  # warm-up
        await msc.load(
            f"{int(WARM_IMEI) + 1_000_000:014d}",
            count=5000,
            window=128,
            version=3,
            imsi=IMSI,
            population=WARM_POPULATION,
        )
        return await _measure(eir, "map", count, functools.partial(msc.load, version=3), server, MAP_IMEI)
    finally:
        await msc.close()


_RATIOS = (
    # name suffix, figure, population over no IMSI (rate) or no IMSI over population (CPU)
    ("", "checks_per_s", False),
    ("_cpu", "eir_us_per_check", True),
    ("_cpu_total", "total_us_per_check", True),
    ("_instr", "eir_instr_per_check", True),
)


def _ratio(a: dict[str, Any], b: dict[str, Any], key: str, inverse: bool) -> float | None:
    if not a.get(key) or not b.get(key):
        return None
    return round(float(a[key] / b[key] if inverse else b[key] / a[key]), 3)


def _per_round(rounds: list[dict[str, Any]], over: str, run: str, key: str, inverse: bool) -> list[float]:
    """Run ``run``'s figure ``key`` against run ``over``'s, one ratio per round that has both."""
    return [x for x in (_ratio(o[over], o[run], key, inverse) for o in rounds) if x is not None]


def _ratios(r: dict[str, Any]) -> None:
    """The ratios population / no IMSI (``…_cpu``: the EIR's CPU alone, what the rate ratio would
    be with the EIR alone on the cores — the wall-clock rate also pays the client's CPU and every
    other process's, on a shared machine most of the noise; ``…_cpu_total``: the EIR's and the store
    server's CPU together, a single-box lab; ``…_instr``: instructions) and population / as many
    fresh IMEIs without IMSI (``…_vs_imeis_no_imsi``: what the clone rule's sightings cost). Each is
    the median of the rounds' ratios (a round's three runs are adjacent in time), with their range
    in ``…_range``."""
    for iface in ("s13", "map"):
        rounds = r.get(f"{iface}_rounds") or []
        pop = f"{iface}_population"
        for suffix, key, inverse in _RATIOS:
            per = _per_round(rounds, f"{iface}_no_imsi", pop, key, inverse)
            if per:
                r[f"{iface}_population_vs_no_imsi{suffix}"] = round(statistics.median(per), 3)
                if len(per) > 1:
                    r[f"{iface}_population_vs_no_imsi{suffix}_range"] = [min(per), max(per)]
        per = _per_round(rounds, f"{iface}_imeis_no_imsi", pop, "checks_per_s", False)
        if per:
            r[f"{iface}_population_vs_imeis_no_imsi"] = round(statistics.median(per), 3)


async def _one_store(
    tmp: Path, name: str, observations_url: str | None, count: int, server: int | None = None
) -> dict[str, Any]:
    store: dict[str, Any] = {}
    if observations_url:
        store["observations_url"] = observations_url
    lists = [str(_list_file(tmp, LIST_ENTRIES))] if LIST_ENTRIES else []
    if INDEX_MAX_KEYS is not None:
        store["index_max_keys"] = INDEX_MAX_KEYS
    eir = EirProcess(
        tmp / name,
        {"log": {"level": "warning"}, "lists": {"import_on_start": lists}, "store": store},
    )
    wrapper: list[str] | None = None
    if PROFILE is not None:
        wrapper = [sys.executable, "-m", "cProfile", "-o", str(PROFILE / f"{name}.prof"), "-m", "eir.cli"]
    elif CALLGRIND is not None:
        wrapper = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={CALLGRIND / name}.%p",
            sys.executable,
            "-m",
            "eir.cli",
        ]
    if wrapper is not None:
        command = testkit.eirproc.eir_command
        testkit.eirproc.eir_command = lambda: wrapper
        try:
            eir.start(timeout=600 if CALLGRIND is not None else 60)
        finally:
            testkit.eirproc.eir_command = command
    else:
        eir.start()
    try:
        r = await _s13(eir, count, server)
        r |= await _map(eir, count, server)
    finally:
        eir.stop()
    _ratios(r)
    print(
        f"  {name}: population / no IMSI: S13 {r.get('s13_population_vs_no_imsi')}x, "
        f"MAP {r.get('map_population_vs_no_imsi')}x (by EIR CPU: S13 "
        f"{r.get('s13_population_vs_no_imsi_cpu')}x, MAP {r.get('map_population_vs_no_imsi_cpu')}x; "
        f"by EIR + store server CPU: S13 {r.get('s13_population_vs_no_imsi_cpu_total')}x, "
        f"MAP {r.get('map_population_vs_no_imsi_cpu_total')}x; rounds' range by EIR CPU: S13 "
        f"{r.get('s13_population_vs_no_imsi_cpu_range')}, "
        f"MAP {r.get('map_population_vs_no_imsi_cpu_range')}; "
        "by EIR instructions: S13 "
        f"{r.get('s13_population_vs_no_imsi_instr')}x, MAP {r.get('map_population_vs_no_imsi_instr')}x); "
        "/ as many fresh IMEIs without IMSI: "
        f"S13 {r.get('s13_population_vs_imeis_no_imsi')}x, "
        f"MAP {r.get('map_population_vs_imeis_no_imsi')}x",
        flush=True,
    )
    return r


STORES = ("sqlite", "postgres", "redis")
PROFILE: Path | None = None
"""``--profile``: the directory of each ``eir serve``'s cProfile output."""
CALLGRIND: Path | None = None
"""``--callgrind``: the directory of each ``eir serve``'s callgrind dumps."""
WRITE_BATCH, WRITE_BATCHES = 5_000, 20
REPEAT = 3
"""Rounds of each interface's three runs (``--repeat``; one under ``--quick`` and ``--callgrind``,
whose counts repeat to a fraction of a percent). On a shared virtual machine the EIR's CPU per check
drifts by a third within minutes: rounds interleaved and their medians make the ratios comparable."""
ROUND_SPAN = 4 * POPULATION[0]
"""IMEIs between two rounds' spreads. Within a round, the S13 runs without and with IMSI draw from
two millions of their own, the MAP runs from the next two (:data:`MAP_IMEI`): every round meets
fresh pairs, and a population run meets IMEIs the checker has not just cached. (The two spreads
used to be one: a load's requests follow the same sequence of IMEIs, so the population run met the
IMEIs its no-IMSI run had just put in the checker's 100k answer cache — with a list loaded a
population check then cost less than a check without IMSI.) The rounds do not
start from the same state for all that: the tracker holds the rounds before (≈ 95k IMEIs more per
population run, up to ``max_tracked_imeis``, 200k, then evicting), which adjacency in time does not
cancel."""
_rounds = REPEAT
"""The rounds of the current :func:`run` (set from its arguments every time)."""
LIST_ENTRIES = 0
"""``--list-entries N``: the EIR starts with a list of N exact IMEI entries (white and grey) spread
over the populations' IMEIs, so that a fresh IMEI is looked up in SQLite as in a lab, instead of no
list version at all (the default, and the figures quoted for issue 13): the single-IMEI run keeps
answering from the checker's cache, the spread runs pay a look-up per fresh IMEI."""
INDEX_MAX_KEYS: int | None = None
"""``--index-max-keys N``: the EIR's ``store.index_max_keys`` (0: every look-up a statement, to
measure what the SQLite store's in-memory list index saves); None: the EIR's default."""


def _list_file(tmp: Path, n: int) -> Path:
    """A CSV of ``n`` exact entries, evenly over every round's S13 and MAP IMEIs."""
    path = tmp / f"list-{n}.csv"
    if not path.exists():
        span = _rounds * ROUND_SPAN
        step = max(1, span // n)
        with path.open("w") as f:
            f.write("imei,status,imsi,reason\n")
            for i in range(n):
                imei = int(IMEI) + (i * step) % span
                f.write(f"{imei:014d},{'grey' if i % 2 else 'white'},,bench\n")
    return path


async def _write_cost(store: Any, server: int | None = None) -> dict[str, Any]:
    """The writer's CPU per row of ``write_sightings``, batches as the write-behind sends them."""
    now = time.time()
    n = WRITE_BATCH * WRITE_BATCHES
    rows = [
        (f"35{k * 7919 % POPULATION[0]:012d}", "i", f"26201{k % POPULATION[1]:010d}", now + k * 1e-5)
        for k in range(n)
    ]
    await store.write_sightings(rows[:WRITE_BATCH], writer="warm")  # connections, scripts, plans
    c0, t0, s0 = time.process_time(), time.perf_counter(), tree_cpu(server)
    for i in range(0, n, WRITE_BATCH):
        await store.write_sightings(rows[i : i + WRITE_BATCH], writer="bench")
    c1, t1, s1 = time.process_time(), time.perf_counter(), tree_cpu(server)
    fig: dict[str, Any] = {
        "rows": n,
        "client_cpu_us_per_row": round((c1 - c0) / n * 1e6, 2),
        "rows_per_s": round(n / (t1 - t0)),
    }
    if s0 is not None and s1 is not None:
        fig["server_cpu_us_per_row"] = round((s1 - s0) / n * 1e6, 2)
    print(f"    write_sightings: {fig}", flush=True)
    return fig


def write_cost(stores: tuple[str, ...] = STORES) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        from testkit.services import PostgresServer, RedisServer

        out: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="bench-clone-") as td:
            for kind in stores:
                store: Any
                if kind == "sqlite":
                    from eir.store.sqlite import SqliteStore

                    store = SqliteStore(f"sqlite:///{Path(td) / 'eir.db'}")
                    await store.open()
                    try:
                        print(f"  {kind}:", flush=True)
                        out[kind] = await _write_cost(store)
                    finally:
                        await store.close()
                    continue
                try:
                    srv = PostgresServer() if kind == "postgres" else RedisServer()
                except FileNotFoundError as e:
                    out[kind] = {"skipped": str(e)}
                    continue
                srv.start()
                try:
                    if isinstance(srv, PostgresServer):
                        from eir.store.postgres import PostgresStore

                        store = PostgresStore(srv.new_database())
                    else:
                        from eir.store.redis import RedisStore

                        store = RedisStore(srv.url)
                    await store.open()
                    try:
                        print(f"  {kind}:", flush=True)
                        out[kind] = await _write_cost(store, srv.proc.pid if srv.proc else None)
                    finally:
                        await store.close()
                finally:
                    srv.destroy()
        return out

    return asyncio.run(main())


def run(
    quick: bool, stores: tuple[str, ...] = STORES, count: int | None = None, repeat: int | None = None
) -> dict[str, Any]:
    global _rounds
    count = count or (20_000 if quick else 100_000)
    _rounds = max(1, repeat or (1 if quick or CALLGRIND is not None else REPEAT))

    async def main() -> dict[str, Any]:
        from testkit.services import PostgresServer, RedisServer

        out: dict[str, Any] = {
            "population": {"imeis": POPULATION[0], "imsis": POPULATION[1]},
            "rounds": _rounds,
            "list_entries": LIST_ENTRIES,
            "index_max_keys": INDEX_MAX_KEYS,
        }
        with tempfile.TemporaryDirectory(prefix="bench-clone-") as td:
            tmp = Path(td)
            if "sqlite" in stores:
                out["sqlite"] = await _one_store(tmp, "sqlite", None, count)
            for kind in [k for k in ("postgres", "redis") if k in stores]:
                try:
                    srv = PostgresServer() if kind == "postgres" else RedisServer()
                except FileNotFoundError as e:
                    out[kind] = {"skipped": str(e)}
                    continue
                srv.start()
                try:
                    url = srv.new_database() if isinstance(srv, PostgresServer) else srv.url
                    pid = srv.proc.pid if srv.proc is not None else None
                    out[kind] = await _one_store(tmp, kind, url, count, pid)
                finally:
                    srv.destroy()
        return out

    try:
        import uvloop

        return uvloop.run(main())
    except ImportError:  # pragma: no cover
        return asyncio.run(main())


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.clone", description=__doc__)
    p.add_argument("--quick", action="store_true", help="20k checks per run instead of 100k")
    p.add_argument("--count", type=int, help="checks per run")
    p.add_argument("--stores", default=",".join(STORES), help="comma-separated: sqlite,postgres,redis")
    p.add_argument("--profile", metavar="DIR", help="run each eir serve under cProfile, DIR/<store>.prof")
    p.add_argument(
        "--callgrind", metavar="DIR", help="run each eir serve under callgrind: instructions per check"
    )
    p.add_argument("--write-cost", action="store_true", help="only the write-behind's CPU per row")
    p.add_argument(
        "--list-entries",
        type=int,
        default=0,
        metavar="N",
        help="start with a list of N entries (default none)",
    )
    p.add_argument(
        "--index-max-keys",
        type=int,
        metavar="N",
        help="the EIR's store.index_max_keys (0: no in-memory list index; default: the EIR's own)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        help=f"rounds of each interface's runs (default {REPEAT}; 1 with --quick, --callgrind)",
    )
    a = p.parse_args()
    stores = tuple(a.stores.split(","))
    if a.write_cost:
        print(json.dumps(write_cost(stores), indent=2))
        sys.exit()
    LIST_ENTRIES = max(0, a.list_entries)
    INDEX_MAX_KEYS = a.index_max_keys
    if a.profile:
        PROFILE = Path(a.profile).resolve()
        PROFILE.mkdir(parents=True, exist_ok=True)
    if a.callgrind:
        CALLGRIND = Path(a.callgrind).resolve()
        CALLGRIND.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(a.quick, stores, a.count, a.repeat), indent=2))
