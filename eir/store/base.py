"""The identity store interface every backend implements (SQLite, PostgreSQL, Redis, memory).

The policy (eir/policy.py) asks for everything one check needs in as few calls as possible: one
``lookup`` answers the exact IMEISV, exact IMEI and longest range/TAC match together, so that a
remote store costs one round trip on the hot path.

Lists are versioned: an import builds a whole new version (or a delta on top of the current one) and
swaps it in atomically; a failed import leaves the previous version in force.

What every backend provides (the contract suite tests/store/test_contract.py checks each one):

* ``import_version(..., delta=True, removals=...)``: ``removals`` may hold :class:`Pairing` rows as
  well as :class:`ListEntry` rows. Removals are applied before additions. A removal matches a list
  entry by (kind, key, last) whatever its status, and a pairing by (kind, imsi, imei). An addition
  whose key is already listed replaces it (upsert); within one import the last duplicate wins.
* ``watch(callback)`` registers the callback and returns at once; the store notices changes by
  itself (polling, LISTEN, pub/sub) until ``close()``. Several callbacks may be registered.
* Helpers with default implementations (backends may override them for speed):
  ``active_version() -> int | None`` and ``pairings() -> list[Pairing]``.
* Class attributes the checker reads: ``cache_lookups`` (a round trip costs far more than a dict
  lookup and ``watch`` is reliable: the checker caches ``lookup``/``imsi_rules`` answers until
  ``watch`` reports a new version — cached answers keep being given while the store is down) and
  ``needs_task`` (the backend's calls must run inside an asyncio Task — client libraries that use
  ``asyncio.timeout`` — so the checker yields once before reaching it from an eagerly started check).
* :class:`EntryRows`: an ``Iterable[ListEntry]`` (iterating builds the objects) that also exposes the
  plain tuples as ``.rows``; a backend may read those directly to skip building a million objects in
  a bulk import (SQLite does). Any other iterable stays valid.
* :class:`VersionNotFoundError`: ``rollback`` to an id that does not exist / was pruned.
* Longest match: the narrowest containing range or TAC; among equal spans the one with the lower
  first IMEI. :func:`eir.store.ranges.flatten` computes it once at import for any backend.
* Keys are normalised: IMEI entries and pairing IMEIs are 14 digits (a 15-digit IMEI loses its check
  digit before it reaches the store), IMEISV 16, TAC 8, ranges 14-digit first/last.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from eir.model import Status


class StoreError(Exception):
    """Base of store errors."""


class StoreUnavailableError(StoreError):
    """The backend cannot be reached; the checker turns this into the configured fallback."""


class VersionNotFoundError(StoreError):
    """``rollback`` named a version that does not exist (or was pruned)."""


class EntryKind(StrEnum):
    IMEISV = "imeisv"  # 16 digits
    IMEI = "imei"  # 14 digits (a 15-digit input is stored without its check digit)
    RANGE = "range"  # first-last, both 14 digits
    TAC = "tac"  # 8 digits: a range of 10^6 IMEIs


@dataclass(frozen=True, slots=True, kw_only=True)
class ListEntry:
    """One row of the equipment lists."""

    kind: EntryKind
    key: str
    """IMEISV, IMEI or TAC digits; for a range the first IMEI."""
    last: str | None = None
    """For a range: the last IMEI (inclusive)."""
    status: Status
    imsi: str | None = None
    """Optional IMSI the row was listed with (informational unless a pairing row)."""
    reason: str | None = None

    @property
    def span(self) -> int:
        """Number of IMEIs the entry covers: the longest match is the narrowest span."""
        if self.kind is EntryKind.RANGE and self.last is not None:
            return int(self.last) - int(self.key) + 1
        if self.kind is EntryKind.TAC:
            return 1_000_000
        return 1


class EntryRows:
    """Entries as plain tuples ``(kind, key, last, status, imsi, reason)`` — what the CSV importer
    produces. Iterating yields :class:`ListEntry` objects, so it is an ``Iterable[ListEntry]`` for
    any backend; bulk paths may use ``rows`` directly."""

    __slots__ = ("rows",)

    def __init__(
        self, rows: list[tuple[EntryKind, str, str | None, Status, str | None, str | None]] | None = None
    ) -> None:
        self.rows = rows if rows is not None else []

    def __iter__(self) -> Iterator[ListEntry]:
        for kind, key, last, status, imsi, reason in self.rows:
            yield ListEntry(kind=kind, key=key, last=last, status=status, imsi=imsi, reason=reason)

    def __len__(self) -> int:
        return len(self.rows)


class PairingKind(StrEnum):
    PAIRING = "pairing"  # exception: this IMSI may use this IMEI whatever its list status
    LOCK = "lock"  # this IMSI may use only its listed IMEIs


@dataclass(frozen=True, slots=True, kw_only=True)
class Pairing:
    kind: PairingKind
    imsi: str
    imei: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Lookup:
    """Everything the lists say about one IMEI, in one answer."""

    imeisv: ListEntry | None = None
    imei: ListEntry | None = None
    range: ListEntry | None = None
    """The narrowest range or TAC entry containing the IMEI."""
    tac_table: bool = False
    """A ``tac`` reference table is loaded (the ``tac_not_allocated`` rule is silent without)."""
    device: str | None = None
    """The ``tac`` table's record of the IMEI's TAC, when the table has it."""
    registration_list: bool = False
    """A ``registration`` reference table is loaded."""
    registration: str | None = None
    """The ``registration`` table's record of the IMEI, when it is registered — or
    :data:`REGISTERED` from a store that does not read the record on the hot path (the checker
    reads it with ``reference`` for an explanation)."""
    golden: bool = False
    """The IMEI is on the ``golden`` reference table (the ``golden`` rule: white, above the lists)."""


REGISTERED = ""
"""``Lookup.registration`` of a registered IMEI whose record was not read (an empty record: it
decodes to no fields)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImsiRules:
    """What the pairing lists say about one IMSI and IMEI."""

    pairing: Pairing | None = None
    """An exception pairing this IMSI with this IMEI."""
    locked: bool = False
    """The IMSI is locked to its listed IMEIs."""
    lock_allows: bool = False
    """When locked: this IMEI is one of them."""


Sighting = tuple[str, str, str, float]
"""One stored clone sighting: ``(imei, kind, value, seen)`` — kind ``i`` (value: an IMSI) or
``o`` (value: an origin, the Diameter Origin-Host or the MSC's GT / point code); seen is UNIX time.
Plain tuples: a batch of thousands is built and written on a hot path's behalf."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Sightings:
    """What one IMEI was seen with inside the clone window (the new sighting included)."""

    distinct_imsis: int
    distinct_origins: int


REFERENCE_TABLES = ("tac", "registration", "golden")
"""Reference tables (not lists: data the rules and explanations read) — ``tac``: 8-digit TAC →
device record (GSMA TAC database, PyHSS); ``registration``: 14-digit IMEI → device record (DIRBS
registration list); ``golden``: 14-digit IMEI → ``""`` (DIRBS golden list: IMEIs never blocked,
kept apart from the lists so that no list import can overwrite them). Values are records
(eir/formats/records.py); the store keeps them opaque."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferenceTable:
    name: str
    rows: int
    source: str
    created: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ListVersion:
    id: int
    created: float
    """UNIX time."""
    source: str
    entries: int
    pairings: int = 0
    active: bool = False


_INLINE = "eir_inline_lookup"
_F = TypeVar("_F", bound=Callable[..., Any])


def inline_lookup(fn: _F) -> _F:
    """Marks a store's ``lookup`` that only returns ``self.lookup_inline(...)`` (SQLite, memory)."""
    setattr(fn, _INLINE, True)
    return fn


def answers_inline(store: IdentityStore) -> bool:
    """True when ``store.lookup_inline`` answers as ``store.lookup`` does, without waiting: the
    checker then calls it directly, with no coroutine of its own or of the store's — a population
    load (a fresh IMEI per check) looks up nearly every check. A subclass that overrides ``lookup``
    (a test's failing store, a wrapper) is awaited as before: its override has no mark."""
    return bool(getattr(type(store).lookup, _INLINE, False))


class IdentityStore(abc.ABC):
    """Async identity store. Constructors have no side effects; ``open`` connects."""

    cache_lookups: bool = False
    """True: the checker may cache answers per active version (module docstring)."""
    needs_task: bool = False
    """True: calls must run inside an asyncio Task (module docstring); SQLite and memory answer
    inline, so the servers' eager start completes their checks without a Task."""

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    # --- hot path -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def lookup(self, imei: str, imeisv: str | None = None) -> Lookup:
        """Exact IMEISV (when given), exact IMEI (14 digits) and narrowest range/TAC."""

    def lookup_inline(self, imei: str, imeisv: str | None = None) -> Lookup:
        """:meth:`lookup`'s answer, synchronously; only where :func:`answers_inline` is True."""
        raise NotImplementedError(f"{type(self).__name__} answers lookups by awaiting")

    @abc.abstractmethod
    async def imsi_rules(self, imsi: str, imei: str) -> ImsiRules: ...

    # --- clone sightings (eir/sightings.py keeps them in memory; the store is the shared copy) ---
    @abc.abstractmethod
    async def write_sightings(self, rows: Sequence[Sighting], *, writer: str = "") -> None:
        """Upsert a batch of ``(imei, kind, value, seen)``: one row per (imei, kind, value), the
        newest ``seen`` wins. One transaction / round trip per call. ``writer`` names the instance
        that writes (``SightingTracker.writer``), so that it can leave its own rows out when it
        reads what the others wrote."""

    @abc.abstractmethod
    async def read_sightings(
        self,
        since: float,
        *,
        imei: str | None = None,
        limit: int | None = None,
        exclude_writer: str | None = None,
    ) -> list[Sighting]:
        """Rows seen at or after ``since`` (of one IMEI when given), newest first, at most
        ``limit``; without the rows ``exclude_writer`` wrote last (when given). ``imei`` and
        ``exclude_writer`` are not combined."""

    @abc.abstractmethod
    async def prune_sightings(self, before: float) -> None:
        """Delete rows last seen before ``before``."""

    @abc.abstractmethod
    async def clear_sightings(self, imei: str) -> int:
        """Delete every row of ``imei`` (an operator clears a clone suspicion); how many went."""

    @abc.abstractmethod
    async def count_sightings(self) -> int:
        """How many rows are stored (the storage cap; may count a row twice where writers
        overlap)."""

    async def estimate_sightings(self) -> int:
        """About how many rows are stored, cheaply: the storage cap asks this first, every
        ``CAP_INTERVAL``, and counts exactly only near the cap (eir/sightings.py). This default is
        the exact count (cheap where the store counts without reading its rows)."""
        return await self.count_sightings()

    @abc.abstractmethod
    async def evict_sightings(self, keep: int) -> int:
        """Delete the oldest rows so that at most about ``keep`` remain; how many went."""

    # --- lists --------------------------------------------------------------------------------
    @abc.abstractmethod
    async def import_version(
        self,
        entries: Iterable[ListEntry],
        pairings: Iterable[Pairing],
        *,
        source: str,
        delta: bool = False,
        removals: Iterable[ListEntry | Pairing] = (),
    ) -> ListVersion:
        """Build a new version (a copy of the current one plus changes when ``delta``) and make it
        active atomically. On any error the previous version stays active."""

    @abc.abstractmethod
    async def versions(self) -> list[ListVersion]: ...

    @abc.abstractmethod
    async def rollback(self, version_id: int) -> ListVersion: ...

    @abc.abstractmethod
    def export(self) -> AsyncIterator[ListEntry | Pairing]: ...

    @abc.abstractmethod
    async def watch(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(version_id)`` whenever the active version changes (from any process).

        Registers and returns at once; notifications run until ``close()``."""

    # --- reference tables (REFERENCE_TABLES) ----------------------------------------------------
    @abc.abstractmethod
    async def import_reference(
        self, table: str, rows: Iterable[tuple[str, str]], *, source: str
    ) -> ReferenceTable:
        """Replace ``table`` with ``rows`` (key, value) atomically (a failure leaves the old one).
        An empty ``rows`` unloads the table. ``lookup`` answers from it (``Lookup.device``,
        ``.registration``) at once, and every ``watch`` callback (of this handle and, as for a
        version flip, of the other processes) is called with the active version id — the same
        id: the lists did not change, but answers cached per version must be dropped. The tables
        are not versioned: a rollback leaves them."""

    @abc.abstractmethod
    async def reference_tables(self) -> list[ReferenceTable]:
        """The loaded reference tables."""

    @abc.abstractmethod
    async def reference(self, table: str, key: str) -> str | None:
        """One record of a reference table."""

    # --- first sightings (the tac_not_allocated grace period; eir/first_seen.py) -----------------
    async def write_first_seen(self, rows: Sequence[tuple[str, float]]) -> None:
        """Record ``(imei, first_seen)`` rows; an IMEI already recorded keeps its earlier time.

        The default (the memory store) keeps them in this handle's memory; SQLite keeps them in
        its observations file, PostgreSQL and Redis in their server."""
        mem: dict[str, float] = self.__dict__.setdefault("_first_seen_mem", {})
        for imei, ts in rows:
            old = mem.get(imei)
            if old is None or ts < old:
                mem[imei] = ts

    async def read_first_seen(self, limit: int) -> list[tuple[str, float]]:
        """The ``limit`` most recent ``(imei, first_seen)`` rows (read at start-up)."""
        mem: dict[str, float] = self.__dict__.get("_first_seen_mem", {})
        return sorted(mem.items(), key=lambda r: r[1])[-limit:] if limit > 0 else []

    # --- per-day observation history (DIRBS duplicate_mk1; eir/duplicates.py) ---------------------
    # The defaults (the memory store) keep it in this handle's memory; SQLite keeps it in its
    # observations file, PostgreSQL and Redis in their server.
    def _daily_mem(self) -> tuple[set[tuple[str, int, str]], dict[str, float]]:
        d = self.__dict__.get("_daily_mem_")
        if d is None:
            d = self.__dict__["_daily_mem_"] = (set(), {})
        return d

    async def write_daily(self, rows: Sequence[tuple[str, int, str]]) -> None:
        """Record ``(imei, day, imsi)`` rows (day: days since the epoch, UTC); repeats are one row."""
        self._daily_mem()[0].update(rows)

    async def classify_duplicates(
        self,
        *,
        today: int,
        threshold: int,
        period_days: int,
        daily_avg: float,
        daily_avg_days: int,
        min_seen_days: int,
    ) -> set[str]:
        """The IMEIs of the history that meet duplicate_mk1 on ``today``
        (:func:`eir.duplicates.duplicate_mk1` says how)."""
        from eir.duplicates import duplicate_mk1

        return duplicate_mk1(
            self._daily_mem()[0],
            today=today,
            threshold=threshold,
            period_days=period_days,
            daily_avg=daily_avg,
            daily_avg_days=daily_avg_days,
            min_seen_days=min_seen_days,
        )

    async def flag_duplicates(self, imeis: Sequence[str], ts: float) -> None:
        """Flag ``imeis`` for good (sticky); an IMEI already flagged keeps its time. Only an IMEI
        that still has daily history is flagged, checked atomically with the insert: a clear
        (:meth:`clear_duplicate`) committed between a classification's count and this call must
        not be undone by it (the IMEI would be flagged again with no history to explain it)."""
        rows, flagged = self._daily_mem()
        wanted = set(imeis) - flagged.keys()
        if not wanted:
            return
        seen = {r[0] for r in rows if r[0] in wanted}  # no await in between: atomic here
        for imei in imeis:
            if imei in seen:
                flagged.setdefault(imei, ts)

    async def duplicates(self) -> dict[str, float]:
        """The flagged IMEIs and when they were flagged."""
        return dict(self._daily_mem()[1])

    async def duplicates_page(self, limit: int, offset: int) -> tuple[list[tuple[str, float]], int]:
        """One page of the flags in IMEI order (``GET /duplicates``) and how many there are; the
        SQL and Redis stores page on their side."""
        flags = sorted((await self.duplicates()).items())
        return flags[offset : offset + max(limit, 0)], len(flags)

    async def duplicate_flag(self, imei: str) -> float | None:
        """When ``imei`` was flagged; None: it is not."""
        return (await self.duplicates()).get(imei)

    async def daily_history(self, imei: str, limit: int = 10_000) -> list[tuple[int, str]]:
        """The ``(day, imsi)`` history of one IMEI, oldest day first, at most ``limit`` rows (what
        ``eir duplicates show`` and the admin API explain a flag with)."""
        rows = sorted((d, s) for i, d, s in self._daily_mem()[0] if i == imei)
        return rows[: max(limit, 0)]

    async def clear_duplicate(self, imei: str) -> tuple[bool, int]:
        """An operator clears a duplicate_mk1 flag: delete the flag and the IMEI's whole history, so
        that only observations made after the clear can flag it again. Returns (a flag was
        there, history rows deleted)."""
        rows, flagged = self._daily_mem()
        mine = {r for r in rows if r[0] == imei}
        rows.difference_update(mine)
        return flagged.pop(imei, None) is not None, len(mine)

    async def prune_daily(self, before_day: int, max_rows: int) -> int:
        """Delete the history of days <= ``before_day``, then the oldest days beyond ``max_rows``
        rows; how many went."""
        rows = self._daily_mem()[0]
        n = len(rows)
        keep = sorted((r for r in rows if r[1] > before_day), key=lambda r: r[1])
        if max_rows > 0 and len(keep) > max_rows:
            keep = keep[len(keep) - max_rows :]
        rows.clear()
        rows.update(keep)
        return n - len(rows)

    # --- helpers with default implementations ---------------------------------------------------
    async def active_version(self) -> int | None:
        """The id of the active version, or None before the first import."""
        for v in await self.versions():
            if v.active:
                return v.id
        return None

    async def pairings(self) -> list[Pairing]:
        """The pairing and lock rows of the active version."""
        return [p async for p in self.export() if isinstance(p, Pairing)]


def peek_small_delta(
    entries: Iterable[ListEntry],
    pairings: Iterable[Pairing],
    removals: Iterable[ListEntry | Pairing],
    limit: int,
) -> tuple[
    Iterable[ListEntry],
    Iterable[Pairing],
    Iterable[ListEntry | Pairing],
    tuple[list[ListEntry], list[ListEntry]] | None,
]:
    """For a store's light path for small deltas: read at most ``limit`` + 1 items of each
    iterable (an import may be a huge generator) and give them back whole (the read part chained in
    front); the last item is ``(additions, removals)`` when the delta has at most ``limit`` items,
    no pairings and only exact (IMEI, IMEISV) entries — what an overlay version can hold."""
    exact = (EntryKind.IMEI, EntryKind.IMEISV)
    if isinstance(entries, EntryRows) and len(entries) > limit:
        return entries, pairings, removals, None  # a bulk delta: keep its tuple fast path
    head_p = list(itertools.islice(pairings, 1))
    pairings = itertools.chain(head_p, pairings)
    head_e = list(itertools.islice(entries, limit + 1))
    entries = itertools.chain(head_e, entries) if len(head_e) > limit else head_e
    head_r = list(itertools.islice(removals, limit + 1))
    removals = itertools.chain(head_r, removals) if len(head_r) > limit else head_r
    small = (
        not head_p
        and len(head_e) + len(head_r) <= limit
        and all(isinstance(e, ListEntry) and e.kind in exact for e in head_e)
        and all(isinstance(r, ListEntry) and r.kind in exact for r in head_r)
    )
    if not small:
        return entries, pairings, removals, None
    return entries, pairings, removals, (head_e, [r for r in head_r if isinstance(r, ListEntry)])


class PushedChanges:
    """``watch()`` for stores that learn of version flips over a connection of their own
    (PostgreSQL LISTEN/NOTIFY, Redis pub/sub). The store provides ``_listen()`` (runs until closed,
    sets ``_attempted`` after its first attempt and calls ``_fire`` on each flip), ``connect_timeout``
    and a logger ``_watch_log``."""

    connect_timeout: float
    _callbacks: list[Callable[[int], None]]
    _listener: asyncio.Task[None] | None
    _attempted: asyncio.Event
    _watch_log: Any

    async def _listen(self) -> None:
        raise NotImplementedError

    async def watch(self, callback: Callable[[int], None]) -> None:
        """Register ``callback``; after a reconnect it is also called with the active version, as a
        flip may have been missed meanwhile. The first call starts listening and waits (at most the
        connect timeout) until it listens, so that a change made right after is not missed."""
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        if self._listener is None or self._listener.done():
            self._attempted.clear()
            self._listener = asyncio.ensure_future(self._listen())
            # wait for the first attempt only (listening, or failed: then it retries in the background)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._attempted.wait(), timeout=self.connect_timeout)

    def _fire(self, vid: int) -> None:
        for cb in list(self._callbacks):
            try:
                cb(vid)
            except Exception:
                self._watch_log.exception("watch_callback_failed", version=vid)
