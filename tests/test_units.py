"""Time units (any step length) and memory guards.

The statistical checks run each scenario with weekly and with monthly steps over the same three
calendar years, on a small population, and compare the replications' means with Welch's t-test.
"""

from __future__ import annotations

import math
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from cxsim import guards, network, units
from cxsim.cli import main
from cxsim.engines.vector import VectorModel
from cxsim.loading import ScenarioError, load_scenario, parse_scenario, scenario_yaml
from cxsim.metrics import run_summary
from cxsim.scenario import Network, NetworkKind

from .conftest import ROOT

REACTIVE = ROOT / "scenarios" / "reactive.yaml"
PROACTIVE = ROOT / "scenarios" / "proactive.yaml"


def error(text: str, overrides=()) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml", overrides)
    return str(info.value)


# --- conversions ---------------------------------------------------------------------------


def test_defaults_are_per_week_and_convert_to_the_step() -> None:
    week = parse_scenario("{}")
    month = parse_scenario("time: {step: month}")
    assert month.time.steps_per_year == 12 and week.time.steps_per_year == 52
    assert month.time.horizon == 36  # 156 weeks = 3 years
    assert month.behaviour.memory_half_life == pytest.approx(13 * 12 / 52)
    k = 52 / 12
    # Chances keep the chance per year; money per step scales with the step.
    assert 1 - (1 - month.strategy.support_contact) == pytest.approx(1 - 0.6**k)
    assert month.economics.arpu.mean == pytest.approx(12 * k)
    assert month.behaviour.win_back.wait == 6 and month.behaviour.reviews.window == 6
    # Baseline hazard: alpha kept, mean scaled by k.
    b = month.behaviour.baseline_churn
    assert b.alpha == 2 and b.alpha / (b.alpha + b.beta) == pytest.approx(k * 2 / 1502)
    # A touchpoint's visit rate stays per week and good / bad per visit (a month is simulated
    # as its weeks; a day draws 1/7 of a week's visit chance).
    product = dict(zip(month.touchpoint_names, month.touchpoints, strict=True))["product"]
    assert (product.visit_rate, product.good, product.bad) == (1.0, 0.08, 0.001)
    assert units.week_share(12) == 1.0 and units.week_share(52) == 1.0
    assert units.week_share(365) == pytest.approx(52 / 365)
    monthly = parse_scenario("time: {step: month}\ntouchpoints: [{name: shop, stages: [active], "
                             "visit_rate: 0.5 per month}, {name: app, stages: [active], "
                             "visit_rate: 0.5}]")  # fmt: skip
    assert monthly.touchpoints[0].visit_rate == pytest.approx(1 - 0.5 ** (12 / 52))
    assert monthly.touchpoints[1].visit_rate == 0.5  # a bare visit rate is per week


def test_positive_whole_durations_never_round_to_zero() -> None:
    spec = parse_scenario("time: {step: year}\nbehaviour: {onboarding_steps: 4 weeks}")
    assert spec.behaviour.onboarding_steps == 1  # 4/52 of a year rounds up to one step
    assert parse_scenario("behaviour: {win_back: {wait: 0}}").behaviour.win_back.wait == 0


def test_unit_strings_of_each_kind() -> None:
    spec = parse_scenario(
        "behaviour:\n"
        "  memory_half_life: 3 months\n"
        "  problem_fade: 5% per month\n"
        "  reviews: {window: 1 year}\n"
        "strategy: {outreach: 0.01 per day}\n"
        "economics: {arpu: {mean: 52 per year}}\n"
        "touchpoints:\n"
        "  - {name: shop, stages: [active], visit_rate: 1 per week, problem_rate: 0.1 / month}\n"
    )
    assert spec.behaviour.memory_half_life == pytest.approx(3 * 52 / 12)
    assert spec.behaviour.problem_fade == pytest.approx(1 - 0.95 ** (12 / 52))
    assert spec.behaviour.reviews.window == 52
    assert spec.strategy.outreach == pytest.approx(1 - 0.99 ** (365 / 52))
    assert spec.economics.arpu.mean == pytest.approx(1.0)
    assert spec.touchpoints[0].problem_rate == pytest.approx(1 - 0.9 ** (12 / 52))


@pytest.mark.parametrize(
    ("text", "line", "field", "expected", "found"),
    [
        ("behaviour:\n  memory_half_life: 13 wks\n", 2, "behaviour.memory_half_life",
         "a duration such as '13 weeks'", "'13 wks'"),
        ("strategy:\n  name: x\n  outreach: 5 percent\n", 3, "strategy.outreach",
         "a chance such as", "'5 percent'"),
        ("economics:\n  arpu:\n    mean: lots per month\n", 3, "economics.arpu.mean",
         "an amount such as '50 per month'", "'lots per month'"),
        ("time:\n  step: fortnight\n", 2, "time.step", "a unit of time", "'fortnight'"),
        ("time:\n  step: month\n  steps_per_year: 52\n", 3, "time.steps_per_year",
         "expected 12 for step 'month'", "52"),
        ("time:\n  steps_per_year: 26\n", 2, "time.steps_per_year",
         "steps per year of a unit", "26"),
    ],
)  # fmt: skip
def test_bad_units_and_numbers_name_file_line_and_field(text, line, field, expected, found):
    message = error(text)
    assert "\n" not in message
    assert message.startswith(f"s.yaml:{line}: {field}: expected ")
    assert expected in message and message.endswith(found) or f"found {found}" in message


def test_out_of_range_values_are_reported_as_written() -> None:
    # Not converted first: the message shows the user's number, not a converted one.
    assert "found 1.5" in error("time: {step: month}\nstrategy: {outreach: 1.5}")
    assert "found 1.5" in error("strategy: {outreach: 150% per month}")


def test_steps_per_year_alone_sets_the_step() -> None:
    spec = parse_scenario("time: {steps_per_year: 12}")
    assert spec.time.step == "month" and spec.time.horizon == 36


def test_set_time_step_restates_the_files_values() -> None:
    week = load_scenario(PROACTIVE)
    month = load_scenario(PROACTIVE, ["time.step=month"])
    assert month.time.horizon == 36 and month.time.steps_per_year == 12
    assert month.strategy.costs.fixed == pytest.approx(week.strategy.costs.fixed * 52 / 12)
    # A value given with --set is read in the final step.
    spec = load_scenario(REACTIVE, ["time.step=month", "behaviour.memory_half_life=3"])
    assert spec.behaviour.memory_half_life == 3


def test_resolved_round_trip(tmp_path: Path, capsys) -> None:
    assert main(["validate", str(PROACTIVE), "--set", "time.step=month", "--resolved"]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "monthly.yaml"
    path.write_text(text)
    again = load_scenario(path)
    assert again == load_scenario(PROACTIVE, ["time.step=month"])
    assert scenario_yaml(again) == text.split("\n", 1)[1]


def test_convert_rules() -> None:
    assert units.convert(0.5, units.Kind.CHANCE, 2) == pytest.approx(0.75)
    assert units.convert(13, units.Kind.WHOLE_DURATION, 52 / 12) == 3
    assert units.convert(10, units.Kind.MONEY, 0.5) == 5


# --- monthly vs weekly ----------------------------------------------------------------------

FIGURES = ("annual_churn", "nps", "revenue")


def _figures(path: Path, step: str, overrides: dict, runs: int) -> np.ndarray:
    spec = load_scenario(path, {**overrides, "time.step": step})
    rows = []
    for r in range(runs):
        summary = run_summary(VectorModel(spec, rng=1000 + r).run().metrics_frame(), spec)
        rows.append([summary[f] for f in FIGURES])
    return np.array(rows)


def _compare(path: Path, overrides: dict, runs: int) -> dict[str, tuple[float, float, float]]:
    """Per figure: (weekly mean, monthly mean, Welch p-value)."""
    week = _figures(path, "week", overrides, runs)
    month = _figures(path, "month", overrides, runs)
    out = {}
    for i, name in enumerate(FIGURES):
        p = stats.ttest_ind(week[:, i], month[:, i], equal_var=False).pvalue
        out[name] = (week[:, i].mean(), month[:, i].mean(), float(p))
    return out


SMALL = {"population.customers": 400, "population.prospects": 1600}


@pytest.mark.slow
def test_monthly_equals_weekly_where_one_visit_per_step_does_not_bind() -> None:
    """Every conversion except the one-visit cap: baseline hazard, ads, word of mouth, reviews,
    win-back, satisfaction relaxation, money and the horizon. No touchpoint can be good or bad
    and no problems arise, so the cap has nothing to cut. Annual churn and NPS must agree
    (Welch, 1%). Revenue is measured 4-5% lower monthly: a new customer first pays in the step
    after joining and a leaver not in the step they leave, a lag of one step either way, so
    the pin is a bound (under 6%) rather than equality."""
    quiet = {f"touchpoints.{i}.{f}": 0.0 for i in range(9) for f in ("good", "bad")}
    quiet |= {f"touchpoints.{i}.problem_rate": 0.0 for i in range(9)}
    result = _compare(REACTIVE, SMALL | quiet, runs=12)
    for name in ("annual_churn", "nps"):
        week, month, p = result[name]
        assert p > 0.01, f"{name}: weekly {week:.4g}, monthly {month:.4g}, p = {p:.2g}"
    week, month, _ = result["revenue"]
    assert 0.94 * week < month <= week * 1.01


@pytest.mark.slow
@pytest.mark.parametrize("path", [REACTIVE, PROACTIVE], ids=["reactive", "proactive"])
def test_the_shipped_pair_gives_the_same_figures_with_monthly_steps(path: Path) -> None:
    """A month is simulated as its weeks and reported as one step, so annual churn, NPS and
    revenue agree with weekly steps within sampling error (Welch's t-test does not reject at
    1% over 10 replications of 2,000 people)."""
    result = _compare(path, SMALL, runs=10)
    for name, (week, month, p) in result.items():
        assert p > 0.01, f"{name}: weekly {week:.4g}, monthly {month:.4g}, p = {p:.2g}"


# --- guards ----------------------------------------------------------------------------------


def test_a_billion_people_is_refused_quickly_with_the_estimate(capsys) -> None:
    spec = load_scenario(REACTIVE, ["population.prospects=1000000000"])
    started = time.perf_counter()
    with pytest.raises(ScenarioError) as info:
        guards.check(spec, "reactive.yaml")
    assert time.perf_counter() - started < 0.5
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("reactive.yaml: population: 1,000,002,000 people need about ")
    assert "people 80 GB" in message and "available" in message
    code = main(["validate", str(REACTIVE), "--set", "population.prospects=1000000000"])
    assert code == 2 and "people need about" in capsys.readouterr().err


def test_huge_integers_are_refused_not_overflowed() -> None:
    spec = load_scenario(REACTIVE, ["population.prospects=" + "1" + "0" * 30])
    with pytest.raises(ScenarioError, match="people need about"):
        guards.check(spec, "s")


def test_memory_limit_from_the_environment(monkeypatch, capsys) -> None:
    monkeypatch.setenv(guards.LIMIT_ENV, "1M")
    assert guards.available() == 2**20
    assert main(["validate", str(REACTIVE)]) == 2
    assert "this machine has 1.0 MB available" in capsys.readouterr().err
    with pytest.raises(ScenarioError, match="need about"):
        VectorModel(load_scenario(REACTIVE))  # the model refuses too, before building
    monkeypatch.setenv(guards.LIMIT_ENV, "lots")
    with pytest.raises(ScenarioError, match="expected a number of bytes"):
        guards.available()


def test_estimate_scales_with_people_and_contacts() -> None:
    spec = load_scenario(REACTIVE)
    one = guards.estimate(spec)
    assert one.people == spec.population.size * guards.PERSON_BYTES["vector"]
    assert one.network == math.ceil(spec.population.size * 5 * guards.EDGE_BYTES["vector"])
    assert guards.estimate(spec, "agents").people > 10 * one.people


@pytest.mark.parametrize(
    "kind, measured_mb",  # benchmarks/engines.py, 1M x 52: peak less the imports' 157 MB
    [("watts_strogatz", 320 - 157), ("erdos_renyi", 326 - 157), ("barabasi_albert", 322 - 157)],
)
def test_the_estimate_is_not_below_what_a_million_people_were_measured_to_take(kind, measured_mb):
    spec = load_scenario(
        REACTIVE,
        {"population.customers": 200_000, "population.prospects": 800_000, "network.kind": kind,
         "time.horizon": 1},  # the fewest spells: the network has to carry the estimate
    )  # fmt: skip
    assert guards.estimate(spec).total >= measured_mb * 2**20


@pytest.mark.parametrize("kind", ["ring", "watts_strogatz", "erdos_renyi", "barabasi_albert"])
def test_building_a_network_takes_at_most_the_estimate_per_edge(kind, monkeypatch):
    """The per-edge estimate covers the construction's peak (NumPy's memory, traced) for every
    kind; blocks are made small so that their temporaries weigh as little as at scale. (The
    whole-run test above does not check this: people and tables alone exceed those peaks.)"""
    monkeypatch.setattr(network, "BLOCK", 1 << 14)
    spec = Network(kind=NetworkKind(kind), mean_degree=10)
    tracemalloc.start()
    try:
        built = network.contacts(spec, 200_000, np.random.default_rng(1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= guards.EDGE_BYTES["vector"] * len(built.indices) // 2


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("economics.arpu.sd=1e308", "economics.arpu.sd: expected at most 100 x the mean"),
        ("population.represents=1e300", "money over the run"),
    ],
)
def test_overflowing_values_give_one_line(setting: str, field: str, capsys) -> None:
    assert main(["validate", str(REACTIVE), "--set", setting]) == 2
    err = capsys.readouterr().err
    assert field in err and err.count("\n") == 1


def test_a_population_of_thousands_of_digits_is_refused_in_one_line() -> None:
    # Found by fuzzing: 4,300-digit counts passed YAML but broke float() and '{:,}'.
    spec = load_scenario(REACTIVE, ["population.prospects=" + "9" * 4300])
    with pytest.raises(ScenarioError, match=r"population: about 10\^4[23]\d\d people need about"):
        guards.check(spec, "s")
    huge_network = load_scenario(REACTIVE, ["population.prospects=" + "9" * 400,
                                            "network.mean_degree=1e300"])  # fmt: skip
    assert guards.estimate(huge_network).total > 10**30


def test_the_guard_blames_the_horizon_when_the_tables_are_the_bulk() -> None:
    spec = load_scenario(REACTIVE, ["time.horizon=100000", "run.replications=100000"])
    with pytest.raises(
        ScenarioError, match=r"^s: time.horizon x run.replications: 10,000 people need about"
    ):
        guards.check(spec, "s", runs=spec.run.replications)


@pytest.mark.parametrize("step", ["week", "month"])
def test_customer_steps_are_the_customers_at_the_start_of_each_reported_step(step):
    """Monthly steps are simulated as weeks; a month still serves its starting customers once."""
    spec = parse_scenario(
        f"time: {{step: {step}, horizon: 12}}\npopulation: {{customers: 300, prospects: 700}}"
    )
    steps = VectorModel(spec, rng=3).run().metrics_frame()
    assert (steps["customer_steps"].iloc[1:].to_numpy() == steps["customers"].iloc[:-1]).all()
