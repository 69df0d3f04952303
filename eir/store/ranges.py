"""Longest match over IMEI ranges and TACs, computed once at import so a lookup is one seek.

Ranges and TACs may nest or overlap (a TAC on the grey list, a narrower range of it on the black
list). At import we cut the 14-digit IMEI space into elementary segments at every range boundary
and give each segment the *narrowest* range containing it (ties: the lower first IMEI, then the
later row). A lookup is then "the segment with the greatest start <= IMEI, if its end >= IMEI" —
one B-tree seek in SQLite (``start INTEGER PRIMARY KEY``) or one ``bisect`` in memory, flat
whatever the number of entries. There are at most 2n-1 segments for n ranges.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import TypeVar

from eir.store.base import EntryKind, ListEntry

T = TypeVar("T")

TAC_SPAN = 1_000_000


def bounds(entry: ListEntry) -> tuple[int, int]:
    """The inclusive integer IMEI bounds of a RANGE or TAC entry."""
    if entry.kind is EntryKind.TAC:
        first = int(entry.key) * TAC_SPAN
        return first, first + TAC_SPAN - 1
    if entry.kind is EntryKind.RANGE and entry.last is not None:
        return int(entry.key), int(entry.last)
    raise ValueError(f"not a range or TAC entry: {entry!r}")


def flatten(ranges: Iterable[tuple[int, int, T]]) -> list[tuple[int, int, T]]:
    """``(first, last, payload)`` ranges → non-overlapping ``(start, end, payload)`` segments,
    sorted, each carrying the narrowest range that contains it. Adjacent segments of the same
    range are merged."""
    items = sorted(((f, l_, i, p) for i, (f, l_, p) in enumerate(ranges)), key=lambda t: (t[0], t[2]))
    if not items:
        return []
    # boundaries: every first and every last+1
    cuts = sorted({f for f, _l, _i, _p in items} | {l_ + 1 for _f, l_, _i, _p in items})
    heap: list[tuple[int, int, int, int, T]] = []  # (span, first, -order, last, payload)
    out: list[tuple[int, int, T]] = []
    j = 0
    n = len(items)
    cur_id: tuple[int, int] | None = None
    for k, b in enumerate(cuts):
        while j < n and items[j][0] == b:
            f, l_, i, p = items[j]
            heapq.heappush(heap, (l_ - f, f, -i, l_, p))
            j += 1
        while heap and heap[0][3] < b:
            heapq.heappop(heap)
        if not heap:
            cur_id = None
            continue
        _span, f, negi, l_, p = heap[0]
        end = cuts[k + 1] - 1 if k + 1 < len(cuts) else l_
        rid = (f, negi)
        if cur_id == rid and out and out[-1][1] == b - 1:
            out[-1] = (out[-1][0], end, p)
        else:
            out.append((b, end, p))
        cur_id = rid
    return out
