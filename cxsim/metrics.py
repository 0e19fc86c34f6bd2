"""The metrics registry: every per-step metric and every summary figure, named once.

One name per concept: the column in every table, the key in Mesa's DataCollector, the label in
charts, the printout and the report page all come from the two lists here. A :class:`Metric` is
one column of the per-step table; a :class:`Figure` is one number per run (a total, a final
stock, a last-year mean, ...) with its label, unit and print format. Paired figures (return,
payback, break-even) exist only for a comparison and are computed in :mod:`cxsim.experiment`,
but they are registered here too so that they print and render like every other figure.

Units: ``people`` are simulated people in every table and are shown as real customers
(x ``population.represents``) wherever a person reads them; ``money`` is already scaled to the
represented customer base, in the scenario's currency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import special

from cxsim import rules
from cxsim.scenario import Scenario


@dataclass(frozen=True)
class Metric:
    """One per-step metric (a column of the steps table)."""

    name: str
    label: str
    unit: str  # people, money, share, percent, points, stars, 0-1, count


def _m(name: str, label: str, unit: str) -> Metric:
    return Metric(name, label, unit)


STEP_METRICS: list[Metric] = [
    _m("prospects", "Prospects", "people"),
    _m("onboarding", "Customers onboarding", "people"),
    _m("active", "Active customers", "people"),
    _m("churned", "Former customers", "people"),
    _m("customers", "Customers", "people"),
    _m("new_customers", "New customers", "people"),
    _m("new_customers_ads", "New customers by advertising", "people"),
    _m("new_customers_referral", "New customers by referral", "people"),
    _m("new_customers_win_back", "Win-backs (former customers buying again)", "people"),
    _m("returned", "Former customers back in the market", "people"),
    _m("churn", "Customers lost", "people"),
    _m("churn_rate", "Churn rate per step", "share"),
    # churn_by_<cause> columns follow here, one per touchpoint and baseline (see metric_names)
    _m("mean_satisfaction", "Mean satisfaction", "0-1"),
    _m("csat", "CSAT", "percent"),
    _m("nps", "NPS", "points"),
    _m("promoters", "Promoters", "people"),
    _m("detractors", "Detractors", "people"),
    _m("experiences_good", "Good experiences", "count"),
    _m("experiences_bad", "Bad experiences", "count"),
    _m("problems_arising", "Problems arising", "count"),
    _m("problems_detected", "Problems detected and fixed first", "count"),
    _m("problems_contacted", "Support contacts about a problem", "count"),
    _m("problems_resolved", "Problems resolved by support", "count"),
    _m("problems_open", "Open problems", "count"),
    _m("outreach_contacts", "Proactive outreach contacts", "count"),
    _m("reviews_posted", "Reviews posted", "count"),
    _m("review_score", "Public review score", "stars"),
    _m("revenue", "Revenue", "money"),
    _m("cost_acquisition", "Acquisition cost", "money"),
    _m("cost_support", "Support cost", "money"),
    _m("cost_programme", "Programme cost", "money"),
    _m("costs", "Costs", "money"),
    _m("profit", "Profit", "money"),
    _m("lost_revenue_horizon", "Revenue lost to churn (within the horizon)", "money"),
    _m("lost_revenue_lifetime", "Revenue lost to churn (lifetime value)", "money"),
    _m("lost_revenue_experience_horizon", "Revenue lost to poor experiences", "money"),
    _m("lost_revenue_experience_lifetime", "Revenue lost to poor experiences (lifetime)", "money"),
    _m("customer_steps", "Customers at the start of the step", "people"),
    _m("cumulative_revenue", "Cumulative revenue", "money"),
    _m("cumulative_costs", "Cumulative costs", "money"),
    _m("cumulative_profit", "Cumulative profit", "money"),
    _m("cumulative_lost_revenue_horizon", "Cumulative revenue lost to churn", "money"),
    _m(
        "cumulative_lost_revenue_experience_horizon",
        "Cumulative revenue lost to poor experiences",
        "money",
    ),
]
_BY_NAME = {m.name: m for m in STEP_METRICS}


def churn_causes(spec: Scenario) -> list[str]:
    """Names of the churn-by-cause columns: one per touchpoint, then baseline."""
    return [f"churn_by_{c}" for c in (*spec.touchpoint_names, "baseline")]


def metric_names(spec: Scenario) -> list[str]:
    """Every per-step metric, in table order (churn by cause after churn_rate)."""
    names = [m.name for m in STEP_METRICS]
    at = names.index("churn_rate") + 1
    return names[:at] + churn_causes(spec) + names[at:]


def metric(name: str) -> Metric:
    """The registered metric (churn_by_<cause> columns are people lost to that cause)."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name.startswith("churn_by_"):
        return Metric(name, f"Customers lost to {name.removeprefix('churn_by_')}", "people")
    raise KeyError(name)


def label(name: str) -> str:
    """Chart label of a metric."""
    try:
        return metric(name).label
    except KeyError:
        return name.replace("_", " ").capitalize()


# --- summary figures --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunView:
    """What a figure is computed from: one run's per-step table and its scenario (its parts
    are selected once, then read by every figure)."""

    steps: pd.DataFrame
    spec: Scenario

    @cached_property
    def flows(self) -> pd.DataFrame:
        """Steps 1..horizon (step 0 is the initial state, with no flows)."""
        return self.steps[self.steps["step"] > 0]

    @cached_property
    def last_year(self) -> pd.DataFrame:
        last = self.steps["step"].max()
        return self.steps[self.steps["step"] > max(0, last - self.spec.time.steps_per_year)]

    @property
    def years(self) -> float:
        return len(self.flows) / self.spec.time.steps_per_year


@dataclass(frozen=True)
class Figure:
    """One number per run, with how it is shown: label, unit, format of a value and of a paired
    difference. ``headline`` figures are printed and head the report; ``paired`` ones exist only
    for a comparison (computed per replication in cxsim.experiment)."""

    name: str
    label: str
    unit: str  # people, money, share, percent, points, stars, step, ratio, rate, money/step
    compute: Callable[[RunView], float] | None = None
    headline: bool = False
    paired: bool = False


def _total(col: str) -> Callable[[RunView], float]:
    return lambda v: float(v.flows[col].sum())


def _last_year(col: str) -> Callable[[RunView], float]:
    return lambda v: float(v.last_year[col].mean())


def annual_churn(steps: pd.DataFrame, steps_per_year: float) -> float:
    """Annualised churn: 1 - (1 - mean per-step churn rate)^(steps per year), over steps >= 1."""
    rate = steps.loc[steps["step"] > 0, "churn_rate"].mean()
    return float(1.0 - (1.0 - rate) ** steps_per_year)


def _discounted(v: RunView) -> float:
    """Profit over the horizon, each step discounted to the start at the scenario's rate."""
    d = rules.step_discount_rate(v.spec.economics.discount_rate, v.spec.time.steps_per_year)
    f = v.flows
    return float((f["profit"] / (1.0 + d) ** f["step"]).sum())


def _conversion(v: RunView) -> float:
    """New customers per prospect-step: the chance per step that a prospect buys."""
    exposed = v.steps["prospects"].iloc[:-1].sum()
    return float(v.flows["new_customers"].sum() / exposed) if exposed else float("nan")


FIGURES: list[Figure] = [
    Figure("annual_churn", "annual churn", "share",
           lambda v: annual_churn(v.steps, v.spec.time.steps_per_year), headline=True),
    Figure("nps", "NPS, last year", "points", _last_year("nps"), headline=True),
    Figure("csat", "CSAT, last year", "percent", _last_year("csat"), headline=True),
    Figure("mean_satisfaction", "mean satisfaction, last year", "0-1",
           _last_year("mean_satisfaction")),
    Figure("review_score", "review score, last year", "stars", _last_year("review_score"),
           headline=True),
    Figure("final_customers", "customers at the end", "people",
           lambda v: float(v.steps["customers"].iloc[-1]), headline=True),
    Figure("new_customers_ads", "new customers by advertising", "people",
           _total("new_customers_ads"), headline=True),
    Figure("new_customers_referral", "new customers by referral", "people",
           _total("new_customers_referral"), headline=True),
    Figure("new_customers_win_back", "win-backs (former customers buying again)", "people",
           _total("new_customers_win_back"), headline=True),
    Figure("conversion_per_prospect", "conversion per prospect per step", "rate", _conversion,
           headline=True),
    Figure("total_churn", "customers lost", "people", _total("churn")),
    Figure("churn_experience", "customers lost after bad experiences", "people",
           lambda v: float(v.flows["churn"].sum() - v.flows["churn_by_baseline"].sum()),
           headline=True),
    Figure("churn_baseline", "customers lost for other reasons (baseline)", "people",
           _total("churn_by_baseline")),
    Figure("revenue", "revenue", "money", _total("revenue"), headline=True),
    Figure("cost_acquisition", "acquisition cost", "money", _total("cost_acquisition")),
    Figure("cost_support", "support cost", "money", _total("cost_support")),
    Figure("cost_programme", "programme cost", "money", _total("cost_programme")),
    Figure("costs", "costs", "money", _total("costs")),
    Figure("profit", "profit over the horizon", "money", _total("profit"), headline=True),
    Figure("profit_per_year", "profit per year", "money",
           lambda v: float(v.flows["profit"].sum()) / v.years, headline=True),
    Figure("profit_discounted", "profit, discounted to today", "money", _discounted,
           headline=True),
    Figure("lost_revenue_experience_horizon", "revenue lost to poor experiences", "money",
           _total("lost_revenue_experience_horizon"), headline=True),
    Figure("lost_revenue_experience_lifetime", "... as lifetime value", "money",
           _total("lost_revenue_experience_lifetime"), headline=True),
    Figure("lost_revenue_horizon", "revenue lost to all churn", "money",
           _total("lost_revenue_horizon")),
    Figure("lost_revenue_lifetime", "revenue lost to all churn, lifetime value", "money",
           _total("lost_revenue_lifetime")),
    Figure("customer_steps", "customer-steps served", "people", _total("customer_steps")),
    *(Figure(name, name.replace("_", " "), "count", _total(name)) for name in (
        "problems_arising", "problems_detected", "problems_contacted", "problems_resolved",
        "outreach_contacts", "reviews_posted", "returned")),
    # Paired figures: one scenario against the first, per replication (cxsim.experiment).
    Figure("roi", "return on the extra programme cost", "ratio", paired=True),
    Figure("payback_step", "payback", "step", paired=True),
    Figure("break_even_cost", "break-even programme cost, in total", "money", paired=True),
    Figure("break_even_per_customer_step", "break-even programme cost per customer",
           "money/step", paired=True),
]  # fmt: skip
FIGURE = {f.name: f for f in FIGURES}


def run_summary(steps: pd.DataFrame, spec: Scenario) -> dict[str, float]:
    """Every per-run figure of one run, and its churn by each cause."""
    view = RunView(steps, spec)
    out = {f.name: f.compute(view) for f in FIGURES if f.compute is not None}
    for col in churn_causes(spec):
        out[col] = float(view.flows[col].sum())
    return out


def figure(name: str) -> Figure:
    """The registered figure; churn_by_<cause> are people lost to that cause."""
    if name in FIGURE:
        return FIGURE[name]
    if name.startswith("churn_by_"):
        return Figure(name, f"lost to {name.removeprefix('churn_by_')}", "people")
    return Figure(name, name.replace("_", " "), "count")


# --- how a figure reads -----------------------------------------------------------------------


def money_text(value: float, currency: str, signed: bool = False) -> str:
    """12,345,678 -> '12.3 M USD' (K, M, B), the way a board reads money."""
    sign = "+" if signed and value >= 0 else ""
    size = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if size >= limit:
            digits = 2 if size < 10 * limit else 1 if size < 100 * limit else 0
            return f"{sign}{value / limit:,.{digits}f} {suffix} {currency}"
    return f"{sign}{value:,.0f} {currency}"


def show(name: str, value: float, spec: Scenario, diff: bool = False) -> str:
    """A figure's value as a person reads it: real customers, currency, %, points, steps.

    ``diff`` formats a paired difference (signed; shares and percentages in points).
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    unit = figure(name).unit
    if unit == "people":
        value = value * spec.population.represents
        return f"{value:+,.0f}" if diff else f"{value:,.0f}"
    if unit in ("money", "money/step"):
        if unit == "money/step":
            sign = "+" if diff and value >= 0 else ""
            return f"{sign}{value:,.2f} {spec.economics.currency}/{spec.time.step}"
        return money_text(value, spec.economics.currency, signed=diff)
    if unit == "share":
        return f"{100 * value:+.1f} pts" if diff else f"{value:.1%}"
    if unit in ("percent", "points"):
        if diff:
            return f"{value:+.1f} pts"
        return f"{value:+.1f}" if unit == "points" else f"{value:.1f}%"
    if unit == "step":
        return f"{spec.time.step} {value:.0f}"
    if unit == "rate":
        return f"{100 * value:+.3f} pts" if diff else f"{100 * value:.3f}%"
    if unit in ("stars", "0-1"):
        return f"{value:+.2f}" if diff else f"{value:.2f}"
    return f"{value:+,.2f}" if diff else f"{value:,.2f}"


def unit_text(name: str, spec: Scenario) -> str:
    """The unit of a figure as a column heading says it."""
    unit = figure(name).unit
    return {
        "people": "real customers",
        "money": spec.economics.currency,
        "money/step": f"{spec.economics.currency} per customer per {spec.time.step}",
        "share": "%",
        "percent": "% satisfied",
        "points": "points",
        "step": spec.time.step,
        "rate": "% per step",
        "stars": "stars (1-5)",
    }.get(unit, "")


# --- statistics -------------------------------------------------------------------------------


def t_quantile(q, df):
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (scalars or arrays):
    the very numbers of ``scipy.stats.t.ppf`` for 0 < q < 1 and df > 0, without importing
    ``scipy.stats`` (a second or more at the start of every command)."""
    return special.stdtrit(np.asarray(df), q)


def mean_ci(values, level: float = 0.95, floor: float | None = None) -> tuple[float, float, float]:
    """(mean, low, high): Student-t confidence interval of the mean over replications, with the
    low end kept at or above ``floor`` (a count or a loss cannot be below 0)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return (float("nan"),) * 3
    m = float(x.mean())
    if len(x) < 2:
        return m, m, m
    half = float(t_quantile(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    low = m - half if floor is None else max(m - half, floor)
    return m, low, m + half


def summarise(summaries: pd.DataFrame, by: str = "scenario", levels: bool = True) -> pd.DataFrame:
    """Mean and 95% CI of every summary figure, per scenario: columns figure, mean, low, high,
    n (replications with a value: a payback that never came or an undefined ratio is left out,
    and n says so). With ``levels`` (not differences), a figure that cannot be negative (people,
    counts, shares, scores, money other than profit) never gets a negative low end."""
    rows = []
    for key, group in summaries.groupby(by, sort=False):
        for col in group.columns:
            if col in (by, "replication", "seed") or not np.issubdtype(group[col].dtype, np.number):
                continue
            floor = 0.0 if levels and figure(col).unit != "points" and col not in (
                "profit", "profit_per_year", "profit_discounted") else None  # fmt: skip
            m, lo, hi = mean_ci(group[col], floor=floor)
            n = int(group[col].notna().sum())
            rows.append({by: key, "figure": col, "mean": m, "low": lo, "high": hi, "n": n})
    return pd.DataFrame(rows)


def cohort_retention(customers: pd.DataFrame, horizon: int, period: int) -> pd.DataFrame:
    """Share of each acquisition cohort still a customer after each whole number of periods.

    ``customers`` is the per-customer table (with a ``scenario`` column, pooled over
    replications); cohorts group spells by acquisition step in blocks of ``period`` steps
    (cohort 0 is the customers at the start). Only spells old enough to be observed at a tenure
    count towards it. Columns: scenario, cohort_start, tenure, spells, retained.
    """
    codes, names = pd.factorize(customers["scenario"], sort=True)
    acquired = customers["acquired_step"].to_numpy(np.int64)
    cohort = np.where(acquired == 0, 0, ((acquired - 1) // period) * period + 1)
    churn = customers["churn_step"].to_numpy(np.int64)
    left = np.where(churn >= 0, churn, horizon + 1)  # still a customer: past the horizon
    lifetime = left - acquired
    # The spells of each (scenario, cohort), in that order, as runs of one sorted index.
    order = np.lexsort((cohort, codes))
    cut = np.flatnonzero(np.diff(codes[order]) | np.diff(cohort[order])) + 1
    rows = []
    for group in np.split(order, cut) if len(order) else []:
        mine, lived = acquired[group], lifetime[group]
        for tenure in range(period, horizon + 1, period):
            seen = mine + tenure <= horizon
            spells = int(np.count_nonzero(seen))
            if not spells:
                break
            rows.append({
                "scenario": names[codes[group[0]]],
                "cohort_start": int(cohort[group[0]]),
                "tenure": tenure,
                "spells": spells,
                "retained": np.count_nonzero(lived[seen] > tenure) / spells,
            })  # fmt: skip
    return pd.DataFrame(rows)
