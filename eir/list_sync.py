"""Following a central list (``lists.sync_from``): one conditional fetch and import, shared by
``eir lists sync`` and ``eir serve`` (which repeats it every ``lists.sync_interval`` seconds in worker
0, so an EIR follows a national list without a cron job beside it).

A fetch that fails, or a file with bad rows, leaves the active version as it was and is tried again
at the next interval (the validators are remembered only after a successful import, in
:mod:`eir.formats.sync`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from eir.store.base import IdentityStore

__all__ = ["SyncOutcome", "periodic", "sync_once"]


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    ok: bool
    message: str
    """One line for a person: what was imported, "not modified", or why nothing was."""
    version: int | None = None


async def sync_once(
    store: IdentityStore, url: str, data_dir: str, *, fmt: str | None = None, timeout: float = 30.0
) -> SyncOutcome:
    """GET ``url`` if changed since the last import of it, validate, import (a new list version, or
    a reference table)."""
    from eir.formats.sync import SyncError, fetch, remember
    from eir.lists import ListFileError, ParsedReference, import_parsed, import_reference, parse_file

    try:
        got = await asyncio.to_thread(fetch, url, data_dir, timeout=timeout)
    except SyncError as e:
        return SyncOutcome(False, str(e))
    if got.status == 304 or got.path is None:
        return SyncOutcome(True, f"{url}: not modified")
    path = got.path
    try:
        parsed = await asyncio.to_thread(parse_file, path, fmt=fmt)
    except ListFileError as e:
        return SyncOutcome(False, str(e))
    if not parsed.ok:
        report = parsed.report(20)
        return SyncOutcome(False, f"{url}: {parsed.bad_count} bad rows, nothing imported\n{report}")
    src = f"sync {path.name}"
    if isinstance(parsed, ParsedReference):
        table = await import_reference(store, parsed, source=src)
        msg = f"{url}: imported the {table.name} table ({parsed.format}): {parsed.summary()}"
        version = None
    else:
        v = await import_parsed(store, parsed, source=src)
        what = "delta" if parsed.delta else "full"
        msg = f"{url}: imported version {v.id} ({what} {parsed.format} list): {parsed.summary()}"
        version = v.id
    remember(url, data_dir, got)
    return SyncOutcome(True, msg, version)


async def periodic(store: IdentityStore, url: str, data_dir: str, interval: float, log: Any) -> None:
    """``eir serve``'s follower: :func:`sync_once` now and every ``interval`` seconds until cancelled;
    each outcome is one log line (``lists_sync``), a failure a warning."""
    while True:
        try:
            out = await sync_once(store, url, data_dir)
        except Exception as e:  # a store error: logged, tried again next time
            out = SyncOutcome(False, f"{url}: {type(e).__name__}: {e}")
        if out.ok:
            log.info("lists_sync", url=url, result=out.message.splitlines()[0], version=out.version)
        else:
            log.warning("lists_sync_failed", url=url, error=out.message.splitlines()[0])
        await asyncio.sleep(interval)
