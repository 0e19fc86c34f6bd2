"""Scenario variants (``base:``), ``validate --resolved`` and ``--set`` aimed at one scenario.

A variant's errors must still point at the file and line where the bad value was written, and
every broken chain of bases must end as one ScenarioError naming the file, never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cxsim.cli import main
from cxsim.loading import ScenarioError, load_scenario, load_scenarios, parse_scenario
from cxsim.scenario import Scenario

from .conftest import ROOT

REACTIVE = ROOT / "scenarios" / "reactive.yaml"
PROACTIVE = ROOT / "scenarios" / "proactive.yaml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, overrides=()) -> str:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    message = str(info.value)
    assert "Traceback" not in message and "pydantic" not in message
    return message


# --- merging ------------------------------------------------------------------------------


def test_mappings_merge_key_by_key_and_the_variant_wins(tmp_path):
    write(tmp_path / "base.yaml", "name: base\nstrategy: {detection: 0.4, outreach: 0.1}\n")
    variant = write(tmp_path / "variant.yaml", "base: base.yaml\nstrategy: {outreach: 0.3}\n")
    spec = load_scenario(variant)
    assert spec.name == "base"  # not set in the variant: inherited like any other field
    assert (spec.strategy.detection, spec.strategy.outreach) == (0.4, 0.3)


def test_a_list_in_the_variant_replaces_the_base_list_whole(tmp_path):
    # The base's second touchpoint is invalid; replacing the list drops it, so the variant loads.
    write(
        tmp_path / "base.yaml",
        "touchpoints:\n"
        "  - {name: shop, stages: [active]}\n"
        "  - {name: broken, stages: [active], good: 0.9, bad: 0.9}\n",
    )
    variant = write(
        tmp_path / "variant.yaml",
        "base: base.yaml\ntouchpoints:\n  - {name: app, stages: [active], bad: 0.02}\n",
    )
    spec = load_scenario(variant)
    assert spec.touchpoint_names == ("app",)
    assert spec.touchpoints[0].good == 0.1  # the field default, not the base item's value


def test_nested_variants_resolve_each_base_from_its_own_folder(tmp_path):
    # markets/base.yaml <- strategies/cx.yaml <- runs/cheap/cheap.yaml
    write(tmp_path / "markets" / "base.yaml", "population: {customers: 500}\nname: market\n")
    write(
        tmp_path / "strategies" / "cx.yaml",
        "base: ../markets/base.yaml\nname: cx\nstrategy: {detection: 0.5, costs: {fixed: 100}}\n",
    )
    cheap = write(
        tmp_path / "runs" / "cheap" / "cheap.yaml",
        "base: ../../strategies/cx.yaml\nname: cheap\nstrategy: {costs: {fixed: 10}}\n",
    )
    spec = load_scenario(cheap)
    assert spec.name == "cheap" and spec.population.customers == 500
    assert spec.strategy.detection == 0.5 and spec.strategy.costs.fixed == 10


def test_the_base_is_found_from_the_variants_folder_not_the_working_folder(tmp_path, monkeypatch):
    write(tmp_path / "sub" / "base.yaml", "name: right\n")
    write(tmp_path / "base.yaml", "name: wrong\n")
    variant = write(tmp_path / "sub" / "variant.yaml", "base: base.yaml\n")
    monkeypatch.chdir(tmp_path)
    assert load_scenario("sub/variant.yaml").name == "right"
    assert load_scenario(variant).name == "right"


def test_the_shipped_proactive_file_is_a_short_variant_of_reactive():
    text = PROACTIVE.read_text(encoding="utf-8")
    content = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert content[0].startswith("base: reactive.yaml") and len(content) <= 16
    resolved = load_scenario(PROACTIVE)
    reactive = load_scenario(REACTIVE)
    assert resolved.model_dump(exclude={"name", "description", "strategy"}) == reactive.model_dump(
        exclude={"name", "description", "strategy"}
    )
    assert resolved.strategy.support_contact == reactive.strategy.support_contact  # inherited


def test_parse_scenario_finds_a_base_next_to_the_given_filename(tmp_path):
    write(tmp_path / "base.yaml", "strategy: {outreach: 0.2}\n")
    spec = parse_scenario("base: base.yaml\n", str(tmp_path / "text.yaml"))
    assert spec.strategy.outreach == 0.2


# --- errors name the file and line the value came from ------------------------------------


def test_a_bad_value_from_the_base_names_the_base_file_and_line(tmp_path):
    base = write(tmp_path / "base.yaml", "name: b\nstrategy:\n  detection: 1.5\n")
    variant = write(tmp_path / "v" / "variant.yaml", "base: ../base.yaml\nname: v\n")
    message = error_of(variant)
    assert message.startswith(f"{tmp_path / 'v' / '../base.yaml'}:3: strategy.detection")
    assert Path(message.split(":")[0]).resolve() == base.resolve()
    assert "1.5" in message and "variant.yaml" not in message


def test_a_bad_value_from_the_variant_names_the_variant_file_and_line(tmp_path):
    write(tmp_path / "base.yaml", "name: b\nstrategy:\n  detection: 0.5\n  outreach: 0.1\n")
    variant = write(
        tmp_path / "variant.yaml", "# a variant\nbase: base.yaml\nstrategy:\n  outreach: 2\n"
    )
    message = error_of(variant)
    assert message == f"{variant}:4: strategy.outreach: expected a number <= 1.0, found 2"


def test_errors_in_both_files_are_each_reported_at_their_own_line(tmp_path):
    base = write(tmp_path / "base.yaml", "name: b\nstrategy:\n  detection: 1.5\n")
    variant = write(tmp_path / "variant.yaml", "base: base.yaml\n\nstrategy: {outreach: -1}\n")
    lines = error_of(variant).splitlines()
    assert any(line.startswith(f"{base}:3: strategy.detection") for line in lines), lines
    assert any(line.startswith(f"{variant}:3: strategy.outreach") for line in lines), lines


def test_a_section_the_variant_replaces_is_blamed_on_the_variant(tmp_path):
    # The base wrote a valid mapping; the variant puts a plain value where it stood.
    write(tmp_path / "base.yaml", "strategy:\n  detection: 0.5\n")
    variant = write(tmp_path / "variant.yaml", "base: base.yaml\nstrategy: 3\n")
    assert error_of(variant).startswith(f"{variant}:2: strategy: expected a mapping")


def test_a_key_misspelt_in_the_base_names_the_base(tmp_path):
    base = write(tmp_path / "base.yaml", "strategy:\n  detecton: 0.5\n")
    variant = write(tmp_path / "variant.yaml", "base: base.yaml\nstrategy: {outreach: 0.1}\n")
    message = error_of(variant)
    assert message.startswith(f"{base}:2: unknown key 'strategy.detecton'")
    assert "did you mean 'detection'" in message


def test_set_applies_to_the_merged_scenario_and_is_blamed_on_set(tmp_path):
    write(tmp_path / "base.yaml", "strategy: {detection: 0.5}\n")
    variant = write(tmp_path / "variant.yaml", "base: base.yaml\n")
    assert load_scenario(variant, ["strategy.detection=0.25"]).strategy.detection == 0.25
    message = error_of(variant, ["strategy.detection=3"])
    assert message.startswith(f"{variant} (from --set): strategy.detection")


# --- broken chains of bases ---------------------------------------------------------------


def test_a_missing_base_names_the_variant_line_and_the_missing_path(tmp_path):
    variant = write(tmp_path / "variant.yaml", "name: v\nbase: sub/nothing.yaml\n")
    message = error_of(variant)
    assert message == f"{variant}:2: base: {tmp_path / 'sub' / 'nothing.yaml'}: no such file"


def test_a_base_that_is_a_folder(tmp_path):
    (tmp_path / "markets").mkdir()
    variant = write(tmp_path / "variant.yaml", "base: markets\n")
    message = error_of(variant)
    assert message.startswith(f"{variant}:1: base: ") and "is a folder" in message


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("[a.yaml]", "a list"),
        ("{file: a.yaml}", "a mapping"),
        ("3", "3"),
        ("", "nothing"),
        ("''", "empty text"),
    ],
)
def test_a_base_that_is_not_a_path(tmp_path, value, found):
    variant = write(tmp_path / "variant.yaml", f"name: v\nbase: {value}\n")
    message = error_of(variant)
    assert message.startswith(f"{variant}:2: base: expected the path")
    assert message.endswith(f"found {found}")


def test_a_scenario_that_is_its_own_base(tmp_path):
    variant = write(tmp_path / "self.yaml", "base: ./self.yaml\n")
    message = error_of(variant)
    assert message.startswith(f"{variant}:1: base:") and "loop of bases" in message


def test_a_loop_of_bases_lists_the_files_in_it(tmp_path):
    first = write(tmp_path / "a.yaml", "base: sub/b.yaml\n")
    write(tmp_path / "sub" / "b.yaml", "name: b\nbase: ../a.yaml\n")
    message = error_of(first)
    assert message.startswith(f"{tmp_path / 'sub' / 'b.yaml'}:2: base:")
    second = tmp_path / "sub" / "b.yaml"
    assert message.endswith(
        f"a loop of bases: {first} -> {second} -> {second.parent / '../a.yaml'}"
    )


def test_a_chain_of_bases_that_is_too_long(tmp_path):
    for i in range(12):
        write(tmp_path / f"s{i}.yaml", f"base: s{i + 1}.yaml\n")
    write(tmp_path / "s12.yaml", "name: bottom\n")
    message = error_of(tmp_path / "s0.yaml")
    assert "too many bases" in message and "at most 8" in message
    assert load_scenario(tmp_path / "s4.yaml").name == "bottom"  # 8 bases are fine


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- just a list\n", ":1: expected a mapping of sections"),
        ("a: [1\n", ":2: not valid YAML"),
        ("name: x\nname: y\n", ":2: name: key appears twice"),
        ("", ": the file is empty"),
        ("name: b\ndescription: &a [*a]\n", ":2: description: expected text"),
    ],
    ids=["list", "not-yaml", "duplicate-key", "empty", "aliases"],
)
def test_a_broken_base_names_itself_and_the_base_line_that_led_to_it(tmp_path, text, expected):
    base = write(tmp_path / "base.yaml", text)
    variant = write(tmp_path / "variant.yaml", "name: v\nbase: base.yaml\n")
    message = error_of(variant)
    assert message.startswith(f"{base}{expected}"), message
    assert len(message.splitlines()) == 1


def test_a_base_that_is_not_utf8_text(tmp_path):
    (tmp_path / "base.yaml").write_bytes(b"name: \xff\xfe\n")
    variant = write(tmp_path / "variant.yaml", "base: base.yaml\n")
    assert error_of(variant) == (
        f"{variant}:1: base: {tmp_path / 'base.yaml'}: not a text file (expected UTF-8 YAML)"
    )


def test_self_referencing_sections_in_base_and_variant_end_in_an_error_quickly(tmp_path):
    write(tmp_path / "base.yaml", "strategy: &a {detection: 0.1, costs: *a}\n")
    variant = write(tmp_path / "variant.yaml", "base: base.yaml\nstrategy: &b {costs: *b}\n")
    started = time.perf_counter()
    assert "strategy.costs" in error_of(variant)
    assert time.perf_counter() - started < 5


def test_base_is_read_from_files_only_not_from_set(tmp_path):
    variant = write(tmp_path / "variant.yaml", "name: v\n")
    assert "unknown key 'base'" in error_of(variant, ["base=other.yaml"])


# --- validate --resolved --------------------------------------------------------------------


def test_validate_resolved_prints_yaml_that_loads_back_to_the_same_scenario(tmp_path, capsys):
    assert main(["validate", "--resolved", str(PROACTIVE)]) == 0
    printed = capsys.readouterr().out
    assert "base:" not in printed and "support_contact: 0.4" in printed  # every field, merged
    again = load_scenario(write(tmp_path / "again.yaml", printed))
    assert again == load_scenario(PROACTIVE)
    assert again.model_dump() == load_scenario(PROACTIVE).model_dump()


def test_resolved_yaml_keeps_text_that_looks_like_other_values(tmp_path, capsys):
    odd = write(
        tmp_path / "odd.yaml",
        "name: '1e3'\ndescription: 'yes: no # not a comment'\n"
        "strategy: {name: 'null'}\neconomics: {currency: '2024-01-01'}\n",
    )
    assert main(["validate", "--resolved", str(odd)]) == 0
    again = load_scenario(write(tmp_path / "again.yaml", capsys.readouterr().out))
    assert again == load_scenario(odd) and again.name == "1e3"


def test_validate_resolved_of_several_files_prints_one_document_each(capsys):
    argv = ["validate", "--resolved", str(REACTIVE), str(PROACTIVE)]
    assert main([*argv, "--set", "2:strategy.outreach=0.05"]) == 0
    documents = capsys.readouterr().out.split("---\n")
    specs = [parse_scenario(doc) for doc in documents]
    assert [s.name for s in specs] == ["reactive", "proactive"]
    assert (specs[0].strategy.outreach, specs[1].strategy.outreach) == (0.0, 0.05)


# --- --set aimed at one scenario ------------------------------------------------------------


def test_set_with_a_target_changes_only_that_scenario(tmp_path):
    cheap = write(tmp_path / "cheap.yaml", f"base: {PROACTIVE}\nname: cheap_cx\n")
    reactive, variant = load_scenarios(
        [REACTIVE, cheap],
        [
            "strategy.costs.per_customer=0.1",  # no target: both
            "reactive:strategy.detection=0.2",  # by name
            "cheap:strategy.costs.fixed=0",  # by file stem (the name is cheap_cx)
            "2:description=a:b",  # by position; the ':' in the value is the value's
            "cheap_cx:strategy.costs.per_customer=0.7",  # later settings win, as without targets
        ],
    )
    assert (reactive.strategy.detection, variant.strategy.detection) == (0.2, 0.5)
    assert (reactive.strategy.costs.fixed, variant.strategy.costs.fixed) == (0.0, 0.0)
    assert (reactive.description, variant.description) == (
        load_scenario(REACTIVE).description,
        "a:b",
    )
    assert (reactive.strategy.costs.per_customer, variant.strategy.costs.per_customer) == (0.1, 0.7)


def test_values_with_a_colon_still_work_without_a_target():
    (spec,) = load_scenarios([REACTIVE], ["description=a:b", "strategy.name=https://x.org"])
    assert (spec.description, spec.strategy.name) == ("a:b", "https://x.org")


def test_run_with_a_targeted_set_records_it_in_the_manifest(tmp_path):
    argv = ["run", str(REACTIVE), str(PROACTIVE), "-r", "1", "--workers", "1",
            "--out", str(tmp_path), "--set", "population.customers=60",
            "--set", "population.prospects=140", "--set", "time.horizon=8",
            "--set", "proactive:strategy.costs.per_customer=0.5"]  # fmt: skip
    assert main(argv) == 0
    (folder,) = tmp_path.iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    scenarios = [Scenario.model_validate(s["scenario"]) for s in manifest["scenarios"]]
    assert [s.name for s in scenarios] == ["reactive", "proactive"]
    assert [s.strategy.costs.per_customer for s in scenarios] == [0.0, 0.5]
    assert [s.population.customers for s in scenarios] == [60, 60]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("nope:strategy.detection=0.5", "no scenario 'nope'"),
        ("3:strategy.detection=0.5", "no scenario '3'"),
        (":strategy.detection=0.5", "before ':'"),
    ],
)
def test_an_unknown_target_is_one_line_and_exit_status_2(item, expected):
    done = subprocess.run(
        [sys.executable, "-m", "cxsim.cli", "run", str(REACTIVE), str(PROACTIVE), "--set", item],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert expected in line
    if "nope" in item:
        assert "1 'reactive', 2 'proactive'" in line


def test_a_target_two_scenarios_answer_to_asks_for_the_position(tmp_path, capsys):
    one = write(tmp_path / "a" / "market.yaml", "name: one\n")
    two = write(tmp_path / "b" / "market.yaml", "name: two\n")
    assert main(["validate", str(one), str(two), "--set", "market:strategy.outreach=0.1"]) == 2
    assert "'market' names scenarios 1, 2; use the position" in capsys.readouterr().err
    # A name is looked for before a file stem: 'reactive' is the first file only, though the
    # second file's stem is reactive too.
    copy = write(tmp_path / "reactive.yaml", f"base: {REACTIVE}\nname: copy\n")
    first, second = load_scenarios([REACTIVE, copy], ["reactive:strategy.outreach=0.1"])
    assert (first.strategy.outreach, second.strategy.outreach) == (0.1, 0.0)


def test_a_target_where_only_one_scenario_is_read_is_explained(tmp_path):
    message = error_of(REACTIVE, ["reactive:strategy.detection=0.5"])
    assert "picks one scenario of several" in message


def test_a_field_missing_from_a_replaced_list_item_is_blamed_on_the_variant(tmp_path):
    # The base's second item has stages on line 4; the variant's second item has none. The
    # base's lines under the replaced list must not be used for the variant's items.
    write(
        tmp_path / "base.yaml",
        "touchpoints:\n  - {name: a, stages: [active]}\n  - name: b\n    stages: [active]\n",
    )
    variant = write(
        tmp_path / "variant.yaml",
        "base: base.yaml\ntouchpoints:\n  - {name: a, stages: [active]}\n  - {name: c}\n",
    )
    message = error_of(variant)
    assert message == f"{variant}:4: touchpoints.1.stages: required field is missing"


def test_the_readme_shows_the_shipped_proactive_file_as_it_is():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```yaml\nbase: reactive.yaml", 1)[1].split("```", 1)[0]
    shipped = PROACTIVE.read_text(encoding="utf-8")
    assert "base: reactive.yaml" + block in shipped, (
        "README's variant example differs from the file"
    )


# --- found by fuzzing (reliability/fuzz.py) ---------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ('"base\\0.yaml"', "not a possible file name (it holds a NUL character)"),
        ("x" * 100_000 + ".yaml", "not a possible file name (File name too long)"),
        ('"base.yaml\\n"', "no such file"),
    ],
    ids=["NUL character", "name too long", "line break"],
)
def test_a_base_that_cannot_be_a_file_name_is_one_line(tmp_path, capsys, target, expected):
    path = write(tmp_path / "variant.yaml", f"base: {target}\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 300 and expected in err, err


def test_a_long_chain_of_bases_is_shown_short(tmp_path):
    for k in range(12):
        write(tmp_path / f"b{k}.yaml", f"base: b{k + 1}.yaml\n")
    write(tmp_path / "b12.yaml", "{}\n")
    message = error_of(tmp_path / "b0.yaml")
    assert "too many bases in a row" in message and "more) ->" in message
    assert len(message) < 500 and "\n" not in message


@pytest.mark.parametrize("where", ["scenario", "base", "sweep"])
def test_a_device_is_refused_not_read_forever(tmp_path, capsys, where):
    # Found by fuzzing: a sweep listing /dev/zero as a scenario filled the memory.
    if where == "scenario":
        args = ["validate", "/dev/zero"]
    elif where == "base":
        args = ["validate", str(write(tmp_path / "v.yaml", "base: /dev/zero\n"))]
    else:
        sweep = write(tmp_path / "s.yaml", "scenarios: [/dev/zero]\nparameters: {x: [1]}\n")
        args = ["sweep", "--print-problem", str(sweep)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/dev/zero: not a regular file" in err, err


def test_a_file_over_ten_megabytes_is_refused_before_it_is_read(tmp_path):
    path = write(tmp_path / "big.yaml", "description: '" + "x" * (10 * 2**20) + "'\n")
    assert "a scenario or sweep file is at most 10 MB" in error_of(path)
