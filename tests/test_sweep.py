"""Sweeps: designs, sweep-file errors, identical tables on every executor, resume, failures."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxsim.cli import main
from cxsim.engines import ENGINES
from cxsim.executors import SerialExecutor
from cxsim.loading import ScenarioError
from cxsim.parts import PartError
from cxsim.results import ResultsError
from cxsim.sweep import SweepTaskError, design, load_sweep, parse_sweep, run_sweep
from cxsim.sweep.run import load_result, resume, start

from .conftest import ROOT

REACTIVE = ROOT / "scenarios" / "reactive.yaml"
PROACTIVE = ROOT / "scenarios" / "proactive.yaml"
SMALL = "overrides: {population.customers: 60, population.prospects: 200, time.horizon: 12}\n"


def sweep_text(parameters: str, design_lines: str = "", scenarios: str = "") -> str:
    scenarios = scenarios or f"[{REACTIVE}, {PROACTIVE}]"
    return (f"scenarios: {scenarios}\nparameters:\n{parameters}{design_lines}"
            f"replications: 2\nseed: 11\n{SMALL}")  # fmt: skip


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


BOUNDS = (
    "  strategy.detection: {low: 0.1, high: 0.9}\n"
    "  strategy.first_contact_resolution: {low: 0.3, high: 0.8}\n"
    "  population.customers: {low: 40, high: 80}\n"
)
GRID = "  strategy.detection: [0.2, 0.8]\n  population.customers: {low: 40, high: 60, steps: 2}\n"


# --- designs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "size"),
    [
        ("design: lhs\npoints: 12\n", 12),
        ("design: sobol\npoints: 8\n", 8 * (3 + 2)),  # Saltelli, first and total order
        ("design: sobol\npoints: 8\nsecond_order: true\n", 8 * (2 * 3 + 2)),
        ("design: morris\npoints: 5\nlevels: 4\n", 5 * (3 + 1)),
    ],
)
def test_sampled_designs_have_their_size_stay_in_bounds_and_repeat(lines, size):
    sweep = parse_sweep(sweep_text(BOUNDS, lines), str(ROOT / "x.yaml"))
    frame, problem = design(sweep)
    assert len(frame) == size and list(frame["point"]) == list(range(size))
    assert problem["names"] == list(frame.columns[1:])
    assert frame["strategy.detection"].between(0.1, 0.9).all()
    assert frame["strategy.first_contact_resolution"].between(0.3, 0.8).all()
    customers = frame["population.customers"]
    assert customers.dtype == np.int64 and customers.between(40, 80).all()  # rounded, in bounds
    again, _ = design(parse_sweep(sweep_text(BOUNDS, lines), str(ROOT / "x.yaml")))
    pd.testing.assert_frame_equal(frame, again)
    other, _ = design(parse_sweep(sweep_text(BOUNDS, lines).replace("seed: 11", "seed: 12"),
                                  str(ROOT / "x.yaml")))  # fmt: skip
    assert not np.allclose(frame["strategy.detection"], other["strategy.detection"])


def test_a_grid_is_every_combination_first_parameter_slowest():
    sweep = parse_sweep(sweep_text(GRID), str(ROOT / "x.yaml"))
    frame, _ = design(sweep)
    assert frame[["strategy.detection", "population.customers"]].values.tolist() == [
        [0.2, 40], [0.2, 60], [0.8, 40], [0.8, 60]]  # fmt: skip


def test_uncertainty_draws_follow_their_distributions():
    params = (
        "  strategy.detection: {distribution: normal, mean: 0.5, sd: 0.1, low: 0.3, high: 0.6}\n"
        "  behaviour.satisfaction.mean: {distribution: triangular, low: 0.5, mode: 0.6, "
        "high: 0.9}\n"
    )
    sweep = parse_sweep(sweep_text(params, "design: uncertainty\npoints: 400\n"),
                        str(ROOT / "x.yaml"))  # fmt: skip
    frame, problem = design(sweep)
    assert problem["dists"] == ["truncnorm", "triang"]
    detection = frame["strategy.detection"]
    assert detection.between(0.3, 0.6).all() and detection.mean() == pytest.approx(0.48, abs=0.02)
    peak = frame["behaviour.satisfaction.mean"]
    assert peak.between(0.5, 0.9).all()
    assert peak.mean() == pytest.approx((0.5 + 0.6 + 0.9) / 3, abs=0.02)


# --- the sweep file --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("replications: 2", "replications: two"),
            "sweep.yaml:5: replications: expected a whole number, found 'two'",
        ),
        (("seed: 11", "sed: 11"), "sweep.yaml:6: unknown key 'sed' (did you mean 'seed'?)"),
        (
            ("strategy.detection: [", "strategy.detectoin: ["),
            "sweep.yaml:3: parameters.strategy.detectoin: in scenario 'reactive': unknown key",
        ),
        (
            ("strategy.detection: [0.2, 0.8]", "strategy.detection: [0.2, 1.8]"),
            "sweep.yaml:3: parameters.strategy.detection: in scenario 'reactive': "
            "strategy.detection: expected a number <= 1.0, found 1.8",
        ),
        (
            ("parameters:", "design: morris\npoints: 4\nparameters:"),
            "sweep.yaml:5: parameters.strategy.detection: design morris needs bounds",
        ),
        (
            ("steps: 2}", "steps: 2, mean: 3}"),
            "sweep.yaml:4: parameters.population.customers: expected {low, high, steps}",
        ),
        (
            ("[0.2, 0.8]", "{low: 0.8, high: 0.2, steps: 3}"),
            "sweep.yaml:3: parameters.strategy.detection: expected low < high",
        ),
        (("reactive.yaml", "reactiv.yaml"), "sweep.yaml:1: scenarios[0]: "),
    ],
)
def test_a_bad_sweep_file_exits_2_naming_file_line_and_field(tmp_path, capsys, change, expected):
    text = sweep_text(GRID)
    assert change[0] in text
    path = write(tmp_path, text.replace(*change))
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}/{expected}" in err, err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def _targeted_sweep(tmp_path: Path, parameter: str, override: str) -> tuple[Path, str]:
    """A sweep of two scenarios whose files are both named market.yaml (names one and two)."""
    for folder, base, name in (("a", REACTIVE, "one"), ("b", PROACTIVE, "two")):
        (tmp_path / folder).mkdir()
        write(tmp_path / folder, f"base: {base}\nname: {name}\n", "market.yaml")
    text = (f"scenarios: [a/market.yaml, b/market.yaml]\nparameters:\n  {parameter}\n"
            f"replications: 1\noverrides:\n  population.customers: 60\n  {override}\n")  # fmt: skip
    return write(tmp_path, text), text


@pytest.mark.parametrize(
    ("parameter", "override", "wrong", "expected"),
    [
        ("strategy.detection: [0.2, 0.5]", "nope:strategy.outreach: 0.1", "nope",
         "overrides.nope:strategy.outreach: no scenario 'nope' in this sweep; name one of "
         "1 'one', 2 'two' (by name, file stem or position)"),
        ("3:strategy.detection: [0.2, 0.5]", "strategy.outreach: 0.1", "3:",
         "parameters.3:strategy.detection: no scenario '3' in this sweep; name one of "
         "1 'one', 2 'two' (by name, file stem or position)"),
        ("market:strategy.detection: [0.2, 0.5]", "strategy.outreach: 0.1", "market:",
         "parameters.market:strategy.detection: 'market' names scenarios 1, 2; use the "
         "position instead"),
        ("strategy.detection: [0.2, 0.5]", "market:strategy.outreach: 0.1", "market:",
         "overrides.market:strategy.outreach: 'market' names scenarios 1, 2; use the position "
         "instead"),
        ("strategy.detection: [0.2, 0.5]", ":strategy.outreach: 0.1", ":strategy",
         "overrides.:strategy.outreach: expected a scenario name, file stem or position "
         "before ':'"),
    ],
)  # fmt: skip
def test_a_target_naming_no_scenario_or_several_is_refused_as_run_refuses_it(
    tmp_path, capsys, parameter, override, wrong, expected
):
    path, text = _targeted_sweep(tmp_path, parameter, override)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if wrong in t)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"cxsim: error: {path}:{line}: {expected}", err
    assert not (tmp_path / "out").exists()


def test_a_target_that_is_one_scenarios_name_and_anothers_stem_picks_as_run_does(tmp_path):
    """'proactive' is the first scenario's name and the second's file stem: by name first, in
    a run's --set as in a sweep file's overrides and parameters."""
    from cxsim.loading import load_scenarios
    from cxsim.sweep.run import _tasks

    first = write(tmp_path, f"base: {REACTIVE}\nname: proactive\n", "copy.yaml")
    second = write(tmp_path, f"base: {PROACTIVE}\nname: other\n", "proactive.yaml")
    path = write(tmp_path, "scenarios: [copy.yaml, proactive.yaml]\nparameters:\n"
                 "  proactive:strategy.prevention: [0.1, 0.2]\nreplications: 1\noverrides:\n"
                 "  population.customers: 60\n  proactive:strategy.detection: 0.7\n")  # fmt: skip
    sweep = load_sweep(path)
    points, _ = design(sweep)
    tasks = _tasks(sweep, points, [1])
    for p, value in enumerate(points["proactive:strategy.prevention"]):
        ran = load_scenarios([first, second], ["population.customers=60",
                             "proactive:strategy.detection=0.7",
                             f"proactive:strategy.prevention={value}"])  # fmt: skip
        swept = [t.spec for t in tasks if t.point == p]
        assert [s.model_dump() for s in swept] == [s.model_dump() for s in ran]
        assert [s.strategy.prevention for s in swept] == [value, ran[1].strategy.prevention]
        assert ran[1].strategy.prevention != value


def test_a_plan_keeps_the_targets_and_one_from_before_finds_them_again(tmp_path):
    import json

    from cxsim.sweep.spec import Sweep

    path, _ = _targeted_sweep(tmp_path, "2:strategy.detection: [0.2, 0.5]",
                              "one:strategy.outreach: 0.1")  # fmt: skip
    sweep = load_sweep(path)
    assert sweep.targets == {"one:strategy.outreach": 0, "2:strategy.detection": 1}
    plan = json.loads(json.dumps(sweep.to_plan()))
    assert Sweep.from_plan(plan, "plan.json").targets == sweep.targets
    del plan["targets"]  # a plan written before the targets were kept
    assert Sweep.from_plan(plan, "plan.json").targets == sweep.targets


def test_a_sobol_base_that_is_not_a_power_of_two_is_refused(tmp_path):
    with pytest.raises(Exception, match=r"x.yaml:\d+: points: expected a power of 2.*found 6"):
        parse_sweep(sweep_text(BOUNDS, "design: sobol\npoints: 6\n"), str(tmp_path / "x.yaml"))


# --- running ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grid")
    return load_sweep(write(folder, sweep_text(GRID)))


@pytest.fixture(scope="module")
def serial(grid, tmp_path_factory):
    return run_sweep(grid, out=tmp_path_factory.mktemp("serial"), workers=1, progress=False)


def test_the_tables_of_a_sweep(serial, grid):
    runs = serial.runs
    assert len(runs) == 4 * 2 * 2 and list(runs.columns[:6]) == [
        "point",
        "scenario",
        "replication",
        "seed",
        "strategy.detection",
        "population.customers",
    ]
    # Common random numbers: every point and scenario runs on the same seeds.
    assert runs.groupby(["point", "scenario"])["seed"].apply(tuple).nunique() == 1
    assert set(serial.steps.columns) == {"point", "scenario", "replication", "step",
                                         "churn_rate", "profit"}  # fmt: skip
    assert len(serial.steps) == len(runs) * 13
    points = serial.points.set_index(["point", "scenario"])
    assert len(points) == 4 * 3
    wide = runs.pivot_table(index=["point", "replication"], columns="scenario", values="profit")
    diff = (wide["proactive"] - wide["reactive"]).groupby("point").mean()
    got = points.xs("proactive - reactive", level="scenario")["profit_mean"]
    np.testing.assert_allclose(got.to_numpy(), diff.to_numpy(), rtol=1e-12)
    assert (points["annual_churn_low"] <= points["annual_churn_mean"]).all()
    folder = serial.folder
    assert sorted(p.name for p in folder.iterdir()) == sorted([
        "design.csv", "manifest.json", "points.csv", "problem.json", "runs.parquet",
        "steps.parquet"])  # fmt: skip
    loaded = load_result(folder)
    pd.testing.assert_frame_equal(loaded.runs, runs)
    assert loaded.sweep.hash() == grid.hash()


def test_two_workers_give_byte_identical_tables(serial, grid, tmp_path):
    pooled = run_sweep(grid, out=tmp_path, workers=2, progress=False)
    assert pooled.executor.startswith("local process pool, 2")
    for name in ("runs.parquet", "steps.parquet", "points.csv", "design.csv"):
        assert (pooled.folder / name).read_bytes() == (serial.folder / name).read_bytes(), name


def test_a_dask_local_cluster_gives_byte_identical_tables(serial, grid, tmp_path):
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)  # fmt: skip
    client = Client(cluster)
    try:
        done = run_sweep(grid, out=tmp_path, client=client, progress=False)
    finally:
        client.close()
        cluster.close()
    assert done.executor.startswith("dask.distributed scheduler at tcp://127.0.0.1")
    for name in ("runs.parquet", "steps.parquet", "points.csv"):
        assert (done.folder / name).read_bytes() == (serial.folder / name).read_bytes(), name


class _Stops(SerialExecutor):
    """Serial, but Ctrl-C after ``after`` runs; records every task it was given."""

    def __init__(self, after: int | None = None):
        super().__init__()
        self.after, self.given = after, []

    def map_unordered(self, fn, tasks):
        self.given.extend(tasks)
        for n, item in enumerate(super().map_unordered(fn, tasks)):
            if self.after is not None and n == self.after:
                raise KeyboardInterrupt
            yield item


def test_resume_runs_only_what_is_missing_and_gives_the_same_tables(serial, grid, tmp_path):
    folder = start(tmp_path, grid)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(grid, folder=folder, executor=_Stops(after=6), progress=False)
    parts = sorted((folder / "parts").iterdir())
    assert len(parts) == 6
    shutil.rmtree(parts[2])  # a lost part is run again
    again = _Stops()
    done = run_sweep(resume(folder), folder=folder, executor=again, progress=False)
    assert len(again.given) == 16 - 5 and parts[2].name.endswith("-r00000")
    assert (folder / "runs.parquet").read_bytes() == (serial.folder / "runs.parquet").read_bytes()
    assert not (folder / "parts").exists() and not (folder / "plan.json").exists()
    pd.testing.assert_frame_equal(done.points, serial.points)


def test_resume_refuses_other_settings_and_parts_of_another_sweep(grid, tmp_path, capsys):
    folder = start(tmp_path / "a", grid)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(grid, folder=folder, executor=_Stops(after=2), progress=False)
    other_file = write(tmp_path, sweep_text(GRID).replace("seed: 11", "seed: 12"), "other.yaml")
    other = load_sweep(other_file)
    with pytest.raises(ResultsError, match="made from other settings"):
        resume(folder, other)
    assert main(["sweep", str(other_file), "--resume", str(folder)]) == 2
    # A part made by another sweep (other seeds) under a name this sweep uses.
    elsewhere = start(tmp_path / "b", other)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(other, folder=elsewhere, executor=_Stops(after=4), progress=False)
    stranger = sorted((elsewhere / "parts").iterdir())[3]
    shutil.copytree(stranger, folder / "parts" / stranger.name)
    with pytest.raises(PartError, match=rf"{stranger.name}: made from other settings \(seed"):
        run_sweep(resume(folder), folder=folder, workers=1, progress=False)
    capsys.readouterr()
    assert main(["sweep", "--resume", str(folder), "--workers", "1"]) == 2
    assert "made from other settings" in capsys.readouterr().err


def test_a_run_that_raises_names_its_point_and_keeps_finished_parts(grid, tmp_path, monkeypatch,
                                                                    capsys):  # fmt: skip
    real = ENGINES["vector"]

    def breaks_at_high_detection(spec, rng):
        if spec.strategy.detection > 0.5:
            raise ZeroDivisionError("a bug")
        return real(spec, rng=rng)

    monkeypatch.setitem(ENGINES, "vector", breaks_at_high_detection)
    folder = start(tmp_path, grid)
    with pytest.raises(SweepTaskError) as caught:
        run_sweep(grid, folder=folder, workers=1, progress=False)
    message = str(caught.value)
    assert message.startswith(
        "run failed at point 2 (strategy.detection=0.8, "
        "population.customers=40), scenario 'reactive', replication 0"
    )
    assert "ZeroDivisionError: a bug" in message and "8 finished run(s) are kept" in message
    assert len(list((folder / "parts").iterdir())) == 8  # points 0 and 1, every run
    path = write(tmp_path, sweep_text(GRID))
    assert main(["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "cli")]) == 1
    err = capsys.readouterr().err
    assert "point 2 (strategy.detection=0.8" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cxsim_sweep_writes_a_folder_and_resume_finishes_it(tmp_path, capsys):
    path = write(tmp_path, sweep_text("  strategy.detection: [0.3]\n", scenarios=f"[{REACTIVE}]"))
    assert main(["sweep", str(path), "--workers", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 point(s) x 1 scenario(s) x 2 replication(s) = 2 runs" in out
    (folder,) = tmp_path.glob("sweep-sweep-*")
    points = pd.read_csv(folder / "points.csv")
    assert list(points["scenario"]) == ["reactive"] and points.loc[0, "n"] == 2
    assert main(["sweep", "--resume", str(folder)]) == 2  # complete: nothing to resume


# --- found by fuzzing (reliability/fuzz.py) ---------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "lines", "field"),
    [
        (
            "".join(
                f"  touchpoints.{t}.bad: {{low: 0, high: 0.01, steps: 100}}\n"
                for t in ("billing", "delivery", "product", "email")
            ),
            "",
            "parameters",
        ),
        ("  strategy.detection: [0.1, 0.2]\n", "replications: 1000000000\n", "replications"),
        (BOUNDS, "design: sobol\npoints: 1099511627776\n", "points"),
    ],  # fmt: skip
    ids=["grid of 10^8 points", "a billion replications", "sobol N = 2^40"],
)
def test_a_design_of_more_than_a_million_runs_is_refused_before_it_is_made(
    tmp_path, parameters, lines, field
):
    text = sweep_text(parameters, lines)
    if lines.startswith("replications"):
        text = text.replace("replications: 2\n", "")  # the file says it once
    with pytest.raises(ScenarioError) as info:
        load_sweep(write(tmp_path, text))
    message = str(info.value)
    assert f": {field}: the design has " in message and "at most 1,000,000 fit" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("parameters", "lines", "expected"),
    [
        (
            "  strategy.detection: {distribution: lognormal, mu: 1000, sigma: 1}\n",
            "design: monte_carlo\npoints: 4\n",
            "expected mu at most 700",
        ),
        (BOUNDS, "design: morris\npoints: 4\nlevels: 1000000000\n", "levels"),
    ],  # fmt: skip
    ids=["exp(mu) overflows", "a billion morris levels"],
)
def test_sweep_settings_that_overflow_are_refused(tmp_path, parameters, lines, expected):
    with pytest.raises(ScenarioError, match=expected):
        load_sweep(write(tmp_path, sweep_text(parameters, lines)))


def test_a_scenario_listed_twice_is_refused_before_any_is_read(tmp_path):
    scenarios = "[" + ", ".join([str(REACTIVE)] * 100) + "]"
    started = time.perf_counter()
    with pytest.raises(ScenarioError, match=r"scenarios\[1\]: .* is listed twice"):
        load_sweep(write(tmp_path, sweep_text(GRID, scenarios=scenarios)))
    assert time.perf_counter() - started < 2


def test_an_unknown_figure_gives_a_short_line_not_every_figure(tmp_path):
    text = sweep_text(GRID) + "figures: [profit, nonsense]\n"
    with pytest.raises(ScenarioError) as info:
        load_sweep(write(tmp_path, text))
    message = str(info.value)
    assert "figures.1: expected one of 'annual_churn'" in message and "cxsim schema" in message
    assert "\n" not in message and len(message) < 300 + len(str(tmp_path))


def test_a_number_of_thousands_of_digits_is_shown_short(tmp_path):
    text = sweep_text(BOUNDS, "design: sobol\npoints: " + "9" * 4000 + "\n")
    with pytest.raises(ScenarioError, match=r"found 99999999999999999999\.\.\. \(4000 digits\)$"):
        load_sweep(write(tmp_path, text))
