"""Images for the dashboard: both strategies' charts and the network sample, as PNG bytes.

The figures are drawn on the server with matplotlib and sent as PNG images, so the page needs
no charting library from a CDN. Drawing is the slow part of a step (the models step in a few
milliseconds), so each chart is built once per model and then only updated:

* :class:`Charts` is one figure with every chart as a panel. Axes, ticks and titles (most of
  the drawing time) are rendered into a cached background, again only when an axis has to
  grow; the axes grow in steps with headroom, so that is rare. A step restores the background
  and draws just the lines and bars on it. There is no layout engine to run (the margins are
  fixed), and the PNG is written with light compression at a modest DPI.
* :class:`NetworkView` keeps the sample's edges and legend drawn in a cached background; a step
  recolours the dots, and only when some dot's colour or mark changed are they drawn again.
  The layout itself is computed once per network, in
  :func:`cxsim.dashboard.comparison.network_sample`.

Figures are ``matplotlib.figure.Figure`` objects (no pyplot), so several browser sessions can
draw at once without sharing pyplot's global state.
"""

from __future__ import annotations

import io

import numpy as np
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from cxsim import rules
from cxsim.dashboard.comparison import Comparison, money
from cxsim.engines.base import Stage
from cxsim.metrics import churn_causes, metric

COLOURS = ("#d95f02", "#1b9e77")  # baseline, strategy tried (the colours of cxsim's charts)
STAGE_COLOURS = {
    Stage.PROSPECT: "#c8c8c8",
    Stage.ONBOARDING: "#6baed6",
    Stage.ACTIVE: "#238b45",
    Stage.CHURNED: "#cb181d",
}
DPI = 80  # sharp enough on screen; pixels cost render and encode time on every step
PNG = {"compress_level": 1}  # fast to write; the image only travels over loopback
CHANNELS = ("new_customers_ads", "new_customers_referral", "new_customers_win_back")
CHANNEL_STYLES = ("-", "--", ":")


def _canvas_png(canvas: FigureCanvasAgg) -> bytes:
    """The canvas as it is drawn now (no new render), as PNG."""
    width, height = canvas.get_width_height()
    image = PIL.Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buffer = io.BytesIO()
    image.save(buffer, format="png", **PNG)
    return buffer.getvalue()


def _grown(low: float, high: float, data_low: float, data_high: float) -> tuple[float, float]:
    """Axis limits that hold the data: the current ones if they do, else wider by the span
    again, so a line growing steadily changes the axis (and the cached background) only a few
    times in a run; an axis whose data is not negative keeps 0 as its floor."""
    if low <= data_low and data_high <= high:
        return low, high
    span = max(high - low, data_high - data_low, abs(data_high) * 0.05, 1e-9)
    new_low = low if data_low >= low else data_low - 0.5 * span
    new_high = high if data_high <= high else data_high + span
    return (max(new_low, 0.0) if data_low >= 0 else new_low), new_high


def _short(value: float, _position: object = None) -> str:
    """Tick labels in the short form of the headline (1.2 M, 35 k, 420)."""
    return money(value)


def unit_text(name: str, currency: str) -> str:
    """The unit of a metric as a chart title shows it."""
    unit = metric(name).unit
    return {"people": "real customers", "money": currency, "percent": "%"}.get(unit, unit)


def title(name: str, currency: str, per_step: str = "") -> str:
    """Chart title from the metrics registry, so names match cxsim's tables and report."""
    return f"{metric(name).label}{per_step} ({unit_text(name, currency)})"


class Charts:
    """Every chart of one :class:`Comparison` in one figure, updated in place each step.

    Panels: customers, NPS and CSAT, new customers by channel and revenue per step on the top
    row; cumulative churn by cause (both strategies' bars side by side), cumulative revenue lost
    to poor experiences and cumulative profit below. People are shown as real customers
    (simulated people x ``population.represents``), money in the scenario's currency.
    """

    def __init__(self, model: Comparison) -> None:
        self.model = model
        spec = model.specs[0]
        self.scale = spec.population.represents
        currency = spec.economics.currency
        per = f" per {spec.time.step}"
        self.figure = Figure(figsize=(14, 6.6), dpi=DPI)
        FigureCanvasAgg(self.figure)
        self.figure.subplots_adjust(left=0.05, right=0.99, bottom=0.08, top=0.9,
                                    wspace=0.3, hspace=0.42)  # fmt: skip
        grid = self.figure.add_gridspec(2, 4)
        axes = {
            "customers": self.figure.add_subplot(grid[0, 0]),
            "nps": self.figure.add_subplot(grid[0, 1]),
            "channels": self.figure.add_subplot(grid[0, 2]),
            "revenue": self.figure.add_subplot(grid[0, 3]),
            "causes": self.figure.add_subplot(grid[1, :2]),
            "lost": self.figure.add_subplot(grid[1, 2]),
            "profit": self.figure.add_subplot(grid[1, 3]),
        }
        self.axes = axes
        # (axes, metric, factor, line style) for every line; each has one line per strategy.
        self.series: list[tuple[str, float, list[Line2D]]] = []
        self.where: list[str] = []
        layout = [
            ("customers", "customers", self.scale, "-"),
            ("nps", "nps", 1.0, "-"),
            ("nps", "csat", 1.0, "--"),
            *(("channels", c, self.scale, s)
              for c, s in zip(CHANNELS, CHANNEL_STYLES, strict=True)),
            ("revenue", "revenue", 1.0, "-"),
            ("lost", "cumulative_lost_revenue_experience_horizon", 1.0, "-"),
            ("profit", "cumulative_profit", 1.0, "-"),
        ]  # fmt: skip
        for where, name, factor, style in layout:
            # Animated artists are left out of the background and drawn on it each step.
            lines = [
                axes[where].plot([], [], color=colour, linestyle=style, linewidth=1.5,
                                 animated=True)[0]
                for colour in COLOURS
            ]  # fmt: skip
            self.series.append((name, factor, lines))
            self.where.append(where)
        axes["customers"].set_title(title("customers", currency), fontsize=10)
        axes["nps"].set_title(
            f"{metric('nps').label} ({metric('nps').unit}, solid) and "
            f"{metric('csat').label} (%, dashed)",
            fontsize=10,
        )
        axes["channels"].set_title(f"New customers by channel{per} (real customers)", fontsize=10)
        axes["revenue"].set_title(title("revenue", currency, per), fontsize=10)
        axes["lost"].set_title(
            title("cumulative_lost_revenue_experience_horizon", currency), fontsize=10
        )
        axes["profit"].set_title(title("cumulative_profit", currency), fontsize=10)
        grey = "#555555"
        axes["channels"].legend(
            [Line2D([], [], color=grey, linestyle=s) for s in CHANNEL_STYLES],
            ["advertising", "referral", "win-back"],
            fontsize=8,
            loc="upper left",
        )
        horizon = spec.time.horizon
        for key, ax in axes.items():
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
            if key != "causes":
                ax.set_xlim(0, horizon)
                ax.yaxis.set_major_formatter(FuncFormatter(_short))
                if key in ("lost", "profit", "channels"):
                    ax.set_xlabel(f"{spec.time.step}s", fontsize=8)
        # Churn by cause: one row per cause, the two strategies' bars side by side.
        self.causes = churn_causes(spec)
        names = [c.removeprefix("churn_by_").replace("_", " ") for c in self.causes]
        rows = np.arange(len(self.causes))
        causes = axes["causes"]
        self.bars = [
            causes.barh(rows + offset, np.zeros(len(rows)), height=0.4, color=colour, animated=True)
            for offset, colour in zip((-0.2, 0.2), COLOURS, strict=True)
        ]
        causes.set_yticks(rows, names, fontsize=8)
        causes.invert_yaxis()
        causes.xaxis.set_major_formatter(FuncFormatter(_short))
        causes.set_title("Customers lost by cause, so far (real customers)", fontsize=10)
        causes.set_xlim(0, 1)
        # Room on the left for the touchpoint names.
        box = causes.get_position()
        causes.set_position((box.x0 + 0.04, box.y0, box.width - 0.04, box.height))
        for key, ax in axes.items():
            if key != "causes":
                ax.set_ylim(0, 1)
        self.background = None
        self.figure.legend(
            [Line2D([], [], color=c, linewidth=3) for c in COLOURS],
            model.names,
            loc="upper center",
            ncols=2,
            fontsize=10,
            frameon=False,
        )

    def png(self) -> bytes:
        """The charts at the model's current step."""
        model = self.model
        ranges: dict[str, list[float]] = {}
        for (name, factor, lines), where in zip(self.series, self.where, strict=True):
            for line, values in zip(lines, model.series(name), strict=True):
                y = np.asarray(values, dtype=float) * factor
                line.set_data(np.arange(len(y)), y)
                if len(y):
                    ranges.setdefault(where, []).extend((float(y.min()), float(y.max())))
        longest = 0.0
        for bars, sim in zip(self.bars, model.models, strict=True):
            data = sim.datacollector.model_vars
            for bar, cause in zip(bars, self.causes, strict=True):
                total = float(np.sum(data[cause])) * self.scale
                bar.set_width(total)
                longest = max(longest, total)
        changed = self.background is None
        limits = {key: (min(r), max(r)) for key, r in ranges.items()}
        limits["causes"] = (0.0, longest)
        for key, (data_low, data_high) in limits.items():
            ax = self.axes[key]
            get, put = (ax.get_xlim, ax.set_xlim) if key == "causes" else (ax.get_ylim, ax.set_ylim)
            low, high = get()
            new = _grown(low, high, data_low, data_high)
            if key == "causes":
                new = (0.0, new[1])
            if new != (low, high):
                put(*new)
                changed = True
        canvas = self.figure.canvas
        if changed:
            canvas.draw()  # everything but the animated lines and bars
            self.background = canvas.copy_from_bbox(self.figure.bbox)
        else:
            canvas.restore_region(self.background)
        for ax in self.axes.values():
            for artist in ax.lines + ax.patches:
                ax.draw_artist(artist)
        return _canvas_png(canvas)


class NetworkView:
    """The same sampled people under each strategy, coloured by stage; promoters have a dark
    ring and detractors a red one. Rendered again only when some dot changed."""

    def __init__(self, model: Comparison) -> None:
        self.model = model
        sample = model.sample
        self.figure = Figure(figsize=(14, 4.6), dpi=DPI)
        FigureCanvasAgg(self.figure)
        self.figure.subplots_adjust(left=0.01, right=0.99, bottom=0.1, top=0.92, wspace=0.04)
        axes = self.figure.subplots(1, 2)
        segments = sample.xy[sample.edges] if len(sample.edges) else np.empty((0, 2, 2))
        self.dots = []
        self.titles = []
        for ax in axes:
            ax.add_collection(LineCollection(segments, colors="#dddddd", linewidths=0.5, zorder=1))
            # Dots and titles are drawn each time on a cached background of edges and legend.
            dots = ax.scatter(sample.xy[:, 0], sample.xy[:, 1], s=22, zorder=2, linewidths=1.2,
                              animated=True)  # fmt: skip
            self.dots.append(dots)
            self.titles.append(ax.set_title("", fontsize=10, animated=True))
            ax.set_axis_off()
        marks = [
            Line2D([], [], marker="o", linestyle="", color=STAGE_COLOURS[s], label=s.name.lower())
            for s in Stage
        ] + [
            Line2D([], [], marker="o", linestyle="", markerfacecolor="white",
                   markeredgecolor=edge, markeredgewidth=1.5, label=text)
            for edge, text in (("#111111", "promoter"), ("#ff2020", "detractor"))
        ]  # fmt: skip
        self.figure.legend(handles=marks, loc="lower center", ncols=len(marks), fontsize=9,
                           frameon=False)  # fmt: skip
        self.key: bytes | None = None
        self.image = b""
        self.axes = axes
        self.background = None

    def png(self) -> bytes:
        """The sample at the model's current step (the previous image if nothing changed)."""
        people = self.model.sample.people
        looks = []
        for sim in self.model.models:
            stage = np.asarray(sim.stage[people], dtype=np.int8)
            satisfaction = sim.satisfaction[people]
            customer = np.isin(stage, (Stage.ONBOARDING, Stage.ACTIVE))
            # 1 promoter, 2 detractor, 0 neither; marked on customers only, who are asked.
            mark = np.where(customer & rules.is_promoter(satisfaction), 1, 0)
            mark = np.where(customer & rules.is_detractor(satisfaction), 2, mark).astype(np.int8)
            looks.append((stage, mark))
        key = b"".join(a.tobytes() + b.tobytes() for a, b in looks)
        if key == self.key:
            return self.image
        fill = np.array([STAGE_COLOURS[s] for s in Stage])
        edge = np.array(["none", "#111111", "#ff2020"])
        for dots, title_, name, (stage, mark) in zip(
            self.dots, self.titles, self.model.names, looks, strict=True
        ):
            dots.set_facecolors(fill[stage])
            dots.set_edgecolors(edge[mark])
            customers = int(np.isin(stage, (Stage.ONBOARDING, Stage.ACTIVE)).sum())
            title_.set_text(
                f"{name}: {customers} of {len(stage)} people drawn are customers, "
                f"{int((mark == 1).sum())} promoters, {int((mark == 2).sum())} detractors"
            )
        canvas = self.figure.canvas
        if self.background is None:
            canvas.draw()
            self.background = canvas.copy_from_bbox(self.figure.bbox)
        else:
            canvas.restore_region(self.background)
        for ax, dots, title_ in zip(self.axes, self.dots, self.titles, strict=True):
            ax.draw_artist(dots)
            ax.draw_artist(title_)
        self.key, self.image = key, _canvas_png(canvas)
        return self.image
