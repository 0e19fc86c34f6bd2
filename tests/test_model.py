"""Properties every correct version of the model has (MODEL.md "Properties"), on both engines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import betaln

from cxsim import rules
from cxsim.engines import ENGINES
from cxsim.experiment import replication_seeds
from cxsim.loading import apply_overrides
from cxsim.metrics import annual_churn, churn_causes
from cxsim.scenario import NetworkKind, Scenario

from .conftest import ALL_MECHANISMS, quiet, small


def run(spec: Scenario, engine: str, seed: int = 1):
    return ENGINES[engine](spec, rng=seed).run()


# --- reproducibility


def test_same_seed_gives_identical_results_and_different_seeds_differ(engine):
    spec = small(ALL_MECHANISMS, time__horizon=20)
    a = run(spec, engine, 7).metrics_frame()
    b = run(spec, engine, 7).metrics_frame()
    c = run(spec, engine, 8).metrics_frame()
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(
        run(spec, engine, 7).customer_table(), run(spec, engine, 7).customer_table()
    )
    assert not a.equals(c)


# --- conservation and accounting


@pytest.mark.parametrize("kind", list(NetworkKind))
def test_everyone_is_always_a_prospect_customer_or_former_customer(engine, kind):
    spec = small(ALL_MECHANISMS, network__kind=kind.value, time__horizon=30)
    frame = run(spec, engine).metrics_frame()
    total = frame["prospects"] + frame["customers"] + frame["churned"]
    assert (total == spec.population.size).all()
    assert (frame["customers"] == frame["onboarding"] + frame["active"]).all()
    # Stocks follow the flows: customers change by joiners minus leavers, step by step.
    flow = frame["new_customers"] - frame["churn"]
    assert (frame["customers"].diff().iloc[1:] == flow.iloc[1:]).all()
    causes = frame[churn_causes(spec)].sum(axis=1)
    assert (causes == frame["churn"]).all()


def test_customer_table_revenue_adds_up_to_the_revenue_metric(engine):
    spec = small(ALL_MECHANISMS, time__horizon=30)
    model = run(spec, engine)
    table = model.customer_table()
    frame = model.metrics_frame()
    assert table["lifetime_revenue"].sum() * spec.population.represents == pytest.approx(
        frame["cumulative_revenue"].iloc[-1], rel=1e-5
    )
    churned = table[table["churn_step"] >= 0]
    assert len(churned) == frame["churn"].sum()
    assert set(churned["cause"]) <= {*spec.touchpoint_names, "baseline"}
    assert set(table["channel"]) <= {"initial", "ads", "referral", "win_back"}
    # A win-back is a former customer's later spell, and every later spell is a win-back.
    assert ((table["channel"] == "win_back") == (table["spell"] > 0)).all()
    assert (table["channel"] == "win_back").sum() == frame["new_customers_win_back"].sum()
    still = table[table["churn_step"] < 0]
    assert len(still) == frame["customers"].iloc[-1]


def test_costs_follow_the_economics_section(engine):
    spec = small(ALL_MECHANISMS, time__horizon=15)
    frame = run(spec, engine).metrics_frame().iloc[1:]
    scale, econ = spec.population.represents, spec.economics
    assert econ.acquisition == 7 * econ.retention_cost
    assert np.allclose(frame["cost_acquisition"], econ.acquisition * frame["new_customers"] * scale)
    assert np.allclose(
        frame["cost_support"], econ.support_cost * frame["problems_contacted"] * scale
    )
    assert np.allclose(
        frame["costs"], frame[["cost_acquisition", "cost_support", "cost_programme"]].sum(axis=1)
    )
    assert np.allclose(frame["profit"], frame["revenue"] - frame["costs"])


# --- nobody leaves without a reason


def test_without_problems_bad_experiences_or_baseline_churn_nobody_churns(engine):
    spec = quiet(small(time__horizon=52))
    frame = run(spec, engine).metrics_frame()
    assert frame["churn"].sum() == 0
    assert frame["experiences_bad"].sum() == 0
    assert frame["customers"].is_monotonic_increasing


# --- Bass diffusion


def test_adoption_by_advertising_alone_follows_one_minus_one_minus_p_to_the_t(engine):
    p, steps = 0.03, 40
    prospects = 20_000 if engine == "vector" else 3_000
    spec = apply_overrides(
        quiet(small(time__horizon=steps)),
        {
            "population.customers": 0,
            "population.prospects": prospects,
            "behaviour.ad_conversion": p,
            "behaviour.referral.rate": 0.0,
            "behaviour.negative_word_of_mouth.rate": 0.0,
            "behaviour.reviews.read_share": 0.0,
            "behaviour.win_back.enabled": False,
        },
    )
    frame = run(spec, engine).metrics_frame()
    adopted = frame["customers"].to_numpy() / prospects
    t = frame["step"].to_numpy()
    expected = 1 - (1 - p) ** t
    tolerance = 4 * np.sqrt(expected * (1 - expected) / prospects) + 1e-9
    assert np.all(np.abs(adopted - expected) <= tolerance)
    assert frame["new_customers_referral"].sum() == 0


# --- survival under baseline churn alone


def test_without_experiences_survival_is_the_beta_geometric_mixture(engine):
    alpha, beta, steps = 2.0, 40.0, 60
    customers = 20_000 if engine == "vector" else 3_000
    spec = apply_overrides(
        quiet(small(time__horizon=steps)),
        {
            "population.customers": customers,
            "population.prospects": 0,
            "behaviour.baseline_churn.alpha": alpha,
            "behaviour.baseline_churn.beta": beta,
            "behaviour.baseline_churn.satisfaction_elasticity": 0.0,
            "behaviour.win_back.enabled": False,
        },
    )
    frame = run(spec, engine).metrics_frame()
    t = frame["step"].to_numpy()
    survival = frame["customers"].to_numpy() / customers
    expected = np.exp(betaln(alpha, beta + t) - betaln(alpha, beta))
    tolerance = 4 * np.sqrt(expected * (1 - expected) / customers) + 1e-9
    assert np.all(np.abs(survival - expected) <= tolerance)
    assert frame["churn"].sum() == frame["churn_by_baseline"].sum()


# --- the walk-away curve inside the model --------------------------------------------------------


@pytest.mark.parametrize(("bad_visits", "target"), [(1, 0.17), (3, 0.59)])
def test_in_the_model_17_percent_leave_after_one_bad_experience_and_59_after_three(
    engine, bad_visits, target
):
    people = 40_000 if engine == "vector" else 6_000
    tps = [
        {"name": f"failure_{i}", "stages": ["active"], "visit_rate": 1.0, "good": 0.0, "bad": 1.0}
        for i in range(bad_visits)
    ]
    spec = apply_overrides(
        quiet(small(time__horizon=1)),
        {"touchpoints": tps, "population.customers": people, "population.prospects": 0},
    )
    frame = run(spec, engine).metrics_frame()
    left = frame["churn"].iloc[1] / people
    assert left == pytest.approx(target, abs=4 * np.sqrt(target * (1 - target) / people))
    assert frame["churn_by_baseline"].sum() == 0


# --- levers are monotone in expectation


def _mean_annual_churn(spec: Scenario, seeds: list[int]) -> float:
    values = [
        annual_churn(run(spec, "vector", s).metrics_frame(), spec.time.steps_per_year)
        for s in seeds
    ]
    return float(np.mean(values))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("lever", "levels"),
    [
        ("strategy.detection", [0.0, 0.5, 1.0]),
        ("strategy.prevention", [0.0, 0.5, 1.0]),
        ("strategy.first_contact_resolution", [0.2, 0.6, 1.0]),
        # Calling support is not here: a contact that fails is a bad experience of its own, so
        # with poor resolution more calls can mean more churn (ODD 7.2).
    ],
)
def test_levers_never_raise_expected_churn(lever, levels):
    seeds = replication_seeds(99, 12)
    base = small(time__horizon=104, population__customers=1500, population__prospects=1500)
    churn = [_mean_annual_churn(apply_overrides(base, {lever: v}), seeds) for v in levels]
    assert all(later <= earlier for earlier, later in zip(churn, churn[1:], strict=False)), churn


@pytest.mark.slow
def test_lower_problem_rates_never_raise_expected_churn():
    seeds = replication_seeds(5, 12)
    base = small(time__horizon=104, population__customers=1500, population__prospects=1500)
    churn = []
    for factor in (2.0, 1.0, 0.0):
        tps = [
            {**t.model_dump(mode="json"), "problem_rate": t.problem_rate * factor}
            for t in base.touchpoints
        ]
        churn.append(_mean_annual_churn(apply_overrides(base, {"touchpoints": tps}), seeds))
    assert churn[0] >= churn[1] >= churn[2], churn


@pytest.mark.slow
def test_proactive_beats_reactive_on_churn_and_nps_from_the_mechanisms():
    from .conftest import SHIPPED

    seeds = replication_seeds(3, 6)
    figures = {}
    for path in [p for p in SHIPPED if p.stem in ("reactive", "proactive")]:
        spec = small(
            path, time__horizon=104, population__customers=1000, population__prospects=4000
        )
        frames = [run(spec, "vector", s).metrics_frame() for s in seeds]
        figures[spec.name] = (
            np.mean([annual_churn(f, 52) for f in frames]),
            np.mean([f["nps"].iloc[-52:].mean() for f in frames]),
        )
    assert figures["proactive"][0] < figures["reactive"][0]
    assert figures["proactive"][1] > figures["reactive"][1]


# --- rules


def test_rules_work_on_floats_and_arrays_alike():
    s = np.array([0.1, 0.5, 0.95])
    for i, x in enumerate(s):
        assert rules.likelihood_to_recommend(float(x)) == rules.likelihood_to_recommend(s)[i]
        assert rules.update_satisfaction(float(x), 0.7, 2, 1, 0.1, 0.04, 0.12) == pytest.approx(
            rules.update_satisfaction(s, 0.7, 2, 1, 0.1, 0.04, 0.12)[i]
        )
    assert float(rules.walk_away_step(0.0, 0, -1.5, 0.5, 0.0)) == 0.0


def test_bad_experiences_weigh_more_than_good_ones():
    up = rules.update_satisfaction(0.5, 0.5, 1, 0, 0.0, 0.04, 0.12) - 0.5
    down = 0.5 - rules.update_satisfaction(0.5, 0.5, 0, 1, 0.0, 0.04, 0.12)
    assert down > 2 * up > 0


def test_satisfaction_stays_between_zero_and_one():
    s = np.linspace(0, 1, 11)
    for good in range(4):
        for bad in range(4):
            out = rules.update_satisfaction(s, 0.8, good, bad, 0.3, 0.5, 0.5)
            assert np.all((out >= 0) & (out <= 1))


def test_nps_and_csat_thresholds_follow_their_survey_definitions():
    assert rules.likelihood_to_recommend(9 / 11 + 1e-9) == 9
    assert rules.is_promoter(0.82) and not rules.is_promoter(0.81)
    assert rules.is_detractor(0.63) and not rules.is_detractor(0.64)
    assert round(1 + 4 * rules.CSAT_SATISFIED) == 4  # the satisfied threshold rounds to 4 stars
    assert rules.net_promoter_score(30, 10, 100) == 20.0


def test_lifetime_value_is_the_discounted_geometric_sum():
    arpu, theta, d = 10.0, 0.02, 0.001
    direct = sum(arpu * ((1 - theta) / (1 + d)) ** t for t in range(20_000))
    assert rules.lifetime_value(arpu, theta, d) == pytest.approx(direct, rel=1e-6)


@pytest.mark.parametrize("kind", ["watts_strogatz", "well_mixed"])
def test_vector_engine_stocks_kept_by_the_step_match_a_full_recount(kind):
    from cxsim.engines import VectorModel

    model = VectorModel(small(ALL_MECHANISMS, network__kind=kind), rng=4)
    for _ in range(model.horizon):
        model.step()
        assert model._census() == model.recount()


def test_cohort_retention_of_the_first_customers_is_their_survival_curve():
    from cxsim.metrics import cohort_retention

    spec = apply_overrides(
        quiet(small(time__horizon=52)),
        {
            "population.customers": 2000,
            "population.prospects": 0,
            "behaviour.baseline_churn.alpha": 2.0,
            "behaviour.baseline_churn.beta": 60.0,
            "behaviour.win_back.enabled": False,
        },
    )
    model = run(spec, "vector", 3)
    frame = model.metrics_frame()
    cohorts = cohort_retention(model.customer_table().assign(scenario="x"), 52, 13)
    assert list(cohorts["tenure"]) == [13, 26, 39, 52]
    expected = frame.set_index("step")["customers"].loc[[13, 26, 39, 52]].to_numpy() / 2000
    assert np.allclose(cohorts["retained"], expected)


@pytest.mark.parametrize(
    "dense",  # dense: people with hundreds of promoter contacts (more than an int8 holds)
    [{}, {"network.mean_degree": 300, "population.customers": 300, "population.prospects": 100}],
)
def test_vector_word_of_mouth_counts_are_the_same_packed_or_apart(dense):
    from cxsim.engines import VectorModel

    spec = apply_overrides(small(ALL_MECHANISMS, network__kind="barabasi_albert"), dense)
    packed, apart = VectorModel(spec, rng=6), VectorModel(spec, rng=6)
    apart._packed = False  # the path taken when someone has 32,768 or more contacts
    if dense:  # every customer a promoter at the start
        for model in (packed, apart):
            model.satisfaction[:] = 0.95
    pd.testing.assert_frame_equal(packed.run().metrics_frame(), apart.run().metrics_frame())


def test_vector_buying_chances_are_the_same_looked_up_or_per_prospect():
    """The prospects' chance table (few contacts) gives the very numbers the per-prospect
    formulas give (many contacts), review readers and word of mouth included."""
    from cxsim.engines import VectorModel

    spec = small(ALL_MECHANISMS, network__kind="watts_strogatz")
    looked_up, computed = VectorModel(spec, rng=8), VectorModel(spec, rng=8)
    assert looked_up._tabled
    computed._tabled = False  # the path taken when someone has 128 or more contacts
    a, b = looked_up.run().metrics_frame(), computed.run().metrics_frame()
    assert a["customers"].iloc[-1] > a["customers"].iloc[0] / 2  # a market that moves
    pd.testing.assert_frame_equal(a, b)


def test_others_picks_the_same_people_as_the_complement_it_does_not_build():
    from cxsim.engines.vector import others

    rng = np.random.default_rng(3)
    for m in (0, 1, 7, 1000):
        taken = np.flatnonzero(rng.random(m) < rng.random())
        rest = np.setdiff1d(np.arange(m), taken)
        positions = rng.permutation(len(rest))[: len(rest) // 3]
        assert np.array_equal(others(taken, positions), rest[positions])


def test_an_agents_model_dropped_is_freed():
    """Nothing global keeps a model that was built and stepped alive: Mesa 3.3's Agent._ids
    (a class-level dict keyed by the model) and its cell neighbourhoods (a functools.cache of
    the Cell class) did, so a worker that ran many models grew by megabytes a model."""
    import gc
    import weakref

    spec = small()
    assert spec.network.kind is not NetworkKind.well_mixed  # the people listen on the network
    dropped = []
    for seed in range(2):
        model = ENGINES["agents"](spec, rng=seed)
        for _ in range(3):
            model.step()
        dropped.append(weakref.ref(model))
        del model
    gc.collect()
    assert [ref() for ref in dropped] == [None, None]
