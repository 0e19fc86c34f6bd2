"""The two engines are one model: their outcome distributions agree on every shipped scenario.

For each scenario both engines run over the same 40 seeds at a CI-sized population. For each of
some 30 outcomes (every summary figure, churn by each cause included) the test requires that
(a) the difference of means lies within its 99.9% confidence interval (Welch's t-test does not
reject at 0.001) and (b) a two-sample Kolmogorov-Smirnov test does not reject at 0.001. Seeds
are fixed, so the verdict is deterministic. The last test breaks one rule in the agents engine
and checks that this comparison notices.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cxsim.engines.agents import AgentsModel, Person
from cxsim.experiment import replication_seeds, run_once

from .conftest import ALL_MECHANISMS, SHIPPED, small

# Every figure of a run's summary: stocks, flows by channel and cause, problems, reviews,
# returns, experience scores and money.
OUTCOMES = [
    "final_customers", "churn_experience", "churn_baseline", "new_customers_referral",
    "new_customers_ads", "new_customers_win_back", "nps", "csat", "mean_satisfaction", "revenue",
    "costs", "lost_revenue_horizon", "lost_revenue_lifetime", "lost_revenue_experience_horizon",
    "lost_revenue_experience_lifetime",
    "problems_arising", "problems_detected", "problems_contacted", "problems_resolved",
    "outreach_contacts", "reviews_posted", "returned",
]  # fmt: skip
LEVEL = 0.001
SEEDS = replication_seeds(2026, 40)


def _outcomes(spec, engine: str) -> dict[str, np.ndarray]:
    rows = [run_once(spec, seed, engine).summary for seed in SEEDS]
    causes = [k for k in rows[0] if k.startswith("churn_by_")]
    return {k: np.array([r[k] for r in rows]) for k in OUTCOMES + causes}


def compare(spec) -> dict[str, tuple[float, float]]:
    """Per outcome: (Welch t-test p-value, KS p-value), agents vs vector."""
    agents, vector = _outcomes(spec, "agents"), _outcomes(spec, "vector")
    out = {}
    for k in agents:
        a, v = agents[k], vector[k]
        if np.all(a == a[0]) and np.all(v == a[0]):
            out[k] = (1.0, 1.0)
            continue
        out[k] = (
            float(stats.ttest_ind(a, v, equal_var=False).pvalue),
            float(stats.ks_2samp(a, v).pvalue),
        )
    return out


CASES = [*SHIPPED, ALL_MECHANISMS]


@pytest.mark.slow
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_engines_agree_in_distribution(path):
    spec = small(path, population__customers=150, population__prospects=450, time__horizon=52)
    rejected = {k: p for k, p in compare(spec).items() if min(p) < LEVEL}
    assert not rejected, f"engines disagree on {rejected}"


def _deaf(monkeypatch):
    """Agents that ignore negative word of mouth."""
    original = Person.listen

    def listen_without_warnings(self):
        original(self)
        self.detractor_contacts = 0

    monkeypatch.setattr(Person, "listen", listen_without_warnings)


def _timeless(monkeypatch):
    """Agents that never see events or the strategy's ramp: the levers of step 0 always."""
    original = AgentsModel._advance

    def advance_at_step_zero(self, t):
        self.levers = self.schedule.at(0)
        return original(self, t)

    monkeypatch.setattr(AgentsModel, "_advance", advance_at_step_zero)


@pytest.mark.slow
@pytest.mark.parametrize("breaking", [_deaf, _timeless], ids=["deaf", "timeless"])
def test_the_comparison_notices_a_rule_broken_in_one_engine(monkeypatch, breaking):
    """A rule broken in the agents engine only makes a different model, and it shows."""
    breaking(monkeypatch)
    spec = small(
        ALL_MECHANISMS, population__customers=150, population__prospects=450, time__horizon=52
    )
    rejected = {k: p for k, p in compare(spec).items() if min(p) < LEVEL}
    assert rejected
