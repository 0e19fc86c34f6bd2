"""The scenario: every input of one simulated market and strategy, typed and validated.

A scenario is an immutable pydantic model. Every field has a default and a unit in its
description, so an empty YAML mapping is a complete, runnable scenario (the shipped market under
reactive service). Reading YAML files, line numbers and ``--set`` overrides live in
:mod:`cxsim.loading`; this module only says what a valid scenario is.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from cxsim import ENGINE_NAMES

STAGES = ("prospect", "onboarding", "active")
"""Journey stages at which a touchpoint can be visited (churned people visit none)."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

Number = Annotated[float, Strict(), AfterValidator(lambda x: x + 0.0)]
"""A real number: whole numbers are accepted, true/false and text are not. -0.0 is read as 0
(NumPy refuses a scale of -0.0 as negative)."""
Whole = Annotated[int, Strict()]
"""A whole number: 52 is accepted, 52.0 and true are not."""


class Section(BaseModel):
    """Base of every scenario section: immutable, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _hash_by_value(section: BaseModel) -> int:
    """Hash of a section holding mappings (which Python cannot hash): by its canonical JSON."""
    import json

    return hash(json.dumps(section.model_dump(mode="json"), sort_keys=True))


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


def _text_first(value: object) -> object:
    """Refuse a non-text kind before Enum sees it: Enum's own error writes out the whole
    value, which for an alias bomb is billions of items."""
    if not isinstance(value, str | NetworkKind):
        raise ValueError(
            f"expected one of {', '.join(NetworkKind)}, found a {type(value).__name__}"
        )
    return value


class Network(Section):
    kind: Annotated[NetworkKind, BeforeValidator(_text_first)] = Field(
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
    visit_rate: Number = _share(
        0.5, "Chance a person in those stages visits it in a week (a longer step draws one "
        "chance per week in it)",
    )  # fmt: skip
    good: Number = _share(0.1, "Chance a visit is a good experience")
    bad: Number = _share(0.01, "Chance a visit is a bad experience")
    problem_rate: Number = _share(
        0.0, "Chance per step a customer in those stages gets a problem here"
    )
    severity: Number = Field(
        1.0,
        ge=0,
        le=10,
        description="Weight of one bad experience here in memory, satisfaction and the "
        "walk-away count; 1 is a significant failure, the survey's 'bad experience' (weight)",
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
        # name, department, stages, visit, good, bad, problem, severity
        ("advertising", "marketing", ("prospect",), 0.5, 0.10, 0.010, 0.0, 0.3),
        ("website", "marketing", ("prospect", "onboarding", "active"), 0.3, 0.15, 0.010, 0.0, 0.5),
        ("sales", "sales", ("prospect",), 0.05, 0.30, 0.050, 0.0, 0.7),
        ("onboarding", "customer_success", ("onboarding",), 1.0, 0.30, 0.010, 0.020, 1.0),
        ("product", "product", ("onboarding", "active"), 1.0, 0.08, 0.001, 0.0060, 1.0),
        ("delivery", "fulfilment", ("active",), 0.2, 0.10, 0.008, 0.0040, 1.0),
        ("billing", "finance", ("active",), 0.25, 0.02, 0.002, 0.0020, 1.0),
        ("email", "marketing", ("active",), 0.5, 0.05, 0.001, 0.0, 0.3),
        ("social_media", "marketing", ("active",), 0.1, 0.10, 0.005, 0.0, 0.5),
    ]
    return tuple(
        Touchpoint(name=n, department=d, stages=s, visit_rate=v, good=g, bad=b, problem_rate=p,
                   severity=w)
        for n, d, s, v, g, b, p, w in rows
    )  # fmt: skip


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
        None,
        ge=-50,
        le=50,
        description="Intercept of the walk-away curve; null: fitted to survey (log-odds)",
    )
    b: Number | None = Field(
        None,
        ge=-50,
        le=50,
        description="Rise per extra recent bad experience; null: fitted to survey (log-odds)",
    )
    survey: Survey = Field(default_factory=Survey, description="Survey figures to fit a and b")
    tolerance_sd: Number = Field(
        0.5, ge=0, le=5, description="Spread of individual tolerance shifts (log-odds)"
    )

    # The fitted (a, b), kept with the section and pickled with it: a pool's worker then
    # builds its model without fitting again, and without loading SciPy's optimizers (a
    # quarter of a second, which each worker's first run waited for).
    _fitted: tuple[float, float] | None = PrivateAttr(default=None)

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
        if self._fitted is None:
            self._fitted = self._fit()
        return self._fitted

    def _fit(self) -> tuple[float, float]:
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
        le=50,
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
    window: Whole = Field(
        26, ge=1, le=100_000, description="Steps of reviews in the public score (steps)"
    )
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


class TouchpointLevers(Section):
    """Proactive levers for one touchpoint; a lever left out uses the strategy's global value."""

    detection: Number | None = Field(
        None, ge=0, le=1, description="Share of new problems here found and fixed first (share 0-1)"
    )
    prevention: Number | None = Field(
        None, ge=0, le=1, description="Share of problems here removed at the root (share 0-1)"
    )
    quality_uplift: Number | None = Field(
        None, ge=0, le=1, description="Share of bad visits here removed, of neutral made good "
        "(share 0-1)",
    )  # fmt: skip
    cost_per_customer: Number = Field(
        0.0, ge=0, description="Cost of these levers per customer per step "
        "(currency/customer/step)",
    )  # fmt: skip


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
    outreach_target: Literal["random", "at_risk"] = Field(
        "random",
        description="Who gets the outreach contacts: random customers, or customers at risk (a "
        "recent bad experience in memory, or satisfaction below the CSAT line) (kind)",
    )
    support_contact: Number = _share(
        0.4, "Chance a customer with an open problem contacts support in a step"
    )
    first_contact_resolution: Number = _share(0.7, "Chance support resolves a problem on a contact")
    recovery_delight: Number = _share(
        0.3, "Chance a resolved contact is a good experience (service recovery)"
    )
    costs: StrategyCosts = Field(default_factory=StrategyCosts)
    touchpoints: dict[str, TouchpointLevers] = Field(
        default_factory=dict,
        description="Levers per touchpoint by name, e.g. billing: {detection: 0.8}; the "
        "global values apply elsewhere (mapping)",
    )
    start: Whole = Field(
        0, ge=0, description="Step before which the proactive levers and their costs are off "
        "(steps)",
    )  # fmt: skip
    ramp: Whole = Field(
        0, ge=0, description="Steps from the start over which the proactive levers and costs "
        "rise linearly to full (steps)",
    )  # fmt: skip

    __hash__ = _hash_by_value


EVENT_FIELDS = {"touchpoints": ("visit_rate", "good", "bad", "problem_rate"),
                "strategy": ("detection", "detection_delight", "prevention", "quality_uplift",
                             "outreach", "support_contact", "first_contact_resolution",
                             "recovery_delight")}  # fmt: skip
"""What an event may change: touchpoint chances and strategy levers."""


class Event(Section):
    """A change that lasts a while: an outage wave, a season of bad deliveries, a price rise."""

    name: str = Field("event", description="Label of the event in charts (text)")
    start: Whole = Field(1, ge=1, description="First step of the event (steps)")
    duration: Whole = Field(1, ge=1, description="Steps the event lasts (steps)")
    scale: dict[str, Number] = Field(
        default_factory=dict,
        description="Multipliers while it lasts, by dotted key: touchpoints.<name>.<visit_rate, "
        "good, bad or problem_rate> or strategy.<lever> (factor)",
    )
    set: dict[str, Number] = Field(
        default_factory=dict,
        description="Values while it lasts, by the same dotted keys (as the field)",
    )

    @model_validator(mode="after")
    def _keys(self) -> Event:
        for key in (*self.scale, *self.set):
            section, *rest = key.split(".")
            fields = EVENT_FIELDS.get(section, ())
            ok = len(rest) == (2 if section == "touchpoints" else 1) and rest[-1] in fields
            if not ok:
                raise ValueError(
                    f"cannot change {key!r}; expected touchpoints.<name>.<"
                    f"{'|'.join(EVENT_FIELDS['touchpoints'])}> or strategy.<"
                    f"{'|'.join(EVENT_FIELDS['strategy'])}>"
                )
        if not (self.scale or self.set):
            raise ValueError("an event needs scale or set (what it changes)")
        return self

    __hash__ = _hash_by_value


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


class Observed(Section):
    """Figures the company observes; the fit makes the scenario reproduce them (null: unused)."""

    annual_churn: Number | None = Field(
        None, ge=0, lt=1, description="Observed annual churn; null: not used (share/year)"
    )
    nps: Number | None = Field(
        None,
        ge=-100,
        le=100,
        description="Observed NPS over the last year; null: not used (points)",
    )
    csat: Number | None = Field(
        None, ge=0, le=100, description="Observed CSAT over the last year; null: not used (percent)"
    )
    referral_share: Number | None = Field(
        None, ge=0, le=1, description="Share of new customers who came by referral (share 0-1)"
    )
    customer_growth: Number | None = Field(
        None, gt=-1, description="Annual growth of the customer base, e.g. -0.02 (share/year)"
    )


class Tolerances(Section):
    """How closely each observed figure is known: residuals are divided by these, so figures
    in different units can be fitted together, and a residual beyond 1 tolerance is a poor fit."""

    annual_churn: Number = Field(0.01, gt=0, description="Tolerance of annual churn (share/year)")
    nps: Number = Field(3.0, gt=0, description="Tolerance of NPS (points)")
    csat: Number = Field(2.0, gt=0, description="Tolerance of CSAT (percent)")
    referral_share: Number = Field(
        0.03, gt=0, description="Tolerance of the referral share of new customers (share 0-1)"
    )
    customer_growth: Number = Field(
        0.02, gt=0, description="Tolerance of annual customer growth (share/year)"
    )


def _bounds(value: tuple[float, float]) -> tuple[float, float]:
    low, high = value
    if not low < high:
        raise ValueError(f"expected [low, high] with low < high, found [{low:g}, {high:g}]")
    return value


Bounds = Annotated[tuple[Number, Number], AfterValidator(_bounds)]


class Calibration(Section):
    """What `cxsim calibrate` fits: observed figures, unknown parameters and their bounds.

    `cxsim run` ignores this section; the fit and its checks live in :mod:`cxsim.fitting`.
    """

    observed: Observed = Field(default_factory=Observed)
    tolerance: Tolerances = Field(default_factory=Tolerances)
    unknowns: dict[str, Bounds] = Field(
        default_factory=dict,
        description="Dotted scenario keys to fit, each with [low, high] bounds in the field's "
        "own unit, e.g. behaviour.problem_fade: [0.05, 0.6] (mapping)",
    )
    replications: Whole = Field(
        4, ge=1, le=1000, description="Runs per evaluation, the same seeds for all (count)"
    )
    engine: Literal[ENGINE_NAMES] = Field("vector", description="Engine of the fit (name)")
    population_scale: Number = Field(
        1.0,
        gt=0,
        le=1,
        description="Share of customers and prospects simulated while fitting, to fit faster "
        "(share 0-1)",
    )
    horizon: Whole | None = Field(
        None, ge=1, description="Steps simulated while fitting; null: time.horizon (steps)"
    )
    max_evaluations: Whole = Field(
        60, ge=2, le=10_000, description="Most evaluations the fit may use (count)"
    )

    @model_validator(mode="after")
    def _something_to_fit(self) -> Calibration:
        if not self.unknowns:
            raise ValueError("unknowns: name at least one parameter to fit, with [low, high]")
        if not any(v is not None for v in self.observed.model_dump().values()):
            raise ValueError(
                "observed: give at least one figure (annual_churn, nps, csat, referral_share, "
                "customer_growth)"
            )
        for key, bounds in self.unknowns.items():
            problem = _unknown_key_problem(key, bounds)
            if problem:
                raise ValueError(f"unknowns: {key!r}: {problem}")
        return self


def _unknown_key_problem(key: str, bounds: tuple[float, float]) -> str | None:
    """Why a dotted key does not name one number field of a scenario, or its bounds are not
    values that field accepts (None if all is well).

    Touchpoints are named by index or name; whether that touchpoint exists is checked
    against the scenario itself in :func:`Scenario._calibration_targets`.
    """
    import difflib

    model: type[BaseModel] = Scenario
    parts = key.split(".")
    i = 0
    while i < len(parts):
        part = parts[i]
        if part == "calibration" or part == "run":
            return "the calibration and run sections cannot be fitted"
        field = model.model_fields.get(part)
        if field is None:
            close = difflib.get_close_matches(part, list(model.model_fields), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"no field {part!r} here{hint}"
        if part == "touchpoints" and model is Scenario:
            if len(parts) - i != 3:
                return "expected touchpoints.<name or index>.<field>"
            model, i = Touchpoint, i + 2
            continue
        inner = field.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            model, i = inner, i + 1
            continue
        if i != len(parts) - 1:
            return f"{part!r} is a value, not a section"
        if field.annotation not in (float, Number | None):
            return f"{part!r} is not a number field"
        accepts = TypeAdapter(Annotated[float, *field.metadata])
        for bound in bounds:
            try:
                accepts.validate_python(bound)
            except ValidationError as exc:
                need = exc.errors()[0]["msg"].removeprefix("Input should be ")
                return f"expected bounds that the field accepts ({need}), found {bound:g}"
        return None
    return "names a section, not a number field"


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
    events: tuple[Event, ...] = Field(
        default=(), max_length=100,
        description="Changes that last a while, in any order (list of events[] below)",
    )  # fmt: skip
    run: Run = Field(default_factory=Run)
    calibration: Calibration | None = Field(
        None, description="Observed figures and unknowns for `cxsim calibrate`; runs ignore it"
    )

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _unique_touchpoints(self) -> Scenario:
        names = [t.name for t in self.touchpoints]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"touchpoints: names must be unique, repeated: {listed(dupes)}")
        unknown = [("strategy.touchpoints", t) for t in self.strategy.touchpoints
                   if t not in names]  # fmt: skip
        unknown += [(f"events.{i}", key.split(".")[1]) for i, e in enumerate(self.events)
                    for key in (*e.scale, *e.set)
                    if key.startswith("touchpoints.")
                    and key.split(".")[1] not in names]  # fmt: skip
        if unknown:
            where, name = unknown[0]
            raise ValueError(
                f"{where}: no touchpoint named {name!r}; the touchpoints are {listed(names)}"
            )
        for i, event in enumerate(self.events):
            try:
                event_scenario(self, event)  # fails here, naming the event, if a value goes wrong
            except ValueError as exc:
                raise ValueError(f"events.{i}: {exc}") from None
        for active in overlapping_events(self.events):
            # Overlapping events apply together (cxsim.levers.Schedule): check each such set
            # here too, or a file that reads well could fail in the middle of a run.
            spec = self
            try:
                for i in active:
                    spec = event_scenario(spec, self.events[i])
            except ValueError as exc:
                names = listed([repr(self.events[i].name) for i in active])
                raise ValueError(f"events: {names} overlap, and together: {exc}") from None
        return self

    @model_validator(mode="after")
    def _calibration_targets(self) -> Scenario:
        """Unknowns that name a touchpoint must name one of this scenario's."""
        for key in self.calibration.unknowns if self.calibration else ():
            parts = key.split(".")
            if parts[0] != "touchpoints":
                continue
            item = parts[1]
            known = item in self.touchpoint_names or (
                item.isdigit() and int(item) < len(self.touchpoints)
            )
            if not known:
                raise ValueError(
                    f"calibration.unknowns: {key!r}: no touchpoint {item!r}; expected an index "
                    f"or one of: {listed(self.touchpoint_names)}"
                )
        return self

    @property
    def touchpoint_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.touchpoints)

    @property
    def severities(self) -> tuple[float, ...]:
        return tuple(t.severity for t in self.touchpoints)

    @property
    def walk_away_curve(self) -> tuple[float, float]:
        """(a, b) of the walk-away curve: as given, or fitted to the survey figures (the fit
        is kept by the walk_away section)."""
        return self.behaviour.walk_away.curve()


def listed(names: list[str] | tuple[str, ...], most: int = 12) -> str:
    """Names for a one-line message: all of a short list, the first ``most`` of a long one."""
    short = [n if len(n) <= 40 else n[:30] + "..." for n in names[:most]]
    if len(names) <= most:
        return ", ".join(short)
    return f"{', '.join(short)}, ... ({len(names)} in all)"


def overlapping_events(events: tuple[Event, ...]) -> list[tuple[int, ...]]:
    """Each distinct set of two or more events in force at the same step, as indices in the
    order listed (the set in force changes only where an event starts or ends)."""
    sets = []
    for step in sorted({e.start for e in events} | {e.start + e.duration for e in events}):
        active = tuple(i for i, e in enumerate(events) if e.start <= step < e.start + e.duration)
        if len(active) > 1 and active not in sets:
            sets.append(active)
    return sets


def event_scenario(spec: Scenario, event: Event) -> Scenario:
    """The scenario as it stands while ``event`` lasts (its scale and set applied)."""
    data = spec.model_dump(mode="python")
    data["events"] = ()
    touchpoints = [dict(t) for t in data["touchpoints"]]
    index = {t["name"]: i for i, t in enumerate(touchpoints)}
    for key, value in [*((k, ("scale", v)) for k, v in event.scale.items()),
                       *((k, ("set", v)) for k, v in event.set.items())]:  # fmt: skip
        how, number = value
        parts = key.split(".")
        if parts[0] == "touchpoints":
            target, field = touchpoints[index[parts[1]]], parts[2]
        else:
            target, field = data["strategy"], parts[1]
        target[field] = target[field] * number if how == "scale" else number
    data["touchpoints"] = touchpoints
    try:
        return Scenario.model_validate(data)
    except ValueError as exc:
        first = exc.errors()[0] if hasattr(exc, "errors") else {"msg": str(exc), "loc": ()}
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ValueError(
            f"event {event.name!r} makes {where or 'the scenario'} invalid: "
            f"{first['msg'].removeprefix('Value error, ')}"
        ) from None
