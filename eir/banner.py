"""What ``eir serve`` says once it is listening: one block for a person at a terminal, one structured
``eir_ready`` log line otherwise (JSON when logs are JSON).

It names the version, the config file, the store (password masked), the active list version and its
size, every listener by interface (``s13``, ``map``, ``n5g`` — the names of metrics and logs), address
and transport, the metrics URL, the admin API URL (when the config has ``admin.listen``) and the MQTT
broker. Nothing secret: tokens and passwords never appear.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import IO, Any

from eir import __version__
from eir.config import Config, describe_store, parse_hostport
from eir.metrics import LIST_ENTRIES
from eir.store.base import IdentityStore

INTERFACE_OF_SECTION = {"diameter": "s13", "m3ua": "map", "n5g": "n5g"}
"""Config sections (and server modules) → the interface names used everywhere a person reads."""


@dataclass(frozen=True, slots=True)
class ListInfo:
    version: int | None
    entries: int
    pairings: int


async def list_info(store: IdentityStore) -> ListInfo:
    """The active list version and its size (one ``versions()`` call)."""
    for v in await store.versions():
        if v.active:
            return ListInfo(v.id, v.entries, v.pairings)
    return ListInfo(None, 0, 0)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def admin_url(config: Config, bound: list[Any] | None = None) -> str | None:
    """``http://HOST:PORT/api/v1`` of the admin API: its first bound address (``bound``, from the
    ready file), else the first of ``admin.listen``; None when the config has no enabled admin API."""
    admin = getattr(config, "admin", None)
    if admin is None or getattr(admin, "enabled", True) is False:
        return None
    if bound:
        host, port = str(bound[0][0]), int(bound[0][1])
    else:
        listen = getattr(admin, "listen", None)
        first = listen[0] if isinstance(listen, list | tuple) and listen else listen
        if not first:
            return None
        try:
            host, port = parse_hostport(str(first), "admin.listen")
        except ValueError:
            return None
    scheme = "https" if getattr(admin, "tls_cert", None) else "http"
    return f"{scheme}://{_url_host(host)}:{port}/api/v1"


def fields(
    config: Config,
    *,
    config_path: str | None,
    lists: ListInfo,
    listeners: list[tuple[str, str, int, str]],
    metrics_url: str | None,
    mqtt_broker: str | None = None,
    admin_bound: list[Any] | None = None,
) -> dict[str, Any]:
    """The banner's content. ``listeners``: (interface, host, port, transport)."""
    out: dict[str, Any] = {
        "version": __version__,
        "config": config_path or "built-in defaults",
        "store": describe_store(config),
        "list_version": lists.version,
        "list_entries": lists.entries,
        "list_pairings": lists.pairings,
        "listeners": [
            {"interface": i, "address": f"{_url_host(h)}:{p}", "transport": t} for i, h, p, t in listeners
        ],
        "metrics": metrics_url,
        "admin": admin_url(config, admin_bound),
        "mqtt": mqtt_broker,
    }
    if config.workers > 1:
        out["workers"] = config.workers
    return {k: v for k, v in out.items() if v is not None}


def render(f: dict[str, Any]) -> str:
    """The block for a terminal."""
    lists = (
        f"version {f['list_version']}, {f['list_entries']} entries, {f['list_pairings']} pairings/locks"
        if "list_version" in f
        else "none imported yet (eir lists import FILE)"
    )
    rows = [
        ("config", f["config"]),
        ("store", f["store"]),
        ("lists", lists),
    ]
    for lst in f["listeners"]:
        rows.append((lst["interface"], f"{lst['address']} ({lst['transport']})"))
    for key in ("metrics", "admin", "mqtt", "workers"):
        if key in f:
            rows.append((key, str(f[key])))
    width = max(len(k) for k, _ in rows)
    title = f"eir-emulator {f['version']} ready"
    lines = [title, "-" * len(title)] + [f"  {k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines) + "\n"


def announce(log: Any, f: dict[str, Any], stream: IO[str] | None = None, *, tty: bool | None = None) -> None:
    """The block on a terminal (then a short ``eir_ready`` line), else one ``eir_ready`` line with
    every field."""
    stream = stream or sys.stderr
    if tty is None:
        tty = bool(getattr(stream, "isatty", lambda: False)())
    if tty:
        stream.write(render(f))
        stream.flush()
        log.info("eir_ready")
    else:
        log.info("eir_ready", **f)


async def announce_start(
    config: Config,
    config_path: str | None,
    store: IdentityStore,
    ready: dict[str, Any],
    metrics_server: Any,
    events: Any,
    worker_index: int,
    log: Any,
) -> None:
    """What ``eir serve`` says once listening (``ready``: the ready file's addresses): worker 0 the
    banner, the other workers that they are ready."""
    if worker_index:
        log.info("eir_ready", pid=os.getpid())
        return
    try:
        lists = await list_info(store)
    except Exception:  # the store went away since it opened: the checks will say so
        lists = ListInfo(None, 0, 0)
    LIST_ENTRIES.labels("equipment").set(lists.entries)
    LIST_ENTRIES.labels("pairing").set(lists.pairings)
    listeners = [
        (INTERFACE_OF_SECTION[name], str(h), int(p), str(t))
        for name in ("diameter", "m3ua", "n5g")
        for h, p, t in ready.get(name, [])
    ]
    metrics_url = None
    if "metrics" in ready:
        h, p = ready["metrics"]
        metrics_url = f"{metrics_server.scheme}://{f'[{h}]' if ':' in h else h}:{p}/metrics"
    f = fields(
        config,
        config_path=config_path,
        lists=lists,
        listeners=listeners,
        metrics_url=metrics_url,
        mqtt_broker=getattr(events, "broker", None),
        admin_bound=ready.get("admin"),
    )
    tty = sys.stderr.isatty() and config.log.format != "json"
    announce(log, f if tty else {"pid": os.getpid(), **f}, tty=tty)
