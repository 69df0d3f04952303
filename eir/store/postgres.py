"""PostgreSQL identity store (``postgresql://…``), for several EIR instances sharing one set of lists.

Layout (created by idempotent, numbered migrations on :meth:`PostgresStore.open`, serialised across
processes by an advisory lock):

* ``eir_exact`` (IMEI and IMEISV rows), ``eir_ranges`` (ranges and TACs as ``lo``/``hi`` integers)
  and ``eir_pairings`` are *partitioned by list version*: every version is one partition of each.
* ``eir_active`` is a one-row table naming the active version; ``eir_versions`` its metadata.
* A small delta of exact entries (an admin API change; at most ``OVERLAY_MAX`` rows with the changes
  it builds on) creates no partitions: the new version is an *overlay* that reads the partitions of
  the full version under it (``eir_versions.base``, copied to ``eir_active.base`` for the hot path)
  and owns only its changes since then in ``eir_overlay`` (a NULL status is a removal). A larger
  delta, or one with ranges or pairings, folds the overlay into a new full version. A full version's
  partitions stay while a kept overlay reads them.

Import builds the new version's partitions as plain tables inside ONE transaction: ``COPY``
(``copy_records_to_table``) into unindexed tables, indexes built afterwards (far faster than
maintaining them row by row), ``ATTACH PARTITION`` (a CHECK constraint lets PostgreSQL skip the
validation scan; the lock it takes on the parent does not block readers), then the active pointer
is updated and ``pg_notify`` queued. Until COMMIT nobody sees any of it; if anything fails — an
invalid row, the iterator raising, the connection dropping during COPY — the transaction rolls back
and the previous version stays active with nothing left behind. Old versions are dropped whole
(``DROP TABLE`` of their partitions: no mass DELETE, no bloat), keeping ``keep_versions``.

The hot path is one statement, one round trip: the exact IMEISV/IMEI rows and the narrowest range
or TAC containing the IMEI (GiST index on ``int8range(lo, hi)``; narrowest = smallest span, ties to
the lower first IMEI, as :mod:`eir.store.ranges`) from the version ``eir_active`` names *in the same
snapshot*, so a lookup never mixes two versions and sees another process's import the moment it
commits.

``watch`` LISTENs on channel ``eir_lists`` (payload ``<id> <token>``) on a dedicated connection,
re-established by itself, reporting the active version after a reconnect in case a flip was missed.
The store's own imports and rollbacks are reported to its callbacks before the call returns (the
echo of its own notification, recognised by the token, is dropped).

Outages: every operation has bounded connect/command timeouts and raises
:class:`~eir.store.base.StoreUnavailableError`; reads are retried once on a fresh connection (a
pooled connection that died with a server restart fails on first use), so the same store object
works again as soon as the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar

import asyncpg

from eir.logging import get_logger
from eir.model import Status
from eir.store.base import (
    EntryKind,
    IdentityStore,
    ImsiRules,
    ListEntry,
    ListVersion,
    Lookup,
    Pairing,
    PairingKind,
    PushedChanges,
    ReferenceTable,
    Sighting,
    StoreError,
    StoreUnavailableError,
    VersionNotFoundError,
    peek_small_delta,
)
from eir.store.memory import check_entry, check_pairing
from eir.store.ranges import bounds

T = TypeVar("T")

CHANNEL = "eir_lists"
COPY_CHUNK = 50_000

_log = get_logger(component="store.postgres")

# Errors that mean "the server cannot be reached / the connection is gone", as opposed to a bad
# statement or bad data (which are bugs or StoreErrors).
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.OperatorInterventionError,  # 57xxx: admin/crash shutdown, cannot connect now
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InternalClientError,
)

_UNAVAILABLE_OR_SQL: tuple[type[BaseException], ...] = (*_UNAVAILABLE, asyncpg.PostgresError)

_MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE SEQUENCE IF NOT EXISTS eir_version_seq",
            """CREATE TABLE IF NOT EXISTS eir_versions (
               id bigint PRIMARY KEY, created double precision NOT NULL, source text NOT NULL,
               entries bigint NOT NULL, pairings bigint NOT NULL)""",
            """CREATE TABLE IF NOT EXISTS eir_active (
               one boolean PRIMARY KEY DEFAULT true CHECK (one), version_id bigint)""",
            "INSERT INTO eir_active (one, version_id) VALUES (true, NULL) ON CONFLICT DO NOTHING",
            """CREATE TABLE IF NOT EXISTS eir_exact (
               version_id bigint NOT NULL, key text NOT NULL, kind text NOT NULL, status text NOT NULL,
               imsi text, reason text) PARTITION BY LIST (version_id)""",
            "CREATE UNIQUE INDEX IF NOT EXISTS eir_exact_key ON eir_exact (version_id, key)",
            """CREATE TABLE IF NOT EXISTS eir_ranges (
               version_id bigint NOT NULL, lo bigint NOT NULL, hi bigint NOT NULL, kind text NOT NULL,
               key text NOT NULL, last text, status text NOT NULL, imsi text, reason text)
               PARTITION BY LIST (version_id)""",
            "CREATE INDEX IF NOT EXISTS eir_ranges_span ON eir_ranges USING gist (int8range(lo, hi, '[]'))",
            """CREATE TABLE IF NOT EXISTS eir_pairings (
               version_id bigint NOT NULL, kind text NOT NULL, imsi text NOT NULL, imei text NOT NULL,
               reason text) PARTITION BY LIST (version_id)""",
            """CREATE UNIQUE INDEX IF NOT EXISTS eir_pairings_key
               ON eir_pairings (version_id, imsi, imei, kind)""",
            # Clone sightings, one row per (IMEI, IMSI) and per (IMEI, origin): what = 'i' | 'o'.
            """CREATE TABLE IF NOT EXISTS eir_observations (
               imei text NOT NULL, what "char" NOT NULL, value text NOT NULL,
               seen double precision NOT NULL, PRIMARY KEY (imei, what, value))""",
            "CREATE INDEX IF NOT EXISTS eir_observations_seen ON eir_observations (seen)",
        ],
    ),
    (
        2,
        [
            # reference tables (TAC → device, registered IMEIs), replaced per name; not versioned
            """CREATE TABLE IF NOT EXISTS eir_reference (
               tbl text NOT NULL, k text NOT NULL, v text NOT NULL, PRIMARY KEY (tbl, k))""",
            """CREATE TABLE IF NOT EXISTS eir_reference_meta (
               tbl text PRIMARY KEY, rows bigint NOT NULL, source text NOT NULL,
               created double precision NOT NULL)""",
        ],
    ),
    (
        3,
        [
            # A small delta is an overlay (module docstring): the version whose partitions it reads
            # (NULL: its own), and its changes since that version (a NULL status is a removal).
            "ALTER TABLE eir_versions ADD COLUMN IF NOT EXISTS base bigint",
            "ALTER TABLE eir_active ADD COLUMN IF NOT EXISTS base bigint",
            """CREATE TABLE IF NOT EXISTS eir_overlay (
               version_id bigint NOT NULL, key text NOT NULL, kind text NOT NULL, status text,
               imsi text, reason text, PRIMARY KEY (version_id, key))""",
        ],
    ),
    (
        4,
        [
            # first sightings of IMEIs with an unallocated TAC (eir/first_seen.py), the per-day
            # history of DIRBS duplicate_mk1 and the IMEIs it flagged (eir/duplicates.py)
            """CREATE TABLE IF NOT EXISTS eir_first_seen (
               imei text PRIMARY KEY, ts double precision NOT NULL)""",
            "CREATE INDEX IF NOT EXISTS eir_first_seen_ts ON eir_first_seen (ts)",
            """CREATE TABLE IF NOT EXISTS eir_daily (
               imei text NOT NULL, day integer NOT NULL, imsi text NOT NULL,
               PRIMARY KEY (imei, day, imsi))""",
            "CREATE INDEX IF NOT EXISTS eir_daily_day ON eir_daily (day)",
            """CREATE TABLE IF NOT EXISTS eir_duplicates (
               imei text PRIMARY KEY, ts double precision NOT NULL)""",
        ],
    ),
    (
        5,
        [
            # Clone sightings become an append-only log (issue 13): a batch is one INSERT of new
            # rows, with no upsert (the keyed table's conflict check, row update and second index
            # cost the server 6-9 µs per row; the log ≈ 2.5, python -m bench.clone --write-cost);
            # readers fold the rows to the newest per key. Rows of the keyed table carry over.
            """CREATE TABLE IF NOT EXISTS eir_sightings (
               imei text NOT NULL, what "char" NOT NULL, value text NOT NULL,
               seen double precision NOT NULL, writer text NOT NULL DEFAULT '')""",
            # by time: sharing and restarts read what is new, pruning and the cap cut the oldest
            "CREATE INDEX IF NOT EXISTS eir_sightings_seen ON eir_sightings (seen)",
            "ALTER TABLE eir_observations ADD COLUMN IF NOT EXISTS writer text NOT NULL DEFAULT ''",
            """INSERT INTO eir_sightings (imei, what, value, seen, writer)
               SELECT imei, what, value, seen, writer FROM eir_observations""",
            "DROP TABLE eir_observations",
        ],
    ),
]

OVERLAY_MAX = 4096
"""A delta of at most this many exact entries (with the overlay it builds on) is an overlay: no
partitions created, a few rows written; past it, or with ranges or pairings, a full version."""

_ACTIVE = "(SELECT version_id FROM eir_active)"
_BASE = "(SELECT coalesce(base, version_id) FROM eir_active)"
"""The version whose partitions the active one reads (itself unless it is an overlay)."""

_LOOKUP_SQL = f"""
SELECT 0 AS slot, kind, key, NULL::text AS last, status, imsi, reason
  FROM eir_overlay WHERE version_id = {_ACTIVE} AND key = ANY($1::text[]) AND status IS NOT NULL
UNION ALL
SELECT 0, kind, key, NULL, status, imsi, reason
  FROM eir_exact e WHERE version_id = {_BASE} AND key = ANY($1::text[])
   AND NOT EXISTS (SELECT 1 FROM eir_overlay o WHERE o.version_id = {_ACTIVE} AND o.key = e.key)
UNION ALL
SELECT * FROM (
  SELECT 1, kind, key, last, status, imsi, reason FROM eir_ranges
   WHERE version_id = {_BASE} AND int8range(lo, hi, '[]') @> $2::bigint
   ORDER BY hi - lo, lo LIMIT 1) AS r
UNION ALL
SELECT 2, tbl, k, NULL, '', NULL, v FROM eir_reference
 WHERE (tbl = 'tac' AND k = $3) OR (tbl IN ('registration', 'golden') AND k = $4)
UNION ALL
SELECT 3, tbl, '', NULL, '', NULL, NULL FROM eir_reference_meta WHERE rows > 0
"""

_EFFECTIVE = """
SELECT key, kind, status, imsi, reason FROM eir_exact e WHERE e.version_id = $2
   AND NOT EXISTS (SELECT 1 FROM eir_overlay d WHERE d.version_id = $1 AND d.key = e.key)
UNION ALL
SELECT key, kind, status, imsi, reason FROM eir_overlay d WHERE d.version_id = $1 AND d.status IS NOT NULL
"""
"""The exact rows of version $1 that reads the partitions of $2 (the same id for a full version)."""

_LISTED_SQL = """
SELECT count(*) FROM unnest($3::text[]) AS k(key) WHERE coalesce(
  (SELECT d.status IS NOT NULL FROM eir_overlay d WHERE d.version_id = $1 AND d.key = k.key),
  EXISTS (SELECT 1 FROM eir_exact e WHERE e.version_id = $2 AND e.key = k.key))
"""
"""How many of the keys $3 version $1 (reading the partitions of $2) lists."""

_RULES_SQL = f"""
SELECT bool_or(kind = 'pairing' AND imei = $2) AS paired,
       max(reason) FILTER (WHERE kind = 'pairing' AND imei = $2) AS reason,
       bool_or(kind = 'lock') AS locked,
       bool_or(kind = 'lock' AND imei = $2) AS allows
  FROM eir_pairings WHERE version_id = {_BASE} AND imsi = $1
"""

# A batch of sightings is appended as it comes (the log, migration 5) by one binary COPY: asyncpg
# encodes the records in C, ≈ 0.8-0.95 µs of the EIR's CPU per row against 1.7 for the arrays of an
# INSERT … SELECT FROM unnest(…), with the same server cost (python -m bench.clone --write-cost).
_SIGHTING_COLUMNS = ["imei", "what", "value", "seen", "writer"]
_KIND_BYTES = {k: k.encode() for k in "iocegn"}  # eir/sightings.py's kinds
"""The ``"char"`` column's binary form is one octet."""


def _rowcount(status: str) -> int:
    """The row count of a command status (``DELETE 12``)."""
    tail = status.rpartition(" ")[2]
    return int(tail) if tail.isdigit() else 0


_EXACT_COLS = ["key", "kind", "status", "imsi", "reason"]
_RANGE_COLS = ["lo", "hi", "kind", "key", "last", "status", "imsi", "reason"]
_PAIR_COLS = ["kind", "imsi", "imei", "reason"]

# (parent, index DDL on a child named {t}, columns identifying a duplicate row)
_TABLES: list[tuple[str, str, str]] = [
    ("eir_exact", "CREATE UNIQUE INDEX ON {t} (version_id, key)", "a.key = b.key"),
    (
        "eir_ranges",
        "CREATE INDEX ON {t} USING gist (int8range(lo, hi, '[]'))",
        "a.kind = b.kind AND a.lo = b.lo AND a.hi = b.hi",
    ),
    (
        "eir_pairings",
        "CREATE UNIQUE INDEX ON {t} (version_id, imsi, imei, kind)",
        "a.imsi = b.imsi AND a.imei = b.imei AND a.kind = b.kind",
    ),
]


_ORPHANS_SQL = """
SELECT substring(c.relname from 'eir_exact_v([0-9]+)$')::bigint AS vid
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'eir_exact'::regclass
EXCEPT SELECT id FROM eir_versions EXCEPT SELECT base FROM eir_versions
EXCEPT SELECT version_id FROM eir_active EXCEPT SELECT base FROM eir_active
"""
"""Versions whose partitions no kept version reads."""


async def _no_reset(_con: asyncpg.Connection) -> None:
    return None


def _retrieved(t: asyncio.Task[None]) -> None:
    """(An exception of a background task is read, logged, and not reported again by asyncio.)"""
    if not t.cancelled() and t.exception() is not None:
        _log.warning("prune_versions_failed", error=repr(t.exception())[:200])


def _chunks(it: Iterable[T], n: int) -> Iterator[list[T]]:
    i = iter(it)
    while chunk := list(islice(i, n)):
        yield chunk


class PostgresStore(PushedChanges, IdentityStore):
    """asyncpg pool; see the module docstring for layout and guarantees."""

    _watch_log = _log

    name = "postgres"
    cache_lookups = True
    needs_task = True
    """Tells the checker to cache answers per active version (``watch`` drops the cache)."""

    def __init__(
        self,
        url: str,
        *,
        keep_versions: int = 5,
        min_size: int = 0,
        max_size: int = 10,
        connect_timeout: float = 3.0,
        command_timeout: float = 5.0,
        import_timeout: float = 3600.0,
    ) -> None:
        self.url = url.replace("postgres://", "postgresql://", 1)
        self.keep_versions = keep_versions
        self.min_size = min_size
        self.max_size = max_size
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.import_timeout = import_timeout
        self._pool: asyncpg.Pool | None = None
        self._callbacks: list[Callable[[int], None]] = []
        self._listener: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()
        self._closed = False
        # Our own changes are reported to our callbacks at once (before import/rollback returns);
        # the notification carries this token so that its echo is not reported twice.
        self._token = uuid.uuid4().hex
        self.last_import_rows = 0
        """List rows the last import wrote (an overlay: its rows; a full version: all of them)."""
        self._prune_task: asyncio.Task[None] | None = None
        """The pruning of old versions after the last import (:meth:`_pruned`)."""

    # --- connection handling ------------------------------------------------------------------
    async def open(self) -> None:
        self._closed = False
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self.min_size,
                max_size=self.max_size,
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
                # Generic plans: the hot statements prune partitions at run time (the active
                # version comes from a sub-select), which beats re-planning every call.
                server_settings={"application_name": "eir", "plan_cache_mode": "force_generic_plan"},
                # No per-release RESET round trip: these connections never keep session state
                # (no LISTEN, SET only LOCAL, temp tables ON COMMIT DROP).
                reset=_no_reset,
            )
            async with self._pool.acquire(timeout=self.connect_timeout) as con:
                await self._migrate(con)
        except _UNAVAILABLE as e:
            await self._close_pool()
            raise self._unavailable(e) from e
        except asyncpg.PostgresError as e:  # e.g. no right to create the tables
            await self._close_pool()
            raise StoreError(f"PostgreSQL: cannot set up the schema: {type(e).__name__}: {e}") from e

    async def _migrate(self, con: asyncpg.Connection) -> None:
        async with con.transaction():
            await con.execute("SELECT pg_advisory_xact_lock(hashtext('eir-schema'))")
            await con.execute("CREATE TABLE IF NOT EXISTS eir_schema (version int NOT NULL)")
            current = await con.fetchval("SELECT max(version) FROM eir_schema") or 0
            for version, stmts in _MIGRATIONS:
                if version <= current:
                    continue
                for sql in stmts:
                    await con.execute(sql)
                await con.execute("INSERT INTO eir_schema (version) VALUES ($1)", version)
                _log.info("store_migrated", schema_version=version)

    async def close(self) -> None:
        await self._pruned()
        self._closed = True
        self._callbacks.clear()
        tasks = [t for t in (self._listener,) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        self._listener = None
        await self._close_pool()

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=self.command_timeout)
        except _UNAVAILABLE:
            pool.terminate()

    def _unavailable(self, e: BaseException) -> StoreUnavailableError:
        # (counted in eir_store_errors by the checker, which sees every failure)
        return StoreUnavailableError(f"PostgreSQL unavailable: {type(e).__name__}: {e}")

    def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("PostgresStore is not open")
        return self._pool

    async def _read(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run an idempotent read; once more on a fresh connection if the first one was dead."""
        pool = self._get_pool()
        for attempt in (1, 2):
            try:
                async with pool.acquire(timeout=self.connect_timeout) as con:
                    return await fn(con)
            except _UNAVAILABLE as e:
                if attempt == 2 or isinstance(e, ConnectionRefusedError | TimeoutError):
                    raise self._unavailable(e) from e
            except asyncpg.PostgresError as e:
                raise StoreError(f"PostgreSQL: {type(e).__name__}: {e}") from e
        raise AssertionError("unreachable")  # pragma: no cover

    # --- hot path -----------------------------------------------------------------------------
    async def lookup(self, imei: str, imeisv: str | None = None) -> Lookup:
        imei14 = imei[:14]
        keys = [imei14] if imeisv is None else [imei14, imeisv]
        try:
            n = int(imei14)
        except ValueError:
            raise StoreError(f"not an IMEI: {imei!r}") from None
        rows = await self._read(lambda con: con.fetch(_LOOKUP_SQL, keys, n, imei14[:8], imei14))
        sv = ie = rng = None
        device = registration = None
        golden = False
        loaded: set[str] = set()
        for r in rows:
            slot = r["slot"]
            if slot == 2:
                if r["kind"] == "tac":
                    device = r["reason"]
                elif r["kind"] == "golden":
                    golden = True
                else:
                    registration = r["reason"]
                continue
            if slot == 3:
                loaded.add(r["kind"])
                continue
            e = _entry(r)
            if slot == 1:
                rng = e
            elif e.kind is EntryKind.IMEISV:
                sv = e
            else:
                ie = e
        return Lookup(
            imeisv=sv,
            imei=ie,
            range=rng,
            tac_table="tac" in loaded,
            device=device,
            registration_list="registration" in loaded,
            registration=registration,
            golden=golden,
        )

    # --- reference tables -----------------------------------------------------------------------
    async def import_reference(
        self, table: str, rows: Iterable[tuple[str, str]], *, source: str
    ) -> ReferenceTable:
        created = time.time()
        try:
            async with self._get_pool().acquire(timeout=self.connect_timeout) as con, con.transaction():
                await con.execute("DELETE FROM eir_reference WHERE tbl = $1", table)
                n = 0
                for chunk in _chunks(((table, k, v) for k, v in rows), 50_000):
                    await con.copy_records_to_table("eir_reference", records=chunk, columns=["tbl", "k", "v"])
                    n += len(chunk)
                await con.execute(
                    "INSERT INTO eir_reference_meta VALUES ($1, $2, $3, $4) ON CONFLICT (tbl) DO UPDATE "
                    "SET rows = EXCLUDED.rows, source = EXCLUDED.source, created = EXCLUDED.created",
                    table,
                    n,
                    source,
                    created,
                )
                # the watchers of every process drop their cached answers (base.import_reference)
                vid = await con.fetchval("SELECT version_id FROM eir_active")
                if vid is not None:
                    await con.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{vid} {self._token}")
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        except asyncpg.PostgresError as e:
            raise StoreError(f"PostgreSQL import_reference: {type(e).__name__}: {e}") from e
        if vid is not None:
            self._fire(int(vid))
        return ReferenceTable(name=table, rows=n, source=source, created=created)

    async def reference_tables(self) -> list[ReferenceTable]:
        rows = await self._read(
            lambda con: con.fetch("SELECT tbl, rows, source, created FROM eir_reference_meta WHERE rows > 0")
        )
        return [
            ReferenceTable(name=r["tbl"], rows=int(r["rows"]), source=r["source"], created=r["created"])
            for r in rows
        ]

    async def reference(self, table: str, key: str) -> str | None:
        v = await self._read(
            lambda con: con.fetchval("SELECT v FROM eir_reference WHERE tbl = $1 AND k = $2", table, key)
        )
        return None if v is None else str(v)

    async def imsi_rules(self, imsi: str, imei: str) -> ImsiRules:
        r = await self._read(lambda con: con.fetchrow(_RULES_SQL, imsi, imei[:14]))
        if r is None or r["locked"] is None:
            return ImsiRules()
        pairing = (
            Pairing(kind=PairingKind.PAIRING, imsi=imsi, imei=imei[:14], reason=r["reason"])
            if r["paired"]
            else None
        )
        return ImsiRules(pairing=pairing, locked=bool(r["locked"]), lock_allows=bool(r["allows"]))

    async def write_sightings(self, rows: Sequence[Sighting], *, writer: str = "") -> None:
        """One binary COPY per batch, appended to the log."""
        if not rows:
            return
        kinds = _KIND_BYTES
        records = [
            (imei, kinds.get(kind) or kind.encode(), value, seen, writer) for imei, kind, value, seen in rows
        ]
        try:
            async with self._get_pool().acquire(timeout=self.connect_timeout) as con:
                await con.copy_records_to_table("eir_sightings", records=records, columns=_SIGHTING_COLUMNS)
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e

    async def read_sightings(
        self,
        since: float,
        *,
        imei: str | None = None,
        limit: int | None = None,
        exclude_writer: str | None = None,
    ) -> list[Sighting]:
        """The log's rows folded to the newest per key, newest first. With ``exclude_writer``, that
        writer's rows are left out before folding: a key it wrote last may come back with another
        writer's older time (the tracker's merge keeps its own newer one)."""
        sql = "SELECT imei, what::text, value, max(seen) AS s FROM eir_sightings WHERE seen >= $1"
        args: list[Any] = [since]
        if imei is not None:
            args.append(imei)
            sql += f" AND imei = ${len(args)}"
        if exclude_writer is not None:
            args.append(exclude_writer)
            sql += f" AND writer <> ${len(args)}"
        sql += " GROUP BY imei, what, value ORDER BY s DESC"
        if limit is not None:
            args.append(limit)
            sql += f" LIMIT ${len(args)}"
        try:
            async with self._get_pool().acquire(timeout=self.connect_timeout) as con:
                records = await con.fetch(sql, *args)
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        return [(r[0], r[1], r[2], r[3]) for r in records]

    async def prune_sightings(self, before: float) -> None:
        await self._obs_execute("DELETE FROM eir_sightings WHERE seen < $1", before)

    async def clear_sightings(self, imei: str) -> int:
        # no index by IMEI (it would cost every write ≈ 1-2 µs per row): an operator's clear scans
        return _rowcount(await self._obs_execute("DELETE FROM eir_sightings WHERE imei = $1", imei))

    async def count_sightings(self) -> int:
        try:
            async with self._get_pool().acquire(timeout=self.connect_timeout) as con:
                return int(await con.fetchval("SELECT count(*) FROM eir_sightings"))
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e

    async def estimate_sightings(self) -> int:
        """The statistics' row count of the log: ``count(*)`` reads every row — 80-90 ms of
        server CPU at the default cap of 2M rows, every ``CAP_INTERVAL``, for every instance.
        ``pg_stat_user_tables.n_live_tup`` follows inserts and deletes about a second behind, but
        starts again from 0 after a crash restart, a failover or ``pg_stat_reset()``; the planner's
        ``reltuples`` survives those (as of the last vacuum or analyze): the greater of the two.
        Neither known (0): the exact count."""
        try:
            async with self._get_pool().acquire(timeout=self.connect_timeout) as con:
                n = await con.fetchval(
                    """SELECT GREATEST(coalesce(s.n_live_tup, 0), c.reltuples::bigint)
                         FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
                        WHERE c.oid = 'eir_sightings'::regclass"""
                )
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        return int(n) if n and n > 0 else await self.count_sightings()

    async def evict_sightings(self, keep: int) -> int:
        """The oldest rows beyond ``keep`` (by the time index), in one statement."""
        return _rowcount(
            await self._obs_execute(
                """DELETE FROM eir_sightings WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM eir_sightings ORDER BY seen
                      LIMIT GREATEST(0, (SELECT count(*) FROM eir_sightings) - $1)))""",
                max(0, keep),
            )
        )

    async def _obs_execute(self, sql: str, *args: Any) -> str:
        try:
            async with self._get_pool().acquire(timeout=self.connect_timeout) as con:
                return str(await con.execute(sql, *args))
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e

    # --- first sightings and the per-day history (eir/first_seen.py, eir/duplicates.py) --------
    async def write_first_seen(self, rows: Sequence[tuple[str, float]]) -> None:
        first: dict[str, float] = {}
        for imei, ts in rows:  # one row each: ON CONFLICT may not touch a row twice
            first[imei] = min(ts, first.get(imei, ts))
        if first:
            await self._obs_execute(
                "INSERT INTO eir_first_seen SELECT * FROM unnest($1::text[], $2::float8[]) "
                "ON CONFLICT (imei) DO UPDATE SET ts = least(eir_first_seen.ts, excluded.ts)",
                list(first),
                list(first.values()),
            )

    async def read_first_seen(self, limit: int) -> list[tuple[str, float]]:
        async def run(con: asyncpg.Connection) -> list[tuple[str, float]]:
            rows = await con.fetch(
                "SELECT imei, ts FROM (SELECT imei, ts FROM eir_first_seen ORDER BY ts DESC LIMIT $1) r "
                "ORDER BY ts",
                max(limit, 0),
            )
            return [(r[0], r[1]) for r in rows]

        return await self._read(run)

    async def write_daily(self, rows: Sequence[tuple[str, int, str]]) -> None:
        if rows:
            imeis, days, imsis = (list(c) for c in zip(*set(rows), strict=True))
            await self._obs_execute(
                "INSERT INTO eir_daily SELECT * FROM unnest($1::text[], $2::int[], $3::text[]) "
                "ON CONFLICT DO NOTHING",
                imeis,
                days,
                imsis,
            )

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
        async def run(con: asyncpg.Connection) -> set[str]:
            rows = await con.fetch(
                "SELECT t.imei FROM (SELECT imei FROM eir_daily WHERE day > $1::int - $2::int "
                "AND day <= $1::int GROUP BY imei HAVING count(DISTINCT imsi) >= $3::int) t JOIN "
                "(SELECT imei FROM eir_daily WHERE day > $1::int - $4::int AND day <= $1::int "
                "GROUP BY imei HAVING count(DISTINCT day) >= $5::int "
                "AND count(*)::float8 / count(DISTINCT day) >= $6::float8) a ON a.imei = t.imei",
                today,
                period_days,
                threshold,
                daily_avg_days,
                max(min_seen_days, 1),
                float(daily_avg),
            )
            return {r[0] for r in rows}

        return await self._read(run)

    async def flag_duplicates(self, imeis: Sequence[str], ts: float) -> None:
        if imeis:
            # only an IMEI that still has history: FOR KEY SHARE waits for a clear deleting its
            # rows and then skips them (clear_duplicate deletes the history before the flag, so
            # the two lock in the same order and cannot deadlock)
            await self._obs_execute(
                "INSERT INTO eir_duplicates SELECT i, $2 FROM unnest($1::text[]) i"
                " WHERE EXISTS (SELECT 1 FROM eir_daily d WHERE d.imei = i FOR KEY SHARE)"
                " ON CONFLICT DO NOTHING",
                sorted(set(imeis)),
                ts,
            )

    async def duplicates(self) -> dict[str, float]:
        async def run(con: asyncpg.Connection) -> dict[str, float]:
            return {r[0]: r[1] for r in await con.fetch("SELECT imei, ts FROM eir_duplicates")}

        return await self._read(run)

    async def duplicates_page(self, limit: int, offset: int) -> tuple[list[tuple[str, float]], int]:
        async def run(con: asyncpg.Connection) -> tuple[list[tuple[str, float]], int]:
            rows = await con.fetch(
                "SELECT imei, ts FROM eir_duplicates ORDER BY imei LIMIT $1 OFFSET $2", max(limit, 0), offset
            )
            total = await con.fetchval("SELECT count(*) FROM eir_duplicates")
            return [(str(r[0]), float(r[1])) for r in rows], int(total)

        return await self._read(run)

    async def duplicate_flag(self, imei: str) -> float | None:
        async def run(con: asyncpg.Connection) -> float | None:
            ts = await con.fetchval("SELECT ts FROM eir_duplicates WHERE imei = $1", imei)
            return None if ts is None else float(ts)

        return await self._read(run)

    async def daily_history(self, imei: str, limit: int = 10_000) -> list[tuple[int, str]]:
        async def run(con: asyncpg.Connection) -> list[tuple[int, str]]:
            rows = await con.fetch(
                "SELECT day, imsi FROM eir_daily WHERE imei = $1 ORDER BY day, imsi LIMIT $2",
                imei,
                max(limit, 0),
            )
            return [(int(r[0]), str(r[1])) for r in rows]

        return await self._read(run)

    async def clear_duplicate(self, imei: str) -> tuple[bool, int]:
        try:
            async with self._get_pool().acquire(timeout=self.connect_timeout) as con, con.transaction():
                # the history first: flag_duplicates locks it before it inserts the flag
                gone = await con.execute("DELETE FROM eir_daily WHERE imei = $1", imei)
                flag = await con.execute("DELETE FROM eir_duplicates WHERE imei = $1", imei)
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        return int(flag.split()[-1]) > 0, int(gone.split()[-1])

    async def prune_daily(self, before_day: int, max_rows: int) -> int:
        gone = int((await self._obs_execute("DELETE FROM eir_daily WHERE day <= $1", before_day)).split()[-1])
        if max_rows > 0:
            for _ in range(10_000):  # whole days, oldest first (bounded)

                async def count(con: asyncpg.Connection) -> int:
                    return int(await con.fetchval("SELECT count(*) FROM eir_daily"))

                if await self._read(count) <= max_rows:
                    break
                tag = await self._obs_execute(
                    "DELETE FROM eir_daily WHERE day = (SELECT min(day) FROM eir_daily)"
                )
                gone += int(tag.split()[-1])
        return gone

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
        await self._pruned()
        pool = self._get_pool()
        try:
            async with pool.acquire(timeout=self.connect_timeout) as con:
                try:
                    meta = await self._import(con, entries, pairings, source, delta, removals)
                except asyncpg.InterfaceError as e:
                    # the transaction cannot even be rolled back because the connection is gone
                    # (the server rolls back by itself): report the cause
                    if isinstance(e.__context__, _UNAVAILABLE):
                        raise e.__context__ from None
                    raise
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        except asyncpg.PostgresError as e:
            raise StoreError(f"import failed: {e}") from e
        self._fire(meta.id)
        # Old versions go after the import has returned: the change is visible at COMMIT, and the
        # pruning (its own transaction and commit, up to 100 ms waiting for a lock) kept an admin
        # API change from being answered — half of its p99 on a loaded host. Every call that could
        # tell (versions, rollback, the next import, close) waits for it first, so what they see
        # is what they saw when the pruning was inside the import.
        t = self._prune_task = asyncio.get_running_loop().create_task(self._prune_versions())
        t.add_done_callback(_retrieved)
        return meta

    async def _pruned(self) -> None:
        """Wait for the pruning started by the last import, if it is still running (it is best
        effort and bounded by its own timeouts; a caller cancelled meanwhile leaves it running)."""
        t = self._prune_task
        if t is not None and not t.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(t)

    async def _import(
        self,
        con: asyncpg.Connection,
        entries: Iterable[ListEntry],
        pairings: Iterable[Pairing],
        source: str,
        delta: bool,
        removals: Iterable[ListEntry | Pairing],
    ) -> ListVersion:
        t = self.import_timeout
        async with con.transaction():
            # Serialise imports (and rollbacks): a delta must build on the version that is active
            # when it commits. Readers never lock this row, so they are not held up.
            cur = await con.fetchval("SELECT version_id FROM eir_active FOR UPDATE", timeout=t)
            cur_base: int | None = None  # the active version is an overlay on this one
            if delta and cur is not None:
                # one round trip for what the overlay path needs to know of the active version (a
                # statement of its own: in READ COMMITTED it sees what a concurrent import, which we
                # waited for on the lock above, committed; a join under the lock would not)
                prev = await con.fetchrow(
                    "SELECT base, entries, pairings, CASE WHEN base IS NULL THEN 0 ELSE "
                    "(SELECT count(*) FROM eir_overlay WHERE version_id = $1) END AS n_over "
                    "FROM eir_versions WHERE id = $1",
                    cur,
                    timeout=t,
                )
                cur_base = None if prev is None else prev["base"]
                entries, pairings, removals, small = peek_small_delta(
                    entries, pairings, removals, OVERLAY_MAX
                )
                if small is not None and prev is not None:
                    n_over = int(prev["n_over"])
                    if n_over + len(small[0]) + len(small[1]) <= OVERLAY_MAX:
                        meta = await self._overlay(con, int(cur), prev, small[0], small[1], source)
                        self.last_import_rows = len(small[0]) + len(small[1]) + n_over
                        return meta
            vid = int(await con.fetchval("SELECT nextval('eir_version_seq')"))
            names = {parent: f"{parent}_v{vid}" for parent, _i, _d in _TABLES}
            for parent, child in names.items():
                await con.execute(
                    f"CREATE TABLE {child} (LIKE {parent}, "
                    f"CONSTRAINT {child}_v CHECK (version_id IS NOT NULL AND version_id = {vid}));"
                    f"ALTER TABLE {child} ALTER COLUMN version_id SET DEFAULT {vid}",
                    timeout=t,
                )

            # 1. the additions, streamed in chunks (COPY is the fast path)
            exact: list[tuple[Any, ...]] = []
            ranges: list[tuple[Any, ...]] = []

            async def flush() -> None:
                if exact:
                    await con.copy_records_to_table(
                        names["eir_exact"], records=exact, columns=_EXACT_COLS, timeout=t
                    )
                    exact.clear()
                if ranges:
                    await con.copy_records_to_table(
                        names["eir_ranges"], records=ranges, columns=_RANGE_COLS, timeout=t
                    )
                    ranges.clear()

            for e in entries:
                check_entry(e)
                if e.kind is EntryKind.IMEI or e.kind is EntryKind.IMEISV:
                    exact.append((e.key, e.kind.value, e.status.value, e.imsi, e.reason))
                else:
                    lo, hi = bounds(e)
                    ranges.append((lo, hi, e.kind.value, e.key, e.last, e.status.value, e.imsi, e.reason))
                if len(exact) + len(ranges) >= COPY_CHUNK:
                    await flush()
            await flush()
            for chunk in _chunks(pairings, COPY_CHUNK):
                for p in chunk:
                    check_pairing(p)
                await con.copy_records_to_table(
                    names["eir_pairings"],
                    columns=_PAIR_COLS,
                    timeout=t,
                    records=[(p.kind.value, p.imsi, p.imei, p.reason) for p in chunk],
                )

            # 2. within one import the last duplicate wins (COPY appends, so ctid order is row order);
            # 3. a delta carries over the current version's rows that are neither removed nor
            #    replaced; 4. indexes are built after the data.
            if delta and cur is not None:
                for parent, _index, same in _TABLES:  # the additions of a delta are few: just dedupe
                    await self._dedupe(con, names[parent], same)
                await self._carry_over(con, names, int(cur), cur_base, removals)
                for parent, index, _same in _TABLES:
                    await con.execute(index.format(t=names[parent]), timeout=t)
            else:
                for parent, index, same in _TABLES:
                    child = names[parent]
                    if "UNIQUE" in index:
                        # the unique index finds duplicates for free; dedupe only when it fails
                        try:
                            async with con.transaction():
                                await con.execute(index.format(t=child), timeout=t)
                            continue
                        except asyncpg.UniqueViolationError:
                            pass
                    await self._dedupe(con, child, same)
                    await con.execute(index.format(t=child), timeout=t)

            # 5. attach: the CHECK constraint spares the validation scan
            for parent, _index, _same in _TABLES:
                await con.execute(f"ANALYZE {names[parent]}", timeout=t)
                await con.execute(
                    f"ALTER TABLE {parent} ATTACH PARTITION {names[parent]} FOR VALUES IN ({vid})", timeout=t
                )
            n_entries = await con.fetchval(
                f"SELECT (SELECT count(*) FROM {names['eir_exact']}) + "
                f"(SELECT count(*) FROM {names['eir_ranges']})",
                timeout=t,
            )
            n_pairings = await con.fetchval(f"SELECT count(*) FROM {names['eir_pairings']}", timeout=t)
            created = time.time()
            await con.execute(
                "INSERT INTO eir_versions (id, created, source, entries, pairings) "
                "VALUES ($1, $2, $3, $4, $5)",
                vid,
                created,
                source,
                n_entries,
                n_pairings,
            )
            await con.execute("UPDATE eir_active SET version_id = $1, base = NULL", vid)
            await con.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{vid} {self._token}")
        self.last_import_rows = int(n_entries) + int(n_pairings)
        _log.info(
            "lists_imported", version=vid, entries=n_entries, pairings=n_pairings, source=source, delta=delta
        )
        return ListVersion(
            id=vid,
            created=created,
            source=source,
            entries=int(n_entries),
            pairings=int(n_pairings),
            active=True,
        )

    async def _overlay(
        self,
        con: asyncpg.Connection,
        cur: int,
        prev: asyncpg.Record,
        entries: list[ListEntry],
        removals: list[ListEntry],
        source: str,
    ) -> ListVersion:
        """A small delta of exact entries (inside the import's transaction, the active row locked):
        a version that reads the partitions of the full version ``base`` under the active one and
        owns only its changes since then in ``eir_overlay`` — a few rows, no DDL. ``prev``: the
        active version's base, entries and pairings. Few round trips: the change is visible when
        the transaction commits, and on a loaded host each one costs."""
        t = self.import_timeout
        cur_base = prev["base"]
        base = cur if cur_base is None else int(cur_base)
        for e in entries:
            check_entry(e)
        keys = sorted({e.key for e in (*removals, *entries)})
        # the changed keys the active version lists: the new entry count follows from them
        r = await con.fetchrow(
            f"SELECT nextval('eir_version_seq') AS vid, ({_LISTED_SQL}) AS was", cur, base, keys, timeout=t
        )
        vid, was = int(r["vid"]), int(r["was"])
        # The new overlay: the changes, last one per key winning (removals first: a NULL status),
        # and the rows of the overlay it replaces for every other key. Computed here, written with
        # the version row, the active pointer and the notification in ONE statement: each round
        # trip costs a wake-up of the server process, and on a loaded host those add up to most
        # of the time from an admin API change to its answer.
        final: dict[str, tuple[str, str | None, str | None, str | None]] = {}
        for rm in removals:
            final[rm.key] = (rm.kind.value, None, None, None)
        for e in entries:
            final[e.key] = (e.kind.value, e.status.value, e.imsi, e.reason)
        now = sum(1 for row in final.values() if row[1] is not None)  # every changed key has a row
        created = time.time()
        n_entries = int(prev["entries"]) - was + now
        ks = list(final)
        await con.execute(
            "WITH o AS (INSERT INTO eir_overlay "
            "SELECT $1::bigint, key, kind, status, imsi, reason FROM eir_overlay "
            "WHERE $9::boolean AND version_id = $10::bigint AND NOT (key = ANY($11::text[])) "
            "UNION ALL SELECT $1::bigint, * FROM unnest($11::text[], $12::text[], $13::text[], "
            "$14::text[], $15::text[])), "
            "v AS (INSERT INTO eir_versions (id, created, source, entries, pairings, base) "
            "VALUES ($1, $2, $3, $4, $5, $6)), "
            "a AS (UPDATE eir_active SET version_id = $1, base = $6) "
            "SELECT pg_notify($7, $8)",
            vid,
            created,
            source,
            n_entries,
            prev["pairings"],
            base,
            CHANNEL,
            f"{vid} {self._token}",
            cur_base is not None,
            cur,
            ks,
            [final[k][0] for k in ks],
            [final[k][1] for k in ks],
            [final[k][2] for k in ks],
            [final[k][3] for k in ks],
            timeout=t,
        )
        _log.info("lists_imported", version=vid, entries=n_entries, source=source, delta=True, overlay=base)
        return ListVersion(
            id=vid,
            created=created,
            source=source,
            entries=n_entries,
            pairings=int(prev["pairings"]),
            active=True,
        )

    async def _dedupe(self, con: asyncpg.Connection, child: str, same: str) -> None:
        await con.execute(
            f"DELETE FROM {child} a USING {child} b WHERE {same} AND a.ctid < b.ctid",
            timeout=self.import_timeout,
        )

    async def _carry_over(
        self,
        con: asyncpg.Connection,
        names: dict[str, str],
        cur: int,
        cur_base: int | None,
        removals: Iterable[ListEntry | Pairing],
    ) -> None:
        """Copy the active version ``cur`` (an overlay on ``cur_base`` is folded in) into the new
        partitions, without what the delta removes or replaces."""
        t = self.import_timeout
        base = cur if cur_base is None else cur_base
        await con.execute(
            "CREATE TEMP TABLE eir_rm_exact (kind text, key text) ON COMMIT DROP;"
            "CREATE TEMP TABLE eir_rm_ranges (kind text, lo bigint, hi bigint) ON COMMIT DROP;"
            "CREATE TEMP TABLE eir_rm_pairings (kind text, imsi text, imei text) ON COMMIT DROP"
        )
        rm_exact: list[tuple[str, str]] = []
        rm_ranges: list[tuple[str, int, int]] = []
        rm_pairs: list[tuple[str, str, str]] = []
        for r in removals:
            if isinstance(r, Pairing):
                rm_pairs.append((r.kind.value, r.imsi, r.imei))
            elif r.kind is EntryKind.IMEI or r.kind is EntryKind.IMEISV:
                rm_exact.append((r.kind.value, r.key))
            else:
                try:
                    rm_ranges.append((r.kind.value, *bounds(r)))
                except ValueError:
                    continue  # a range without its last IMEI matches nothing
        for table, rows in (
            ("eir_rm_exact", rm_exact),
            ("eir_rm_ranges", rm_ranges),
            ("eir_rm_pairings", rm_pairs),
        ):
            if rows:
                await con.copy_records_to_table(table, records=rows, timeout=t)
        ex, rg, pa = names["eir_exact"], names["eir_ranges"], names["eir_pairings"]
        await con.execute(
            f"INSERT INTO {ex} ({', '.join(_EXACT_COLS)}) "
            f"SELECT {', '.join(_EXACT_COLS)} FROM ({_EFFECTIVE}) o "
            f"WHERE NOT EXISTS (SELECT 1 FROM {ex} c WHERE c.key = o.key) "
            f"AND NOT EXISTS (SELECT 1 FROM eir_rm_exact r WHERE r.key = o.key AND r.kind = o.kind)",
            cur,
            base,
            timeout=t,
        )
        await con.execute(
            f"INSERT INTO {rg} ({', '.join(_RANGE_COLS)}) SELECT {', '.join(_RANGE_COLS)} FROM eir_ranges o "
            f"WHERE o.version_id = $1 AND NOT EXISTS "
            f"(SELECT 1 FROM {rg} c WHERE c.kind = o.kind AND c.lo = o.lo AND c.hi = o.hi) "
            f"AND NOT EXISTS (SELECT 1 FROM eir_rm_ranges r "
            f"WHERE r.kind = o.kind AND r.lo = o.lo AND r.hi = o.hi)",
            base,
            timeout=t,
        )
        await con.execute(
            f"INSERT INTO {pa} ({', '.join(_PAIR_COLS)}) SELECT {', '.join(_PAIR_COLS)} FROM eir_pairings o "
            f"WHERE o.version_id = $1 AND NOT EXISTS "
            f"(SELECT 1 FROM {pa} c WHERE c.kind = o.kind AND c.imsi = o.imsi AND c.imei = o.imei) "
            f"AND NOT EXISTS (SELECT 1 FROM eir_rm_pairings r "
            f"WHERE r.kind = o.kind AND r.imsi = o.imsi AND r.imei = o.imei)",
            base,
            timeout=t,
        )

    async def _prune_versions(self) -> None:
        """Drop all but the newest ``keep_versions`` versions (never the active one). Best effort:
        dropping a partition needs a brief ACCESS EXCLUSIVE lock on the parent, and lookups queue
        behind a waiting request, so the wait is capped at 100 ms (another import's open
        transaction, a long export); what is left goes at the next import."""
        try:
            async with self._get_pool().acquire(timeout=self.connect_timeout) as con, con.transaction():
                await con.execute("SET LOCAL lock_timeout = '100ms'")
                # the active version cannot change until this commits: a rollback (FOR UPDATE) to a
                # version chosen below waits, then finds it gone; one already under way makes this
                # wait (at most lock_timeout) and try again at the next import
                await con.execute("SELECT version_id FROM eir_active FOR SHARE")
                old = await con.fetch(
                    "SELECT id FROM eir_versions WHERE id IS DISTINCT FROM "
                    "(SELECT version_id FROM eir_active) ORDER BY id DESC OFFSET $1",
                    max(self.keep_versions - 1, 0),
                )
                gone = [int(r["id"]) for r in old]
                if not gone:
                    return
                await con.execute("DELETE FROM eir_versions WHERE id = ANY($1::bigint[])", gone)
                await con.execute("DELETE FROM eir_overlay WHERE version_id = ANY($1::bigint[])", gone)
                # a full version's partitions stay while a kept overlay reads them
                for r in await con.fetch(_ORPHANS_SQL):
                    vid = int(r["vid"])
                    await con.execute(
                        f"DROP TABLE IF EXISTS eir_exact_v{vid}, eir_ranges_v{vid}, eir_pairings_v{vid}"
                    )
        except _UNAVAILABLE_OR_SQL as e:
            _log.warning("prune_versions_failed", error=str(e))

    async def versions(self) -> list[ListVersion]:
        await self._pruned()
        rows = await self._read(
            lambda con: con.fetch(
                "SELECT v.*, v.id = a.version_id AS active FROM eir_versions v "
                "LEFT JOIN eir_active a ON true ORDER BY v.id DESC"
            )
        )
        return [
            ListVersion(
                id=int(r["id"]),
                created=r["created"],
                source=r["source"],
                entries=int(r["entries"]),
                pairings=int(r["pairings"]),
                active=bool(r["active"]),
            )
            for r in rows
        ]

    async def active_version(self) -> int | None:
        v = await self._read(lambda con: con.fetchval("SELECT version_id FROM eir_active"))
        return None if v is None else int(v)

    async def rollback(self, version_id: int) -> ListVersion:
        await self._pruned()
        pool = self._get_pool()
        try:
            async with pool.acquire(timeout=self.connect_timeout) as con, con.transaction():
                await con.execute("SELECT version_id FROM eir_active FOR UPDATE")
                r = await con.fetchrow("SELECT * FROM eir_versions WHERE id = $1", version_id)
                if r is None:
                    raise VersionNotFoundError(f"no list version {version_id}")
                await con.execute("UPDATE eir_active SET version_id = $1, base = $2", version_id, r["base"])
                await con.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{version_id} {self._token}")
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        _log.info("lists_rolled_back", version=version_id)
        self._fire(version_id)
        return ListVersion(
            id=int(r["id"]),
            created=r["created"],
            source=r["source"],
            entries=int(r["entries"]),
            pairings=int(r["pairings"]),
            active=True,
        )

    async def pairings(self) -> list[Pairing]:
        rows = await self._read(
            lambda con: con.fetch(
                f"SELECT kind, imsi, imei, reason FROM eir_pairings WHERE version_id = {_BASE} "
                "ORDER BY imsi, imei, kind"
            )
        )
        return [_pairing(r) for r in rows]

    async def export(self) -> AsyncIterator[ListEntry | Pairing]:
        pool = self._get_pool()
        try:
            async with (
                pool.acquire(timeout=self.connect_timeout) as con,
                con.transaction(isolation="repeatable_read", readonly=True),
            ):
                act = await con.fetchrow("SELECT version_id, coalesce(base, version_id) AS t FROM eir_active")
                if act is None or act["version_id"] is None:
                    return
                vid = act["t"]  # ranges and pairings: the partitions an overlay reads
                async for r in con.cursor(
                    f"SELECT kind, key, NULL::text AS last, status, imsi, reason FROM ({_EFFECTIVE}) x "
                    "ORDER BY key",
                    act["version_id"],
                    vid,
                    prefetch=5000,
                ):
                    yield _entry(r)
                async for r in con.cursor(
                    "SELECT kind, key, last, status, imsi, reason FROM eir_ranges "
                    "WHERE version_id = $1 ORDER BY lo, hi, kind",
                    vid,
                    prefetch=5000,
                ):
                    yield _entry(r)
                async for r in con.cursor(
                    "SELECT kind, imsi, imei, reason FROM eir_pairings WHERE version_id = $1 "
                    "ORDER BY imsi, imei, kind",
                    vid,
                    prefetch=5000,
                ):
                    yield _pairing(r)
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e

    # --- change notifications -----------------------------------------------------------------

    def _on_notify(self, _con: object, _pid: int, _channel: str, payload: object) -> None:
        vid, _sp, token = str(payload).partition(" ")
        if token == self._token or not vid.isdigit():
            return  # our own change: already reported
        self._fire(int(vid))

    async def _listen(self) -> None:
        backoff = 0.1
        first = True
        while not self._closed:
            con: asyncpg.Connection | None = None
            try:
                con = await asyncpg.connect(
                    self.url,
                    timeout=self.connect_timeout,
                    command_timeout=self.command_timeout,
                    server_settings={"application_name": "eir-listen"},
                )
                lost = asyncio.Event()
                con.add_termination_listener(lambda _c, ev=lost: ev.set())
                await con.add_listener(CHANNEL, self._on_notify)
                v = await con.fetchval("SELECT version_id FROM eir_active")
                v = None if v is None else int(v)
                if not first and v is not None:
                    # a flip may have been missed while disconnected (and a Redis that lost its
                    # data may even reuse an id): report the active version after every reconnect
                    self._fire(v)  # flipped while we were not listening
                first = False
                backoff = 0.1
                self._attempted.set()
                _log.debug("listening", channel=CHANNEL)
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), timeout=5.0)
                    except TimeoutError:
                        # a silent network loss shows no termination: probe it
                        await con.execute("SELECT 1", timeout=self.command_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # any failure: reconnect with backoff
                self._attempted.set()
                _log.debug("listen_reconnect", error=f"{type(e).__name__}: {e}")
            finally:
                if con is not None:
                    con.terminate()
            if self._closed:
                break
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


def _entry(r: asyncpg.Record) -> ListEntry:
    return ListEntry(
        kind=EntryKind(r["kind"]),
        key=r["key"],
        last=r["last"],
        status=Status(r["status"]),
        imsi=r["imsi"],
        reason=r["reason"],
    )


def _pairing(r: asyncpg.Record) -> Pairing:
    return Pairing(kind=PairingKind(r["kind"]), imsi=r["imsi"], imei=r["imei"], reason=r["reason"])
