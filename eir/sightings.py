"""Clone sightings at line rate: counted in memory, written behind to the store in batches.

The clone rule asks, for every check that carries an IMSI (or an origin), how many distinct IMSIs
and origins saw this IMEI within ``policy.clone.window``. Writing each sighting to the store before
answering made it the dominant cost of a realistic load (a fresh IMEI/IMSI pair per request).
:class:`SightingTracker` answers from memory and keeps the store as the durable, shared copy:

* **Hot path** (:meth:`SightingTracker.observe`, synchronous): per IMEI, the IMSIs and origins seen
  with their newest time; counts only what lies inside the window. An IMEI seen with one IMSI so far
  (most of them, under a population load) holds a ``(imsi, time)`` pair rather than a dict: a
  quarter of the memory and of the allocation work, on the path every fresh IMEI takes; the pair
  becomes a dict when a second value comes. Bounded per IMEI
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

* **Own rows**: each tracker has a writer id (:attr:`SightingTracker.writer`, new at every start)
  that the store keeps with the rows it writes; sharing reads only the rows other writers wrote
  last (``read_sightings(exclude_writer=…)``), so an instance does not read its own back.
* **Storage cap** (``max_stored`` rows): every :data:`CAP_INTERVAL` seconds the store's rows are
  counted and, above the cap, the oldest deleted down to 90 % of it
  (``eir_sightings_evicted_total``, one log line per eviction). A cap of :data:`ESTIMATE_ABOVE`
  rows or more asks the store's cheap estimate first and counts only near the cap (and every
  :data:`EXACT_EVERY`-th time).

Poisoning defences (issue 10; README "Clone rule: the threat"). Any peer that may send checks can
send IMSIs, and three IMSIs make an IMEI grey for every peer for the window. So:

* ``trusted_origins``: only checks from matching origins record sightings; others are answered
  against the sightings recorded so far, and counted (``eir_sightings_refused_total{reason=
  "untrusted"}``).
* ``max_new_per_origin`` / ``max_new_per_second``: token buckets (one second's worth) of *new*
  sightings — a value not yet seen with the IMEI — per origin and in total; the excess is counted
  (``peer_budget`` / ``global_budget``), not recorded. A sighting seen again costs nothing.
* ``half_life``: a sighting's weight halves with its age, and the count is the rounded-up sum of
  weights: evidence decays unless it is renewed.
* :meth:`SightingTracker.clear` (``checker.clear_sightings``, the admin API, ``eir sightings
  clear``): the IMEI's sightings are deleted here and in the store, and a *clear* row (kind ``c``)
  is written so that other instances drop what they hold of it, and rows older than the clear that
  reach them later.
* ``exempt_white`` is the checker's (eir/checker.py): an IMEI listed white or paired with the IMSI
  records nothing.

Times are wall-clock seconds (the store shares them between processes); the clock is injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import itertools
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from eir.logging import get_logger
from eir.metrics import (
    SIGHTINGS_CLEARED,
    SIGHTINGS_DROPPED,
    SIGHTINGS_EVICTED,
    SIGHTINGS_REFUSED,
    SIGHTINGS_TRACKED,
    SIGHTINGS_WRITTEN,
)
from eir.store.base import IdentityStore, Sighting, Sightings

__all__ = ["IMSI_KINDS", "MSISDN_KINDS", "MSISDN_SEP", "SightingTracker", "imsi_of", "msisdn_of"]

IMSI, ORIGIN, CLEARED = "i", "o", "c"
"""The two kinds of value a sighting records (the store's ``kind`` column), and the row an
operator's clear leaves (value empty, time of the clear)."""
IMSI_S13, IMSI_MAP, IMSI_N5G = "e", "g", "n"
"""An IMSI seen over S13 (E-UTRAN), MAP (GERAN/UTRAN) or N5g-eir: the interface rides in the kind
(one character in every store, no column of its own) for the observations dump's ``rat``
(eir/formats/export.py). Every kind but ORIGIN and CLEARED is an IMSI to the clone rule."""
IMSI_KINDS = frozenset((IMSI, IMSI_S13, IMSI_MAP, IMSI_N5G))
MSISDN_KINDS = frozenset((IMSI_MAP, IMSI_N5G))
"""The IMSI kinds whose rows may carry the request's MSISDN (:data:`MSISDN_SEP`)."""
MSISDN_SEP = " "
"""A MAP or N5g-eir IMSI row's value may be ``"<imsi> <msisdn>"`` when the request carried an
MSISDN (Huawei checkIMEI forms, an ``msisdn-`` GPSI): the observations dump's ``msisdn``. Those
interfaces' IMSIs are digits, never a space (S13's User-Name is free text: its rows never carry
one). :func:`imsi_of` / :func:`msisdn_of` read it back."""
CAP_INTERVAL = 10.0
"""Seconds between two counts of the stored rows against ``max_stored``."""
ESTIMATE_ABOVE = 100_000
"""From this ``max_stored`` on, the cap asks the store's estimate first
(``IdentityStore.estimate_sightings``: PostgreSQL's statistics instead of a ``count(*)`` of up to
millions of rows) and counts exactly only when the estimate reaches 90 % of the cap; a smaller cap
is counted exactly every time (cheap, and never late by the statistics' lag)."""
EXACT_EVERY = 30
"""Every 30th check of the cap (5 minutes at ``CAP_INTERVAL``) counts exactly whatever the estimate
says: statistics can be wrong (reset by a crash restart, a failover) and are never trusted longer."""
MAX_BUCKETS = 10_000
"""Origins with a budget bucket of their own; beyond it the buckets are simply reset."""
CLOSE_WAIT = 10.0
"""Seconds :meth:`SightingTracker.close` lets the write-behind finish the batch it is writing (then
it is cancelled: that batch's rows are counted as dropped). Cancelled at once, a PostgreSQL COPY or
a Redis script in flight was abandoned and its batch lost, uncounted."""


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
        max_stored: int = 0,
        trusted_origins: list[str] | None = None,
        max_new_per_origin: float = 0.0,
        max_new_per_second: float = 0.0,
        half_life: float = 0.0,
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
        self._wake_at = min(self.batch_size, self.max_pending) - 1
        """Below this many queued rows a new one is simply appended (no drop, no wake-up due)."""
        self.clock = clock
        self.fresh = min(1.0, window / 100)
        """A value seen again within this many seconds is not written again."""
        self._imsis: dict[str, dict[str, float] | tuple[str, float]] = {}
        """IMEI → IMSI → newest time seen (dicts keep insertion order: the first key was tracked
        longest), or IMEI → (IMSI, time) while the IMEI has one (module docstring)."""
        self._origins: dict[str, dict[str, float]] = {}
        """IMEI → origin → newest time (only filled when origins are recorded)."""
        self.max_stored = max(0, max_stored)
        """Rows kept in the store; 0: no cap."""
        self.writer = secrets.token_hex(4)
        """This instance's name on the rows it writes (module docstring)."""
        self._trusted = [p.lower() for p in trusted_origins or []]
        self._trust: dict[str | None, bool] = {}
        self.per_origin = max(0.0, max_new_per_origin)
        self.per_second = max(0.0, max_new_per_second)
        self._budgets = bool(self.per_origin or self.per_second)
        self._buckets: dict[str | None, list[float]] = {}
        """origin → [tokens, time of the last refill]."""
        self._all = [max(1.0, self.per_second), 0.0]
        self._decay = math.log(2) / half_life if half_life > 0 else 0.0
        self._cleared: dict[str, float] = {}
        """IMEI → time an operator cleared it: older rows merged later are ignored."""
        self._refused = {
            r: SIGHTINGS_REFUSED.labels(r) for r in ("untrusted", "peer_budget", "global_budget")
        }
        self._last_cap = 0.0
        self._caps = 0
        self.evicted = 0
        self._pending: deque[Sighting] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._shared_until = 0.0
        self._last_sweep = 0.0
        self._failing = False
        self.running = False
        self._plain = False
        """Running, with neither ``trusted_origins`` nor budgets: :meth:`first_imsi` applies. Kept
        in step with ``running`` by :meth:`start` and :meth:`close`, which alone change it."""
        self.dropped = 0
        self.written = 0
        self._log = get_logger(component="sightings")

    # --- the hot path ----------------------------------------------------------------------------
    def observe(
        self,
        imei: str,
        imsi: str | None,
        origin: str | None,
        now: float,
        peer: str | None = None,
        kind: str = IMSI,
        msisdn: str | None = None,
    ) -> Sightings:
        """Record one sighting and count the distinct IMSIs and origins inside the window.
        ``peer`` is the request's origin, for ``trusted_origins`` and the budgets (``origin`` is
        None when the origins rule is off); ``kind`` the IMSI's kind (:data:`IMSI_KINDS`: the
        interface it came on); ``msisdn`` rides in the stored row's value (:data:`MSISDN_SEP`),
        never in what is counted."""
        if self._trusted and (imsi or origin):
            trusted = self._trust.get(peer)
            if trusted is None:
                trusted = self._is_trusted(peer)
            if not trusted:
                self._refused["untrusted"].inc()
                imsi = origin = None  # answered against what trusted peers recorded
        imsis = self._imsis
        values = imsis.get(imei)
        if imsi:
            row = imsi if msisdn is None else imsi + MSISDN_SEP + msisdn
            if values is None:
                if len(imsis) >= self.max_imeis:
                    _evict(imsis, self.max_imeis)
                if not self._budgets and not origin and not self._origins:
                    # the common case of a population load, a first sighting of the IMEI and no
                    # origins: _note's and _queue's work without their tests (nothing to forget,
                    # nothing counted; the queue's bound still holds)
                    imsis[imei] = (imsi, now)
                    if self.running:
                        pending = self._pending
                        if len(pending) >= self._wake_at:
                            self._queue((imei, kind, row, now))
                        else:
                            pending.append((imei, kind, row, now))
                    return _ONE_IMSI
                values = imsis[imei] = {}
            elif isinstance(values, tuple):
                if values[0] == imsi:  # the same pair again: _note's work on the pair
                    last = values[1]
                    if not 0 <= now - last < self.fresh:
                        values = imsis[imei] = (imsi, max(last, now))
                        if self.running:
                            self._queue((imei, kind, row, now))
                    if not origin and not self._origins and not self._decay:
                        # a subscriber's handset checked again (every attach, every location
                        # update): one IMSI, seen now or within `fresh`, so inside the window
                        return _ONE_IMSI
                else:
                    values = imsis[imei] = {values[0]: values[1]}
            if not isinstance(values, tuple):
                self._note(values, imei, kind, imsi, now, peer, row)
        cutoff = now - self.window
        decay = self._decay
        if not values:
            n_imsis = 0
        elif isinstance(values, tuple):
            ts = values[1]
            n_imsis = 0 if ts < cutoff else (_weighed({"": ts}, cutoff, now, decay) if decay else 1)
        else:
            n_imsis = _weighed(values, cutoff, now, decay) if decay else _inside(values, cutoff)
        values = self._origins.get(imei)
        if origin:
            if values is None:
                if len(self._origins) >= self.max_imeis:
                    _evict(self._origins, self.max_imeis)
                values = self._origins[imei] = {}
            self._note(values, imei, ORIGIN, origin, now, peer)
        if not values:
            n_origins = 0
        else:
            n_origins = _weighed(values, cutoff, now, decay) if decay else _inside(values, cutoff)
        key = (n_imsis, n_origins)
        s = _SIGHTINGS.get(key)
        if s is None:  # immutable and few (counts are bounded): one object per pair of counts
            s = _SIGHTINGS[key] = Sightings(distinct_imsis=n_imsis, distinct_origins=n_origins)
        return s

    def first_imsi(self, imei: str, imsi: str, now: float, kind: str) -> Sightings | None:
        """:meth:`observe`'s commonest case in a population load, with fewer tests: the
        first sighting of an IMEI, with an IMSI and no origin nor MSISDN, by a running tracker that
        holds no origins and has neither ``trusted_origins`` nor budgets. It records and queues
        what :meth:`observe` would and returns the same. None when the case does not apply (an
        IMEI already tracked, the bound reached): the caller then calls :meth:`observe`, which
        tests everything. The checker calls it first (eir/checker.py): a population check took 159
        bytecodes more than a check without an IMSI through the checker's ``_observe`` and
        :meth:`observe`, 111 this way (≈ 1.6k machine instructions less)."""
        imsis = self._imsis
        if not self._plain or imei in imsis or self._origins or len(imsis) >= self.max_imeis:
            return None
        imsis[imei] = (imsi, now)
        pending = self._pending
        if len(pending) >= self._wake_at:
            self._queue((imei, kind, imsi, now))
        else:
            pending.append((imei, kind, imsi, now))
        return _ONE_IMSI

    def _is_trusted(self, peer: str | None) -> bool:
        low = (peer or "").lower()
        ok = any(fnmatch.fnmatchcase(low, p) for p in self._trusted)
        if len(self._trust) >= MAX_BUCKETS:
            self._trust.clear()
        self._trust[peer] = ok
        return ok

    def _spend(self, peer: str | None, now: float) -> bool:
        """One new sighting from ``peer``: False when a budget is spent (counted)."""
        if self.per_origin:
            b = self._buckets.get(peer)
            burst = max(1.0, self.per_origin)  # a budget below 1/s still lets one through now and then
            if b is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._buckets.clear()
                b = self._buckets[peer] = [burst, now]
            else:
                b[0] = min(burst, b[0] + max(0.0, now - b[1]) * self.per_origin)
                b[1] = now
            if b[0] < 1.0:
                self._refused["peer_budget"].inc()
                return False
        else:
            b = None
        if self.per_second:
            a = self._all
            a[0] = min(max(1.0, self.per_second), a[0] + max(0.0, now - a[1]) * self.per_second)
            a[1] = now
            if a[0] < 1.0:
                self._refused["global_budget"].inc()
                return False
            a[0] -= 1.0
        if b is not None:
            b[0] -= 1.0
        return True

    def _note(
        self,
        values: dict[str, float],
        imei: str,
        kind: str,
        value: str,
        now: float,
        peer: str | None,
        row: str | None = None,
    ) -> None:
        last = values.get(value)
        if last is not None and 0 <= now - last < self.fresh:
            return  # seen a moment ago: counted already, written already (or queued)
        if last is None and self._budgets and not self._spend(peer, now):
            return  # over a budget: counted, not recorded
        if last is None and len(values) >= self.max_values:
            del values[min(values, key=values.__getitem__)]  # forget the oldest of this IMEI
        values[value] = now if last is None else max(last, now)
        if self.running:
            self._queue((imei, kind, value if row is None else row, now))

    def _queue(self, row: Sighting) -> None:
        pending = self._pending
        if len(pending) >= self.max_pending:
            pending.popleft()
            self.dropped += 1
            SIGHTINGS_DROPPED.inc()
        pending.append(row)
        if len(pending) >= self.batch_size:
            self._wake.set()

    def seen(self, imei: str) -> tuple[dict[str, float], dict[str, float]]:
        """Copies of what this process holds for ``imei``: IMSI → newest time, origin → newest time
        (the admin API's ``GET /sightings/{imei}``)."""
        return _as_dict(self._imsis.get(imei)), dict(self._origins.get(imei) or {})

    # --- loading and merging ---------------------------------------------------------------------
    def merge(self, rows: list[Sighting]) -> None:
        """Take sightings read from the store (newest time wins; a clear row drops what is older
        for its IMEI); queues nothing."""
        cleared = self._cleared
        if cleared or any(r[1] == CLEARED for r in rows):
            for imei, kind, _value, ts in rows:
                if kind == CLEARED and ts > cleared.get(imei, -math.inf):
                    self._forget(imei, ts)
            rows = [r for r in rows if r[1] != CLEARED and r[3] > cleared.get(r[0], -math.inf)]
        for imei, kind, value, ts in rows:
            table: dict[str, Any] = self._origins if kind == ORIGIN else self._imsis
            if kind in MSISDN_KINDS:
                value = value.partition(MSISDN_SEP)[0]
            values = table.get(imei)
            if values is None:
                if len(table) >= self.max_imeis:
                    continue  # full: the IMEIs already tracked keep their place
                values = table[imei] = {}
            elif values.__class__ is tuple:
                values = table[imei] = {values[0]: values[1]}
            last = values.get(value)
            if last is None:
                if len(values) >= self.max_values:
                    continue
                values[value] = ts
            elif ts > last:
                values[value] = ts
        SIGHTINGS_TRACKED.set(len(self._imsis))

    def _forget(self, imei: str, at: float) -> None:
        """Drop the IMEI's sightings up to ``at`` (a clear), and ignore older ones merged later."""
        tables: tuple[dict[str, Any], ...] = (self._imsis, self._origins)
        for table in tables:
            values = table.get(imei)
            if values is not None:
                if values.__class__ is tuple:
                    values = table[imei] = {values[0]: values[1]}
                for v in [v for v, ts in values.items() if ts <= at]:
                    del values[v]
                if not values:
                    del table[imei]
        if imei not in self._cleared and len(self._cleared) >= self.max_imeis:
            _evict_one(self._cleared)
        self._cleared[imei] = at

    def clear(self, imei: str, at: float) -> int:
        """An operator's clear of one IMEI (``checker.clear_sightings``): what this instance holds
        and has queued of it goes; the store's rows and the clear row are the caller's
        (:meth:`clear_stored`). How many values were held."""
        held = len(_as_dict(self._imsis.get(imei))) + len(self._origins.get(imei, ()))
        self._forget(imei, at)
        if any(r[0] == imei for r in self._pending):
            self._pending = deque(r for r in self._pending if r[0] != imei)
        SIGHTINGS_CLEARED.inc()
        return held

    async def clear_stored(self, imei: str, at: float) -> int:
        """Delete the IMEI's rows in the store and write the clear row other instances read."""
        gone = await self.store.clear_sightings(imei)
        await self.store.write_sightings([(imei, CLEARED, "", at)], writer=self.writer)
        return gone

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
        self._plain = not self._trusted and not self._budgets
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._write_behind()))
        if self.share_interval:
            self._tasks.append(loop.create_task(self._share()))

    async def close(self) -> None:
        """Stop the background tasks and write everything still queued. The write-behind is let
        finish the batch it may be writing (at most :data:`CLOSE_WAIT`), the sharing cancelled."""
        self.running = self._plain = False
        self._wake.set()  # the write-behind, stopped (not running), ends after the batch it writes
        writer = self._tasks[0] if self._tasks else None  # start(): the write-behind comes first
        for t in self._tasks[1:]:
            t.cancel()
        if writer is not None:
            done, _ = await asyncio.wait({writer}, timeout=CLOSE_WAIT)
            if not done:
                writer.cancel()
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
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for returns the event's result
            # when a cancellation (close()) arrives just as a full batch sets it, the cancellation
            # is lost and close() waited on this loop for good
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            if not self.running:
                return  # close() writes what is queued
            await self._flush_once()
            if not self.running:
                return
            now = self.clock()
            if now - self._last_sweep >= max(1.0, self.window / 4):
                self._last_sweep = now
                await self._sweep(now - self.window)
            if self.max_stored and now - self._last_cap >= CAP_INTERVAL:
                self._last_cap = now
                await self.cap()

    async def cap(self) -> int:
        """Keep the store under ``max_stored`` rows: above it, delete the oldest down to 90 % of
        it. How many rows went (counted and logged)."""
        try:
            self._caps += 1
            if (
                self.max_stored >= ESTIMATE_ABOVE
                and self._caps % EXACT_EVERY
                and await self.store.estimate_sightings() < self.max_stored * 9 // 10
            ):
                return 0  # well below the cap by the store's cheap estimate: no count
            if await self.store.count_sightings() <= self.max_stored:
                return 0
            gone = await self.store.evict_sightings(self.max_stored * 9 // 10)
        except Exception as e:
            self._log.debug("sightings_not_capped", error=f"{type(e).__name__}: {e}")
            return 0
        if gone:
            self.evicted += gone
            SIGHTINGS_EVICTED.inc(gone)
            self._log.warning("sightings_evicted", rows=gone, max_stored=self.max_stored)
        return gone

    async def _flush_once(self) -> bool:
        """Write one batch; False when there was nothing to write or the store failed."""
        if not self._pending:
            return False
        pending = self._pending
        n = min(len(pending), self.batch_size)
        if n == len(pending):  # the usual case: the whole queue, in one C-level copy
            batch = list(pending)
            pending.clear()
        else:
            batch = [pending.popleft() for _ in range(n)]
        try:
            await self.store.write_sightings(batch, writer=self.writer)
        except asyncio.CancelledError:
            # close() gave up waiting (CLOSE_WAIT): the batch in flight is lost, and counted
            self.dropped += n
            SIGHTINGS_DROPPED.inc(n)
            raise
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
            # as ours, and half a second for the write itself). Our own rows are left out by the
            # store (writer ids).
            since = self._shared_until - self.flush_interval - 0.5
            try:
                rows = await self.store.read_sightings(
                    max(since, now - self.window), exclude_writer=self.writer
                )
            except Exception as e:
                self._log.debug("sightings_not_shared", error=f"{type(e).__name__}: {e}")
                continue
            self._shared_until = now
            self.merge(rows)

    async def _sweep(self, cutoff: float) -> None:
        """Forget what left the window, here and in the store."""
        gone = [k for k, v in self._imsis.items() if not any(ts >= cutoff for ts in _times(v))]
        for imei in gone:
            del self._imsis[imei]
        for imei in [k for k, v in self._origins.items() if not any(ts >= cutoff for ts in v.values())]:
            del self._origins[imei]
        for imei in [k for k, ts in self._cleared.items() if ts < cutoff]:
            del self._cleared[imei]
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
            "evicted": self.evicted,
        }


def imsi_of(kind: str, value: str) -> str:
    """A stored row's IMSI (its value without the MSISDN a MAP or N5g-eir row may carry)."""
    return value.partition(MSISDN_SEP)[0] if kind in MSISDN_KINDS else value


def msisdn_of(kind: str, value: str) -> str:
    """The MSISDN a MAP or N5g-eir row carries, or ''."""
    return value.partition(MSISDN_SEP)[2] if kind in MSISDN_KINDS else ""


_SIGHTINGS: dict[tuple[int, int], Sightings] = {}
_ONE_IMSI = _SIGHTINGS[(1, 0)] = Sightings(distinct_imsis=1, distinct_origins=0)


def _as_dict(values: dict[str, float] | tuple[str, float] | None) -> dict[str, float]:
    """A copy of one IMEI's values as a dict, whichever form they are held in."""
    if values is None:
        return {}
    if isinstance(values, tuple):
        return {values[0]: values[1]}
    return dict(values)


def _times(values: dict[str, float] | tuple[str, float]) -> Iterable[float]:
    return (values[1],) if isinstance(values, tuple) else values.values()


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


def _weighed(values: dict[str, float], cutoff: float, now: float, decay: float) -> int:
    """The rounded-up sum of the weights ``2 ** (-age / half_life)`` inside the window (a value
    stamped ahead of ``now`` by another instance's clock weighs 1)."""
    score = 0.0
    for ts in values.values():
        if ts >= cutoff:
            score += math.exp(-decay * (now - ts)) if ts < now else 1.0
    return math.ceil(score - 1e-9)


def _evict_one(table: dict[str, float]) -> None:
    del table[next(iter(table))]


def _evict(table: dict[str, Any], max_imeis: int) -> None:
    """Forget the IMEIs tracked longest (dicts keep insertion order), a tenth of the bound at a
    time so that a flood of new IMEIs does not pay an eviction per check."""
    for key in list(itertools.islice(table, max(1, max_imeis // 10))):
        del table[key]
