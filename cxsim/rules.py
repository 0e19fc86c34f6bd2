"""The model's formulas, as pure functions shared by both engines.

Each function works on Python floats and on NumPy arrays alike (element-wise), has no state and
draws no random numbers: the engines draw, these functions say what the chances are. Units are
per step unless stated; shares and probabilities are 0-1; satisfaction is 0-1.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import expit

PROMOTER_MIN = 9
"""Likelihood-to-recommend (0-10) at or above which a person is a promoter."""
DETRACTOR_MAX = 6
"""Likelihood-to-recommend (0-10) at or below which a person is a detractor."""
CSAT_SATISFIED = 0.625
"""Satisfaction at or above which a 5-point rating, 1 + round(4 s), is a 4 or a 5."""


def sigmoid(x):
    """Logistic function 1 / (1 + e^-x), without overflow for large |x|."""
    return expit(x)


def logit(p):
    """Inverse of :func:`sigmoid`: log(p / (1 - p))."""
    return np.log(p / (1.0 - p))


def decay_factor(half_life: float) -> float:
    """Share of the recent-bad-experience count left after one step (half-life in steps)."""
    return 0.5 ** (1.0 / half_life)


def step_discount_rate(annual_rate: float, steps_per_year: float) -> float:
    """Per-step discount rate equivalent to an annual one."""
    return (1.0 + annual_rate) ** (1.0 / steps_per_year) - 1.0


# --- touchpoints and problems -----------------------------------------------------------------


def touchpoint_chances(good, bad, quality_uplift):
    """Chances (good, bad) of one visit after a quality uplift u.

    The uplift removes a share u of bad visits and turns a share u of neutral visits good,
    so good + bad stays at most 1.
    """
    neutral = 1.0 - good - bad
    return good + quality_uplift * neutral, bad * (1.0 - quality_uplift)


def problem_rate(rate, prevention):
    """Chance per step of a problem at a touchpoint after root-cause prevention removes a share."""
    return rate * (1.0 - prevention)


# --- memory, satisfaction, recommendation -----------------------------------------------------


def update_satisfaction(s, resting, n_good, n_bad, relaxation, gain, loss):
    """Satisfaction after one step.

    It first relaxes a share ``relaxation`` of the way to the person's resting level, then each
    good experience closes a share ``gain`` of the room above and each bad one removes a share
    ``loss`` of what is left. With loss > gain bad experiences weigh more (negativity bias). The
    result stays in [0, 1] whenever s and resting are in [0, 1].
    """
    s = s + relaxation * (resting - s)
    s = 1.0 - (1.0 - s) * _power(1.0 - gain, n_good, s)
    if isinstance(s, np.ndarray) and isinstance(n_bad, np.ndarray) and n_bad.size:
        # Most have no bad experience, and x 1 changes nothing: multiply only the others.
        some = np.flatnonzero(n_bad != 0)  # nonzero of a bool array is the fast one
        s[some] *= _power(1.0 - loss, n_bad[some], s)
        return s
    return s * _power(1.0 - loss, n_bad, s)


def _power(base: float, counts, like):
    """base ** counts; for an integer array, looked up from a table (pow per element is slow)."""
    if isinstance(counts, np.ndarray) and counts.dtype.kind in "iu" and counts.size:
        dtype = np.dtype(getattr(like, "dtype", np.float64))
        return _powers(base, int(counts.max()), dtype).take(counts)
    return base**counts


@lru_cache(maxsize=4096)
def _powers(base: float, largest: int, dtype: np.dtype) -> np.ndarray:
    """base ** 0..largest in ``dtype``, made once per (base, largest, dtype): read only."""
    table = (base ** np.arange(largest + 1, dtype=np.float64)).astype(dtype)
    table.flags.writeable = False
    return table


def likelihood_to_recommend(s):
    """0-10 answer to "how likely are you to recommend us?" from satisfaction: floor(11 s)."""
    if isinstance(s, np.ndarray):
        return np.minimum((11.0 * s).astype(np.int8), 10)
    return min(int(11.0 * s), 10)


def is_promoter(s):
    return likelihood_to_recommend(s) >= PROMOTER_MIN


def is_detractor(s):
    return likelihood_to_recommend(s) <= DETRACTOR_MAX


def net_promoter_score(promoters, detractors, respondents):
    """NPS in points (-100 to 100): % promoters minus % detractors; 0 with no respondents."""
    if respondents == 0:
        return 0.0
    return 100.0 * (promoters - detractors) / respondents


def review_stars(s):
    """Stars (1-5, continuous) a person gives in a review."""
    return 1.0 + 4.0 * s


# --- churn ------------------------------------------------------------------------------------


def walk_away_step(count_before, n_bad, a, b, tolerance, weight=1.0):
    """Chance of walking away at one of this step's ``n_bad`` bad experiences.

    Each weighs ``weight`` (the mean severity of the step's bad experiences; 1 is a
    significant failure, the survey's "bad experience"). The j-th brings the recent count to
    k = count_before + j weight, and the person leaves at it with chance
    1 - (1 - sigmoid(a + b (k - 1) - tolerance))^weight: a bad experience of weight 1 is one
    event of the PwC-calibrated curve, a lighter one a fraction of such an event.
    Returns 1 - prod_j of staying; 0 where n_bad is 0.
    """
    n_max = int(np.max(n_bad)) if np.size(n_bad) else 0
    stay = 1.0
    for j in range(1, n_max + 1):
        p = sigmoid(a + b * (count_before + j * weight - 1) - tolerance)
        stay = stay * np.where(n_bad >= j, (1.0 - p) ** weight, 1.0)
    return 1.0 - stay


def baseline_hazard(theta, s, resting, elasticity):
    """Per-step baseline churn chance: theta x exp(elasticity (resting - s)), at most 1.

    theta ~ Beta(alpha, beta) is the person's lifelong propensity; elasticity 0 switches the
    satisfaction scaling off.
    """
    return np.minimum(theta * np.exp(elasticity * (resting - s)), 1.0)


def at_risk(bad_count, s):
    """A customer at risk, for aimed outreach: a recent bad experience still in memory (count
    at least one half) or satisfaction below the CSAT line."""
    return (bad_count >= 0.5) | (s < CSAT_SATISFIED)


def outreach_chance(share, customers, at_risk_count):
    """Chance an at-risk customer is contacted when outreach is aimed: the same number of
    contacts as random outreach (share x customers), spread over those at risk."""
    if at_risk_count <= 0:
        return 0.0
    return min(1.0, share * customers / at_risk_count)


def churn_chance(walk_away, hazard):
    """Chance of leaving in a step by either channel (walk-away first, then baseline)."""
    return walk_away + (1.0 - walk_away) * hazard


# --- word of mouth, reviews, acquisition ------------------------------------------------------


def referral_chance(promoter_contacts, rate, conversion):
    """Chance a prospect is converted by referral, given how many promoters it knows."""
    return 1.0 - (1.0 - rate * conversion) ** promoter_contacts


def warning_factor(detractor_contacts, rate, impact):
    """Factor on a prospect's conversion chance from the detractors it knows (warnings)."""
    return (1.0 - rate * impact) ** detractor_contacts


def review_factor(score, neutral, weight):
    """Factor on a review reader's conversion chance: 1 + weight (score - neutral), at least 0."""
    return np.maximum(1.0 + weight * (score - neutral), 0.0)


def damped(chance, factor):
    """A conversion chance scaled by word-of-mouth and review factors, capped at 1."""
    return np.minimum(chance * factor, 1.0)


def adoption_chance(ad, referral):
    """Chance of converting by advertising or referral (Bass p and q on a network)."""
    return 1.0 - (1.0 - ad) * (1.0 - referral)


# --- money ------------------------------------------------------------------------------------


def lifetime_value(arpu, hazard, step_discount):
    """Expected discounted revenue still to come from a customer paying ``arpu`` per step.

    With per-step leaving chance ``hazard``, sum over t >= 0 of arpu ((1 - hazard) / (1 + d))^t.
    """
    return arpu * (1.0 + step_discount) / (step_discount + hazard)


def expected_revenue(arpu, hazard, steps):
    """Expected revenue (undiscounted) over the next ``steps`` steps from a customer paying
    ``arpu`` per step who leaves with chance ``hazard`` per step: sum over t < steps of
    arpu (1 - hazard)^t (``steps`` at hazard 0)."""
    hazard = np.minimum(np.maximum(hazard, 0.0), 1.0)  # np.clip's values, at half its cost
    with np.errstate(divide="ignore", invalid="ignore"):
        # 1 - (1 - h)^n as -expm1(n log1p(-h)): no cancellation when h is tiny
        share = -np.expm1(steps * np.log1p(-hazard)) / hazard
    if np.ndim(steps) or steps <= 0:
        share = np.where(np.asarray(steps) > 0, share, 0.0)
    return arpu * np.where(hazard > 0, share, steps)
