"""Fit unknown scenario parameters so the model reproduces what a company observes.

A scenario's ``calibration`` section states observed figures (annual churn, NPS, CSAT, the
referral share of new customers, customer growth), each with a tolerance, and the parameters that
are unknown, each with bounds. :func:`fit` finds values of the unknowns within their bounds for
which the mean of each figure over a fixed set of replications (the same seeds for every
evaluation: common random numbers, so the objective is a deterministic function of the unknowns)
matches its observed value. It uses SciPy's bounded trust-region least squares on residuals
measured in tolerances, in a normalised space where every unknown runs from 0 to 1 (on a log
scale for positive ranges spanning a factor of ten or more).

It then says how well the observations determine each unknown, from the Jacobian of the
residuals at the fit: a standard error and 95% interval when the unknowns are identified, or,
when there are fewer independent observations than unknowns, which combination is determined
and how each unknown alone would be pinned down. :func:`variant_text` writes the fitted values
as a variant scenario (``base:`` plus only the fitted keys) that ``cxsim run`` takes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.optimize import least_squares

from cxsim.experiment import replication_seeds, run_once
from cxsim.loading import ScenarioError, apply_overrides
from cxsim.scenario import Calibration, Scenario

# --- observed figures -------------------------------------------------------------------------


@dataclass(frozen=True)
class ObservedFigure:
    """One figure a company can observe, computed from one run's summary."""

    name: str
    label: str
    compute: Callable[[dict[str, float], Scenario], float]
    show: Callable[[float], str]


def _referral_share(summary: dict[str, float], spec: Scenario) -> float:
    new = (
        summary["new_customers_referral"]
        + summary["new_customers_ads"]
        + summary["new_customers_win_back"]
    )
    return summary["new_customers_referral"] / new if new else float("nan")


def _customer_growth(summary: dict[str, float], spec: Scenario) -> float:
    """Compound annual growth of the customer base from step 0 to the horizon."""
    start = spec.population.customers
    years = spec.time.horizon / spec.time.steps_per_year
    if not start:
        return float("nan")
    return (summary["final_customers"] / start) ** (1.0 / years) - 1.0


OBSERVABLE: dict[str, ObservedFigure] = {
    f.name: f
    for f in (
        ObservedFigure("annual_churn", "annual churn", lambda s, _: s["annual_churn"],
                       lambda v: f"{v:.2%}"),
        ObservedFigure("nps", "NPS, last year", lambda s, _: s["nps"], lambda v: f"{v:+.1f}"),
        ObservedFigure("csat", "CSAT, last year", lambda s, _: s["csat"], lambda v: f"{v:.1f}%"),
        ObservedFigure("referral_share", "share of new customers by referral", _referral_share,
                       lambda v: f"{v:.1%}"),
        ObservedFigure("customer_growth", "customer growth per year", _customer_growth,
                       lambda v: f"{v:+.2%}"),
    )
}  # fmt: skip
"""Figures the calibration section may state, in the order of :class:`cxsim.scenario.Observed`."""


# --- unknowns ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unknown:
    """One parameter to fit: its dotted key, bounds and scale of the normalised space."""

    key: str
    low: float
    high: float
    log: bool  # fitted on a log scale: the range spans a factor of ten or more

    def value(self, u: float) -> float:
        """The parameter value at normalised position u in [0, 1]."""
        if self.log:
            return float(math.exp(math.log(self.low) + u * math.log(self.high / self.low)))
        return float(self.low + u * (self.high - self.low))

    def position(self, value: float) -> float:
        """Normalised position of a value (clipped into the bounds)."""
        value = min(max(value, self.low), self.high)
        if self.log:
            return math.log(value / self.low) / math.log(self.high / self.low)
        return (value - self.low) / (self.high - self.low)

    def slope(self, u: float) -> float:
        """d value / d u at u: converts normalised errors to the parameter's unit."""
        if self.log:
            return self.value(u) * math.log(self.high / self.low)
        return self.high - self.low


def unknowns_of(calibration: Calibration) -> list[Unknown]:
    return [
        Unknown(key, lo, hi, log=lo > 0 and hi / lo >= 10)
        for key, (lo, hi) in calibration.unknowns.items()
    ]


def current_value(spec: Scenario, key: str) -> float | None:
    """The scenario's value of a dotted key (touchpoints by name or index)."""
    node: Any = spec
    parts = key.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, tuple):
            node = node[int(part)] if part.isdigit() else next(t for t in node if t.name == part)
        else:
            node = getattr(node, part)
        if node is None and i < len(parts) - 1:
            return None
    return None if node is None else float(node)


# --- the fit ----------------------------------------------------------------------------------


POOR = 1.0
"""A fit is poor while some figure is more than this many tolerances from its target."""


@dataclass
class FigureFit:
    name: str
    target: float
    tolerance: float
    fitted: float

    @property
    def residual(self) -> float:
        """Fitted minus target, in tolerances."""
        return (self.fitted - self.target) / self.tolerance


@dataclass
class Fit:
    """The outcome of :func:`fit`: values, figures, Jacobian and what they determine."""

    unknowns: list[Unknown]
    start: list[float]
    position: np.ndarray  # normalised [0, 1] per unknown
    figures: list[FigureFit]
    jacobian: np.ndarray  # d residual (tolerances) / d position, figures x unknowns
    evaluations: int
    seconds: float
    replications: int
    seeds: list[int]
    message: str
    notes: list[str] = field(default_factory=list)

    @property
    def values(self) -> dict[str, float]:
        return {u.key: u.value(p) for u, p in zip(self.unknowns, self.position, strict=True)}

    @property
    def poor(self) -> list[FigureFit]:
        """Figures left further from their target than their tolerance."""
        return [f for f in self.figures if abs(f.residual) > POOR]

    def rank(self) -> int:
        """How many independent combinations of the unknowns the observations determine."""
        s = np.linalg.svd(self.jacobian, compute_uv=False)
        # A direction whose whole range moves the figures by under a hundredth of a tolerance
        # is not determined, whatever the arithmetic says.
        return int(np.sum(s > 0.01))

    def covariance(self) -> np.ndarray | None:
        """Covariance of the normalised positions, (J^T J)^-1: residuals are already divided by
        the observations' tolerances, read as their standard deviations. None if not identified."""
        if self.rank() < len(self.unknowns):
            return None
        return np.linalg.inv(self.jacobian.T @ self.jacobian)


class _SearchOver(Exception):  # noqa: N818 (not an error: the search is done)
    """Raised inside the objective to end the search: close enough, or out of evaluations."""


def fitting_scenario(spec: Scenario) -> Scenario:
    """The scenario as simulated while fitting: population and horizon as the section says."""
    cal = spec.calibration
    assert cal is not None
    changes: dict[str, Any] = {}
    if cal.population_scale < 1:
        pop = spec.population
        changes["population.customers"] = max(1, round(pop.customers * cal.population_scale))
        changes["population.prospects"] = max(1, round(pop.prospects * cal.population_scale))
        changes["population.represents"] = pop.represents / cal.population_scale
    if cal.horizon is not None:
        changes["time.horizon"] = cal.horizon
    return apply_overrides(spec, changes)


def fit(
    spec: Scenario,
    replications: int | None = None,
    on_evaluation: Callable[[int, dict[str, float], float], None] | None = None,
    close_enough: float = 0.1,
) -> Fit:
    """Fit the scenario's calibration unknowns to its observed figures.

    ``replications`` overrides the section's. ``on_evaluation(n, means, worst)`` hears after
    every evaluation (n-th, mean figures, worst residual in tolerances). The search stops when
    every residual is within ``close_enough`` tolerances (closer is below the noise a
    different set of seeds would bring), when SciPy's criteria are met, or after the section's
    ``max_evaluations``.
    """
    cal = spec.calibration
    if cal is None:
        raise ValueError("the scenario has no calibration section")
    unknowns = unknowns_of(cal)
    observed = {k: v for k, v in cal.observed.model_dump().items() if v is not None}
    names = list(observed)
    targets = np.array([observed[n] for n in names])
    tolerances = np.array([getattr(cal.tolerance, n) for n in names])
    base = fitting_scenario(spec)
    n_reps = replications or cal.replications
    seeds = replication_seeds(spec.run.seed, n_reps)
    start = [current_value(spec, u.key) for u in unknowns]
    # Start from the scenario's own values (the middle of the range where it has none), so
    # when the observations cannot pin every unknown the fit moves them as little as it must.
    u0 = np.array(
        [0.5 if v is None else u.position(v) for u, v in zip(unknowns, start, strict=True)]
    )
    cache: dict[tuple[float, ...], np.ndarray] = {}
    best: dict[str, Any] = {"cost": math.inf, "u": u0, "means": None, "worst": math.inf}
    # The search's limits; measuring the final Jacobian lifts them (see below).
    limits = {"evaluations": cal.max_evaluations, "close_enough": close_enough}
    began = time.perf_counter()

    def means_at(u: np.ndarray) -> np.ndarray:
        key = tuple(np.round(u, 12))
        if key in cache:
            return cache[key]
        if len(cache) >= limits["evaluations"]:
            raise _SearchOver(
                "the most evaluations allowed (calibration.max_evaluations) were used"
            )
        values = {x.key: x.value(p) for x, p in zip(unknowns, u, strict=True)}
        try:
            trial = apply_overrides(base, values)
        except ScenarioError as exc:
            raise ScenarioError(f"calibration.unknowns: {values}: {exc}") from None
        runs = [run_once(trial, seed, cal.engine).summary for seed in seeds]
        figures = np.array(
            [np.mean([OBSERVABLE[n].compute(r, trial) for r in runs]) for n in names]
        )
        cache[key] = figures
        residual = (figures - targets) / tolerances
        worst = float(np.max(np.abs(residual)))
        cost = float(np.sum(residual**2))
        if cost < best["cost"]:
            best.update(cost=cost, u=np.array(u, float), means=figures, worst=worst)
        if on_evaluation is not None:
            on_evaluation(len(cache), dict(zip(names, figures.tolist(), strict=True)), worst)
        if worst <= limits["close_enough"]:
            raise _SearchOver(f"every figure is within {close_enough:g} of its tolerance")
        return figures

    def residuals(u: np.ndarray) -> np.ndarray:
        return (means_at(u) - targets) / tolerances

    def jacobian(u: np.ndarray) -> np.ndarray:
        # Forward differences a twentieth of the range wide (inward at a bound): with common
        # random numbers the objective is deterministic but grainy at small scales, and SciPy's
        # default steps (relative to x, about 1e-8) would measure only that grain.
        r0 = residuals(u)
        jac = np.empty((len(names), len(unknowns)))
        for j in range(len(unknowns)):
            h = _STEP if u[j] <= 0.5 else -_STEP
            moved = np.array(u, float)
            moved[j] += h
            jac[:, j] = (residuals(moved) - r0) / h
        return jac

    # On a small market the figures move in steps of whole customers, and the trust region can
    # shrink onto such a step and stop short of values that reproduce them. While the best
    # point is still a poor fit and evaluations remain, the search starts again from the next
    # point of a Halton sequence over the normalised ranges (fixed, so a fit repeats).
    message, restarts = "", 0
    for start_u in _starts(u0):
        try:
            result = least_squares(
                residuals, start_u, jac=jacobian, bounds=(0.0, 1.0), method="trf",
                x_scale=1.0, xtol=1e-3, ftol=1e-4, gtol=1e-8,
            )  # fmt: skip
            message = result.message
        except _SearchOver as stop:
            message = str(stop)
            break
        if best["worst"] <= POOR:
            break
        restarts += 1
    if restarts:
        message += f" (after {restarts} restart(s) from other points: the search had stopped short)"
    u_best = best["u"]
    # The Jacobian at the best point, for the report (a search that stopped early has not
    # measured it there): allow the evaluations it needs beyond the budget, and do not stop.
    limits.update(evaluations=math.inf, close_enough=-1.0)
    jac = jacobian(u_best)
    figures = [
        FigureFit(n, float(t), float(tol), float(m))
        for n, t, tol, m in zip(names, targets, tolerances, best["means"], strict=True)
    ]
    return Fit(
        unknowns=unknowns, start=start, position=u_best, figures=figures, jacobian=jac,
        evaluations=len(cache), seconds=time.perf_counter() - began, replications=n_reps,
        seeds=seeds, message=message,
    )  # fmt: skip


_STEP = 0.05
"""Finite-difference step of the Jacobian, as a share of each unknown's normalised range."""


def _starts(u0: np.ndarray) -> Iterator[np.ndarray]:
    """Where the search starts: the scenario's own values, then the points of an unscrambled
    Halton sequence over the normalised ranges (its first point, the corner 0, left out)."""
    yield u0
    from scipy.stats import qmc  # here: a search that needs no restart does not load it

    halton = qmc.Halton(d=len(u0), scramble=False)
    halton.fast_forward(1)
    while True:
        yield halton.random(1)[0]


# --- report -----------------------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:.4g}"


def describe(result: Fit) -> str:
    """The fit as a person reads it: values, figures and residuals, how well each unknown is
    determined, trade-offs between unknowns, and a plain warning when the fit is poor."""
    out = [
        f"Fit: {result.evaluations} evaluations x {result.replications} replications (the same "
        f"seeds each time), {result.seconds:.1f} s; stopped because {result.message.lower()}",
        "",
        "Observed figures (residual = fitted - target, in tolerances):",
    ]
    for f in result.figures:
        show = OBSERVABLE[f.name].show
        out.append(
            f"  {OBSERVABLE[f.name].label:<36} target {show(f.target):>8}   fitted "
            f"{show(f.fitted):>8}   residual {f.residual:+.2f} (tolerance {_num(f.tolerance)})"
        )
    cov = result.covariance()
    se = np.sqrt(np.diag(cov)) if cov is not None else None
    norms = np.linalg.norm(result.jacobian, axis=0)
    out += ["", "Fitted unknowns (95% interval from the Jacobian and the tolerances):"]
    for j, (u, p) in enumerate(zip(result.unknowns, result.position, strict=True)):
        start = result.start[j]
        was = f"was {_num(start)}" if start is not None else "no value before"
        line = (
            f"  {u.key:<36} {_num(u.value(p)):>10}   ({was}; bounds {_num(u.low)}-{_num(u.high)})"
        )
        out.append(line)
        if se is not None:
            out.append("      95% interval " + _interval(u, p, float(se[j])))
        elif norms[j] > 0:
            out.append(
                "      if the other unknowns were known: 95% interval "
                + _interval(u, p, 1.0 / float(norms[j]))
            )
        else:
            out.append("      the observed figures do not depend on it here: not determined")
        if p <= 0.01 or p >= 0.99:
            side = "lower" if p <= 0.01 else "upper"
            out.append(f"      at its {side} bound: the observations may want a value beyond it")
        for i, f in enumerate(result.figures):
            # Change of each figure across the whole range of this unknown (linearised).
            change = result.jacobian[i, j] * f.tolerance
            out.append(
                f"      local slope: {OBSERVABLE[f.name].label} {_signed(f.name, change)} over "
                "its whole range"
            )
    out += _identification(result, cov)
    if result.poor:
        out += ["", "POOR FIT: " + "; ".join(
            f"{OBSERVABLE[f.name].label} is {abs(f.residual):.1f} tolerances from its target"
            for f in result.poor
        ) + ". The search found no values within the bounds that reproduce the observations: "
            "widen the bounds, add unknowns or check the figures. On a small market the figures "
            "move in steps of whole customers and the search can stop short of values that do "
            "reproduce them: more calibration.replications make the figures smoother."]  # fmt: skip
    return "\n".join(out)


def _signed(name: str, change: float) -> str:
    if name in ("annual_churn", "referral_share", "customer_growth"):
        return f"{100 * change:+.1f} pts"
    return f"{change:+.1f} pts"


def _interval(u: Unknown, p: float, se_position: float) -> str:
    lo, hi = p - 1.96 * se_position, p + 1.96 * se_position
    clipped = lo < 0 or hi > 1
    text = f"{_num(u.value(max(lo, 0.0)))} to {_num(u.value(min(hi, 1.0)))}"
    if clipped:
        text += " (reaches a bound: not determined within the bounds)"
    return text


def _identification(result: Fit, cov: np.ndarray | None) -> list[str]:
    """Which combinations of the unknowns the observations determine, and trade-offs."""
    n = len(result.unknowns)
    rank = result.rank()
    out: list[str] = []
    if rank < n:
        out += ["", f"Not identified: the {len(result.figures)} observed figure(s) determine "
                f"only {rank} combination(s) of the {n} unknowns, so this is one of many fits "
                "that reproduce them (the one the search reached from the scenario's own "
                "values)."]  # fmt: skip
        _, _, vt = np.linalg.svd(result.jacobian)
        for direction in vt[rank:]:
            # Scale the unchanged direction so its largest move is a tenth of a range.
            step = 0.1 * direction / np.max(np.abs(direction))
            moves = [
                f"{u.key} {u.value(min(max(p + s, 0), 1)) - u.value(p):+.4g}"
                for u, p, s in zip(result.unknowns, result.position, step, strict=True)
                if abs(s) > 1e-3
            ]
            out.append(
                "  These changes together leave the figures as they are: " + ", ".join(moves)
            )
        return out
    if cov is not None and n > 1:
        sd = np.sqrt(np.diag(cov))
        corr = cov / np.outer(sd, sd)
        for a in range(n):
            for b in range(a + 1, n):
                if abs(corr[a, b]) > 0.9:
                    out.append(
                        f"  {result.unknowns[a].key} and {result.unknowns[b].key} trade off "
                        f"(correlation {corr[a, b]:+.2f}): only their combination is determined."
                    )
    return out


# --- the calibrated scenario as a variant -----------------------------------------------------


def fitted_changes(spec: Scenario, values: dict[str, float]) -> dict[str, Any]:
    """The fitted keys as nested mappings to lay over the base scenario.

    A variant replaces lists whole, so a fitted touchpoint field brings the scenario's full
    touchpoints list with the fitted values in it.
    """
    rounded = {k: float(f"{v:.6g}") for k, v in values.items()}
    out: dict[str, Any] = {}
    touchpoints = [t.model_dump(mode="json") for t in spec.touchpoints]
    touched = False
    for key, value in rounded.items():
        parts = key.split(".")
        if parts[0] == "touchpoints":
            item = parts[1]
            index = int(item) if item.isdigit() else spec.touchpoint_names.index(item)
            touchpoints[index][parts[2]] = value
            touched = True
            continue
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    if touched:
        out["touchpoints"] = touchpoints
    return out


def variant_text(spec: Scenario, source: Path, out: Path, result: Fit) -> str:
    """YAML of the calibrated scenario: ``base:`` (the source, relative to ``out``'s folder)
    and only the fitted keys, with a header saying where they came from."""
    base = os.path.relpath(Path(source).resolve(), Path(out).resolve().parent)
    figures = ", ".join(
        f"{f.name} {OBSERVABLE[f.name].show(f.fitted)} (target {OBSERVABLE[f.name].show(f.target)})"
        for f in result.figures
    )
    head = [
        f"# Written by `cxsim calibrate {source}`: {', '.join(u.key for u in result.unknowns)}",
        f"# fitted to {figures}",
        f"# over {result.replications} replications of {len(result.seeds)} fixed seeds.",
        "# Only the fitted keys are here; everything else comes from the base scenario.",
    ]
    body = {"base": Path(base).as_posix(), **fitted_changes(spec, result.values)}
    text = yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=100)
    return "\n".join(head) + "\n" + text


def set_arguments(spec: Scenario, values: dict[str, float]) -> list[str]:
    """The fitted values as ``--set key=value`` arguments for ``cxsim run`` on the base."""
    return [f"--set {k}={float(f'{v:.6g}')}" for k, v in values.items()]
