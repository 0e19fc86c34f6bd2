"""The dashboard page: Mesa's SolaraViz around a :class:`Comparison` of two strategies.

SolaraViz gives the play / step / reset controls and the sliders (``model_params``); a slider
or the seed takes effect on Reset, which rebuilds both models. This module adds the page's own
panels: headline figures and their differences, one image with every chart, the network
sample, replications with 95%
confidence intervals (run in a background thread), and "save as variant". ``solara run`` loads
it; the scenario files come from the ``CXSIM_DASHBOARD_SCENARIOS`` environment variable (a JSON
list of two paths) set by ``cxsim dashboard``.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

import solara
from mesa.visualization import SolaraViz
from mesa.visualization.utils import update_counter

from cxsim.dashboard.comparison import (
    DEFAULT_PATHS,
    LEVERS,
    Comparison,
    Lever,
    lever_value,
    money,
    replicate,
    write_variant,
)
from cxsim.dashboard.plots import Charts, NetworkView
from cxsim.loading import ScenarioError

ENVIRONMENT = "CXSIM_DASHBOARD_SCENARIOS"
REPLICATIONS = 10  # enough for a rough 95% CI in a few seconds at 10,000 people
TITLE = "cxsim what-if"
# SolaraViz lays its panels out in a draggable grid of half-width cells and puts them under a
# "Page 0" tab. One page needs no tab bar, and wide charts need the full width: the cells
# are laid out as a plain two-column flow instead, and a cell holding a wide panel spans both.
STYLE = """
.v-tabs { display: none; }
.vue-grid-layout { display: grid !important; grid-template-columns: 1fr 1fr; gap: 12px;
                   height: auto !important; }
.vue-grid-item { position: static !important; transform: none !important;
                 width: auto !important; height: auto !important; }
.vue-grid-item:has(.cxsim-wide) { grid-column: 1 / -1; }
.vue-grid-item > .vue-resizable-handle { display: none; }
img.cxsim-chart { width: 100%; height: auto; }
"""


def scenario_paths() -> tuple[str, str]:
    """The two scenario files to compare: from the environment, else the shipped ones."""
    text = os.environ.get(ENVIRONMENT)
    paths = json.loads(text) if text else list(DEFAULT_PATHS)
    return paths[0], paths[1]


class PageComparison(Comparison):
    """The Comparison SolaraViz rebuilds on Reset.

    The page hands each slider a reactive value, so that a slider's label can show its value
    (Mesa's sliders show it only while dragged). SolaraViz passes a slider's value on as it
    was given until the slider is moved, so reactive values are read here.
    """

    def __init__(self, **kwargs: Any) -> None:
        # Mesa 3.4+ SolaraViz also passes the model's own ``scenario`` (its Scenario class) on
        # Reset; this page's scenarios are its files and sliders, so that one is not used.
        kwargs.pop("scenario", None)
        super().__init__(
            **{k: v.value if isinstance(v, solara.Reactive) else v for k, v in kwargs.items()}
        )


def slider_label(lever: Lever, value: float) -> str:
    return f"{lever.label}: {lever.show(value)}"


def model_params(model: Comparison, values: dict[str, solara.Reactive] | None = None) -> dict:
    """SolaraViz controls: the seed as typed text, one slider per lever starting at the value
    the scenario it changes has, and the scenario paths as a fixed parameter. With ``values``
    (one reactive per lever), the sliders share them and their labels show the values."""
    params: dict = {
        "paths": model.paths,
        "seed": {"type": "InputText", "value": str(model.seed), "label": "Seed (whole number)"},
    }
    for lever in LEVERS:
        spec = model.specs[0] if lever.market else model.specs[1]
        value: Any = lever_value(spec, lever)
        label = lever.label
        if values is not None:
            value = values[lever.name]
            label = slider_label(lever, value.value)
        params[lever.name] = {
            "type": "SliderInt" if lever.whole else "SliderFloat",
            "label": label,
            "value": value,
            "min": lever.low,
            "max": lever.high,
            "step": lever.step,
        }
    return params


def Table(header: list[str], rows: list[list[str]], name: str):
    """A plain HTML table (solara.Markdown would fetch KaTeX from a CDN)."""
    pad = 'style="padding: 2px 10px"'
    head = "".join(f"<th {pad}>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td {pad}>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return solara.HTML(
        tag="table",
        unsafe_innerHTML=f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody>",
        classes=[f"cxsim-{name}"],
        style="border-collapse: collapse; font-size: 14px; text-align: right;",
    )


@solara.component
def Headline(model: Comparison):
    """Where the two strategies stand at the current step, in real customers and money, and
    the difference the second strategy makes."""
    update_counter.get()
    spec = model.specs[0]
    scale = spec.population.represents
    currency = spec.economics.currency
    first, second = model.names
    header = [
        f"{spec.time.step} {model.models[0].steps} of {spec.time.horizon}",
        first,
        second,
        "difference",
    ]
    figures = [
        ("customers (real)", lambda m: m["customers"] * scale, "{:,.0f}".format),
        ("NPS (points)", lambda m: m["nps"], "{:+.1f}".format),
        ("CSAT (%)", lambda m: m["csat"], "{:.1f}".format),
        ("customers lost this step (real)", lambda m: m["churn"] * scale, "{:,.0f}".format),
        ("new customers this step (real)", lambda m: m["new_customers"] * scale, "{:,.0f}".format),
        (f"revenue this step ({currency})", lambda m: m["revenue"], money),
        (f"cumulative profit ({currency})", lambda m: m["cumulative_profit"], money),
        (
            f"revenue lost to poor experiences ({currency})",
            lambda m: m["cumulative_lost_revenue_experience_horizon"],
            money,
        ),
    ]
    rows = []
    for text, value, show in figures:
        a, b = (value(m.metrics) for m in model.models)
        diff = show(b - a)
        rows.append([text, show(a), show(b), diff if diff.startswith(("-", "+")) else f"+{diff}"])
    with solara.Column() as main:
        for problem in model.problems:
            solara.Error(problem)
        Table(header, rows, "headline")
        solara.Text(
            f"Seed {model.seed}; one simulated person stands for {scale:g} real customers. "
            f"Strategy sliders change {second} only, market sliders both; the sliders and the "
            "seed take effect when you press Reset."
        )
    return main


def _live_image(model: Comparison, drawing: type, css: str):
    """An image drawn by ``drawing(model)`` (built once per model), redrawn each step."""
    update_counter.get()
    draw = solara.use_memo(lambda: drawing(model), [model])
    steps = tuple(m.steps for m in model.models)
    image = solara.use_memo(draw.png, [draw, steps])
    with solara.Column(classes=["cxsim-wide"]) as main:
        solara.Image(image, classes=["cxsim-chart", css])
    return main


@solara.component
def ChartsPanel(model: Comparison):
    """Every chart in one image; the figure is built once per model and updated each step."""
    return _live_image(model, Charts, "cxsim-charts")


@solara.component
def NetworkPanel(model: Comparison):
    """The network sample under both strategies; its layout was computed with the model."""
    return _live_image(model, NetworkView, "cxsim-network")


@solara.component
def ReplicationsPanel(model: Comparison):
    """Mean and 95% CI over replications of the current settings, run in a background thread.

    The result remembers the model it was run for: after Reset (a new model, perhaps other
    settings) the old table is not shown.
    """
    count, set_count = solara.use_state(REPLICATIONS)
    task = solara.lab.use_task(  # type: ignore[attr-defined]
        lambda: (model, count, replicate(model, count)), dependencies=None, prefer_threaded=True
    )
    with solara.Column() as main:
        solara.SliderInt("Replications", value=count, on_value=set_count, min=2, max=50)
        solara.Button(
            f"Run {count} replications", on_click=task, disabled=task.pending, color="primary"
        )
        if task.pending:
            solara.Text("Running replications...")
        elif task.error:
            solara.Error(f"Replications failed: {task.exception}")
        elif task.finished and task.value and task.value[0] is model:
            _, ran, rows = task.value
            currency = model.specs[0].economics.currency
            header = ["figure", *model.names, f"{model.names[1]} - {model.names[0]} (paired)"]
            Table(header, rows, "replications")
            solara.Text(
                f"Mean [95% CI] of {ran} replications with the same seeds for both; "
                f"money in {currency} for the represented customers."
            )
    return main


@solara.component
def VariantPanel(model: Comparison):
    """Save the second scenario, as the sliders and seed have it now, as a variant file."""
    source = Path(model.paths[1])
    default = str(source.with_name(f"{source.stem}-variant.yaml"))
    target, set_target = solara.use_state(default)
    message, set_message = solara.use_state(("", ""))

    def save() -> None:
        try:
            path = write_variant(model, target)
        except (ScenarioError, OSError) as exc:
            set_message(("error", str(exc)))
            return
        set_message(("ok", f"Saved {path}:\n{path.read_text(encoding='utf-8')}"))

    with solara.Column() as main:
        solara.InputText("Variant file", value=target, on_value=set_target)
        solara.Button("Save as variant", on_click=save, color="primary")
        solara.Text("Saves the settings in use (as of the last Reset).")
        kind, text = message
        if kind == "error":
            solara.Error(text)
        elif kind == "ok":
            solara.Preformatted(text)
    return main


@solara.component
def Page():
    # One model per browser session: built once, replaced by SolaraViz on Reset.
    model = solara.use_memo(lambda: PageComparison(paths=scenario_paths()), [])
    # One reactive per slider, read here so that moving a slider redraws its label.
    values = {
        lever.name: solara.use_reactive(
            lever_value(model.specs[0] if lever.market else model.specs[1], lever)
        )
        for lever in LEVERS
    }
    solara.Title(f"{TITLE}: {' vs '.join(model.names)}")
    solara.Style(STYLE)
    # Components decorated with @solara.component are used by SolaraViz as they are, so they
    # keep their state (figures, replications) when the page redraws for a slider's label.
    SolaraViz(
        model,
        components=[(Headline, 0), (VariantPanel, 0), (ChartsPanel, 0), (NetworkPanel, 0),
                    (ReplicationsPanel, 0)],
        model_params=model_params(model, values),
        name=f"{TITLE}: {' vs '.join(model.names)}",
    )  # fmt: skip
