"""Shared helpers: small scenarios that run in a fraction of a second."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxsim.loading import apply_overrides, load_scenario
from cxsim.scenario import Scenario

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [ROOT / "scenarios" / f"{name}.yaml"
           for name in ("reactive", "proactive", "telecom", "telecom_proactive")]  # fmt: skip
ALL_MECHANISMS = Path(__file__).resolve().parent / "scenarios" / "all_mechanisms.yaml"


def small(base: Scenario | Path | str | None = None, **overrides) -> Scenario:
    """A scenario shrunk for tests; keyword names use __ for dots (strategy__detection=0.5)."""
    spec = Scenario() if base is None else base
    if not isinstance(spec, Scenario):
        spec = load_scenario(spec)
    sizes = {"population.customers": 100, "population.prospects": 300, "time.horizon": 26}
    sizes.update({k.replace("__", "."): v for k, v in overrides.items()})
    return apply_overrides(spec, sizes)


def quiet(spec: Scenario) -> Scenario:
    """No experiences, problems or baseline churn: nothing should make anyone leave."""
    tps = [
        {**t.model_dump(mode="json"), "good": 0.0, "bad": 0.0, "problem_rate": 0.0}
        for t in spec.touchpoints
    ]
    return apply_overrides(
        spec,
        {
            "touchpoints": tps,
            "behaviour.baseline_churn.alpha": 1e-9,
            "behaviour.baseline_churn.beta": 1e9,
        },
    )


@pytest.fixture(params=["vector", "agents"])
def engine(request) -> str:
    return request.param


def only_folder(parent: Path) -> Path:
    """The one folder in ``parent`` (a run's results folder): fails if there are none or more."""
    (folder,) = [p for p in parent.iterdir() if p.is_dir()]
    return folder
