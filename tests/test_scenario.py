"""The scenario schema, its defaults, and how scenario files and overrides are read.

Every bad input must end as a ScenarioError whose message a user can act on: the file, the
dotted field, the line where known, what was expected and what was found.
"""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from cxsim.loading import ScenarioError, apply_overrides, load_scenario, parse_scenario, validate
from cxsim.scenario import NetworkKind, Scenario

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "market.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str, overrides=()) -> tuple[Path, str]:
    """(file, message) of the ScenarioError that loading ``text`` must raise."""
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    return path, str(info.value)


def assert_short(message: str, max_lines: int = 3) -> None:
    lines = message.splitlines()
    assert 1 <= len(lines) <= max_lines, message
    assert all(len(line) < 300 for line in lines), message
    assert "Traceback" not in message and "pydantic" not in message, message


# --- defaults ---------------------------------------------------------------------------------


def test_empty_mapping_is_the_all_defaults_scenario(tmp_path):
    assert parse_scenario("{}") == Scenario()
    assert load_scenario(write(tmp_path, "{}\n")) == Scenario()


def test_acquisition_costs_seven_times_retention_by_default():
    economics = Scenario().economics
    assert economics.acquisition_cost is None
    assert economics.acquisition == pytest.approx(7 * economics.retention_cost, rel=1e-12)


def test_explicit_acquisition_cost_wins_over_the_ratio():
    scenario = parse_scenario("economics: {acquisition_cost: 55}")
    assert scenario.economics.acquisition == 55


def test_ad_conversion_is_far_below_referral_conversion_by_default():
    behaviour = Scenario().behaviour
    assert behaviour.ad_conversion < behaviour.referral.conversion / 10


def test_most_prospects_read_reviews_by_default():
    assert Scenario().behaviour.reviews.read_share == 0.88


def test_default_survey_is_17_percent_after_one_and_59_after_three():
    survey = Scenario().behaviour.walk_away.survey
    assert (survey.after_one, survey.after_several, survey.several) == (0.17, 0.59, 3)


def test_default_walk_away_curve_is_fitted_not_given():
    walk_away = Scenario().behaviour.walk_away
    assert walk_away.a is None and walk_away.b is None
    assert walk_away.tolerance_sd == 0.5


def test_default_touchpoints_have_unique_valid_names_and_stages():
    scenario = Scenario()
    names = scenario.touchpoint_names
    assert len(names) == len(set(names)) == 9
    assert "billing" in names
    for tp in scenario.touchpoints:
        assert tp.good + tp.bad <= 1
        assert set(tp.stages) <= {"prospect", "onboarding", "active"}


def _models_in(annotation) -> list[type[BaseModel]]:
    found = (
        [annotation] if isinstance(annotation, type) and issubclass(annotation, BaseModel) else []
    )
    for arg in getattr(annotation, "__args__", ()):
        found += _models_in(arg)
    return found


def test_every_value_field_has_a_default_and_a_description():
    def check(model: type[BaseModel], where: str) -> None:
        for name, field in model.model_fields.items():
            if model.__name__ != "Touchpoint":  # a touchpoint needs its own name and stages
                assert not field.is_required(), f"{where}.{name} has no default"
            sections = _models_in(field.annotation)
            assert field.description or sections, f"{where}.{name} has no description"
            for section in sections:
                check(section, f"{where}.{name}")

    check(Scenario, "scenario")


@pytest.mark.parametrize("name", ["reactive.yaml", "proactive.yaml"])
def test_shipped_scenario_files_load(name):
    scenario = load_scenario(ROOT / "scenarios" / name)
    assert scenario.name == name.removesuffix(".yaml")


# --- immutability -----------------------------------------------------------------------------


def test_scenario_and_its_sections_are_immutable():
    scenario = Scenario()
    with pytest.raises(ValidationError):
        scenario.name = "other"
    with pytest.raises(ValidationError):
        scenario.strategy.detection = 0.5
    with pytest.raises(ValidationError):
        scenario.touchpoints[0].bad = 0.5
    with pytest.raises(TypeError):
        scenario.touchpoints[0] = scenario.touchpoints[1]  # a tuple, not a list
    assert isinstance(scenario.touchpoints[0].stages, tuple)


def test_scenarios_are_hashable_values():
    assert hash(Scenario()) == hash(parse_scenario("{}"))


# --- bad files: each gives one clear ScenarioError --------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key", "suggestion"),
    [
        ("name: x\nstratgy:\n  detection: 0.5\n", 2, "'stratgy'", "'strategy'"),
        ("name: x\nstrategy: {detecton: 0.5}\n", 2, "strategy.detecton", "'detection'"),
        ("behaviour:\n  walk_away:\n    survey:\n      after_on: 0.2\n", 4,
         "behaviour.walk_away.survey.after_on", "'after_one'"),
    ],
    ids=["top-level", "nested-flow-style", "deeply-nested-block-style"],
)  # fmt: skip
def test_a_misspelt_key_names_file_line_dotted_path_and_the_likely_key(
    tmp_path, text, line, key, suggestion
):
    path, msg = error_of(tmp_path, text)
    assert f"{path}:{line}:" in msg
    assert key in msg
    assert f"did you mean {suggestion}?" in msg
    assert_short(msg)


def test_misspelt_key_inside_a_touchpoint_is_suggested(tmp_path):
    text = "touchpoints:\n  - name: x\n    stages: [active]\n    god: 0.1\n"
    path, msg = error_of(tmp_path, text)
    assert f"{path}:4:" in msg
    assert "touchpoints.0.god" in msg
    assert "did you mean 'good'?" in msg


def test_unknown_key_with_no_close_match_lists_the_allowed_keys(tmp_path):
    _, msg = error_of(tmp_path, "strategy:\n  zzzzzz: 1\n")
    assert "strategy.zzzzzz" in msg
    assert "allowed here:" in msg and "detection" in msg and "outreach" in msg


@pytest.mark.parametrize(
    ("text", "field", "expected", "found"),
    [
        ("strategy:\n  detection: abc\n", "strategy.detection", "expected a number", "found 'abc'"),
        ("time:\n  horizon: 1.5\n", "time.horizon", "expected a whole number", "found 1.5"),
        ("strategy:\n  detection: 1.5\n", "strategy.detection", "a number <= 1", "1.5"),
        ("population:\n  customers: -3\n", "population.customers", "a number >= 0", "-3"),
    ],
    ids=["text-for-number", "fraction-for-whole", "share-above-one", "negative-count"],
)
def test_a_bad_value_names_file_line_field_what_was_expected_and_found(
    tmp_path, text, field, expected, found
):
    path, msg = error_of(tmp_path, text)
    assert f"{path}:2:" in msg and field in msg
    assert expected in msg and found in msg
    assert_short(msg, 1)


def test_bad_boolean_says_true_or_false(tmp_path):
    _, msg = error_of(tmp_path, "behaviour:\n  win_back:\n    enabled: maybe\n")
    assert "behaviour.win_back.enabled" in msg
    assert "true or false" in msg and "'maybe'" in msg


def test_a_value_where_a_section_is_expected(tmp_path):
    path, msg = error_of(tmp_path, "strategy: 5\n")
    assert f"{path}:1:" in msg and "strategy" in msg
    assert "expected a mapping" in msg and "found 5" in msg


def test_an_unquoted_date_where_text_is_expected_says_it_is_a_date(tmp_path):
    _, msg = error_of(tmp_path, "name: 2026-01-31\n")
    assert "name: expected text" in msg and "2026-01-31" in msg


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path, text):
    path, msg = error_of(tmp_path, text)
    assert str(path) in msg
    assert "empty" in msg and "{}" in msg
    assert_short(msg, 1)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: [1, 2", 1),
        ("name: x\nstrategy:\n  detection: [0.5\n", 4),
        ("name: x\n\tstrategy: 1\n", 2),
        ("name: x\n---\nname: y\n", 2),
        ("name: 'unclosed\n", 2),
    ],
)
def test_text_that_is_not_yaml(tmp_path, text, line):
    path, msg = error_of(tmp_path, text)
    assert msg.startswith(f"{path}:{line}: not valid YAML: ")
    assert_short(msg, 1)


def test_control_character_is_not_yaml_and_names_its_line(tmp_path):
    path, msg = error_of(tmp_path, "name: x\ndescription: a\x07b\n")
    assert f"{path}:2:" in msg and "not valid YAML" in msg and "U+0007" in msg


def test_yaml_list_at_top_level(tmp_path):
    path, msg = error_of(tmp_path, "- strategy\n- detection\n")
    assert f"{path}:1:" in msg
    assert "expected a mapping of sections" in msg and "found a list" in msg
    assert_short(msg, 1)


def test_yaml_scalar_at_top_level(tmp_path):
    path, msg = error_of(tmp_path, "just some words\n")
    assert "expected a mapping of sections" in msg and "'just some words'" in msg


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value) and "no such file" in str(info.value)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(ScenarioError, match="is a folder"):
        load_scenario(tmp_path)


def test_file_that_is_not_utf8_text(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"name: \xff\xfe\x00\x81\n")
    with pytest.raises(ScenarioError, match="not a text file"):
        load_scenario(path)


def test_duplicate_top_level_key(tmp_path):
    path, msg = error_of(tmp_path, "name: a\ndescription: d\nname: b\n")
    assert f"{path}:3:" in msg
    assert "name" in msg and "twice" in msg


def test_duplicate_nested_key(tmp_path):
    path, msg = error_of(tmp_path, "strategy:\n  detection: 0.1\n  outreach: 0\n  detection: 0.2\n")
    assert f"{path}:4:" in msg
    assert "strategy.detection" in msg and "twice" in msg


def test_touchpoint_whose_good_and_bad_exceed_one(tmp_path):
    text = "touchpoints:\n  - name: chat\n    stages: [active]\n    good: 0.7\n    bad: 0.5\n"
    path, msg = error_of(tmp_path, text)
    assert f"{path}:2:" in msg
    assert "touchpoints.0" in msg
    assert "good + bad must be at most 1" in msg and "1.2" in msg
    assert "found a mapping" not in msg  # the check's own message, not a generic one
    assert_short(msg, 1)


def test_duplicate_touchpoint_names(tmp_path):
    text = (
        "touchpoints:\n  - {name: chat, stages: [active]}\n  - {name: chat, stages: [prospect]}\n"
    )
    path, msg = error_of(tmp_path, text)
    assert str(path) in msg
    assert "unique" in msg and "chat" in msg
    assert_short(msg, 1)


def _touchpoint_count_bounds() -> tuple[int | None, int | None]:
    low = high = None
    for rule in Scenario.model_fields["touchpoints"].metadata:
        low = getattr(rule, "min_length", low)
        high = getattr(rule, "max_length", high)
    return low, high


def test_too_few_touchpoints_says_how_many_are_needed(tmp_path):
    low, _ = _touchpoint_count_bounds()
    if not low:
        pytest.skip("the schema allows an empty touchpoint list")
    path, msg = error_of(tmp_path, "touchpoints: []\n")
    assert msg == f"{path}:1: touchpoints: expected at least {low} item(s), found 0"


def test_too_many_touchpoints_says_the_limit_not_the_whole_list(tmp_path):
    _, high = _touchpoint_count_bounds()
    if not high:
        pytest.skip("the schema sets no upper limit on touchpoints")
    items = "".join(f"  - {{name: t{i}, stages: [active]}}\n" for i in range(high + 1))
    path, msg = error_of(tmp_path, "touchpoints:\n" + items)
    assert msg == f"{path}:1: touchpoints: expected at most {high} item(s), found {high + 1}"


def test_touchpoint_without_stages(tmp_path):
    path, msg = error_of(tmp_path, "touchpoints:\n  - name: chat\n")
    assert f"{path}:2:" in msg and "touchpoints.0.stages" in msg and "missing" in msg


def test_touchpoint_with_an_unknown_stage_lists_the_stages(tmp_path):
    _, msg = error_of(tmp_path, "touchpoints:\n  - name: chat\n    stages: [churned]\n")
    assert "touchpoints.0.stages.0" in msg and "'churned'" in msg
    for stage in ("prospect", "onboarding", "active"):
        assert stage in msg


def test_touchpoint_with_an_invalid_name(tmp_path):
    _, msg = error_of(tmp_path, "touchpoints:\n  - name: Call Centre\n    stages: [active]\n")
    assert "touchpoints.0" in msg and "lowercase" in msg and "'Call Centre'" in msg


def test_invalid_network_kind_lists_the_allowed_kinds(tmp_path):
    path, msg = error_of(tmp_path, "network:\n  kind: small_world\n")
    assert f"{path}:2:" in msg
    assert "network.kind" in msg and "'small_world'" in msg
    for kind in NetworkKind:
        assert kind.value in msg
    assert_short(msg, 1)


def test_survey_shares_out_of_order(tmp_path):
    text = "behaviour:\n  walk_away:\n    survey: {after_one: 0.6, after_several: 0.5}\n"
    path, msg = error_of(tmp_path, text)
    assert f"{path}:3:" in msg
    assert "behaviour.walk_away.survey" in msg and "after_several must be larger" in msg


def test_walk_away_curve_with_only_a(tmp_path):
    _, msg = error_of(tmp_path, "behaviour:\n  walk_away:\n    a: -1.5\n")
    assert "behaviour.walk_away" in msg and "both a and b" in msg


def test_non_text_key(tmp_path):
    path, msg = error_of(tmp_path, "strategy:\n  1: 0.5\n")
    assert str(path) in msg and "strategy" in msg and "key" in msg


def test_a_list_used_as_a_key(tmp_path):
    path, msg = error_of(tmp_path, "? [a, b]\n: 1\n")
    assert f"{path}:1:" in msg and "key" in msg


@pytest.mark.parametrize(
    "text",
    [
        "name: !!python/object:os.system echo\n",
        "name: !!int abc\n",
        "time:\n  horizon: !!timestamp 2020-13-45\n",
        "strategy:\n  <<: 5\n",
        "strategy:\n  detection: " + "9" * 5000 + "\n",
        "name: " + "[" * 800 + "]" * 800 + "\n",  # deeper than Python's recursion limit
    ],
    ids=["python-tag", "bad-int-tag", "bad-date", "bad-merge", "huge-int", "deep-nesting"],
)
def test_yaml_the_safe_loader_cannot_build(tmp_path, text):
    path, msg = error_of(tmp_path, text)
    assert str(path) in msg and "not valid YAML" in msg
    assert_short(msg, 1)


def test_self_referencing_anchor_is_an_error_not_a_hang(tmp_path):
    _, msg = error_of(tmp_path, "description: &a [*a]\n")
    assert "description" in msg and "expected text" in msg
    assert_short(msg, 1)


def test_anchors_and_aliases_work_for_valid_files():
    text = "strategy: &s {detection: 0.3}\n"
    assert parse_scenario(text).strategy.detection == 0.3


def test_long_found_values_are_shortened(tmp_path):
    values = ", ".join(str(i) for i in range(1000))
    _, msg = error_of(tmp_path, f"strategy: [{values}]\n")
    assert "expected a mapping" in msg
    assert len(msg) < 200


def test_several_problems_are_all_reported_each_on_its_line(tmp_path):
    text = "strategy:\n  detection: 2\n  outreach: -1\n"
    path, msg = error_of(tmp_path, text)
    lines = msg.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:2: strategy.detection")
    assert lines[1].startswith(f"{path}:3: strategy.outreach")


def test_many_problems_are_capped_to_a_readable_message(tmp_path):
    text = "".join(f"unknown_{i}: 1\n" for i in range(40))
    _, msg = error_of(tmp_path, text)
    lines = msg.splitlines()
    assert len(lines) <= 11
    assert "more" in lines[-1]


def test_parse_scenario_uses_the_given_filename():
    with pytest.raises(ScenarioError, match=r"^inline\.yaml:1: unknown key 'nmae'"):
        parse_scenario("nmae: x\n", "inline.yaml")


def test_validate_turns_pydantic_errors_into_scenario_errors():
    with pytest.raises(ScenarioError, match=r"strategy\.detection: expected a number <= 1"):
        validate({"strategy": {"detection": 3}})


# --- overrides --------------------------------------------------------------------------------


def test_set_string_overrides_a_nested_field(tmp_path):
    path = write(tmp_path, "strategy:\n  detection: 0.1\n")
    scenario = load_scenario(path, ["strategy.detection=0.5"])
    assert scenario.strategy.detection == 0.5


def test_set_values_are_read_as_yaml_scalars():
    scenario = parse_scenario(
        "{}",
        overrides=[
            "behaviour.win_back.enabled=false",
            "time.horizon=52",
            "name=my run",
            "economics.acquisition_cost=null",
            "network.kind=ring",
        ],
    )
    assert scenario.behaviour.win_back.enabled is False
    assert scenario.time.horizon == 52
    assert scenario.name == "my run"
    assert scenario.economics.acquisition_cost is None
    assert scenario.network.kind is NetworkKind.ring


def test_set_addresses_a_default_touchpoint_by_name():
    scenario = parse_scenario("{}", overrides=["touchpoints.billing.bad=0.1"])
    by_name = {tp.name: tp for tp in scenario.touchpoints}
    assert by_name["billing"].bad == 0.1
    defaults = {tp.name: tp for tp in Scenario().touchpoints}
    assert by_name["billing"].good == defaults["billing"].good
    assert {n: tp for n, tp in by_name.items() if n != "billing"} == {
        n: tp for n, tp in defaults.items() if n != "billing"
    }


def test_set_addresses_a_touchpoint_by_index():
    scenario = parse_scenario("{}", overrides=["touchpoints.0.bad=0.05"])
    assert scenario.touchpoints[0].name == "advertising"
    assert scenario.touchpoints[0].bad == 0.05
    assert scenario.touchpoints[1:] == Scenario().touchpoints[1:]


def test_set_addresses_a_touchpoint_from_the_file_by_name():
    text = "touchpoints:\n  - {name: chat, stages: [active]}\n"
    scenario = parse_scenario(text, overrides=["touchpoints.chat.good=0.4"])
    assert scenario.touchpoint_names == ("chat",)
    assert scenario.touchpoints[0].good == 0.4


def test_set_unknown_touchpoint_lists_the_touchpoints():
    with pytest.raises(ScenarioError) as info:
        parse_scenario("{}", overrides=["touchpoints.chat.bad=0.1"])
    msg = str(info.value)
    assert "--set" in msg and "'chat'" in msg and "billing" in msg and "advertising" in msg


def test_set_unknown_key_mentions_set_and_suggests():
    with pytest.raises(ScenarioError) as info:
        parse_scenario("{}", "market.yaml", ["strategy.detecton=0.5"])
    msg = str(info.value)
    assert "--set" in msg
    assert "strategy.detecton" in msg and "did you mean 'detection'?" in msg
    assert_short(msg, 1)


def test_set_unknown_top_level_key_is_blamed_on_set_not_the_file():
    with pytest.raises(ScenarioError) as info:
        parse_scenario("{}", "market.yaml", ["stratgy.detection=0.5"])
    assert "(from --set)" in str(info.value) and "did you mean 'strategy'?" in str(info.value)


def test_set_out_of_range_is_blamed_on_set():
    with pytest.raises(ScenarioError) as info:
        parse_scenario("strategy:\n  detection: 0.1\n", "market.yaml", ["strategy.detection=2"])
    msg = str(info.value)
    assert "--set" in msg and "strategy.detection" in msg and "a number <= 1" in msg


def test_set_making_a_touchpoint_invalid_is_blamed_on_set():
    with pytest.raises(ScenarioError) as info:
        parse_scenario("{}", "market.yaml", ["touchpoints.billing.good=0.999"])
    msg = str(info.value)
    assert "(from --set)" in msg and "good + bad must be at most 1" in msg


@pytest.mark.parametrize("item", ["nonsense", "=0.5", " =1", "strategy..detection=1", "x.=1"])
def test_malformed_set_item(item):
    with pytest.raises(ScenarioError) as info:
        parse_scenario("{}", overrides=[item])
    msg = str(info.value)
    assert "--set" in msg and repr(item) in msg and "strategy.detection" in msg
    assert_short(msg, 1)


def test_set_below_a_plain_value_is_an_error():
    with pytest.raises(ScenarioError, match="--set"):
        parse_scenario("strategy: 5\n", overrides=["strategy.detection=0.5"])


def test_a_single_set_string_is_one_override_not_characters():
    assert parse_scenario("{}", overrides="strategy.detection=0.5").strategy.detection == 0.5


def test_overrides_as_a_mapping_in_parse_scenario():
    scenario = parse_scenario("{}", overrides={"strategy.detection": 0.3, "run.replications": 2})
    assert scenario.strategy.detection == 0.3
    assert scenario.run.replications == 2


def test_apply_overrides_returns_a_new_scenario_and_leaves_the_old_one():
    base = Scenario()
    new = apply_overrides(
        base,
        {"strategy.detection": 0.5, "touchpoints.billing.bad": 0.1, "network.kind": "ring"},
    )
    assert new.strategy.detection == 0.5
    assert new.touchpoints[new.touchpoint_names.index("billing")].bad == 0.1
    assert new.network.kind is NetworkKind.ring
    assert base == Scenario()  # unchanged
    assert new.economics == base.economics


def test_apply_overrides_with_nothing_returns_the_same_scenario():
    base = Scenario()
    assert apply_overrides(base, {}) is base


def test_apply_overrides_walk_away_curve_given_explicitly():
    new = apply_overrides(Scenario(), {"behaviour.walk_away.a": -1.0, "behaviour.walk_away.b": 0.5})
    assert new.walk_away_curve == (-1.0, 0.5)


def test_apply_overrides_bad_key_and_value_raise_scenario_error():
    with pytest.raises(ScenarioError, match="did you mean 'detection'"):
        apply_overrides(Scenario(), {"strategy.detecton": 0.5})
    with pytest.raises(ScenarioError, match=r"strategy\.detection: expected a number <= 1"):
        apply_overrides(Scenario(), {"strategy.detection": 2})
    with pytest.raises(ScenarioError, match="dotted field name"):
        apply_overrides(Scenario(), {1: 2})


# --- fuzzing: only ScenarioError ever escapes -------------------------------------------------


def _field_names(model: type[BaseModel] = Scenario, out: set[str] | None = None) -> set[str]:
    out = set() if out is None else out
    for name, field in model.model_fields.items():
        out.add(name)
        for inner in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                _field_names(inner, out)
    return out


NAMES = sorted(_field_names() | set(Scenario().touchpoint_names) | {k.value for k in NetworkKind})
keys = st.one_of(st.sampled_from(NAMES), st.text(max_size=8))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["active", "prospect", "ring", "0.5", "abc"]),
)
nested = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=12,
)
sections = st.dictionaries(keys, nested, max_size=6)
yaml_text = st.text(
    alphabet=st.sampled_from(list("abcdz01.5:-[]{},'\"&*!#|>?@% \n\t")) | st.characters(),
    max_size=80,
)
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parses_or_scenario_error(text: str, overrides=()) -> None:
    try:
        result = parse_scenario(text, "fuzz.yaml", overrides)
    except ScenarioError as exc:
        assert str(exc).strip(), "empty error message"
        assert "fuzz.yaml" in str(exc) or "--set" in str(exc)
    else:
        assert isinstance(result, Scenario)


@pytest.mark.parametrize("text", ["!!set {}", "!!set {time: null}", "--- !!set\n? time\n"])
def test_a_file_that_is_a_set_is_refused_in_one_line(text):
    """A mapping tagged !!set is loaded as a Python set, not the mapping of sections (found by
    the fuzz test below: it raised AttributeError)."""
    with pytest.raises(ScenarioError, match=r"x.yaml:\d+: expected a mapping of sections .* "
                       r"found a set \(tag !!set\)"):  # fmt: skip
        parse_scenario(text, "x.yaml")


@FUZZ
@given(yaml_text)
def test_fuzz_any_text_gives_a_scenario_or_a_scenario_error(text):
    parses_or_scenario_error(text)


@FUZZ
@given(sections)
def test_fuzz_any_nested_mapping_as_yaml_gives_a_scenario_or_a_scenario_error(data):
    parses_or_scenario_error(yaml.safe_dump(data))


@FUZZ
@given(st.dictionaries(st.one_of(keys, st.integers(), st.none()), nested, max_size=6))
def test_fuzz_any_nested_mapping_validates_or_raises_scenario_error(data):
    try:
        assert isinstance(validate(data), Scenario)
    except ScenarioError as exc:
        assert str(exc).strip()


set_items = st.builds(
    lambda path, value: f"{'.'.join(path)}={value}",
    st.lists(st.sampled_from([*NAMES, "0", "99", ""]), min_size=1, max_size=4),
    st.one_of(
        st.sampled_from(["0.5", "abc", "[1,", "{a: 1}", "", "-1", "null"]), st.text(max_size=6)
    ),
)


@FUZZ
@given(st.lists(st.one_of(set_items, st.text(max_size=20)), max_size=3))
def test_fuzz_any_set_items_give_a_scenario_or_a_scenario_error(items):
    parses_or_scenario_error("{}", items)


@FUZZ
@given(st.dictionaries(st.sampled_from(NAMES).map(lambda n: f"strategy.{n}"), scalars, max_size=3))
def test_fuzz_apply_overrides_gives_a_scenario_or_a_scenario_error(mapping):
    try:
        result = apply_overrides(Scenario(), mapping)
    except ScenarioError:
        return
    for key, value in mapping.items():
        got = getattr(result.strategy, key.split(".", 1)[1])
        if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
            assert got == value


# --- values that look like numbers but are not ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("strategy: {detection: yes}", "strategy.detection", "a number"),
        ("time: {horizon: true}", "time.horizon", "a whole number"),
        ("time: {horizon: 52.5}", "time.horizon", "a whole number"),
        ("economics: {arpu: {mean: .inf}}", "economics.arpu.mean", "finite"),
        ("time: {steps_per_year: .nan}", "time.steps_per_year", "finite"),
    ],
)
def test_booleans_fractions_and_infinities_are_not_taken_for_numbers(
    tmp_path, text, field, expected
):
    path, message = error_of(tmp_path, text + "\n")
    assert field in message and expected in message, message
    assert_short(message)


def test_a_survey_no_curve_can_fit_is_reported_at_load_time(tmp_path):
    text = (
        "name: x\nbehaviour:\n  walk_away:\n    tolerance_sd: 5\n"
        "    survey: {after_one: 0.17, after_several: 0.999, several: 2}\n"
    )
    path, message = error_of(tmp_path, text)
    assert f"{path}:3" in message and "behaviour.walk_away" in message, message
    assert "no walk-away curve" in message
    assert_short(message)


# --- events that overlap ----------------------------------------------------------------------


def test_events_valid_alone_but_not_together_are_refused_when_read(tmp_path):
    """Overlapping events apply together; a set that pushes a chance above 1 must be refused
    when the file is read, not in the middle of a run."""
    _, message = error_of(
        tmp_path,
        "events:\n"
        "  - {name: a, start: 2, duration: 3, scale: {touchpoints.product.bad: 600}}\n"
        "  - {name: b, start: 4, duration: 3, scale: {touchpoints.product.bad: 600}}\n",
    )
    assert "'a', 'b' overlap" in message and "bad" in message
    assert_short(message)
    # Apart in time, the same two events are fine.
    path = write(
        tmp_path,
        "events:\n"
        "  - {name: a, start: 2, duration: 2, scale: {touchpoints.product.bad: 600}}\n"
        "  - {name: b, start: 4, duration: 3, scale: {touchpoints.product.bad: 600}}\n",
    )
    assert len(load_scenario(path).events) == 2


# --- found by fuzzing (reliability/fuzz.py): one located line, whatever the file holds ---------


def test_a_yaml_value_python_cannot_build_names_its_line(tmp_path):
    path, message = error_of(tmp_path, "name: x\nstrategy:\n  detection: !!bool maybe\n")
    assert message.startswith(f"{path}:3: not valid YAML: a value cannot be read")
    assert_short(message, 1)


def test_deep_nesting_names_its_line(tmp_path):
    path, message = error_of(tmp_path, "name: x\nstrategy: " + "[" * 10_000 + "]" * 10_000)
    assert message == f"{path}:2: not valid YAML: nested too deeply"


@pytest.mark.parametrize(
    "text",
    [
        "strategy:\n  " + "k" * 100_000 + ": 1\n",
        "touchpoints:\n  - {name: '" + "ab " * 50_000 + "', stages: [active]}\n",
        "strategy:\n  outreach: '" + "9" * 100_000 + " per week'\n",
        "name: x\ndescription: &a [&b [x, x, x, x, x, x, x, x], [*b, *b, *b, *b, *b, *b, *b]]\n",
    ],
    ids=["long key", "long name", "million-digit unit string", "alias bomb"],
)
def test_long_keys_and_values_are_cut_to_one_short_line(tmp_path, text):
    started = time.perf_counter()
    _, message = error_of(tmp_path, text)
    assert time.perf_counter() - started < 10
    assert_short(message, 1)


def test_a_misspelt_required_key_is_one_problem_on_one_line(tmp_path):
    _, message = error_of(tmp_path, "touchpoints:\n  - {name: a, STAGES: [active]}\n")
    assert_short(message, 1)
    assert "unknown key 'touchpoints.0.STAGES' (did you mean 'stages'? it is required)" in message


def test_checks_across_touchpoints_and_events_name_their_field(tmp_path):
    text = "touchpoints:\n  - {name: a, stages: [active]}\n  - {name: a, stages: [active]}\n"
    assert "touchpoints: names must be unique, repeated: a" in error_of(tmp_path, text)[1]
    event = "events:\n  - {name: e0, start: 1, duration: 2, set: {strategy.outreach: 2}}\n"
    assert "events.0: event 'e0' makes strategy.outreach invalid" in error_of(tmp_path, event)[1]


def test_a_long_list_of_touchpoints_is_shortened_in_a_message(tmp_path):
    touchpoints = "".join(f"  - {{name: t{i}, stages: [active]}}\n" for i in range(100))
    event = "events:\n  - {start: 1, duration: 2, scale: {touchpoints.billing.bad: 2}}\n"
    _, message = error_of(tmp_path, "touchpoints:\n" + touchpoints + event)
    assert_short(message, 1)
    assert "events.0: no touchpoint named 'billing'" in message and "(100 in all)" in message


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("behaviour: {walk_away: {a: 1e300, b: 1}}", "behaviour.walk_away.a"),
        (
            "behaviour: {baseline_churn: {satisfaction_elasticity: 1e300}}",
            "satisfaction_elasticity",
        ),
        ("behaviour: {reviews: {window: 1000000000000000000000000000000}}", "reviews.window"),
    ],
)
def test_values_that_overflow_the_model_are_refused_when_read(tmp_path, text, field):
    # Found by fuzzing: these validated, then overflowed float32 (a warning) or a deque size.
    _, message = error_of(tmp_path, text + "\n")
    assert field in message and "expected a" in message
    assert_short(message, 1)


def test_an_alias_bomb_as_the_network_kind_is_refused_at_once(tmp_path):
    bomb = "[&a [x, x, x, x, x, x, x, x, x], &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]"
    for level in "cdefghi":
        bomb += f", &{level} [" + ", ".join([f"*{chr(ord(level) - 1)}"] * 9) + "]"
    started = time.perf_counter()
    _, message = error_of(tmp_path, f"network:\n  kind: {bomb}]\n")
    assert time.perf_counter() - started < 5
    assert "network.kind: expected one of well_mixed" in message
    assert_short(message, 1)


def test_the_fitted_walk_away_curve_travels_with_a_pickled_scenario(tmp_path) -> None:
    """A pool's worker gets the scenario pickled: it builds its model with the curve fitted
    where the scenario was read, without fitting again or loading SciPy's optimizers."""
    spec = load_scenario(ROOT / "scenarios" / "reactive.yaml", ["population.prospects=200",
                         "population.customers=50", "time.horizon=2"])  # fmt: skip
    assert spec.behaviour.walk_away.a is None  # fitted to the survey, not given
    (tmp_path / "spec.pkl").write_bytes(pickle.dumps(spec))  # as read, nothing asked of it
    fitted = spec.walk_away_curve
    code = (
        "import pickle, sys\n"
        "from cxsim.engines import ENGINES\n"
        f"spec = pickle.loads(open({str(tmp_path / 'spec.pkl')!r}, 'rb').read())\n"
        "ENGINES['vector'](spec, rng=1).run()\n"
        "print(spec.walk_away_curve, 'scipy.optimize' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()  # fmt: skip
    assert out == f"{fitted} False"
