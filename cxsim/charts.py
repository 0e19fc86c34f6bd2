"""Board-ready PNG charts of an experiment: a line (mean) and a band (95% CI) per scenario.

People are drawn as real customers (simulated people x ``population.represents``) and money in
the scenario's currency; time is in the scenario's step (weeks, months). Each chart method
writes ``<its name>.png`` and returns its path; :func:`write_all` writes the standard set for a
results folder, in this process or spread over a pool's workers (:func:`draw` is their task:
a :class:`Charts` holds only the few tables its charts read, so it travels cheaply).
"""

from __future__ import annotations

import gc
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from cxsim.metrics import churn_causes, label, t_quantile

COLOURS = ["#c0392b", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
STYLES = ["-", "--", ":"]


@cache
def pyplot():
    """matplotlib's pyplot on the Agg backend (files, no window), loaded on first use: a
    process that only hands the charts to a pool's painters (see :func:`start`) never loads
    matplotlib, and the painters call this first (see :func:`cxsim.executors.warm_pool`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def prepare() -> None:
    """A painter's start (the ``prepare`` of :func:`cxsim.executors.warm_pool`): pyplot loaded,
    and every object loaded so far (numpy, pandas, matplotlib, inherited from the fork server)
    set aside from garbage collection (``gc.freeze``). Drawing makes many short-lived objects,
    and each full collection they set off would walk those hundreds of thousands of long-lived
    ones again: a tenth of a painter's CPU."""
    pyplot()
    gc.freeze()


def _formatter(fn):
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(fn)


def _band(ax, steps: pd.DataFrame, metric: str, names: list[str], scale: float = 1.0,
          style: str = "-", text: str | None = None) -> None:  # fmt: skip
    """Mean and 95% CI over replications of ``metric`` (times ``scale``), a colour per
    scenario; ``text`` names the metric in the legend when a panel shows several."""
    for i, name in enumerate(names):
        g = steps[steps["scenario"] == name].groupby("step")[metric]
        mean, sd, n = g.mean() * scale, g.std(ddof=1).fillna(0.0) * scale, g.count()
        half = t_quantile(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
        colour = COLOURS[i % len(COLOURS)]
        ax.plot(mean.index, mean.values, style, color=colour,
                label=f"{name}: {text}" if text else name)  # fmt: skip
        ax.fill_between(mean.index, mean - half, mean + half, color=colour, alpha=0.2, lw=0)


def _money_axis(ax, currency: str, axis: str = "y") -> None:
    lims = ax.get_ylim() if axis == "y" else ax.get_xlim()
    top = max(abs(v) for v in lims)
    scale, unit = (1e9, "billions") if top >= 2e9 else (1e6, "millions") if top >= 2e6 else (1, "")
    fmt = _formatter(lambda v, _: f"{v / scale:,.0f}")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(fmt)
    (ax.set_ylabel if axis == "y" else ax.set_xlabel)(f"{currency} {unit}".strip())


def _people_axis(ax, axis: str = "y") -> None:
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(_formatter(lambda v, _: f"{v:,.0f}"))


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    # tight_layout leaves a placeholder layout engine, for which savefig would lay the figure out
    # once more in a draw that renders nothing and changes nothing (a fifth of a chart's time).
    fig.set_layout_engine(None)
    # zlib's fastest level: the same pixels, in a file about 15% larger, encoded in 30% less
    # time than at Pillow's default level (6).
    fig.savefig(path, dpi=110, pil_kwargs={"compress_level": 1})
    pyplot().close(fig)
    return path


def _panel(title: str, xlabel: str, figsize=(8, 4.5)):
    fig, ax = pyplot().subplots(figsize=figsize)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    return fig, ax


OVER_STEPS = ["customers", "new_customers", "churn_by_cause", "nps_csat", "revenue_costs",
              "lost_revenue"]  # fmt: skip
"""The standard charts drawn from the runs' steps and summaries alone (every experiment has
them), so a pool can draw them while the other tables are computed (see :func:`start`)."""


class Charts:
    """The standard charts of one experiment, in the scenarios' units."""

    def __init__(self, experiment, out: Path, derived: bool = True) -> None:
        """``derived``: also the tables computed from the runs (losses, differences, cohorts);
        without them, only the charts in :data:`OVER_STEPS` can be drawn."""
        spec = experiment.scenarios[0]
        self.out = Path(out)
        self.names = experiment.names
        self.steps = experiment.steps[experiment.steps["step"] > 0]
        self.summaries = experiment.summaries
        self.losses = experiment.loss_breakdown() if derived else None
        self.differences = experiment.differences() if derived else None
        self.cohorts = experiment.cohorts() if derived else None
        self.step = spec.time.step
        self.currency = spec.economics.currency
        self.represents = spec.population.represents
        self.causes = churn_causes(spec)
        # Events and strategy start of every scenario, marked on the charts over time.
        self.events = list(dict.fromkeys(
            (e.name, e.start, e.start + e.duration - 1)
            for s in experiment.scenarios for e in s.events
        ))  # fmt: skip
        self.starts = sorted({(s.name, s.strategy.start) for s in experiment.scenarios
                              if s.strategy.start > 0})  # fmt: skip

    def _mark(self, ax) -> None:
        """Shade each event's steps and line each late strategy start, with their names."""
        for name, first, last in self.events:
            ax.axvspan(first - 0.5, last + 0.5, color="#999", alpha=0.15, lw=0)
            ax.annotate(name, (first, 1), xycoords=("data", "axes fraction"), fontsize=7,
                        va="top", ha="left", color="#555", xytext=(2, -2),
                        textcoords="offset points")  # fmt: skip
        for name, start in self.starts:
            ax.axvline(start - 0.5, color="#555", lw=0.8, ls=":")
            ax.annotate(f"{name} starts", (start, 0), xycoords=("data", "axes fraction"),
                        fontsize=7, va="bottom", color="#555", xytext=(2, 2),
                        textcoords="offset points")  # fmt: skip

    def standard(self) -> list[str]:
        """The names of the standard charts of this experiment, in the report's order."""
        names = [*OVER_STEPS, "lost_revenue_by_touchpoint"]
        if len(self.names) > 1:
            names.append("net_benefit")
        if len(self.cohorts):
            names.append("cohort_retention")
        return names

    def path(self, name: str) -> Path:
        return self.out / f"{name}.png"

    def customers(self) -> Path:
        fig, ax = _panel("Customers (mean, 95% CI)", f"{self.step}s")
        _band(ax, self.steps, "customers", self.names, self.represents)
        ax.set_ylabel("real customers")
        ax.set_ylim(bottom=0)
        self._mark(ax)
        _people_axis(ax)
        ax.legend(frameon=False)
        return _save(fig, self.path("customers"))

    def new_customers(self) -> Path:
        """Cumulative new customers by channel: advertising, referral, win-back."""
        fig, ax = _panel("New customers by channel (cumulative, mean, 95% CI)", f"{self.step}s")
        cumulative = self.steps.copy()
        channels = ["new_customers_ads", "new_customers_referral", "new_customers_win_back"]
        grouped = cumulative.groupby(["scenario", "replication"])[channels]
        cumulative[channels] = grouped.cumsum()
        texts = ["advertising", "referral", "win-back"]
        for metric, style, text in zip(channels, STYLES, texts, strict=True):
            _band(ax, cumulative, metric, self.names, self.represents, style, text)
        ax.set_ylabel("real customers")
        self._mark(ax)
        _people_axis(ax)
        ax.legend(frameon=False, fontsize=8)
        return _save(fig, self.path("new_customers"))

    def churn_by_cause(self) -> Path:
        summaries = self.summaries
        causes = [c for c in self.causes if c in summaries]
        cols = [c for c in causes if summaries[c].sum() > 0] or causes
        fig, ax = _panel("Customers lost by cause over the run (mean, 95% CI)", "real customers")
        width = 0.8 / len(self.names)
        y = np.arange(len(cols))
        for i, name in enumerate(self.names):
            g = summaries[summaries["scenario"] == name][cols] * self.represents
            ax.barh(y + i * width, g.mean().values, height=width, label=name,
                    color=COLOURS[i % len(COLOURS)],
                    xerr=_half_widths(g))  # fmt: skip
        ax.set_yticks(y + width * (len(self.names) - 1) / 2,
                      [c.removeprefix("churn_by_") for c in cols])  # fmt: skip
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
        ax.grid(False, axis="y")
        _people_axis(ax, "x")
        ax.legend(frameon=False)
        return _save(fig, self.path("churn_by_cause"))

    def nps_csat(self) -> Path:
        """NPS on its full scale (-100 to +100) and CSAT on 0-100%, so a gap is not magnified."""
        fig, axes = pyplot().subplots(1, 2, figsize=(11, 4.5))
        for ax, metric, title, limits in zip(
            axes, ["nps", "csat"], ["Net Promoter Score", "Customer satisfaction (CSAT)"],
            [(-100, 100), (0, 100)], strict=True,
        ):  # fmt: skip
            _band(ax, self.steps, metric, self.names)
            ax.set_title(title)
            ax.set_xlabel(f"{self.step}s")
            ax.set_ylabel(label(metric) + (" (points)" if metric == "nps" else " (% satisfied)"))
            ax.set_ylim(*limits)
            ax.axhline(0, color="#888", lw=0.8)
            self._mark(ax)
            ax.grid(alpha=0.3)
            ax.legend(frameon=False)
        return _save(fig, self.path("nps_csat"))

    def revenue_costs(self) -> Path:
        fig, ax = _panel(f"Revenue (solid) and costs (dashed) per {self.step}", f"{self.step}s")
        _band(ax, self.steps, "revenue", self.names, style="-", text="revenue")
        _band(ax, self.steps, "costs", self.names, style="--", text="costs")
        ax.set_ylim(bottom=0)
        self._mark(ax)
        _money_axis(ax, self.currency)
        ax.legend(frameon=False, fontsize=8)
        return _save(fig, self.path("revenue_costs"))

    def lost_revenue(self) -> Path:
        fig, ax = _panel(
            "Revenue lost to customers who walked away after bad experiences (cumulative)",
            f"{self.step}s",
        )
        _band(ax, self.steps, "cumulative_lost_revenue_experience_horizon", self.names)
        ax.set_ylim(bottom=0)
        self._mark(ax)
        _money_axis(ax, self.currency)
        ax.legend(frameon=False)
        return _save(fig, self.path("lost_revenue"))

    def lost_revenue_by_touchpoint(self) -> Path:
        """Revenue lost within the horizon by the touchpoint of the last bad experience."""
        table = self.losses
        table = table[table["by"] == "touchpoint"]
        lost = table.groupby("part", sort=False)["lost_revenue_horizon"].sum()
        parts = list(lost.index[lost.abs() > 0])
        fig, ax = _panel("Revenue lost to poor experiences, by touchpoint (mean, 95% CI)", "")
        width = 0.8 / len(self.names)
        y = np.arange(len(parts))
        for i, name in enumerate(self.names):
            mine = table[table["scenario"] == name].set_index("part").reindex(parts)
            mean = mine["lost_revenue_horizon"].to_numpy()
            err = np.vstack([mean - mine["lost_revenue_horizon_low"].to_numpy(),
                             mine["lost_revenue_horizon_high"].to_numpy() - mean])  # fmt: skip
            ax.barh(y + i * width, mean, height=width, xerr=err, label=name,
                    color=COLOURS[i % len(COLOURS)])  # fmt: skip
        ax.set_yticks(y + width * (len(self.names) - 1) / 2, parts)
        ax.invert_yaxis()
        ax.grid(False, axis="y")
        _money_axis(ax, self.currency, "x")
        ax.legend(frameon=False)
        return _save(fig, self.path("lost_revenue_by_touchpoint"))

    def net_benefit(self) -> Path:
        """Waterfall of the second scenario against the first: revenue gained, each cost line's
        change, the programme cost, and the net (the extra profit)."""
        diffs = self.differences
        first = self.names[0]
        label_of = f"{self.names[1]} - {first}"
        d = diffs[diffs["scenario"] == label_of].set_index("figure")[["mean", "low", "high"]]
        steps = [
            ("revenue gained", d.loc["revenue"]),
            ("acquisition cost", -d.loc["cost_acquisition"]),
            ("support cost", -d.loc["cost_support"]),
            ("programme cost", -d.loc["cost_programme"]),
        ]
        fig, ax = _panel(f"Net benefit of {self.names[1]} over {first}, over the horizon", "")
        running = 0.0
        for i, (_, row) in enumerate(steps):
            value = float(row["mean"])
            lo, hi = sorted((float(row["low"]), float(row["high"])))
            colour = "#2ca02c" if value >= 0 else "#c0392b"
            ax.bar(i, value, bottom=running, color=colour, width=0.6)
            ax.errorbar(i, running + value, yerr=[[value - lo], [hi - value]], color="#333",
                        capsize=4)  # fmt: skip
            running += value
        net = d.loc["profit"]
        ax.bar(len(steps), float(net["mean"]), color="#1f77b4", width=0.6)
        ax.errorbar(len(steps), float(net["mean"]),
                    yerr=[[float(net["mean"] - net["low"])], [float(net["high"] - net["mean"])]],
                    color="#333", capsize=4)  # fmt: skip
        ax.axhline(0, color="#888", lw=0.8)
        ax.set_xticks(range(len(steps) + 1), [t for t, _ in steps] + ["net benefit"],
                      fontsize=9)  # fmt: skip
        ax.grid(False, axis="x")
        _money_axis(ax, self.currency)
        return _save(fig, self.path("net_benefit"))

    def cohort_retention(self) -> Path:
        """Share of customers still there by tenure: at the start, and acquired during the run."""
        cohorts = self.cohorts
        fig, ax = _panel("Cohort retention: share still a customer, by tenure",
                         f"tenure ({self.step}s)")  # fmt: skip
        for i, name in enumerate(self.names):
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
        ax.set_ylabel("% still a customer")
        ax.set_ylim(0, 100)
        ax.legend(frameon=False, fontsize=8)
        return _save(fig, self.path("cohort_retention"))


def _half_widths(group: pd.DataFrame) -> np.ndarray:
    n = len(group)
    if n < 2:
        return np.zeros(group.shape[1])
    return t_quantile(0.975, n - 1) * group.std(ddof=1).fillna(0).values / np.sqrt(n)


def draw(task: tuple[Charts, str]) -> Path:
    """Draw one chart, ``(charts, name)``: the task a pool's worker is given."""
    charts, name = task
    return getattr(charts, name)()


def write_all(experiment, out: Path, pool: ProcessPoolExecutor | None = None) -> list[Path]:
    """The standard charts of an :class:`~cxsim.experiment.Experiment`, drawn by ``pool`` if
    given (see :func:`start`)."""
    return start(experiment, out, pool).wait()


@dataclass
class Drawing:
    """Charts being drawn: their paths, known at once, and :meth:`wait` for the files."""

    paths: list[Path]
    futures: list[Future]
    tasks: list[tuple[Charts, str]]  # what each future draws

    def wait(self) -> list[Path]:
        """The paths, once every chart is written (a chart that failed raises its error). A
        chart whose painter died (killed, out of memory: the pool is then broken) is drawn
        here instead."""
        for future, task in zip(self.futures, self.tasks, strict=True):
            try:
                future.result()
            except BrokenProcessPool:
                draw(task)
        return self.paths


def start(experiment, out: Path, pool: ProcessPoolExecutor | None = None) -> Drawing:
    """Start drawing the standard charts: on ``pool``'s workers, one chart a task, while this
    process goes on; without a pool (or if its painters have died already), here and now."""
    if pool is not None:
        try:
            return _hand_out(experiment, out, pool)
        except BrokenProcessPool:
            pass
    charts = Charts(experiment, out)
    return Drawing([draw((charts, name)) for name in charts.standard()], [], [])


def _hand_out(experiment, out: Path, pool: ProcessPoolExecutor) -> Drawing:
    # The painters start on the charts over the steps at once, while this process computes the
    # tables the others read (kept by the experiment for the tables written next).
    early = Charts(experiment, out, derived=False)
    tasks = {name: (early, name) for name in OVER_STEPS}
    futures = {name: pool.submit(draw, tasks[name]) for name in OVER_STEPS}
    charts = Charts(experiment, out)
    names = charts.standard()
    for name in names:
        if name not in futures:
            tasks[name] = (charts, name)
            futures[name] = pool.submit(draw, tasks[name])
    return Drawing([charts.path(name) for name in names], [futures[name] for name in names],
                   [tasks[name] for name in names])  # fmt: skip
