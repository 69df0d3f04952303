"""SQLite identity store (the default): one file, WAL, several processes may share it.

Layout. Every list version has its own immutable tables, written once by the import that built it:

* ``x_<v>(k INTEGER PRIMARY KEY, st, imsi, reason)`` exact entries. The key is the IMEI as an
  integer, or ``10**17 + IMEISV`` (14 and 16 digits are fixed widths, so zero-padding restores
  them), which makes an exact lookup one rowid seek.
* ``r_<v>`` the range and TAC rows as listed (for export and for delta imports) and
  ``s_<v>(start INTEGER PRIMARY KEY, end, ...)`` their flattened segments
  (:mod:`eir.store.ranges`): the narrowest containing range is the one segment with the greatest
  ``start <= IMEI`` — one seek, flat at any list size.
* ``p_<v>(imsi, kind, imei, reason)`` pairings (kind 0) and locks (kind 1), primary key
  ``(imsi, kind, imei)`` so every question about an IMSI is a point seek.

A small delta of exact entries (an admin API change: one IMEI) is an *overlay* instead: the new
version shares the x/r/s/p tables of the full version under it (``versions.base``) and owns only
``d_<v>(k INTEGER PRIMARY KEY, st, imsi, reason)``, the changes accumulated since that full version
(a NULL ``st`` is a removal), so it writes a few rows, not a copy of the list; a lookup reads
``d_<v>`` first (two more seeks). The overlay is folded into a full copy once it would exceed
``OVERLAY_MAX`` rows, or when the delta holds ranges, TACs or pairings. A full version that a kept
overlay builds on keeps its tables until no kept version needs them.

An import creates the new tables, fills them (``executemany``) and moves ``meta.active_version``
in ONE transaction: a failure anywhere rolls everything back and the previous version stays in
force; readers (WAL) are never blocked. Old versions are kept for rollback and pruned to
``keep_versions`` (a DROP TABLE, not a huge DELETE).

Change detection: readers cache the active version id and, at most every ``poll_interval``
seconds, ask ``PRAGMA data_version`` (which changes when another connection commits) before
re-reading it. ``watch`` runs the same poll in a task and calls back on a change.

Reads are synchronous on the event loop thread: a point lookup is a few microseconds, far cheaper
than a hop to a thread. Imports, rollbacks and exports use their own connection in a thread.

Clone sightings go to a sibling file (``<db>-obs``) so that their batches never wait behind a long
import's write lock, and list readers do not see a ``data_version`` change for each of them; they
are written, read and pruned in worker threads (eir/sightings.py batches them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from eir.logging import get_logger
from eir.model import Status
from eir.store.base import (
    REFERENCE_TABLES,
    REGISTERED,
    EntryKind,
    EntryRows,
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
    StoreUnavailableError,
    VersionNotFoundError,
    inline_lookup,
    peek_small_delta,
)
from eir.store.listindex import ASK, ListIndex, extend_index, read_index
from eir.store.ranges import TAC_SPAN, flatten

SV_OFFSET = 10**17
_ST = {Status.WHITE: 0, Status.GREY: 1, Status.BLACK: 2}
_ST_BACK = (Status.WHITE, Status.GREY, Status.BLACK)
_RK = {EntryKind.RANGE: 0, EntryKind.TAC: 1}
_PK = {PairingKind.PAIRING: 0, PairingKind.LOCK: 1}
_PK_BACK = (PairingKind.PAIRING, PairingKind.LOCK)
_NO_MATCH = Lookup()
_NO_RULES = ImsiRules()
_log = get_logger(component="store.sqlite")


def sqlite_path(url: str, data_dir: str) -> Path:
    """``sqlite:///rel/path`` (relative to the working directory), ``sqlite:////abs/path``;
    ``sqlite://`` or ``sqlite:///`` alone means ``<data_dir>/eir.db``."""
    rest = url.split("://", 1)[1] if "://" in url else ""
    rest = rest.split("?", 1)[0]
    if rest in ("", "/"):
        return Path(data_dir) / "eir.db"
    if not rest.startswith("/"):
        raise StoreError(
            f"store.url: expected sqlite:///relative/path or sqlite:////absolute/path, got {url!r}"
        )
    return Path(rest[1:])


def _connect(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    con = sqlite3.connect(
        path, isolation_level=None, check_same_thread=check_same_thread, cached_statements=256
    )
    con.execute("PRAGMA busy_timeout = 5000")
    return con


T = TypeVar("T")


async def _uncancelled_thread(fn: Callable[[], T]) -> T:
    """``fn()`` in a worker thread that holds the sightings' write connection: when the awaiting
    task is cancelled (``SightingTracker.close`` stops its write-behind), the thread runs on, so
    the lock on that connection is kept until it ends, then the cancellation goes on. (Released at
    once, the next batch began a transaction inside the running one: "cannot start a transaction
    within a transaction", and lost its rows at shutdown.)"""
    fut = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait([fut])
        raise


_KIND_CODE = {"i": 0, "o": 1, "c": 2, "e": 3, "g": 4, "n": 5}
"""eir/sightings.py's kinds (an IMSI's kind says the interface it came on)."""
_ROWS_PER_INSERT = 500
"""Sightings per INSERT statement (2,000 parameters; fewer when the library allows fewer)."""


@functools.lru_cache(maxsize=128)
def _insert_rows(n: int, writer: str) -> str:
    """An INSERT of ``n`` sightings, four parameters each: the writer, the same for the whole
    batch, is a literal (bound on every row it cost ~950 of the writer thread's ~6k instructions
    a row, measured under callgrind with 500-row statements), quoted as SQL quotes text."""
    w = "'" + writer.replace("'", "''") + "'"
    return "INSERT INTO sightings VALUES " + ",".join([f"(?, ?, ?, ?, {w})"] * n)


_INTERLEAVE = 10.0
"""Seconds by which rows of several writers (workers) may be out of time order in the log: their
batch delays, with a wide margin."""
_KIND_NAME = {v: k for k, v in _KIND_CODE.items()}
_ROWID_SPAN = "SELECT (SELECT min(rowid) FROM sightings), (SELECT max(rowid) FROM sightings)"
"""The log's first and last rowid, each by one B-tree descent. ``SELECT min(rowid), max(rowid)``
in one query is not a min/max query to SQLite's planner (that optimisation takes a single
aggregate): it scanned the whole log — 115 ms a million rows, every ``CAP_INTERVAL``, holding the
write-behind's lock."""


class SqliteStore(IdentityStore):
    name = "sqlite"
    cache_lookups = True
    """A point lookup through the sqlite3 module costs ~10 us here, a cached answer well under 1 us;
    ``watch`` is reliable (same-process imports call back at once, others within poll_interval,
    the same delay the store itself has)."""

    def __init__(
        self,
        url: str,
        data_dir: str = "data",
        *,
        poll_interval: float = 1.0,
        keep_versions: int = 5,
        index_max_keys: int = 0,
    ) -> None:
        q = parse_qs(urlsplit(url).query)
        self.url = url
        self.path = sqlite_path(url, data_dir)
        self.obs_path = Path(str(self.path) + "-obs")
        self.poll_interval = float(q.get("poll_interval", [poll_interval])[0])
        self.keep_versions = int(q.get("keep_versions", [keep_versions])[0])
        self.index_max_keys = int(q.get("index_max_keys", [index_max_keys])[0])
        """Exact keys up to which the active version is held in memory (:mod:`eir.store.listindex`);
        0 (the default, a CLI's): never, every lookup is a statement. ``eir serve`` sets
        ``store.index_max_keys`` (eir/config.py)."""
        self._index: ListIndex | None = None
        self._index_due: tuple[int, int] | None = None
        """The version to index (its id, and the full version whose tables it reads: another id
        for an overlay) until a lookup starts the build."""
        self._index_prev: ListIndex | None = None
        """The last index installed: an overlay on its table extends a copy of it."""
        self._index_build: asyncio.Future[ListIndex | None] | None = None
        self._db: sqlite3.Connection | None = None
        self._obs: sqlite3.Connection | None = None
        self._version: int | None = None
        self._has_pairs = False
        self._data_version = -1
        self._next_poll = 0.0
        self._sql: tuple[str, str, str] = ("", "", "")
        self._callbacks: list[Callable[[int], None]] = []
        self._watch_task: asyncio.Task[None] | None = None
        self._obs_write: sqlite3.Connection | None = None
        self._obs_lock = asyncio.Lock()
        self._prune_task: asyncio.Task[Any] | None = None
        self._prune_stop = threading.Event()
        self._write_lock = asyncio.Lock()
        self._ref_loaded: frozenset[str] = frozenset()
        self._tac: dict[int, str] | None = None
        self._reg: set[int] | None = None
        self._golden: set[int] | None = None
        """The golden list (DIRBS: never blocked), as a set like ``_reg``."""
        self._ref_lookups: tuple[dict[int, Lookup], dict[int, Lookup]] = ({}, {})
        """The answers for an unlisted IMEI with reference tables loaded, one per TAC,
        [registered]: shared, as a Lookup costs ~1 us to build (at most 1M TACs each, then cleared)."""
        self._ref_stamp: str | None = None
        self.last_import_changes = 0
        """Rows the last import wrote (inserted, replaced, deleted: SQLite's own count)."""

    # --- connection ----------------------------------------------------------------------------
    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = _connect(self.path)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            # Reads through a memory map: no pread() per B-tree page, so a lookup in a 10M-entry
            # file costs what it costs in a small one (bench/store.py). Address space, not RAM.
            db.execute("PRAGMA mmap_size = 4294967296")
            db.execute("CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS versions(id INTEGER PRIMARY KEY, created REAL, "
                "source TEXT, entries INTEGER, pairings INTEGER)"
            )
            if "base" not in {r[1] for r in db.execute("PRAGMA table_info(versions)")}:
                # a small delta is an overlay on a full version (the module docstring)
                db.execute("ALTER TABLE versions ADD COLUMN base INTEGER")
            # reference tables (TAC → device, registered IMEIs): one table, replaced per name in a
            # transaction; not versioned with the lists
            for t in REFERENCE_TABLES:  # digit keys as integers: a lookup is one rowid seek
                db.execute(f"CREATE TABLE IF NOT EXISTS ref_{t}(k INTEGER PRIMARY KEY, v TEXT)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS ref_meta(tbl TEXT PRIMARY KEY, rows INTEGER, source TEXT, "
                "created REAL)"
            )
            obs = _connect(self.obs_path)
            obs.execute("PRAGMA journal_mode = WAL")
            obs.execute("PRAGMA synchronous = OFF")
            # An append-only log (rowid order is write order, hence roughly time order): no primary
            # key or index to maintain per row (3 us a row against 14 for an upsert into a keyed
            # table with a time index, measured here). Readers fold duplicates (newest time wins).
            # w: the writer (an instance's SightingTracker.writer), so that --workers sharing the
            # file leave their own rows out when they read each other's.
            obs.execute(
                "CREATE TABLE IF NOT EXISTS sightings(imei TEXT, kind INTEGER, value TEXT, ts REAL, w TEXT)"
            )
            # first sightings of IMEIs with an unallocated TAC (policy.tac_not_allocated.grace_days)
            obs.execute("CREATE TABLE IF NOT EXISTS first_seen(imei INTEGER PRIMARY KEY, ts REAL)")
            # the per-day observation history of DIRBS duplicate_mk1 (eir/duplicates.py), and the
            # IMEIs it flagged (sticky)
            obs.execute(
                "CREATE TABLE IF NOT EXISTS daily(imei INTEGER, day INTEGER, imsi TEXT, "
                "PRIMARY KEY (imei, day, imsi)) WITHOUT ROWID"
            )
            obs.execute("CREATE INDEX IF NOT EXISTS daily_day ON daily(day)")
            obs.execute("CREATE TABLE IF NOT EXISTS duplicates(imei INTEGER PRIMARY KEY, ts REAL)")
            if "w" not in {r[1] for r in obs.execute("PRAGMA table_info(sightings)")}:
                obs.execute("ALTER TABLE sightings ADD COLUMN w TEXT")  # a log of an earlier version
            if obs.execute("SELECT 1 FROM sqlite_master WHERE name = 'obs'").fetchone():
                # the keyed table of earlier versions: keep its rows, oldest first
                obs.execute("BEGIN IMMEDIATE")
                obs.execute("INSERT INTO sightings SELECT imei, kind, value, ts, '' FROM obs ORDER BY ts")
                obs.execute("DROP TABLE obs")
                obs.execute("COMMIT")
        except (sqlite3.Error, OSError) as e:
            raise StoreUnavailableError(f"sqlite {self.path}: {e}") from e
        self._db, self._obs = db, obs
        self._version = None  # read afresh (a reopened handle indexes it again)
        self._refresh()

    async def close(self) -> None:
        if self._prune_task is not None:
            self._prune_stop.set()
        async with self._obs_lock:  # a batch being written finishes first
            if self._obs_write is not None:
                self._obs_write.close()
                self._obs_write = None
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch_task
            self._watch_task = None
        self._callbacks.clear()
        self._index = self._index_build = self._index_due = self._index_prev = None
        for con in (self._db, self._obs):
            if con is not None:
                con.close()
        self._db = self._obs = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailableError("sqlite store is not open")
        return self._db

    def _refresh(self) -> bool:
        """Re-read the active version; True when it changed."""
        db = self._conn()
        self._data_version = db.execute("PRAGMA data_version").fetchone()[0]
        row = db.execute("SELECT v FROM meta WHERE k = 'active_version'").fetchone()
        vid = None if row is None else int(row[0])
        # a reference table replaced (by any process) counts as a change too: answers cached per
        # version must be dropped though the version id stays
        stamp = db.execute(
            "SELECT group_concat(tbl || ':' || rows || ':' || created) FROM ref_meta"
        ).fetchone()[0]
        changed = vid != self._version or stamp != self._ref_stamp
        if stamp != self._ref_stamp:
            # The TAC table is held in memory (a GSMA file has a few hundred thousand TACs): a dict
            # lookup instead of another arm in the lookup statement, which cost ~1.5 us a check.
            has_tac = db.execute("SELECT 1 FROM ref_meta WHERE tbl = 'tac' AND rows > 0").fetchone()
            self._tac = dict(db.execute("SELECT k, v FROM ref_tac").fetchall()) if has_tac else None
            # The registration list as a set of integer IMEIs (~60 B an IMEI: 20 MB for 333k): a
            # set probe instead of a third arm in the lookup statement (~2 us a check). The record
            # itself is read only for an explanation (Lookup.registration is REGISTERED).
            has_reg = db.execute("SELECT 1 FROM ref_meta WHERE tbl = 'registration' AND rows > 0").fetchone()
            self._reg = {k for (k,) in db.execute("SELECT k FROM ref_registration")} if has_reg else None
            has_gold = db.execute("SELECT 1 FROM ref_meta WHERE tbl = 'golden' AND rows > 0").fetchone()
            self._golden = {k for (k,) in db.execute("SELECT k FROM ref_golden")} if has_gold else None
            self._ref_lookups = ({}, {})
        self._ref_stamp = stamp
        self._set_version(vid)
        return changed

    def _set_version(self, vid: int | None) -> None:
        new = vid != self._version
        if new:
            if self._index is not None:
                self._index_prev = self._index
            self._index = self._index_build = self._index_due = None
        self._version = vid
        self._ref_loaded = frozenset(
            r[0] for r in self._conn().execute("SELECT tbl FROM ref_meta WHERE rows > 0")
        )
        if vid is None:
            self._has_pairs = False
            return
        row = self._conn().execute("SELECT pairings, base FROM versions WHERE id = ?", (vid,)).fetchone()
        self._has_pairs = bool(row and row[0])
        base = row[1] if row and row[1] is not None else None
        t = vid if base is None else int(base)
        if new and self.index_max_keys > 0:
            self._index_due = (vid, t)
        # One statement per lookup (the exact keys and the segment together): the per-statement
        # overhead of the sqlite3 module (~5 us here) dominates a point seek, so two statements
        # would cost nearly twice as much. ``k = ?1 OR k = ?2`` is two rowid seeks (an IN list
        # builds a temporary index and is slower); ?2 = -1 when there is no IMEISV.
        segment = (
            f"UNION ALL SELECT * FROM (SELECT 1, end, st, imsi, reason, kind, first, last FROM s_{t} "
            f"WHERE start <= ?1 ORDER BY start DESC LIMIT 1)"
        )
        exact = "SELECT 0, k, st, imsi, reason, NULL, NULL, NULL FROM {} WHERE {}"
        if base is None:
            both, one = exact.format(f"x_{t}", "k = ?1 OR k = ?2"), exact.format(f"x_{t}", "k = ?1")
        else:
            # an overlay: its row (a NULL status is a removal) hides the base's, two more seeks
            hidden = f"NOT EXISTS (SELECT 1 FROM d_{vid} d WHERE d.k = x_{t}.k)"
            both, one = (
                f"{exact.format(f'd_{vid}', f'({cond}) AND st IS NOT NULL')} "
                f"UNION ALL {exact.format(f'x_{t}', f'({cond}) AND {hidden}')}"
                for cond in ("k = ?1 OR k = ?2", "k = ?1")
            )
        self._sql = (
            f"{both} {segment}",
            f"SELECT kind, reason FROM p_{t} WHERE imsi = ?1 AND kind IN (0, 1) AND imei = ?2 "
            f"UNION ALL SELECT 2, NULL FROM (SELECT 1 FROM p_{t} WHERE imsi = ?1 AND kind = 1 LIMIT 1)",
            # without an IMEISV: one key, half the cost of the OR above (a point search, not two)
            f"{one} {segment}",
        )

    def _start_index(self) -> None:
        """Build the index of the version due (module docstring of :mod:`eir.store.listindex`) in
        a thread of its own; the SQL path answers until it is installed. Started by the first
        lookup of a version, not by the version change: a CLI that imports a list and exits
        never builds one. A daemon thread, not the loop's executor: a process that exits while
        a large list is being indexed does not wait for it. Without a running event loop (a
        synchronous caller) there is no index."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # (still due: the next look-up under a loop starts it)
        due, self._index_due = self._index_due, None
        if due is None:
            return
        vid, t = due
        overlay = vid if t != vid else None
        path, limit = self.path, self.index_max_keys
        prev = self._index_prev
        if prev is not None and (overlay is None or prev.table != t):
            prev = None  # a full version, or an overlay on another one: built from its tables
        fut: asyncio.Future[ListIndex | None] = loop.create_future()
        self._index_build = fut
        fut.add_done_callback(self._index_done)

        def deliver(result: ListIndex | None, error: BaseException | None) -> None:
            if fut.done():
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)

        def build() -> None:
            result: ListIndex | None = None
            error: BaseException | None = None
            try:
                con = _connect(path)
                try:
                    if prev is not None and overlay is not None:
                        result = extend_index(prev, con, vid, overlay, limit)
                    if result is None:
                        result = read_index(con, vid, t, overlay, limit)
                finally:
                    con.close()
            except Exception as e:  # delivered to the loop, logged there
                error = e
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody to tell
                loop.call_soon_threadsafe(deliver, result, error)

        threading.Thread(target=build, name=f"list-index-{vid}", daemon=True).start()

    def _index_done(self, fut: asyncio.Future[ListIndex | None]) -> None:
        if fut.cancelled():
            return
        e = fut.exception()
        if fut is not self._index_build or self._db is None:
            return  # a build for a version no longer active (or a closed store): dropped
        if e is not None:  # pruned meanwhile, the file gone: the SQL path answers, as before
            _log.info("list_index_not_built", error=f"{type(e).__name__}: {e}")
            return
        idx = fut.result()
        if idx is None:
            _log.info("list_index_skipped", max_keys=self.index_max_keys)
        else:
            self._index = idx
            self._index_prev = None  # (held for an overlay's build; the next change takes this one)
            _log.info(
                "list_index_built",
                version=idx.version,
                keys=idx.keys,
                segments=len(idx.starts),
                bytes=idx.nbytes,
            )

    async def list_index(self) -> ListIndex | None:
        """The active version's index, built now if no lookup has started it yet; None when there
        is none (too large, disabled)."""
        self._maybe_poll()
        if self._index_due is not None:
            self._start_index()
        fut = self._index_build
        if fut is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(fut)
        return self._index

    def _poll(self) -> None:
        """Cheap change check: PRAGMA data_version first, the meta row only when it moved."""
        db = self._conn()
        dv = db.execute("PRAGMA data_version").fetchone()[0]
        if dv != self._data_version and self._refresh() and self._version is not None:
            for cb in list(self._callbacks):
                cb(self._version)

    def _maybe_poll(self) -> None:
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + self.poll_interval
            self._poll()

    # --- hot path -----------------------------------------------------------------------------
    @inline_lookup
    async def lookup(self, imei: str, imeisv: str | None = None) -> Lookup:
        return self.lookup_inline(imei, imeisv)

    def lookup_inline(self, imei: str, imeisv: str | None = None) -> Lookup:
        try:
            self._maybe_poll()
            if self._version is None:
                return self._with_reference(_NO_MATCH, int(imei)) if self._ref_loaded else _NO_MATCH
            idx = self._index
            if idx is None:
                if self._index_due is not None:
                    self._start_index()
            else:
                n = int(imei)
                exact = idx.exact
                if exact is not None:  # a set: the test inline (listindex.SET_MAX_KEYS)
                    listed = n in exact or (imeisv is not None and SV_OFFSET + int(imeisv) in exact)
                else:
                    listed = idx.may_list(n) or (imeisv is not None and idx.may_list(SV_OFFSET + int(imeisv)))
                if not listed:
                    # no exact row: the answer from memory (listindex.py), no statement
                    seg = idx.segment(n) if idx.starts else None
                    if seg is None:
                        return self._answer(n, None, None, None) if self._ref_loaded else _NO_MATCH
                    if seg is not ASK:
                        return self._answer(n, None, None, _range_entry(*seg[1:]))
            try:
                found = self._lookup(imei, imeisv)
            except sqlite3.OperationalError:
                # the version we cached may have been pruned by another process: re-read once
                self._refresh()
                if self._version is None:
                    return _NO_MATCH
                found = self._lookup(imei, imeisv)
            return found
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite lookup: {e}") from e

    def _lookup(self, imei: str, imeisv: str | None) -> Lookup:
        n = int(imei)
        sv = ie = rng = None
        if imeisv is None:
            rows = self._conn().execute(self._sql[2], (n,))
        else:
            rows = self._conn().execute(self._sql[0], (n, SV_OFFSET + int(imeisv)))
        for tag, k, st, imsi, reason, kind, first, last in rows:
            if tag == 1:  # the segment with the greatest start <= n: does it reach n?
                if k >= n:
                    rng = _range_entry(kind, first, last, st, imsi, reason)
            elif k >= SV_OFFSET:
                sv = ListEntry(
                    kind=EntryKind.IMEISV,
                    key=f"{k - SV_OFFSET:016d}",
                    status=_ST_BACK[st],
                    imsi=imsi,
                    reason=reason,
                )
            else:
                ie = ListEntry(
                    kind=EntryKind.IMEI, key=f"{k:014d}", status=_ST_BACK[st], imsi=imsi, reason=reason
                )
        return self._answer(n, sv, ie, rng)

    def _answer(self, n: int, sv: ListEntry | None, ie: ListEntry | None, rng: ListEntry | None) -> Lookup:
        """The Lookup of IMEI ``n`` from the entries found (with the reference tables' answers)."""
        if sv is None and ie is None and rng is None:
            if not self._ref_loaded:
                return _NO_MATCH
            # inline (a call costs ~0.1 us): the shared answer per TAC and registered-or-not
            gold = self._golden
            if gold is not None and n in gold:
                return self._with_reference(_NO_MATCH, n)
            reg = self._reg
            cache = self._ref_lookups[reg is not None and n in reg]
            shared = cache.get(n // TAC_SPAN)
            return shared if shared is not None else self._with_reference(_NO_MATCH, n)
        if self._ref_loaded:
            return self._with_reference(Lookup(imeisv=sv, imei=ie, range=rng), n)
        return Lookup(imeisv=sv, imei=ie, range=rng)

    def _with_reference(self, found: Lookup, n: int) -> Lookup:
        """``found`` with the reference tables' answers for IMEI ``n`` (in memory: _refresh). An
        unlisted IMEI gets a shared Lookup (``_ref_lookups``), so the rules allocate nothing."""
        tac, reg, gold = self._tac, self._reg, self._golden
        device = tac.get(n // TAC_SPAN) if tac is not None else None
        registered = reg is not None and n in reg
        golden = gold is not None and n in gold
        if found is _NO_MATCH and not golden:
            cache = self._ref_lookups[registered]
            shared = cache.get(n // TAC_SPAN)
            if shared is None:
                if len(cache) >= 1_000_000:
                    cache.clear()
                shared = cache[n // TAC_SPAN] = Lookup(
                    tac_table=tac is not None,
                    device=device,
                    registration_list=reg is not None,
                    registration=REGISTERED if registered else None,
                )
            return shared
        return Lookup(
            imeisv=found.imeisv,
            imei=found.imei,
            range=found.range,
            tac_table=tac is not None,
            device=device,
            registration_list=reg is not None,
            registration=REGISTERED if registered else None,
            golden=golden,
        )

    # --- reference tables -----------------------------------------------------------------------
    async def import_reference(
        self, table: str, rows: Iterable[tuple[str, str]], *, source: str
    ) -> ReferenceTable:
        if table not in REFERENCE_TABLES:
            raise StoreError(f"no reference table {table!r} (one of {', '.join(REFERENCE_TABLES)})")

        def keyed() -> Iterator[tuple[int, str]]:
            for k, v in rows:
                if not (k.isdigit() and k.isascii()):
                    raise StoreError(f"reference table {table}: key {k!r} is not digits")
                yield int(k), v

        def run() -> ReferenceTable:
            con = _connect(self.path)
            try:
                con.execute("BEGIN IMMEDIATE")
                try:
                    con.execute(f"DELETE FROM ref_{table}")
                    con.executemany(f"INSERT OR REPLACE INTO ref_{table} VALUES (?, ?)", keyed())
                    n = con.execute(f"SELECT count(*) FROM ref_{table}").fetchone()[0]
                    meta = ReferenceTable(name=table, rows=n, source=source, created=time.time())
                    con.execute(
                        "INSERT OR REPLACE INTO ref_meta VALUES (?, ?, ?, ?)",
                        (table, n, source, meta.created),
                    )
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                return meta
            except sqlite3.Error as e:
                raise StoreUnavailableError(f"sqlite import_reference: {e}") from e
            finally:
                con.close()

        async with self._write_lock:
            meta = await asyncio.to_thread(run)
        self._refresh()
        if self._version is not None:
            for cb in list(self._callbacks):
                cb(self._version)
        return meta

    async def reference_tables(self) -> list[ReferenceTable]:
        try:
            rows = self._conn().execute("SELECT tbl, rows, source, created FROM ref_meta WHERE rows > 0")
            return [ReferenceTable(name=t, rows=n, source=s, created=c) for t, n, s, c in rows]
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite reference_tables: {e}") from e

    async def reference(self, table: str, key: str) -> str | None:
        try:
            if table not in REFERENCE_TABLES or not (key.isdigit() and key.isascii()):
                return None
            row = self._conn().execute(f"SELECT v FROM ref_{table} WHERE k = ?", (int(key),)).fetchone()
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite reference: {e}") from e
        return None if row is None else str(row[0])

    async def imsi_rules(self, imsi: str, imei: str) -> ImsiRules:
        try:
            self._maybe_poll()
            if not self._has_pairs:
                return _NO_RULES
            try:
                rows = self._conn().execute(self._sql[1], (imsi, int(imei))).fetchall()
            except sqlite3.OperationalError:
                self._refresh()
                if not self._has_pairs:
                    return _NO_RULES
                rows = self._conn().execute(self._sql[1], (imsi, int(imei))).fetchall()
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite imsi_rules: {e}") from e
        if not rows:
            return _NO_RULES
        pairing = None
        locked = allows = False
        for kind, reason in rows:
            if kind == 0:
                pairing = Pairing(kind=PairingKind.PAIRING, imsi=imsi, imei=imei, reason=reason)
            elif kind == 1:
                allows = True
            else:
                locked = True
        return ImsiRules(pairing=pairing, locked=locked, lock_allows=locked and allows)

    async def write_first_seen(self, rows: Sequence[tuple[str, float]]) -> None:
        """One transaction per batch on the observations writer connection, in a worker thread."""
        if self._obs is None:
            raise StoreUnavailableError("sqlite store is not open")
        batch = [(int(imei[:14]), ts) for imei, ts in rows]

        def run(con: sqlite3.Connection) -> int:
            con.execute("BEGIN IMMEDIATE")
            try:
                # an earlier time wins: a row is never made younger
                con.executemany(
                    "INSERT INTO first_seen VALUES (?, ?) ON CONFLICT(imei) DO UPDATE SET ts = "
                    "min(ts, excluded.ts)",
                    batch,
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return len(batch)

        await self._obs_change(run)

    async def read_first_seen(self, limit: int) -> list[tuple[str, float]]:
        try:
            con = self._obs
            if con is None:
                raise StoreUnavailableError("sqlite store is not open")
            rows = con.execute(
                "SELECT imei, ts FROM (SELECT imei, ts FROM first_seen ORDER BY ts DESC LIMIT ?) ORDER BY ts",
                (max(limit, 0),),
            ).fetchall()
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite read_first_seen: {e}") from e
        return [(f"{k:014d}", ts) for k, ts in rows]

    async def write_daily(self, rows: Sequence[tuple[str, int, str]]) -> None:
        batch = [(int(imei[:14]), day, imsi) for imei, day, imsi in rows]

        def run(con: sqlite3.Connection) -> int:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany("INSERT OR IGNORE INTO daily VALUES (?, ?, ?)", batch)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return len(batch)

        await self._obs_change(run)

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
        # rows are unique per (imei, day, imsi): count(*) over the average window is the sum of
        # each day's distinct IMSIs, count(DISTINCT day) the days seen
        sql = (
            "SELECT t.imei FROM (SELECT imei FROM daily WHERE day > ?1 - ?2 AND day <= ?1 "
            "GROUP BY imei HAVING count(DISTINCT imsi) >= ?3) t JOIN (SELECT imei FROM daily "
            "WHERE day > ?1 - ?4 AND day <= ?1 GROUP BY imei HAVING count(DISTINCT day) >= ?5 "
            "AND count(*) * 1.0 / count(DISTINCT day) >= ?6) a ON a.imei = t.imei"
        )
        args = (today, period_days, threshold, daily_avg_days, max(min_seen_days, 1), daily_avg)

        def run() -> set[str]:
            con = _connect(self.obs_path)
            try:
                return {f"{k:014d}" for (k,) in con.execute(sql, args)}
            finally:
                con.close()

        try:
            return await asyncio.to_thread(run)
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite classify_duplicates: {e}") from e

    async def flag_duplicates(self, imeis: Sequence[str], ts: float) -> None:
        batch = [(int(i[:14]), ts, int(i[:14])) for i in imeis]

        def run(con: sqlite3.Connection) -> int:
            # only an IMEI that still has history (a clear committed since the classification
            # counted it deleted both): one statement, so the check and the insert are atomic
            con.executemany(
                "INSERT OR IGNORE INTO duplicates SELECT ?, ? WHERE EXISTS "
                "(SELECT 1 FROM daily WHERE imei = ?)",
                batch,
            )
            return len(batch)

        await self._obs_change(run)

    async def duplicates(self) -> dict[str, float]:
        try:
            con = self._obs
            if con is None:
                raise StoreUnavailableError("sqlite store is not open")
            return {f"{k:014d}": ts for k, ts in con.execute("SELECT imei, ts FROM duplicates")}
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite duplicates: {e}") from e

    async def duplicates_page(self, limit: int, offset: int) -> tuple[list[tuple[str, float]], int]:
        try:
            con = self._obs
            if con is None:
                raise StoreUnavailableError("sqlite store is not open")
            rows = con.execute(
                "SELECT imei, ts FROM duplicates ORDER BY imei LIMIT ? OFFSET ?", (max(limit, 0), offset)
            ).fetchall()
            total = con.execute("SELECT count(*) FROM duplicates").fetchone()[0]
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite duplicates: {e}") from e
        return [(f"{k:014d}", ts) for k, ts in rows], int(total)

    async def duplicate_flag(self, imei: str) -> float | None:
        try:
            con = self._obs
            if con is None:
                raise StoreUnavailableError("sqlite store is not open")
            row = con.execute("SELECT ts FROM duplicates WHERE imei = ?", (int(imei[:14]),)).fetchone()
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite duplicates: {e}") from e
        return None if row is None else float(row[0])

    async def daily_history(self, imei: str, limit: int = 10_000) -> list[tuple[int, str]]:
        try:
            con = self._obs
            if con is None:
                raise StoreUnavailableError("sqlite store is not open")
            rows = con.execute(
                "SELECT day, imsi FROM daily WHERE imei = ? ORDER BY day, imsi LIMIT ?",
                (int(imei[:14]), max(limit, 0)),
            ).fetchall()
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite daily_history: {e}") from e
        return [(int(d), str(s)) for d, s in rows]

    async def clear_duplicate(self, imei: str) -> tuple[bool, int]:
        key = int(imei[:14])
        flagged = 0

        def run(con: sqlite3.Connection) -> int:
            nonlocal flagged
            con.execute("BEGIN IMMEDIATE")
            try:
                flagged = con.execute("DELETE FROM duplicates WHERE imei = ?", (key,)).rowcount
                gone = con.execute("DELETE FROM daily WHERE imei = ?", (key,)).rowcount
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return int(gone)

        gone = await self._obs_change(run)
        return flagged > 0, gone

    async def prune_daily(self, before_day: int, max_rows: int) -> int:
        def run(con: sqlite3.Connection) -> int:
            gone = con.execute("DELETE FROM daily WHERE day <= ?", (before_day,)).rowcount
            if max_rows > 0:
                n = con.execute("SELECT count(*) FROM daily").fetchone()[0]
                while n > max_rows:  # whole days, oldest first (bounded: one day a round)
                    day = con.execute("SELECT min(day) FROM daily").fetchone()[0]
                    went = con.execute("DELETE FROM daily WHERE day = ?", (day,)).rowcount
                    gone += went
                    n -= went
            return int(gone)

        return await self._obs_change(run)

    async def write_sightings(self, rows: Sequence[Sighting], *, writer: str = "") -> None:
        """One transaction per batch, appended in a worker thread on a connection of its own: the
        event loop never waits for the write lock (other workers, the pruning) or for the disk.
        Rows go :data:`_ROWS_PER_INSERT` to a statement: ``executemany`` released and took back
        the GIL for every row, which with the event loop busy made the writer as slow as the
        switch interval allows and cost the loop a hand-over per row (bench/clone.py)."""
        if self._obs is None:
            raise StoreUnavailableError("sqlite store is not open")
        code = _KIND_CODE
        if not isinstance(rows, (list, tuple)):
            rows = list(rows)  # sliced below (a deque is a Sequence that cannot be)

        def flat(chunk: Sequence[Sighting]) -> list[Any]:
            # one statement's parameters, straight from the rows, in the worker thread (a tuple
            # per row and a chain over them cost the event loop's thread 380 against 210 ns a row)
            params: list[Any] = []
            add = params.extend
            for imei, kind, value, seen in chunk:
                add((imei, code[kind], value, seen))
            return params

        def run() -> None:
            con = self._obs_writer()
            per = max(1, min(_ROWS_PER_INSERT, con.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 4))
            full = len(rows) - len(rows) % per
            con.execute("BEGIN IMMEDIATE")
            try:
                if full:
                    sql = _insert_rows(per, writer)
                    for i in range(0, full, per):
                        con.execute(sql, flat(rows[i : i + per]))
                # the rest in chunks of powers of two: statements of a few lengths stay in the
                # connection's cache, where one of the rest's own length was compiled for every
                # batch (SQLite's parse of n rows cost ~2.8k instructions a row in small batches)
                i = full
                while i < len(rows):
                    n = 1 << ((len(rows) - i).bit_length() - 1)
                    con.execute(_insert_rows(n, writer), flat(rows[i : i + n]))
                    i += n
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

        try:
            async with self._obs_lock:
                await _uncancelled_thread(run)
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite write_sightings: {e}") from e

    async def read_sightings(
        self,
        since: float,
        *,
        imei: str | None = None,
        limit: int | None = None,
        exclude_writer: str | None = None,
    ) -> list[Sighting]:
        """Newest rows first, read backwards in write order until well before ``since`` (rows of
        several writers interleave by at most their batch delay): the cost follows what is new, not
        the size of the log. One IMEI's rows are found by the same backward scan."""
        if self._obs is None:
            raise StoreUnavailableError("sqlite store is not open")
        stop = since - _INTERLEAVE
        own = exclude_writer

        def run() -> list[Sighting]:
            con = _connect(self.obs_path)
            newest: dict[tuple[str, int, str], float] = {}
            try:
                cur = con.execute("SELECT imei, kind, value, ts, w FROM sightings ORDER BY rowid DESC")
                while batch := cur.fetchmany(4096):
                    for i, k, v, t, w in batch:
                        if t >= since and (imei is None or i == imei) and (own is None or w != own):
                            key = (i, k, v)
                            if newest.get(key, -1.0) < t:
                                newest[key] = t
                    if batch[-1][3] < stop:
                        break
            finally:
                con.close()
            rows = sorted(newest.items(), key=lambda kv: kv[1], reverse=True)
            if limit is not None:
                rows = rows[:limit]
            return [(i, _KIND_NAME[k], v, t) for (i, k, v), t in rows]

        try:
            return await asyncio.to_thread(run)
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite read_sightings: {e}") from e

    async def clear_sightings(self, imei: str) -> int:
        return await self._obs_change(
            lambda con: con.execute("DELETE FROM sightings WHERE imei = ?", (imei,)).rowcount
        )

    async def count_sightings(self) -> int:
        """The log's length (rowids are consecutive from its head, which pruning and eviction cut)."""

        def run(con: sqlite3.Connection) -> int:
            lo, hi = con.execute(_ROWID_SPAN).fetchone()
            return 0 if lo is None else hi - lo + 1

        return await self._obs_change(run)

    async def evict_sightings(self, keep: int) -> int:
        """Cut the log's head (its oldest rows), in chunks of 10,000 rows."""

        def run(con: sqlite3.Connection) -> int:
            lo, hi = con.execute(_ROWID_SPAN).fetchone()
            if lo is None or hi - lo + 1 <= keep:
                return 0
            end, gone = hi + 1 - max(0, keep), 0
            while lo < end:
                upto = min(end, lo + 10_000)
                con.execute("BEGIN IMMEDIATE")
                gone += con.execute(
                    "DELETE FROM sightings WHERE rowid >= ? AND rowid < ?", (lo, upto)
                ).rowcount
                con.execute("COMMIT")
                lo = upto
            return gone

        return await self._obs_change(run)

    async def _obs_change(self, fn: Callable[[sqlite3.Connection], int]) -> int:
        """``fn`` on the write-behind connection, in a worker thread (autocommit statements)."""
        if self._obs is None:
            raise StoreUnavailableError("sqlite store is not open")
        try:
            async with self._obs_lock:
                return await _uncancelled_thread(lambda: fn(self._obs_writer()))
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite sightings: {e}") from e

    def _obs_writer(self) -> sqlite3.Connection:
        """The write-behind connection (used from worker threads, one at a time: ``_obs_lock``)."""
        con = self._obs_write
        if con is None:
            con = self._obs_write = _connect(self.obs_path, check_same_thread=False)
            con.execute("PRAGMA synchronous = OFF")
            con.execute("PRAGMA busy_timeout = 5000")
        return con

    async def prune_sightings(self, before: float) -> None:
        """Drop the log's head up to the first row seen at or after ``before`` (well, the last row
        before it, allowing for interleaved writers), in a worker thread, in short transactions of
        10,000 rows so that other workers' batches keep getting through. ``close()`` stops a prune
        between two chunks."""
        if self._obs is None:
            raise StoreUnavailableError("sqlite store is not open")
        stop = self._prune_stop

        def run() -> None:
            con = _connect(self.obs_path)
            try:
                con.execute("PRAGMA synchronous = OFF")
                # the first row recent enough to keep, less what interleaving writers may have put
                # after it with older times (those go with the next prune)
                row = con.execute(
                    "SELECT rowid FROM sightings WHERE ts >= ? ORDER BY rowid LIMIT 1",
                    (before + _INTERLEAVE,),
                ).fetchone()
                end = (
                    row[0]
                    if row
                    else (con.execute("SELECT max(rowid) FROM sightings").fetchone()[0] or 0) + 1
                )
                first = con.execute("SELECT min(rowid) FROM sightings").fetchone()[0]
                while first is not None and first < end and not stop.is_set():
                    upto = min(end, first + 10_000)
                    con.execute("BEGIN IMMEDIATE")
                    con.execute(
                        "DELETE FROM sightings WHERE rowid >= ? AND rowid < ? AND ts < ?",
                        (first, upto, before),
                    )
                    con.execute("COMMIT")
                    first = upto
                    stop.wait(0.002)
            finally:
                con.close()

        self._prune_task = asyncio.current_task()
        try:
            await asyncio.to_thread(run)
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite prune_sightings: {e}") from e
        finally:
            self._prune_task = None

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
        async with self._write_lock:
            vid = await asyncio.to_thread(self._import_sync, entries, pairings, source, delta, removals)
        self._after_write(vid)
        return await self._version_meta(vid)

    def _after_write(self, vid: int) -> None:
        self._refresh()
        for cb in list(self._callbacks):
            cb(vid)

    def _import_sync(
        self,
        entries: Iterable[ListEntry],
        pairings: Iterable[Pairing],
        source: str,
        delta: bool,
        removals: Iterable[ListEntry | Pairing],
    ) -> int:
        con = _connect(self.path)
        try:
            con.execute("PRAGMA cache_size = -262144")  # 256 MiB while building
            # as the readers' connection: in WAL mode a commit is atomic and survives a crash of
            # the process without an fsync of its own; the WAL is synced at the checkpoint (at
            # once after a large import, below). An fsync per admin change cost 10-100 ms of wall
            # time on a busy disk; a power cut may now lose the newest small changes, never mix
            # versions.
            con.execute("PRAGMA synchronous = NORMAL")
            con.execute("BEGIN IMMEDIATE")
            try:
                vid, small = self._build(con, entries, pairings, source, delta, removals)
                self.last_import_changes = con.total_changes
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            self._prune(con, vid)
            if not small:
                # fold the (large) WAL of a big import back into the file and truncate it (an
                # overlay's few pages are left to the automatic checkpoint)
                with contextlib.suppress(sqlite3.Error):
                    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return vid
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite import: {e}") from e
        finally:
            con.close()

    def _build(
        self,
        con: sqlite3.Connection,
        entries: Iterable[ListEntry],
        pairings: Iterable[Pairing],
        source: str,
        delta: bool,
        removals: Iterable[ListEntry | Pairing],
    ) -> tuple[int, bool]:
        """Build the new version; returns its id and whether it is an overlay (a small delta)."""
        row = con.execute("SELECT v FROM meta WHERE k = 'active_version'").fetchone()
        base = int(row[0]) if (delta and row is not None) else None
        cur_overlay: int | None = None  # the active version is an overlay on this full version
        if base is not None:
            b = con.execute("SELECT base FROM versions WHERE id = ?", (base,)).fetchone()
            cur_overlay = None if b is None or b[0] is None else int(b[0])
            entries, pairings, removals, small = peek_small_delta(entries, pairings, removals, OVERLAY_MAX)
            if small is not None:
                n_over = (
                    0 if cur_overlay is None else con.execute(f"SELECT count(*) FROM d_{base}").fetchone()[0]
                )
                if n_over + len(small[0]) + len(small[1]) <= OVERLAY_MAX:
                    return self._build_overlay(con, base, cur_overlay, small[0], small[1], source), True
        vid = con.execute(
            "INSERT INTO versions(created, source, entries, pairings) VALUES (?, ?, 0, 0)",
            (time.time(), source),
        ).lastrowid
        assert vid is not None
        con.execute(
            f"CREATE TABLE x_{vid}(k INTEGER PRIMARY KEY, st INTEGER NOT NULL, imsi TEXT, reason TEXT)"
        )
        con.execute(
            f"CREATE TABLE r_{vid}(kind INTEGER, first INTEGER, last INTEGER, st INTEGER NOT NULL, "
            f"imsi TEXT, reason TEXT, PRIMARY KEY(kind, first, last)) WITHOUT ROWID"
        )
        con.execute(
            f"CREATE TABLE s_{vid}(start INTEGER PRIMARY KEY, end INTEGER NOT NULL, kind INTEGER, "
            f"first INTEGER, last INTEGER, st INTEGER, imsi TEXT, reason TEXT)"
        )
        con.execute(
            f"CREATE TABLE p_{vid}(imsi TEXT, kind INTEGER, imei INTEGER, reason TEXT, "
            f"PRIMARY KEY(imsi, kind, imei)) WITHOUT ROWID"
        )
        if base is not None and cur_overlay is not None:
            # the active version is an overlay: fold it into this full copy
            con.execute(
                f"INSERT INTO x_{vid} SELECT * FROM x_{cur_overlay} WHERE k NOT IN (SELECT k FROM d_{base})"
            )
            con.execute(f"INSERT INTO x_{vid} SELECT * FROM d_{base} WHERE st IS NOT NULL")
            for t in "rp":
                con.execute(f"INSERT INTO {t}_{vid} SELECT * FROM {t}_{cur_overlay}")
        elif base is not None:
            for t in "xrp":
                con.execute(f"INSERT INTO {t}_{vid} SELECT * FROM {t}_{base}")
        rm_exact: list[tuple[int]] = []
        rm_range: list[tuple[int, int, int]] = []
        rm_pair: list[tuple[str, int, int]] = []
        for r in removals:
            if isinstance(r, Pairing):
                rm_pair.append((r.imsi, _PK[r.kind], int(r.imei)))
            elif r.kind is EntryKind.IMEI:
                rm_exact.append((int(r.key),))
            elif r.kind is EntryKind.IMEISV:
                rm_exact.append((SV_OFFSET + int(r.key),))
            else:
                rm_range.append(_range_row(r)[:3])
        con.executemany(f"DELETE FROM x_{vid} WHERE k = ?", rm_exact)
        con.executemany(f"DELETE FROM r_{vid} WHERE kind = ? AND first = ? AND last = ?", rm_range)
        con.executemany(f"DELETE FROM p_{vid} WHERE imsi = ? AND kind = ? AND imei = ?", rm_pair)

        ranges: list[tuple[int, int, int, int, str | None, str | None]] = []
        lr: list[Any] = [None]
        _insert_all(con, f"x_{vid}", 4, _exact_rows(entries, ranges, lr), lr)
        _insert_all(con, f"r_{vid}", 6, _tracked(ranges, lr), lr)
        _insert_all(con, f"p_{vid}", 4, _tracked(_pair_rows(pairings), lr), lr)

        allr = con.execute(f"SELECT kind, first, last, st, imsi, reason FROM r_{vid}").fetchall()
        segs = flatten((r[1], r[2], r) for r in allr)
        con.executemany(
            f"INSERT INTO s_{vid} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ((s, e, *r) for s, e, r in segs)
        )
        nx = con.execute(f"SELECT count(*) FROM x_{vid}").fetchone()[0]
        npairs = con.execute(f"SELECT count(*) FROM p_{vid}").fetchone()[0]
        con.execute(
            "UPDATE versions SET entries = ?, pairings = ? WHERE id = ?", (nx + len(allr), npairs, vid)
        )
        con.execute("INSERT OR REPLACE INTO meta VALUES ('active_version', ?)", (vid,))
        return int(vid), False

    def _build_overlay(
        self,
        con: sqlite3.Connection,
        cur: int,
        cur_overlay: int | None,
        entries: list[ListEntry],
        removals: list[ListEntry],
        source: str,
    ) -> int:
        """A small delta of exact entries: a new version that shares the tables of the full
        version ``t`` under the active one and holds only its changes since ``t`` in ``d_<v>``
        (``k`` → row; a NULL status is a removal). Rows written: the overlay, not the list."""
        t = cur if cur_overlay is None else cur_overlay
        prev = con.execute("SELECT entries, pairings FROM versions WHERE id = ?", (cur,)).fetchone()
        vid = con.execute(
            "INSERT INTO versions(created, source, entries, pairings, base) VALUES (?, ?, 0, ?, ?)",
            (time.time(), source, prev[1], t),
        ).lastrowid
        assert vid is not None
        con.execute(f"CREATE TABLE d_{vid}(k INTEGER PRIMARY KEY, st INTEGER, imsi TEXT, reason TEXT)")
        if cur_overlay is not None:
            con.execute(f"INSERT INTO d_{vid} SELECT * FROM d_{cur}")
        ranges: list[Any] = []
        lr: list[Any] = [None]
        rm = [(int(r.key) if r.kind is EntryKind.IMEI else SV_OFFSET + int(r.key),) for r in removals]
        adds = list(_exact_rows(entries, ranges, lr))  # validates
        assert not ranges
        keys = {int(k[0]) for k in rm} | {a[0] for a in adds}
        # how many of the changed keys the active version lists: the new entry count follows
        was = sum(self._listed(con, cur, cur_overlay, k) for k in keys)
        con.executemany(f"INSERT OR REPLACE INTO d_{vid} VALUES (?, NULL, NULL, NULL)", rm)
        con.executemany(f"INSERT OR REPLACE INTO d_{vid} VALUES (?, ?, ?, ?)", adds)
        now = sum(self._listed(con, vid, t, k) for k in keys)
        con.execute("UPDATE versions SET entries = ? WHERE id = ?", (prev[0] - was + now, vid))
        con.execute("INSERT OR REPLACE INTO meta VALUES ('active_version', ?)", (vid,))
        return int(vid)

    @staticmethod
    def _listed(con: sqlite3.Connection, vid: int, overlay_of: int | None, k: int) -> int:
        """1 when version ``vid`` lists the exact key ``k``."""
        if overlay_of is not None:
            row = con.execute(f"SELECT st FROM d_{vid} WHERE k = ?", (k,)).fetchone()
            if row is not None:
                return 0 if row[0] is None else 1
            vid = overlay_of
        return 1 if con.execute(f"SELECT 1 FROM x_{vid} WHERE k = ?", (k,)).fetchone() else 0

    def _prune(self, con: sqlite3.Connection, active: int) -> None:
        """Keep the newest ``keep_versions`` versions (and the active one). A full version that a
        kept overlay builds on keeps its tables (not its listing) until no kept overlay needs it."""
        ids = [r[0] for r in con.execute("SELECT id FROM versions ORDER BY id DESC")]
        old = [i for i in ids[self.keep_versions :] if i != active]
        if not old:
            return
        con.execute("BEGIN IMMEDIATE")
        try:
            cur = con.execute("SELECT v FROM meta WHERE k = 'active_version'").fetchone()
            active_now = None if cur is None else int(cur[0])  # rolled back to meanwhile: kept
            for vid in old:
                if vid != active_now:
                    con.execute("DELETE FROM versions WHERE id = ?", (vid,))
            needed = {i for r in con.execute("SELECT id, base FROM versions") for i in r if i is not None}
            for (name,) in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB '[xrspd]_[0-9]*'"
            ).fetchall():
                if name[2:].isdigit() and int(name[2:]) not in needed:
                    con.execute(f"DROP TABLE IF EXISTS {name}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _tables(self, vid: int, con: sqlite3.Connection | None = None) -> tuple[int, int | None]:
        """The version whose x/r/s/p tables ``vid`` reads, and ``vid`` again when it is an overlay
        (``d_<vid>``), else None."""
        row = (con or self._conn()).execute("SELECT base FROM versions WHERE id = ?", (vid,)).fetchone()
        if row is None or row[0] is None:
            return vid, None
        return int(row[0]), vid

    async def _version_meta(self, vid: int) -> ListVersion:
        for v in await self.versions():
            if v.id == vid:
                return v
        raise VersionNotFoundError(f"no list version {vid}")

    async def versions(self) -> list[ListVersion]:
        try:
            self._maybe_poll()
            rows = (
                self._conn()
                .execute("SELECT id, created, source, entries, pairings FROM versions ORDER BY id DESC")
                .fetchall()
            )
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite versions: {e}") from e
        return [
            ListVersion(id=i, created=c, source=s, entries=n, pairings=p, active=i == self._version)
            for i, c, s, n, p in rows
        ]

    async def active_version(self) -> int | None:
        try:
            self._maybe_poll()
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"sqlite {self.path}: {e}") from e
        return self._version

    async def rollback(self, version_id: int) -> ListVersion:
        def run() -> None:
            con = _connect(self.path)
            try:
                con.execute("BEGIN IMMEDIATE")
                ok = con.execute("SELECT 1 FROM versions WHERE id = ?", (version_id,)).fetchone()
                if ok is None:
                    con.execute("ROLLBACK")
                    raise VersionNotFoundError(f"no list version {version_id}")
                con.execute("INSERT OR REPLACE INTO meta VALUES ('active_version', ?)", (version_id,))
                con.execute("COMMIT")
            except sqlite3.Error as e:
                raise StoreUnavailableError(f"sqlite rollback: {e}") from e
            finally:
                con.close()

        async with self._write_lock:
            await asyncio.to_thread(run)
        self._after_write(version_id)
        return await self._version_meta(version_id)

    async def pairings(self) -> list[Pairing]:
        vid = await self.active_version()
        if vid is None:
            return []
        rows = (
            self._conn().execute(f"SELECT imsi, kind, imei, reason FROM p_{self._tables(vid)[0]}").fetchall()
        )
        return [Pairing(kind=_PK_BACK[k], imsi=s, imei=f"{i:014d}", reason=r) for s, k, i, r in rows]

    async def export(self) -> AsyncIterator[ListEntry | Pairing]:
        self._refresh()
        vid = self._version
        if vid is None:
            return
        con = _connect(self.path)
        try:
            con.execute("BEGIN")  # one snapshot even if a prune runs meanwhile
            t, overlay = self._tables(vid, con)
            cur = con.execute(
                f"SELECT k, st, imsi, reason FROM x_{t}"
                if overlay is None
                else f"SELECT k, st, imsi, reason FROM x_{t} WHERE k NOT IN (SELECT k FROM d_{overlay}) "
                f"UNION ALL SELECT k, st, imsi, reason FROM d_{overlay} WHERE st IS NOT NULL"
            )
            while batch := cur.fetchmany(10_000):
                for k, st, imsi, reason in batch:
                    if k >= SV_OFFSET:
                        yield ListEntry(
                            kind=EntryKind.IMEISV,
                            key=f"{k - SV_OFFSET:016d}",
                            status=_ST_BACK[st],
                            imsi=imsi,
                            reason=reason,
                        )
                    else:
                        yield ListEntry(
                            kind=EntryKind.IMEI,
                            key=f"{k:014d}",
                            status=_ST_BACK[st],
                            imsi=imsi,
                            reason=reason,
                        )
            for kind, first, last, st, imsi, reason in con.execute(
                f"SELECT kind, first, last, st, imsi, reason FROM r_{t}"
            ).fetchall():
                yield _range_entry(kind, first, last, st, imsi, reason)
            for imsi, kind, imei, reason in con.execute(
                f"SELECT imsi, kind, imei, reason FROM p_{t}"
            ).fetchall():
                yield Pairing(kind=_PK_BACK[kind], imsi=imsi, imei=f"{imei:014d}", reason=reason)
            con.execute("COMMIT")
        finally:
            con.close()

    async def watch(self, callback: Callable[[int], None]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        if self._watch_task is None:
            self._watch_task = asyncio.get_running_loop().create_task(self._watch_loop(), name="sqlite-watch")

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                self._next_poll = time.monotonic() + self.poll_interval
                self._poll()
            except (sqlite3.Error, StoreError):
                pass  # the next lookup reports the outage; keep watching


def _range_entry(
    kind: int, first: int, last: int, st: int, imsi: str | None, reason: str | None
) -> ListEntry:
    """The TAC or range entry of a segment row (``s_<v>``, or the list index's copy of it)."""
    if kind == 1:
        return ListEntry(
            kind=EntryKind.TAC, key=f"{first // TAC_SPAN:08d}", status=_ST_BACK[st], imsi=imsi, reason=reason
        )
    return ListEntry(
        kind=EntryKind.RANGE,
        key=f"{first:014d}",
        last=f"{last:014d}",
        status=_ST_BACK[st],
        imsi=imsi,
        reason=reason,
    )


def _exact_rows(
    entries: Iterable[ListEntry], ranges: list[Any], last_row: list[Any]
) -> Iterator[tuple[Any, ...]]:
    """Exact entries as rows; range/TAC rows are put aside in ``ranges``. Validates cheaply.
    An :class:`EntryRows` is read as tuples (no ListEntry objects: the bulk path). ``last_row[0]``
    is the row yielded last (the one a constraint refused, see :func:`_insert_all`)."""
    imei, imeisv = EntryKind.IMEI, EntryKind.IMEISV
    st = _ST
    if isinstance(entries, EntryRows):
        for kind, key, last, status, imsi, reason in entries.rows:
            s = st.get(status)
            if kind is imei and s is not None and len(key) == 14 and key.isdigit():
                t = last_row[0] = (int(key), s, imsi, reason)
                yield t
            else:
                yield from _exact_rows(
                    (ListEntry(kind=kind, key=key, last=last, status=status, imsi=imsi, reason=reason),),
                    ranges,
                    last_row,
                )
        return
    for e in entries:
        kind, key = e.kind, e.key
        try:
            s = st[e.status]
        except KeyError:
            raise StoreError(f"entry {key}: status must be white, grey or black, not {e.status}") from None
        if kind is imei:
            if len(key) != 14 or not key.isdigit():
                raise StoreError(f"invalid imei entry {key!r}")
            t = last_row[0] = (int(key), s, e.imsi, e.reason)
            yield t
        elif kind is imeisv:
            if len(key) != 16 or not key.isdigit():
                raise StoreError(f"invalid imeisv entry {key!r}")
            t = last_row[0] = (SV_OFFSET + int(key), s, e.imsi, e.reason)
            yield t
        else:
            ranges.append(_range_row(e))


OVERLAY_MAX = 4096
"""A delta of exact entries becomes an overlay (no copy of the list) while the overlay, the changes
accumulated since the last full version, stays at most this many rows; the next one folds it."""


def _tracked(rows: Iterable[tuple[Any, ...]], last_row: list[Any]) -> Iterator[tuple[Any, ...]]:
    for r in rows:
        last_row[0] = r
        yield r


def _insert_all(
    con: sqlite3.Connection, table: str, ncols: int, rows: Iterator[tuple[Any, ...]], last_row: list[Any]
) -> None:
    """Plain INSERT (fastest: ~1.5 us/row) and an upsert only for the rows that collide (duplicates
    in the input, or a delta replacing an entry): last one wins. ``rows`` keeps ``last_row[0]`` set
    to the row it yielded last, which is the one the constraint refused."""
    marks = ", ".join("?" * ncols)
    insert = f"INSERT INTO {table} VALUES ({marks})"
    upsert = f"INSERT OR REPLACE INTO {table} VALUES ({marks})"
    while True:
        last_row[0] = None
        try:
            con.executemany(insert, rows)
            return
        except sqlite3.IntegrityError:
            if last_row[0] is None:
                raise
            con.execute(upsert, last_row[0])


def _range_row(e: ListEntry) -> tuple[int, int, int, int, str | None, str | None]:
    key = e.key
    if e.kind is EntryKind.TAC:
        if len(key) != 8 or not key.isdigit():
            raise StoreError(f"invalid tac entry {key!r}")
        first = int(key) * TAC_SPAN
        last = first + TAC_SPAN - 1
        kind = 1
    else:
        lst = e.last or ""
        if not (
            len(key) == 14 and len(lst) == 14 and key.isdigit() and lst.isdigit() and int(lst) >= int(key)
        ):
            raise StoreError(f"invalid range entry {key!r}-{lst!r}")
        first, last, kind = int(key), int(lst), 0
    return (kind, first, last, _ST.get(e.status, 0), e.imsi, e.reason)


def _pair_rows(pairings: Iterable[Pairing]) -> Iterator[tuple[str, int, int, str | None]]:
    for p in pairings:
        if not (len(p.imei) == 14 and p.imei.isdigit() and p.imsi.isdigit() and 5 <= len(p.imsi) <= 15):
            raise StoreError(f"invalid {p.kind} row imsi={p.imsi!r} imei={p.imei!r}")
        yield (p.imsi, _PK[p.kind], int(p.imei), p.reason)
