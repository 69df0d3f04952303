"""The active SQLite list version's keys in memory: "not listed" without a statement.

In a population load most checks carry an IMEI the EIR has not seen, and nearly all of those are on
no list. The SQLite store learnt that from one statement per IMEI: 9-12 µs through the sqlite3
module (its per-statement cost, not the seek), the largest part of a fresh check's cost in the
store. This index answers it from memory, in about a fifth of that (the look-up's int parsing,
hashing and calls):

* **Exact keys** (an IMEI, or ``SV_OFFSET + IMEISV``: the keys of ``x_<t>`` and of an overlay's
  ``d_<v>``, its removals included) up to :data:`SET_MAX_KEYS` as a set of ints, exact and the
  cheapest test; above it, as a Bloom filter: a bitmap of at least :data:`BITS_PER_KEY`
  bits a key (2-4 bytes, as its size is a power of two: 32 MB for 10M entries, against ~70 B a key
  for a set) in which each key sets two bits chosen by multiplicative hashes. A clear bit: no
  row has the key. Both set: the key, or other keys' bits (about 1.4 % of unlisted keys at 16 bits a
  key, fewer with more; 0.6-0.8 % measured) — the store asks SQLite, which answers exactly. The
  filter only ever sends a key to SQLite that it could have answered alone; it never says "not
  listed" of a listed key, so a superset of keys (an overlay's removals) is safe.
* **The flattened range segments** (``s_<t>``: TACs and IMEI ranges, at most 2n-1 for n ranges,
  :mod:`eir.store.ranges`): their bounds (16 B a segment) and, up to :data:`SEGMENT_ROWS_MAX`, their
  rows: the narrowest range holding an IMEI is a ``bisect`` and its entry is built from memory.

The tables of a version are immutable once its import committed, so an index built from them is
right for as long as that version is active. It is built in a thread of its own, with its own
connection, when the store's first look-up meets a new version (the SQL path answers meanwhile), and
installed only if that version is still the active one; a version with more than ``max_keys``
exact keys or segments is not indexed (the SQL path, as before): the memory it takes is bounded.
"""

from __future__ import annotations

import bisect
import dataclasses
import sqlite3
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["ASK", "BITS_PER_KEY", "SET_MAX_KEYS", "ListIndex", "extend_index", "read_index"]

SET_MAX_KEYS = 250_000
"""Exact keys up to which the index holds them as a ``frozenset`` of ints (70-90 B a key with the
ints, measured with tracemalloc, a set grown by an overlay's union the most: ≈ 23 MB at most, twice
that while a version's index is built from the last one) instead of the bitmap. A membership test
is a hash of a small int, tested inline by the store: the whole look-up of an unlisted IMEI took
730-750 ns with an IMEISV and 440-460 ns without through the filter, 335-355 ns and 260 ns with the
set (in-process, a 100k-entry list); and a set sends no unlisted key to SQLite (the filter sends
0.6-0.8 %). Lab lists are mostly this small; national ones are not."""

BITS_PER_KEY = 16
"""Bitmap bits per exact key (rounded up to a power of two). Each key sets two bits: an unlisted
key reads as "maybe" for about (1 - e^(-2/16))^2 ≈ 1.4 % of keys at 16 bits a key (one bit: 6 %;
a statement costs 9-12 µs in-process, more under load, so the second probe, 0.1 µs, pays for
itself)."""
_MULT1 = 0x9E3779B97F4A7C15
_MULT2 = 0xC2B2AE3D27D4EB4F
"""Multiplicative (Fibonacci) hashing, once per bit: a bit's position is the top bits of the key
times an odd 64-bit constant, modulo 2^64. List keys are often consecutive IMEIs (a batch of
handsets) or share their low digits, and a list spans a narrow stretch of the key space: the top
bits of the *whole* product would be nearly linear in the key there (a first version took them and
its second bit took 29k positions for 100k keys: 5.4 % of unlisted keys passed, not 0.8 %); the top
bits of the product modulo 2^64 mix every bit of the key."""
_M64 = (1 << 64) - 1
_MAX_BITS = 1 << 40
"""The bitmap's largest size in bits: never reached (index_max_keys bounds it far below)."""
_MIN_BITS = 1 << 13

SegmentRow = tuple[int, int, int, int, int, str | None, str | None]
"""A segment's ``(end, kind, first, last, st, imsi, reason)`` as ``s_<t>`` holds it."""
ASK: SegmentRow | tuple[()] = ()
""":meth:`ListIndex.segment`'s answer when a segment holds the IMEI but its row is not kept."""
SEGMENT_ROWS_MAX = 100_000
"""Segments whose rows are kept (≈ 240 B each: 24 MB); above, only their bounds (16 B each), and an
IMEI inside a segment is asked of SQLite."""
MAX_SEGMENTS = 2_000_000
"""Segments beyond which a version is not indexed (32 MB of bounds)."""


@dataclass(frozen=True, slots=True, eq=False)
class ListIndex:
    """One list version's exact keys (as a set, or a bitmap) and range segments."""

    version: int
    table: int
    """The full version whose ``x_``/``s_`` tables this holds (``version`` itself, or the one an
    overlay builds on): an overlay on the same one extends a copy (:func:`extend_index`)."""
    keys: int
    """Exact keys held: the set's size, or the rows marked in the bitmap (an overlay's ``d_`` table
    repeats the rows of the overlay before it: an upper bound there, kept for the bitmap's fill)."""
    exact: frozenset[int] | None = field(repr=False)
    """The exact keys themselves, up to :data:`SET_MAX_KEYS` (``bits`` is then empty)."""
    bits: bytearray = field(repr=False)
    shift: int
    """64 minus the bitmap's size in bits as a power of two: a hash's top bits address it."""
    starts: array[int] = field(repr=False)
    ends: array[int] = field(repr=False)
    rows: list[SegmentRow] | None = field(repr=False)
    """The segments' rows, when there are at most :data:`SEGMENT_ROWS_MAX`."""

    def may_list(self, key: int) -> bool:
        """False: no exact row has ``key`` (sure). True: one may (ask SQLite). The set holds every
        key of the version's rows (an overlay's removals are rows too) and, after a rollback to an
        earlier overlay, keys of a later one: a superset, as the bitmap's is."""
        if self.exact is not None:
            return key in self.exact
        shift, bits = self.shift, self.bits
        h = (key * _MULT1 & _M64) >> shift
        if not bits[h >> 3] >> (h & 7) & 1:
            return False
        h = (key * _MULT2 & _M64) >> shift
        return bool(bits[h >> 3] >> (h & 7) & 1)

    def segment(self, n: int) -> SegmentRow | tuple[()] | None:
        """The row of the segment holding IMEI ``n`` (its narrowest range); None when no segment
        holds it; :data:`ASK` when one does but its row is not kept."""
        starts = self.starts
        if not starts:
            return None
        i = bisect.bisect_right(starts, n) - 1
        if i < 0 or self.ends[i] < n:
            return None
        rows = self.rows
        return ASK if rows is None else rows[i]

    @property
    def nbytes(self) -> int:
        """What the index holds in memory, the segments' rows aside (a set's ints at 32 B each)."""
        held = 0 if self.exact is None else sys.getsizeof(self.exact) + 32 * len(self.exact)
        return held + len(self.bits) + 16 * len(self.starts)


def _bitmap(n_keys: int) -> tuple[bytearray, int]:
    """An empty bitmap for ``n_keys`` keys and its ``shift`` (:attr:`ListIndex.shift`)."""
    size = _MIN_BITS
    while size < n_keys * BITS_PER_KEY and size < _MAX_BITS:
        size <<= 1
    return bytearray(size >> 3), 64 - size.bit_length() + 1


def _mark(bits: bytearray, shift: int, keys: Iterable[int]) -> None:
    """Set the two bits of every key (the hashes of :meth:`ListIndex.may_list`)."""
    m1, m2, m64 = _MULT1, _MULT2, _M64
    for k in keys:
        h = (k * m1 & m64) >> shift
        bits[h >> 3] |= 1 << (h & 7)
        h = (k * m2 & m64) >> shift
        bits[h >> 3] |= 1 << (h & 7)


def read_index(
    con: sqlite3.Connection, version: int, t: int, overlay: int | None, max_keys: int
) -> ListIndex | None:
    """The index of list version ``version`` (its tables ``x_<t>``, ``s_<t>``, and ``d_<overlay>``
    when it is an overlay) read through ``con``; None when it has more than ``max_keys`` exact keys
    or :data:`MAX_SEGMENTS` segments. Runs in a thread of its own: ≈ 2 s of CPU per million keys,
    holding the GIL for most of it (the event loop's wake-ups are late by up to ≈ 12 ms meanwhile)."""
    n = con.execute(f"SELECT count(*) FROM x_{t}").fetchone()[0]
    if overlay is not None:
        n += con.execute(f"SELECT count(*) FROM d_{overlay}").fetchone()[0]
    n_segs = con.execute(f"SELECT count(*) FROM s_{t}").fetchone()[0]
    if n > max_keys or n_segs > MAX_SEGMENTS:
        return None
    tables = [f"x_{t}"] + ([f"d_{overlay}"] if overlay is not None else [])
    exact: frozenset[int] | None = None
    if n <= SET_MAX_KEYS:
        exact = frozenset(k for table in tables for (k,) in con.execute(f"SELECT k FROM {table}"))
        n = len(exact)
        bits, shift = bytearray(), 64
    else:
        bits, shift = _bitmap(n)
        for table in tables:
            _mark(bits, shift, (k for (k,) in con.execute(f"SELECT k FROM {table}")))
    starts: array[int] = array("q")
    ends: array[int] = array("q")
    rows: list[SegmentRow] | None = [] if n_segs <= SEGMENT_ROWS_MAX else None
    for row in con.execute(
        f"SELECT start, end, kind, first, last, st, imsi, reason FROM s_{t} ORDER BY start"
    ):
        starts.append(row[0])
        ends.append(row[1])
        if rows is not None:
            rows.append((row[1], row[2], row[3], row[4], row[5], row[6], row[7]))
    return ListIndex(
        version=version,
        table=t,
        keys=n,
        exact=exact,
        bits=bits,
        shift=shift,
        starts=starts,
        ends=ends,
        rows=rows,
    )


def extend_index(
    prev: ListIndex, con: sqlite3.Connection, version: int, overlay: int, max_keys: int
) -> ListIndex | None:
    """The index of overlay ``version`` on ``prev.table`` from ``prev`` (that table's index, or
    another overlay's on it): a copy of its set or bitmap with the keys of ``d_<overlay>`` added,
    its segments shared (an overlay holds exact keys only). A superset of the overlay's keys (those
    of an earlier overlay stay), which the look-up allows (a key found is asked of SQLite); at most
    ``OVERLAY_MAX`` rows, so a small delta through the admin API costs a copy, not a rebuild. None
    when the set would pass :data:`SET_MAX_KEYS` or the bitmap be fuller than
    :data:`BITS_PER_KEY` allows (then :func:`read_index`)."""
    if prev.exact is not None:
        exact = prev.exact.union(k for (k,) in con.execute(f"SELECT k FROM d_{overlay}"))
        if len(exact) > min(max_keys, SET_MAX_KEYS):
            return None
        return dataclasses.replace(prev, version=version, keys=len(exact), exact=exact)
    n = prev.keys + con.execute(f"SELECT count(*) FROM d_{overlay}").fetchone()[0]
    if n > max_keys or n * BITS_PER_KEY > len(prev.bits) * 8:
        return None
    bits = bytearray(prev.bits)
    _mark(bits, prev.shift, (k for (k,) in con.execute(f"SELECT k FROM d_{overlay}")))
    return dataclasses.replace(prev, version=version, keys=n, bits=bits)
