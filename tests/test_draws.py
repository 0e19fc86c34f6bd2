"""The vector engine's sampler of independent coins by the gaps between heads
(cxsim.engines.draws): the same distribution as one coin per person, whatever the group sizes,
chances and offsets, including the rare case where a group runs out of gaps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cxsim.engines import draws

SIZES = (600, 0, 4400, 4400, 37, 5)
CHANCES = (0.055, 0.3, 0.31, 0.0216, 0.5, 1.0)
OFFSETS = (0, 10, 20, 5000, 9000, 9100)


def _sample(rng, times: int):
    """Per group: how often each coin landed heads over ``times`` calls, and the counts."""
    hits = [np.zeros(max(m, 1)) for m in SIZES]
    counts = []
    for _ in range(times):
        positions, n = draws.heads(rng, SIZES, CHANCES, OFFSETS)
        assert n.sum() == len(positions)
        counts.append(n)
        for j, part in enumerate(np.split(positions, np.cumsum(n)[:-1])):
            local = part - OFFSETS[j]
            assert np.all(np.diff(local) > 0), "ascending, no repeats, within a group"
            assert local.min(initial=0) >= 0 and local.max(initial=-1) < SIZES[j]
            hits[j][local] += 1
    return hits, np.array(counts)


def _check(hits, counts, times: int) -> None:
    for j, (m, p) in enumerate(zip(SIZES, CHANCES, strict=True)):
        if m == 0:
            assert counts[:, j].sum() == 0
            continue
        # each coin heads with chance p: the total over all coins and calls is binomial
        total = int(hits[j][:m].sum())
        assert stats.binomtest(total, m * times, p).pvalue > 1e-4, (j, total / (m * times), p)
        # the first, middle and last coins are not favoured (the cut at the end is exact)
        for coin in (0, m // 2, m - 1):
            assert stats.binomtest(int(hits[j][coin]), times, p).pvalue > 1e-4, (j, coin)
        # counts vary as a binomial's do (not a fixed number of heads per call)
        if 0 < p < 1:
            assert counts[:, j].var() == pytest.approx(m * p * (1 - p), rel=0.25)


def test_heads_has_the_distribution_of_one_coin_per_person():
    times = 2000
    hits, counts = _sample(np.random.default_rng(5), times)
    _check(hits, counts, times)


def test_a_group_that_runs_out_of_gaps_is_drawn_on_exactly(monkeypatch):
    # With no spare gaps, about half the groups run out before their last coin.
    monkeypatch.setattr(draws, "_SPARE_SD", 0.0)
    monkeypatch.setattr(draws, "_SPARE", 0)
    times = 2000
    hits, counts = _sample(np.random.default_rng(6), times)
    _check(hits, counts, times)
    alone = [len(draws.chosen(np.random.default_rng(s), 1000, 0.1)) for s in range(2000)]
    assert np.mean(alone) == pytest.approx(100, abs=1.0)
    assert np.var(alone) == pytest.approx(90, rel=0.15)


def test_edge_chances_and_sizes():
    rng = np.random.default_rng(7)
    assert len(draws.chosen(rng, 0, 0.5)) == 0
    assert len(draws.chosen(rng, 10, 0.0)) == 0
    assert np.array_equal(draws.chosen(rng, 10, 1.0), np.arange(10))
    positions, counts = draws.heads(rng, (5, 0, 3), (1.0, 0.5, 1.0), (0, 0, 100))
    assert np.array_equal(positions, [0, 1, 2, 3, 4, 100, 101, 102])
    assert counts.tolist() == [5, 0, 3]
    positions, counts = draws.heads(rng, (), ())
    assert len(positions) == 0 and len(counts) == 0


@pytest.mark.parametrize("others", [(300,), (300, 50)])  # one call per group, or one block
def test_the_numbers_taken_do_not_move_with_a_few_more_coins(others):
    # Common random numbers: a call with 4,000 or 4,010 coins in its first group leaves the
    # generator in the same state, and that group's heads among its first coins are the same.
    a, b = np.random.default_rng(8), np.random.default_rng(8)
    chances = (0.05, *[0.2] * len(others))
    pa, na = draws.heads(a, (4000, *others), chances)
    pb, nb = draws.heads(b, (4010, *others), chances)
    assert a.random() == b.random()
    first_a, first_b = pa[: na[0]], pb[: nb[0]]
    assert np.array_equal(first_a[first_a < 3900], first_b[first_b < 3900])
