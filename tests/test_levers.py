"""Levers per touchpoint, events, a strategy's start and ramp, aimed outreach, severity, and how
a lasting problem counts: each rule pinned in both engines on small scenarios."""

from __future__ import annotations

import numpy as np
import pytest

from cxsim import rules
from cxsim.engines import ENGINES
from cxsim.levers import Schedule
from cxsim.loading import apply_overrides

from .conftest import quiet, small


def _run(spec, engine: str, seed: int = 5):
    return ENGINES[engine](spec, rng=seed).run()


def _only_problems_at(spec, name: str, rate: float):
    """No visit is good or bad; problems arise only at touchpoint ``name``."""
    tps = [
        {**t.model_dump(mode="json"), "good": 0.0, "bad": 0.0,
         "problem_rate": rate if t.name == name else 0.0}
        for t in spec.touchpoints
    ]  # fmt: skip
    return apply_overrides(spec, {"touchpoints": tps})


def test_detection_can_be_set_for_one_touchpoint(engine):
    base = small(time__horizon=30, population__customers=400, **{"strategy.detection": 0.0})
    levers = {"strategy.touchpoints": {"billing": {"detection": 1.0}}}
    at_billing = apply_overrides(_only_problems_at(base, "billing", 0.05), levers)
    at_product = apply_overrides(_only_problems_at(base, "product", 0.05), levers)
    frame = _run(at_billing, engine).metrics_frame()
    assert frame["problems_arising"].sum() > 0
    assert frame["problems_detected"].sum() == frame["problems_arising"].sum()
    frame = _run(at_product, engine).metrics_frame()
    assert frame["problems_arising"].sum() > 0 and frame["problems_detected"].sum() == 0


def test_a_touchpoint_lever_costs_per_customer_and_the_global_value_is_the_default():
    spec = small(**{"strategy.detection": 0.3, "strategy.prevention": 0.2,
                    "strategy.touchpoints": {"billing": {"prevention": 0.9,
                                                         "cost_per_customer": 0.5}}})  # fmt: skip
    lv = Schedule(spec).at(1)
    names = list(spec.touchpoint_names)
    assert np.all(lv.detection == 0.3)
    billing, product = names.index("billing"), names.index("product")
    rate = {t.name: t.problem_rate for t in spec.touchpoints}
    assert lv.problem[2, billing] == pytest.approx(rate["billing"] * 0.1)
    assert lv.problem[2, product] == pytest.approx(rate["product"] * 0.8)
    assert lv.cost_per_customer == pytest.approx(spec.strategy.costs.per_customer + 0.5)


def test_an_event_changes_chances_only_while_it_lasts(engine):
    spec = small(time__horizon=30, population__customers=400)
    spec = apply_overrides(_only_problems_at(spec, "product", 0.02), {
        "events": [{"name": "fixed for a while", "start": 10, "duration": 8,
                    "set": {"touchpoints.product.problem_rate": 0.0}}],
    })  # fmt: skip
    frame = _run(spec, engine).metrics_frame().set_index("step")["problems_arising"]
    assert frame.loc[10:17].sum() == 0
    assert frame.loc[1:9].sum() > 0 and frame.loc[18:30].sum() > 0


def test_overlapping_events_apply_in_order():
    spec = small(**{"events": [
        {"name": "wave", "start": 2, "duration": 5, "scale": {"touchpoints.billing.bad": 3}},
        {"name": "fix", "start": 4, "duration": 1, "set": {"touchpoints.billing.bad": 0.0}},
    ]})  # fmt: skip
    s = Schedule(spec)
    j = spec.touchpoint_names.index("billing")
    base = s.at(1).bad[2, j]
    assert s.at(2).bad[2, j] == pytest.approx(3 * base)
    assert s.at(4).bad[2, j] == 0.0
    assert s.at(7).bad[2, j] == pytest.approx(base)


def test_a_strategy_starts_late_and_ramps_up(engine):
    spec = small(time__horizon=20, **{"strategy.outreach": 0.2, "strategy.costs.fixed": 300.0,
                                     "strategy.start": 6, "strategy.ramp": 4})  # fmt: skip
    s = Schedule(spec)
    assert [s.share(t) for t in (1, 5, 6, 7, 8, 9, 10)] == [0, 0, 0.25, 0.5, 0.75, 1, 1]
    frame = _run(spec, engine).metrics_frame().set_index("step")
    assert frame.loc[1:5, "outreach_contacts"].sum() == 0
    assert frame.loc[1:5, "cost_programme"].sum() == 0
    assert frame.loc[6, "cost_programme"] >= 0.25 * 300.0
    assert frame.loc[10:20, "outreach_contacts"].sum() > 0


def test_aimed_outreach_reaches_only_customers_at_risk(engine):
    calm = quiet(small(time__horizon=10, population__customers=300))
    calm = apply_overrides(
        calm,
        {"behaviour.satisfaction.mean": 0.9, "behaviour.satisfaction.sd": 0.0,
         "strategy.outreach": 0.1},
    )  # fmt: skip
    aimed = apply_overrides(calm, {"strategy.outreach_target": "at_risk"})
    assert _run(calm, engine).metrics_frame()["outreach_contacts"].sum() > 0
    assert _run(aimed, engine).metrics_frame()["outreach_contacts"].sum() == 0  # nobody at risk


def test_aimed_outreach_spends_the_same_number_of_contacts():
    assert rules.outreach_chance(0.02, 1000, 100) == pytest.approx(0.2)
    assert rules.outreach_chance(0.5, 1000, 100) == 1.0
    assert rules.outreach_chance(0.5, 1000, 0) == 0.0
    assert bool(rules.at_risk(0.6, 0.9)) and bool(rules.at_risk(0.0, 0.5))
    assert not bool(rules.at_risk(0.4, 0.7))


def test_a_weightless_touchpoint_never_makes_anyone_walk_away(engine):
    spec = small(time__horizon=30, population__customers=300)
    tps = [{**t.model_dump(mode="json"), "problem_rate": 0.0,
            "bad": 0.3 if t.name == "email" else 0.0,
            "severity": 0.0 if t.name == "email" else 1.0} for t in spec.touchpoints]  # fmt: skip
    frame = _run(apply_overrides(spec, {"touchpoints": tps}), engine).metrics_frame()
    assert frame["experiences_bad"].sum() > 100
    assert frame["churn_by_email"].sum() == 0


def test_a_lasting_problem_is_one_bad_experience(engine):
    """No fading, no support calls: every problem stays open, yet it hurts only once."""
    spec = _only_problems_at(small(time__horizon=30, population__customers=400), "product", 0.03)
    spec = apply_overrides(spec, {"behaviour.problem_fade": 0.0, "strategy.support_contact": 0.0,
                                  "strategy.detection": 0.0})  # fmt: skip
    frame = _run(spec, engine).metrics_frame()
    assert frame["problems_arising"].sum() > 50
    assert frame["experiences_bad"].sum() == frame["problems_arising"].sum()


def test_each_failed_support_contact_is_a_new_bad_experience(engine):
    """Calls that never resolve: one bad experience per problem plus one per later call."""
    spec = _only_problems_at(small(time__horizon=30, population__customers=400), "product", 0.03)
    spec = apply_overrides(spec, {"behaviour.problem_fade": 0.0, "strategy.support_contact": 1.0,
                                  "strategy.first_contact_resolution": 0.0,
                                  "strategy.detection": 0.0})  # fmt: skip
    frame = _run(spec, engine).metrics_frame()
    arising, contacts = frame["problems_arising"].sum(), frame["problems_contacted"].sum()
    assert contacts > arising > 50
    # The call in the step the problem arose is part of that event; every later one hurts.
    assert frame["experiences_bad"].sum() == arising + (contacts - arising)


def test_walk_away_weight_one_is_the_survey_curve_and_lighter_weighs_less():
    a, b = -1.5856, 0.4703
    one = rules.walk_away_step(0.0, np.array([1]), a, b, 0.0, 1.0)[0]
    assert one == pytest.approx(0.17, abs=1e-3)
    three = rules.walk_away_step(0.0, np.array([3]), a, b, 0.0, 1.0)[0]
    assert three == pytest.approx(0.59, abs=1e-3)
    light = rules.walk_away_step(0.0, np.array([1]), a, b, 0.0, 0.3)[0]
    assert 0 < light < one
