"""Clone sightings at line rate: counted in memory, written behind to the store in batches.

The clone rule asks, for every check that carries an IMSI (or an origin), how many distinct IMSIs
and origins saw this IMEI within ``policy.clone.window``. Writing each sighting to the store before
answering made it the dominant cost of a realistic load (a fresh IMEI/IMSI pair per request).
:class:`SightingTracker` answers from memory and keeps the store as the durable, shared copy:

* **Hot path** (:meth:`SightingTracker.observe`, synchronous): per IMEI, the IMSIs and origins seen
  with their newest time; counts only what lies inside the window. Bounded per IMEI
  (``max_values_per_imei`` of each kind: the oldest is forgotten first — the rule needs far fewer)
  and in total (``max_tracked_imeis``: the IMEI tracked longest is forgotten first).
* **Write-behind**: a sighting that is new, or whose previous time is older than
  ``min(1 s, window / 100)``, is queued; a writer task sends the queue to the store every
  ``flush_interval`` seconds (or as soon as ``batch_size`` rows wait) in one batch
  (``IdentityStore.write_sightings``: one SQLite transaction, one PostgreSQL statement, one Redis
  script). The queue holds ``max_pending`` rows: when the writer falls behind (a slow or absent
  store), the oldest unwritten sightings are dropped and counted (``eir_sightings_dropped_total``),
  never a check delayed. A failed batch is dropped and counted the same way.
* **Restart**: :meth:`SightingTracker.start` reads the sightings inside the window back (the newest
  ``4 * max_tracked_imeis`` rows at most), so a restart keeps the window. A clean stop
  (:meth:`SightingTracker.close`) writes everything queued; a ``kill -9`` loses what was queued
  since the last batch: at most ``flush_interval`` seconds of new sightings, and at most
  ``max_pending`` rows.
* **Several instances** (``--workers``, or several ``eir serve`` on one PostgreSQL/Redis/SQLite
  file): every ``share_interval`` seconds each reads the rows written since its last read and
  merges them. An instance sees another's sightings within ``flush_interval + share_interval``
  (1.2 s by default); a clone whose sightings arrive at two instances within that time is caught by
  the first check after it, one or two checks late rather than never.
* ``eir check`` (the CLI) records nothing: :meth:`SightingTracker.load_imei` reads the one IMEI's
  stored sightings and the rule is evaluated against them plus the request itself.

Times are wall-clock seconds (the store shares them between processes); the clock is injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from eir.logging import get_logger
from eir.metrics import SIGHTINGS_DROPPED, SIGHTINGS_TRACKED, SIGHTINGS_WRITTEN
from eir.store.base import IdentityStore, Sighting, Sightings

__all__ = ["SightingTracker"]

IMSI, ORIGIN = "i", "o"
"""The two kinds of value a sighting records (the store's ``kind`` column)."""


class SightingTracker:
    """In-memory clone sightings with write-behind to ``store`` (module docstring)."""

    def __init__(
        self,
        store: IdentityStore,
        window: float,
        *,
        max_tracked_imeis: int = 200_000,
        max_values_per_imei: int = 32,
        flush_interval: float = 0.2,
        share_interval: float | None = 1.0,
        batch_size: int = 5_000,
        max_pending: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.window = window
        self.max_imeis = max(1, max_tracked_imeis)
        self.max_values = max(2, max_values_per_imei)
        self.flush_interval = flush_interval
        self.share_interval = share_interval
        """None: this instance is the only writer (nothing to read back)."""
        self.batch_size = max(1, batch_size)
        self.max_pending = max(1, max_pending)
        self.clock = clock
        self.fresh = min(1.0, window / 100)
        """A value seen again within this many seconds is not written again."""
        self._imsis: dict[str, dict[str, float]] = {}
        """IMEI → IMSI → newest time seen (dicts keep insertion order: the first key was tracked
        longest)."""
        self._origins: dict[str, dict[str, float]] = {}
        """IMEI → origin → newest time (only filled when origins are recorded)."""
        self._pending: deque[Sighting] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._shared_until = 0.0
        self._last_sweep = 0.0
        self._failing = False
        self.running = False
        self.dropped = 0
        self.written = 0
        self._log = get_logger(component="sightings")

    # --- the hot path ----------------------------------------------------------------------------
    def observe(self, imei: str, imsi: str | None, origin: str | None, now: float) -> Sightings:
        """Record one sighting and count the distinct IMSIs and origins inside the window."""
        cutoff = now - self.window
        values = self._imsis.get(imei)
        if imsi:
            if values is None:
                if len(self._imsis) >= self.max_imeis:
                    _evict(self._imsis, self.max_imeis)
                values = self._imsis[imei] = {}
            self._note(values, imei, IMSI, imsi, now)
        n_imsis = _inside(values, cutoff) if values else 0
        values = self._origins.get(imei)
        if origin:
            if values is None:
                if len(self._origins) >= self.max_imeis:
                    _evict(self._origins, self.max_imeis)
                values = self._origins[imei] = {}
            self._note(values, imei, ORIGIN, origin, now)
        n_origins = _inside(values, cutoff) if values else 0
        key = (n_imsis, n_origins)
        s = _SIGHTINGS.get(key)
        if s is None:  # immutable and few (counts are bounded): one object per pair of counts
            s = _SIGHTINGS[key] = Sightings(distinct_imsis=n_imsis, distinct_origins=n_origins)
        return s

    def _note(self, values: dict[str, float], imei: str, kind: str, value: str, now: float) -> None:
        last = values.get(value)
        if last is not None and 0 <= now - last < self.fresh:
            return  # seen a moment ago: counted already, written already (or queued)
        if last is None and len(values) >= self.max_values:
            del values[min(values, key=values.__getitem__)]  # forget the oldest of this IMEI
        values[value] = now if last is None else max(last, now)
        if self.running:
            if len(self._pending) >= self.max_pending:
                self._pending.popleft()
                self.dropped += 1
                SIGHTINGS_DROPPED.inc()
            self._pending.append((imei, kind, value, now))
            if len(self._pending) >= self.batch_size:
                self._wake.set()

    def seen(self, imei: str) -> tuple[dict[str, float], dict[str, float]]:
        """Copies of what this process holds for ``imei``: IMSI → newest time, origin → newest time
        (the admin API's ``GET /sightings/{imei}``)."""
        return dict(self._imsis.get(imei) or {}), dict(self._origins.get(imei) or {})

    # --- loading and merging ---------------------------------------------------------------------
    def merge(self, rows: list[Sighting]) -> None:
        """Take sightings read from the store (newest time wins); queues nothing."""
        for imei, kind, value, ts in rows:
            table = self._imsis if kind == IMSI else self._origins
            values = table.get(imei)
            if values is None:
                if len(table) >= self.max_imeis:
                    continue  # full: the IMEIs already tracked keep their place
                values = table[imei] = {}
            last = values.get(value)
            if last is None:
                if len(values) >= self.max_values:
                    continue
                values[value] = ts
            elif ts > last:
                values[value] = ts
        SIGHTINGS_TRACKED.set(len(self._imsis))

    async def load_imei(self, imei: str) -> None:
        """Read one IMEI's stored sightings inside the window (``eir check``, ``--explain``)."""
        now = self.clock()
        self.merge(await self.store.read_sightings(now - self.window, imei=imei))

    # --- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Read the window back from the store, then write behind and share in the background.
        A store that cannot be read starts the tracker empty (logged)."""
        now = self.clock()
        try:
            rows = await self.store.read_sightings(now - self.window, limit=self.max_imeis * 4)
        except Exception as e:
            self._log.warning("sightings_not_loaded", error=f"{type(e).__name__}: {e}")
        else:
            self.merge(rows)
            self._log.info("sightings_loaded", rows=len(rows), imeis=len(self._imsis))
        self._shared_until = now
        self.running = True
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._write_behind()))
        if self.share_interval:
            self._tasks.append(loop.create_task(self._share()))

    async def close(self) -> None:
        """Stop the background tasks and write everything still queued."""
        self.running = False
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        while self._pending:
            if not await self._flush_once():
                break

    async def flush(self) -> None:
        """Write everything queued now (tests; shutdown uses :meth:`close`)."""
        while self._pending:
            if not await self._flush_once():
                return

    async def _write_behind(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            await self._flush_once()
            now = self.clock()
            if now - self._last_sweep >= max(1.0, self.window / 4):
                self._last_sweep = now
                await self._sweep(now - self.window)

    async def _flush_once(self) -> bool:
        """Write one batch; False when there was nothing to write or the store failed."""
        if not self._pending:
            return False
        n = min(len(self._pending), self.batch_size)
        batch = [self._pending.popleft() for _ in range(n)]
        try:
            await self.store.write_sightings(batch)
        except Exception as e:
            self.dropped += n
            SIGHTINGS_DROPPED.inc(n)
            if not self._failing:
                self._failing = True
                self._log.warning("sightings_not_written", error=f"{type(e).__name__}: {e}", rows=n)
            return False
        if self._failing:
            self._failing = False
            self._log.info("sightings_written_again")
        self.written += n
        SIGHTINGS_WRITTEN.inc(n)
        return True

    async def _share(self) -> None:
        """Merge what other instances wrote since the last read (module docstring)."""
        assert self.share_interval is not None
        while True:
            await asyncio.sleep(self.share_interval)
            now = self.clock()
            # Rows are stamped by their writer before its write-behind delay: read back far enough
            # to take a row written late with an early time (another writer's flush interval, taken
            # as ours, and half a second for the write itself). Reading our own rows back too is the
            # price of a store without writer ids: merged, they change nothing.
            since = self._shared_until - self.flush_interval - 0.5
            try:
                rows = await self.store.read_sightings(max(since, now - self.window))
            except Exception as e:
                self._log.debug("sightings_not_shared", error=f"{type(e).__name__}: {e}")
                continue
            self._shared_until = now
            self.merge(rows)

    async def _sweep(self, cutoff: float) -> None:
        """Forget what left the window, here and in the store."""
        for table in (self._imsis, self._origins):
            for imei in [k for k, v in table.items() if not any(ts >= cutoff for ts in v.values())]:
                del table[imei]
        SIGHTINGS_TRACKED.set(len(self._imsis))
        try:
            await self.store.prune_sightings(cutoff)
        except Exception as e:
            self._log.debug("sightings_not_pruned", error=f"{type(e).__name__}: {e}")

    def stats(self) -> dict[str, Any]:
        return {
            "imeis": len(self._imsis.keys() | self._origins.keys()),
            "pending": len(self._pending),
            "written": self.written,
            "dropped": self.dropped,
        }


_SIGHTINGS: dict[tuple[int, int], Sightings] = {}


def _inside(values: dict[str, float], cutoff: float) -> int:
    if not values:
        return 0
    if len(values) == 1:
        for ts in values.values():
            return 1 if ts >= cutoff else 0
    n = 0
    for ts in values.values():
        if ts >= cutoff:
            n += 1
    return n


def _evict(table: dict[str, dict[str, float]], max_imeis: int) -> None:
    """Forget the IMEIs tracked longest (dicts keep insertion order), a tenth of the bound at a
    time so that a flood of new IMEIs does not pay an eviction per check."""
    for key in list(itertools.islice(table, max(1, max_imeis // 10))):
        del table[key]
