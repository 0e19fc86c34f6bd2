"""The analysis of a sweep: indices against functions whose answer is known, charts, the share
of worlds where a strategy pays, break-even, and cxsim.simulate.

The analysis is fed objects shaped like the sweep core's SweepResult (runs, design, problem,
sweep), built here from test functions or from a few real runs, so it is checked without the
sweep machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from SALib.sample import morris as morris_sample
from SALib.sample import sobol as sobol_sample

from cxsim import simulate
from cxsim.experiment import replication_seeds, run_once
from cxsim.loading import apply_overrides
from cxsim.metrics import FIGURES
from cxsim.scenario import Scenario
from cxsim.sweep.analysis import (
    break_even_line,
    driver_table,
    morris_indices,
    share_above_zero,
    write_analysis,
)

from .conftest import ROOT, SHIPPED, small


@dataclass
class FakeSweep:
    design: str
    figures: list[str]
    scenarios: list[Scenario]
    seed: int = 7
    num_levels: int = 4


@dataclass
class FakeResult:
    runs: pd.DataFrame
    design: pd.DataFrame
    problem: dict
    sweep: FakeSweep
    steps: pd.DataFrame = field(default_factory=pd.DataFrame)
    points: pd.DataFrame = field(default_factory=pd.DataFrame)
    folder: Path | None = None


def _result(X: np.ndarray, problem: dict, kind: str, outputs: dict, replications: int = 1,
            figures=("profit",)) -> FakeResult:  # fmt: skip
    """A result whose figure ``profit`` is ``outputs[scenario](x, replication)`` at each row."""
    names = problem["names"]
    design = pd.DataFrame(X, columns=names)
    design.insert(0, "point", range(len(design)))
    rows = []
    for point, x in enumerate(X):
        for scenario, f in outputs.items():
            for r in range(replications):
                rows.append({"point": point, "scenario": scenario, "replication": r, "seed": r,
                             **dict(zip(names, x, strict=True)), "profit": f(x, r)})  # fmt: skip
    specs = [Scenario(name=n) for n in outputs]
    return FakeResult(pd.DataFrame(rows), design, problem, FakeSweep(kind, list(figures), specs))


def _nonempty(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 1000


# --- Morris and Sobol on functions with a known answer ----------------------------------------


def test_morris_ranks_a_linear_function_by_its_slopes(tmp_path):
    problem = {"num_vars": 3, "names": ["x1", "x2", "x3"], "bounds": [[0, 1]] * 3}
    X = morris_sample.sample(problem, 20, num_levels=4, seed=1)
    result = _result(X, problem, "morris", {"only": lambda x, r: 10 * x[0] + 2 * x[1]})
    paths = write_analysis(result, tmp_path)
    table = pd.read_csv(tmp_path / "morris.csv")
    assert list(table["parameter"]) == ["x1", "x2", "x3"]
    assert list(table["rank"]) == [1, 2, 3]
    # A linear function has the same effect everywhere: mu* is the slope times the range
    # and sigma is 0.
    mu = table.set_index("parameter")["mu_star"]
    assert mu["x1"] == pytest.approx(10) and mu["x2"] == pytest.approx(2)
    assert mu["x3"] == pytest.approx(0, abs=1e-9)
    assert table["sigma"].abs().max() == pytest.approx(0, abs=1e-9)
    charts = [p for p in paths if p.name.startswith("morris_profit")]
    assert {p.suffix for p in charts} == {".png", ".svg"} and all(map(_nonempty, charts))
    # The same analysis writes the same bytes: no date in an SVG, no ids salted at random.
    again = write_analysis(result, tmp_path / "again")
    for first, second in zip(paths, again, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


def test_morris_sees_an_interaction_as_spread():
    """x1 * x2: both matter and neither acts alone the same way everywhere (sigma > 0)."""
    problem = {"num_vars": 3, "names": ["a", "b", "c"], "bounds": [[0, 1]] * 3}
    X = morris_sample.sample(problem, 30, num_levels=4, seed=2)
    table = morris_indices(problem, X, X[:, 0] * X[:, 1], 4, seed=1).set_index("parameter")
    assert table.loc["c", "mu_star"] == pytest.approx(0, abs=1e-9)
    assert table.loc["a", "sigma"] > 0 and table.loc["b", "sigma"] > 0


def test_sobol_total_index_is_largest_for_the_dominant_input(tmp_path):
    """Ishigami: x1 and x2 carry the first-order variance; x3 acts only with x1 (S1 = 0,
    ST > 0); known values S1 = 0.31, 0.44, 0 and ST = 0.56, 0.44, 0.24."""
    problem = {"num_vars": 3, "names": ["x1", "x2", "x3"], "bounds": [[-np.pi, np.pi]] * 3}
    X = sobol_sample.sample(problem, 1024, calc_second_order=True, seed=3)

    def ishigami(x, r):
        return np.sin(x[0]) + 7 * np.sin(x[1]) ** 2 + 0.1 * x[2] ** 4 * np.sin(x[0])

    paths = write_analysis(_result(X, problem, "sobol", {"only": ishigami}), tmp_path)
    table = pd.read_csv(tmp_path / "sobol.csv").set_index("parameter")
    assert table.shape[0] == 3 and {"S1", "S1_conf", "ST", "ST_conf"} <= set(table.columns)
    assert table["ST"].idxmax() == "x1"
    assert table.loc["x1", "S1"] == pytest.approx(0.31, abs=0.08)
    assert table.loc["x3", "S1"] == pytest.approx(0.0, abs=0.08)
    assert table.loc["x3", "ST"] == pytest.approx(0.24, abs=0.08)
    pairs = pd.read_csv(tmp_path / "sobol_second_order.csv")
    assert len(pairs) == 3  # every pair once; the x1-x3 interaction is the one that is there
    strongest = pairs.loc[pairs["S2"].idxmax()]
    assert {strongest["parameter"], strongest["other"]} == {"x1", "x3"}
    assert all(map(_nonempty, [p for p in paths if p.suffix in (".png", ".svg")]))


# --- 1-D and 2-D ------------------------------------------------------------------------------


def test_one_parameter_sweep_of_the_model_draws_figure_and_difference(tmp_path):
    """Real runs at three detection levels: reactive against proactive on the same seeds."""
    levels = [0.0, 0.5, 0.9]
    specs = [small(SHIPPED[0]), small(SHIPPED[1])]
    rows = []
    for point, detection in enumerate(levels):
        for spec in specs:
            moved = apply_overrides(spec, {"strategy.detection": detection})
            for r, seed in enumerate(replication_seeds(5, 3)):
                summary = run_once(moved, seed).summary
                rows.append({"point": point, "scenario": spec.name, "replication": r,
                             "seed": seed, "strategy.detection": detection, **summary})  # fmt: skip
    design = pd.DataFrame({"point": range(3), "strategy.detection": levels})
    problem = {"num_vars": 1, "names": ["strategy.detection"], "bounds": [[0.0, 0.9]]}
    sweep = FakeSweep("grid", ["profit", "annual_churn", "final_customers"], specs)
    write_analysis(FakeResult(pd.DataFrame(rows), design, problem, sweep), tmp_path)
    for name in ("profit", "annual_churn", "final_customers"):
        for ext in ("png", "svg"):
            assert _nonempty(tmp_path / f"line_{name}.{ext}")
    svg = (tmp_path / "line_profit.svg").read_text()
    # Labelled in the scenario's units, with the pair it compares.
    assert "USD" in svg and "proactive - reactive" in svg
    assert "real customers" in (tmp_path / "line_final_customers.svg").read_text()


def _grid(f) -> FakeResult:
    """Six detection levels x five resolution levels; reactive's profit is 0, proactive's is
    ``f`` plus noise, so the paired difference is ``f`` give or take the noise."""
    X = np.array([(x, y) for x in np.linspace(0, 1, 6) for y in np.linspace(0, 1, 5)])
    problem = {"num_vars": 2, "names": ["strategy.detection", "strategy.first_contact_resolution"],
               "bounds": [[0, 1], [0, 1]]}  # fmt: skip
    noise = np.random.default_rng(0)
    return _result(X, problem, "grid",
                   {"reactive": lambda x, r: 0.0,
                    "proactive": lambda x, r: f(x) + noise.normal(0, 1e4)},
                   replications=3)  # fmt: skip


def test_heatmap_draws_the_break_even_contour_where_the_sign_changes(tmp_path):
    # Proactive pays where detection exceeds first-contact resolution: break-even on y = x.
    write_analysis(_grid(lambda x: 5e7 * (x[0] - x[1])), tmp_path)
    stem = tmp_path / "heatmap_profit_proactive_reactive"
    assert _nonempty(stem.with_suffix(".png"))
    assert 'id="break-even"' in stem.with_suffix(".svg").read_text()
    line = pd.read_csv(tmp_path / "break_even.csv")
    crossed = line.dropna(subset=["strategy.detection"])
    assert np.allclose(crossed["strategy.first_contact_resolution"],
                       crossed["strategy.detection"], atol=0.01)  # fmt: skip
    # Along each resolution level, proactive pays above the detection where it breaks even.
    assert set(crossed["direction"]) == {"pays above"}
    assert "break-even" in (tmp_path / "analysis.md").read_text()


def test_no_break_even_contour_where_proactive_pays_everywhere(tmp_path):
    write_analysis(_grid(lambda x: 5e7 * (1 + x[0] + x[1])), tmp_path)
    svg = (tmp_path / "heatmap_profit_proactive_reactive.svg").read_text()
    assert 'id="break-even"' not in svg
    assert set(pd.read_csv(tmp_path / "break_even.csv")["direction"]) == {"pays everywhere"}


def test_break_even_line_interpolates_between_grid_points():
    table = pd.DataFrame({"x": [1, 1, 1], "y": [0.0, 1.0, 2.0], "mean": [-3.0, -1.0, 1.0]})
    line = break_even_line(table, "x", "y")
    assert line["y"].iloc[0] == pytest.approx(1.5) and line["direction"].iloc[0] == "pays above"


# --- decisions under uncertainty --------------------------------------------------------------


def test_share_of_worlds_where_proactive_pays(tmp_path):
    """100 worlds, net benefit = 1e6 (fade - 0.3) with fade spread evenly over [0, 1): it pays
    in 70 of them; the rank correlation finds fade and not the idle parameter."""
    fade = (np.arange(100) + 0.5) / 100
    idle = np.random.default_rng(1).uniform(size=100)
    X = np.column_stack([fade, idle])
    problem = {"num_vars": 2, "names": ["behaviour.problem_fade", "behaviour.referral.conversion"],
               "bounds": [[0, 1], [0, 1]]}  # fmt: skip
    result = _result(X, problem, "uncertainty",
                     {"reactive": lambda x, r: 2e6, "proactive": lambda x, r: 2e6 + 1e6 * (
                         x[0] - 0.3) + (r - 0.5) * 1e3}, replications=2)  # fmt: skip
    paths = write_analysis(result, tmp_path)
    row = pd.read_csv(tmp_path / "uncertainty.csv").iloc[0]
    assert row["scenario"] == "proactive - reactive" and row["worlds"] == 100
    assert row["share_above_zero"] == pytest.approx(0.70)
    assert row["share_low"] < 0.70 < row["share_high"]
    assert row["q50"] == pytest.approx(1e6 * (np.median(fade) - 0.3))
    # Replications differ by 1000 around the world mean: the noise is small against the spread.
    assert row["sd_noise"] == pytest.approx(500.0) and row["sd_between_worlds"] > 1e5
    drivers = pd.read_csv(tmp_path / "uncertainty_drivers.csv")
    assert drivers["parameter"].iloc[0] == "behaviour.problem_fade"
    assert drivers["spearman"].iloc[0] == pytest.approx(1.0)
    assert drivers["src"].iloc[0] == pytest.approx(1.0, abs=0.01)
    assert drivers["r2"].iloc[0] == pytest.approx(1.0, abs=1e-6)
    names = {p.name for p in paths}
    for stem in ("net_benefit_profit_proactive_reactive", "drivers_profit_proactive_reactive"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    assert "70% of 100 worlds" in (tmp_path / "analysis.md").read_text()


def test_share_interval_is_wilsons():
    share, low, high = share_above_zero(np.r_[np.ones(50), -np.ones(50)])
    assert (share, round(low, 3), round(high, 3)) == (0.5, 0.404, 0.596)
    assert share_above_zero(np.ones(20))[2] == 1.0 and share_above_zero(np.ones(20))[1] < 1


def test_drivers_of_a_constant_output_are_undefined_not_invented():
    table = driver_table(pd.DataFrame({"a": [0.1, 0.2, 0.3, 0.4]}), np.ones(4))
    assert table["spearman"].isna().all() and table["src"].isna().all()


# --- interop ----------------------------------------------------------------------------------


def test_simulate_returns_the_registry_figures_and_is_reproducible():
    sizes = {"population.customers": 100, "population.prospects": 300, "time.horizon": 26}
    first = simulate(scenario=SHIPPED[1], seed=11, **sizes)
    assert {f.name for f in FIGURES if f.compute is not None} <= set(first)
    assert all(type(v) is float for v in first.values())
    assert simulate(scenario=SHIPPED[1], seed=11, **sizes) == first
    assert simulate(scenario=SHIPPED[1], seed=12, **sizes) != first
    # Keyword names with __ for dots, as EMA Workbench or a plain call would pass them.
    off = simulate(scenario=SHIPPED[1], seed=11, strategy__detection=0.0, **sizes)
    assert off["problems_detected"] == 0 < first["problems_detected"]


def test_print_problem_gives_the_salib_problem_of_a_sweep_file(capsys):
    import json

    from cxsim.cli import main

    assert main(["sweep", str(ROOT / "scenarios/sensitivity_morris.yaml"), "--print-problem"]) == 0
    problem = json.loads(capsys.readouterr().out)
    assert problem["num_vars"] == len(problem["names"]) == 13
    assert problem["bounds"][problem["names"].index("strategy.detection")] == [0.0, 0.9]


# --- the shipped sweep files ------------------------------------------------------------------

EXAMPLES = {  # file: (design, points, scenarios x replications), as their comments promise
    "sweep_detection_vs_resolution": ("grid", 49, 6),
    "sensitivity_morris": ("morris", 12 * 14, 2),
    "sensitivity_sobol": ("sobol", 128 * 6, 1),
    "uncertainty_telecom": ("uncertainty", 120, 4),
}


@pytest.mark.parametrize("name", EXAMPLES)
def test_shipped_sweep_files_load_at_the_size_they_state(name):
    from cxsim.sweep import design, load_sweep

    sweep = load_sweep(ROOT / "scenarios" / f"{name}.yaml")
    points, problem = design(sweep)
    kind, size, per_point = EXAMPLES[name]
    assert sweep.spec.design == kind and len(points) == size
    assert len(sweep.scenarios) * sweep.spec.replications == per_point
    assert len(problem["names"]) >= (10 if kind == "morris" else 2)


def test_a_targeted_parameter_reaches_only_its_scenario():
    """`proactive:strategy.detection` varies detection in the proactive scenario only; the
    support lever without a target varies in both (the shipped grid)."""
    from cxsim.sweep import design, load_sweep
    from cxsim.sweep.design import point_overrides
    from cxsim.sweep.spec import for_scenario

    sweep = load_sweep(ROOT / "scenarios" / "sweep_detection_vs_resolution.yaml")
    points, _ = design(sweep)
    last = point_overrides(points, len(points) - 1)
    reactive, proactive = (for_scenario(last, i, sweep.targets) for i in range(2))
    assert "strategy.detection" not in reactive
    assert proactive["strategy.detection"] == pytest.approx(0.9)
    assert reactive["strategy.first_contact_resolution"] == pytest.approx(0.9)
    assert proactive["strategy.first_contact_resolution"] == pytest.approx(0.9)
    assert sweep.scenarios[0].strategy.costs.per_customer == 0.0  # overrides targeted too
    assert sweep.scenarios[1].strategy.costs.per_customer == 1.5


# --- on a real sweep --------------------------------------------------------------------------

SMALL_SWEEP = """
scenarios: [{reactive}, {proactive}]
parameters:
{parameters}
design: {design}
{size}
replications: 2
figures: [profit, annual_churn]
seed: 3
overrides: {{population.customers: 60, population.prospects: 200, time.horizon: 12}}
"""


@pytest.mark.parametrize(("design", "size", "parameters", "written"), [
    ("grid", "", "  strategy.detection: [0.0, 0.9]\n"
     "  strategy.first_contact_resolution: [0.3, 0.9]", "heatmap_profit_proactive_reactive.svg"),
    ("morris", "points: 3", "  strategy.detection: {low: 0, high: 0.9}\n"
     "  behaviour.problem_fade: {low: 0.1, high: 0.5}", "morris.csv"),
    ("uncertainty", "points: 6", "  behaviour.problem_fade: {distribution: uniform, low: 0.1, "
     "high: 0.5}", "uncertainty.csv"),
])  # fmt: skip
def test_analysis_of_a_real_sweep_and_of_its_folder_read_back(tmp_path, design, size,
                                                               parameters, written):  # fmt: skip
    """The sweep core's own result, in memory and loaded from its folder, gives the same
    analysis (the interface the command relies on)."""
    from cxsim.sweep import load_sweep, run_sweep
    from cxsim.sweep.run import load_result

    text = SMALL_SWEEP.format(reactive=SHIPPED[0], proactive=SHIPPED[1], parameters=parameters,
                              design=design, size=size)  # fmt: skip
    path = tmp_path / "sweep.yaml"
    path.write_text(text, encoding="utf-8")
    result = run_sweep(load_sweep(path), out=tmp_path, workers=1, progress=False)
    fresh = {p.name for p in write_analysis(result, tmp_path / "fresh")}
    again = {p.name for p in write_analysis(load_result(result.folder), tmp_path / "again")}
    assert written in fresh and fresh == again
    table = sorted(fresh & {"morris.csv", "uncertainty.csv", "break_even.csv"})
    for name in table:
        assert (tmp_path / "fresh" / name).read_text() == (tmp_path / "again" / name).read_text()
