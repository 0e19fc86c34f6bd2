"""Independent coins drawn by the gaps between heads: the vector engine's cheap, exact sampler.

A step flips many coins that mostly land tails: does this customer feel this visit, does a
problem arise, is a review posted, does a former customer come back. Flipping one uniform per
coin costs a random number per person; drawing a count and then a uniform subset costs less,
but NumPy's subset sampler does a lot of Python-level work per call. Here every group of coins
is drawn at once from the gaps between heads: in a row of coins each landing heads with chance
p, the number of coins up to and including the next head is geometric, floor(E / -log(1 - p))
+ 1 with E a standard exponential. So one block of exponentials, a product and a cumulative sum
give every head of every group in a few array operations, and each group's heads come out in
ascending order. The distribution is exactly that of one coin per person (up to rounding of the
float32 exponentials); tests/test_draws.py checks it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

# Gaps drawn per group: the expected heads, plus this many standard deviations, plus a few.
# A group whose gaps run out before its last coin (about 1 in 10^6 groups) is drawn on from
# there (the coins after the last head are independent of those before it).
_SPARE_SD, _SPARE = 5.0, 8
_EMPTY = np.empty(0, dtype=np.int64)


def heads(rng: np.random.Generator, sizes: Sequence[int], chances: Sequence[float],
          offsets: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(positions, counts): group j has ``sizes[j]`` coins, each landing heads with chance
    ``chances[j]``; ``positions`` lists the heads of every group (0..size-1, plus ``offsets[j]``
    when given), group by group, ascending within a group, and ``counts[j]`` how many group j
    had."""
    if len(sizes) == 0:
        return _EMPTY, np.zeros(0, np.int64)
    if len(sizes) <= 2:  # a group or two: each on its own costs fewer array operations
        drawn = [chosen(rng, m, p, 0 if offsets is None else offsets[j])
                 for j, (m, p) in enumerate(zip(sizes, chances, strict=True))]  # fmt: skip
        counts = np.array([len(d) for d in drawn], np.int64)
        return (drawn[0] if len(drawn) == 1 else np.concatenate(drawn)), counts
    want, scale = zip(*[_plan(m, p) for m, p in zip(sizes, chances, strict=True)], strict=True)
    total = sum(want)
    if total == 0:
        return _EMPTY, np.zeros(len(want), np.int64)
    spans = np.array(want)
    starts = spans.cumsum() - spans  # each group's first gap
    gap = rng.standard_exponential(total, dtype=np.float32) * np.repeat(scale, spans)
    gap += 1.0  # floor(x + 1) = floor(x) + 1 for x >= 0: the cast below floors
    done = np.empty(total + 1, np.int64)  # coins up to each head, from the first group's start
    done[0] = 0
    np.cumsum(gap.astype(np.int64), out=done[1:])
    # A head's position in its group: the coins up to it less those before the group, less 1.
    first = done[starts] + 1
    limit = np.asarray(sizes, np.int64)
    if offsets is not None:
        shift = np.asarray(offsets, np.int64)
        first -= shift
        limit = limit + shift
    at = done[1:]
    at -= np.repeat(first, spans)
    kept = at < np.repeat(limit, spans)
    tally = np.empty(total + 1, np.int64)
    tally[0] = 0
    np.cumsum(kept, out=tally[1:])
    counts = tally[starts + spans] - tally[starts]
    positions = at[kept]
    reached = at[np.maximum(starts + spans - 1, 0)]
    short = ((reached < limit - 1) & (spans > 0)).nonzero()[0]
    if len(short):
        positions, counts = _draw_on(rng, positions, counts, short, reached, limit, chances)
    return positions, counts


def _draw_on(rng, positions, counts, short, reached, bound, chances):
    """The rare case of :func:`heads`: the groups ``short`` ran out of gaps before their last
    coin; their coins after the last head drawn are drawn now (by :func:`chosen`) and put
    after it."""
    groups = np.split(positions, np.cumsum(counts)[:-1])
    for j in short:
        more = chosen(rng, int(bound[j] - reached[j] - 1), chances[j], int(reached[j] + 1))
        groups[j] = np.concatenate([groups[j], more])
        counts[j] += len(more)
    return np.concatenate(groups), counts


def _plan(m: int, p: float) -> tuple[int, float]:
    """(gaps to draw, the exponentials' scale) for a group of ``m`` coins of chance ``p``.

    The gaps are enough for all but about one group in 10^6, counted from ``m`` rounded up to
    one of 8 to 16 steps per doubling. So the numbers a call takes from the generator do not
    move when ``m`` moves a little, and the draws after it stay where they were: common random
    numbers survive a parameter change that adds or removes a few customers. Every ``m`` of a
    step gives the same plan, worked out once."""
    if m <= 0 or p <= 0:
        return 0, 0.0
    step = max(m.bit_length() - 4, 0)
    return _bucket_plan(-(-m >> step) << step, min(p, 1.0))


@functools.lru_cache(maxsize=4096)
def _bucket_plan(bucket: int, p: float) -> tuple[int, float]:
    mean = bucket * p
    wanted = max(int(mean + _SPARE_SD * math.sqrt(mean * (1.0 - p))) + _SPARE, 1)
    return wanted, (0.0 if p >= 1.0 else -1.0 / math.log1p(-p))  # p = 1: every gap is 1


def chosen(rng: np.random.Generator, m: int, p: float, offset: int = 0) -> np.ndarray:
    """Indices of 0..m-1 (plus ``offset``), each picked independently with chance p, in
    ascending order: one group of :func:`heads`."""
    if m <= 0 or p <= 0:
        return _EMPTY
    if p >= 1:
        return np.arange(offset, offset + m)
    want, scale = _plan(m, p)
    gap = rng.standard_exponential(want, dtype=np.float32) * scale
    gap += 1.0
    at = gap.astype(np.int64).cumsum()
    at += offset - 1
    kept = int(at.searchsorted(offset + m))
    if kept < want:
        return at[:kept]
    more = chosen(rng, int(offset + m - at[-1] - 1), p, int(at[-1] + 1))  # ran out: draw on
    return np.concatenate([at, more])
