"""The walk-away curve fitted to survey figures reproduces them."""

from __future__ import annotations

import numpy as np
import pytest

from cxsim.calibration import WalkAwayFit, fit_walk_away, left_by, simulate_left_by
from cxsim.loading import parse_scenario
from cxsim.scenario import Scenario


@pytest.fixture(scope="module")
def fit_sd0() -> WalkAwayFit:
    return fit_walk_away(0.17, 0.59, 3, 0)


@pytest.fixture(scope="module")
def fit_sd05() -> WalkAwayFit:
    return fit_walk_away(0.17, 0.59, 3, 0.5)


def test_survey_without_tolerance_spread_gives_the_published_curve(fit_sd0):
    assert fit_sd0.a == pytest.approx(-1.5856, abs=1e-3)
    assert fit_sd0.b == pytest.approx(0.4703, abs=1e-3)
    assert (fit_sd0.tolerance_sd, fit_sd0.several) == (0, 3)


def test_per_event_chances_rise_17_25_34_percent(fit_sd0):
    chances = [fit_sd0.per_event(n) for n in (1, 2, 3)]
    assert chances == pytest.approx([0.170, 0.247, 0.344], abs=1e-3)


def test_without_spread_the_per_event_chances_compound_to_the_survey(fit_sd0):
    stay = np.prod([1 - fit_sd0.per_event(n) for n in (1, 2, 3)])
    assert 1 - stay == pytest.approx(0.59, abs=1e-9)
    assert fit_sd0.left_by(3) == pytest.approx(0.59, abs=1e-9)


def test_with_tolerance_spread_population_shares_match_the_survey(fit_sd05):
    assert fit_sd05.left_by(1) == pytest.approx(0.17, abs=1e-6)
    assert fit_sd05.left_by(3) == pytest.approx(0.59, abs=1e-6)
    assert left_by(fit_sd05.a, fit_sd05.b, 0.5, 1) == pytest.approx(0.17, abs=1e-6)


def test_tolerance_spread_needs_a_steeper_curve(fit_sd0, fit_sd05):
    # The intolerant leave first, so the people still there are more tolerant on average.
    assert fit_sd05.b > fit_sd0.b
    assert fit_sd05.a < fit_sd0.a


def test_left_by_rises_with_each_bad_experience_and_stays_a_share(fit_sd05):
    shares = [fit_sd05.left_by(n) for n in range(0, 12)]
    assert shares[0] == pytest.approx(0.0, abs=1e-12)
    assert all(0 <= s <= 1 for s in shares)
    assert all(later > earlier for earlier, later in zip(shares, shares[1:], strict=False))


def test_monte_carlo_with_200000_people_matches_within_half_a_point(fit_sd05):
    simulated = simulate_left_by(
        fit_sd05.a, fit_sd05.b, 0.5, 3, 200_000, np.random.default_rng(20261123)
    )
    exact = [fit_sd05.left_by(n) for n in (1, 2, 3)]
    assert simulated == pytest.approx(exact, abs=0.005)
    assert simulated[0] == pytest.approx(0.17, abs=0.005)
    assert simulated[2] == pytest.approx(0.59, abs=0.005)


def test_monte_carlo_without_spread_matches_too(fit_sd0):
    simulated = simulate_left_by(fit_sd0.a, fit_sd0.b, 0.0, 3, 200_000, np.random.default_rng(5))
    assert simulated == pytest.approx([0.17, fit_sd0.left_by(2), 0.59], abs=0.005)


def test_default_scenario_curve_reproduces_the_survey():
    scenario = Scenario()
    a, b = scenario.walk_away_curve
    survey = scenario.behaviour.walk_away.survey
    sd = scenario.behaviour.walk_away.tolerance_sd
    assert left_by(a, b, sd, 1) == pytest.approx(survey.after_one, abs=1e-6)
    assert left_by(a, b, sd, survey.several) == pytest.approx(survey.after_several, abs=1e-6)


def test_a_users_own_survey_figures_are_matched():
    fit = fit_walk_away(0.25, 0.7, 4, 0.5)
    assert fit.left_by(1) == pytest.approx(0.25, abs=1e-6)
    assert fit.left_by(4) == pytest.approx(0.7, abs=1e-6)


def test_a_users_survey_in_a_scenario_file_drives_the_curve():
    text = (
        "behaviour:\n"
        "  walk_away:\n"
        "    tolerance_sd: 0.8\n"
        "    survey: {after_one: 0.25, after_several: 0.7, several: 4}\n"
    )
    a, b = parse_scenario(text).walk_away_curve
    assert left_by(a, b, 0.8, 1) == pytest.approx(0.25, abs=1e-6)
    assert left_by(a, b, 0.8, 4) == pytest.approx(0.7, abs=1e-6)


def test_an_explicit_curve_is_used_as_given():
    text = "behaviour:\n  walk_away: {a: -2.0, b: 0.3}\n"
    assert parse_scenario(text).walk_away_curve == (-2.0, 0.3)


@pytest.mark.parametrize(
    ("after_one", "after_several", "several", "sd"),
    [
        (0.05, 0.2, 2, 0.0),
        (0.1, 0.5, 5, 1.0),
        (0.3, 0.95, 3, 0.5),
        (0.01, 0.1, 10, 2.0),
        (0.5, 0.6, 2, 0.25),
    ],
)
def test_a_range_of_surveys_is_matched_exactly(after_one, after_several, several, sd):
    fit = fit_walk_away(after_one, after_several, several, sd)
    assert fit.left_by(1) == pytest.approx(after_one, abs=1e-6)
    assert fit.left_by(several) == pytest.approx(after_several, abs=1e-6)
