"""The what-if dashboard: the two-strategy model without a browser, then the page in Chromium."""

from __future__ import annotations

import inspect
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from cxsim.dashboard.comparison import (
    LEVERS,
    Comparison,
    lever_value,
    network_sample,
    parse_seed,
    replicate,
    write_variant,
)
from cxsim.loading import ScenarioError, load_scenario

HERE = Path(__file__).resolve().parent
REACTIVE = HERE / "scenarios" / "dashboard_reactive.yaml"
PROACTIVE = HERE / "scenarios" / "dashboard_proactive.yaml"
PATHS = (str(REACTIVE), str(PROACTIVE))


def test_steps_both_models_and_the_same_seed_gives_the_same_lines():
    one, two = Comparison(paths=PATHS), Comparison(paths=PATHS)
    for _ in range(5):
        one.step()
        two.step()
    assert [m.steps for m in one.models] == [5, 5]
    assert one.series("customers") == two.series("customers")
    assert one.series("cumulative_profit") == two.series("cumulative_profit")
    assert len(one.series("customers")[0]) == 6  # step 0 and five steps
    # Same seed, same market: both strategies start from the same network and people.
    first, second = one.models[0].adjacency, one.models[1].adjacency
    assert np.array_equal(first.indptr, second.indptr)
    assert np.array_equal(first.indices, second.indices)
    assert np.array_equal(one.models[0].arpu, one.models[1].arpu)
    # ...and the strategies then differ.
    assert one.series("nps")[0] != one.series("nps")[1]


def test_stops_at_the_horizon():
    model = Comparison(paths=PATHS)
    while model.running:
        model.step()
    assert [m.steps for m in model.models] == [20, 20]


def test_strategy_levers_change_the_second_scenario_and_market_levers_both():
    model = Comparison(paths=PATHS, detection=0.8, outreach=0.05, arpu=30)
    reactive, proactive = model.specs
    assert reactive.strategy.detection == 0.0
    assert reactive.strategy.outreach == 0.0
    assert proactive.strategy.detection == 0.8
    assert proactive.strategy.outreach == 0.05
    assert reactive.economics.arpu.mean == proactive.economics.arpu.mean == 30
    # Levers left alone keep each file's value.
    assert proactive.strategy.prevention == 0.3


def test_every_lever_is_a_keyword_and_sets_its_field():
    names = set(inspect.signature(Comparison.__init__).parameters) - {"self", "paths", "seed"}
    assert names == {lever.name for lever in LEVERS}
    for lever in LEVERS:
        value = lever.low + lever.step  # a value no shipped scenario uses
        if lever.name == "survey_after_several":  # must stay above after_one (0.17)
            value = lever.high - lever.step
        model = Comparison(paths=PATHS, **{lever.name: value})
        assert lever_value(model.specs[1], lever) == pytest.approx(value)
        base = lever_value(load_scenario(REACTIVE), lever)
        assert lever_value(model.specs[0], lever) == pytest.approx(value if lever.market else base)


def test_new_levers_reach_the_right_scenario():
    model = Comparison(
        paths=PATHS, support_contact=0.9, first_contact_resolution=0.95, population=800,
        referral_conversion=0.4, survey_after_one=0.3, survey_after_several=0.8,
    )  # fmt: skip
    reactive, proactive = model.specs
    # Strategy levers: the second scenario only.
    assert (reactive.strategy.support_contact, proactive.strategy.support_contact) == (0.4, 0.9)
    assert reactive.strategy.first_contact_resolution == 0.7
    assert proactive.strategy.first_contact_resolution == 0.95
    # Market parameters: both, and the market size keeps the files' 1:3 customers to prospects.
    for spec in model.specs:
        assert (spec.population.customers, spec.population.prospects) == (200, 600)
        assert spec.behaviour.referral.conversion == 0.4
        survey = spec.behaviour.walk_away.survey
        assert (survey.after_one, survey.after_several) == (0.3, 0.8)
    assert [m.n for m in model.models] == [800, 800]
    assert model.problems == []


def test_survey_figures_out_of_order_give_a_message_not_a_crash():
    model = Comparison(paths=PATHS, survey_after_one=0.6, survey_after_several=0.5, arpu=20)
    survey = model.specs[0].behaviour.walk_away.survey
    assert (survey.after_one, survey.after_several) == (0.17, 0.59)  # the files' figures
    assert model.specs[1].economics.arpu.mean == 20  # the other settings still apply
    assert len(model.problems) == 1
    assert "after_several must be larger than after_one" in model.problems[0]
    assert "Market: walk-away, 1 bad" in model.problems[0]
    model.step()  # and the models run


def test_slider_labels_show_their_values():
    solara = pytest.importorskip("solara")
    from cxsim.dashboard.app import PageComparison, model_params

    model = PageComparison(paths=PATHS, detection=solara.Reactive(0.65), population=1000)
    assert model.specs[1].strategy.detection == 0.65
    values = {lever.name: solara.Reactive(lever_value(model.specs[1], lever)) for lever in LEVERS}
    params = model_params(model, values)
    assert params["detection"]["label"].endswith(": 0.65")
    assert params["population"]["label"] == "Market: people: 1,000"
    assert params["population"]["type"] == "SliderInt"


def test_slider_fractions_are_rounded():
    model = Comparison(paths=PATHS, detection=0.1 + 0.2)
    assert model.specs[1].strategy.detection == 0.3


def test_seed_is_checked_with_the_scenario_messages():
    spec = load_scenario(REACTIVE)
    assert parse_seed("42", spec) == 42
    with pytest.raises(ScenarioError, match=r"^run\.seed: expected a whole number, found 'abc'$"):
        parse_seed("abc", spec)
    with pytest.raises(ScenarioError, match=r"^run\.seed: expected a number >= 0, found -3$"):
        parse_seed("-3", spec)
    good = Comparison(paths=PATHS, seed="42")
    assert (good.seed, good.seed_error) == (42, None)
    assert good.specs[1].run.seed == 42
    bad = Comparison(paths=PATHS, seed="1.5")
    assert bad.seed == 7  # the scenario's seed is kept
    assert bad.seed_error == "run.seed: expected a whole number, found 1.5"
    different = Comparison(paths=PATHS, seed="43")
    assert not np.array_equal(different.models[0].arpu, good.models[0].arpu)


def test_pairs_must_share_a_market(tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(
        REACTIVE.read_text()
        .replace("name: reactive", "name: other")
        .replace("customers: 100", "customers: 50")
    )
    with pytest.raises(ScenarioError, match="population: expected the same population section"):
        Comparison(paths=(str(REACTIVE), str(other)))
    with pytest.raises(ScenarioError, match="expected a name different"):
        Comparison(paths=(str(REACTIVE), str(REACTIVE)))


def test_variant_file_is_base_and_only_the_differences(tmp_path):
    model = Comparison(paths=PATHS, seed="11", detection=0.7, arpu=20)
    out = tmp_path / "variants" / "more-detection.yaml"
    assert write_variant(model, out) == out
    data = yaml.safe_load(out.read_text())
    # The base is a path relative to the variant's folder (its exact spelling depends on where
    # the repository and the temporary folder are); it must lead back to the base file.
    assert not Path(data["base"]).is_absolute()
    assert (out.parent / data["base"]).resolve() == PROACTIVE
    assert {k: v for k, v in data.items() if k != "base"} == {
        "name": "more-detection",
        "strategy": {"detection": 0.7},
        "economics": {"arpu": {"mean": 20.0}},
        "run": {"seed": 11},
    }
    assert list(data) == ["base", "name", "strategy", "economics", "run"]
    assert (out.parent / data["base"]).resolve() == PROACTIVE


def test_variant_next_to_its_base_and_unchanged_settings(tmp_path):
    base = tmp_path / "proactive.yaml"
    base.write_text(PROACTIVE.read_text())
    model = Comparison(paths=(str(REACTIVE), str(base)))
    path = write_variant(model, tmp_path / "same.yaml")
    assert yaml.safe_load(path.read_text()) == {"base": "proactive.yaml", "name": "same"}
    with pytest.raises(ScenarioError, match="is the scenario itself"):
        write_variant(model, base)
    with pytest.raises(ScenarioError, match="ending in .yaml"):
        write_variant(model, tmp_path / "notes.txt")


def test_network_sample_is_connected_small_and_reused():
    model = Comparison(paths=PATHS)
    sample = model.sample
    assert len(sample.people) == 300 and len(set(sample.people)) == 300
    assert sample.xy.shape == (300, 2) and np.isfinite(sample.xy).all()
    assert len(sample.edges) > 300  # grown along the edges, so the drawing shows links
    contacts = model.models[0].adjacency
    a, b = sample.people[sample.edges[:, 0]], sample.people[sample.edges[:, 1]]
    assert all(v in contacts.contacts_of(u) for u, v in zip(a.tolist(), b.tolist(), strict=True))
    assert Comparison(paths=PATHS).sample is sample  # same network: layout computed once
    assert network_sample(contacts) is sample


def test_replications_give_means_and_intervals():
    rows = replicate(Comparison(paths=PATHS), 3)
    assert [r[0] for r in rows][:2] == ["annual churn", "NPS, last year"]
    for row in rows:
        assert len(row) == 4 and all("[" in cell and "]" in cell for cell in row[1:])


def test_images_draw_for_the_current_step():
    from cxsim.dashboard.plots import Charts, NetworkView

    model = Comparison(paths=PATHS)
    model.step()
    charts = Charts(model)
    first = charts.png()
    assert first.startswith(b"\x89PNG")
    assert [len(ax.get_lines()) for ax in charts.figure.axes] == [2, 4, 6, 2, 0, 2, 2]
    titles = [ax.get_title() for ax in charts.figure.axes]
    assert "Revenue per week (EUR)" in titles and "Cumulative profit (EUR)" in titles
    assert any("CSAT" in t for t in titles) and any("by cause" in t for t in titles)
    model.step()
    assert charts.png() != first
    network = NetworkView(model)
    image = network.png()
    assert network.png() is image  # nothing changed: the image is not drawn again


def test_cli_rejects_a_bad_scenario_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: {detecton: 0.5}\n")
    result = subprocess.run(
        [sys.executable, "-m", "cxsim.cli", "dashboard", str(REACTIVE), str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "unknown key 'strategy.detecton' (did you mean 'detection'?)" in result.stderr
    one = subprocess.run(
        [sys.executable, "-m", "cxsim.cli", "dashboard", str(REACTIVE)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert one.returncode == 2 and "compares two scenarios" in one.stderr


def test_cli_refuses_a_port_another_program_listens_on_and_an_unknown_host():
    with socket.socket() as other:  # another program's server on the port
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        taken = subprocess.run(
            [sys.executable, "-m", "cxsim.cli", "dashboard", *PATHS, "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert taken.returncode == 2
    assert taken.stderr == (
        f"cxsim: error: --port {port}: another program is using it at 127.0.0.1; "
        "choose another port (--port 0 takes a free one)\n"
    )
    assert taken.stdout == ""  # no address announced: the page there is not the dashboard
    nowhere = subprocess.run(
        [sys.executable, "-m", "cxsim.cli", "dashboard", *PATHS, "--host", "no-such-host.invalid"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert nowhere.returncode == 2
    assert nowhere.stderr.startswith("cxsim: error: --host no-such-host.invalid: cannot listen")
    assert nowhere.stderr.count("\n") == 1


def test_port_zero_is_a_free_port_and_a_held_one_is_refused():
    from cxsim.dashboard.server import listening_port
    from cxsim.errors import UsageError

    port = listening_port("127.0.0.1", 0)
    assert port > 0
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        with pytest.raises(UsageError, match=f"--port {port}: another program is using it"):
            listening_port("127.0.0.1", port)
    assert listening_port("127.0.0.1", port) == port  # free again once it is let go
    with pytest.raises(UsageError, match="--port 70000: expected a port from 0 to 65535"):
        listening_port("127.0.0.1", 70000)  # the system would take it as port 4464


def test_a_name_for_two_addresses_needs_the_port_free_at_both(monkeypatch):
    """As on most machines, where localhost is ::1 and 127.0.0.1: the server binds both."""
    from cxsim.dashboard import server
    from cxsim.errors import UsageError

    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    real = socket.getaddrinfo

    def both(host, port, *args, **kwargs):
        if host != "localhost":
            return real(host, port, *args, **kwargs)
        return [*real("::1", port, *args, **kwargs), *real("127.0.0.1", port, *args, **kwargs)]

    monkeypatch.setattr(server.socket, "getaddrinfo", both)
    port = server.listening_port("localhost", 0)  # one free port, free at both addresses
    with socket.socket() as other:  # another program on the IPv4 address only
        other.bind(("127.0.0.1", port))
        other.listen()
        with pytest.raises(UsageError, match=f"--port {port}: another program is using it"):
            server.listening_port("localhost", port)
        # IPv6 only, as the server listens on "::": the IPv4 program is not in the way
        assert server.listening_port("::", port) == port


# --- the page in a real browser -----------------------------------------------------------------


@pytest.fixture
def server():
    from cxsim.dashboard.server import listening_port, start, wait_until_up

    port = listening_port("127.0.0.1", 0)
    process = start(PATHS, "127.0.0.1", port)
    try:
        url = f"http://127.0.0.1:{port}/"
        assert wait_until_up(url, process), "the dashboard server did not start"
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _images(page) -> list[str]:
    return page.eval_on_selector_all("img", "els => els.map(e => e.src)")


def _headline(page) -> str:
    return page.inner_text(".cxsim-headline")


HEADLINE_SHOWS = (
    "text => { const e = document.querySelector('.cxsim-headline');"
    " return e !== null && e.innerText.includes(text); }"
)
"""Browser predicate: the headline panel exists and shows ``text`` (it is redrawn at times)."""


def test_page_steps_and_saves_a_variant_offline(server, tmp_path):
    from tests.browser import open_page, visible_size

    with open_page(server, 1400, 1600) as (page, problems):
        page.wait_for_selector(".cxsim-headline", timeout=60_000)
        assert "week 0 of 20" in _headline(page)
        assert len(_images(page)) == 2  # the lines and the network sample
        assert all(w > 300 and h > 200 for w, h in visible_size(page, "img"))

        # Move the detection slider with the keyboard and rebuild the models with it.
        thumb = page.locator(".v-input", has_text="Detection (share)")
        thumb.locator("[role=slider]").first.focus()
        page.keyboard.press("ArrowRight")  # one slider step: 0.5 -> 0.55
        # The label shows the slider's value.
        page.locator(".v-input", has_text="Detection (share): 0.55").wait_for(timeout=30_000)
        page.get_by_role("button", name="Reset").click()
        # The page redraws after Reset (the headline may be gone for a moment, Mesa 3.5): wait
        # until it shows the new models at week 0 before stepping them.
        page.wait_for_function(HEADLINE_SHOWS, arg="week 0 of 20", timeout=30_000)

        before_images, before_text = _images(page), _headline(page)
        for _ in range(3):
            page.get_by_role("button", name="Step").click()
            page.wait_for_timeout(200)
        page.wait_for_function(HEADLINE_SHOWS, arg="week 3 of 20", timeout=30_000)
        page.wait_for_function(
            "before => { const now = [...document.querySelectorAll('img')].map(e => e.src);"
            " return now.length === 2 && now.every((s, i) => s !== before[i]); }",
            arg=before_images,
            timeout=30_000,
        )
        assert _headline(page) != before_text
        assert page.title().startswith("cxsim what-if")
        assert not page.get_by_text("Page 0").is_visible()  # no lone tab

        # The slider reached the model: the saved variant carries the new detection share.
        target = tmp_path / "variant.yaml"
        field = page.locator(".v-input", has_text="Variant file").locator("input")
        field.fill(str(target))
        field.press("Enter")
        page.get_by_role("button", name="Save as variant").click()
        page.wait_for_selector("pre", timeout=30_000)
        saved = yaml.safe_load(target.read_text())
        assert saved["name"] == "variant"
        assert saved["strategy"]["detection"] == pytest.approx(0.55)
        assert "Traceback" not in page.inner_text("body")  # Solara shows server errors inline
        assert problems == []
