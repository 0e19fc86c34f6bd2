"""The command line end to end, on small populations."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cxsim.cli import main
from cxsim.experiment import run_once
from cxsim.loading import validate

from .conftest import ROOT, only_folder

SMALL = [
    "--set",
    "population.customers=60",
    "--set",
    "population.prospects=140",
    "--set",
    "time.horizon=12",
]


def _cxsim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cxsim.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_run_compares_the_shipped_scenarios_and_writes_a_results_folder(tmp_path, capsys):
    code = main(
        [
            "run",
            str(ROOT / "scenarios/reactive.yaml"),
            str(ROOT / "scenarios/proactive.yaml"),
            "-r",
            "3",
            "--workers",
            "1",
            "--out",
            str(tmp_path),
            *SMALL,
        ]
    )
    assert code == 0
    out = only_folder(tmp_path)
    for name in [
        "steps.csv",
        "summary.csv",
        "figures.csv",
        "differences.csv",
        "customers.parquet",
        "losses.parquet",
        "lost_revenue.csv",
        "manifest.json",
        "report.html",
        "customers.png",
        "new_customers.png",
        "churn_by_cause.png",
        "nps_csat.png",
        "revenue_costs.png",
        "lost_revenue.png",
        "lost_revenue_by_touchpoint.png",
        "net_benefit.png",
        "cohorts.csv",
        "cohort_retention.png",
    ]:
        assert (out / name).stat().st_size > 0, name
    steps = pd.read_csv(out / "steps.csv")
    assert set(steps["scenario"]) == {"reactive", "proactive"}
    assert len(steps) == 2 * 3 * 13
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 6 and {"annual_churn", "nps", "csat"} <= set(summary.columns)
    # Common random numbers: both scenarios ran on the same seeds.
    seeds = summary.groupby("scenario")["seed"].apply(list)
    assert seeds["reactive"] == seeds["proactive"]
    printed = capsys.readouterr().out
    assert "proactive - reactive (paired)" in printed and "annual churn" in printed
    assert "return on the extra programme cost" in printed
    assert "break-even programme cost" in printed and "by touchpoint" in printed


def test_a_closed_output_pipe_ends_quietly_and_keeps_the_results(tmp_path):
    """`cxsim run ... | head`: the reader goes away before the figures are printed."""
    args = ["run", str(ROOT / "scenarios/reactive.yaml"), "-r", "1", "--out", str(tmp_path)]
    command = [sys.executable, "-m", "cxsim.cli", *args, *SMALL]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as cxsim:
        cxsim.stdout.close()  # nobody will read what it prints
        stderr = cxsim.stderr.read().decode()
        assert cxsim.wait(timeout=300) == 141
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert (only_folder(tmp_path) / "report.html").exists()


def test_a_run_never_overwrites_an_earlier_one(tmp_path):
    args = ["run", str(ROOT / "scenarios/reactive.yaml"), "-r", "1", "--out", str(tmp_path), *SMALL]
    assert main(args) == 0
    assert main(args) == 0
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2


def test_a_run_is_reproducible_from_its_manifest(tmp_path):
    assert (
        main(
            [
                "run",
                str(ROOT / "scenarios/proactive.yaml"),
                "-r",
                "2",
                "--seed",
                "11",
                "--out",
                str(tmp_path),
                *SMALL,
            ]
        )
        == 0
    )
    out = only_folder(tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["root_seed"] == 11 and len(manifest["seeds"]) == 2
    assert manifest["versions"]["mesa"] and manifest["wall_seconds"] > 0
    spec = validate(manifest["scenarios"][0]["scenario"])
    steps = pd.read_csv(out / "steps.csv")
    for replication, seed in enumerate(manifest["seeds"]):
        again = run_once(spec, seed, manifest["engine"]).steps
        saved = steps[steps["replication"] == replication].reset_index(drop=True)
        for col in again.columns:
            assert np.allclose(saved[col], again[col], rtol=1e-12, equal_nan=True), col


def test_results_do_not_depend_on_the_number_of_workers(tmp_path):
    base = ["run", str(ROOT / "scenarios/reactive.yaml"), "-r", "3", *SMALL]
    assert main([*base, "--workers", "1", "--out", str(tmp_path / "one")]) == 0
    assert main([*base, "--workers", "2", "--out", str(tmp_path / "two")]) == 0
    # Every file byte for byte (tables, charts, the report page but for the time and command it
    # records), as reliability/determinism.py compares them; only the manifest is left out.
    spec = importlib.util.spec_from_file_location(
        "determinism", ROOT / "reliability" / "determinism.py"
    )
    determinism = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(determinism)
    one = determinism.contents(only_folder(tmp_path / "one"))
    two = determinism.contents(only_folder(tmp_path / "two"))
    assert {"steps.csv", "customers.parquet", "report.html", "nps_csat.png"} <= set(one)
    assert set(one) == set(two)
    for name, data in one.items():
        assert data == two[name], name


def test_agents_engine_runs_from_the_command_line(tmp_path):
    assert (
        main(
            [
                "run",
                str(ROOT / "scenarios/reactive.yaml"),
                "-r",
                "1",
                "--engine",
                "agents",
                "--out",
                str(tmp_path),
                *SMALL,
            ]
        )
        == 0
    )
    manifest = json.loads((only_folder(tmp_path) / "manifest.json").read_text())
    assert manifest["engine"] == "agents"


def test_misspelt_key_gives_one_line_naming_it_and_exit_status_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstrategy:\n  detecton: 0.5\n")
    done = _cxsim("run", str(bad))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{bad}:3" in lines[0] and "strategy.detecton" in lines[0]
    assert "did you mean 'detection'" in lines[0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("strategy:\n  detection: 1.5\n", ["strategy.detection", "<= 1", "1.5", ":2"]),
        ("population:\n  customers: many\n", ["population.customers", "whole number", "many"]),
        ("", ["empty"]),
        ("a: [1, 2\n", ["not valid YAML"]),
        ("network:\n  kind: hexagonal\n", ["network.kind", "watts_strogatz", "hexagonal"]),
    ],
)
def test_bad_values_are_reported_without_a_traceback(tmp_path, content, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    done = _cxsim("validate", str(bad))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    for text in expected:
        assert text in done.stderr


def test_missing_file_and_bad_override_exit_2(tmp_path):
    done = _cxsim("run", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2 and "no such file" in done.stderr
    done = _cxsim("run", str(ROOT / "scenarios/reactive.yaml"), "--set", "strategy.detection=2")
    assert done.returncode == 2 and "(from --set)" in done.stderr
    done = _cxsim("run", str(ROOT / "scenarios/reactive.yaml"), "--replications", "0")
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_validate_and_schema(tmp_path):
    done = _cxsim("validate", str(ROOT / "scenarios/reactive.yaml"))
    assert done.returncode == 0 and "ok" in done.stdout
    schema = json.loads(_cxsim("schema").stdout)
    assert "strategy" in schema["properties"]
    strategy = schema["$defs"]["Strategy"]["properties"]
    assert "share 0-1" in strategy["detection"]["description"]


def test_calibrate_fits_the_survey_in_a_scenario(tmp_path):
    done = _cxsim(
        "calibrate",
        str(ROOT / "scenarios/reactive.yaml"),
        "--set",
        "behaviour.walk_away.tolerance_sd=0",
    )
    assert done.returncode == 0, done.stderr
    assert "a = -1.5856" in done.stdout and "b = 0.4703" in done.stdout
    own = tmp_path / "own.yaml"
    own.write_text(
        yaml.safe_dump(
            {
                "behaviour": {
                    "walk_away": {"survey": {"after_one": 0.25, "after_several": 0.7, "several": 4}}
                }
            }
        )
    )
    done = _cxsim("calibrate", str(own))
    assert done.returncode == 0
    assert "left by 1 = 0.2500" in done.stdout and "left by 4 = 0.7000" in done.stdout


def test_shipped_scenarios_differ_only_in_their_strategy():
    from cxsim.loading import load_scenario

    reactive = load_scenario(ROOT / "scenarios/reactive.yaml")
    proactive = load_scenario(ROOT / "scenarios/proactive.yaml")
    for section in [
        "time",
        "population",
        "network",
        "touchpoints",
        "behaviour",
        "economics",
        "run",
    ]:
        assert getattr(reactive, section) == getattr(proactive, section), section
    assert reactive.strategy != proactive.strategy


def test_an_interrupted_run_resumes_where_it_stopped_with_identical_results(
    tmp_path, monkeypatch, capsys
):
    import cxsim.experiment as experiment

    args = ["run", str(ROOT / "scenarios/reactive.yaml"), str(ROOT / "scenarios/proactive.yaml"),
            "-r", "3", "--workers", "1", *SMALL]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    whole = only_folder(tmp_path / "whole")

    real, calls = experiment._task, []

    def stop_after_four(task):
        if len(calls) == 4:
            raise KeyboardInterrupt
        calls.append(task)
        return real(task)

    monkeypatch.setattr(experiment, "_task", stop_after_four)
    assert main([*args, "--out", str(tmp_path / "cut")]) == 130
    cut = only_folder(tmp_path / "cut")
    assert (cut / "plan.json").exists() and len(list((cut / "parts").glob("s*-r*"))) == 4
    err = capsys.readouterr().err
    assert "4 of 6 runs finished and are kept" in err and f"cxsim run --resume {cut}" in err
    assert not (cut / "manifest.json").exists()

    monkeypatch.setattr(experiment, "_task", lambda task: calls.append(task) or real(task))
    assert main(["run", "--resume", str(cut), "--workers", "1"]) == 0
    assert len(calls) == 6  # four before the interruption, the two missing ones after
    assert not (cut / "plan.json").exists() and not (cut / "parts").exists()
    for name in ["steps.csv", "summary.csv", "lost_revenue.csv", "differences.csv"]:
        pd.testing.assert_frame_equal(pd.read_csv(whole / name), pd.read_csv(cut / name))
    assert main(["run", "--resume", str(cut)]) == 2  # complete: nothing to resume


def test_the_scenario_reference_in_docs_is_up_to_date():
    from cxsim.reference import markdown

    assert (ROOT / "docs" / "SCENARIO.md").read_text(encoding="utf-8") == markdown(), (
        "docs/SCENARIO.md is stale: run `cxsim schema --markdown > docs/SCENARIO.md`"
    )
    scenario_part, sweep_part = markdown().split("## Sweep files")
    fields = [line for line in scenario_part.splitlines() if line.startswith("| `")]
    settings = [line for line in sweep_part.splitlines() if line.startswith("| `")]
    assert len(settings) > 15 and not [line for line in settings if line.endswith("|  |")]
    assert len(fields) > 60 and all(line.count("|") == 4 for line in fields)
    assert not [line for line in fields if line.endswith("|  |")], "a field has no description"
    no_unit = [line for line in fields if not line.rstrip(" |").endswith(")")]
    assert not no_unit, f"a description does not end with its unit: {no_unit}"


def test_run_refuses_what_it_cannot_do_cleanly(tmp_path, capsys):
    reactive = str(ROOT / "scenarios/reactive.yaml")
    short = tmp_path / "short.yaml"
    short.write_text("name: short\ntime: {horizon: 30}\n")
    assert main(["run", reactive, str(short), "--out", str(tmp_path)]) == 2
    assert "same time section" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["run", reactive, "--out", str(blocker), *SMALL]) == 2
    assert "cannot create a results folder" in capsys.readouterr().err
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "plan.json").write_text("{oops")
    assert main(["run", "--resume", str(damaged)]) == 2
    assert "damaged plan" in capsys.readouterr().err
    assert main(["run", "--resume", str(damaged), "--seed", "3"]) == 2
    assert "drop --seed" in capsys.readouterr().err
    assert main(["run"]) == 2


def test_a_sweep_file_where_a_scenario_goes_and_the_other_way_round_get_one_line(tmp_path, capsys):
    sweep = str(ROOT / "scenarios/sweep_detection_vs_resolution.yaml")
    reactive = str(ROOT / "scenarios/reactive.yaml")
    variant = str(ROOT / "scenarios/telecom_proactive.yaml")  # a variant: base + differences
    for args in (["run", reactive, sweep], ["validate", sweep], ["calibrate", sweep]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err == (
            f"cxsim: error: {sweep}:15: scenarios lists the scenarios of a sweep, so this is a "
            f"sweep file, not a scenario; run it with: cxsim sweep {sweep}\n"
        ), args
    assert main(["sweep", reactive]) == 2
    assert capsys.readouterr().err == (
        f"cxsim: error: {reactive}:9: time is a key of scenario files, so this is a scenario "
        f"file, not a sweep; run it with: cxsim run {reactive}\n"
    )
    assert main(["sweep", variant]) == 2
    assert f"{variant}:5: base is a key of scenario files" in capsys.readouterr().err
    spaced = tmp_path / "my reactive.yaml"  # quoted in the command, the line kept whole
    spaced.write_text(Path(reactive).read_text())
    assert main(["sweep", str(spaced)]) == 2
    assert capsys.readouterr().err.endswith(f"run it with: cxsim run '{spaced}'\n")
    on_a_sweep = tmp_path / "variant.yaml"  # a variant whose base is a sweep file
    on_a_sweep.write_text(f"base: {sweep}\nstrategy: {{outreach: 0.1}}\n")
    assert main(["validate", str(on_a_sweep)]) == 2
    assert capsys.readouterr().err == (
        f"cxsim: error: {on_a_sweep}:1: base: {sweep} is a sweep file, not a scenario to "
        "start from\n"
    )


def test_a_misspelt_key_is_still_an_unknown_key_not_the_other_kind(tmp_path, capsys):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("name: s\nscenario: [a.yaml]\n")  # one unknown key: said as such
    assert main(["validate", str(scenario)]) == 2
    assert "unknown key 'scenario'" in capsys.readouterr().err
    sweep = tmp_path / "sweep.yaml"  # a sweep's setting and a scenario's section: unknown key
    sweep.write_text("scenarioz: [a.yaml]\nparameters: {}\ntime: {horizon: 3}\n")
    assert main(["sweep", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'scenarioz' (did you mean 'scenarios'" in err
    assert "this is a scenario file" not in err


def test_scenario_names_cannot_escape_the_results_folder(tmp_path):
    out = tmp_path / "results"
    assert main(["run", str(ROOT / "scenarios/reactive.yaml"), "-r", "1", "--workers", "1",
                 "--out", str(out), *SMALL, "--set", "name=../../x y"]) == 0  # fmt: skip
    (folder,) = out.iterdir()
    assert folder.name.startswith("x-y-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_numbers_in_yaml_1_2_form_are_read_as_numbers(tmp_path):
    from cxsim.loading import load_scenario

    path = tmp_path / "big.yaml"
    path.write_text("population: {represents: 1e3}\n")
    assert load_scenario(path, ["strategy.costs.fixed=2.5e4"]).population.represents == 1000.0


def test_the_command_line_starts_without_loading_the_model():
    """`cxsim run` starts the workers' fork server before it loads the model's libraries itself
    (they load there, alongside); importing the command line loads none of them."""
    heavy = ["mesa", "matplotlib", "scipy", "pandas", "numpy", "pydantic", "yaml",
             "cxsim.engines", "cxsim.scenario"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", f"import sys, cxsim.cli; print([m for m in {heavy!r} "
         "if m in sys.modules])"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "[]"


def test_the_engine_names_are_the_engines():
    from cxsim.engines import ENGINES
    from cxsim.scenario import ENGINE_NAMES

    assert sorted(ENGINES) == sorted(ENGINE_NAMES)
