"""The dashboard's model: two strategies on the same market, stepped together.

:class:`Comparison` is a small ``mesa.Model`` holding one :class:`~cxsim.engines.vector.
VectorModel` per scenario (the first is the baseline, usually reactive service; the second the
strategy being tried), both built with the same seed so they share the network and the people's
traits. Its keyword arguments are the dashboard's controls: strategy levers change the second
scenario only, market parameters change both, and the seed is typed text checked with the
scenario file's own messages. This module also writes "save as variant" files and runs
replications; it imports no web framework, so all of it is tested without a browser.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mesa
import networkx as nx
import numpy as np
import yaml

from cxsim.engines.vector import VectorModel
from cxsim.loading import ScenarioError, apply_overrides, load_scenario
from cxsim.network import NO_EDGES, Adjacency, adjacency
from cxsim.scenario import Scenario

DEFAULT_PATHS = ("scenarios/reactive.yaml", "scenarios/proactive.yaml")
SAMPLE_SIZE = 300  # people drawn in the network view: enough to see clusters, fast to draw


@dataclass(frozen=True)
class Lever:
    """One slider: the scenario field it sets and whether it is a strategy or market lever."""

    name: str  # keyword argument of Comparison
    key: str  # dotted scenario key
    label: str
    low: float
    high: float
    step: float
    market: bool = False  # market parameters apply to both scenarios, strategy levers to the second
    whole: bool = False  # a count: an integer slider

    def read(self, spec: Scenario) -> float:
        """The value ``spec`` gives the field this lever sets."""
        return float(_get(spec.model_dump(mode="json"), self.key))

    def overrides(self, value: float, spec: Scenario) -> dict[str, Any]:
        """Dotted-key overrides that set this lever to ``value`` in ``spec``."""
        return {self.key: int(round(value)) if self.whole else value}

    def show(self, value: float) -> str:
        """The value as the slider's label shows it."""
        return f"{value:,.0f}" if self.whole or abs(value) >= 100 else f"{value:g}"


@dataclass(frozen=True)
class PopulationLever(Lever):
    """Market size: the people simulated, split between customers and prospects in the ratio
    the scenario files have, so moving it changes the size of the market and not its shape."""

    def read(self, spec: Scenario) -> float:
        return float(spec.population.customers + spec.population.prospects)

    def overrides(self, value: float, spec: Scenario) -> dict[str, Any]:
        total = max(int(round(value)), 2)
        share = spec.population.customers / (spec.population.customers + spec.population.prospects)
        customers = min(max(int(round(total * share)), 1), total - 1)
        return {"population.customers": customers, "population.prospects": total - customers}


SURVEY = "behaviour.walk_away.survey"
LEVERS: tuple[Lever, ...] = (
    # Strategy levers: the second scenario only.
    Lever("detection", "strategy.detection", "Detection (share)", 0, 1, 0.05),
    Lever("prevention", "strategy.prevention", "Prevention (share)", 0, 1, 0.05),
    Lever("quality_uplift", "strategy.quality_uplift", "Quality uplift (share)", 0, 1, 0.05),
    Lever("outreach", "strategy.outreach", "Check-ins per step", 0, 0.1, 0.005),
    Lever("support_contact", "strategy.support_contact",
          "Support contact rate", 0, 1, 0.05),
    Lever("first_contact_resolution", "strategy.first_contact_resolution",
          "First-contact resolution", 0, 1, 0.05),
    Lever("cost_per_customer", "strategy.costs.per_customer", "Cost per customer",
          0, 2, 0.05),
    Lever("cost_fixed", "strategy.costs.fixed", "Fixed cost per step", 0, 10_000, 250),
    # Market parameters: both scenarios, so the strategies still share one market.
    PopulationLever("population", "population", "Market: people", 200, 30_000, 200,
                    market=True, whole=True),
    Lever("arpu", "economics.arpu.mean", "Market: revenue/customer", 1, 50, 1,
          market=True),
    Lever("read_share", "behaviour.reviews.read_share", "Market: review readers",
          0, 1, 0.05, market=True),
    Lever("ad_conversion", "behaviour.ad_conversion", "Market: ad conversion",
          0, 0.01, 0.0005, market=True),
    Lever("referral_conversion", "behaviour.referral.conversion",
          "Market: referral conv.", 0, 1, 0.05, market=True),
    Lever("survey_after_one", f"{SURVEY}.after_one",
          "Market: walk-away, 1 bad", 0.01, 0.95, 0.01,
          market=True),
    Lever("survey_after_several", f"{SURVEY}.after_several",
          "Market: walk-away, several", 0.02, 0.99, 0.01,
          market=True),
)  # fmt: skip


def _get(data: Mapping, key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        node = node[part]
    return node


def lever_value(spec: Scenario, lever: Lever) -> float:
    """The value a scenario gives the field a lever sets."""
    return lever.read(spec)


def _message(exc: ScenarioError) -> str:
    """The loader's message without the ``<overrides> (from --set):`` prefix it adds."""
    message = str(exc)
    if message.startswith("<overrides>"):
        message = message.split(": ", 1)[1]
    return message


def parse_seed(text: Any, spec: Scenario) -> int:
    """The seed typed in the page, checked as ``run.seed`` of ``spec`` would be in a file.

    The text is read as a YAML scalar, as ``--set run.seed=...`` reads it; a ScenarioError
    carries the loader's one-line message without its ``<overrides>`` prefix.
    """
    try:
        value = yaml.safe_load(str(text)) if isinstance(text, str) else text
    except yaml.YAMLError:
        value = text
    try:
        return apply_overrides(spec, {"run.seed": value}).run.seed
    except ScenarioError as exc:
        raise ScenarioError(_message(exc)) from None


def check_pair(specs: Sequence[Scenario], paths: Sequence[str | Path]) -> None:
    """Two scenarios the dashboard can compare: different names, one market, one clock."""
    if len(specs) != 2:
        raise ScenarioError(
            f"the dashboard compares two scenarios (baseline, then the one to try), "
            f"found {len(specs)}"
        )
    first, second = specs
    if first.name == second.name:
        raise ScenarioError(
            f"{paths[1]}: name: expected a name different from {paths[0]}'s, found {second.name!r}"
        )
    for section in ("time", "population", "network"):
        if getattr(first, section) != getattr(second, section):
            raise ScenarioError(
                f"{paths[1]}: {section}: expected the same {section} section as {paths[0]} "
                "(the dashboard compares strategies on one market)"
            )


@dataclass(frozen=True)
class NetworkSample:
    """A few hundred connected people of the network with fixed drawing positions."""

    people: np.ndarray  # indices into the population
    edges: np.ndarray  # (k, 2) positions into ``people``
    xy: np.ndarray  # (len(people), 2)


_SAMPLES: deque[tuple[bytes, NetworkSample]] = deque(maxlen=8)


def network_sample(adjacency: Adjacency, size: int = SAMPLE_SIZE) -> NetworkSample:
    """Neighbourhoods grown from a few starting people until ``size`` are taken, laid out once.

    Growing outwards along the edges keeps the links between the people drawn (a uniform
    sample of a sparse network has almost none). Only the contacts of the people visited are
    read from the model's adjacency. The layout is a spring layout of this small subgraph
    only, with a fixed seed; the whole network is never laid out (minutes at 10,000 people).
    Samples are cached by network, so reset and redraws reuse the layout.
    """
    key = adjacency.indptr.tobytes() + adjacency.indices.tobytes()
    for known, sample in _SAMPLES:
        if known == key:
            return sample
    n = adjacency.n

    def neighbours(person: int) -> list[int]:
        return adjacency.contacts_of(person).tolist()

    order = np.random.default_rng(0).permutation(n)
    taken: dict[int, None] = {}  # insertion-ordered set
    for start in order:
        if len(taken) >= min(size, n):
            break
        queue = deque([int(start)])
        while queue and len(taken) < size:
            person = queue.popleft()
            if person in taken:
                continue
            taken[person] = None
            queue.extend(p for p in neighbours(person) if p not in taken)
    people = np.fromiter(taken, dtype=np.int64)
    where = {p: i for i, p in enumerate(people)}
    inner = [(where[a], where[b]) for a in people for b in neighbours(a) if b in where and a < b]
    graph = nx.Graph()
    graph.add_nodes_from(range(len(people)))
    graph.add_edges_from(inner)
    pos = nx.spring_layout(graph, seed=1)
    xy = np.array([pos[i] for i in range(len(people))]).reshape(-1, 2)
    sample = NetworkSample(people, np.array(inner, dtype=np.int64).reshape(-1, 2), xy)
    _SAMPLES.append((key, sample))
    return sample


class Comparison(mesa.Model):
    """Two strategies on one market and one seed; ``step()`` steps both.

    Every lever keyword left as None keeps the scenario's value. The keyword names are those
    of :data:`LEVERS` (Mesa's SolaraViz passes its controls by name). Settings the scenario
    loader rejects (a mistyped seed, survey figures out of order) do not stop the page: the
    files' values are kept and :attr:`problems` says what was not used and why.
    """

    def __init__(
        self,
        *,
        paths: Sequence[str | Path] = DEFAULT_PATHS,
        seed: Any = None,
        detection: float | None = None,
        prevention: float | None = None,
        quality_uplift: float | None = None,
        outreach: float | None = None,
        support_contact: float | None = None,
        first_contact_resolution: float | None = None,
        cost_per_customer: float | None = None,
        cost_fixed: float | None = None,
        population: float | None = None,
        arpu: float | None = None,
        read_share: float | None = None,
        ad_conversion: float | None = None,
        referral_conversion: float | None = None,
        survey_after_one: float | None = None,
        survey_after_several: float | None = None,
    ) -> None:
        given = {
            "detection": detection, "prevention": prevention, "quality_uplift": quality_uplift,
            "outreach": outreach, "support_contact": support_contact,
            "first_contact_resolution": first_contact_resolution,
            "cost_per_customer": cost_per_customer, "cost_fixed": cost_fixed,
            "population": population, "arpu": arpu, "read_share": read_share,
            "ad_conversion": ad_conversion, "referral_conversion": referral_conversion,
            "survey_after_one": survey_after_one, "survey_after_several": survey_after_several,
        }  # fmt: skip
        self.paths = tuple(str(p) for p in paths)
        self.base = [load_scenario(p) for p in self.paths]
        check_pair(self.base, self.paths)
        self.problems: list[str] = []
        # A mistyped seed keeps the scenario's seed and says why, instead of breaking the page.
        self.seed_error: str | None = None
        self.seed = self.base[0].run.seed
        if seed is not None and str(seed).strip():
            try:
                self.seed = parse_seed(seed, self.base[0])
            except ScenarioError as exc:
                self.seed_error = str(exc)
                self.problems.append(f"Seed not used ({exc}); running seed {self.seed}.")
        # Sliders hand over binary fractions such as 0.30000000000000004.
        chosen = {
            lever.name: round(float(given[lever.name]), 10)
            for lever in LEVERS
            if given[lever.name] is not None
        }
        self.specs = self._build(chosen)
        super().__init__(rng=self.seed)
        self.models = [VectorModel(spec, rng=self.seed) for spec in self.specs]
        first = self.models[0]
        known = first.adjacency  # None when well mixed: people drawn without links
        self.sample = network_sample(known if known is not None else adjacency(NO_EDGES, first.n))
        self.running = any(m.running for m in self.models)

    def _build(self, chosen: dict[str, float]) -> list[Scenario]:
        """Both scenarios with the seed and the chosen lever values.

        A combination the loader rejects (the walk-away survey figures must rise with the
        number of bad experiences) drops the levers under the key its message names, keeps the
        files' values for them and records the message; anything else it cannot place drops
        every lever.
        """
        while True:
            market: dict[str, Any] = {"run.seed": self.seed}
            strategy: dict[str, Any] = {}
            for lever in LEVERS:
                if lever.name in chosen:
                    target = market if lever.market else strategy
                    target.update(lever.overrides(chosen[lever.name], self.base[0]))
            self.overrides = ({**market}, {**market, **strategy})
            try:
                return [
                    apply_overrides(b, o) for b, o in zip(self.base, self.overrides, strict=True)
                ]
            except ScenarioError as exc:
                if not chosen:
                    raise
                message = _message(exc)
                where = message.split(":", 1)[0]
                dropped = [
                    lever.label
                    for lever in LEVERS
                    if lever.name in chosen
                    and (lever.key.startswith(where) or where.startswith(lever.key))
                ]
                if not dropped:
                    dropped = [lever.label for lever in LEVERS if lever.name in chosen]
                for lever in LEVERS:
                    if lever.label in dropped:
                        chosen.pop(lever.name, None)
                self.problems.append(
                    f"Not used: {'; '.join(dropped)} ({message}); running with the files' "
                    "values for them."
                )

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def step(self) -> None:
        for model in self.models:
            if model.running:
                model.step()
        self.running = any(m.running for m in self.models)

    def series(self, metric: str) -> list[list[float]]:
        """One list per strategy: the metric at every step so far (step 0 first)."""
        return [list(m.datacollector.model_vars[metric]) for m in self.models]

    def variant(self) -> dict[str, Any]:
        """The second scenario as it is now: only the fields that differ from its file."""
        return variant_of(self.base[1], self.specs[1])


def _differences(base: Any, now: Any) -> Any:
    """Nested mapping of what differs; lists count as one value (a variant replaces them)."""
    if isinstance(base, dict) and isinstance(now, dict):
        out = {}
        for key, value in now.items():
            if key not in base:
                out[key] = value
                continue
            diff = _differences(base[key], value)
            if diff is not _SAME:
                out[key] = diff
        return out if out else _SAME
    return _SAME if base == now else now


_SAME = object()


def variant_of(base: Scenario, now: Scenario) -> dict[str, Any]:
    """Fields of ``now`` that differ from ``base``, as nested mappings."""
    diff = _differences(base.model_dump(mode="json"), now.model_dump(mode="json"))
    return {} if diff is _SAME else diff


def write_variant(model: Comparison, path: str | Path) -> Path:
    """Save the second scenario as a variant file: ``base:`` and what differs from it.

    ``base`` is the scenario file it starts from, relative to the saved file's folder; ``name``
    becomes the file's stem so a run can compare it with its base.
    """
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        raise ScenarioError(f"{path}: expected a file name ending in .yaml")
    if path.resolve() == Path(model.paths[1]).resolve():
        raise ScenarioError(f"{path}: is the scenario itself; choose another name")
    data: dict[str, Any] = {
        "base": Path(
            os.path.relpath(Path(model.paths[1]).resolve(), path.resolve().parent)
        ).as_posix()
    }
    named = apply_overrides(model.specs[1], {"name": path.stem})
    data.update(variant_of(model.base[1], named))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def money(value: float) -> str:
    """Money in short form: 1.2 M, 35 k, 420."""
    for size, suffix in ((1e9, " bn"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= size:
            return f"{value / size:,.{1 if abs(value) < 10 * size else 0}f}{suffix}"
    return f"{value:,.0f}"


def _signed_money(value: float) -> str:
    return ("+" if value >= 0 else "") + money(value)


# (summary figure, text, value format, paired-difference format); churn differences in points
FIGURES = [
    ("annual_churn", "annual churn", "{:.1%}".format, lambda d: f"{100 * d:+.1f} pts"),
    ("nps", "NPS, last year", "{:+.1f}".format, "{:+.1f} pts".format),
    ("csat", "CSAT %, last year", "{:.1f}".format, "{:+.1f} pts".format),
    ("final_customers", "customers at the end (simulated)", "{:,.0f}".format, "{:+,.0f}".format),
    ("profit", "profit", money, _signed_money),
    ("lost_revenue_experience_horizon", "revenue lost to poor experiences", money, _signed_money),
]


def replicate(model: Comparison, replications: int) -> list[list[str]]:
    """Run both current scenarios ``replications`` times (same seeds for both) in this process.

    Returns table rows: figure, then mean [95% CI] for each strategy and for the paired
    difference (second minus first).
    """
    from cxsim.experiment import run_experiment

    experiment = run_experiment(
        list(model.specs), replications, model.seed, workers=1, progress=False
    )
    figures = experiment.figures().set_index(["scenario", "figure"])
    diffs = experiment.differences().set_index("figure")
    rows = []
    for key, text, fmt, dfmt in FIGURES:
        row = [text]
        for name in model.names:
            m, lo, hi = figures.loc[(name, key), ["mean", "low", "high"]]
            row.append(_with_ci(fmt, m, lo, hi))
        m, lo, hi = diffs.loc[key, ["mean", "low", "high"]]
        row.append(_with_ci(dfmt, m, lo, hi))
        rows.append(row)
    return rows


def _with_ci(fmt: Callable[[float], str], m: float, lo: float, hi: float) -> str:
    return f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]"
