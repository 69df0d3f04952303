"""``eir serve``: build the EIR from a config and run it until a signal.

Start-up order: store → lists imported on start (demo) → event publisher → checker (clone sightings
read back) → metrics → interface servers → ready file. Shutdown in uvicorn's order: first signal:
close listeners, close each association gracefully (Diameter DPR/DPA, M3UA ASP-DOWN) within
``shutdown_grace``, then cut the rest,
then write the queued clone sightings, close the store and MQTT; a second signal forces the exit.

``--workers N`` starts N-1 more processes on the same ports (SO_REUSEPORT): the kernel spreads new
connections across them, and they share the store (SQLite WAL file, PostgreSQL or Redis). Worker 0
serves one /metrics for all, each series labelled with its worker (eir/servers/metrics_http.py); a
worker that dies is started again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from eir.checker import PolicyChecker
from eir.cli import (
    EXIT_BIND,
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_STORE,
    add_config_options,
    int_range,
    load_cli_config,
)
from eir.config import Config, ConfigError
from eir.events import MqttEvents, NullEvents
from eir.logging import get_logger, setup_logging
from eir.metrics import register_metrics
from eir.servers import RunningServer
from eir.store.base import IdentityStore

GC_THRESHOLD = (20_000, 10, 10)
"""The cyclic garbage collector's thresholds while serving (CPython's default: 700, 10, 10). A
check leaves a few objects behind for a while — its answer in the checker's cache, a sighting and
its queued row with an IMSI — so at the default a young collection ran every ~200 population checks
and, at most every 100 of those, a full one over the whole heap (the cache's 100k answers included): up to
5k instructions a check under ``bench.clone --callgrind``, landing in whichever run was going, with
0.45k at this threshold. Nearly everything a check allocates is freed by reference counting
before any collection; a young collection of 20k objects takes about half a millisecond here."""


class StartupError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the EIR (Diameter S13, MAP over M3UA, metrics)")
    add_config_options(p)
    p.add_argument(
        "--workers", type=int_range(1), default=None, help="processes sharing the ports (SO_REUSEPORT)"
    )
    p.add_argument(
        "--log-level", default=None, choices=["debug", "info", "warning", "error"], help="overrides log.level"
    )
    p.add_argument(
        "--ready-file",
        default=None,
        help="write the bound addresses as JSON here once listening (for tests and scripts)",
    )
    p.add_argument("--pcap", default=None, metavar="FILE", help="record every message to this pcapng file")
    p.add_argument(
        "--pcap-max-mb", type=float, default=None, metavar="MB", help="rotate the pcapng file at this size"
    )
    p.set_defaults(func=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.workers is not None:
        overrides["workers"] = args.workers
    if args.log_level:
        overrides["log"] = {"level": args.log_level}
    record = {k: v for k, v in (("pcap", args.pcap), ("max_mb", args.pcap_max_mb)) if v is not None}
    if record:
        overrides["record"] = record
    try:
        config = load_cli_config(args, overrides=overrides)
    except ConfigError as e:
        print(f"eir: configuration error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.log.level, config.log.format, mask_identities=config.log.mask_identities)
    worker_index = int(os.environ.get("_EIR_WORKER_INDEX", "0"))
    workers = _Workers(args, config.workers) if config.workers > 1 and worker_index == 0 else None
    metrics_dir = None
    if workers is not None:
        # the other workers serve their metrics on Unix sockets here; worker 0 aggregates them
        from eir.servers.metrics_http import WORKER_DIR_ENV

        metrics_dir = tempfile.mkdtemp(prefix="eir-metrics-")
        os.environ[WORKER_DIR_ENV] = metrics_dir
        workers.start()
    try:
        return run(config, ready_file=args.ready_file, worker_index=worker_index, config_path=args.config)
    finally:
        if workers is not None:
            workers.stop(config.shutdown_grace + 5)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


class _Workers:
    """Workers 1..N-1 of ``--workers N``, watched from a thread of worker 0: one that dies is
    logged and started again (after a pause that grows while it keeps dying young)."""

    def __init__(self, args: argparse.Namespace, n: int) -> None:
        self.cmd = [sys.executable, "-m", "eir.cli", "serve", "-q"]  # worker 0 said which config
        if args.config:
            self.cmd += ["--config", args.config]
        if args.log_level:
            self.cmd += ["--log-level", args.log_level]
        self.n = n
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.started: dict[int, float] = {}
        self.pause: dict[int, float] = {}
        self.stopping = threading.Event()
        self.log = get_logger(component="workers")

    def _spawn(self, i: int) -> None:
        env = dict(os.environ, _EIR_WORKER_INDEX=str(i), EIR_WORKERS=str(self.n))
        self.procs[i] = subprocess.Popen(self.cmd, env=env)
        self.started[i] = time.monotonic()

    def start(self) -> None:
        for i in range(1, self.n):
            self._spawn(i)
        threading.Thread(target=self._watch, name="eir-workers", daemon=True).start()

    def _watch(self) -> None:
        while not self.stopping.wait(0.5):
            for i, p in list(self.procs.items()):
                rc = p.poll()
                if rc is None or self.stopping.is_set():
                    continue
                young = time.monotonic() - self.started[i] < 10
                pause = min(self.pause.get(i, 0.5) * 2, 30.0) if young else 0.5
                self.pause[i] = pause
                self.log.warning("worker_exited", worker=i, pid=p.pid, exit_code=rc, restart_in=pause)
                if self.stopping.wait(pause):
                    return
                self._spawn(i)
                self.log.info("worker_restarted", worker=i, pid=self.procs[i].pid)

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()


def run(
    config: Config, *, ready_file: str | None = None, worker_index: int = 0, config_path: str | None = None
) -> int:
    """Run the EIR until SIGINT/SIGTERM. Returns the process exit code."""
    gc.set_threshold(*GC_THRESHOLD)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    try:
        return int(runner(_main(config, ready_file, worker_index, config_path)))
    except StartupError as e:
        get_logger().error("startup_failed", error=str(e), exit_code=e.exit_code)
        return e.exit_code


async def _main(
    config: Config, ready_file: str | None, worker_index: int, config_path: str | None = None
) -> int:
    if config.workers > 1:  # every log line of this process says which worker wrote it
        import structlog

        structlog.contextvars.bind_contextvars(worker=worker_index)
    log = get_logger()
    admin_here = config.admin.enabled and worker_index == 0
    if admin_here:
        from eir.admin import AdminConfigError, check_exposure

        try:
            check_exposure(config)
        except AdminConfigError as e:
            raise StartupError(str(e), EXIT_CONFIG) from e
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)

    from eir.checker import build_checker
    from eir.store import create_store, serving_options, store_options

    options = store_options(config.store)
    store = create_store(config.store.url, config.data_dir, **serving_options(config.store))
    observations = (
        create_store(config.store.observations_url, config.data_dir, **options)
        if config.store.observations_url
        else None
    )
    try:
        await store.open()
        if observations is not None:
            await observations.open()
    except Exception as e:
        raise StartupError(f"store {config.store.url}: cannot open ({e})", EXIT_STORE) from e
    if worker_index == 0:
        await _import_on_start(config, store, log)

    events: MqttEvents | NullEvents
    # (the store: mqtt.lists_in applies list updates to it)
    events = MqttEvents.from_config(config, worker_index, store) if config.mqtt.enabled else NullEvents()
    await events.start()
    register_metrics()
    from eir.faults import REGISTRY as FAULTS

    FAULTS.max_rules = config.admin.max_fault_rules
    FAULTS.load(config.faults)  # validated with the config; changed at run time by the admin API
    if config.faults:
        log.warning("faults_configured", rules=[r.to_dict() for r in FAULTS.rules()])
    checker = build_checker(config, store, events, observations)
    await checker.start()
    from eir.control import open_channel

    # under --workers: the admin API's fault, sightings and duplicate changes reach every worker
    # (eir/control.py)
    dup = checker.duplicates
    control = open_channel(
        worker_index,
        config.workers,
        forget_sightings=checker.forget_sightings,
        forget_duplicate=dup.forget if dup is not None else None,
    )

    ready: dict[str, Any] = {"pid": os.getpid()}
    metrics_server = None
    if config.metrics.enabled:
        from eir.servers import metrics_http

        try:
            metrics_server, (mhost, mport) = await metrics_http.start(config, worker_index)
        except OSError as e:
            raise StartupError(f"metrics.listen {config.metrics.listen}: {e.strerror}", EXIT_BIND) from e
        if mport:  # (under --workers, only worker 0 listens; the others answer it on a Unix socket)
            ready["metrics"] = [mhost, mport]

    if config.record.pcap:
        from eir import recording

        try:
            rec = recording.start(
                config.record.pcap,
                max_mb=config.record.max_mb,
                keep=config.record.keep,
                worker_index=worker_index,
            )
        except OSError as e:
            raise StartupError(f"record.pcap {config.record.pcap}: {e.strerror or e}", EXIT_CONFIG) from e
        log.info("recording", path=str(rec.path), max_mb=config.record.max_mb)

    servers: list[RunningServer] = [metrics_server] if metrics_server is not None else []
    try:
        for name, enabled in (
            ("diameter", config.diameter.enabled),
            ("m3ua", config.m3ua.enabled),
            ("n5g", config.n5g.enabled),
        ):
            if not enabled:
                continue
            mod = importlib.import_module(f"eir.servers.{name}")
            try:
                srv = await mod.start(config, checker, events)
            except OSError as e:
                raise StartupError(f"{name}.listen: cannot bind ({e.strerror or e})", EXIT_BIND) from e
            servers.append(srv)
            ready[name] = [list(a) for a in srv.addresses()]
        if admin_here:
            # worker 0 only; its fault and sightings changes go to the other workers through the
            # control channel (eir/control.py), list changes through the store
            from eir import admin

            try:
                admin_server = await admin.start(config, checker, store, list(servers))
            except OSError as e:
                raise StartupError(f"admin.listen: cannot bind ({e.strerror or e})", EXIT_BIND) from e
            servers.append(admin_server)
            admin_server.api.control = control
            ready["admin"] = [list(a) for a in admin_server.addresses()]
    except BaseException:
        await _shutdown(servers, checker, store, observations, events, config.shutdown_grace)
        raise

    if control is not None:  # what this worker answers to worker 0's peers requests (GET /peers)
        from eir.control import local_peers

        control.peers = lambda: local_peers(servers)
    follower: asyncio.Task[None] | None = None
    if worker_index == 0 and config.lists.sync_from and config.lists.sync_interval > 0:
        from eir.list_sync import periodic

        follower = asyncio.create_task(
            periodic(store, config.lists.sync_from, config.data_dir, config.lists.sync_interval, log)
        )

    if ready_file:
        tmp = Path(ready_file + ".tmp")
        tmp.write_text(json.dumps(ready))
        tmp.replace(ready_file)
    from eir.banner import announce_start

    await announce_start(config, config_path, store, ready, metrics_server, events, worker_index, log)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.info("shutdown_requested", signal=signal.Signals(signum).name, grace=config.shutdown_grace)
            stop.set()
        else:
            log.warning("forced_exit", signal=signal.Signals(signum).name)
            os._exit(EXIT_FAILURE)

    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, on_signal, s)
    await stop.wait()
    if follower is not None:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    if control is not None:
        control.close()
    await _shutdown(servers, checker, store, observations, events, config.shutdown_grace)
    log.info("stopped")
    return EXIT_OK


async def _shutdown(
    servers: list[RunningServer],
    checker: PolicyChecker,
    store: IdentityStore,
    observations: IdentityStore | None,
    events: MqttEvents | NullEvents,
    grace: float,
) -> None:
    results = await asyncio.gather(*(s.shutdown(grace) for s in servers), return_exceptions=True)
    log = get_logger()
    for s, r in zip(servers, results, strict=True):
        if isinstance(r, BaseException):
            iface = {"diameter": "s13", "m3ua": "map"}.get(s.name, s.name)  # the names logs use
            log.warning("shutdown_error", interface=iface, error=repr(r))
    try:
        await checker.close()  # the sightings still queued go to the store before it closes
    except Exception as e:
        log.warning("shutdown_error", component="sightings", error=repr(e))
    for st in (observations, store):
        if st is not None:
            with contextlib.suppress(Exception):
                await st.close()
    with contextlib.suppress(Exception):
        await events.close()
    from eir import recording

    recording.stop()


async def _import_on_start(config: Config, store: IdentityStore, log: Any) -> None:
    """Import the configured lists once, into an empty store (so ``make run`` has demo lists)."""
    if not config.lists.import_on_start:
        return
    if await store.versions():
        return
    from eir.lists import import_files

    try:
        version = await import_files(store, config.lists.import_on_start)
    except Exception as e:
        raise StartupError(f"lists.import_on_start: {e}", EXIT_CONFIG) from e
    log.info("lists_imported", files=config.lists.import_on_start, version=getattr(version, "id", None))
