"""Both engines are plain Mesa models: mesa.batch_run sweeps dotted scenario keys."""

from __future__ import annotations

import pandas as pd
import pytest

from cxsim import compat
from cxsim.engines import AgentsModel, VectorModel

from .conftest import ROOT


def _sweep(model_class) -> pd.DataFrame:
    rows = compat.batch_run(  # mesa.batch_run, seeded the way this Mesa version wants
        model_class,
        parameters={
            "scenario": str(ROOT / "scenarios/reactive.yaml"),
            "population.customers": 50,
            "population.prospects": 100,
            "time.horizon": 8,
            "strategy.detection": [0.0, 0.9],
        },
        seeds=[1, 2],
        max_steps=100,
        number_processes=1,
        data_collection_period=1,
        display_progress=False,
    )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("model_class", [VectorModel, AgentsModel])
def test_batch_run_sweeps_dotted_scenario_keys(model_class):
    frame = _sweep(model_class)
    assert set(frame["strategy.detection"]) == {0.0, 0.9}
    assert len(frame.groupby(["strategy.detection", "rng"])) == 4
    # Seeded: the same call gives the same numbers.
    again = _sweep(model_class)
    pd.testing.assert_frame_equal(frame.drop(columns=["RunId"]), again.drop(columns=["RunId"]))
    # The model stops itself at its horizon (8 steps, not max_steps). Mesa 3.3's batch_run
    # reports DataCollector rows 0..steps-1, Mesa 3.5's rows 0..steps (row 0: initial state).
    assert frame["Step"].max() in (7, 8)
    assert {"customers", "churn_rate", "nps", "revenue"} <= set(frame.columns)
    detected = frame.groupby("strategy.detection")["problems_detected"].sum()
    assert detected[0.0] == 0


def test_batch_run_model_reads_the_overrides():
    model = VectorModel(
        str(ROOT / "scenarios/proactive.yaml"),
        rng=3,
        **{"strategy.outreach": 0.25, "touchpoints.billing.bad": 0.2},
    )
    assert model.spec.strategy.outreach == 0.25
    assert model.spec.touchpoints[model.spec.touchpoint_names.index("billing")].bad == 0.2
