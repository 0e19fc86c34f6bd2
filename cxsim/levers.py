"""The levers and chances in force at each step: one place both engines read from.

A scenario's touchpoint chances and strategy levers are not fixed for a run: events change them
for a while (an outage wave, a season of bad deliveries), and a strategy may start late or ramp
up. :class:`Schedule` turns the scenario into the :class:`Levers` of any step, per stage and
touchpoint as arrays, so events, roll-outs and per-touchpoint levers change what it returns,
never the engines' code. Levers are built once per distinct phase and cached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from cxsim import rules
from cxsim.scenario import STAGES, Scenario, event_scenario
from cxsim.units import week_share

N_STAGES = 4  # prospect, onboarding, active, churned (cxsim.engines.base.Stage)


@dataclass(frozen=True)
class Levers:
    """What a step needs from the scenario: chances per stage x touchpoint, and the strategy.

    Arrays: ``bad``/``good`` (4, T) chance per step of a bad / good visit at each touchpoint
    for a person in each stage; ``problem`` (4, T) chance of a new problem; ``problem_total`` (4,)
    chance of any; ``problem_cumulative`` (4, T) cumulative share of each touchpoint among them;
    ``detection`` (T,) share of new problems at each touchpoint found and fixed first;
    ``severity`` (T,) weight of a bad experience at each touchpoint.
    """

    bad: np.ndarray
    good: np.ndarray
    problem: np.ndarray
    problem_total: np.ndarray
    problem_cumulative: np.ndarray
    detection: np.ndarray
    severity: np.ndarray
    detection_delight: float
    support_contact: float
    first_contact_resolution: float
    recovery_delight: float
    outreach: float
    outreach_at_risk: bool
    cost_per_customer: float  # programme cost per customer per step, touchpoint levers included
    cost_fixed: float  # programme cost per step
    draws: dict = field(default_factory=dict, compare=False, repr=False)

    def visit_draws(self, stage: int) -> list[tuple[int, float, float]]:
        """(touchpoint, P(bad visit), P(bad or good visit)) for each touchpoint a person in
        ``stage`` can feel: bad if a uniform u is below the first, good if below the second.
        Touchpoints that cannot be good or bad need no draw."""
        if stage not in self.draws:
            bad, good = self.bad[stage], self.good[stage]
            self.draws[stage] = [
                (j, float(bad[j]), float(bad[j] + good[j]))
                for j in range(len(bad))
                if bad[j] + good[j] > 0
            ]
        return self.draws[stage]

    @cached_property  # a frozen dataclass without slots: cached in the instance's __dict__
    def uniform_severity(self) -> bool:
        """Every bad experience weighs 1 (then counts stay whole numbers)."""
        return bool(np.all(self.severity == 1.0))


def build(spec: Scenario, share: float = 1.0) -> Levers:
    """The levers of ``spec`` with its proactive levers and programme costs at ``share`` of
    their value (0 before the strategy starts, rising during a ramp)."""
    strategy = spec.strategy
    T = len(spec.touchpoints)
    applies = np.zeros((N_STAGES, T), dtype=bool)
    visit = np.zeros(T)
    good_v, bad_v, rate, detection = (np.zeros(T) for _ in range(4))
    cost = strategy.costs.per_customer
    for j, tp in enumerate(spec.touchpoints):
        for stage in tp.stages:
            applies[STAGES.index(stage), j] = True
        own = strategy.touchpoints.get(tp.name)

        def lever(name: str, own=own) -> float:
            value = getattr(own, name) if own is not None else None
            return share * (getattr(strategy, name) if value is None else value)

        good_v[j], bad_v[j] = rules.touchpoint_chances(tp.good, tp.bad, lever("quality_uplift"))
        rate[j] = rules.problem_rate(tp.problem_rate, lever("prevention"))
        detection[j] = lever("detection")
        visit[j] = tp.visit_rate
        cost += own.cost_per_customer if own is not None else 0.0
    visit = np.where(applies, visit * week_share(spec.time.steps_per_year), 0.0)
    problem = np.where(applies, rate, 0.0)
    problem[0] = 0.0  # problems are a customer's; prospects only visit
    total = 1.0 - np.prod(1.0 - problem, axis=1)
    sums = problem.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(problem, axis=1) / np.where(sums > 0, sums, 1.0)
    cumulative[cumulative > 1.0 - 1e-9] = 1.0  # no rounding gap above the last touchpoint
    return Levers(
        bad=visit * bad_v,
        good=visit * good_v,
        problem=problem,
        problem_total=total,
        problem_cumulative=cumulative,
        detection=detection,
        severity=np.array(spec.severities, dtype=np.float64),
        detection_delight=strategy.detection_delight,
        support_contact=strategy.support_contact,
        first_contact_resolution=strategy.first_contact_resolution,
        recovery_delight=strategy.recovery_delight,
        outreach=share * strategy.outreach,
        outreach_at_risk=strategy.outreach_target == "at_risk",
        cost_per_customer=share * cost,
        cost_fixed=share * strategy.costs.fixed,
    )


class Schedule:
    """The levers of every step of one scenario: events and the strategy's start and ramp."""

    def __init__(self, spec: Scenario) -> None:
        self.spec = spec
        self._cache: dict[tuple, Levers] = {}

    def share(self, t: int) -> float:
        """How much of the proactive programme is in force at step t (0 to 1)."""
        s = self.spec.strategy
        if t < s.start:
            return 0.0
        if s.ramp <= 0:
            return 1.0
        return min(1.0, (t - s.start + 1) / s.ramp)

    def active(self, t: int) -> tuple[int, ...]:
        """Indices of the events in force at step t."""
        return tuple(i for i, e in enumerate(self.spec.events)
                     if e.start <= t < e.start + e.duration)  # fmt: skip

    def at(self, t: int) -> Levers:
        key = (self.active(t), self.share(t))
        if key not in self._cache:
            spec = self.spec
            for i in key[0]:  # events apply in the order the scenario lists them
                spec = event_scenario(spec, self.spec.events[i])
            self._cache[key] = build(spec, key[1])
        return self._cache[key]
