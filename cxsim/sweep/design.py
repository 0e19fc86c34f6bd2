"""A sweep's design: the table of parameter points, and the SALib ``problem`` that describes it.

Samplers come from SALib (Saltelli/Sobol', Morris trajectories, Latin hypercube); a grid is
every combination of the listed values (the first parameter varies slowest); Monte Carlo draws
uniform numbers from the sweep's seed and maps them through SALib's own scaling, so a
distribution means the same thing here as in SALib's analysers. Every design is a pure function
of the sweep file: the same file gives the same points. Parameters that are whole numbers in
the scenario (a population size) are rounded after sampling.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from SALib.sample import latin, morris, sobol
from SALib.util import scale_samples

from cxsim.sweep.spec import Parameter, Sweep

POINT = "point"


def problem_of(sweep: Sweep) -> dict:
    """The SALib problem: names, bounds and, when any parameter is a distribution, ``dists``
    in SALib's conventions (unif [low, high], norm [mean, sd], truncnorm [low, high, mean, sd],
    triang [low, high, peak as a share of the width], lognorm [mu, sigma])."""
    names = list(sweep.parameters)
    bounds, dists = [], []
    for parameter in sweep.parameters.values():
        bound, dist = _salib(parameter)
        bounds.append(bound)
        dists.append(dist)
    problem = {"num_vars": len(names), "names": names, "bounds": bounds}
    if any(d != "unif" for d in dists):
        problem["dists"] = dists
    return problem


def _salib(p: Parameter) -> tuple[list[float], str]:
    kind = p.kind
    if kind == "values":
        numbers = [v for v in p.values if isinstance(v, int | float) and not isinstance(v, bool)]
        # SALib wants numbers; a grid of words is described by the positions of its values.
        if len(numbers) == len(p.values):
            return [float(min(numbers)), float(max(numbers))], "unif"
        return [0.0, float(len(p.values) - 1)], "unif"
    if kind in ("range", "bounds", "uniform"):
        return [p.low, p.high], "unif"
    if kind == "normal":
        if p.low is None:
            return [p.mean, p.sd], "norm"
        return [p.low, p.high, p.mean, p.sd], "truncnorm"
    if kind == "triangular":
        return [p.low, p.high, (p.mode - p.low) / (p.high - p.low)], "triang"
    return [p.mu, p.sigma], "lognorm"


def design(sweep: Sweep) -> tuple[pd.DataFrame, dict]:
    """(points, problem): one row per point (``point`` 0, 1, ..., then one column per dotted
    parameter, in the file's order) and the SALib problem. Rows are in the sampler's order,
    which SALib's analysers rely on."""
    spec = sweep.spec
    problem = problem_of(sweep)
    names = problem["names"]
    n, seed = spec.points, spec.seed
    if spec.design == "grid":
        axes = [_axis(p) for p in sweep.parameters.values()]
        rows = list(itertools.product(*axes))
        frame = pd.DataFrame(rows, columns=names)
    else:
        if spec.design == "sobol":
            x = sobol.sample(problem, n, calc_second_order=spec.second_order, seed=seed)
        elif spec.design == "morris":
            x = morris.sample(problem, n, num_levels=spec.levels, seed=seed)
        elif spec.design == "lhs":
            x = latin.sample(problem, n, seed=seed)
        else:  # monte_carlo / uncertainty: independent draws, mapped like SALib maps them
            unit = np.random.default_rng(seed).random((n, len(names)))
            x = scale_samples(unit, problem)
        frame = pd.DataFrame(np.asarray(x, dtype=float), columns=names)
    for name in names:
        if name in sweep.integers and pd.api.types.is_numeric_dtype(frame[name]):
            frame[name] = frame[name].round().astype("int64")
    frame.insert(0, POINT, np.arange(len(frame), dtype="int64"))
    return frame, problem


def _axis(p: Parameter) -> list:
    if p.kind == "values":
        return list(p.values)
    return [float(v) for v in np.linspace(p.low, p.high, p.steps)]


def point_overrides(frame: pd.DataFrame, point: int) -> dict:
    """The dotted-key overrides of one point, as plain Python values."""
    # One row as records keeps each column's own type (a row Series would make ints floats).
    row = frame.iloc[[point]].to_dict("records")[0]
    return {k: (v.item() if isinstance(v, np.generic) else v)
            for k, v in row.items() if k != POINT}  # fmt: skip
