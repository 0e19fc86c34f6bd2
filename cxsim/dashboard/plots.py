"""Images for the dashboard: the strategies' lines so far and the network sample, in matplotlib.

The figures are drawn on the server and sent as PNG images, so the page needs no charting
library from a CDN. Figures are built with ``matplotlib.figure.Figure`` (no pyplot), which
keeps them out of pyplot's global state when several browser sessions draw at once.
"""

from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from cxsim.dashboard.comparison import Comparison, money
from cxsim.engines.base import Stage

COLOURS = ("#d95f02", "#1b9e77")  # baseline, strategy tried(the colours of cxsim's charts)
STAGE_COLOURS = {
    Stage.PROSPECT: "#c8c8c8",
    Stage.ONBOARDING: "#6baed6",
    Stage.ACTIVE: "#238b45",
    Stage.CHURNED: "#cb181d",
}


def lines_figure(model: Comparison) -> Figure:
    """Four panels: real customers, NPS, cumulative profit and revenue lost to poor
    experiences, one line per strategy, up to the current step."""
    spec = model.specs[0]
    scale = spec.population.represents
    currency = spec.economics.currency
    fig = Figure(figsize=(9.6, 5.6), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    panels = [
        ("customers", f"Customers (real: x{scale:g})", scale, False),
        ("nps", "NPS (points)", 1, False),
        ("cumulative_profit", f"Cumulative profit ({currency})", 1, True),
        (
            "cumulative_lost_revenue_experience_horizon",
            f"Revenue lost to poor experiences ({currency})",
            1,
            True,
        ),
    ]
    horizon = spec.time.horizon
    for ax, (metric, title, factor, is_money) in zip(axes.flat, panels, strict=True):
        for series, name, colour in zip(model.series(metric), model.names, COLOURS, strict=True):
            ax.plot(np.arange(len(series)), np.asarray(series, dtype=float) * factor,
                    color=colour, label=name, linewidth=1.6)  # fmt: skip
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, horizon)
        ax.grid(alpha=0.3)
        if is_money:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: money(v)))
        else:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    for ax in axes[1]:
        ax.set_xlabel(f"{spec.time.step}s")
    axes[0, 0].legend(loc="best", fontsize=9)
    return fig


def network_figure(model: Comparison) -> Figure:
    """The same sampled people under each strategy, coloured by stage (prospect, onboarding,
    customer, former customer); customers' dots grow with their satisfaction."""
    sample = model.sample
    fig = Figure(figsize=(9.6, 4.4), layout="constrained")
    axes = fig.subplots(1, 2)
    segments = sample.xy[sample.edges] if len(sample.edges) else np.empty((0, 2, 2))
    cmap = ListedColormap([STAGE_COLOURS[s] for s in Stage])
    for ax, sim, name in zip(axes, model.models, model.names, strict=True):
        stage = sim.stage[sample.people]
        satisfaction = sim.satisfaction[sample.people]
        ax.add_collection(LineCollection(segments, colors="#dddddd", linewidths=0.5, zorder=1))
        size = np.where(stage == Stage.ACTIVE, 10 + 40 * satisfaction, 12)
        ax.scatter(sample.xy[:, 0], sample.xy[:, 1], c=stage, cmap=cmap, vmin=0,
                   vmax=len(Stage) - 1, s=size, zorder=2, linewidths=0)  # fmt: skip
        customers = int(np.isin(stage, (Stage.ONBOARDING, Stage.ACTIVE)).sum())
        ax.set_title(f"{name}: {customers} of {len(stage)} people drawn are customers", fontsize=10)
        ax.set_axis_off()
    handles = [
        axes[0].scatter([], [], color=STAGE_COLOURS[s], s=20, label=s.name.lower()) for s in Stage
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(Stage), fontsize=9,
               frameon=False)  # fmt: skip
    return fig
