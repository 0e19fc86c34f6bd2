"""Charts of a sweep: figure against a parameter, heatmaps with break-even, indices, decisions.

Every function here draws from plain tables already put in the units a reader sees (the caller,
:mod:`cxsim.sweep.analysis`, scales people to real customers and money to the scenario's
currency) and writes the chart twice, as PNG for slides and SVG for papers. Each returns the
paths it wrote.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from cxsim.charts import COLOURS  # noqa: E402

FORMATS = ("png", "svg")
BREAK_EVEN = "#111111"


# An SVG holds no date and the same element ids every time, so the same sweep writes the same
# bytes (matplotlib would stamp the time and salt its ids at random).
_REPEATABLE = {"svg": {"metadata": {"Date": None}}}


def save(fig, stem: Path) -> list[Path]:
    """Write ``fig`` as ``stem``.png and ``stem``.svg and close it."""
    fig.tight_layout()
    paths = []
    for ext in FORMATS:
        path = stem.with_suffix(f".{ext}")
        with plt.rc_context({"svg.hashsalt": "cxsim"}):
            fig.savefig(path, dpi=110, **_REPEATABLE.get(ext, {}))
        paths.append(path)
    plt.close(fig)
    return paths


def lines(
    table: pd.DataFrame,
    x: str,
    xlabel: str,
    levels: list[str],
    pairs: list[str],
    ylabel: str,
    difference_label: str,
    title: str,
    stem: Path,
) -> list[Path]:
    """A figure against one parameter: mean and 95% CI band per scenario (left) and, where
    there are pairs, the paired difference with its band and the zero line (right).

    ``table`` has columns ``x``, scenario, mean, low, high (already scaled)."""
    panels = 2 if pairs else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.5), squeeze=False)
    groups = [(axes[0, 0], levels, ylabel)]
    if pairs:
        groups.append((axes[0, 1], pairs, difference_label))
    for ax, names, text in groups:
        for i, name in enumerate(names):
            rows = table[table["scenario"] == name].sort_values(x)
            colour = COLOURS[i % len(COLOURS)] if names is levels else COLOURS[-1 - i]
            ax.plot(rows[x], rows["mean"], "o-", color=colour, label=name, ms=3)
            ax.fill_between(rows[x], rows["low"], rows["high"], color=colour, alpha=0.2, lw=0)
        if names is pairs:
            ax.axhline(0, color=BREAK_EVEN, lw=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(text)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    fig.suptitle(f"{title} (mean, 95% CI)")
    return save(fig, stem)


def heatmap(
    xs: np.ndarray,
    ys: np.ndarray,
    z: np.ndarray,
    uncertain: np.ndarray,
    xlabel: str,
    ylabel: str,
    zlabel: str,
    title: str,
    stem: Path,
    break_even: bool = True,
) -> list[Path]:
    """``z[j, i]`` at (xs[i], ys[j]) as coloured cells; where z changes sign and ``break_even``
    is set, the zero contour (break-even) is drawn; cells whose 95% CI includes 0
    (``uncertain``) are marked, so a reader sees where the sign itself is not settled."""
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    finite = z[np.isfinite(z)]
    signs = finite.size and finite.min() < 0 < finite.max()
    if signs:
        # Red for losses, blue for gains, white at break-even, whatever the asymmetry.
        norm = TwoSlopeNorm(vcenter=0.0, vmin=finite.min(), vmax=finite.max())
        cmap = "RdBu"
    else:
        norm, cmap = None, "viridis"
    mesh = ax.pcolormesh(xs, ys, z, shading="nearest", cmap=cmap, norm=norm)
    fig.colorbar(mesh, ax=ax, label=zlabel)
    if break_even and signs and len(xs) > 1 and len(ys) > 1:
        contour = ax.contour(xs, ys, z, levels=[0.0], colors=BREAK_EVEN, linewidths=2)
        ax.clabel(contour, fmt={0.0: "break-even"}, fontsize=8)
        contour.set_gid("break-even")  # findable in the SVG
    if uncertain.any():
        gx, gy = np.meshgrid(xs, ys)
        ax.scatter(gx[uncertain], gy[uncertain], marker="x", s=18, color="#555",
                   label="95% CI includes 0")  # fmt: skip
        ax.legend(frameon=True, fontsize=8, loc="upper left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return save(fig, stem)


def morris(indices: pd.DataFrame, unit: str, title: str, stem: Path) -> list[Path]:
    """Morris screening: mu* against sigma with each parameter named (left), and parameters
    ranked by mu* with its 95% CI (right). ``indices``: parameter, mu_star, mu_star_conf,
    sigma (already scaled)."""
    ranked = indices.sort_values("mu_star")
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.3 * len(ranked) + 3.5))
    left.scatter(indices["mu_star"], indices["sigma"], color=COLOURS[1], zorder=3)
    # Names only for the parameters that stand out; the crowd near the origin gets its rank,
    # which the bar chart on the right spells out.
    ranks = indices["mu_star"].rank(ascending=False, method="first").astype(int)
    big = float(indices["mu_star"].max()) * 0.15
    for row, rank in zip(indices.itertuples(), ranks, strict=True):
        text = f"{rank} {row.parameter}" if row.mu_star >= big and rank <= 8 else str(rank)
        # Alternate above and below, so neighbours of similar sigma do not write over each other.
        left.annotate(text, (row.mu_star, row.sigma), fontsize=7,
                      xytext=(3, 3 if rank % 2 else -9), textcoords="offset points")  # fmt: skip
    # Below the line sigma = mu*, a parameter acts mostly alone and the same way everywhere;
    # above it, its effect depends on where the others are (interactions or curvature).
    top = float(max(indices["mu_star"].max(), indices["sigma"].max(), 0) * 1.05) or 1.0
    left.plot([0, top], [0, top], ":", color="#777", lw=0.8, label="sigma = mu*")
    left.set_xlim(0, top)
    left.set_ylim(0, top)
    left.set_xlabel(f"mu* (mean absolute effect, {unit})")
    left.set_ylabel(f"sigma (spread of the effect, {unit})")
    left.legend(frameon=False, fontsize=8)
    left.grid(alpha=0.3)
    order = ranked["mu_star"].rank(ascending=False, method="first").astype(int)
    labels = [f"{p} ({r})" for p, r in zip(ranked["parameter"], order, strict=True)]
    right.barh(labels, ranked["mu_star"], xerr=ranked["mu_star_conf"],
               color=COLOURS[1], alpha=0.8, capsize=2)  # fmt: skip
    right.set_xlabel(f"mu* ({unit}), 95% CI")
    right.grid(alpha=0.3, axis="x")
    fig.suptitle(title)
    return save(fig, stem)


def sobol(indices: pd.DataFrame, title: str, stem: Path) -> list[Path]:
    """First-order (S1) and total (ST) Sobol indices per parameter with their 95% CIs, ranked
    by ST. ``indices``: parameter, S1, S1_conf, ST, ST_conf."""
    ranked = indices.sort_values("ST")
    y = np.arange(len(ranked))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ranked) + 2.5))
    ax.barh(y + 0.2, ranked["ST"], height=0.4, xerr=ranked["ST_conf"], color=COLOURS[1],
            capsize=2, label="total (ST): alone and in interactions")  # fmt: skip
    ax.barh(y - 0.2, ranked["S1"], height=0.4, xerr=ranked["S1_conf"], color=COLOURS[2],
            capsize=2, label="first order (S1): alone")  # fmt: skip
    ax.set_yticks(y, ranked["parameter"])
    ax.axvline(0, color="#555", lw=0.8)
    ax.set_xlabel("share of the output variance (95% CI)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_title(title)
    return save(fig, stem)


def net_benefit(
    values: np.ndarray, share: float, low: float, high: float, xlabel: str, title: str,
    stem: Path,
) -> list[Path]:  # fmt: skip
    """Histogram of the net benefit over the plausible worlds, losses and gains coloured apart,
    with break-even, the median and the share of worlds where it pays written on it."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bins = np.histogram_bin_edges(values, bins=min(40, max(10, len(values) // 5)))
    for part, colour, text in ((values[values <= 0], COLOURS[0], "does not pay"),
                               (values[values > 0], COLOURS[1], "pays")):  # fmt: skip
        if len(part):
            ax.hist(part, bins=bins, color=colour, alpha=0.75, label=text)
    ax.axvline(0, color=BREAK_EVEN, lw=1.2)
    ax.axvline(float(np.median(values)), color="#555", ls="--", lw=1, label="median")
    ax.text(0.02, 0.95, f"pays in {share:.0%} of worlds\n(95% CI {low:.0%} to {high:.0%})",
            transform=ax.transAxes, va="top", fontsize=10,
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel("worlds (parameter draws)")
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return save(fig, stem)


def drivers(table: pd.DataFrame, title: str, stem: Path) -> list[Path]:
    """Which uncertain parameters drive an output: Spearman rank correlation and standardised
    regression coefficient per parameter, ranked by the size of the correlation."""
    ranked = table.reindex(table["spearman"].abs().sort_values().index)
    y = np.arange(len(ranked))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ranked) + 2.5))
    ax.barh(y + 0.2, ranked["spearman"], height=0.4, color=COLOURS[1], label="rank correlation")
    ax.barh(y - 0.2, ranked["src"], height=0.4, color=COLOURS[4],
            label="standardised regression coefficient")  # fmt: skip
    ax.set_yticks(y, ranked["parameter"])
    ax.axvline(0, color="#555", lw=0.8)
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("association with the output (-1 to 1)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_title(title)
    return save(fig, stem)
