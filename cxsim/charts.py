"""Board-ready PNG charts of an experiment: a line (mean) and a band (95% CI) per scenario."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
from scipy import stats  # noqa: E402

from cxsim.metrics import churn_causes, label  # noqa: E402

COLOURS = ["#c0392b", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def _band(
    ax, steps: pd.DataFrame, metric: str, names: list[str], style: str = "-", tag: bool = False
) -> None:
    """Mean and 95% CI over replications of ``metric``, one colour per scenario."""
    for i, name in enumerate(names):
        g = steps[steps["scenario"] == name].groupby("step")[metric]
        mean, sd, n = g.mean(), g.std(ddof=1).fillna(0.0), g.count()
        half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
        colour = COLOURS[i % len(COLOURS)]
        text = f"{name}: {label(metric).lower()}" if tag else name
        ax.plot(mean.index, mean.values, style, color=colour, label=text)
        ax.fill_between(mean.index, mean - half, mean + half, color=colour, alpha=0.2, lw=0)


def _money_axis(ax, currency: str) -> None:
    top = max(abs(v) for v in ax.get_ylim())
    scale, unit = (1e9, "billions") if top >= 2e9 else (1e6, "millions") if top >= 2e6 else (1, "")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / scale:,.0f}"))
    ax.set_ylabel(f"{currency} {unit}".strip())


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _lines(steps, names, metrics, title, ylabel, step_label, path, currency=None) -> Path:
    """One panel of metrics over time: the first solid, the others dashed."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for metric, style in zip(metrics, ["-", "--", ":"], strict=False):
        _band(ax, steps, metric, names, style, tag=len(metrics) > 1)
    ax.set_title(title)
    ax.set_xlabel(f"{step_label}s")
    ax.set_ylabel(ylabel)
    if currency:
        _money_axis(ax, currency)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8 if len(metrics) > 1 else 10)
    return _save(fig, path)


def _churn_by_cause(summaries: pd.DataFrame, causes: list[str], names, path: Path) -> Path:
    causes = [c for c in causes if c in summaries]
    cols = [c for c in causes if summaries[c].sum() > 0] or causes
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(names)
    y = np.arange(len(cols))
    for i, name in enumerate(names):
        g = summaries[summaries["scenario"] == name][cols]
        ax.barh(y + i * width, g.mean().values, height=width, label=name,
                color=COLOURS[i % len(COLOURS)], xerr=1.96 * g.sem().fillna(0).values)  # fmt: skip
    ax.set_yticks(y + width * (len(names) - 1) / 2, [c.removeprefix("churn_by_") for c in cols])
    ax.invert_yaxis()
    ax.set_title("Churn by cause over the run (mean, 95% CI)")
    ax.set_xlabel("customers lost (simulated people)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(frameon=False)
    return _save(fig, path)


def _nps_csat(steps: pd.DataFrame, names, step_label: str, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, metric, title in zip(axes, ["nps", "csat"], ["Net Promoter Score",
                                 "Customer satisfaction (CSAT)"], strict=True):  # fmt: skip
        _band(ax, steps, metric, names)
        ax.set_title(title)
        ax.set_xlabel(f"{step_label}s")
        ax.set_ylabel(label(metric))
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    return _save(fig, path)


def _retention(cohorts: pd.DataFrame, names, step_label: str, path: Path) -> Path:
    """Share of customers still there by tenure: at the start, and acquired during the run."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, name in enumerate(names):
        mine = cohorts[cohorts["scenario"] == name]
        for start, style, who in ((True, "--", "customers at the start"),
                                  (False, "-", "acquired during the run")):  # fmt: skip
            part = mine[(mine["cohort_start"] == 0) == start]
            if not len(part):
                continue
            kept = part.assign(n=part["spells"] * part["retained"]).groupby("tenure")
            share = kept["n"].sum() / kept["spells"].sum()
            ax.plot(share.index, 100 * share.values, style, marker="o", ms=3,
                    color=COLOURS[i % len(COLOURS)], label=f"{name}: {who}")  # fmt: skip
    ax.set_title("Cohort retention: share still a customer, by tenure")
    ax.set_xlabel(f"tenure ({step_label}s)")
    ax.set_ylabel("% still a customer")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def write_charts(
    steps: pd.DataFrame,
    summaries: pd.DataFrame,
    causes: list[str],
    out: Path,
    step_label: str = "week",
    currency: str = "USD",
    cohorts: pd.DataFrame | None = None,
) -> list[Path]:
    """Write the standard charts into ``out``; returns their paths."""
    names = list(dict.fromkeys(steps["scenario"]))
    steps = steps[steps["step"] > 0]
    return [
        _lines(steps, names, ["customers"], "Customers (mean, 95% CI)", "customers",
               step_label, out / "customers.png"),
        _churn_by_cause(summaries, causes, names, out / "churn_by_cause.png"),
        _nps_csat(steps, names, step_label, out / "nps_csat.png"),
        _lines(steps, names, ["revenue", "costs"],
               f"Revenue (solid) and costs (dashed) per {step_label}", "", step_label,
               out / "revenue_costs.png", currency),
        _lines(steps, names, ["cumulative_lost_revenue_experience_horizon"],
               "Revenue lost to customers who walked away after bad experiences (cumulative)",
               "", step_label, out / "lost_revenue.png", currency),
    ] + ([] if cohorts is None or not len(cohorts) else
         [_retention(cohorts, names, step_label, out / "cohort_retention.png")])  # fmt: skip


def write_all(experiment, out: Path) -> list[Path]:
    """The standard charts of an :class:`~cxsim.experiment.Experiment`."""
    spec = experiment.scenarios[0]
    return write_charts(
        experiment.steps, experiment.summaries, churn_causes(spec), out,
        spec.time.step, spec.economics.currency, experiment.cohorts(),
    )  # fmt: skip
