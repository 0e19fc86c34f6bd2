"""What a run found, in words and real units: the headline rows, the revenue-loss breakdown,
the break-even cost, chart readings and definitions.

Both the terminal printout (:mod:`cxsim.cli`) and the report page (:mod:`cxsim.report`) take
their rows from here, so they always show the same figures, formatted by the metrics registry.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import yaml

from cxsim.experiment import Experiment
from cxsim.metrics import FIGURES, figure, money_text, show
from cxsim.report import Chart, ReportContent, Reproduce, ScenarioText, Table

PAIRED_ROWS = ["cost_programme", "roi", "payback_step", "break_even_cost",
               "break_even_per_customer_step"]  # fmt: skip

DEFINITIONS = (
    "Annual churn: 1 - (1 - mean churn rate per step)^(steps per year), where the churn rate "
    "is customers lost in a step over customers at its start. NPS: % promoters (9-10) minus % "
    "detractors (0-6) among customers, averaged over the last year. CSAT: % of customers "
    "surveyed after a memorable interaction who rate 4 or 5 of 5. Review score: mean stars of "
    "the reviews posted in the scoring window. New customers: advertising and referral count "
    "first-time customers; a win-back is a former customer buying again. Conversion per "
    "prospect: new customers per prospect per step. Revenue lost to poor experiences: for each "
    "customer who walked away after a bad experience, the revenue they would still have paid "
    "under the churn they would still have faced (their baseline propensity plus the "
    "scenario's walk-away rate so far), within the horizon and as discounted lifetime value. "
    "People are real customers (simulated people x population.represents); money is in the "
    "scenario's currency for that base."
)


def _ci(name: str, m: float, lo: float, hi: float, spec, diff: bool = False) -> str:
    """'22.4% [22.2%, 22.7%]' in the figure's unit; the currency is said once."""
    if m is None or np.isnan(m):
        return "-"
    main = show(name, m, spec, diff)
    if np.isnan(lo) or lo == hi:
        return main
    unit = figure(name).unit
    bounds = [show(name, v, spec, diff) for v in (lo, hi)]
    if unit == "money":
        bounds = [b.removesuffix(f" {spec.economics.currency}") for b in bounds]
    if unit == "money/step":
        bounds = [b.split(" ")[0] for b in bounds]
    if unit == "step":
        bounds = [b.removeprefix(f"{spec.time.step} ") for b in bounds]
    return f"{main} [{bounds[0]}, {bounds[1]}]"


def headline(x: Experiment) -> Table:
    """Each scenario's headline figures and the paired differences, with 95% CIs."""
    spec = x.scenarios[0]
    figures = x.figures().set_index(["scenario", "figure"])
    diffs = x.differences()
    labels = list(dict.fromkeys(diffs["scenario"])) if len(diffs) else []
    diffs = diffs.set_index(["scenario", "figure"]) if len(diffs) else diffs
    runs = len(x.seeds)
    rows = []
    for f in (f for f in FIGURES if f.headline):
        row = [f.label]
        for s in x.scenarios:
            r = figures.loc[(s.name, f.name)]
            row.append(_ci(f.name, r["mean"], r["low"], r["high"], s))
        for lab in labels:
            r = diffs.loc[(lab, f.name)]
            row.append(_ci(f.name, r["mean"], r["low"], r["high"], spec, diff=True))
        rows.append(row)
    for name in PAIRED_ROWS if labels else []:
        row = [figure(name).label] + [""] * len(x.scenarios)
        for lab in labels:
            r = diffs.loc[(lab, name)]
            extra = diffs.loc[(lab, "cost_programme"), "mean"]
            if name in ("roi", "payback_step") and not extra > 0:
                row.append("no extra programme cost")
            elif name == "payback_step" and r["n"] == 0:
                row.append(f"not within the horizon (0 of {runs} runs)")
            else:
                text = _ci(
                    name, r["mean"], r["low"], r["high"], spec, diff=name == "cost_programme"
                )
                if name in ("roi", "payback_step") and int(r["n"]) < runs:
                    text += f" (paid back in {int(r['n'])} of {runs} runs)"
                elif name == "payback_step":
                    text += f" (paid back in {runs} of {runs} runs)"
                row.append(text)
        rows.append(row)
    columns = ["figure (mean [95% CI])", *x.names, *(f"{lab} (paired)" for lab in labels)]
    return Table(
        "Headline figures", columns, rows,
        intro=f"Mean over {runs} replications with 95% confidence intervals; every scenario "
        "ran on the same seeds, so the differences are paired.",
        note=DEFINITIONS,
    )  # fmt: skip


LOSS_VALUES = {
    "lost_revenue_horizon": "within the horizon",
    "lost_revenue_lifetime": "as lifetime value",
}


def loss_tables(x: Experiment, values: tuple[str, ...] = tuple(LOSS_VALUES)) -> list[Table]:
    """Revenue lost to poor experiences by touchpoint and by department (one table per
    valuation in ``values``), each scenario's and what each later one recovers (paired)."""
    spec = x.scenarios[0]
    table = x.loss_breakdown()
    recover = [s for s in dict.fromkeys(table["scenario"]) if " recovers vs " in s]
    columns_of = [*x.names, *recover]
    out = []
    for by in ("touchpoint", "department"):
        part = table[table["by"] == by].set_index(["scenario", "part"])
        lost = part["lost_revenue_horizon"].abs().groupby(level="part", sort=False).sum()
        keep = list(lost.index[lost > 0])
        for value in values:
            rows = []
            for p in keep:
                row = [p]
                for name in columns_of:
                    r = part.loc[(name, p)]
                    row.append(_ci("lost_revenue_experience_horizon", r[value],
                                   r[f"{value}_low"], r[f"{value}_high"], spec,
                                   name in recover))  # fmt: skip
                rows.append(row)
            rows.append(["total"] + [
                money_text(part.loc[name, value].sum(), spec.economics.currency, name in recover)
                for name in columns_of
            ])  # fmt: skip
            out.append(Table(
                f"Revenue lost to poor experiences {LOSS_VALUES[value]}, by {by}",
                [by, *columns_of], rows,
                intro=f"Customers who walked away after a bad experience, by the {by} of that "
                "experience; mean [95% CI] over replications, in "
                f"{spec.economics.currency} for {spec.population.represents:,.0f} real "
                "customers per simulated one. 'recovers' is the first scenario's loss minus the "
                "other's, paired on the same seeds.",
                note="Each leaver is valued at the revenue they would still have paid under the "
                "churn they would still have faced (their baseline propensity plus the "
                "scenario's walk-away rate), not as if they would have stayed to the end. The "
                "parts add up to the total.",
            ))  # fmt: skip
    return out


def break_even(x: Experiment) -> Table | None:
    """The programme cost at which each later scenario's extra profit is zero."""
    if len(x.names) < 2:
        return None
    spec = x.scenarios[0]
    d = x.differences().set_index(["scenario", "figure"])
    rows = []
    for name, s in zip(x.names[1:], x.scenarios[1:], strict=True):
        lab = f"{name} - {x.names[0]}"
        now = x.figures().set_index(["scenario", "figure"]).loc[(name, "cost_programme"), "mean"]
        total = d.loc[(lab, "break_even_cost")]
        per = d.loc[(lab, "break_even_per_customer_step")]
        rows.append([
            name, money_text(now, spec.economics.currency),
            _ci("break_even_cost", total["mean"], total["low"], total["high"], s),
            _ci("break_even_per_customer_step", per["mean"], per["low"], per["high"], s),
        ])  # fmt: skip
    return Table(
        "Break-even programme cost", ["scenario", "programme cost as run",
                                      "break-even cost, in total",
                                      f"break-even cost per real customer per {spec.time.step}"],
        rows,
        intro="The programme cost at which the scenario's profit equals the first scenario's, "
        "from the runs already made.",
        note="Derived per replication as the scenario's profit before its programme cost minus "
        "the first scenario's profit; it assumes the programme's effects stay as they are when "
        "its cost changes (customers never see the cost). Per customer: divided by the "
        "customer-steps the scenario served. A programme that costs less than this pays.",
    )  # fmt: skip


def answer(x: Experiment) -> str:
    """One or two sentences: the headline answer in plain words."""
    spec = x.scenarios[0]
    f = x.figures().set_index(["scenario", "figure"])
    if len(x.names) < 2:
        name = x.names[0]
        return (f"Under {name}, annual churn is {show('annual_churn', f.loc[(name, 'annual_churn'), 'mean'], spec)} "  # noqa: E501
                f"and poor experiences cost {show('lost_revenue_experience_horizon', f.loc[(name, 'lost_revenue_experience_horizon'), 'mean'], spec)} "  # noqa: E501
                "of revenue over the horizon.")  # fmt: skip
    d = x.differences().set_index(["scenario", "figure"])
    a, b = x.names[0], x.names[1]
    lab = f"{b} - {a}"
    churn = d.loc[(lab, "annual_churn")]
    profit = d.loc[(lab, "profit")]
    be = d.loc[(lab, "break_even_cost")]
    verdict = "adds" if profit["low"] > 0 else "loses" if profit["high"] < 0 else "changes"
    return (
        f"{b} {'lowers' if churn['mean'] < 0 else 'raises'} annual churn by "
        f"{abs(100 * churn['mean']):.1f} points against {a} "
        f"({show('annual_churn', f.loc[(a, 'annual_churn'), 'mean'], spec)} -> "
        f"{show('annual_churn', f.loc[(b, 'annual_churn'), 'mean'], spec)}) and {verdict} "
        f"{money_text(abs(profit['mean']), spec.economics.currency)} of profit over "
        f"{spec.time.horizon} {spec.time.step}s after its programme cost; it keeps paying as "
        f"long as the programme costs less than {money_text(be['mean'], spec.economics.currency)} "
        "over that time."
    )


def question(x: Experiment) -> str:
    spec = x.scenarios[0]
    people = spec.population.size * spec.population.represents
    years = spec.time.horizon / spec.time.steps_per_year
    what = " against ".join(x.names) if len(x.names) > 1 else x.names[0]
    return (
        f"What does each strategy ({what}) do to churn, satisfaction, referrals, revenue and "
        f"profit over {years:g} years ({spec.time.horizon} {spec.time.step}s) in a market of "
        f"{people:,.0f} people, {spec.population.customers * spec.population.represents:,.0f} "
        "of them customers at the start, and how much revenue do poor experiences cost?"
    )


def readings(x: Experiment, charts: list[Path]) -> list[Chart]:
    """Each chart with its title and a one-line reading drawn from the figures."""
    spec = x.scenarios[0]
    f = x.figures().set_index(["scenario", "figure"])

    def fig(name: str, key: str) -> str:
        return show(key, f.loc[(name, key), "mean"], spec)

    names = x.names
    each = lambda key: ", ".join(f"{n} {fig(n, key)}" for n in names)  # noqa: E731
    top = x.loss_breakdown()
    top = top[(top["by"] == "touchpoint") & (top["scenario"] == names[0])]
    worst = top.sort_values("lost_revenue_horizon", ascending=False).iloc[0]["part"]
    text = {
        "customers.png": ("Customers over time",
                          f"Real customers at the end: {each('final_customers')}."),
        "new_customers.png": ("New customers by channel",
                              f"By referral: {each('new_customers_referral')}; by advertising: "
                              f"{each('new_customers_ads')}; win-backs: "
                              f"{each('new_customers_win_back')}."),
        "churn_by_cause.png": ("Customers lost by cause",
                               "Bars: customers who left after a bad experience at each "
                               "touchpoint, and for other reasons (baseline); "
                               f"lost after bad experiences: {each('churn_experience')}."),
        "nps_csat.png": ("NPS and CSAT",
                         f"On full scales: NPS {each('nps')}; CSAT {each('csat')} (last year)."),
        "revenue_costs.png": ("Revenue and costs", f"Profit over the horizon: {each('profit')}."),
        "lost_revenue.png": ("Revenue lost to poor experiences over time",
                             "Cumulative revenue lost to customers who walked away: "
                             f"{each('lost_revenue_experience_horizon')}."),
        "lost_revenue_by_touchpoint.png": ("Where the money is lost",
                                           f"Under {names[0]}, {worst} loses the most revenue "
                                           "to customers who walked away."),
        "net_benefit.png": ("Net benefit", "From revenue gained, through each cost line's "
                            "change and the programme cost, to the extra profit."),
        "cohort_retention.png": ("Cohort retention",
                                 "Share of each cohort still a customer by tenure: customers "
                                 "at the start (dashed) and acquired during the run (solid)."),
    }  # fmt: skip
    return [Chart(p, *text.get(p.name, (p.stem.replace("_", " "), ""))) for p in charts]


def report_content(x: Experiment, plan, manifest: dict, charts: list[Path]) -> ReportContent:
    """Everything the report page shows, formatted."""
    tables = loss_tables(x)
    be = break_even(x)
    if be is not None:
        tables.append(be)
    return ReportContent(
        title=" vs ".join(x.names),
        question=question(x),
        answer=answer(x),
        headline=headline(x),
        tables=tables,
        charts=readings(x, charts),
        scenarios=[
            ScenarioText(s.name, src, yaml.safe_dump(s.model_dump(mode="json"), sort_keys=False))
            for src, s in zip(plan.sources, x.scenarios, strict=True)
        ],
        reproduce=Reproduce(
            command=shlex.join(["cxsim", *manifest["command"][1:]]),
            seed=plan.seed, replications=len(x.seeds), engine=x.engine,
            versions=manifest["versions"], git_commit=manifest["git_commit"],
            wall_seconds=manifest["wall_seconds"], created=manifest["created"],
        ),
    )  # fmt: skip


def as_text(table: Table) -> str:
    """A table for the terminal: fixed-width columns, the first left-aligned."""
    cells = [table.columns, *table.rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(table.columns))]
    lines = []
    for k, row in enumerate(cells):
        parts = [str(c).ljust(w) if i == 0 else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]  # fmt: skip
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
