"""Fit the walk-away curve to survey figures and check the fit.

Surveys report population shares ("17% leave after one bad experience, 59% after several"). In
the model each person leaves at their k-th recent bad experience with chance
sigmoid(a + b (k - 1) - tolerance), tolerance ~ Normal(0, tolerance_sd). The fit solves for a and
b so that the population shares, averaged over tolerance, match the survey exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from cxsim import rules

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(60)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


@dataclass(frozen=True)
class WalkAwayFit:
    a: float
    b: float
    tolerance_sd: float
    several: int

    def left_by(self, n: int) -> float:
        """Population share that has walked away by the n-th bad experience (no forgetting)."""
        return left_by(self.a, self.b, self.tolerance_sd, n)

    def per_event(self, n: int) -> float:
        """Chance a person with average tolerance leaves at the n-th bad experience."""
        return float(rules.sigmoid(self.a + self.b * (n - 1)))


def left_by(a: float, b: float, tolerance_sd: float, n: int) -> float:
    """Share of people who have left by their n-th bad experience, none forgotten in between."""
    tol = tolerance_sd * _NODES
    stay = np.ones_like(tol)
    for k in range(1, n + 1):
        stay *= 1.0 - rules.sigmoid(a + b * (k - 1) - tol)
    return float(1.0 - np.dot(_WEIGHTS, stay))


def fit_walk_away(
    after_one: float, after_several: float, several: int = 3, tolerance_sd: float = 0.0
) -> WalkAwayFit:
    """(a, b) such that left_by(1) = after_one and left_by(several) = after_several."""
    a = brentq(lambda x: left_by(x, 0.0, tolerance_sd, 1) - after_one, -30, 30, xtol=1e-12)
    b = brentq(lambda x: left_by(a, x, tolerance_sd, several) - after_several, -20, 20, xtol=1e-12)
    return WalkAwayFit(a=a, b=b, tolerance_sd=tolerance_sd, several=several)


def simulate_left_by(
    a: float, b: float, tolerance_sd: float, n: int, people: int, rng: np.random.Generator
) -> list[float]:
    """Monte Carlo check: share left by the 1st..n-th bad experience, using the model's rule."""
    tolerance = rng.normal(0.0, tolerance_sd, people)
    stayed = np.ones(people, dtype=bool)
    shares = []
    for k in range(1, n + 1):
        p = rules.walk_away_step(k - 1, np.ones(people), a, b, tolerance)
        stayed &= rng.random(people) >= p
        shares.append(1.0 - stayed.mean())
    return shares
