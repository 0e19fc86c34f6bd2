"""What a run finds: break-even cost, the precision rule, intervals kept within their bounds,
the report page of a real run, the printout in real units, and resume refusing foreign parts."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from cxsim.cli import main
from cxsim.experiment import Precision, run_experiment
from cxsim.findings import headline
from cxsim.metrics import FIGURES, show, summarise

from .browser import open_page, visible_size
from .conftest import ROOT, only_folder, small

REACTIVE, PROACTIVE = ROOT / "scenarios/reactive.yaml", ROOT / "scenarios/proactive.yaml"
TINY = ["--set", "population.customers=60", "--set", "population.prospects=140",
        "--set", "time.horizon=12"]  # fmt: skip


def _row(table, label: str) -> list:
    (row,) = [r for r in table.rows if r[0] == label]
    return row


# --- 4. break-even where it is known ----------------------------------------------------------


def test_break_even_when_only_the_fixed_programme_cost_differs():
    """B is A plus a fixed programme cost F per step and nothing else: customers never see a
    cost, so every run is the same and B's extra profit is -F x horizon (base._record charges
    fixed / represents per simulated step, scaled back by represents, on steps 1..horizon). The
    break-even total is then what A's programme already costs; ROI is exactly -1 and it never
    pays back."""
    F = 1234.5
    a = small(PROACTIVE, name="a")
    b = small(PROACTIVE, name="b", strategy__costs__fixed=a.strategy.costs.fixed + F)
    x = run_experiment([a, b], 3, seed=7, workers=1, progress=False)
    horizon = a.time.horizon
    sa = x.summaries[x.summaries["scenario"] == "a"].reset_index(drop=True)
    sb = x.summaries[x.summaries["scenario"] == "b"].reset_index(drop=True)
    for col in ("final_customers", "revenue", "total_churn", "cost_support", "customer_steps"):
        np.testing.assert_array_equal(sa[col], sb[col], err_msg=col)
    p = x.paired()
    assert len(p) == 3
    size = float(sa["revenue"].abs().max())
    np.testing.assert_allclose(p["cost_programme"], F * horizon, rtol=1e-12)
    np.testing.assert_allclose(p["profit"], -F * horizon, rtol=0, atol=1e-9 * size)
    assert (sa["cost_programme"] > 0).all()  # A's own programme: fixed, per customer, outreach
    np.testing.assert_allclose(p["break_even_cost"], sa["cost_programme"], rtol=0,
                               atol=1e-9 * size)  # fmt: skip
    served = sb["customer_steps"] * b.population.represents
    np.testing.assert_allclose(p["break_even_per_customer_step"],
                               sa["cost_programme"] / served, rtol=1e-9)  # fmt: skip
    np.testing.assert_allclose(p["roi"], -1.0, rtol=1e-9)
    assert p["payback_step"].isna().all()
    table = headline(x)
    assert _row(table, "payback")[-1] == "not within the horizon (0 of 3 runs)"
    assert _row(table, "return on the extra programme cost")[-1].startswith("-1.00")


def test_no_roi_or_payback_without_extra_programme_cost():
    a = small(REACTIVE, name="a")
    b = small(REACTIVE, name="b", strategy__quality_uplift=0.3)  # better, and free
    x = run_experiment([a, b], 3, seed=7, workers=1, progress=False)
    p = x.paired()
    assert (p["cost_programme"] == 0).all() and p["roi"].isna().all()
    assert p["payback_step"].isna().all()
    np.testing.assert_allclose(p["break_even_cost"], p["profit"], rtol=1e-12)
    table = headline(x)
    for label in ("return on the extra programme cost", "payback"):
        assert _row(table, label)[-1] == "no extra programme cost"


# --- 5. the precision rule --------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair_specs():
    return [small(REACTIVE), small(PROACTIVE)]


@pytest.fixture(scope="module")
def plain12(pair_specs):
    return run_experiment(pair_specs, 12, seed=3, workers=1, progress=False)


BATCHES = [3, 4, 6, 9, 12]  # one worker: n + max(1, n // 2), capped at the maximum


def _precise(specs, target):
    heard = []
    x = run_experiment(specs, 3, seed=3, workers=1, progress=False,
                       precision=Precision("annual_churn", target, minimum=3, maximum=12),
                       on_batch=lambda n, w: heard.append((n, w)))  # fmt: skip
    return x, heard


def test_precision_stops_at_the_minimum_or_the_maximum(pair_specs, plain12):
    x, heard = _precise(pair_specs, 1.0)  # met at once
    assert [n for n, _ in heard] == [3] and len(x.seeds) == 3
    x, heard = _precise(pair_specs, 1e-12)  # never met
    assert [n for n, _ in heard] == BATCHES and len(x.seeds) == 12
    assert all(w[0] > 1e-12 for _, w in heard)
    pd.testing.assert_frame_equal(x.summaries, plain12.summaries)
    pd.testing.assert_frame_equal(x.steps, plain12.steps)


def test_precision_stops_at_the_first_batch_that_meets_the_target(pair_specs, plain12):
    rule = Precision("annual_churn", 1.0)
    width = {n: rule.half_widths(plain12.summaries[plain12.summaries["replication"] < n],
                                 plain12.names)[0] for n in BATCHES}  # fmt: skip
    # the first batch (after the minimum) narrower than every batch before it
    stop = next(n for n in BATCHES[1:] if width[n] < min(width[m] for m in BATCHES if m < n))
    target = (width[stop] + min(width[m] for m in BATCHES if m < stop)) / 2
    x, heard = _precise(pair_specs, target)
    assert heard[-1][0] == stop and len(x.seeds) == stop
    assert heard[-1][1][0] <= target
    assert all(w[0] > target for _, w in heard[:-1]) and len(heard) >= 2
    for n, w in heard:
        assert w[0] == pytest.approx(width[n], rel=1e-12)
    plain = run_experiment(pair_specs, stop, seed=3, workers=1, progress=False)
    assert x.seeds == plain.seeds == plain12.seeds[:stop]  # seeds extend, same for both
    pd.testing.assert_frame_equal(x.summaries, plain.summaries)
    pd.testing.assert_frame_equal(x.losses, plain.losses)
    pd.testing.assert_frame_equal(x.paired(), plain.paired())


def test_cli_precision_prints_how_many_replications_it_took(tmp_path, capsys):
    code = main(["run", str(REACTIVE), str(PROACTIVE), "-r", "2", "--max-replications", "4",
                 "--precision", "annual_churn=0.01", "--workers", "1", "--out", str(tmp_path),
                 *TINY])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    manifest = json.loads((only_folder(tmp_path) / "manifest.json").read_text())
    n = manifest["replications"]
    assert 2 <= n <= 4
    assert f"Precision: {n} replications for a 95% CI half-width of annual_churn at most 0.01" in (
        captured.out
    )
    assert manifest["precision"] == {"figure": "annual_churn", "half_width": 0.01,
                                     "minimum": 2, "maximum": 4}  # fmt: skip
    assert "precision: 2 replications" in captured.err


@pytest.mark.parametrize(
    "value, says",
    [("annual_churn=abc", "half-width > 0"), ("annual_churn=-1", "half-width > 0"),
     ("annual_churn=inf", "half-width > 0"), ("no_such_figure=0.1", "FIGURE one of"),
     ("roi=0.1", "FIGURE one of"), ("annual_churn", "FIGURE=HALF_WIDTH")],
)  # fmt: skip
def test_a_bad_precision_exits_2_with_one_line(tmp_path, capsys, value, says):
    code = main(["run", str(REACTIVE), "--precision", value, "--out", str(tmp_path), *TINY])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cxsim: error: --precision") and says in err
    assert not any(tmp_path.iterdir())  # refused before a results folder is made


# --- 6. intervals within their bounds ---------------------------------------------------------


def test_payback_and_loss_intervals_stay_within_bounds():
    cheap = {"strategy__costs__fixed": 1.0, "strategy__outreach": 0.0,
             "strategy__costs__per_customer": 0.0}  # fmt: skip
    horizon = small(REACTIVE).time.horizon
    for seed in range(6, 40):  # a case whose raw interval leaves 0..horizon on both sides
        x = run_experiment([small(REACTIVE), small(PROACTIVE, **cheap)], 4, seed=seed,
                           workers=1, progress=False)  # fmt: skip
        raw = summarise(x.paired(), levels=False).set_index("figure").loc["payback_step"]
        if raw["low"] < 0 and raw["high"] > horizon:
            break
    assert raw["low"] < 0 and raw["high"] > horizon  # so the bounds have something to do
    pay = x.differences().set_index("figure").loc["payback_step"]
    assert 0 <= pay["low"] <= pay["mean"] <= pay["high"] <= horizon
    assert (pay["low"], pay["high"]) == (0, horizon)

    table = x.loss_breakdown()
    levels = table[table["scenario"].isin(x.names)]
    for v in ("churn", "lost_revenue_horizon", "lost_revenue_lifetime"):
        assert (levels[f"{v}_low"] >= 0).all(), v
        assert (levels[f"{v}_low"] <= levels[v]).all() and (levels[v] <= levels[f"{v}_high"]).all()
    # some part was lost in only some runs: its unbounded interval would reach below 0
    losses = x.losses[x.losses["cause"] != "baseline"]
    per_part = losses.groupby(["scenario", "cause"])["lost_revenue_horizon"]
    assert ((per_part.min() == 0) & (per_part.max() > 0)).any()
    # the recovery is a difference: it may be negative
    recover = table[~table["scenario"].isin(x.names)]
    assert (recover["lost_revenue_horizon_low"] < 0).any()


# --- 7. the page and the printout of a real run -----------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """The shipped pair at 250 real customers per simulated one: (folder, printout)."""
    out, printed = tmp_path_factory.mktemp("real"), io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["run", str(REACTIVE), str(PROACTIVE), "-r", "2", "--workers", "1",
                     "--out", str(out), *TINY, "--set", "population.represents=250"])  # fmt: skip
    assert code == 0
    return only_folder(out), printed.getvalue()


def test_the_report_page_of_a_real_run_in_chromium(real_run):
    real_run, _ = real_run
    manifest = json.loads((real_run / "manifest.json").read_text())
    charts = manifest["charts"]
    assert len(charts) >= 9 and all(c.endswith(".png") for c in charts)
    with open_page((real_run / "report.html").as_uri()) as (page, problems):
        sizes = visible_size(page, "img")
        assert len(sizes) == len(charts)
        assert all(w > 0 and h > 0 for w, h in sizes), sizes
        text = page.inner_text("body")
        assert problems == []
    for f in FIGURES:
        if f.headline:
            assert f.label in text, f.label
    for label in ("break-even programme cost, in total", "payback"):
        assert label in text


def test_the_printout_shows_real_customers(real_run):
    folder, out = real_run
    figures = pd.read_csv(folder / "figures.csv").set_index(["scenario", "figure"])
    summary = pd.read_csv(folder / "summary.csv")
    assert summary["final_customers"].max() <= 200  # the table: simulated people
    (line,) = [ln for ln in out.splitlines() if ln.startswith("customers at the end")]
    for name in ("reactive", "proactive"):
        final = figures.loc[(name, "final_customers"), "mean"]
        spec = small(REACTIVE, population__represents=250)
        assert show("final_customers", final, spec) == f"{final * 250:,.0f}"
        assert f"{final * 250:,.0f} [" in line, (name, line)
    assert "for 250 real customers per simulated one" in out


# --- 8. resume refuses foreign or damaged parts -----------------------------------------------


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """Two results folders stopped after two runs: one to resume, one with another seed."""
    import cxsim.experiment as experiment

    real = experiment._task
    base = tmp_path_factory.mktemp("cut")
    folders = {}
    try:
        for key, extra in (("ours", []), ("other_seed", ["--seed", "99"]),
                           ("other_scenario", ["--set", "strategy.detection=0.9"])):  # fmt: skip
            calls = []

            def stop_after_two(task, calls=calls):
                if len(calls) == 2:
                    raise KeyboardInterrupt
                calls.append(task)
                return real(task)

            experiment._task = stop_after_two
            args = ["run", str(REACTIVE), str(PROACTIVE), "-r", "2", "--workers", "1",
                    "--out", str(base / key), *TINY, *extra]  # fmt: skip
            assert main(args) == 130
            folders[key] = only_folder(base / key)
    finally:
        experiment._task = real
    return folders


def _damage(how, folder, interrupted):
    parts = folder / "parts"
    done = sorted(p for p in parts.iterdir() if p.is_dir())
    assert [p.name for p in done] == ["s000-r00000", "s000-r00001"]
    if how in ("other_seed", "other_scenario"):
        # the same slot filled by another run: same scenario and replication, but another
        # root seed, or the same seed and another scenario
        target = done[0]
        shutil.rmtree(target)
        shutil.copytree(interrupted[how] / "parts" / target.name, target)
        return target
    target = done[1]
    if how == "truncated_steps":
        data = (target / "steps.parquet").read_bytes()
        (target / "steps.parquet").write_bytes(data[: len(data) // 2])
    elif how == "garbage_steps":
        (target / "steps.parquet").write_bytes(b"not a parquet file\x00\x01")
    elif how == "truncated_meta":
        text = (target / "meta.json").read_text()
        (target / "meta.json").write_text(text[: len(text) // 2])
    elif how == "garbage_meta":
        (target / "meta.json").write_bytes(b"\xff\xfe garbage")
    elif how == "meta_not_a_record":
        (target / "meta.json").write_text("[1, 2, 3]")
    elif how == "missing_losses":
        (target / "losses.parquet").unlink()
    return target


@pytest.mark.parametrize(
    "how, says",
    [("other_seed", "seed differ"), ("other_scenario", "scenario_hash"),
     ("truncated_steps", "damaged part"), ("garbage_steps", "damaged part"),
     ("truncated_meta", "damaged part"), ("garbage_meta", "damaged part"),
     ("meta_not_a_record", "damaged part"), ("missing_losses", "damaged part")],
)  # fmt: skip
def test_resume_refuses_a_foreign_or_damaged_part(tmp_path, capsys, interrupted, how, says):
    folder = tmp_path / "run"
    shutil.copytree(interrupted["ours"], folder)
    bad = _damage(how, folder, interrupted)
    capsys.readouterr()
    assert main(["run", "--resume", str(folder), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"cxsim: error: {bad}:") and says in err, err
    assert not (folder / "manifest.json").exists()
