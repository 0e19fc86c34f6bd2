"""What a finished sweep says: per-point figures, sensitivity indices, decisions under uncertainty.

:func:`write_analysis` is called by ``cxsim sweep`` once the tables are written; it picks the
analysis the design asks for and writes tables (CSV) and charts (PNG and SVG) next to them:

- grid or sampled points with one parameter: each figure against it, with 95% confidence bands,
  per scenario and for the paired difference of each later scenario against the first;
- a grid of two parameters: a heatmap of the paired difference (of the figure itself with one
  scenario) with its break-even contour, and ``break_even.csv`` along the first parameter;
- Morris: mu*, mu, sigma per parameter (``morris.csv``) and its two charts;
- Sobol: first-order and total indices with confidence intervals (``sobol.csv``);
- uncertainty (parameters drawn from distributions, or any sampled design with two scenarios):
  per strategy pair, in what share of the plausible worlds the later strategy pays, the
  distribution of its net benefit, and which uncertain parameters drive it
  (``uncertainty.csv``, ``uncertainty_drivers.csv`` and their charts).

``analysis.md`` states the headline of each in a sentence. The analysers come from SALib; the
samplers that made the points are the sweep core's, and their sizes (trajectories, levels,
second order) are read back from the sweep or, failing that, from the design itself.

Units: people are shown as real customers (x ``population.represents`` of the first scenario),
money in its currency (in millions or billions when large), shares in percent and their
differences in percentage points.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from cxsim.metrics import figure, mean_ci, show
from cxsim.scenario import Scenario
from cxsim.sweep import charts

DEFAULT_FIGURES = ("profit", "annual_churn")
SAMPLED = ("lhs", "uncertainty", "monte_carlo", "random")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


# --- what a result holds ----------------------------------------------------------------------


def _holders(sweep: Any) -> list[Any]:
    """Where a sweep keeps its settings: the sweep, the file's settings (``spec``), a design
    object."""
    return [h for h in (sweep, getattr(sweep, "spec", None), getattr(sweep, "design", None))
            if h is not None]  # fmt: skip


def design_kind(sweep: Any) -> str:
    """The design's name (grid, lhs, sobol, morris, uncertainty, monte_carlo) of a sweep."""
    for holder in _holders(sweep):
        design = getattr(holder, "design", None)
        if isinstance(design, str):
            return design.lower()
    return "grid"


def _setting(sweep: Any, *names: str, default: Any = None) -> Any:
    """A design setting (e.g. Morris levels) wherever the sweep keeps it."""
    for holder in _holders(sweep):
        for name in names:
            value = getattr(holder, name, None)
            if value is not None and not callable(value):
                return value
    return default


def parameter_names(result: Any) -> list[str]:
    """The swept parameters (dotted keys), in the design's order."""
    problem = getattr(result, "problem", None) or {}
    if problem.get("names"):
        return list(problem["names"])
    return [c for c in result.design.columns if c != "point"]


def scenario_names(runs: pd.DataFrame, specs: list[Scenario] | None = None) -> list[str]:
    """Scenario names in the sweep's order (the first is the one the others are compared to)."""
    seen = list(dict.fromkeys(runs["scenario"]))
    if specs:
        order = [s.name for s in specs if s.name in seen]
        return order + [n for n in seen if n not in order]
    return seen


def result_specs(result: Any) -> list[Scenario]:
    """The scenarios a sweep started from, for their units (represents, currency, step)."""
    for holder in (result, getattr(result, "sweep", None)):
        for name in ("specs", "scenarios"):
            value = getattr(holder, name, None)
            if (
                isinstance(value, list | tuple)
                and value
                and all(isinstance(v, Scenario) for v in value)
            ):
                return list(value)
    return [Scenario()]


def requested_figures(result: Any) -> list[str]:
    """The figures the sweep asked for that its runs have (profit and annual churn if none)."""
    asked = _setting(getattr(result, "sweep", None), "figures") or DEFAULT_FIGURES
    return [f for f in asked if f in result.runs.columns]


def pair_name(name: str, base: str) -> str:
    return f"{name} - {base}"


# --- per-point tables -------------------------------------------------------------------------


def paired_runs(runs: pd.DataFrame, names: list[str], figures: list[str]) -> pd.DataFrame:
    """Per point and replication, each later scenario minus the first (same seeds), tagged
    ``"B - A"`` in the scenario column."""
    if len(names) < 2:
        return pd.DataFrame(columns=["point", "replication", "scenario", *figures])
    wide = runs.set_index(["scenario", "point", "replication"])[figures]
    base = wide.loc[names[0]]
    frames = []
    for name in names[1:]:
        diff = (wide.loc[name] - base.reindex(wide.loc[name].index)).reset_index()
        diff.insert(0, "scenario", pair_name(name, names[0]))
        frames.append(diff)
    return pd.concat(frames, ignore_index=True)


def point_table(
    runs: pd.DataFrame, names: list[str], parameters: list[str], figures: list[str]
) -> pd.DataFrame:
    """Mean and 95% CI over replications of each figure, per point and scenario and per point
    and pair: columns point, the parameters, scenario, figure, mean, low, high, n."""
    both = pd.concat([runs[["point", "replication", "scenario", *figures]],
                      paired_runs(runs, names, figures)], ignore_index=True)  # fmt: skip
    rows = []
    for (point, scenario), group in both.groupby(["point", "scenario"], sort=False):
        for name in figures:
            m, lo, hi = mean_ci(group[name].to_numpy(float))
            n = int(group[name].notna().sum())
            rows.append({"point": point, "scenario": scenario, "figure": name,
                         "mean": m, "low": lo, "high": hi, "n": n})  # fmt: skip
    table = pd.DataFrame(rows)
    where = runs.drop_duplicates("point").set_index("point")[parameters]
    return table.join(where, on="point")


def point_means(runs: pd.DataFrame, scenario: str, names: list[str], name: str) -> np.ndarray:
    """Mean over replications of figure ``name`` per point, in point order, for a scenario or
    a pair ("B - A"): the output vector a sensitivity analyser takes."""
    if " - " in scenario and scenario not in names:
        frame = paired_runs(runs, names, [name])
        frame = frame[frame["scenario"] == scenario]
    else:
        frame = runs[runs["scenario"] == scenario]
    return frame.groupby("point")[name].mean().sort_index().to_numpy(float)


# --- units ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """How values of one figure are drawn: multiply by ``factor``, call the unit ``unit``."""

    factor: float
    unit: str

    def axis(self, name: str, difference: str | None = None) -> str:
        """An axis label: the figure's label (and the pair it compares) with the unit."""
        text = figure(name).label
        text = text[0].upper() + text[1:]
        if difference:
            text = f"{text}: {difference}"
        return f"{text} ({self.unit})" if self.unit else text


def shown(name: str, spec: Scenario, values: np.ndarray | None = None,
          difference: bool = False) -> Shown:  # fmt: skip
    """People as real customers, money in the currency (in millions or billions when the
    values are that large), shares in % (differences in percentage points)."""
    unit = figure(name).unit
    currency = spec.economics.currency
    if unit == "people":
        return Shown(spec.population.represents, "real customers")
    if unit == "money":
        top = float(np.nanmax(np.abs(values))) if values is not None and len(values) else 0.0
        if top >= 2e9:
            return Shown(1e-9, f"billion {currency}")
        if top >= 2e6:
            return Shown(1e-6, f"million {currency}")
        return Shown(1.0, currency)
    if unit == "money/step":
        return Shown(1.0, f"{currency} per customer per {spec.time.step}")
    if unit in ("share", "rate"):
        text = "percentage points" if difference else "%"
        return Shown(100.0, text if unit == "share" else f"{text} per {spec.time.step}")
    if unit in ("percent", "points"):
        return Shown(1.0, "points" if difference or unit == "points" else "% satisfied")
    if unit == "stars":
        return Shown(1.0, "stars")
    if unit == "step":
        return Shown(1.0, f"{spec.time.step}s")
    return Shown(1.0, "")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# --- sensitivity indices ----------------------------------------------------------------------


def morris_indices(
    problem: dict, X: np.ndarray, Y: np.ndarray, num_levels: int = 4, seed: int | None = None
) -> pd.DataFrame:
    """Morris elementary effects (SALib): per parameter mu, mu* (mean absolute effect), its 95%
    CI half-width by bootstrap, sigma, and the rank by mu* (1 = most influential). Effects are
    in the output's units per move of a parameter across ``delta`` of its range, so parameters
    of different scales compare."""
    from SALib.analyze import morris

    out = morris.analyze(problem, np.asarray(X, float), np.asarray(Y, float),
                         num_levels=num_levels, conf_level=0.95, seed=seed)  # fmt: skip
    table = pd.DataFrame({
        "parameter": list(out["names"]),
        "mu": np.asarray(out["mu"], float),
        "mu_star": np.asarray(out["mu_star"], float),
        "mu_star_conf": np.asarray(out["mu_star_conf"], float),
        "sigma": np.asarray(out["sigma"], float),
    })  # fmt: skip
    table["rank"] = table["mu_star"].rank(ascending=False, method="min").astype(int)
    return table.sort_values("rank").reset_index(drop=True)


def second_order_of(problem: dict, rows: int, sweep: Any = None) -> bool:
    """Whether a Saltelli/Sobol' design holds the second-order blocks: the sweep says so, or
    the row count tells (N (2k + 2) rows with N a power of two, against N (k + 2))."""
    said = _setting(sweep, "calc_second_order", "second_order")
    if said is not None:
        return bool(said)
    k = problem["num_vars"]
    n, rest = divmod(rows, 2 * k + 2)
    return rest == 0 and n > 0 and n & (n - 1) == 0


def sobol_indices(
    problem: dict, Y: np.ndarray, second_order: bool = False, seed: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sobol' indices (SALib): per parameter S1 and ST with their 95% CI half-widths, ranked by
    ST; and the second-order indices S2 (parameter pairs), empty without those blocks."""
    from SALib.analyze import sobol

    out = sobol.analyze(problem, np.asarray(Y, float), calc_second_order=second_order,
                        conf_level=0.95, seed=seed)  # fmt: skip
    names = list(problem["names"])
    table = pd.DataFrame({
        "parameter": names,
        "S1": out["S1"], "S1_conf": out["S1_conf"], "ST": out["ST"], "ST_conf": out["ST_conf"],
    })  # fmt: skip
    table["rank"] = table["ST"].rank(ascending=False, method="min").astype(int)
    pairs = []
    if second_order:
        for i, j in zip(*np.triu_indices(len(names), 1), strict=True):
            pairs.append({"parameter": names[i], "other": names[j],
                          "S2": out["S2"][i, j], "S2_conf": out["S2_conf"][i, j]})  # fmt: skip
    return table.sort_values("rank").reset_index(drop=True), pd.DataFrame(pairs)


# --- decisions under uncertainty --------------------------------------------------------------


def share_above_zero(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(share, low, high): the share of values above 0 with its Wilson score interval (the
    worlds are a sample of the plausible ones, so the share is an estimate too)."""
    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return (float("nan"),) * 3
    p = float((x > 0).mean())
    z = float(stats.norm.ppf(0.5 + level / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def world_summary(per_run: pd.DataFrame, name: str) -> dict[str, float]:
    """What the worlds say about figure ``name`` (per_run: point, replication, value columns):
    share above 0 with its CI, mean, quantiles; and how much of the spread between worlds is
    simulation noise (the standard error of a world's mean over its replications) against
    the parameters (the spread of the world means)."""
    means = per_run.groupby("point")[name].mean().to_numpy(float)
    share, low, high = share_above_zero(means)
    within = per_run.groupby("point")[name].agg(["var", "count"])
    noise = float(np.sqrt(np.nanmean(within["var"] / within["count"]))) if len(within) else np.nan
    settled = per_run.groupby("point")[name].apply(
        lambda v: float(np.sign(mean_ci(v)[1]) == np.sign(mean_ci(v)[2]))
    )
    row = {"worlds": len(means), "share_above_zero": share, "share_low": low, "share_high": high,
           "mean": float(np.mean(means)), "sd_between_worlds": float(np.std(means, ddof=1))
           if len(means) > 1 else np.nan, "sd_noise": noise,
           "share_sign_settled": float(settled.mean())}  # fmt: skip
    for q in QUANTILES:
        row[f"q{round(100 * q):02d}"] = float(np.quantile(means, q))
    return row


def driver_table(X: pd.DataFrame, y: np.ndarray) -> pd.DataFrame:
    """How each uncertain parameter drives an output: Spearman rank correlation (with its
    p-value) and the standardised regression coefficient of a linear fit on all of them
    together (``r2`` says how much of the output that fit explains: a low one means the SRCs
    tell less and the rank correlations more)."""
    y = np.asarray(y, float)
    keep = np.isfinite(y)
    x = X.loc[keep].astype(float)
    y = y[keep]
    varied = [c for c in x.columns if x[c].std() > 0]
    rows = {c: {"parameter": c, "spearman": np.nan, "spearman_p": np.nan, "src": np.nan}
            for c in x.columns}  # fmt: skip
    r2 = np.nan
    if len(y) > 2 and y.std() > 0 and varied:
        for c in varied:
            rho, p = stats.spearmanr(x[c], y)
            rows[c].update(spearman=float(rho), spearman_p=float(p))
        z = (x[varied] - x[varied].mean()) / x[varied].std()
        target = (y - y.mean()) / y.std()
        design = np.column_stack([np.ones(len(y)), z.to_numpy()])
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        fitted = design @ coef
        r2 = float(1 - ((target - fitted) ** 2).sum() / ((target - target.mean()) ** 2).sum())
        for c, b in zip(varied, coef[1:], strict=True):
            rows[c]["src"] = float(b)
    table = pd.DataFrame(rows.values())
    table["r2"] = r2
    return table.reindex(table["spearman"].abs().sort_values(ascending=False).index).reset_index(
        drop=True
    )


def break_even_line(table: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Along each value of ``x``, the value of ``y`` where the mean crosses 0 (linear between
    neighbouring grid points; NaN where it does not cross, every crossing where it does more
    than once). ``table``: x, y, mean."""
    rows = []
    for xv, group in table.groupby(x, sort=True):
        g = group.sort_values(y)
        ys, zs = g[y].to_numpy(float), g["mean"].to_numpy(float)
        found = False
        for k in range(len(zs) - 1):
            a, b = zs[k], zs[k + 1]
            if np.isfinite(a) and np.isfinite(b) and (a < 0 <= b or a >= 0 > b) and a != b:
                rows.append({x: xv, y: ys[k] + (ys[k + 1] - ys[k]) * (-a) / (b - a),
                             "direction": "pays above" if b > a else "pays below"})  # fmt: skip
                found = True
        if not found:
            side = "pays everywhere" if np.nanmin(zs) > 0 else "never pays"
            rows.append({x: xv, y: np.nan, "direction": side})
    return pd.DataFrame(rows)


# --- writing ----------------------------------------------------------------------------------


class _Writer:
    """Collects the analysis of one result: tables, charts, headline sentences."""

    def __init__(self, result: Any, folder: Path) -> None:
        self.result = result
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.specs = result_specs(result)
        self.spec = self.specs[0]
        self.runs: pd.DataFrame = result.runs
        self.names = scenario_names(self.runs, self.specs)
        self.pairs = [pair_name(n, self.names[0]) for n in self.names[1:]]
        self.parameters = parameter_names(result)
        self.figures = requested_figures(result)
        self.kind = design_kind(getattr(result, "sweep", None))
        self.seed = _setting(getattr(result, "sweep", None), "seed")
        self.paths: list[Path] = []
        self.lines: list[str] = []

    def csv(self, frame: pd.DataFrame, name: str) -> None:
        path = self.folder / name
        frame.to_csv(path, index=False)
        self.paths.append(path)

    def _where(self) -> list[str]:
        return [*self.names, *self.pairs]

    # 1-D and 2-D: points on a grid or a line.

    def points(self) -> None:
        table = point_table(self.runs, self.names, self.parameters, self.figures)
        if len(self.parameters) == 1:
            self.one_d(table, self.parameters[0])
        # A heatmap needs numbers on both axes (a grid of words gets the tables only).
        elif (
            len(self.parameters) == 2
            and self.kind == "grid"
            and all(pd.api.types.is_numeric_dtype(self.runs[p]) for p in self.parameters)
        ):
            self.two_d(table, *self.parameters)

    def one_d(self, table: pd.DataFrame, x: str) -> None:
        for name in self.figures:
            rows = table[table["figure"] == name].copy()
            levels = rows[rows["scenario"].isin(self.names)]
            pairs = rows[rows["scenario"].isin(self.pairs)]
            level = shown(name, self.spec, levels["mean"].to_numpy())
            diff = shown(name, self.spec, pairs["mean"].to_numpy(), difference=True)
            for part, scale in ((levels.index, level), (pairs.index, diff)):
                rows.loc[part, ["mean", "low", "high"]] *= scale.factor
            pair_text = self.pairs[0] if len(self.pairs) == 1 else "difference"
            self.paths += charts.lines(
                rows, x, x, self.names, self.pairs, level.axis(name),
                diff.axis(name, pair_text), f"{_cap(figure(name).label)} against {x}",
                self.folder / f"line_{_slug(name)}",
            )  # fmt: skip

    def two_d(self, table: pd.DataFrame, x: str, y: str) -> None:
        # The paired difference is the question (where does B pay?); with one scenario, the
        # figure itself.
        where = self.pairs or self.names
        crossings = []
        for name in self.figures:
            for scenario in where:
                rows = table[(table["figure"] == name) & (table["scenario"] == scenario)]
                grid = rows.pivot_table(index=y, columns=x, values=["mean", "low", "high"])
                xs, ys = grid["mean"].columns.to_numpy(float), grid["mean"].index.to_numpy(float)
                is_pair = scenario in self.pairs
                scale = shown(name, self.spec, rows["mean"].to_numpy(), difference=is_pair)
                z = grid["mean"].to_numpy(float) * scale.factor
                uncertain = (grid["low"].to_numpy() < 0) & (grid["high"].to_numpy() > 0)
                money = figure(name).unit == "money"
                self.paths += charts.heatmap(
                    xs, ys, z, uncertain if is_pair else np.zeros_like(uncertain), x, y,
                    scale.axis(name, scenario if is_pair else None),
                    f"{_cap(figure(name).label)}: {scenario}",
                    self.folder / f"heatmap_{_slug(name)}_{_slug(scenario)}",
                    break_even=is_pair,
                )  # fmt: skip
                if is_pair:
                    # Along each value of the second parameter, where the first (the lever
                    # decided on) starts to pay.
                    line = break_even_line(rows, y, x)
                    line.insert(0, "figure", name)
                    line.insert(0, "scenario", scenario)
                    crossings.append(line)
                    if money:
                        self.lines.append(self._break_even_sentence(line, scenario, name, y, x))
        if crossings:
            self.csv(pd.concat(crossings, ignore_index=True), "break_even.csv")

    def _break_even_sentence(self, line: pd.DataFrame, pair: str, name: str, x: str,
                             y: str) -> str:  # fmt: skip
        parts = []
        for row in line.to_dict("records"):
            xv, yv, side = row[x], row[y], row["direction"]
            if np.isfinite(yv):
                parts.append(f"{x} = {xv:g}: {side} {y} = {yv:.3g}")
            else:
                parts.append(f"{x} = {xv:g}: {side}")
        return f"{_cap(figure(name).label)}, {pair}, break-even: " + "; ".join(parts) + "."

    # Sensitivity.

    def morris(self) -> None:
        problem = self.result.problem
        X = self.result.design.sort_values("point")[problem["names"]].to_numpy(float)
        levels = int(_setting(self.result.sweep, "num_levels", "levels", default=4))
        frames = []
        for name in self.figures:
            for scenario in self._where():
                Y = point_means(self.runs, scenario, self.names, name)
                if not np.isfinite(Y).all():
                    continue  # SALib needs every point; a figure undefined somewhere is skipped
                table = morris_indices(problem, X, Y, levels, self.seed)
                scale = shown(name, self.spec, table["mu_star"].to_numpy(),
                              difference=True)  # fmt: skip
                drawn = table.copy()
                drawn[["mu", "mu_star", "mu_star_conf", "sigma"]] *= scale.factor
                self.paths += charts.morris(
                    drawn, scale.unit, f"Morris screening: {figure(name).label}, {scenario}",
                    self.folder / f"morris_{_slug(name)}_{_slug(scenario)}",
                )  # fmt: skip
                table.insert(0, "scenario", scenario)
                table.insert(0, "figure", name)
                frames.append(table)
                top = ", ".join(table["parameter"].head(3))
                self.lines.append(f"Morris, {figure(name).label} ({scenario}): most "
                                  f"influential first: {top}.")  # fmt: skip
        if frames:
            self.csv(pd.concat(frames, ignore_index=True), "morris.csv")

    def sobol(self) -> None:
        problem = self.result.problem
        second = second_order_of(problem, self.result.design["point"].nunique(),
                                 self.result.sweep)  # fmt: skip
        firsts, seconds = [], []
        for name in self.figures:
            for scenario in self._where():
                Y = point_means(self.runs, scenario, self.names, name)
                if not np.isfinite(Y).all() or np.std(Y) == 0:
                    continue
                table, pairs = sobol_indices(problem, Y, second, self.seed)
                self.paths += charts.sobol(
                    table, f"Sobol indices: {figure(name).label}, {scenario}",
                    self.folder / f"sobol_{_slug(name)}_{_slug(scenario)}",
                )  # fmt: skip
                for frame, bucket in ((table, firsts), (pairs, seconds)):
                    if len(frame):
                        frame.insert(0, "scenario", scenario)
                        frame.insert(0, "figure", name)
                        bucket.append(frame)
                lead = table.iloc[0]
                self.lines.append(
                    f"Sobol, {figure(name).label} ({scenario}): {lead['parameter']} explains "
                    f"the most (total {lead['ST']:.2f}, alone {lead['S1']:.2f})."
                )
        if firsts:
            self.csv(pd.concat(firsts, ignore_index=True), "sobol.csv")
        if seconds:
            self.csv(pd.concat(seconds, ignore_index=True), "sobol_second_order.csv")

    # Decisions under uncertainty.

    def decision_figure(self) -> str | None:
        """The net benefit: the first money figure asked for, profit first."""
        money = [f for f in self.figures if figure(f).unit == "money"]
        return "profit" if "profit" in money else money[0] if money else None

    def uncertainty(self) -> None:
        where = self.pairs or self.names
        frames = [self.runs] if not self.pairs else []
        per_run = pd.concat(
            [*frames, paired_runs(self.runs, self.names, self.figures)], ignore_index=True
        )
        X = (self.runs.drop_duplicates("point").set_index("point")[self.parameters]
             .sort_index())  # fmt: skip
        decide = self.decision_figure()
        rows, drivers = [], []
        for scenario in where:
            mine = per_run[per_run["scenario"] == scenario]
            for name in self.figures:
                row = {"scenario": scenario, "figure": name, **world_summary(mine, name)}
                rows.append(row)
                y = mine.groupby("point")[name].mean().reindex(X.index).to_numpy(float)
                table = driver_table(X, y)
                table.insert(0, "figure", name)
                table.insert(0, "scenario", scenario)
                drivers.append(table)
                if name != decide:
                    continue
                scale = shown(name, self.spec, y, difference=scenario in self.pairs)
                self.paths += charts.net_benefit(
                    y[np.isfinite(y)] * scale.factor, row["share_above_zero"], row["share_low"],
                    row["share_high"], scale.axis(name, scenario),
                    f"{scenario}: {figure(name).label} over {row['worlds']} plausible worlds",
                    self.folder / f"net_benefit_{_slug(name)}_{_slug(scenario)}",
                )  # fmt: skip
                self.paths += charts.drivers(
                    table, f"What drives {figure(name).label}, {scenario}",
                    self.folder / f"drivers_{_slug(name)}_{_slug(scenario)}",
                )  # fmt: skip
                self.lines.append(self._uncertainty_sentence(row, table, scenario, name))
        self.csv(pd.DataFrame(rows), "uncertainty.csv")
        self.csv(pd.concat(drivers, ignore_index=True), "uncertainty_drivers.csv")

    def _uncertainty_sentence(self, row: dict, table: pd.DataFrame, scenario: str,
                              name: str) -> str:  # fmt: skip
        def money(v: float, spread: bool = False) -> str:
            return show(name, v, self.spec, diff=not spread)

        lead = table.iloc[0]
        return (
            f"{scenario}, {figure(name).label}: above 0 in {row['share_above_zero']:.0%} of "
            f"{row['worlds']} worlds (95% CI {row['share_low']:.0%} to {row['share_high']:.0%}); "
            f"median {money(row['q50'])}, 90% of worlds between {money(row['q05'])} and "
            f"{money(row['q95'])}; spread between worlds {money(row['sd_between_worlds'], True)} "
            f"against simulation noise {money(row['sd_noise'], True)} per world; driven most by "
            f"{lead['parameter']} (rank correlation {lead['spearman']:+.2f})."
        )

    def write(self) -> list[Path]:
        if self.kind == "morris":
            self.morris()
        elif self.kind == "sobol":
            self.sobol()
        elif self.kind in SAMPLED:
            self.uncertainty()
            if len(self.parameters) == 1:
                self.points()
        else:
            self.points()
        if self.lines:
            path = self.folder / "analysis.md"
            path.write_text("# Sweep analysis\n\n" + "\n".join(f"- {t}" for t in self.lines)
                            + "\n")  # fmt: skip
            self.paths.append(path)
        return self.paths


def write_analysis(result: Any, folder: Path | str) -> list[Path]:
    """Write the analysis the sweep's design asks for into ``folder``; the paths written.

    ``result`` is a :class:`cxsim.sweep.SweepResult` (or anything with its ``runs``,
    ``design``, ``problem`` and ``sweep``)."""
    return _Writer(result, Path(folder)).write()
