"""Time units: every field whose meaning depends on the step, and how it converts.

A scenario steps in one unit of time, ``time.step``: day, week, month, quarter or year
(:data:`STEPS_PER_YEAR`). The shipped defaults are stated per **week**. When a scenario steps
in another unit, loading converts each step-dependent value to that step before validation, so
the resolved :class:`~cxsim.scenario.Scenario` holds per-step numbers and the engines need not
know about units.

Where a value comes from decides the unit it is read in:

- a default the user did not give: per week;
- a value with its unit, e.g. ``memory_half_life: 3 months`` or ``outreach: 5% per month``:
  that unit;
- a bare number written in a scenario file: the step the files state (``time.step`` after
  bases are merged), as before units existed;
- a bare number given with ``--set`` (or a keyword override): the final step.

So ``--set time.step=month`` re-expresses a whole weekly scenario in months, and a file that
says ``step: month`` has its bare numbers read as monthly values.

Conversions, with k = (source units per step), e.g. k = 52/12 from weeks to months:

==============================  ====================================================
kind                            rule
==============================  ====================================================
duration (steps)                d' = d / k; whole durations round half up, and a
                                positive duration never rounds to 0 (0 means "none")
chance per step                 p' = 1 - (1 - p)^k (the same chance per unit of time)
share of a gap closed per step  r' = 1 - (1 - r)^k (what is left decays geometrically)
money per step                  x' = x k
baseline hazard Beta(a, b)      a kept, b' = (a + b)/k - a: the mean hazard scales
                                by k, so each person's survival per year is kept to
                                first order (exact would be 1 - (1 - theta)^k per
                                person; the difference is ~k theta^2/2, < 0.1% here)
touchpoint visits               kept per week (a day draws 1/7 of it, see week_share)
==============================  ====================================================

At most one visit per touchpoint per step is modelled. A touchpoint's per-step chances of a
good and of a bad experience, v g and v b, are therefore converted as chances too
(1 - (1 - v g)^k), and stored as a per-step visit rate v' = 1 - (1 - v)^k with good and bad
shares g' = (1 - (1 - v g)^k) / v', b' likewise. With k > 1 a customer who would have had two
good visits in the step has one: counts of experiences per unit of time fall slightly (by
about (k - 1) p / 2 in relative terms for small per-visit chances p). The same holds for the
bad experience an open problem causes in each step it stays open. These are the known sources
of drift between step lengths; see docs/ODD.md.

Not step-dependent (never converted): per-visit and per-experience shares (``good``, ``bad``,
``gain``, ``loss``, ``post_rate_after_bad``, ``detection``, ``detection_delight``,
``prevention``, ``quality_uplift``, ``first_contact_resolution``, ``recovery_delight``,
``referral.conversion``, ``negative_word_of_mouth.impact``, ``read_share``), the walk-away
curve (per bad experience), money per action (``retention_cost``, ``support_cost``,
acquisition), ``discount_rate`` (already per year), people and network figures, and
``negative_word_of_mouth.rate``: a warning only scales the prospect's conversion chance in the
step it is heard, by (1 - rate x impact) per detractor contact, so it acts as the share of
time a prospect is under a warning, which does not depend on the step (converting it as a
chance would damp a whole month's conversion for one week's warning).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

STEPS_PER_YEAR: dict[str, float] = {"day": 365, "week": 52, "month": 12, "quarter": 4, "year": 1}
"""The step units, each with its steps per year (a week is 1/52 year, not 7 days)."""

DEFAULT_UNIT = "week"
"""The unit the schema's defaults are stated in."""

_PLURAL = {f"{u}s": u for u in STEPS_PER_YEAR} | {u: u for u in STEPS_PER_YEAR}


class Kind(Enum):
    DURATION = "duration"
    WHOLE_DURATION = "whole duration"
    CHANCE = "chance"
    MONEY = "money"


_EXAMPLES = {
    Kind.DURATION: "a duration such as '13 weeks'",
    Kind.WHOLE_DURATION: "a duration such as '13 weeks'",
    Kind.CHANCE: "a chance such as '0.004 per week' or '5% per month'",
    Kind.MONEY: "an amount such as '50 per month'",
}

FIELDS: dict[tuple[str, ...], Kind] = {
    ("time", "horizon"): Kind.WHOLE_DURATION,
    ("behaviour", "memory_half_life"): Kind.DURATION,
    ("behaviour", "onboarding_steps"): Kind.WHOLE_DURATION,
    ("behaviour", "negative_word_of_mouth", "churned_steps"): Kind.WHOLE_DURATION,
    ("behaviour", "reviews", "window"): Kind.WHOLE_DURATION,
    ("behaviour", "win_back", "wait"): Kind.WHOLE_DURATION,
    ("behaviour", "satisfaction", "relaxation"): Kind.CHANCE,  # share of the gap per step
    ("behaviour", "problem_fade"): Kind.CHANCE,
    ("behaviour", "ad_conversion"): Kind.CHANCE,
    ("behaviour", "referral", "rate"): Kind.CHANCE,
    ("behaviour", "reviews", "post_rate"): Kind.CHANCE,
    ("behaviour", "win_back", "rate"): Kind.CHANCE,
    ("strategy", "outreach"): Kind.CHANCE,
    # A customer with an open problem calls with this chance in each step it stays open.
    ("strategy", "support_contact"): Kind.CHANCE,
    ("economics", "arpu", "mean"): Kind.MONEY,
    ("economics", "arpu", "sd"): Kind.MONEY,
    ("strategy", "costs", "per_customer"): Kind.MONEY,
    ("strategy", "costs", "fixed"): Kind.MONEY,
    ("strategy", "start"): Kind.WHOLE_DURATION,
    ("strategy", "ramp"): Kind.WHOLE_DURATION,
}
"""Every scalar step-dependent field, by path; touchpoints and the baseline hazard are below."""

BASELINE = ("behaviour", "baseline_churn")
"""The per-step baseline hazard Beta(alpha, beta); beta converts, alpha is kept."""


class UnitError(ValueError):
    """A value or unit that cannot be read; ``path`` is the field, the message the rest."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


_NUMBER = r"[-+]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_DURATION = re.compile(rf"^\s*({_NUMBER})\s*([a-z]+)\s*$", re.IGNORECASE)
_RATE = re.compile(rf"^\s*({_NUMBER})\s*(%?)\s*(?:per|/|a|an|each)\s*([a-z]+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Quantity:
    """A number and the unit of time it is stated in (steps per year of that unit)."""

    value: float
    per_year: float


def unit_of(value: Any, path: tuple[str | int, ...]) -> str:
    """A ``time.step`` value checked against the known units."""
    if isinstance(value, str) and value.strip().lower() in _PLURAL:
        return _PLURAL[value.strip().lower()]
    raise UnitError(path, f"expected a unit of time: {', '.join(STEPS_PER_YEAR)}, found {value!r}")


def parse(text: str, kind: Kind, path: tuple[str | int, ...]) -> Quantity:
    """A unit string such as '13 weeks', '0.004 per week', '5% per month', '50 per month'."""
    wanted = f"expected {_EXAMPLES[kind]}, found {text!r}"
    if len(text) > 100:  # no quantity is that long; and the patterns would take long to fail
        raise UnitError(path, wanted)
    match = (_DURATION if kind in (Kind.DURATION, Kind.WHOLE_DURATION) else _RATE).match(text)
    if not match:
        raise UnitError(path, wanted)
    number, *rest = match.groups()
    unit = rest[-1].lower()
    if unit not in _PLURAL:
        raise UnitError(path, f"{wanted} (units: {', '.join(STEPS_PER_YEAR)})")
    try:
        value = float(number.replace("_", ""))
    except ValueError:
        raise UnitError(path, wanted) from None
    if not math.isfinite(value):
        raise UnitError(path, wanted)
    if len(rest) == 2 and rest[0]:
        value /= 100.0
    return Quantity(value, STEPS_PER_YEAR[_PLURAL[unit]])


def convert(value: float, kind: Kind, k: float) -> float | int:
    """``value`` stated per source unit, re-expressed per step; k = source units per step."""
    if kind is Kind.CHANCE:
        return -math.expm1(k * math.log1p(-value)) if value < 1 else 1.0
    if kind is Kind.MONEY:
        return value * k
    d = value / k
    if kind is Kind.WHOLE_DURATION:
        whole = math.floor(d + 0.5)
        return max(whole, 1) if value > 0 else 0  # rounding must not switch a duration off
    return d


def _in_range(value: Any, kind: Kind) -> bool:
    """Values worth converting; anything else is left for validation to report as given."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    if kind is Kind.CHANCE:
        return 0 <= value <= 1
    if kind is Kind.WHOLE_DURATION:
        return isinstance(value, int) and value >= 0
    return value >= 0


def week_share(steps_per_year: float) -> float:
    """The share of a week's visit chance that one step draws: 1 for a week (longer steps are
    simulated as their weeks, see cxsim.engines.base.periods_of), 1/7 for a day."""
    return min(1.0, STEPS_PER_YEAR[DEFAULT_UNIT] / steps_per_year)


def baseline_beta(alpha: float, beta: float, k: float, path: tuple[str | int, ...]) -> float:
    """beta of the per-step hazard Beta(alpha, beta') whose mean is k times the given one."""
    converted = (alpha + beta) / k - alpha
    if converted <= 0:
        raise UnitError(
            path,
            f"the baseline hazard Beta({alpha:g}, {beta:g}) is too high to restate for a step "
            f"{k:g} times as long (its mean would exceed 1); lower alpha or raise beta",
        )
    return converted


# --- resolving a whole scenario (plain data) -------------------------------------------------


@dataclass(frozen=True)
class Steps:
    """The units bare numbers are read in: ``written`` for the files, ``final`` for overrides
    and the scenario's own step."""

    written: str
    final: str


def steps_of(
    data: dict, before: dict | None, overridden: set[tuple[str | int, ...]]
) -> Steps | None:
    """The step units, checking ``time.step`` against ``time.steps_per_year``.

    ``before`` is the time section as the files give it (before overrides); None when there
    are no overrides. Returns None when ``time`` is not a mapping (validation says why).
    """
    time = data.get("time", {})
    if not isinstance(time, dict):
        return None
    written = _step_from(before if before is not None else time, ())
    final = _step_from(time, overridden) if overridden & _TIME_KEYS else written
    return Steps(written or DEFAULT_UNIT, final or written or DEFAULT_UNIT)


_TIME_KEYS = {("time", "step"), ("time", "steps_per_year"), ("time",)}


def _step_from(time: Any, overridden: set) -> str | None:
    """The unit a time section states, by its step or else its steps_per_year."""
    if not isinstance(time, dict):
        return None
    step = time.get("step")
    unit = unit_of(step, ("time", "step")) if step is not None else None
    per_year = time.get("steps_per_year")
    if not _in_range(per_year, Kind.DURATION) or per_year == 0:
        return unit  # a bad steps_per_year is for validation to report
    matching = [u for u, n in STEPS_PER_YEAR.items() if n == per_year]
    if unit is None:
        if not matching:
            raise UnitError(
                ("time", "steps_per_year"),
                f"expected the steps per year of a unit ({_table()}), found {per_year!r}; "
                "give time.step instead",
            )
        return matching[0]
    if STEPS_PER_YEAR[unit] != per_year and not (
        ("time", "step") in overridden and ("time", "steps_per_year") not in overridden
    ):
        raise UnitError(
            ("time", "steps_per_year"),
            f"expected {STEPS_PER_YEAR[unit]:g} for step '{unit}' (or leave it out), "
            f"found {per_year!r}",
        )
    return unit


def _table() -> str:
    return ", ".join(f"{u} {n:g}" for u, n in STEPS_PER_YEAR.items())


def resolve(data: dict, steps: Steps, overridden: set[tuple[str | int, ...]]) -> None:
    """Convert every step-dependent value of ``data`` to the final step, in place.

    ``overridden`` holds the paths set by overrides (their bare numbers are read in the final
    step). Values that are not numbers in range are left as they are, for validation to report
    as the user wrote them.
    """
    per_step = STEPS_PER_YEAR[steps.final]
    data.setdefault("time", {})
    data["time"]["step"] = steps.final
    if _in_range(data["time"].get("steps_per_year", 0), Kind.DURATION):
        data["time"]["steps_per_year"] = per_step  # else validation reports the bad value

    def source(path: tuple[str | int, ...], present: bool) -> float:
        """Steps per year of the unit a value without its own unit is read in."""
        if not present:
            return STEPS_PER_YEAR[DEFAULT_UNIT]
        if any(path[:depth] in overridden for depth in range(1, len(path) + 1)):
            return per_step
        return STEPS_PER_YEAR[steps.written]

    def read(node: dict, key: str, path: tuple[str | int, ...], kind: Kind, default: Any):
        """(value, k, converted) of one field: its number, source units per step, and
        whether it should be stored converted."""
        present = key in node
        value = node[key] if present else default
        if isinstance(value, str):
            q = parse(value, kind, path)
            plain = Kind.DURATION if kind is Kind.WHOLE_DURATION else kind
            return q.value, q.per_year / per_step, _in_range(q.value, plain)
        k = source(path, present) / per_step
        return value, k, k != 1 and _in_range(value, kind)

    for path, kind in FIELDS.items():
        node = _section(data, path[:-1])
        if node is None:
            continue
        value, k, ok = read(node, path[-1], path, kind, _default(path))
        if ok:
            node[path[-1]] = convert(value, kind, k)
        elif path[-1] in node:
            node[path[-1]] = value
    _resolve_baseline(data, per_step, source)
    _resolve_touchpoints(data, per_step, read)
    _resolve_listed(data, read)


def _resolve_listed(data: dict, read: Any) -> None:
    """Events' start and duration, and each touchpoint lever's cost per customer per step.
    (An event's ``set`` and ``scale`` values are read as written: per step of the scenario.)"""
    items: list[tuple[tuple, dict, str, Kind, Any]] = []
    events = data.get("events")
    if isinstance(events, list):
        for i, event in enumerate(events):
            if isinstance(event, dict):
                items += [(("events", i, key), event, key, Kind.WHOLE_DURATION, 1)
                          for key in ("start", "duration") if key in event]  # fmt: skip
    levers = (data.get("strategy") or {}).get("touchpoints") if isinstance(
        data.get("strategy"), dict) else None  # fmt: skip
    if isinstance(levers, dict):
        for name, lever in levers.items():
            if isinstance(lever, dict) and "cost_per_customer" in lever:
                items.append((("strategy", "touchpoints", name, "cost_per_customer"), lever,
                              "cost_per_customer", Kind.MONEY, 0.0))  # fmt: skip
    for path, node, key, kind, default in items:
        value, k, ok = read(node, key, path, kind, default)
        node[key] = convert(value, kind, k) if ok else value


@cache
def _defaults() -> Any:
    from cxsim.scenario import Scenario  # the schema's defaults are stated per week

    return Scenario()


def _default(path: tuple[str | int, ...]) -> Any:
    node = _defaults()
    for part in path:
        node = getattr(node, str(part))
    return node


def _section(data: dict, path: tuple[str, ...]) -> dict | None:
    """The mapping at ``path``, created where missing; None if something else is in the way."""
    node: Any = data
    for part in path:
        if not isinstance(node, dict):
            return None
        if node.get(part) is None and part not in node:
            node[part] = {}
        node = node[part]
    return node if isinstance(node, dict) else None


def _resolve_baseline(data: dict, per_step: float, source: Any) -> None:
    node = _section(data, BASELINE)
    if node is None:
        return
    alpha = node.get("alpha", _default((*BASELINE, "alpha")))
    beta = node.get("beta", _default((*BASELINE, "beta")))
    given = "beta" in node or "alpha" in node
    k = source((*BASELINE, "beta" if "beta" in node else "alpha"), given) / per_step
    if k == 1 or not all(_in_range(x, Kind.DURATION) and x > 0 for x in (alpha, beta)):
        return
    node["alpha"] = alpha
    node["beta"] = baseline_beta(alpha, beta, k, (*BASELINE, "beta"))


def _resolve_touchpoints(data: dict, per_step: float, read: Any) -> None:
    defaulted = "touchpoints" not in data  # the default list is per week, like every default
    if defaulted:
        data["touchpoints"] = [t.model_dump(mode="json") for t in _defaults().touchpoints]
    items = data["touchpoints"]
    if not isinstance(items, list):
        return
    fields = _defaults().touchpoints[0].__class__.model_fields
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        path = ("touchpoints", i)
        given = {} if defaulted else item
        value, k, ok = read(given, "problem_rate", (*path, "problem_rate"), Kind.CHANCE,
                            item.get("problem_rate", fields["problem_rate"].default))  # fmt: skip
        if ok:
            item["problem_rate"] = convert(value, Kind.CHANCE, k)
        elif "problem_rate" in given:
            item["problem_rate"] = value
        # A visit rate is a chance per week whatever the step (see week_share): a bare number
        # is read per week, a value with its own unit converted to per week. Good and bad are
        # per visit and need no conversion.
        if isinstance(given.get("visit_rate"), str):
            visit, k, _ = read(given, "visit_rate", (*path, "visit_rate"), Kind.CHANCE, None)
            to_week = k * per_step / STEPS_PER_YEAR[DEFAULT_UNIT]
            item["visit_rate"] = (convert(visit, Kind.CHANCE, to_week)
                                  if _in_range(visit, Kind.CHANCE) else visit)  # fmt: skip
