"""Redis identity store (``redis://host:port/db[?prefix=eir]``), shared by several EIR instances.

Also the natural home of clone *observations* when instances share them (``store.observations_url``):
each instance's sightings are one sorted set by time, which the others read every share interval
(eir/sightings.py), so every instance counts the same IMSIs and origins.

Keyspace (``P`` = prefix, default ``eir``; one Redis database, not Redis Cluster — the Lua scripts
derive key names from the active version):

==========================  ===================================================================
``P:active``                id of the active version (absent before the first import)
``P:seq``                   version id counter (INCR)
``P:versions``              sorted set of complete versions (score = id)
``P:building``              sorted set of versions being written (score = start time)
``P:v:<id>:meta``           hash: created, source, entries, pairings — written last
``P:v:<id>:x:<b>``          hash: IMEI (14) / IMEISV (16) digits → packed entry, in bucket
                            ``b = int(digits) mod 1024`` (small keys: a delta import's
                            server-side COPY of each never holds Redis for long)
``P:v:<id>:r``              hash: range id (``kind:first:last``) → packed entry (ranges and TACs)
``P:v:<id>:s``              sorted set of elementary segments: member ``start:end:rangeid``,
                            score = start
``P:v:<id>:p``              hash: ``P:imsi:imei`` / ``L:imsi:imei`` → reason; ``L:imsi`` → 1
``P:v:<id>:o``              an *overlay* version's hash: IMEI / IMEISV digits → packed entry, or
                            ``""`` (removed); its meta has ``base``: the full version whose
                            ``x``/``r``/``s``/``p`` keys it reads under the overlay
``P:retained``              sorted set of full versions pruned from ``P:versions`` whose keys are
                            kept while a kept overlay version is built on them
``P:ref:<table>``            hash: reference table (``tac``: TAC → device, ``registration``:
                            IMEI → device), replaced by RENAME; ``P:refmeta:<table>`` its
                            rows, source, created
``P:obs:w:<writer>``        sorted set of the sightings one instance wrote: member
                            ``<imei>|i<imsi>`` / ``<imei>|o<origin>``, score = time (read by time;
                            one IMEI's by ``ZSCAN … MATCH <imei>|*``)
``P:obs:writers``           set of the writers that have such a key
``P:obs:t``                 the same for sightings of no named writer (and of earlier versions)
channel ``P:lists``         ``<id> <token>`` on every flip (token: the publishing store object)
==========================  ===================================================================

Ranges: at import, :func:`eir.store.ranges.flatten` cuts the IMEI space at every range/TAC boundary
and gives each elementary segment the narrowest range containing it (ties: the lower first IMEI).
A lookup is then ``ZREVRANGEBYSCORE s <imei> -inf LIMIT 0 1`` — the segment with the greatest start
<= IMEI — and a check that its end >= IMEI. This is exact for ANY overlap or nesting (not a bounded
candidate scan that could miss a wide range starting far below), costs O(log n), and there are at
most 2n-1 segments for n ranges. Scores are doubles: 14-digit IMEIs (< 2^53) are exact.

Import writes the new version's keys with pipelines (nothing reads them yet), then one Lua script
flips ``P:active``, registers the version and publishes — readers switch atomically, and the lookup
script reads ``P:active`` and the version's keys in one atomic step, so it never mixes versions. A
failed import deletes its half-written keys; a process killed mid-import leaves them in
``P:building``, which the next import's pruning removes after an hour. A delta import checks in the
flip script that the version it built on is still active (else :class:`StoreError`, retry).

A small delta of exact entries (an admin API change: one IMEI; at most :data:`OVERLAY_MAX` rows with
the overlay it builds on, no ranges, TACs or pairings) is an *overlay* instead of a copy of the
1,024 buckets: the new version's ``o`` hash holds the changed rows (the active overlay's rows copied
first, so overlays never chain), and its meta names the full version under it. A lookup reads the
overlay first (one more HGET, two with the meta's ``base``), the rest from the full version. A
delta that would make the overlay bigger, or holds ranges or pairings, folds it into a full copy.
Pruning keeps a full version's keys (in ``P:retained``) while a kept overlay builds on it.

Outages: bounded socket timeouts, one retry on a fresh connection (a pooled connection that died
with a server restart fails on first use), then :class:`StoreUnavailableError`; the same store
object works again as soon as the server is back. ``watch`` re-subscribes by itself and catches up
on a flip it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from eir.logging import get_logger
from eir.model import Status
from eir.store.base import (
    REFERENCE_TABLES,
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
from eir.store.ranges import bounds, flatten

_log = get_logger(component="store.redis")

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    TimeoutError,
)
_ANY_ERROR: tuple[type[BaseException], ...] = (*_UNAVAILABLE, RedisError)
BUCKETS = 1024  # exact entries are spread over this many hashes per version (IMEI mod)
FLUSH_ROWS = 50_000  # exact rows buffered before a pipelined write
BATCH = 1000  # fields per HSET / members per ZADD
PIPELINE = 50  # commands per pipeline round trip
STALE_BUILD = 3600.0  # a version still "building" after this long was abandoned by a dead process
OVERLAY_MAX = 4096
"""Rows an overlay version may hold (module docstring); a delta that would go over folds it."""

_SEP = "\x1f"
_NONE = "\x00"

_LOOKUP_LUA = """
local p = ARGV[1]
local v = redis.call('GET', p .. ':active')
local tl = redis.call('EXISTS', p .. ':ref:tac')
local rl = redis.call('EXISTS', p .. ':ref:registration')
local tv = false
local rv = false
if tl == 1 then tv = redis.call('HGET', p .. ':ref:tac', ARGV[7]) end
if rl == 1 then rv = redis.call('HGET', p .. ':ref:registration', ARGV[2]) end
local gl = redis.call('HEXISTS', p .. ':ref:golden', ARGV[2])
if not v then return {false, false, false, false, tl, tv, rl, rv, gl} end
local base = p .. ':v:' .. v
local full = redis.call('HGET', base .. ':meta', 'base')
local x = {false, false}
if full then
  local ov = base .. ':o'
  base = p .. ':v:' .. full
  x[1] = redis.call('HGET', ov, ARGV[2])
  if ARGV[3] ~= '' then x[2] = redis.call('HGET', ov, ARGV[3]) end
end
if x[1] == false then
  x[1] = redis.call('HGET', base .. ':x:' .. ARGV[5], ARGV[2])
elseif x[1] == '' then
  x[1] = false
end
if ARGV[3] ~= '' then
  if x[2] == false then
    x[2] = redis.call('HGET', base .. ':x:' .. ARGV[6], ARGV[3])
  elseif x[2] == '' then
    x[2] = false
  end
end
local r = false
local seg = redis.call('ZREVRANGEBYSCORE', base .. ':s', ARGV[4], '-inf', 'LIMIT', 0, 1)
if seg[1] then
  local s, e, rid = string.match(seg[1], '^(%d+):(%d+):(.*)$')
  if tonumber(e) >= tonumber(ARGV[4]) then r = redis.call('HGET', base .. ':r', rid) end
end
return {v, x[1], x[2], r, tl, tv, rl, rv, gl}
"""

_RULES_LUA = """
local p = ARGV[1]
local v = redis.call('GET', p .. ':active')
if not v then return {false, false, false} end
local full = redis.call('HGET', p .. ':v:' .. v .. ':meta', 'base')
if full then v = full end
return redis.call('HMGET', p .. ':v:' .. v .. ':p', 'P:' .. ARGV[2] .. ':' .. ARGV[3], 'L:' .. ARGV[2],
                  'L:' .. ARGV[2] .. ':' .. ARGV[3])
"""

# Clone sightings, per writer (module docstring): a sorted set per writer of "imei|<kind><value>"
# scored by the time last seen. Newest time wins (ZADD GT). ARGV: prefix, writer key, writer ('' =
# none), then one string of rows, each "<seen> <length> <imei>|<kind><value>" (length in octets): one
# argument per batch, not four per row, is what makes the client's side cheap, and one ZADD per 500
# rows the server's (bench/clone.py, issue 13). Earlier versions also kept a sorted set per IMEI
# (P:o:<imei>, for `eir check`): a new key per fresh IMEI cost the server ≈ 3.5 µs of its ≈ 5.8 µs
# per row; one IMEI's rows are now found by scanning (read_sightings, clear_sightings).
_WRITE_SIGHTINGS_LUA = """
local p, t, rows = ARGV[1], ARGV[2], ARGV[4]
if ARGV[3] ~= '' then redis.call('SADD', p .. ':obs:writers', ARGV[3]) end
local i, n, args, k = 1, #rows, {}, 0
while i <= n do
  local a = string.find(rows, ' ', i, true)
  local b = string.find(rows, ' ', a + 1, true)
  local e = b + tonumber(string.sub(rows, a + 1, b - 1))
  args[k + 1] = string.sub(rows, i, a - 1)
  args[k + 2] = string.sub(rows, b + 1, e)
  k = k + 2
  i = e + 1
  if k >= 1000 then
    redis.call('ZADD', t, 'GT', unpack(args, 1, k))
    k = 0
  end
end
if k > 0 then redis.call('ZADD', t, 'GT', unpack(args, 1, k)) end
return 0
"""

# KEYS: active, versions, building, meta. ARGV: id, expected base ('' = any), channel, payload
_FLAG_DUPLICATES_LUA = """
-- KEYS[1] the flags hash; KEYS[3..] a day set each; ARGV[1] ts, then per IMEI: imei, member of
-- its day set that witnessed its history. Flag only while the witness is still there (a clear
-- removes every member of the IMEI): the check and the insert in one step.
-- KEYS[2] the IMEI-ordered index of the flags (a sorted set, every score 0), the days from KEYS[3].
local n = 0
for i = 3, #KEYS do
  local imei, member = ARGV[2 * i - 4], ARGV[2 * i - 3]
  if redis.call('SISMEMBER', KEYS[i], member) == 1 and redis.call('HSETNX', KEYS[1], imei, ARGV[1]) == 1 then
    redis.call('ZADD', KEYS[2], 0, imei)
    n = n + 1
  end
end
return n
"""

_FLIP_LUA = """
local cur = redis.call('GET', KEYS[1])
if ARGV[2] ~= '' and cur ~= ARGV[2] then
  return redis.error_reply('EIRCONFLICT the active version changed during a delta import')
end
if redis.call('EXISTS', KEYS[4]) == 0 then return redis.error_reply('EIRMISSING version not built') end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return cur
"""

# KEYS: active, versions, meta. ARGV: id, channel, payload
_ROLLBACK_LUA = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false or redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.error_reply('EIRNOTFOUND no such list version')
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""


def _enc(v: str | None) -> str:
    return _NONE if v is None else v


def _dec(v: str) -> str | None:
    return None if v == _NONE else v


def pack(e: ListEntry) -> str:
    return _SEP.join((e.kind.value, e.key, _enc(e.last), e.status.value, _enc(e.imsi), _enc(e.reason)))


def unpack(s: str) -> ListEntry:
    kind, key, last, status, imsi, reason = s.split(_SEP, 5)
    return ListEntry(
        kind=EntryKind(kind),
        key=key,
        last=_dec(last),
        status=Status(status),
        imsi=_dec(imsi),
        reason=_dec(reason),
    )


def range_id(e: ListEntry) -> str:
    return f"{e.kind.value}:{e.key}:{e.last or ''}"


def _pairing_fields(pairs: Iterable[Pairing]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        tag = "P" if p.kind is PairingKind.PAIRING else "L"
        out[f"{tag}:{p.imsi}:{p.imei}"] = _enc(p.reason)
        if tag == "L":
            out[f"L:{p.imsi}"] = "1"
    return out


def _parse_pairings(fields: dict[str, str]) -> dict[tuple[str, str, str], Pairing]:
    out: dict[tuple[str, str, str], Pairing] = {}
    for f, reason in fields.items():
        parts = f.split(":")
        if len(parts) != 3:
            continue  # an ``L:imsi`` lock marker
        kind = PairingKind.PAIRING if parts[0] == "P" else PairingKind.LOCK
        out[(kind.value, parts[1], parts[2])] = Pairing(
            kind=kind, imsi=parts[1], imei=parts[2], reason=_dec(reason)
        )
    return out


class RedisStore(PushedChanges, IdentityStore):
    """redis.asyncio client; see the module docstring for the keyspace and guarantees."""

    _watch_log = _log

    name = "redis"
    cache_lookups = True
    needs_task = True
    """Tells the checker to cache answers per active version (``watch`` drops the cache)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        keep_versions: int = 5,
        connect_timeout: float = 2.0,
        command_timeout: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.prefix = prefix or query.pop("prefix", None) or "eir"
        self.url = urlunsplit(parts._replace(query=urlencode(query)))
        self.keep_versions = keep_versions
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.channel = f"{self.prefix}:lists"
        self._r: aioredis.Redis | None = None
        self._callbacks: list[Callable[[int], None]] = []
        self._listener: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()
        self._closed = False
        # Our own changes are reported to our callbacks at once (before import/rollback returns);
        # the published message carries this token so that its echo is not reported twice.
        self._token = uuid.uuid4().hex
        self._scripts: dict[str, Any] = {}
        self._witness: dict[str, tuple[int, str]] = {}
        """One ``(day, "imei|imsi")`` history row of each IMEI the last classification found."""
        self.last_import_changes = 0
        """Rows (hash fields) the last import wrote: an overlay its rows, a full version all of them."""

    # --- connection handling ------------------------------------------------------------------
    async def open(self) -> None:
        self._closed = False
        self._r = aioredis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.command_timeout,
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            health_check_interval=0,
        )
        for name, src in (
            ("lookup", _LOOKUP_LUA),
            ("rules", _RULES_LUA),
            ("write_sightings", _WRITE_SIGHTINGS_LUA),
            ("flip", _FLIP_LUA),
            ("rollback", _ROLLBACK_LUA),
            ("flag_duplicates", _FLAG_DUPLICATES_LUA),
        ):
            self._scripts[name] = self._r.register_script(src)
        try:
            await self._r.ping()
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e

    async def close(self) -> None:
        self._closed = True
        self._callbacks.clear()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
            self._listener = None
        r, self._r = self._r, None
        if r is not None:
            with contextlib.suppress(*_UNAVAILABLE, RedisError):
                await r.aclose()

    def _unavailable(self, e: BaseException) -> StoreUnavailableError:
        # (counted in eir_store_errors by the checker, which sees every failure)
        return StoreUnavailableError(f"Redis unavailable: {type(e).__name__}: {e}")

    @property
    def redis(self) -> Any:
        """The client (typed Any: with ``decode_responses`` replies are str, which the stubs
        cannot express)."""
        if self._r is None:
            raise StoreError("RedisStore is not open")
        return self._r

    def _k(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._scripts[name](keys=keys, args=args, client=self.redis)
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        except ResponseError as e:
            raise StoreError(str(e)) from e

    # --- hot path -----------------------------------------------------------------------------
    async def lookup(self, imei: str, imeisv: str | None = None) -> Lookup:
        imei14 = imei[:14]
        if not imei14.isdigit():
            raise StoreError(f"not an IMEI: {imei!r}")
        n = int(imei14)
        sv = imeisv if imeisv is not None and imeisv.isdigit() else None
        args: list[Any] = [
            self.prefix,
            imei14,
            sv or "",
            n,
            n % BUCKETS,
            int(sv) % BUCKETS if sv else 0,
            imei14[:8],
        ]
        _v, ie, sv_e, rng, tl, tv, rl, rv, gl = await self._script("lookup", [], args)
        if ie is None and sv_e is None and rng is None and not tl and not rl and not gl:
            return _NO_MATCH
        return Lookup(
            imei=unpack(ie) if ie else None,
            imeisv=unpack(sv_e) if sv_e else None,
            range=unpack(rng) if rng else None,
            tac_table=bool(tl),
            device=tv or None,
            registration_list=bool(rl),
            registration=rv or None,
            golden=bool(gl),
        )

    # --- reference tables -----------------------------------------------------------------------
    async def import_reference(
        self, table: str, rows: Iterable[tuple[str, str]], *, source: str
    ) -> ReferenceTable:
        """Written under a temporary key, then swapped in with RENAME in one MULTI (readers see
        the old table or the new one, never half of it)."""
        r = self.redis
        key, tmp, meta_key = (
            self._k("ref", table),
            self._k("ref", table, "new", self._token),
            self._k("refmeta", table),
        )
        created = time.time()
        n = 0
        try:
            await r.delete(tmp)
            batch: dict[str, str] = {}
            for k, v in rows:
                batch[k] = v
                if len(batch) >= 10_000:
                    await r.hset(tmp, mapping=batch)
                    n += len(batch)
                    batch = {}
            if batch:
                await r.hset(tmp, mapping=batch)
                n += len(batch)
            n = int(await r.hlen(tmp)) if n else 0
            async with r.pipeline(transaction=True) as pipe:
                if n:
                    pipe.rename(tmp, key)
                    pipe.hset(meta_key, mapping={"rows": n, "source": source, "created": repr(created)})
                else:
                    pipe.delete(key, meta_key)
                await pipe.execute()
            # the watchers of every instance drop their cached answers (base.import_reference)
            vid = await r.get(self._k("active"))
            if vid is not None:
                await r.publish(self.channel, f"{vid} {self._token}")
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        except RedisError as e:
            with contextlib.suppress(*_UNAVAILABLE, RedisError):
                await r.delete(tmp)
            raise StoreError(f"Redis import_reference: {e}") from e
        if vid is not None:
            self._fire(int(vid))
        return ReferenceTable(name=table, rows=n, source=source, created=created)

    async def reference_tables(self) -> list[ReferenceTable]:
        out = []
        try:
            for t in REFERENCE_TABLES:
                m = await self.redis.hgetall(self._k("refmeta", t))
                if m and int(m.get("rows", 0)):
                    out.append(
                        ReferenceTable(
                            name=t,
                            rows=int(m["rows"]),
                            source=m.get("source", ""),
                            created=float(m["created"]),
                        )
                    )
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        return out

    async def reference(self, table: str, key: str) -> str | None:
        try:
            v = await self.redis.hget(self._k("ref", table), key)
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        return None if v is None else str(v)

    async def imsi_rules(self, imsi: str, imei: str) -> ImsiRules:
        imei14 = imei[:14]
        paired, locked, allows = await self._script("rules", [], [self.prefix, imsi, imei14])
        if paired is None and locked is None:
            return _NO_RULES
        pairing = (
            Pairing(kind=PairingKind.PAIRING, imsi=imsi, imei=imei14, reason=_dec(paired))
            if paired is not None
            else None
        )
        return ImsiRules(pairing=pairing, locked=locked is not None, lock_allows=allows is not None)

    def _writer_key(self, writer: str) -> str:
        return self._k("obs", "w", writer) if writer else self._k("obs", "t")

    async def _writer_keys(self, exclude: str | None = None) -> list[str]:
        """Every writer's sightings key (the unnamed one included), but ``exclude``'s."""
        try:
            writers = await self.redis.smembers(self._k("obs", "writers"))
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        return [self._writer_key(w) for w in ["", *sorted(writers)] if w != exclude or exclude is None]

    async def write_sightings(self, rows: Sequence[Sighting], *, writer: str = "") -> None:
        if not rows:
            return
        parts = []
        for imei, kind, value, seen in rows:
            m = f"{imei}|{kind}{value}"
            n = len(m) if m.isascii() else len(m.encode())
            parts.append(f"{float(seen)!r} {n} {m}")  # repr: no precision lost on the way
        await self._script(
            "write_sightings", [], [self.prefix, self._writer_key(writer), writer, "".join(parts)]
        )

    async def read_sightings(
        self,
        since: float,
        *,
        imei: str | None = None,
        limit: int | None = None,
        exclude_writer: str | None = None,
    ) -> list[Sighting]:
        lo = repr(float(since))
        out: list[Sighting] = []
        keys = await self._writer_keys(exclude_writer)
        if imei is not None:
            mine: dict[str, float] = {}
            for member, score in await self._scan_imei(keys, imei):
                if score >= since and mine.get(member, -1.0) < score:
                    mine[member] = score
            got = sorted(mine.items(), key=lambda kv: kv[1], reverse=True)[:limit]
            return [(imei, m[len(imei) + 1], m[len(imei) + 2 :], float(score)) for m, score in got]
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zrevrangebyscore(
                        key, "+inf", lo, start=0 if limit else None, num=limit, withscores=True
                    )
                results = await pipe.execute()
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        newest: dict[str, float] = {}
        for got in results:
            for member, score in got:
                if newest.get(member, -1.0) < score:
                    newest[member] = score
        for member, score in sorted(newest.items(), key=lambda kv: kv[1], reverse=True)[:limit]:
            i, _, kv = member.partition("|")
            out.append((i, kv[0], kv[1:], float(score)))
        return out

    async def prune_sightings(self, before: float) -> None:
        await self._cut(f"({float(before)!r}")

    async def _cut(self, upto: str) -> int:
        """Remove every writer's rows scored up to ``upto`` (a ZRANGEBYSCORE bound), in chunks of
        5,000 so that no one command holds the server long; how many went."""
        gone = 0
        try:
            for key in await self._writer_keys():
                while True:
                    old = await self.redis.zrangebyscore(key, "-inf", upto, start=0, num=5000)
                    if not old:
                        break
                    gone += int(await self.redis.zrem(key, *old))
                    if len(old) < 5000:
                        break
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        await self._forget_empty_writers()
        return gone

    async def _scan_imei(self, keys: list[str], imei: str) -> list[tuple[str, float]]:
        """One IMEI's members (``imei|<kind><value>``) and scores in ``keys``: a ZSCAN of each, in
        steps that keep the server free for other commands (an operator's clear, ``eir check``)."""
        pattern = _glob_escape(imei) + "|*"
        out: list[tuple[str, float]] = []
        try:
            for key in keys:
                async for member, score in self.redis.zscan_iter(key, match=pattern, count=5000):
                    out.append((member, float(score)))
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        return out

    async def _forget_empty_writers(self) -> None:
        try:
            for w in await self.redis.smembers(self._k("obs", "writers")):
                if not await self.redis.exists(self._writer_key(w)):
                    await self.redis.srem(self._k("obs", "writers"), w)
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e

    async def clear_sightings(self, imei: str) -> int:
        """The IMEI's rows in every writer's set (found by scanning), and the per-IMEI set earlier
        versions kept."""
        keys = await self._writer_keys()
        gone = 0
        try:
            for key in keys:
                members = [
                    m
                    async for m, _ in self.redis.zscan_iter(key, match=_glob_escape(imei) + "|*", count=5000)
                ]
                for i in range(0, len(members), 5000):
                    gone += int(await self.redis.zrem(key, *members[i : i + 5000]))
            await self.redis.delete(self._k("o", imei))
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        return gone

    async def count_sightings(self) -> int:
        keys = await self._writer_keys()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zcard(key)
                return int(sum(await pipe.execute()))
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e

    async def evict_sightings(self, keep: int) -> int:
        """The oldest rows over all writers: the time of the ``excess``-th oldest is found from
        each writer's oldest rows, then every writer's rows up to it go (ties may take a few
        more)."""
        keys = await self._writer_keys()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zcard(key)
                cards = [int(c) for c in await pipe.execute()]
                excess = sum(cards) - max(0, keep)
                if excess <= 0:
                    return 0
                for key in keys:
                    pipe.zrange(key, 0, excess - 1, withscores=True)
                oldest = sorted(score for got in await pipe.execute() for _m, score in got)
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        return await self._cut(repr(float(oldest[excess - 1])))

    # --- first sightings and the per-day history (eir/first_seen.py, eir/duplicates.py) --------
    # first sightings: one sorted set (score = time; ZADD LT keeps the earliest); the history: a
    # set of "imei|imsi" per day plus the set of days; the flags: a hash imei → time (HSETNX).
    async def _pipe(self, build: Callable[[Any], object]) -> list[Any]:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                build(pipe)
                return list(await pipe.execute())
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e

    async def write_first_seen(self, rows: Sequence[tuple[str, float]]) -> None:
        first: dict[str, float] = {}
        for imei, ts in rows:
            first[imei] = min(ts, first.get(imei, ts))
        if first:
            await self._pipe(lambda p: p.zadd(self._k("first_seen"), first, lt=True))

    async def read_first_seen(self, limit: int) -> list[tuple[str, float]]:
        if limit <= 0:
            return []
        (got,) = await self._pipe(lambda p: p.zrange(self._k("first_seen"), -limit, -1, withscores=True))
        return [(m, float(sc)) for m, sc in got]

    async def write_daily(self, rows: Sequence[tuple[str, int, str]]) -> None:
        by_day: dict[int, set[str]] = {}
        for imei, day, imsi in rows:
            by_day.setdefault(day, set()).add(f"{imei}|{imsi}")
        if not by_day:
            return

        def build(p: Any) -> None:
            for day, members in by_day.items():
                p.sadd(self._k("daily", day), *members)
            p.sadd(self._k("days"), *by_day)

        await self._pipe(build)

    async def _days(self) -> list[int]:
        (days,) = await self._pipe(lambda p: p.smembers(self._k("days")))
        return sorted(int(d) for d in days)

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
        from eir.duplicates import duplicate_mk1

        span = max(period_days, daily_avg_days)
        days = [d for d in await self._days() if today - span < d <= today]
        sets = await self._pipe(lambda p: [p.smembers(self._k("daily", d)) for d in days])
        history = (
            (imei, day, imsi)
            for day, members in zip(days, sets, strict=True)
            for imei, _, imsi in (m.partition("|") for m in members)
        )
        found = duplicate_mk1(
            history,
            today=today,
            threshold=threshold,
            period_days=period_days,
            daily_avg=daily_avg,
            daily_avg_days=daily_avg_days,
            min_seen_days=min_seen_days,
        )
        # one history row of each found IMEI: flag_duplicates flags it only while that row is there
        witness: dict[str, tuple[int, str]] = {}
        for day, members in zip(days, sets, strict=True):
            for m in members:
                imei = m.partition("|")[0]
                if imei in found and imei not in witness:
                    witness[imei] = (day, m)
        self._witness = witness
        return found

    async def flag_duplicates(self, imeis: Sequence[str], ts: float) -> None:
        """The base class's contract: only an IMEI whose history row (the last classification's
        witness, else one found by a scan) is still there, checked and flagged in one script."""
        keys, args = [self._k("duplicates"), self._k("duplicates", "index")], [repr(float(ts))]
        known = self._witness
        for imei in dict.fromkeys(imeis):
            w = known.get(imei)
            if w is None:
                got = await self._imei_members(imei, 1)
                if not got:
                    continue
                w = got[0]
            keys.append(self._k("daily", w[0]))
            args += [imei, w[1]]
        if len(keys) > 2:
            await self._script("flag_duplicates", keys, args)

    async def duplicates(self) -> dict[str, float]:
        (got,) = await self._pipe(lambda p: p.hgetall(self._k("duplicates")))
        return {k: float(v) for k, v in got.items()}

    async def duplicates_page(self, limit: int, offset: int) -> tuple[list[tuple[str, float]], int]:
        """From the IMEI-ordered index (a sorted set beside the flags hash: ZRANGE by rank); flags
        written before the index existed are indexed once, when the counts differ."""
        flags, index = self._k("duplicates"), self._k("duplicates", "index")
        total, indexed = await self._pipe(lambda p: [p.hlen(flags), p.zcard(index)])
        if indexed != total:  # rebuilt in one pass over the flags, then in step again
            (keys,) = await self._pipe(lambda p: p.hkeys(flags))

            def rebuild(p: Any) -> None:
                p.delete(index)
                if keys:
                    p.zadd(index, dict.fromkeys(keys, 0))

            await self._pipe(rebuild)
        if limit <= 0:
            return [], int(total)
        (imeis,) = await self._pipe(lambda p: p.zrange(index, offset, offset + limit - 1))
        if not imeis:
            return [], int(total)
        (got,) = await self._pipe(lambda p: p.hmget(flags, imeis))
        return [(i, float(v)) for i, v in zip(imeis, got, strict=True) if v is not None], int(total)

    async def duplicate_flag(self, imei: str) -> float | None:
        (v,) = await self._pipe(lambda p: p.hget(self._k("duplicates"), imei))
        return None if v is None else float(v)

    async def _imei_members(self, imei: str, limit: int) -> list[tuple[int, str]]:
        """``(day, "imei|imsi")`` of one IMEI: an SSCAN with MATCH over each day's set (the
        history has no per-IMEI index; an operator's call, not the hot path), at most ``limit``."""
        out: list[tuple[int, str]] = []
        if limit <= 0:
            return out
        pattern = f"{_glob_escape(imei)}|*"
        try:
            for day in await self._days():
                async for m in self.redis.sscan_iter(self._k("daily", day), match=pattern, count=1000):
                    out.append((day, m))
                    if len(out) >= limit:
                        return out
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        return out

    async def daily_history(self, imei: str, limit: int = 10_000) -> list[tuple[int, str]]:
        got = await self._imei_members(imei, max(limit, 0))
        return sorted((day, m.partition("|")[2]) for day, m in got)

    async def clear_duplicate(self, imei: str) -> tuple[bool, int]:
        mine = await self._imei_members(imei, 1 << 31)
        by_day: dict[int, list[str]] = {}
        for day, m in mine:
            by_day.setdefault(day, []).append(m)

        def build(p: Any) -> None:
            p.hdel(self._k("duplicates"), imei)
            p.zrem(self._k("duplicates", "index"), imei)
            for day, members in by_day.items():
                p.srem(self._k("daily", day), *members)

        got = await self._pipe(build)
        return bool(got[0]), len(mine)

    async def prune_daily(self, before_day: int, max_rows: int) -> int:
        days = await self._days()
        sizes = dict(
            zip(days, await self._pipe(lambda p: [p.scard(self._k("daily", d)) for d in days]), strict=True)
        )
        drop = [d for d in days if d <= before_day]
        left = sum(n for d, n in sizes.items() if d > before_day)
        for d in days:  # whole days, oldest first
            if max_rows <= 0 or left <= max_rows:
                break
            if d > before_day:
                drop.append(d)
                left -= sizes[d]
        if not drop:
            return 0

        def build(p: Any) -> None:
            p.delete(*(self._k("daily", d) for d in drop))
            p.srem(self._k("days"), *drop)

        await self._pipe(build)
        return sum(int(sizes[d]) for d in drop)

    # --- lists --------------------------------------------------------------------------------
    def _vkeys(self, vid: int | str) -> list[str]:
        """meta, r, s, p, then the BUCKETS exact-entry hashes, then the overlay."""
        return [
            *(self._k("v", vid, s) for s in ("meta", "r", "s", "p")),
            *self._xkeys(vid),
            self._k("v", vid, "o"),
        ]

    async def _full_of(self, vid: int | str) -> str | None:
        """The full version under ``vid`` if it is an overlay, else None."""
        b = await self.redis.hget(self._k("v", vid, "meta"), "base")
        return None if b is None else str(b)

    def _xkeys(self, vid: int | str) -> list[str]:
        return [self._k("v", vid, "x", b) for b in range(BUCKETS)]

    async def import_version(
        self,
        entries: Iterable[ListEntry],
        pairings: Iterable[Pairing],
        *,
        source: str,
        delta: bool = False,
        removals: Iterable[ListEntry | Pairing] = (),
    ) -> ListVersion:
        r = self.redis
        try:
            vid = int(await r.incr(self._k("seq")))
            await r.zadd(self._k("building"), {str(vid): time.time()})
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        try:
            meta = await self._build(vid, entries, pairings, source, delta, removals)
        except BaseException:
            with contextlib.suppress(*_UNAVAILABLE, RedisError):
                await r.unlink(*self._vkeys(vid))
                await r.zrem(self._k("building"), str(vid))
            raise
        self._fire(meta.id)
        await self._prune_versions()
        return meta

    async def _build(
        self,
        vid: int,
        entries: Iterable[ListEntry],
        pairings: Iterable[Pairing],
        source: str,
        delta: bool,
        removals: Iterable[ListEntry | Pairing],
    ) -> ListVersion:
        r = self.redis
        kmeta, kr, ks, kp = (self._k("v", vid, t) for t in ("meta", "r", "s", "p"))
        kx: list[str] = []  # the bucket keys: made after the overlay decision (an overlay has none)
        try:
            pipe = r.pipeline(transaction=False)
            base = await r.get(self._k("active")) if delta else None
            ranges: dict[str, ListEntry] = {}
            pairs: dict[tuple[str, str, str], Pairing] = {}
            if base is not None:
                full = await self._full_of(base)
                entries, pairings, removals, small = peek_small_delta(
                    entries, pairings, removals, OVERLAY_MAX
                )
                if small is not None:
                    n_over = int(await r.hlen(self._k("v", base, "o"))) if full is not None else 0
                    if n_over + len(small[0]) + len(small[1]) <= OVERLAY_MAX:
                        return await self._build_overlay(vid, base, full, small[0], small[1], source)
                # server-side copies of the exact-entry buckets (each small, so no COPY holds Redis
                # for long) of the full version; ranges and pairings are rebuilt here
                kx = self._xkeys(vid)
                src_v = base if full is None else full
                _ob, orr, _os, op = self._vkeys(src_v)[:4]
                for i in range(0, BUCKETS, PIPELINE):
                    for src, dst in zip(
                        self._xkeys(src_v)[i : i + PIPELINE], kx[i : i + PIPELINE], strict=True
                    ):
                        pipe.copy(src, dst)
                    await pipe.execute()
                if full is not None:  # the active version is an overlay: fold it into the copy
                    for k, packed in (await r.hgetall(self._k("v", base, "o"))).items():
                        b = int(k) % BUCKETS
                        if packed:
                            pipe.hset(kx[b], k, packed)
                        else:
                            pipe.hdel(kx[b], k)
                    await pipe.execute()
                ranges = {k: unpack(v) for k, v in (await r.hgetall(orr)).items()}
                pairs = _parse_pairings(await r.hgetall(op))
                rm_exact: dict[int, list[str]] = {}
                for x in removals:
                    if isinstance(x, Pairing):
                        pairs.pop((x.kind.value, x.imsi, x.imei), None)
                    elif x.kind is EntryKind.IMEI or x.kind is EntryKind.IMEISV:
                        if x.key.isdigit():  # anything else is on no list
                            rm_exact.setdefault(int(x.key) % BUCKETS, []).append(x.key)
                    else:
                        ranges.pop(range_id(x), None)
                for b, keys in rm_exact.items():
                    for i in range(0, len(keys), BATCH):
                        pipe.hdel(kx[b], *keys[i : i + BATCH])
                await pipe.execute()

            kx = kx or self._xkeys(vid)
            # additions: exact rows to their bucket hashes in pipelined batches; HSET upserts, so
            # the last duplicate wins
            pending: dict[int, dict[str, str]] = {}
            npending = 0
            for e in entries:
                check_entry(e)
                if e.kind is EntryKind.IMEI or e.kind is EntryKind.IMEISV:
                    b = int(e.key) % BUCKETS
                    m = pending.get(b)
                    if m is None:
                        m = pending[b] = {}
                    m[e.key] = pack(e)
                    npending += 1
                    if npending >= FLUSH_ROWS:
                        for b, m in pending.items():
                            pipe.hset(kx[b], mapping=m)
                        await pipe.execute()
                        pending.clear()
                        npending = 0
                else:
                    rid = range_id(e)
                    ranges.pop(rid, None)  # a replaced range counts as the later row
                    ranges[rid] = e
            for b, m in pending.items():
                pipe.hset(kx[b], mapping=m)
            for p in pairings:
                check_pairing(p)
                key = (p.kind.value, p.imsi, p.imei)
                pairs.pop(key, None)
                pairs[key] = p
            await pipe.execute()

            items = list(ranges.items())
            for i in range(0, len(items), BATCH):
                pipe.hset(kr, mapping={rid: pack(e) for rid, e in items[i : i + BATCH]})
            segments = flatten((*bounds(e), rid) for rid, e in items)
            for i in range(0, len(segments), BATCH):
                pipe.zadd(ks, {f"{s}:{e}:{rid}": s for s, e, rid in segments[i : i + BATCH]})
                if (i // BATCH) % PIPELINE == PIPELINE - 1:
                    await pipe.execute()
            pf = _pairing_fields(pairs.values())
            pitems = list(pf.items())
            for i in range(0, len(pitems), BATCH):
                pipe.hset(kp, mapping=dict(pitems[i : i + BATCH]))
            await pipe.execute()

            for k in kx:
                pipe.hlen(k)
            n_entries = sum(map(int, await pipe.execute())) + len(ranges)
            self.last_import_changes = n_entries + len(pf) + 1  # every row of the copy, and the meta
            created = await self._activate(
                r, vid, base or "", kmeta, {"source": source, "entries": n_entries, "pairings": len(pairs)}
            )
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        except ResponseError as e:
            raise StoreError(f"import failed: {e}") from e
        _log.info(
            "lists_imported", version=vid, entries=n_entries, pairings=len(pairs), source=source, delta=delta
        )
        return ListVersion(
            id=vid, created=created, source=source, entries=n_entries, pairings=len(pairs), active=True
        )

    async def _activate(self, r: Any, vid: int, base: str, kmeta: str, meta: dict[str, Any]) -> float:
        """Write a built version's meta (with its creation time, returned) and make it the active
        one (the flip script: refused when the active version is no longer ``base``, '' = any)."""
        created = time.time()
        await r.hset(kmeta, mapping={"created": repr(created), **meta})
        await self._scripts["flip"](
            keys=[self._k("active"), self._k("versions"), self._k("building"), kmeta],
            args=[vid, base, self.channel, f"{vid} {self._token}"],
            client=r,
        )
        return created

    async def _build_overlay(
        self,
        vid: int,
        base: str,
        full: str | None,
        adds: list[ListEntry],
        rms: list[ListEntry],
        source: str,
    ) -> ListVersion:
        """The new version ``vid`` as an overlay on the full version under the active ``base``
        (module docstring): writes the changed rows (and copies ``base``'s own overlay), not the list."""
        r = self.redis
        under = base if full is None else full
        ko, kmeta = self._k("v", vid, "o"), self._k("v", vid, "meta")
        changed: dict[str, str] = {}
        for x in rms:  # removals first: an addition of the same key wins (as on the full path)
            if x.key.isdigit():
                changed[x.key] = ""
        for e in adds:
            check_entry(e)
            changed[e.key] = pack(e)
        keys = list(changed)
        pipe = r.pipeline(transaction=False)
        pipe.hgetall(self._k("v", base, "meta"))
        for k in keys:  # what the active version answers now for each changed key
            pipe.hget(self._k("v", base, "o"), k)
            pipe.hget(self._k("v", under, "x", int(k) % BUCKETS), k)
        got = await pipe.execute()
        bmeta: dict[str, str] = got[0]
        before: set[str] = set()
        for i, k in enumerate(keys):
            o, x = got[1 + 2 * i], got[2 + 2 * i]
            if bool(o) if o is not None else x is not None:
                before.add(k)
        if full is None:  # removing what is not there: nothing to hide
            changed = {k: v for k, v in changed.items() if v or k in before}
        n_entries = int(bmeta.get("entries", 0)) + sum(1 for v in changed.values() if v) - len(before)
        n_over = 0
        if full is not None:
            n_over = int(await r.hlen(self._k("v", base, "o")))
            await r.copy(self._k("v", base, "o"), ko)
        if changed:
            await r.hset(ko, mapping=changed)
        npairs = int(bmeta.get("pairings", 0))
        created = await self._activate(
            r, vid, base, kmeta, {"source": source, "entries": n_entries, "pairings": npairs, "base": under}
        )
        self.last_import_changes = n_over + len(changed) + 1  # the overlay's rows and the meta
        _log.info(
            "lists_imported",
            version=vid,
            entries=n_entries,
            pairings=npairs,
            source=source,
            delta=True,
            overlay=True,
        )
        return ListVersion(
            id=vid, created=created, source=source, entries=n_entries, pairings=npairs, active=True
        )

    async def _prune_versions(self) -> None:
        """Delete versions beyond the newest ``keep_versions`` (never the active one) and builds
        abandoned by a dead process. Best effort: what fails now goes next time."""
        r = self.redis
        try:
            active = await r.get(self._k("active"))
            ids = await r.zrevrange(self._k("versions"), 0, -1)
            old = [v for v in ids[self.keep_versions :] if v != active]
            stale = await r.zrangebyscore(self._k("building"), "-inf", time.time() - STALE_BUILD)
            kept = {*ids[: self.keep_versions], *([active] if active is not None else [])}
            # full versions a kept overlay builds on keep their keys (module docstring)
            needed = {b for b in [await self._full_of(v) for v in kept] if b is not None}
            retained = set(await r.zrange(self._k("retained"), 0, -1))
            for v in old:
                if v in needed:
                    await r.zadd(self._k("retained"), {v: int(v)})
                elif await self._full_of(v) is not None:  # an overlay: its meta and overlay only
                    await r.unlink(self._k("v", v, "meta"), self._k("v", v, "o"))
                else:
                    await r.unlink(*self._vkeys(v))
            for v in retained - needed - kept:
                await r.unlink(*self._vkeys(v))
                await r.zrem(self._k("retained"), v)
            for v in stale:
                await r.unlink(*self._vkeys(v))
            if old:
                await r.zrem(self._k("versions"), *old)
            if stale:
                await r.zrem(self._k("building"), *stale)
        except _ANY_ERROR as e:
            _log.warning("prune_versions_failed", error=str(e))

    async def versions(self) -> list[ListVersion]:
        r = self.redis
        try:
            active = await r.get(self._k("active"))
            ids = await r.zrevrange(self._k("versions"), 0, -1)
            pipe = r.pipeline(transaction=False)
            for v in ids:
                pipe.hgetall(self._k("v", v, "meta"))
            metas = await pipe.execute() if ids else []
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        return [
            ListVersion(
                id=int(v),
                created=float(m["created"]),
                source=m["source"],
                entries=int(m["entries"]),
                pairings=int(m["pairings"]),
                active=v == active,
            )
            for v, m in zip(ids, metas, strict=True)
            if m
        ]

    async def active_version(self) -> int | None:
        try:
            v = await self.redis.get(self._k("active"))
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        return None if v is None else int(v)

    async def rollback(self, version_id: int) -> ListVersion:
        kmeta = self._k("v", version_id, "meta")
        try:
            await self._script(
                "rollback",
                [self._k("active"), self._k("versions"), kmeta],
                [version_id, self.channel, f"{version_id} {self._token}"],
            )
        except StoreError as e:
            if "EIRNOTFOUND" in str(e):
                raise VersionNotFoundError(f"no list version {version_id}") from None
            raise
        for v in await self.versions():
            if v.id == version_id:
                _log.info("lists_rolled_back", version=version_id)
                self._fire(version_id)
                return v
        raise VersionNotFoundError(f"no list version {version_id}")

    async def pairings(self) -> list[Pairing]:
        v = await self.active_version()
        if v is None:
            return []
        try:
            full = await self._full_of(v)
            fields = await self.redis.hgetall(self._k("v", v if full is None else full, "p"))
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e
        return list(_parse_pairings(fields).values())

    async def export(self) -> AsyncIterator[ListEntry | Pairing]:
        v = await self.active_version()
        if v is None:
            return
        r = self.redis
        try:
            full = await self._full_of(v)
            over: dict[str, str] = {}
            if full is not None:  # an overlay: its rows hide the full version's
                over = await r.hgetall(self._k("v", v, "o"))
                v = int(full)
            for key in self._xkeys(v):
                async for f, packed in r.hscan_iter(key, count=5000):
                    if f not in over:
                        yield unpack(packed)
            for packed in over.values():
                if packed:
                    yield unpack(packed)
            async for _f, packed in r.hscan_iter(self._k("v", v, "r"), count=5000):
                yield unpack(packed)
            for p in await self.pairings():
                yield p
        except _UNAVAILABLE as e:
            raise self._unavailable(e) from e

    # --- change notifications -----------------------------------------------------------------

    async def _listen(self) -> None:
        backoff = 0.1
        first = True
        while not self._closed:
            ps = None
            try:
                ps = self.redis.pubsub(ignore_subscribe_messages=True)
                await ps.subscribe(self.channel)
                raw = await self.redis.get(self._k("active"))
                v = None if raw is None else int(raw)
                if not first and v is not None:
                    # a flip may have been missed while disconnected (and a Redis that lost its
                    # data may even reuse an id): report the active version after every reconnect
                    self._fire(v)  # flipped while we were not subscribed
                first = False
                backoff = 0.1
                self._attempted.set()
                idle = 0.0
                while not self._closed:
                    msg = await ps.get_message(timeout=1.0)
                    if msg is None:
                        idle += 1.0
                        if idle >= 5.0:  # a silent connection loss shows nothing: probe it
                            await ps.ping()
                            idle = 0.0
                        continue
                    idle = 0.0
                    if msg.get("type") == "message":
                        vid, _sp, token = str(msg["data"]).partition(" ")
                        if token != self._token and vid.isdigit():
                            self._fire(int(vid))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # any failure: re-subscribe with backoff
                self._attempted.set()
                _log.debug("subscribe_retry", error=f"{type(e).__name__}: {e}")
            finally:
                if ps is not None:
                    with contextlib.suppress(Exception):
                        await ps.aclose()
            if self._closed:
                break
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


_NO_MATCH = Lookup()
_NO_RULES = ImsiRules()


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern (SCAN MATCH)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
