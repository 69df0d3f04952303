"""First sightings of IMEIs whose TAC is not allocated: the clock of the ``tac_not_allocated``
grace period (``policy.tac_not_allocated.grace_days``).

Held in memory (bounded: ``max_first_seen``, the oldest first sighting forgotten first) and written
behind to the observations store, as the clone sightings are (eir/sightings.py): the hot path
costs a dict look-up, and a new IMEI a dict insert and a list append — never a store call. At
start the most recent rows are read back, so a restart keeps each IMEI's grace clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from eir.logging import RateLimitedLog, get_logger
from eir.metrics import HISTORY_DROPPED
from eir.store.base import IdentityStore

_DROPPED = HISTORY_DROPPED.labels("first_seen")

__all__ = ["FirstSeen"]


class FirstSeen:
    def __init__(
        self,
        store: IdentityStore,
        *,
        max_imeis: int = 1_000_000,
        flush_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.max_imeis = max(1, max_imeis)
        self.flush_interval = flush_interval
        self.clock = clock
        self._seen: dict[str, float] = {}
        """IMEI → first sighting (UNIX time), in insertion order (≈ time order: eviction order)."""
        self._pending: list[tuple[str, float]] = []
        self._task: asyncio.Task[None] | None = None
        self._log = get_logger(component="first_seen")
        self._rl = RateLimitedLog(5, 60.0)
        self.running = False
        self.loaded = False
        self.dropped = 0
        """First sightings not written because ``max_imeis`` were already waiting."""

    def first_seen(self, imei: str, now: float) -> float:
        """The IMEI's first sighting; ``now`` (recorded, written behind) when it has none."""
        t = self._seen.get(imei)
        if t is not None:
            return t
        seen = self._seen
        if len(seen) >= self.max_imeis:
            del seen[next(iter(seen))]
        seen[imei] = now
        if self.running:
            if len(self._pending) < self.max_imeis:
                self._pending.append((imei, now))
            else:  # the store has been failing for a while: counted and logged, never silent
                self.dropped += 1
                _DROPPED.inc()
                self._rl.warning(self._log, "first_seen_dropped", "first_seen_dropped", dropped=self.dropped)
        return now

    def __len__(self) -> int:
        return len(self._seen)

    async def load(self) -> None:
        """The stored first sightings (the most recent ``max_imeis``), oldest first."""
        self.loaded = True
        rows = await self.store.read_first_seen(self.max_imeis)
        for imei, ts in rows:
            old = self._seen.get(imei)
            if old is None or ts < old:
                self._seen[imei] = ts

    async def start(self) -> None:
        try:
            await self.load()
        except Exception as e:  # the store is down: the clocks start again from the next sighting
            self._log.warning("first_seen_load_failed", error=f"{type(e).__name__}: {e}")
        self.running = True
        self._task = asyncio.ensure_future(self._loop())

    async def flush(self) -> int:
        batch, self._pending = self._pending, []
        if not batch:
            return 0
        try:
            await self.store.write_first_seen(batch)
        except Exception as e:  # kept in memory; retried with the next batch (bounded)
            self._pending = (batch + self._pending)[-self.max_imeis :]
            self._rl.warning(
                self._log,
                "first_seen_write_failed",
                "first_seen_write_failed",
                error=f"{type(e).__name__}: {e}",
            )
            return 0
        return len(batch)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        self.running = False
