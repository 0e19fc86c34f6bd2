"""The sweep file: its schema, and reading it with the same errors as a scenario file.

A sweep file is YAML read by the scenario reader (:func:`cxsim.loading.read_yaml`), so a mistake
is reported the same way: ``file:line: field: expected X, found Y``, exit status 2. Besides the
schema, loading checks what only the scenarios can say: that every scenario file reads, that
every parameter is a field those scenarios have and accepts the values asked of it, and that
scenarios compared on the same seeds share one time section.
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cxsim.engines import ENGINES
from cxsim.loading import (
    BASE_KEY,
    Lines,
    ScenarioError,
    apply_overrides,
    describe,
    load_scenario,
    locate,
    read_text,
    read_yaml,
    show_path,
    targeted,
    validate,
)
from cxsim.metrics import FIGURES
from cxsim.scenario import Scenario

DESIGNS = ("grid", "lhs", "sobol", "morris", "monte_carlo", "uncertainty")
SAMPLED = ("lhs", "sobol", "monte_carlo", "uncertainty")
"""Designs that draw points from bounds or distributions (morris takes bounds only)."""
FIGURE_NAMES = tuple(f.name for f in FIGURES if not f.paired)

MAX_RUNS = 1_000_000
"""Most runs (points x scenarios x replications) one sweep may ask for: a million runs of even
a small market take days, and the design itself must fit in memory before anything runs."""
MAX_LOG = 700.0
"""Largest mu of a lognormal parameter: exp(700) is about 1e304; exp(710) overflows."""

_SECTIONS = "sweep settings (scenarios, parameters, design, replications, ...)"
_Strict = ConfigDict(extra="forbid")

Value = bool | int | float | str


class Parameter(BaseModel):
    """How one dotted scenario key varies: listed values, a range, bounds or a distribution.

    In the file a list is the values themselves (``strategy.detection: [0.2, 0.5]``); the rest
    are mappings: ``{low, high, steps}`` (a range for a grid), ``{low, high}`` (bounds for a
    sampling design), ``{distribution: ..., ...}`` (an uncertain input).
    """

    model_config = _Strict

    values: list[Value] | None = Field(None, min_length=1, description="the values, for a grid")
    low: float | None = Field(None, allow_inf_nan=False, description="lower end")
    high: float | None = Field(None, allow_inf_nan=False, description="upper end")
    steps: int | None = Field(None, ge=2, description="values from low to high, for a grid")
    distribution: Literal["uniform", "normal", "triangular", "lognormal"] | None = Field(
        None, description="an uncertain input: uniform (low, high), normal (mean, sd; low and "
        "high truncate it), triangular (low, mode, high), lognormal (mu, sigma of its log)",
    )  # fmt: skip
    mean: float | None = Field(None, allow_inf_nan=False, description="normal: mean")
    sd: float | None = Field(None, gt=0, allow_inf_nan=False, description="normal: sd")
    mode: float | None = Field(None, allow_inf_nan=False, description="triangular: peak")
    mu: float | None = Field(None, allow_inf_nan=False, description="lognormal: mean of log")
    sigma: float | None = Field(None, gt=0, allow_inf_nan=False, description="lognormal: sd of log")

    @model_validator(mode="before")
    @classmethod
    def _listed(cls, data: Any) -> Any:
        return {"values": data} if isinstance(data, list) else data

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        given = {k for k, v in self.__dict__.items() if v is not None}
        need = {
            "values": {"values"},
            "range": {"low", "high", "steps"},
            "bounds": {"low", "high"},
            "uniform": {"distribution", "low", "high"},
            "normal": {"distribution", "mean", "sd"},
            "triangular": {"distribution", "low", "mode", "high"},
            "lognormal": {"distribution", "mu", "sigma"},
        }[self.kind]
        allowed = need | ({"low", "high"} if self.kind == "normal" else set())
        if not need <= given or not given <= allowed:
            missing, extra = sorted(need - given), sorted(given - allowed)
            found = ", ".join(
                ([f"missing {', '.join(missing)}"] if missing else [])
                + ([f"{', '.join(extra)} not used"] if extra else [])
            )
            raise ValueError(f"expected {_SHAPES[self.kind]}, found {found}")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"expected low < high, found low {self.low:g}, high {self.high:g}")
        if self.kind == "lognormal" and self.mu > MAX_LOG:
            raise ValueError(f"expected mu at most {MAX_LOG:g} (exp(mu) must be a number), "
                             f"found mu {self.mu:g}")  # fmt: skip
        if self.kind == "triangular" and not self.low <= self.mode < self.high:
            raise ValueError(f"expected low <= mode < high, found mode {self.mode:g}")
        if self.kind == "normal" and self.low is not None and self.high is None:
            raise ValueError("expected both low and high to truncate a normal, found low only")
        if self.kind == "normal" and self.high is not None and self.low is None:
            raise ValueError("expected both low and high to truncate a normal, found high only")
        return self

    @property
    def kind(self) -> str:
        """values, range, bounds, or the distribution's name."""
        if self.values is not None:
            return "values"
        if self.distribution is not None:
            return self.distribution
        return "range" if self.steps is not None else "bounds"

    def probes(self) -> list[Value]:
        """Values that must each make a valid scenario (checked when the file is read)."""
        if self.kind == "values":
            return list(self.values)
        if self.kind == "normal" and self.low is None:
            return [self.mean]
        if self.kind == "lognormal":
            return [math.exp(self.mu)]
        return [self.low, self.high]


_SHAPES = {
    "values": "a list of values",
    "range": "{low, high, steps} (a range for a grid)",
    "bounds": "{low, high} (bounds for lhs, sobol or morris)",
    "uniform": "{distribution: uniform, low, high}",
    "normal": "{distribution: normal, mean, sd} (and optionally low, high to truncate)",
    "triangular": "{distribution: triangular, low, mode, high}",
    "lognormal": "{distribution: lognormal, mu, sigma} (of the logarithm)",
}
_DISTRIBUTIONS = ("uniform", "normal", "triangular", "lognormal")


class SweepSpec(BaseModel):
    """A sweep file, as written (paths of scenarios not yet read)."""

    model_config = _Strict

    name: str | None = Field(None, description="names the results folder (default: file stem)")
    description: str = Field("", description="what the sweep asks, for the manifest")
    scenarios: list[str] = Field(
        min_length=1, max_length=100, description="scenario files, relative to the sweep file; "
        "with two or more (at most 100), every point runs for each on the same seeds and the "
        "answer is the paired difference per point (second minus first)",
    )  # fmt: skip
    parameters: dict[str, Parameter] = Field(
        min_length=1, description="dotted scenario keys to vary (e.g. strategy.detection), each "
        "a list of values, {low, high, steps}, {low, high} or {distribution: ...}",
    )  # fmt: skip
    design: Literal[DESIGNS] = Field(
        "grid", description="grid (every combination), lhs (Latin hypercube), sobol (Saltelli "
        "sampling for Sobol indices), morris (elementary effects), monte_carlo or uncertainty "
        "(random draws from the distributions)",
    )  # fmt: skip
    points: int | None = Field(
        None, ge=1, description="lhs, monte_carlo: number of points; sobol: base N (a power of "
        "2; points = N x (parameters + 2)); morris: trajectories (points = trajectories x "
        "(parameters + 1)); grid: not used (the grid gives its size)",
    )  # fmt: skip
    levels: int = Field(
        4, ge=2, le=100, description="morris: levels of each parameter's grid (2 to 100)"
    )
    second_order: bool = Field(False, description="sobol: also sample for second-order indices")
    replications: int = Field(5, ge=1, description="runs per point and scenario")
    figures: list[Literal[FIGURE_NAMES]] = Field(
        ["annual_churn", "profit"], min_length=1,
        description="summary figures the points table reports (every figure is in runs.parquet)",
    )  # fmt: skip
    seed: int = Field(1, ge=0, description="root seed of the replications and of the design")
    engine: Literal[tuple(sorted(ENGINES))] = Field("vector", description="model engine")
    overrides: dict[str, Any] = Field(
        {}, description="dotted scenario keys set in every scenario first (e.g. a smaller "
        "population for a quick look)",
    )  # fmt: skip

    @field_validator("parameters", "overrides")
    @classmethod
    def _dotted_keys(cls, value: dict) -> dict:
        for key in value:
            dotted = key.partition(":")[2] if ":" in key else key
            if not dotted or any(not part.strip() for part in dotted.split(".")):
                raise ValueError(f"expected dotted scenario keys such as strategy.detection, "
                                 f"found {key!r}")  # fmt: skip
        return value


SWEEP_ONLY = frozenset(SweepSpec.model_fields) - frozenset(Scenario.model_fields)
SCENARIO_ONLY = frozenset({*Scenario.model_fields, BASE_KEY}) - frozenset(SweepSpec.model_fields)
"""Top-level keys only one kind of file has: how a file given to the other command is told."""


def _refuse_a_scenario(data: dict, filename: str, lines: Lines) -> None:
    """One line for a scenario or variant file given to ``cxsim sweep``, instead of an unknown
    key for each of its sections: a file with a key only a scenario has and none only a sweep
    has (see also :func:`cxsim.loading._refuse_a_sweep`, the other way round)."""
    sections = [key for key in data if key in SCENARIO_ONLY]
    if sections and not any(key in SWEEP_ONLY for key in data):
        raise ScenarioError(
            f"{locate(filename, lines, (sections[0],))}: {sections[0]} is a key of scenario "
            "files, so this is a scenario file, not a sweep; run it with: cxsim run "
            f"{shlex.quote(filename)}"
        )


def design_problem(spec: SweepSpec) -> tuple[tuple, str] | None:
    """(path in the file, message) of the first setting the design cannot use, or None."""
    for name, parameter in spec.parameters.items():
        kind = parameter.kind
        if spec.design == "grid":
            allowed, what = {"values", "range"}, "a list of values or {low, high, steps}"
        elif spec.design == "morris":
            allowed, what = {"bounds"}, "bounds {low, high}"
        else:
            allowed = {"bounds", *_DISTRIBUTIONS}
            what = "bounds {low, high} or a distribution"
        if kind not in allowed:
            found = _SHAPES[kind].split(" (")[0]
            return ("parameters", name), f"design {spec.design} needs {what}, found {found}"
    n = spec.points
    if spec.design == "grid" and n is not None:
        return ("points",), "a grid's size is the product of its values; drop points"
    if spec.design != "grid" and n is None:
        return ("design",), f"design {spec.design} needs points: {_POINTS[spec.design]}"
    if spec.design == "sobol" and (n < 2 or n & (n - 1)):
        return ("points",), (f"expected a power of 2 as sobol's base N (Sobol' sequences are "
                             f"balanced only then), found {n}")  # fmt: skip
    if spec.design == "morris" and n < 2:
        return ("points",), f"expected at least 2 morris trajectories, found {n}"
    points = design_size(spec)
    runs = points * len(spec.scenarios) * spec.replications
    if runs > MAX_RUNS:
        where = ("replications",) if spec.replications > points else (
            ("parameters",) if spec.design == "grid" else ("points",))  # fmt: skip
        return where, (f"the design has {_count(points)} point(s) x {len(spec.scenarios)} "
                       f"scenario(s) x {_count(spec.replications)} replication(s) = "
                       f"{_count(runs)} runs; at most {MAX_RUNS:,} fit in one sweep")  # fmt: skip
    return None


def design_size(spec: SweepSpec) -> int:
    """Points of the design, counted without making it (exact: the samplers' own sizes)."""
    d, n = len(spec.parameters), spec.points
    if spec.design == "grid":
        return math.prod(len(p.values) if p.kind == "values" else p.steps
                         for p in spec.parameters.values())  # fmt: skip
    if spec.design == "sobol":
        return n * (2 * d + 2 if spec.second_order else d + 2)
    if spec.design == "morris":
        return n * (d + 1)
    return n


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**15 else f"about 10^{int(n.bit_length() * math.log10(2))}"


_POINTS = {
    "lhs": "the number of points",
    "monte_carlo": "the number of draws",
    "uncertainty": "the number of draws",
    "sobol": "the base N, a power of 2",
    "morris": "the number of trajectories",
}


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: its settings, and its scenarios read and overridden, ready to run."""

    spec: SweepSpec
    source: str
    scenario_sources: list[str]
    scenarios: list[Scenario]
    integers: frozenset[str] = field(default_factory=frozenset)
    """Parameters that are whole numbers in the scenario (population sizes): points rounded."""
    targets: dict[str, int] = field(default_factory=dict)
    """The scenario (index) that each ``NAME:key`` of the overrides and parameters names, as
    ``cxsim run --set`` picks it (:func:`cxsim.loading.targeted`: by the names the files give,
    before any override); see :func:`for_scenario`."""

    @property
    def name(self) -> str:
        return self.spec.name or Path(self.source).stem

    @property
    def parameters(self) -> dict[str, Parameter]:
        return self.spec.parameters

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scenarios]

    def hash(self) -> str:
        """A fingerprint of what the sweep computes: its settings and its scenarios as read
        (an edit to a scenario file changes it; a comment in the sweep file does not)."""
        data = {
            "sweep": self.spec.model_dump(mode="json"),
            "scenarios": [s.model_dump(mode="json") for s in self.scenarios],
        }
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_plan(self) -> dict:
        """Everything needed to rebuild this sweep without its files (for --resume)."""
        return {
            "source": self.source,
            "sweep": self.spec.model_dump(mode="json"),
            "scenario_sources": self.scenario_sources,
            "scenarios": [s.model_dump(mode="json") for s in self.scenarios],
            "integers": sorted(self.integers),
            "targets": self.targets,
        }

    @classmethod
    def from_plan(cls, data: dict, label: str) -> Sweep:
        """The sweep a plan or manifest recorded, validated again (no code is run)."""
        try:
            spec = SweepSpec.model_validate(data["sweep"])
        except ValidationError as exc:
            raise ScenarioError(describe(exc, data["sweep"], label, {}, SweepSpec)) from None
        scenarios = [validate(s, f"{label} (scenario {i + 1})") for i, s in
                     enumerate(data["scenarios"])]  # fmt: skip
        sources = [str(s) for s in data["scenario_sources"]]
        targets = data.get("targets")
        if targets is None:  # a plan from before targets were kept: the names it has
            targets = _targets(spec, [s.name for s in scenarios], sources, label, {})
        return cls(spec, str(data["source"]), sources, scenarios,
                   frozenset(str(k) for k in data.get("integers", [])),
                   {str(k): int(v) for k, v in targets.items()})  # fmt: skip


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; every mistake is a one-line ScenarioError."""
    path = Path(path)
    return parse_sweep(read_text(path, str(path)), str(path))


def parse_sweep(text: str, filename: str = "<sweep>") -> Sweep:
    """Check sweep YAML text; ``filename`` names it in messages and locates its scenarios."""
    data, lines = read_yaml(text, filename, _SECTIONS)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        _refuse_a_scenario(data, filename, lines)
        raise ScenarioError(describe(exc, data, filename, lines, SweepSpec)) from None
    problem = design_problem(spec)
    if problem is not None:
        path, message = problem
        dotted = ".".join(str(p) for p in path)
        raise ScenarioError(f"{locate(filename, lines, path)}: {dotted}: {message}")
    folder = Path(filename).parent
    twice = next((i for i, s in enumerate(spec.scenarios) if s in spec.scenarios[:i]), None)
    if twice is not None:  # before reading any: a long list of one file would take long
        raise ScenarioError(
            f"{locate(filename, lines, ('scenarios', twice))}: scenarios[{twice}]: "
            f"{show_path(spec.scenarios[twice])} is listed twice; each scenario once"
        )
    sources, read = [], []
    for i, relative in enumerate(spec.scenarios):
        where = f"{locate(filename, lines, ('scenarios', i))}: scenarios[{i}]"
        source = folder / relative
        try:
            read.append(load_scenario(source))
        except ScenarioError as exc:
            raise ScenarioError(f"{where}: {exc}") from None
        sources.append(str(source))
    targets = _targets(spec, [s.name for s in read], sources, filename, lines)
    where = locate(filename, lines, ("overrides",))
    scenarios = [_override(s, for_scenario(spec.overrides, i, targets), where, "overrides")
                 for i, s in enumerate(read)]  # fmt: skip
    _check_together(scenarios, filename, lines)
    integers = set()
    for name, parameter in spec.parameters.items():
        where = locate(filename, lines, ("parameters", name))
        for i, scenario in enumerate(scenarios):
            key = next(iter(for_scenario({name: None}, i, targets)), None)
            if key is None:
                continue  # the parameter is another scenario's
            current = _value_at(scenario, key)
            if isinstance(current, int) and not isinstance(current, bool):
                integers.add(name)
            for value in parameter.probes():
                if name in integers and isinstance(value, float):
                    value = round(value)
                _override(scenario, {key: value}, where, f"parameters.{name}")
    return Sweep(spec, filename, sources, scenarios, frozenset(integers), targets)


def _override(scenario: Scenario, overrides: dict, where: str, label: str) -> Scenario:
    """``apply_overrides``, with a failure blamed on the sweep file's line."""
    try:
        return apply_overrides(scenario, overrides)
    except ScenarioError as exc:
        message = unblame(str(exc))
        raise ScenarioError(f"{where}: {label}: in scenario '{scenario.name}': {message}") from None


def unblame(message: str) -> str:
    """An apply_overrides message without its "<overrides>" origin (the caller says where)."""
    return message.replace("<overrides> (from --set): ", "").replace("<overrides>: ", "")


def _check_together(scenarios: list[Scenario], filename: str, lines: Lines) -> None:
    where = locate(filename, lines, ("scenarios",))
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ScenarioError(
            f"{where}: scenarios: expected scenarios with different names (to pair them), "
            f"found {names}"
        )
    times = {s.time for s in scenarios}
    if len(times) > 1:
        raise ScenarioError(
            f"{where}: scenarios: expected one time section (step, steps_per_year, horizon) "
            f"for scenarios compared on the same seeds, found {len(times)} different ones"
        )


def _value_at(scenario: Scenario, dotted: str) -> Any:
    """The current value of a dotted key (touchpoints by name or index), or None."""
    node: Any = scenario.model_dump(mode="python")
    for part in dotted.split("."):
        if isinstance(node, list | tuple):
            match = [t for t in node if isinstance(t, dict) and t.get("name") == part]
            node = match[0] if match else node[int(part)] if part.isdigit() and int(
                part) < len(node) else None  # fmt: skip
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def _targets(spec: SweepSpec, names: list[str], sources: list[str], filename: str,
             lines: Lines) -> dict[str, int]:  # fmt: skip
    """The scenario (index) each ``NAME:key`` of the overrides and parameters names, by the
    rule of ``cxsim run --set`` (:func:`cxsim.loading.targeted`, with ``names`` as the files
    give them); a target that names none or several is blamed on its line and field."""
    stems = [Path(source).stem for source in sources]
    targets = {}
    for section in ("overrides", "parameters"):
        for key in getattr(spec, section):
            target, colon, _ = key.partition(":")
            if colon:
                where = f"{locate(filename, lines, (section, key))}: {section}.{key}"
                (targets[key],) = targeted(target.strip(), names, stems, where, "sweep")
    return targets


def for_scenario(overrides: dict, index: int, targets: dict[str, int]) -> dict:
    """The overrides (the file's, or a point's parameter values) that apply to scenario
    ``index`` of a sweep, with their targets removed: a key without a target applies to every
    scenario; ``NAME:key`` to the one ``targets`` (:attr:`Sweep.targets`) says NAME names."""
    out = {}
    for key, value in overrides.items():
        _, colon, dotted = key.partition(":")
        if not colon:
            out[key] = value
        elif targets[key] == index:
            out[dotted] = value
    return out
