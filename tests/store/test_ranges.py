"""The longest-match flattening every backend may use (eir/store/ranges.py), against brute force."""

from __future__ import annotations

from bisect import bisect_right
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from eir.store.ranges import flatten

ranges_st = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 60)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=25,
)


def brute(ranges: list[tuple[int, int]], x: int) -> int | None:
    """Index of the narrowest range holding x; ties: lower first, then the later row."""
    best = None
    for i, (f, last) in enumerate(ranges):
        if f <= x <= last:
            key = (last - f, f, -i)
            if best is None or key < best[0]:
                best = (key, i)
    return None if best is None else best[1]


@settings(max_examples=300, deadline=None)
@given(ranges_st)
def test_segments_give_the_narrowest_range(ranges: list[tuple[int, int]]) -> None:
    segs = flatten((f, last, i) for i, (f, last) in enumerate(ranges))
    starts = [s for s, _e, _p in segs]
    # non-overlapping, sorted, adjacent segments of one range merged
    for (s1, e1, p1), (s2, _e2, p2) in pairwise(segs):
        assert s1 <= e1 < s2
        assert not (e1 + 1 == s2 and p1 == p2)
    assert len(segs) <= max(2 * len(ranges) - 1, 0)
    for x in range(-1, 263):
        i = bisect_right(starts, x) - 1
        got = segs[i][2] if i >= 0 and segs[i][1] >= x else None
        assert got == brute(ranges, x), (ranges, x)


def test_empty() -> None:
    assert flatten([]) == []
