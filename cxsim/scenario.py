"""The scenario: every input of one simulated market and strategy, typed and validated.

A scenario is an immutable pydantic model. Every field has a default and a unit in its
description, so an empty YAML mapping is a complete, runnable scenario (the shipped market under
reactive service). Reading YAML files, line numbers and ``--set`` overrides live in
:mod:`cxsim.loading`; this module only says what a valid scenario is.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

STAGES = ("prospect", "onboarding", "active")
"""Journey stages at which a touchpoint can be visited (churned people visit none)."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

Number = Annotated[float, Strict()]
"""A real number: whole numbers are accepted, true/false and text are not."""
Whole = Annotated[int, Strict()]
"""A whole number: 52 is accepted, 52.0 and true are not."""


class Section(BaseModel):
    """Base of every scenario section: immutable, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _share(default: float, text: str) -> float:
    return Field(default, ge=0.0, le=1.0, description=f"{text} (share 0-1)")


class Time(Section):
    step: Literal["day", "week", "month", "quarter", "year"] = Field(
        "week",
        description="Length of one step: day, week, month, quarter or year; defaults below are "
        "per week and are converted, and a value may say its unit, e.g. '3 months' (unit)",
    )
    steps_per_year: Number = Field(
        52.0,
        gt=0,
        description="Steps in one year: follows from step (365, 52, 12, 4, 1); if given it "
        "must agree (steps/year)",
    )
    horizon: Whole = Field(156, ge=1, le=100_000, description="Steps simulated (steps)")

    @model_validator(mode="before")
    @classmethod
    def _per_year_from_step(cls, data: object) -> object:
        from cxsim.units import STEPS_PER_YEAR

        if isinstance(data, dict) and "steps_per_year" not in data:
            step = data.get("step")
            if isinstance(step, str) and step in STEPS_PER_YEAR:
                return {**data, "steps_per_year": STEPS_PER_YEAR[step]}
        return data

    @model_validator(mode="after")
    def _agree(self) -> Time:
        from cxsim.units import STEPS_PER_YEAR

        if self.steps_per_year != STEPS_PER_YEAR[self.step]:
            raise ValueError(
                f"steps_per_year must be {STEPS_PER_YEAR[self.step]:g} for step "
                f"'{self.step}', found {self.steps_per_year:g}"
            )
        return self


class Population(Section):
    customers: Whole = Field(2000, ge=0, description="Customers at step 0 (people)")
    prospects: Whole = Field(8000, ge=0, description="Prospects in the market at step 0 (people)")
    represents: Number = Field(
        100.0,
        gt=0,
        description="Real customers one simulated person stands for; scales money (people)",
    )

    @model_validator(mode="after")
    def _someone(self) -> Population:
        if self.customers + self.prospects < 2:
            raise ValueError("customers + prospects must be at least 2")
        return self

    @property
    def size(self) -> int:
        return self.customers + self.prospects


class NetworkKind(StrEnum):
    well_mixed = "well_mixed"
    watts_strogatz = "watts_strogatz"
    barabasi_albert = "barabasi_albert"
    erdos_renyi = "erdos_renyi"
    ring = "ring"


class Network(Section):
    kind: NetworkKind = Field(
        NetworkKind.watts_strogatz,
        description="Social network: well_mixed, watts_strogatz, barabasi_albert, erdos_renyi "
        "or ring (kind)",
    )
    mean_degree: Number = Field(
        10.0, ge=0, description="Mean number of social contacts per person (people)"
    )
    rewiring: Number = _share(0.1, "Watts-Strogatz rewiring probability per edge")


class Touchpoint(Section):
    name: str = Field(description="Identifier used in results, e.g. churn_by_billing (lowercase)")
    department: str = Field("", description="Department that owns the touchpoint (text)")
    stages: tuple[Literal["prospect", "onboarding", "active"], ...] = Field(
        description="Journey stages at which it is visited (list of prospect, onboarding, active)"
    )
    visit_rate: Number = _share(0.5, "Chance a person in those stages visits it in a step")
    good: Number = _share(0.1, "Chance a visit is a good experience")
    bad: Number = _share(0.01, "Chance a visit is a bad experience")
    problem_rate: Number = _share(
        0.0, "Chance per step a customer in those stages gets a problem here"
    )

    @model_validator(mode="after")
    def _check(self) -> Touchpoint:
        if not _NAME.match(self.name) or self.name == "baseline":
            raise ValueError(
                f"name must be lowercase letters, digits and _ (and not 'baseline'), "
                f"found {self.name!r}"
            )
        if self.good + self.bad > 1:
            raise ValueError(f"good + bad must be at most 1, found {self.good + self.bad:g}")
        if not self.stages:
            raise ValueError("stages must name at least one stage")
        return self


def _default_touchpoints() -> tuple[Touchpoint, ...]:
    rows = [
        # name, department, stages, visit, good, bad, problem
        ("advertising", "marketing", ("prospect",), 0.5, 0.10, 0.010, 0.0),
        ("website", "marketing", ("prospect", "onboarding", "active"), 0.3, 0.15, 0.010, 0.0),
        ("sales", "sales", ("prospect",), 0.05, 0.30, 0.050, 0.0),
        ("onboarding", "customer_success", ("onboarding",), 1.0, 0.30, 0.010, 0.010),
        ("product", "product", ("onboarding", "active"), 1.0, 0.08, 0.001, 0.0030),
        ("delivery", "fulfilment", ("active",), 0.2, 0.10, 0.008, 0.0020),
        ("billing", "finance", ("active",), 0.25, 0.02, 0.002, 0.0010),
        ("email", "marketing", ("active",), 0.5, 0.05, 0.001, 0.0),
        ("social_media", "marketing", ("active",), 0.1, 0.10, 0.005, 0.0),
    ]
    return tuple(
        Touchpoint(name=n, department=d, stages=s, visit_rate=v, good=g, bad=b, problem_rate=p)
        for n, d, s, v, g, b, p in rows
    )


class Satisfaction(Section):
    mean: Number = _share(0.75, "Mean resting satisfaction, the level people return to")
    sd: Number = Field(
        0.12, ge=0, lt=0.5, description="Spread of resting satisfaction across people (0-1 scale)"
    )
    relaxation: Number = _share(0.1, "Share of the gap to resting satisfaction closed per step")
    gain: Number = _share(0.04, "Share of the room above closed by one good experience")
    loss: Number = _share(0.12, "Share of satisfaction lost to one bad experience")

    @model_validator(mode="after")
    def _feasible(self) -> Satisfaction:
        if 0 < self.mean < 1 and self.sd**2 >= self.mean * (1 - self.mean):
            limit = (self.mean * (1 - self.mean)) ** 0.5
            raise ValueError(f"sd must be below {limit:.3f} for mean {self.mean:g}")
        return self


class Survey(Section):
    after_one: Number = Field(
        0.17, gt=0, lt=1, description="Share who walk away after one bad experience (share 0-1)"
    )
    after_several: Number = Field(
        0.59, gt=0, lt=1, description="Share who walk away after several (share 0-1)"
    )
    several: Whole = Field(
        3, ge=2, le=50, description="How many bad experiences 'several' means (count)"
    )

    @model_validator(mode="after")
    def _order(self) -> Survey:
        if self.after_several <= self.after_one:
            raise ValueError("after_several must be larger than after_one")
        return self


class WalkAway(Section):
    a: Number | None = Field(
        None, description="Intercept of the walk-away curve; null: fitted to survey (log-odds)"
    )
    b: Number | None = Field(
        None, description="Rise per extra recent bad experience; null: fitted to survey (log-odds)"
    )
    survey: Survey = Field(default_factory=Survey, description="Survey figures to fit a and b")
    tolerance_sd: Number = Field(
        0.5, ge=0, le=5, description="Spread of individual tolerance shifts (log-odds)"
    )

    @model_validator(mode="after")
    def _both_or_none(self) -> WalkAway:
        if (self.a is None) != (self.b is None):
            raise ValueError("give both a and b, or neither (then they are fitted to survey)")
        if self.a is None:
            self.curve()  # fails here, with the field named, if the survey cannot be fitted
        return self

    def curve(self) -> tuple[float, float]:
        """(a, b): as given, or fitted to the survey figures."""
        if self.a is not None and self.b is not None:
            return (self.a, self.b)
        from cxsim.calibration import fit_walk_away

        s = self.survey
        try:
            fit = fit_walk_away(s.after_one, s.after_several, s.several, self.tolerance_sd)
        except ValueError:
            fit = None
        if fit is None or not (abs(fit.a) < 50 and abs(fit.b) < 50):
            raise ValueError(
                f"no walk-away curve gives {s.after_one:g} after one and {s.after_several:g} "
                f"after {s.several} bad experiences with tolerance_sd {self.tolerance_sd:g}; "
                "bring the figures closer together or lower tolerance_sd"
            )
        return (fit.a, fit.b)


class BaselineChurn(Section):
    alpha: Number = Field(
        2.0, gt=0, description="Alpha of Beta(alpha, beta), the per-step baseline hazard (shape)"
    )
    beta: Number = Field(
        1500.0, gt=0, description="Beta of Beta(alpha, beta), the per-step baseline hazard (shape)"
    )
    satisfaction_elasticity: Number = Field(
        3.0,
        ge=0,
        description="Hazard x exp(elasticity x (resting - current satisfaction)); 0: off (1/unit)",
    )


class Referral(Section):
    rate: Number = _share(0.05, "Chance per step a promoter recommends to one prospect neighbour")
    conversion: Number = _share(0.25, "Chance a recommendation turns the prospect into a customer")


class NegativeWordOfMouth(Section):
    rate: Number = _share(0.1, "Chance per step a detractor warns one prospect neighbour")
    impact: Number = _share(0.5, "Share of a warned prospect's conversion chance lost")
    churned_steps: Whole = Field(
        26, ge=0, description="Steps a churned detractor keeps warning others (steps)"
    )


class Reviews(Section):
    read_share: Number = _share(0.88, "Share of prospects who read reviews before buying")
    post_rate: Number = _share(0.005, "Chance per step a customer posts a review")
    post_rate_after_bad: Number = _share(
        0.05, "Chance a customer posts a review in a step with a bad experience"
    )
    window: Whole = Field(26, ge=1, description="Steps of reviews in the public score (steps)")
    initial_score: Number = Field(4.0, ge=1, le=5, description="Score before any review (stars)")
    neutral_score: Number = Field(
        4.0, ge=1, le=5, description="Score at which reviews neither help nor hurt (stars)"
    )
    weight: Number = Field(
        0.5, ge=0, le=5, description="Change of a reader's conversion chance per star (share)"
    )


class WinBack(Section):
    enabled: bool = Field(True, description="Churned people may return to the market (true/false)")
    wait: Whole = Field(26, ge=0, description="Steps after churn before they may return (steps)")
    rate: Number = _share(0.02, "Chance per step after the wait of returning to the market")


class Behaviour(Section):
    satisfaction: Satisfaction = Field(default_factory=Satisfaction)
    memory_half_life: Number = Field(
        13.0, gt=0, description="Half-life of the count of recent bad experiences (steps)"
    )
    walk_away: WalkAway = Field(default_factory=WalkAway)
    baseline_churn: BaselineChurn = Field(default_factory=BaselineChurn)
    onboarding_steps: Whole = Field(
        4, ge=0, description="Steps a new customer stays onboarding (steps)"
    )
    problem_fade: Number = _share(0.3, "Chance per step an open problem goes away without support")
    ad_conversion: Number = _share(
        0.002, "Chance per step a prospect buys because of advertising (Bass p)"
    )
    referral: Referral = Field(default_factory=Referral)
    negative_word_of_mouth: NegativeWordOfMouth = Field(default_factory=NegativeWordOfMouth)
    reviews: Reviews = Field(default_factory=Reviews)
    win_back: WinBack = Field(default_factory=WinBack)


class StrategyCosts(Section):
    per_customer: Number = Field(
        0.0, ge=0, description="Programme cost per customer per step (currency/customer/step)"
    )
    fixed: Number = Field(0.0, ge=0, description="Programme cost per step (currency/step)")


class Strategy(Section):
    name: str = Field("reactive", description="Label of the strategy in results and charts (text)")
    detection: Number = _share(
        0.0, "Share of new problems found and fixed before the customer notices"
    )
    detection_delight: Number = _share(
        0.3, "Chance a proactive fix is noticed as a good experience"
    )
    prevention: Number = _share(0.0, "Share of problems removed at the root (lowers problem rates)")
    quality_uplift: Number = _share(
        0.0, "Share of bad visits removed and of neutral visits made good, at every touchpoint"
    )
    outreach: Number = _share(0.0, "Share of customers given a personal proactive contact per step")
    support_contact: Number = _share(
        0.4, "Chance a customer with an open problem contacts support in a step"
    )
    first_contact_resolution: Number = _share(0.7, "Chance support resolves a problem on a contact")
    recovery_delight: Number = _share(
        0.3, "Chance a resolved contact is a good experience (service recovery)"
    )
    costs: StrategyCosts = Field(default_factory=StrategyCosts)


class Arpu(Section):
    mean: Number = Field(
        12.0, gt=0, description="Mean revenue per customer per step (currency/step)"
    )
    sd: Number = Field(
        6.0, ge=0, description="Spread of revenue per customer, lognormal (currency/step)"
    )


class Economics(Section):
    currency: str = Field("USD", description="Currency label for money outputs (text)")
    arpu: Arpu = Field(default_factory=Arpu)
    retention_cost: Number = Field(
        20.0, ge=0, description="Cost of one retention action, e.g. an outreach contact (currency)"
    )
    acquisition_to_retention: Number = Field(
        7.0, ge=0, description="Acquisition cost as a multiple of retention cost (ratio)"
    )
    acquisition_cost: Number | None = Field(
        None, ge=0, description="Cost per new customer; null: the ratio x retention cost (currency)"
    )
    support_cost: Number = Field(8.0, ge=0, description="Cost per support contact (currency)")
    discount_rate: Number = Field(
        0.08, ge=0, le=1, description="Annual discount rate for lifetime value (share/year)"
    )

    @property
    def acquisition(self) -> float:
        """Cost per new customer: the explicit value, else the ratio times retention cost."""
        if self.acquisition_cost is not None:
            return self.acquisition_cost
        return self.acquisition_to_retention * self.retention_cost


class Run(Section):
    seed: Whole = Field(20261123, ge=0, description="Root seed of all replications (integer)")
    replications: Whole = Field(10, ge=1, le=100_000, description="Independent runs (count)")


class Scenario(Section):
    """A complete market, company and strategy: the input of one simulation."""

    name: str = Field("scenario", description="Label of the scenario in results (text)")
    description: str = Field("", description="Free text shown in reports (text)")
    time: Time = Field(default_factory=Time)
    population: Population = Field(default_factory=Population)
    network: Network = Field(default_factory=Network)
    touchpoints: tuple[Touchpoint, ...] = Field(
        default_factory=_default_touchpoints,
        min_length=1,
        max_length=100,
        description="Places of contact in journey order, 1 to 100 (list of touchpoints[] below)",
    )
    behaviour: Behaviour = Field(default_factory=Behaviour)
    strategy: Strategy = Field(default_factory=Strategy)
    economics: Economics = Field(default_factory=Economics)
    run: Run = Field(default_factory=Run)

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, ignored_types=(cached_property,)
    )

    @model_validator(mode="after")
    def _unique_touchpoints(self) -> Scenario:
        names = [t.name for t in self.touchpoints]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"touchpoint names must be unique, repeated: {', '.join(dupes)}")
        return self

    @property
    def touchpoint_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.touchpoints)

    @cached_property
    def walk_away_curve(self) -> tuple[float, float]:
        """(a, b) of the walk-away curve: as given, or fitted to the survey figures."""
        return self.behaviour.walk_away.curve()
