"""Board-ready PNG charts of an experiment: one line (mean) and band (95% CI) per scenario."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from cxsim.metrics import churn_causes, label  # noqa: E402

COLOURS = ["#c0392b", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def _band(
    ax, steps: pd.DataFrame, metric: str, names: list[str], style: str = "-", tag: bool = False
) -> None:
    for i, name in enumerate(names):
        g = steps[steps["scenario"] == name].groupby("step")[metric]
        mean, sd, n = g.mean(), g.std(ddof=1).fillna(0.0), g.count()
        half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
        colour = COLOURS[i % len(COLOURS)]
        ax.plot(
            mean.index,
            mean.values,
            style,
            color=colour,
            label=f"{name}: {label(metric)}" if tag else name,
        )
        ax.fill_between(mean.index, mean - half, mean + half, color=colour, alpha=0.2, lw=0)


def _finish(fig, ax, title: str, xlabel: str, ylabel: str, path: Path, **legend) -> Path:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, **legend)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_charts(
    steps: pd.DataFrame,
    summaries: pd.DataFrame,
    causes: list[str],
    out: Path,
    step_label: str = "week",
    currency: str = "USD",
) -> list[Path]:
    """Write the standard charts into ``out``; returns their paths."""
    names = list(dict.fromkeys(steps["scenario"]))
    steps = steps[steps["step"] > 0]
    paths = []

    fig, ax = plt.subplots(figsize=(8, 4.5))
    _band(ax, steps, "customers", names)
    paths.append(
        _finish(
            fig,
            ax,
            "Customers (mean, 95% CI)",
            f"{step_label}s",
            "customers",
            out / "customers.png",
        )
    )

    fig, ax = plt.subplots(figsize=(8, 4.5))
    causes = [c for c in causes if c in summaries]
    cols = [c for c in causes if summaries[c].sum() > 0] or causes
    width = 0.8 / len(names)
    y = np.arange(len(cols))
    for i, name in enumerate(names):
        g = summaries[summaries["scenario"] == name][cols]
        ax.barh(
            y + i * width,
            g.mean().values,
            height=width,
            color=COLOURS[i % len(COLOURS)],
            xerr=g.sem().fillna(0).values * 1.96,
            label=name,
        )
    ax.set_yticks(y + width * (len(names) - 1) / 2, [c.removeprefix("churn_by_") for c in cols])
    ax.invert_yaxis()
    paths.append(
        _finish(
            fig,
            ax,
            "Churn by cause over the run (mean, 95% CI)",
            "customers lost (simulated)",
            "",
            out / "churn_by_cause.png",
        )
    )

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    _band(left, steps, "nps", names)
    _band(right, steps, "csat", names)
    left.set_ylabel(label("nps"))
    right.set_ylabel(label("csat"))
    for ax_, title in ((left, "Net Promoter Score"), (right, "Customer satisfaction (CSAT)")):
        ax_.set_title(title)
        ax_.set_xlabel(f"{step_label}s")
        ax_.grid(alpha=0.3)
        ax_.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(out / "nps_csat.png", dpi=120)
    plt.close(fig)
    paths.append(out / "nps_csat.png")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    _band(ax, steps, "revenue", names, "-", tag=True)
    _band(ax, steps, "costs", names, "--", tag=True)
    paths.append(
        _finish(
            fig,
            ax,
            f"Revenue (solid) and costs (dashed) per {step_label}",
            f"{step_label}s",
            currency,
            out / "revenue_costs.png",
            fontsize=8,
        )
    )
    return paths


def write_all(experiment, out: Path) -> list[Path]:
    spec = experiment.scenarios[0]
    return write_charts(
        experiment.steps,
        experiment.summaries,
        churn_causes(spec),
        out,
        spec.time.step,
        spec.economics.currency,
    )
