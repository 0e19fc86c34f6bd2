"""Names of the per-step metrics, and summaries of runs with confidence intervals.

One name per concept: the column in every table, the key in the DataCollector and the label in
the charts are the names listed here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from cxsim.scenario import Scenario

STOCKS = ["prospects", "onboarding", "active", "churned", "customers"]
FLOWS = [
    "new_customers",
    "new_customers_ads",
    "new_customers_referral",
    "returned",
    "churn",
    "churn_rate",
]
EXPERIENCE = [
    "mean_satisfaction",
    "csat",
    "nps",
    "promoters",
    "detractors",
    "experiences_good",
    "experiences_bad",
    "problems_arising",
    "problems_detected",
    "problems_contacted",
    "problems_resolved",
    "problems_open",
    "outreach_contacts",
    "reviews_posted",
    "review_score",
]
MONEY = [
    "revenue",
    "cost_acquisition",
    "cost_support",
    "cost_programme",
    "costs",
    "profit",
    "lost_revenue_horizon",
    "lost_revenue_lifetime",
    "lost_revenue_experience_horizon",
    "lost_revenue_experience_lifetime",
    "cumulative_revenue",
    "cumulative_costs",
    "cumulative_profit",
    "cumulative_lost_revenue_horizon",
    "cumulative_lost_revenue_experience_horizon",
]

LABELS = {
    "customers": "Customers (onboarding + active)",
    "churn_rate": "Churn rate per step",
    "nps": "NPS (points)",
    "csat": "CSAT (% satisfied)",
    "mean_satisfaction": "Mean satisfaction (0-1)",
    "revenue": "Revenue per step",
    "costs": "Costs per step",
    "profit": "Profit per step",
    "cumulative_profit": "Cumulative profit",
    "cumulative_lost_revenue_experience_horizon": "Revenue lost to poor experiences (cumulative)",
}


def churn_causes(spec: Scenario) -> list[str]:
    """Names of the churn-by-cause columns: one per touchpoint, then baseline."""
    return [f"churn_by_{c}" for c in (*spec.touchpoint_names, "baseline")]


def metric_names(spec: Scenario) -> list[str]:
    """Every per-step metric, in table order."""
    return STOCKS + FLOWS + churn_causes(spec) + EXPERIENCE + MONEY


def label(name: str) -> str:
    """Chart label of a metric."""
    return LABELS.get(name, name.replace("_", " ").capitalize())


def annual_churn(steps: pd.DataFrame, steps_per_year: float) -> float:
    """Annualised churn: 1 - (1 - mean per-step churn rate)^(steps per year), over steps >= 1."""
    rate = steps.loc[steps["step"] > 0, "churn_rate"].mean()
    return float(1.0 - (1.0 - rate) ** steps_per_year)


def run_summary(steps: pd.DataFrame, spec: Scenario) -> dict[str, float]:
    """Key figures of one run: final stocks, totals, and the last year's experience scores."""
    per_year = spec.time.steps_per_year
    last_year = steps[steps["step"] > max(0, steps["step"].max() - per_year)]
    flows = steps[steps["step"] > 0]
    out = {
        "final_customers": float(steps["customers"].iloc[-1]),
        "annual_churn": annual_churn(steps, per_year),
        "total_churn": float(flows["churn"].sum()),
        "churn_experience": float(flows["churn"].sum() - flows["churn_by_baseline"].sum()),
        "churn_baseline": float(flows["churn_by_baseline"].sum()),
        "new_customers_ads": float(flows["new_customers_ads"].sum()),
        "new_customers_referral": float(flows["new_customers_referral"].sum()),
        "nps": float(last_year["nps"].mean()),
        "csat": float(last_year["csat"].mean()),
        "mean_satisfaction": float(last_year["mean_satisfaction"].mean()),
        "revenue": float(flows["revenue"].sum()),
        "costs": float(flows["costs"].sum()),
        "cost_programme": float(flows["cost_programme"].sum()),
        "profit": float(flows["profit"].sum()),
        "lost_revenue_horizon": float(flows["lost_revenue_horizon"].sum()),
        "lost_revenue_lifetime": float(flows["lost_revenue_lifetime"].sum()),
        "lost_revenue_experience_horizon": float(flows["lost_revenue_experience_horizon"].sum()),
        "lost_revenue_experience_lifetime": float(flows["lost_revenue_experience_lifetime"].sum()),
    }
    for col in ["problems_arising", "problems_detected", "problems_contacted",
                "problems_resolved", "outreach_contacts", "reviews_posted", "returned",
                *churn_causes(spec)]:  # fmt: skip
        out[col] = float(flows[col].sum())
    return out


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t confidence interval of the mean over replications."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return (float("nan"),) * 3
    m = float(x.mean())
    if len(x) < 2:
        return m, m, m
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, m - half, m + half


def summarise(summaries: pd.DataFrame, by: str = "scenario") -> pd.DataFrame:
    """Mean and 95% CI of every summary figure, per scenario: columns figure, mean, low, high,
    n (replications with a value: a payback that never came or an undefined ratio is left out,
    and n says so)."""
    rows = []
    for key, group in summaries.groupby(by, sort=False):
        for col in group.columns:
            if col in (by, "replication", "seed") or not np.issubdtype(group[col].dtype, np.number):
                continue
            m, lo, hi = mean_ci(group[col])
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
    rows = []
    frame = customers.copy()
    frame["cohort_start"] = np.where(
        frame["acquired_step"] == 0, 0, ((frame["acquired_step"] - 1) // period) * period + 1
    )
    churn = frame["churn_step"].to_numpy(np.int64)
    left = np.where(churn >= 0, churn, horizon + 1)  # still a customer: past the horizon
    frame["lifetime"] = left - frame["acquired_step"].to_numpy(np.int64)
    for (scenario, start), group in frame.groupby(["scenario", "cohort_start"], sort=True):
        for tenure in range(period, horizon + 1, period):
            seen = group[group["acquired_step"] + tenure <= horizon]
            if not len(seen):
                break
            rows.append({
                "scenario": scenario,
                "cohort_start": int(start),
                "tenure": tenure,
                "spells": len(seen),
                "retained": float((seen["lifetime"] > tenure).mean()),
            })  # fmt: skip
    return pd.DataFrame(rows)
