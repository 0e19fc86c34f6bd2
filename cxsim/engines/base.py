"""What both engines share: building from a scenario, traits, accounting and metrics.

An engine is a ``mesa.Model`` that knows how to set people up and advance them one step; it
returns the step's :class:`Tally` (flows) and :class:`Census` (stocks), and this base turns them
into money, the public review score and the per-step metrics recorded by Mesa's DataCollector.
Keeping that here means the two engines cannot drift apart in how outcomes are counted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, fields
from enum import IntEnum
from functools import partial
from pathlib import Path
from typing import Any

import mesa
import numpy as np
import pandas as pd

from cxsim import guards, rules
from cxsim.levers import Schedule
from cxsim.loading import apply_overrides, load_scenario
from cxsim.metrics import metric_names
from cxsim.scenario import Network, Scenario


class Stage(IntEnum):
    """Where a person stands with the company."""

    PROSPECT = 0
    ONBOARDING = 1
    ACTIVE = 2
    CHURNED = 3


class Channel(IntEnum):
    """How a customer was acquired: a former customer who buys again is a win-back, whatever
    brought them back; advertising and referral count first-time customers."""

    INITIAL = 0
    ADS = 1
    REFERRAL = 2
    WIN_BACK = 3


CHANNEL_NAMES = np.array([c.name.lower() for c in Channel], dtype=object)
"""The customer table's channel column, by channel number (Channel's values are 0, 1, 2...)."""

CUSTOMER_TABLE_COLUMNS = [
    "person",
    "spell",
    "acquired_step",
    "channel",
    "churn_step",
    "cause",
    "arpu",
    "lifetime_revenue",
]


@dataclass
class Tally:
    """Flows counted during one step (simulated people and unscaled money)."""

    new_ads: int = 0
    new_referral: int = 0
    new_win_back: int = 0
    returned: int = 0
    # Who left this step: (ARPU, baseline propensity theta, cause index), as arrays or floats;
    # base counts churn by cause and values the revenue lost from these.
    leavers: list[tuple] = field(default_factory=list)
    experiences_good: int = 0
    experiences_bad: int = 0
    problems_arising: int = 0
    problems_detected: int = 0
    problems_contacted: int = 0
    problems_resolved: int = 0
    outreach_contacts: int = 0
    reviews_posted: int = 0
    review_stars: float = 0.0
    csat_respondents: int = 0
    # Settled by base at the end of each period (see CustomerModel._settle):
    churn_by_cause: np.ndarray | None = None  # (causes,) leavers by cause
    lost: np.ndarray | None = None  # (2, causes) revenue lost: within the horizon, lifetime
    cost_programme: float = 0.0  # programme cost (unscaled), outreach contacts excluded
    customer_steps: int = 0  # customers at the start of the reported step (set by step())
    csat_satisfied: int = 0
    revenue: float = 0.0

    def absorb(self, other: Tally) -> None:
        """Add a later period's settled flows to this one (a step of several periods)."""
        for f in fields(self):
            if f.name == "leavers":
                continue
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, theirs if mine is None else mine + theirs)


@dataclass
class Census:
    """Stocks at the end of a step."""

    prospects: int
    onboarding: int
    active: int
    churned: int
    promoters: int
    detractors: int
    satisfaction_sum: float
    problems_open: int


@dataclass(frozen=True)
class Memory:
    """Fixed per-run constants of memory, walk-away and money (the levers live in Schedule)."""

    decay: float  # share of the recent-bad-experience count left after one step
    intercept: float  # walk-away curve: sigmoid(intercept + slope (k - 1) - tolerance)
    slope: float
    step_discount: float

    @classmethod
    def from_scenario(cls, spec: Scenario) -> Memory:
        intercept, slope = spec.walk_away_curve
        return cls(
            decay=rules.decay_factor(spec.behaviour.memory_half_life),
            intercept=intercept,
            slope=slope,
            step_discount=rules.step_discount_rate(
                spec.economics.discount_rate, spec.time.steps_per_year
            ),
        )


def periods_of(spec: Scenario) -> tuple[Scenario, np.ndarray]:
    """(the scenario per simulated period, periods in each reported step).

    A step of a week or less is one period. A longer step (month, quarter, year) is simulated
    as its weeks: the scenario is restated per week and step i covers weeks round((i - 1) w) + 1
    to round(i w), w = 52 / steps per year (a month is 4 or 5 weeks, 52 a year in all).
    """
    weeks = 52.0 / spec.time.steps_per_year
    horizon = spec.time.horizon
    if weeks <= 1.0 + 1e-9:
        return spec, np.ones(horizon, dtype=np.int64)
    bounds = np.round(np.arange(horizon + 1) * weeks).astype(np.int64)
    return apply_overrides(spec, {"time.step": "week"}), np.diff(bounds)


def resolve_scenario(scenario: Scenario | str | Path | None, overrides: dict) -> Scenario:
    """A Scenario from an object, a YAML path or None (all defaults), with dotted overrides."""
    if scenario is None:
        spec = Scenario()
    elif isinstance(scenario, Scenario):
        spec = scenario
    else:
        spec = load_scenario(scenario)
    return apply_overrides(spec, overrides)


class CustomerModel(mesa.Model):
    """Base of both engines: one simulated market under one strategy.

    ``CustomerModel(scenario, rng=seed, **{"strategy.detection": 0.5})``: the keyword arguments
    are dotted scenario keys, so ``mesa.batch_run`` can sweep any field.
    The scenario is kept as ``model.spec`` (Mesa 3.5 reserves ``model.scenario`` for its own
    experiment class).
    """

    engine = "base"
    SHARED_STATE = ("now", "running", "review_score", "_reviews", "_cumulative", "_walked",
                    "_exposure", "churn_by_cause", "lost_by_cause", "metrics", "_census_now",
                    "_customers")  # fmt: skip
    """What stepping changes in this base, by attribute name (see :attr:`dynamic`)."""
    dynamic: tuple[str, ...] = ()
    """Every attribute stepping changes (besides Mesa's clocks, generators and records): what
    :mod:`cxsim.checkpoint` saves so that a run can continue; empty for an engine whose runs
    are not saved as they go."""

    def __init__(
        self,
        scenario: Scenario | str | Path | None = None,
        *,
        rng: Any = None,
        **overrides: Any,
    ) -> None:
        super().__init__(rng=rng)
        given = resolve_scenario(scenario, overrides)
        guards.check(given, given.name, self.engine)  # refuse before allocating
        # A step longer than a week is simulated as its weeks (periods) and reported as one
        # step, so durations and chances mean the same in calendar time whatever the step.
        self.spec, self.calendar = periods_of(given)
        self.memory = Memory.from_scenario(self.spec)
        self.schedule = Schedule(self.spec)
        self.levers = self.schedule.at(0)
        spec = self.spec
        self.n = spec.population.size
        self.horizon = given.time.horizon  # steps, as reported
        self.periods = int(self.calendar.sum())  # periods simulated, self.now counts them
        self.now = 0
        self.causes = (*spec.touchpoint_names, "baseline")
        self._churn_keys = [f"churn_by_{cause}" for cause in self.causes]
        self._connect(spec.network)  # first: the network's draws come before the traits'
        self.review_score = spec.behaviour.reviews.initial_score
        self._reviews: deque[tuple[int, float]] = deque(maxlen=spec.behaviour.reviews.window)
        self._cumulative: dict[str, float] = {}
        self._walked = 0  # walk-away churns so far, and customer-steps they came from
        self._exposure = 0
        self.churn_by_cause = np.zeros(len(self.causes), np.int64)
        self.lost_by_cause = np.zeros((2, len(self.causes)))  # horizon, lifetime (unscaled)
        self.metrics: dict[str, float] = {}
        self._setup_people(self._draw_traits())
        self.datacollector = MetricsCollector(
            model_reporters={name: partial(_metric, name=name) for name in metric_names(spec)}
        )
        self._census_now = self._census()
        self._customers = self._census_now.onboarding + self._census_now.active
        start = self.new_tally()
        self._settle(start, self._customers)
        self._record(start)
        self.running = self.horizon > 0

    # --- what an engine provides ---------------------------------------------------------------

    def _connect(self, spec: Network) -> None:
        """Draw the social network from the run's generator (see :mod:`cxsim.network`) and
        keep it in the form this engine reads."""
        raise NotImplementedError

    def _setup_people(self, traits: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _advance(self, t: int) -> Tally:
        """Move every person through one step, reading only start-of-step state of others."""
        raise NotImplementedError

    def _census(self) -> Census:
        raise NotImplementedError

    def _spells(self) -> pd.DataFrame:
        """Columns person, spell, acquired_step, channel (int), churn_step (-1: still a
        customer), cause ('' while a customer), arpu: one row per customer spell so far."""
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------

    def _draw_traits(self) -> dict[str, np.ndarray]:
        """Lifelong individual traits, drawn once per person from the run's generator."""
        b = self.spec.behaviour
        n, rng = self.n, self.rng
        stage = np.full(n, Stage.PROSPECT, dtype=np.int8)
        stage[rng.permutation(n)[: self.spec.population.customers]] = Stage.ACTIVE
        return {
            "stage": stage,
            "resting": _beta_by_moments(rng, b.satisfaction.mean, b.satisfaction.sd, n),
            "theta": rng.beta(b.baseline_churn.alpha, b.baseline_churn.beta, n),
            "tolerance": rng.normal(0.0, b.walk_away.tolerance_sd, n),
            "arpu": _lognormal_by_moments(
                rng, self.spec.economics.arpu.mean, self.spec.economics.arpu.sd, n
            ),
            "reads_reviews": rng.random(n) < b.reviews.read_share,
        }

    def new_tally(self) -> Tally:
        """An empty tally for one step."""
        return Tally()

    def step(self) -> None:
        # Mesa counts the step before calling this: the first step is 1.
        total, served = None, self._customers  # customers at the start of the reported step
        for _ in range(int(self.calendar[self.steps - 1])):
            customers_before = self._customers
            self.now += 1
            self.levers = self.schedule.at(self.now)
            tally = self._advance(self.now)
            self._update_reviews(tally)
            self._census_now = self._census()
            self._customers = self._census_now.onboarding + self._census_now.active
            self._settle(tally, customers_before)
            if total is None:
                total = tally
            else:
                total.absorb(tally)
        total.customer_steps = served  # once per reported step, not once per week in it
        self._record(total)
        self.running = self.steps < self.horizon

    def _update_reviews(self, tally: Tally) -> None:
        """The public score: mean stars of the reviews posted in the last ``window`` steps."""
        self._reviews.append((tally.reviews_posted, tally.review_stars))
        count = sum(c for c, _ in self._reviews)
        if count:
            self.review_score = sum(s for _, s in self._reviews) / count

    def review_multiplier(self) -> float:
        r = self.spec.behaviour.reviews
        return float(rules.review_factor(self.review_score, r.neutral_score, r.weight))

    def _value_churn(self, tally: Tally, customers_before: int) -> tuple[np.ndarray, np.ndarray]:
        """Churn by cause this step, and the revenue lost with it (horizon, lifetime) by cause.

        A leaver is valued at the revenue they would still have paid under the churn they would
        still have faced: their own baseline propensity theta plus the walk-away rate this
        scenario has shown so far (walk-away churns per customer-step, steps 1..t). So a leaver
        is not assumed to stay to the horizon, nor to face only the baseline hazard.
        """
        causes = len(self.causes)
        if self.now > 0:  # every period's customers are exposed, whether or not anyone left
            self._exposure += customers_before
        if not tally.leavers:
            return np.zeros(causes, np.int64), np.zeros((2, causes))
        arpu, theta, cause = (
            np.concatenate([np.atleast_1d(x) for x in column])
            for column in zip(*tally.leavers, strict=True)
        )
        cause = cause.astype(np.int64)
        counts = np.bincount(cause, minlength=causes)
        self._walked += len(cause) - int(counts[-1])  # all but the baseline churn
        hazard = theta.astype(np.float64) + self._walked / max(self._exposure, 1)
        arpu = arpu.astype(np.float64)
        steps_left = self.periods - self.now + 1
        value = np.empty((2, causes))
        value[0] = np.bincount(
            cause, rules.expected_revenue(arpu, hazard, steps_left), minlength=causes
        )
        value[1] = np.bincount(
            cause, rules.lifetime_value(arpu, hazard, self.memory.step_discount), minlength=causes
        )
        return counts, value

    def _settle(self, tally: Tally, customers_before: int) -> None:
        """Close one period's books: churn by cause and its lost revenue, the programme cost,
        from the customers at the period's start."""
        tally.churn_by_cause, tally.lost = self._value_churn(tally, customers_before)
        tally.leavers = []
        self.churn_by_cause += tally.churn_by_cause
        self.lost_by_cause += tally.lost
        if self.now > 0:
            lv, scale = self.levers, self.spec.population.represents
            tally.cost_programme = lv.cost_per_customer * customers_before + lv.cost_fixed / scale

    def _record(self, tally: Tally) -> None:
        """The step's metrics from its settled flows and the stocks at its end."""
        spec, census = self.spec, self._census_now
        scale = spec.population.represents
        customers = census.onboarding + census.active
        customers_before = self.metrics.get("customers", customers)
        new = tally.new_ads + tally.new_referral + tally.new_win_back
        by_cause, lost = tally.churn_by_cause.tolist(), tally.lost
        churn = sum(by_cause)
        contacts = tally.problems_contacted
        m: dict[str, float] = {
            "prospects": census.prospects,
            "onboarding": census.onboarding,
            "active": census.active,
            "churned": census.churned,
            "customers": customers,
            "new_customers": new,
            "new_customers_ads": tally.new_ads,
            "new_customers_referral": tally.new_referral,
            "new_customers_win_back": tally.new_win_back,
            "returned": tally.returned,
            "churn": churn,
            "churn_rate": churn / customers_before if customers_before else 0.0,
        }
        m.update(zip(self._churn_keys, by_cause, strict=True))
        m.update(
            mean_satisfaction=census.satisfaction_sum / customers if customers else 0.0,
            csat=100.0 * tally.csat_satisfied / tally.csat_respondents
            if tally.csat_respondents
            else float("nan"),
            nps=rules.net_promoter_score(census.promoters, census.detractors, customers),
            promoters=census.promoters,
            detractors=census.detractors,
            experiences_good=tally.experiences_good,
            experiences_bad=tally.experiences_bad,
            problems_arising=tally.problems_arising,
            problems_detected=tally.problems_detected,
            problems_contacted=contacts,
            problems_resolved=tally.problems_resolved,
            problems_open=census.problems_open,
            outreach_contacts=tally.outreach_contacts,
            reviews_posted=tally.reviews_posted,
            review_score=self.review_score,
        )
        econ = spec.economics
        money = {
            "revenue": tally.revenue,
            "cost_acquisition": econ.acquisition * new,
            "cost_support": econ.support_cost * contacts,
            "cost_programme": tally.cost_programme + econ.retention_cost * tally.outreach_contacts,
        }
        money["costs"] = money["cost_acquisition"] + money["cost_support"] + money["cost_programme"]
        money["profit"] = money["revenue"] - money["costs"]
        # Row sums in one call each (the same pairwise sums as row by row).
        total, experience = lost.sum(axis=1).tolist(), lost[:, :-1].sum(axis=1).tolist()
        money["lost_revenue_horizon"], money["lost_revenue_lifetime"] = total
        money["lost_revenue_experience_horizon"], money["lost_revenue_experience_lifetime"] = (
            experience
        )
        for key, value in money.items():
            m[key] = float(value) * scale
        m["customer_steps"] = tally.customer_steps
        for key in (
            "revenue",
            "costs",
            "profit",
            "lost_revenue_horizon",
            "lost_revenue_experience_horizon",
        ):
            self._cumulative[key] = self._cumulative.get(key, 0.0) + m[key]
            m[f"cumulative_{key}"] = self._cumulative[key]
        self.metrics = m
        self.datacollector.collect(self)

    def losses(self) -> pd.DataFrame:
        """Churn and revenue lost so far by cause (one row per touchpoint, then baseline), with
        each touchpoint's department; money scaled to the represented customer base.

        Columns: cause, department, churn, lost_revenue_horizon, lost_revenue_lifetime.
        """
        scale = self.spec.population.represents
        departments = [t.department or t.name for t in self.spec.touchpoints] + ["baseline"]
        return pd.DataFrame(
            {
                "cause": list(self.causes),
                "department": departments,
                "churn": self.churn_by_cause.astype(np.int64),
                "lost_revenue_horizon": self.lost_by_cause[0] * scale,
                "lost_revenue_lifetime": self.lost_by_cause[1] * scale,
            }
        )

    # --- results ------------------------------------------------------------------------------

    def run(self) -> CustomerModel:
        """Step to the horizon; returns the model for chaining."""
        while self.running:
            self.step()
        return self

    def metrics_frame(self) -> pd.DataFrame:
        """Per-step metrics (step 0 is the initial state) from the DataCollector."""
        frame = self.datacollector.get_model_vars_dataframe()
        frame.insert(0, "step", range(len(frame)))
        return frame.reset_index(drop=True)

    def customer_table(self) -> pd.DataFrame:
        """One row per customer spell: acquisition, churn and revenue, for cohort analysis.

        Unscaled (one simulated person); lifetime revenue counts the steps paid within the run.
        churn_step is -1 and cause empty for customers still active at the end.
        """
        frame = self._spells()
        end = np.where(frame["churn_step"] >= 0, frame["churn_step"], self.now + 1)
        frame["lifetime_revenue"] = frame["arpu"] * np.maximum(end - frame["acquired_step"] - 1, 0)
        if len(self.calendar) and self.calendar.max() > 1:  # periods back to reported steps
            bounds = np.concatenate([[0], np.cumsum(self.calendar)])
            for col in ("acquired_step", "churn_step"):
                stamp = frame[col].to_numpy()
                frame[col] = np.where(stamp > 0, np.searchsorted(bounds, stamp), stamp)
        frame["channel"] = CHANNEL_NAMES[frame["channel"].to_numpy()]
        return frame.sort_values(["person", "spell"], kind="stable").reset_index(drop=True)


class MetricsCollector(mesa.DataCollector):
    """Mesa's DataCollector, recording the step's metrics dict without a deep copy per value.

    Every reporter reads one number from ``model.metrics``, a fresh dict each step, so copying
    is not needed; skipping it saves a tenth of a step at 10,000 people. Everything else
    (``model_vars``, ``get_model_vars_dataframe``, ``batch_run``) is Mesa's own.
    """

    def collect(self, model: CustomerModel) -> None:
        if hasattr(self, "_collection_steps"):  # Mesa 3.4+ records when each row was taken:
            # the step (Mesa records its clock, the same here, but a run that went on from a
            # saved state restarts Mesa's clock; see cxsim.checkpoint)
            self._collection_steps.append(model.steps)
        metrics = model.metrics
        for name, values in self.model_vars.items():
            values.append(metrics[name])

    def records(self) -> dict:
        """What has been recorded (the values, and on Mesa 3.4+ each row's step), to save."""
        kept = {"model_vars": self.model_vars}
        if hasattr(self, "_collection_steps"):
            kept["collection_steps"] = self._collection_steps
        return kept

    def restore(self, kept: dict) -> None:
        """Go back to what :meth:`records` returned (a run that goes on from a saved state)."""
        self.model_vars = kept["model_vars"]
        if "collection_steps" in kept:
            self._collection_steps = kept["collection_steps"]


def _metric(model: CustomerModel, name: str) -> float:
    """Model reporter: one metric of the current step (bound to a name with partial)."""
    return model.metrics[name]


def _beta_by_moments(rng: np.random.Generator, mean: float, sd: float, n: int) -> np.ndarray:
    var = sd * sd
    if var <= 0 or mean <= 0 or mean >= 1:
        return np.full(n, mean)
    common = mean * (1 - mean) / var - 1
    if common <= 0:
        common = 1e-3
    return rng.beta(mean * common, (1 - mean) * common, n)


def _lognormal_by_moments(rng: np.random.Generator, mean: float, sd: float, n: int) -> np.ndarray:
    if sd <= 0:
        return np.full(n, mean)
    sigma2 = np.log1p((sd / mean) ** 2)
    return rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2), n)
