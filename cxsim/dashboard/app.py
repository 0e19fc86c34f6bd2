"""The dashboard page: Mesa's SolaraViz around a :class:`Comparison` of two strategies.

SolaraViz gives the play / step / reset controls and the sliders (``model_params``); a slider
or the seed takes effect on Reset, which rebuilds both models. This module adds the page's own
panels: headline figures, the strategies' lines, the network sample, replications with 95%
confidence intervals (run in a background thread), and "save as variant". ``solara run`` loads
it; the scenario files come from the ``CXSIM_DASHBOARD_SCENARIOS`` environment variable (a JSON
list of two paths) set by ``cxsim dashboard``.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path

import solara
from mesa.visualization import SolaraViz

from cxsim.dashboard.comparison import (
    DEFAULT_PATHS,
    LEVERS,
    Comparison,
    lever_value,
    money,
    replicate,
    write_variant,
)
from cxsim.dashboard.plots import lines_figure, network_figure
from cxsim.loading import ScenarioError

ENVIRONMENT = "CXSIM_DASHBOARD_SCENARIOS"
REPLICATIONS = 10  # enough for a rough 95% CI in a few seconds at 10,000 people


def scenario_paths() -> tuple[str, str]:
    """The two scenario files to compare: from the environment, else the shipped ones."""
    text = os.environ.get(ENVIRONMENT)
    paths = json.loads(text) if text else list(DEFAULT_PATHS)
    return paths[0], paths[1]


def model_params(model: Comparison) -> dict:
    """SolaraViz controls: the seed as typed text, one slider per lever starting at the value
    the scenario it changes has, and the scenario paths as a fixed parameter."""
    params: dict = {
        "paths": model.paths,
        "seed": {"type": "InputText", "value": str(model.seed), "label": "Seed (whole number)"},
    }
    for lever in LEVERS:
        spec = model.specs[0] if lever.market else model.specs[1]
        params[lever.name] = {
            "type": "SliderFloat",
            "label": lever.label,
            "value": lever_value(spec, lever),
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


def Headline(model: Comparison):
    """Where the two strategies stand at the current step, in real customers and money."""
    spec = model.specs[0]
    scale = spec.population.represents
    currency = spec.economics.currency
    header = [f"{spec.time.step} {model.models[0].steps} of {spec.time.horizon}", *model.names]
    figures = [
        ("customers (real)", lambda m: f"{m['customers'] * scale:,.0f}"),
        ("NPS", lambda m: f"{m['nps']:+.1f}"),
        ("churned this step (real)", lambda m: f"{m['churn'] * scale:,.0f}"),
        (f"cumulative profit ({currency})", lambda m: money(m["cumulative_profit"])),
        (
            f"revenue lost to poor experiences ({currency})",
            lambda m: money(m["cumulative_lost_revenue_experience_horizon"]),
        ),
    ]
    rows = [[text, *(show(m.metrics) for m in model.models)] for text, show in figures]
    with solara.Column() as main:
        if model.seed_error:
            solara.Error(f"Seed not used ({model.seed_error}); running seed {model.seed}.")
        Table(header, rows, "headline")
        solara.Text(
            f"Seed {model.seed}; one simulated person stands for {scale:g} real customers. "
            "Strategy sliders change the second scenario, market sliders both; press Reset "
            "to apply them."
        )
    return main


def Lines(model: Comparison):
    figure = lines_figure(model)
    return solara.FigureMatplotlib(figure, format="png", dpi=100)


def NetworkView(model: Comparison):
    figure = network_figure(model)
    return solara.FigureMatplotlib(figure, format="png", dpi=100)


def Replications(model: Comparison):
    return ReplicationsPanel(model)


@solara.component
def ReplicationsPanel(model: Comparison):
    """Mean and 95% CI over replications of the current settings, run in a background thread."""
    count, set_count = solara.use_state(REPLICATIONS)
    task = solara.lab.use_task(  # type: ignore[attr-defined]
        lambda: replicate(model, count), dependencies=None, prefer_threaded=True
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
        elif task.finished and task.value:
            currency = model.specs[0].economics.currency
            header = ["figure", *model.names, f"{model.names[1]} - {model.names[0]} (paired)"]
            Table(header, task.value, "replications")
            solara.Text(
                f"Mean [95% CI] of {count} replications with the same seeds for both; "
                f"money in {currency} for the represented customers."
            )
    return main


def Variant(model: Comparison):
    return VariantPanel(model)


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
        kind, text = message
        if kind == "error":
            solara.Error(text)
        elif kind == "ok":
            solara.Preformatted(text)
    return main


@solara.component
def Page():
    # One model per browser session: built once, replaced by SolaraViz on Reset.
    model = solara.use_memo(lambda: Comparison(paths=scenario_paths()), [])
    SolaraViz(
        model,
        components=[(Headline, 0), (Lines, 0), (NetworkView, 0), (Replications, 0), (Variant, 0)],
        model_params=model_params(model),
        name=f"cxsim what-if: {' vs '.join(model.names)}",
    )
