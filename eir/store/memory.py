"""In-process identity store (``memory://``): the reference implementation of the store contract.

Used by tests and single-process labs. Versions are whole copies (dicts), so an import that fails
midway never touches the active one; range/TAC lookups use the flattened segments of
:mod:`eir.store.ranges` and one ``bisect``.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from eir.store.base import (
    EntryKind,
    IdentityStore,
    ImsiRules,
    ListEntry,
    ListVersion,
    Lookup,
    Pairing,
    PairingKind,
    ReferenceTable,
    Sighting,
    StoreError,
    VersionNotFoundError,
    inline_lookup,
    peek_small_delta,
)
from eir.store.ranges import bounds, flatten


def check_entry(e: ListEntry) -> None:
    """Reject an entry whose key does not fit its kind (backends share this check)."""
    k = e.key
    ok = k.isascii() and k.isdigit()
    if e.kind is EntryKind.IMEI:
        ok = ok and len(k) == 14
    elif e.kind is EntryKind.IMEISV:
        ok = ok and len(k) == 16
    elif e.kind is EntryKind.TAC:
        ok = ok and len(k) == 8
    else:
        last = e.last or ""
        ok = ok and len(k) == 14 and len(last) == 14 and last.isdigit() and int(last) >= int(k)
    if not ok:
        raise StoreError(f"invalid {e.kind} entry {k!r}{'-' + e.last if e.last else ''}")


def check_pairing(p: Pairing) -> None:
    if not (len(p.imei) == 14 and p.imei.isdigit() and p.imsi.isdigit() and 5 <= len(p.imsi) <= 15):
        raise StoreError(f"invalid {p.kind} row imsi={p.imsi!r} imei={p.imei!r}")


SMALL_DELTA = 4096
"""A delta of at most this many exact rows (no ranges, TACs or pairings) shares the base version's
ranges, pairings and range index instead of copying and rebuilding them (the exact dict is copied)."""


def range_key(e: ListEntry) -> tuple[str, str, str | None]:
    return (e.kind.value, e.key, e.last)


@dataclass(slots=True)
class _Version:
    meta: ListVersion
    exact: dict[str, ListEntry] = field(default_factory=dict)
    ranges: dict[tuple[str, str, str | None], ListEntry] = field(default_factory=dict)
    pairs: dict[tuple[str, str, str], Pairing] = field(default_factory=dict)
    seg_starts: list[int] = field(default_factory=list)
    seg_ends: list[int] = field(default_factory=list)
    seg_entries: list[ListEntry] = field(default_factory=list)
    locks: dict[str, set[str]] = field(default_factory=dict)

    def index(self) -> None:
        segs = flatten((*bounds(e), e) for e in self.ranges.values())
        self.seg_starts = [s for s, _e, _p in segs]
        self.seg_ends = [e for _s, e, _p in segs]
        self.seg_entries = [p for _s, _e, p in segs]
        self.locks = {}
        for kind, imsi, imei in self.pairs:
            if kind == PairingKind.LOCK.value:
                self.locks.setdefault(imsi, set()).add(imei)


class MemoryStore(IdentityStore):
    """Everything in dicts; ``keep_versions`` old versions are kept for rollback."""

    name = "memory"

    def __init__(self, url: str = "memory://", *, keep_versions: int = 5) -> None:
        self.url = url
        self.keep_versions = keep_versions
        self._versions: dict[int, _Version] = {}
        self._active: _Version | None = None
        self._next_id = 1
        self._callbacks: list[Callable[[int], None]] = []
        self._obs: dict[tuple[str, str, str], float] = {}
        self._obs_writer: dict[tuple[str, str, str], str] = {}
        self._lock = asyncio.Lock()
        self._empty = _Version(ListVersion(id=0, created=0.0, source="", entries=0))
        self._ref: dict[str, tuple[ReferenceTable, dict[str, str]]] = {}
        self._tac: dict[str, str] | None = None
        self._reg: dict[str, str] | None = None
        self._golden: dict[str, str] | None = None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        self._callbacks.clear()

    # --- hot path -----------------------------------------------------------------------------
    @inline_lookup
    async def lookup(self, imei: str, imeisv: str | None = None) -> Lookup:
        return self.lookup_inline(imei, imeisv)

    def lookup_inline(self, imei: str, imeisv: str | None = None) -> Lookup:
        v = self._active or self._empty
        exact = v.exact
        sv = exact.get(imeisv) if imeisv is not None else None
        ie = exact.get(imei)
        rng = None
        starts = v.seg_starts
        if starts:
            n = int(imei)
            i = bisect_right(starts, n) - 1
            if i >= 0 and v.seg_ends[i] >= n:
                rng = v.seg_entries[i]
        tac, reg, gold = self._tac, self._reg, self._golden
        if tac is not None or reg is not None or gold is not None:
            return Lookup(
                imeisv=sv,
                imei=ie,
                range=rng,
                tac_table=tac is not None,
                device=tac.get(imei[:8]) if tac is not None else None,
                registration_list=reg is not None,
                registration=reg.get(imei) if reg is not None else None,
                golden=gold is not None and imei in gold,
            )
        if sv is None and ie is None and rng is None:
            return _NO_MATCH
        return Lookup(imeisv=sv, imei=ie, range=rng)

    # --- reference tables ---------------------------------------------------------------------
    async def import_reference(
        self, table: str, rows: Iterable[tuple[str, str]], *, source: str
    ) -> ReferenceTable:
        data = dict(rows)
        meta = ReferenceTable(name=table, rows=len(data), source=source, created=time.time())
        if data:
            self._ref[table] = (meta, data)
        else:
            self._ref.pop(table, None)
        self._tac = self._ref["tac"][1] if "tac" in self._ref else None
        self._reg = self._ref["registration"][1] if "registration" in self._ref else None
        self._golden = self._ref["golden"][1] if "golden" in self._ref else None
        if self._active is not None:
            for cb in list(self._callbacks):
                cb(self._active.meta.id)
        return meta

    async def reference_tables(self) -> list[ReferenceTable]:
        return [m for m, _ in self._ref.values()]

    async def reference(self, table: str, key: str) -> str | None:
        t = self._ref.get(table)
        return t[1].get(key) if t is not None else None

    async def imsi_rules(self, imsi: str, imei: str) -> ImsiRules:
        v = self._active or self._empty
        if not v.pairs:
            return _NO_RULES
        p = v.pairs.get((PairingKind.PAIRING.value, imsi, imei))
        locked = v.locks.get(imsi)
        if p is None and locked is None:
            return _NO_RULES
        return ImsiRules(pairing=p, locked=locked is not None, lock_allows=bool(locked and imei in locked))

    async def write_sightings(self, rows: Sequence[Sighting], *, writer: str = "") -> None:
        obs, writers = self._obs, self._obs_writer
        for imei, kind, value, seen in rows:
            key = (imei, kind, value)
            last = obs.get(key)
            if last is None or seen > last:
                obs[key] = seen
                writers[key] = writer

    async def read_sightings(
        self,
        since: float,
        *,
        imei: str | None = None,
        limit: int | None = None,
        exclude_writer: str | None = None,
    ) -> list[Sighting]:
        writers = self._obs_writer
        rows = [
            (i, k, v, t)
            for (i, k, v), t in self._obs.items()
            if t >= since
            and (imei is None or i == imei)
            and (exclude_writer is None or writers.get((i, k, v)) != exclude_writer)
        ]
        rows.sort(key=lambda r: r[3], reverse=True)
        return rows[:limit] if limit is not None else rows

    async def prune_sightings(self, before: float) -> None:
        for key in [k for k, t in self._obs.items() if t < before]:
            del self._obs[key]
            self._obs_writer.pop(key, None)

    async def clear_sightings(self, imei: str) -> int:
        keys = [k for k in self._obs if k[0] == imei]
        for key in keys:
            del self._obs[key]
            self._obs_writer.pop(key, None)
        return len(keys)

    async def count_sightings(self) -> int:
        return len(self._obs)

    async def evict_sightings(self, keep: int) -> int:
        excess = len(self._obs) - max(0, keep)
        if excess <= 0:
            return 0
        for key in sorted(self._obs, key=self._obs.__getitem__)[:excess]:
            del self._obs[key]
            self._obs_writer.pop(key, None)
        return excess

    # --- lists --------------------------------------------------------------------------------
    async def import_version(
        self,
        entries: Iterable[ListEntry],
        pairings: Iterable[Pairing],
        *,
        source: str,
        delta: bool = False,
        removals: Iterable[ListEntry | Pairing] = (),
    ) -> ListVersion:
        async with self._lock:
            base = self._active if delta else None
            v = _Version(ListVersion(id=0, created=0.0, source=source, entries=0))
            shared = False
            if base is not None:
                entries, pairings, removals, small = peek_small_delta(
                    entries, pairings, removals, SMALL_DELTA
                )
                v.exact = dict(base.exact)
                if small is not None:
                    # exact rows only: the ranges, pairings and their indexes are the base's, shared
                    # (never changed once built: a later delta copies them), not copied and rebuilt
                    shared = True
                    v.ranges, v.pairs, v.locks = base.ranges, base.pairs, base.locks
                    v.seg_starts, v.seg_ends, v.seg_entries = base.seg_starts, base.seg_ends, base.seg_entries
                else:
                    v.ranges = dict(base.ranges)
                    v.pairs = dict(base.pairs)
            for r in removals:
                if isinstance(r, Pairing):
                    v.pairs.pop((r.kind.value, r.imsi, r.imei), None)
                elif r.kind in (EntryKind.IMEI, EntryKind.IMEISV):
                    v.exact.pop(r.key, None)
                else:
                    v.ranges.pop(range_key(r), None)
            for e in entries:
                check_entry(e)
                if e.kind in (EntryKind.IMEI, EntryKind.IMEISV):
                    v.exact[e.key] = e
                else:
                    v.ranges[range_key(e)] = e
            for p in pairings:
                check_pairing(p)
                v.pairs[(p.kind.value, p.imsi, p.imei)] = p
            if not shared:
                v.index()
            vid = self._next_id
            self._next_id += 1
            v.meta = ListVersion(
                id=vid,
                created=time.time(),
                source=source,
                entries=len(v.exact) + len(v.ranges),
                pairings=len(v.pairs),
            )
            self._versions[vid] = v
            self._activate(v)
            self._prune_versions()
            return self._meta(v)

    def _activate(self, v: _Version) -> None:
        self._active = v
        for cb in list(self._callbacks):
            cb(v.meta.id)

    def _prune_versions(self) -> None:
        ids = sorted(self._versions, reverse=True)
        for vid in ids[self.keep_versions :]:
            if self._active is not None and vid != self._active.meta.id:
                del self._versions[vid]

    def _meta(self, v: _Version) -> ListVersion:
        m = v.meta
        return ListVersion(
            id=m.id,
            created=m.created,
            source=m.source,
            entries=m.entries,
            pairings=m.pairings,
            active=v is self._active,
        )

    async def versions(self) -> list[ListVersion]:
        return [self._meta(self._versions[i]) for i in sorted(self._versions, reverse=True)]

    async def rollback(self, version_id: int) -> ListVersion:
        v = self._versions.get(version_id)
        if v is None:
            raise VersionNotFoundError(f"no list version {version_id}")
        self._activate(v)
        return self._meta(v)

    async def active_version(self) -> int | None:
        return None if self._active is None else self._active.meta.id

    async def pairings(self) -> list[Pairing]:
        return [] if self._active is None else list(self._active.pairs.values())

    async def export(self) -> AsyncIterator[ListEntry | Pairing]:
        v = self._active
        if v is None:
            return
        for e in v.exact.values():
            yield e
        for e in v.ranges.values():
            yield e
        for p in v.pairs.values():
            yield p

    async def watch(self, callback: Callable[[int], None]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)


_NO_MATCH = Lookup()
_NO_RULES = ImsiRules()
