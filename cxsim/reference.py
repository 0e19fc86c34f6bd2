"""The scenario format as a Markdown table, written from the schema itself (docs/SCENARIO.md).

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
    return "\n".join(head + _rows(Scenario, Scenario(), "")) + "\n"
