"""Replications, common random numbers, and the paired comparison of strategies."""

from __future__ import annotations

import numpy as np
import pytest

from cxsim.experiment import replication_seeds, run_experiment
from cxsim.metrics import mean_ci

from .conftest import SHIPPED, small


def test_replication_seeds_are_fixed_by_the_root_and_distinct():
    assert replication_seeds(7, 5) == replication_seeds(7, 5)
    assert replication_seeds(7, 5)[:3] == replication_seeds(7, 3)
    assert len(set(replication_seeds(7, 50))) == 50
    assert replication_seeds(7, 3) != replication_seeds(8, 3)


def test_mean_ci_is_a_student_t_interval():
    m, lo, hi = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5
    assert hi - m == pytest.approx(3.182446 * np.std([1, 2, 3, 4], ddof=1) / 2, rel=1e-5)
    assert mean_ci([5.0]) == (5.0, 5.0, 5.0)


@pytest.fixture(scope="module")
def experiment():
    specs = [small(p, time__horizon=60, population__customers=300, population__prospects=900)
             for p in SHIPPED if p.stem in ("reactive", "proactive")]  # fmt: skip
    order = sorted(specs, key=lambda s: s.name != "reactive")  # reactive first: the baseline
    return run_experiment(order, replications=4, seed=3, workers=1, progress=False)


def test_every_scenario_runs_on_the_same_seeds(experiment):
    seeds = experiment.summaries.groupby("scenario")["seed"].apply(list)
    assert seeds["reactive"] == seeds["proactive"] == experiment.seeds


def test_paired_differences_return_and_payback(experiment):
    paired = experiment.paired().set_index("replication")
    by = experiment.summaries.set_index(["scenario", "replication"])
    for r, row in paired.iterrows():
        d_profit = by.loc[("proactive", r), "profit"] - by.loc[("reactive", r), "profit"]
        d_cost = (
            by.loc[("proactive", r), "cost_programme"] - by.loc[("reactive", r), "cost_programme"]
        )
        assert row["profit"] == pytest.approx(d_profit)
        assert row["roi"] == pytest.approx(d_profit / d_cost)
        # Payback: the first step from which proactive's cumulative profit stays ahead.
        steps = experiment.steps[experiment.steps["replication"] == r]
        profit = {n: g["cumulative_profit"].to_numpy() for n, g in steps.groupby("scenario")}
        lead = profit["proactive"] - profit["reactive"]
        ahead = [t for t in range(len(lead)) if (lead[t:] >= 0).all()]
        expected = ahead[0] if ahead else np.nan
        assert row["payback_step"] == pytest.approx(expected, nan_ok=True)
    figures = experiment.differences().set_index("figure")
    assert figures.loc["annual_churn", "mean"] < 0
    assert figures.loc["annual_churn", "low"] <= figures.loc["annual_churn", "mean"]


def test_t_quantile_is_scipys_student_t_to_the_last_bit():
    from scipy import stats

    from cxsim.metrics import t_quantile

    df = np.arange(1, 3001)
    for q in (0.9, 0.95, 0.975, 0.995):
        assert np.array_equal(t_quantile(q, df), stats.t.ppf(q, df))
        assert t_quantile(q, 7) == stats.t.ppf(q, 7)


def test_derived_tables_are_computed_once_and_not_shared_by_copies(experiment):
    import dataclasses

    for table in ("figures", "paired", "differences", "loss_breakdown", "cohorts"):
        assert getattr(experiment, table)() is getattr(experiment, table)()
    first_two = experiment.summaries.query("replication < 2")
    fewer = dataclasses.replace(experiment, seeds=experiment.seeds[:2], summaries=first_two)
    assert fewer.figures() is not experiment.figures()
    assert (fewer.figures()["n"] == 2).all()


def test_charts_drawn_by_a_pool_are_the_charts_drawn_here(experiment, tmp_path):
    from cxsim.charts import pyplot, write_all
    from cxsim.executors import warm_pool

    (tmp_path / "here").mkdir()
    (tmp_path / "pool").mkdir()
    here = write_all(experiment, tmp_path / "here")
    with warm_pool(2, pyplot) as pool:
        there = write_all(experiment, tmp_path / "pool", pool)
    assert [p.name for p in there] == [p.name for p in here] and len(here) == 9
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(here, there, strict=True))


def test_charts_whose_painters_died_are_drawn_here(experiment, tmp_path):
    """A painter killed (out of memory, by hand) breaks the pool: the charts it had, or all of
    them if it died before they were handed out, are drawn in this process, the same files."""
    import os
    import signal
    import time
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from cxsim.charts import Charts, Drawing, pyplot, write_all
    from cxsim.executors import warm_pool

    for name in ("here", "pool", "one"):
        (tmp_path / name).mkdir()
    here = write_all(experiment, tmp_path / "here")
    with warm_pool(2, pyplot) as pool:
        os.kill(next(iter(pool._processes)), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not pool._broken and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool._broken
        there = write_all(experiment, tmp_path / "pool", pool)
    assert [p.name for p in there] == [p.name for p in here]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(here, there, strict=True))

    lost = Future()
    lost.set_exception(BrokenProcessPool("a painter died"))
    charts = Charts(experiment, tmp_path / "one")
    (drawn,) = Drawing([charts.path("customers")], [lost], [(charts, "customers")]).wait()
    assert drawn.read_bytes() == (tmp_path / "here" / "customers.png").read_bytes()
