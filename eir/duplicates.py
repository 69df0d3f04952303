"""DIRBS ``duplicate_mk1``: the duplicated-identifier rule on the per-day observation history.

DIRBS-Core classifies an IMEI as ``duplicate_mk1`` when two dimensions both hold (its
``duplicate_threshold`` and ``duplicate_daily_avg``):

* it was seen with at least ``threshold`` distinct IMSIs over the last ``period_days`` days, and
* over the last ``daily_avg_days`` days, the number of distinct IMSIs it was seen with each day,
  summed and divided by the number of days it was seen, is at least ``daily_avg`` — counted only
  for an IMEI seen on at least ``min_seen_days`` of those days (so a little data does not
  condemn it).

DIRBS's options: ``period_months`` gives the threshold window in calendar months instead of
``period_days``; ``use_msisdn`` counts MSISDNs instead of IMSIs (the history's ``imsi`` column then
holds MSISDNs).

The condition is sticky: once flagged, an IMEI stays flagged — until an operator clears it
(``eir duplicates clear IMEI``, ``DELETE /api/v1/duplicates/{imei}``). A clear deletes the flag *and
the IMEI's history*, so a cleared IMEI stays cleared until the rule triggers again on observations
made after the clear (with the history that flagged it kept, the next classification would flag it
again at once; and a classification counting meanwhile does not flag it back: the stores'
``flag_duplicates`` flags only an IMEI that still has history). The clearing process drops the
flag from its memory at once (under ``--workers`` every worker, eir/control.py
``duplicate_clear``); other instances
sharing the store (and a running ``eir serve`` when the CLI clears) drop it at their next
classification, which reads the store's flags back.

Here the history is ``(imei, day, imsi)`` rows (day: days since the UNIX epoch, UTC) kept by the
observations store: the checker records each (IMEI, IMSI) of the day in memory, at most once per
flush, and :class:`DuplicateTracker` writes them behind, classifies in the background every
``classify_interval`` seconds (the store does the counting: :meth:`IdentityStore.classify_duplicates`)
and keeps the flagged IMEIs in memory, so a check costs a set probe and a set insert — never a
store call. The rule (eir/policy.py, ``duplicate``) only ever makes a verdict stricter, like
``clone``.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import fnmatch
import time
from collections.abc import Callable, Iterable
from datetime import date, timedelta

from eir.config import DuplicateConfig
from eir.logging import RateLimitedLog, get_logger
from eir.metrics import DUPLICATES_FLAGGED, HISTORY_DROPPED
from eir.store.base import IdentityStore

_DROPPED = HISTORY_DROPPED.labels("duplicate_history")

__all__ = ["DAY", "DuplicateTracker", "duplicate_inputs", "duplicate_mk1", "threshold_days"]

DAY = 86400.0


def threshold_days(cfg: DuplicateConfig, today: int) -> int:
    """The ``threshold`` window in days on ``today``: ``period_days``, or with ``period_months``
    the days back to the same day of the month that many calendar months before (DIRBS's
    ``relativedelta(months=N)``: a day past the end of a shorter month is its last day)."""
    months = cfg.period_months
    if months is None:
        return cfg.period_days
    d = date(1970, 1, 1) + timedelta(days=today)
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    start = date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))
    return (d - start).days


def duplicate_mk1(
    history: Iterable[tuple[str, int, str]],
    *,
    today: int,
    threshold: int,
    period_days: int,
    daily_avg: float,
    daily_avg_days: int,
    min_seen_days: int,
) -> set[str]:
    """The IMEIs of ``history`` (``(imei, day, imsi)``, duplicates allowed) that meet both
    dimensions on ``today`` (windows: the ``period_days`` / ``daily_avg_days`` days ending with
    ``today``). The reference the stores' own queries are tested against."""
    imsis: dict[str, set[str]] = {}
    per_day: dict[str, dict[int, set[str]]] = {}
    for imei, day, imsi in history:
        if day > today:
            continue
        if day > today - period_days:
            imsis.setdefault(imei, set()).add(imsi)
        if day > today - daily_avg_days:
            per_day.setdefault(imei, {}).setdefault(day, set()).add(imsi)
    out = set()
    for imei, seen in imsis.items():
        if len(seen) < threshold:
            continue
        days = per_day.get(imei, {})
        if len(days) < max(min_seen_days, 1):
            continue
        if sum(len(s) for s in days.values()) / len(days) >= daily_avg:
            out.add(imei)
    return out


def duplicate_inputs(
    history: Iterable[tuple[int, str]], *, today: int, cfg: DuplicateConfig, max_imsis: int = 100
) -> dict[str, object]:
    """What duplicate_mk1 saw of one IMEI on ``today`` (for a flagged IMEI: the day it was
    flagged): its ``(day, imsi)`` history (what the store still holds of it) folded into both
    dimensions, with the configured thresholds beside each input. ``imsis`` lists at most
    ``max_imsis`` of the distinct IMSIs (``distinct_imsis`` counts them all)."""
    imsis: set[str] = set()
    per_day: dict[int, set[str]] = {}
    period_days = threshold_days(cfg, today)
    for day, imsi in history:
        if day > today:
            continue
        if day > today - period_days:
            imsis.add(imsi)
        if day > today - cfg.daily_avg_days:
            per_day.setdefault(day, set()).add(imsi)
    seen_days = len(per_day)
    avg = sum(len(s) for s in per_day.values()) / seen_days if seen_days else 0.0
    return {
        "day": today,
        "period_days": period_days,
        "counts": "msisdns" if cfg.use_msisdn else "imsis",
        "distinct_imsis": len(imsis),
        "threshold": cfg.threshold,
        "daily_avg_days": cfg.daily_avg_days,
        "days_seen": seen_days,
        "min_seen_days": cfg.min_seen_days,
        "daily_average": round(avg, 3),
        "daily_avg": cfg.daily_avg,
        "per_day": {str(d): len(s) for d, s in sorted(per_day.items())},
        "imsis": sorted(imsis)[:max_imsis],
        "meets_rule": len(imsis) >= cfg.threshold
        and seen_days >= max(cfg.min_seen_days, 1)
        and avg >= cfg.daily_avg,
    }


class DuplicateTracker:
    """The day's (IMEI, IMSI) pairs written behind, background classification, flagged IMEIs."""

    def __init__(
        self,
        store: IdentityStore,
        cfg: DuplicateConfig,
        *,
        clock: Callable[[], float] = time.time,
        trusted_origins: list[str] | None = None,
    ) -> None:
        self.store = store
        self._trusted = [p.lower() for p in trusted_origins or []]
        """``policy.clone.trusted_origins``: the same defence against a poisoned history as for the
        real-time clone rule — only checks from these origins are recorded (empty: every one)."""
        self._trust: dict[str | None, bool] = {}
        self.untrusted = 0
        """Pairs not recorded: their check came from an origin outside ``trusted_origins``."""
        self.cfg = cfg
        self.use_msisdn = cfg.use_msisdn
        """Record the check's MSISDN instead of its IMSI (``policy.duplicate.use_msisdn``)."""
        self.clock = clock
        self.flagged: dict[str, float] = {}
        """IMEI → when it was flagged (sticky)."""
        self._pending: set[tuple[str, int, str]] = set()
        self.dropped = 0
        self.running = False
        self.loaded = False
        self._tasks: list[asyncio.Task[None]] = []
        self._log = get_logger(component="duplicates")
        self._rl = RateLimitedLog(5, 60.0)

    # --- hot path ----------------------------------------------------------------------------------
    def observe(self, imei: str, imsi: str, now: float, peer: str | None = None) -> None:
        if self._trusted:
            ok = self._trust.get(peer)
            if ok is None:
                low = (peer or "").lower()
                ok = any(fnmatch.fnmatchcase(low, p) for p in self._trusted)
                if len(self._trust) >= 10_000:
                    self._trust.clear()
                self._trust[peer] = ok
            if not ok:
                self.untrusted += 1
                return
        pending = self._pending
        if len(pending) < self.cfg.max_pending:
            pending.add((imei, int(now // DAY), imsi))
        else:  # the store has been failing (or is slow): counted and logged, never silent
            self.dropped += 1
            _DROPPED.inc()
            self._rl.warning(
                self._log, "duplicates_dropped", "duplicate_history_dropped", dropped=self.dropped
            )

    def is_flagged(self, imei: str) -> bool:
        return imei in self.flagged

    # --- background --------------------------------------------------------------------------------
    async def flush(self) -> int:
        batch, self._pending = self._pending, set()
        if not batch:
            return 0
        try:
            await self.store.write_daily(sorted(batch))
        except Exception as e:  # kept for the next batch, within max_pending
            room = self.cfg.max_pending - len(self._pending)
            self._pending.update(list(batch)[: max(room, 0)])
            self._rl.warning(
                self._log,
                "duplicates_write_failed",
                "duplicate_history_write_failed",
                error=f"{type(e).__name__}: {e}",
            )
            return 0
        return len(batch)

    async def classify(self) -> list[str]:
        """Flush, then flag the IMEIs that meet duplicate_mk1 today (the newly flagged ones are
        returned and stored: sticky), and prune the history beyond both windows and ``max_rows``."""
        await self.flush()
        now = self.clock()
        c = self.cfg
        today = int(now // DAY)
        period_days = threshold_days(c, today)
        found = await self.store.classify_duplicates(
            today=today,
            threshold=c.threshold,
            period_days=period_days,
            daily_avg=c.daily_avg,
            daily_avg_days=c.daily_avg_days,
            min_seen_days=c.min_seen_days,
        )
        # the store's flags are the shared truth: read back, they carry the clears (and flags)
        # other processes made since the last round
        self.flagged = await self.store.duplicates()
        new = sorted(i for i in found if i not in self.flagged)
        if new:
            await self.store.flag_duplicates(new, now)
            for imei in new:
                self.flagged[imei] = now
            self._log.warning("duplicates_flagged", count=len(new), first=new[0])
        DUPLICATES_FLAGGED.set(len(self.flagged))
        await self.store.prune_daily(today - max(period_days, c.daily_avg_days), c.max_rows)
        return new

    async def clear(self, imei: str) -> tuple[bool, int]:
        """An operator clears ``imei``'s flag (module docstring): this process's memory — the
        flag and the day's pairs not yet written — and the store's flag and history."""
        self.forget(imei)
        return await self.store.clear_duplicate(imei)

    def forget(self, imei: str) -> None:
        """The memory part of a clear: the flag and the pairs not yet written (under ``--workers``
        the other workers do this on worker 0's ``duplicate_clear``, eir/control.py)."""
        self.flagged.pop(imei, None)
        if any(r[0] == imei for r in self._pending):
            self._pending = {r for r in self._pending if r[0] != imei}
        DUPLICATES_FLAGGED.set(len(self.flagged))

    async def load(self) -> None:
        self.loaded = True
        self.flagged.update(await self.store.duplicates())
        DUPLICATES_FLAGGED.set(len(self.flagged))

    async def start(self) -> None:
        try:
            await self.load()
        except Exception as e:
            self._log.warning("duplicates_load_failed", error=f"{type(e).__name__}: {e}")
        self.running = True
        self._tasks = [
            asyncio.ensure_future(self._every(self.cfg.flush_interval, self.flush)),
            asyncio.ensure_future(self._every(self.cfg.classify_interval, self.classify)),
        ]

    async def _every(self, interval: float, fn: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await fn()  # type: ignore[misc]
            except Exception as e:  # the store is down: the next round tries again
                self._rl.warning(
                    self._log, "duplicates_failed", "duplicates_failed", error=f"{type(e).__name__}: {e}"
                )

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.flush()
        self.running = False
