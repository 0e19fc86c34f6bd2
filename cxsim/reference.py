"""The scenario and sweep formats as Markdown tables, written from the schemas (docs/SCENARIO.md).

Every field with its dotted key, default and description (the unit is in the description), so the
reference cannot drift from the code: a test checks that docs/SCENARIO.md is what this writes.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from cxsim.scenario import Scenario, Touchpoint


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation) if get_origin(annotation) else ():
        found = _model_of(arg)
        if found:
            return found
    return None


def _show(value: Any) -> str:
    if value is PydanticUndefined:
        return "(required)"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, tuple):
        return "the shipped journey (9 touchpoints)" if value and isinstance(
            value[0], Touchpoint) else json.dumps(list(value))  # fmt: skip
    return "null" if value is None else json.dumps(value) if isinstance(value, str) else f"{value}"


def _rows(model: type[BaseModel], instance: BaseModel | None, prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        value = getattr(instance, name, None) if instance is not None else field.default
        inner = _model_of(field.annotation)
        if inner is not None and inner is not Touchpoint:
            rows.extend(_rows(inner, value, f"{key}."))
            continue
        default = _show(value)
        text = (field.description or "").replace("|", "/")
        rows.append(f"| `{key}` | {default} | {text} |")
        if inner is Touchpoint:
            rows.extend(_rows(Touchpoint, None, f"{key}[]."))
    return rows


def markdown() -> str:
    """The reference page: one table row per scenario field."""
    head = [
        "# Scenario reference",
        "",
        "Written by `cxsim schema --markdown` from the schema in `cxsim/scenario.py`; do not edit",
        "by hand. Every key is optional: an empty file `{}` runs every default. Keys are nested",
        "YAML mappings (`strategy.detection` is `detection:` under `strategy:`), and the same",
        "dotted keys work with `--set` and as keyword arguments to the models (`mesa.batch_run`).",
        "`touchpoints[]` fields belong to each item of the `touchpoints` list; with `--set`, name",
        "an item by its name or index: `--set touchpoints.billing.bad=0.01`.",
        "",
        "A scenario may start from another: a top-level `base: reactive.yaml` (a path relative",
        "to the folder of the file that says it) reads that file first, then this one over it.",
        "Mappings merge key by key; any other value, lists such as `touchpoints` included,",
        "replaces the base's value whole. A base may have a base of its own (at most 8 in a",
        "chain). `base` is not a field: it is resolved before the table below applies, and",
        "`--set` cannot change it. `name` is inherited like any field, so a variant sets its own.",
        "`--set` applies after the merge; with several scenarios, `--set proactive:key=value`",
        "changes only the scenario named `proactive` (or with that file stem, or at that",
        "position, e.g. `2:`). `cxsim validate --resolved FILE` prints the merged scenario.",
        "",
        "| key | default | meaning (unit) |",
        "|---|---|---|",
    ]
    return "\n".join(head + _rows(Scenario, Scenario(), "")) + "\n\n" + sweep_markdown()


def sweep_markdown() -> str:
    """The sweep file reference: one row per setting, and per way of giving a parameter."""
    from cxsim.sweep.spec import Parameter, SweepSpec

    head = [
        "## Sweep files",
        "",
        "Written by `cxsim schema --sweep --markdown` from `cxsim/sweep/spec.py`. A sweep file",
        "(`cxsim sweep FILE`) runs one or more scenarios at many parameter points, every point",
        "on the same replication seeds. Scenario paths are relative to the sweep file. Each",
        "parameter is a dotted scenario key (as with `--set`) given as a list of values, a range",
        "`{low, high, steps}` (grid), bounds `{low, high}` (lhs, sobol, morris, monte_carlo) or",
        "a distribution (lhs, sobol, monte_carlo, uncertainty). Whole-number fields such as",
        "`population.customers` are rounded. A key `NAME:key` (a parameter or an override)",
        "changes only the scenario NAME names, as `--set NAME:key=value` picks it (by the",
        "name its file gives it, else by file stem, or a position such as `2:`); a NAME",
        "that names no scenario or several is refused. Errors name the file, line, field,",
        "what was expected and what was found, and exit with status 2.",
        "",
        "```yaml",
        "scenarios: [reactive.yaml, proactive.yaml]   # answer: proactive - reactive per point",
        "parameters:",
        "  strategy.detection: {low: 0.1, high: 0.9, steps: 5}",
        "  touchpoints.billing.problem_rate: [0.001, 0.002, 0.004]",
        "design: grid",
        "replications: 5",
        "figures: [annual_churn, profit]",
        "seed: 1",
        "overrides: {population.customers: 1000, population.prospects: 4000}",
        "```",
        "",
        "| key | default | meaning |",
        "|---|---|---|",
    ]
    rows = []
    for name, field in SweepSpec.model_fields.items():
        if name == "parameters":
            rows.append(f"| `parameters` | (required) | {field.description} |")
            for inner, sub in Parameter.model_fields.items():
                text = (sub.description or "").replace("|", "/")
                rows.append(f"| `parameters.<key>.{inner}` | | {text} |")
            continue
        default = "(required)" if field.is_required() else _show(field.default)
        rows.append(f"| `{name}` | {default} | {(field.description or '').replace('|', '/')} |")
    return "\n".join(head + rows) + "\n"
