"""cxsim: an agent-based model of customer churn under reactive service or proactive CX.

Quick use from Python::

    from cxsim import load_scenario, VectorModel
    model = VectorModel(load_scenario("scenarios/proactive.yaml"), rng=1).run()
    model.metrics_frame()        # per-step metrics
    model.customer_table()       # one row per customer spell
    simulate(scenario="scenarios/proactive.yaml", **{"strategy.detection": 0.7}, seed=1)

The names below are imported when first used (PEP 562), so that ``import cxsim.cli`` does not
load Mesa, SciPy and the engines before the command line knows what it is asked to do.
"""

from importlib import import_module

__version__ = "0.1.0"

ENGINE_NAMES = ("vector", "agents")
"""The model's engines by name (:data:`cxsim.engines.ENGINES` maps each to its class); here
rather than in :mod:`cxsim.scenario`, so the command line names them without loading pydantic."""

_WHERE = {
    "ENGINES": "cxsim.engines",
    "AgentsModel": "cxsim.engines",
    "CustomerModel": "cxsim.engines",
    "VectorModel": "cxsim.engines",
    "run_experiment": "cxsim.experiment",
    "run_once": "cxsim.experiment",
    "simulate": "cxsim.interop",
    "ScenarioError": "cxsim.loading",
    "load_scenario": "cxsim.loading",
    "parse_scenario": "cxsim.loading",
    "Scenario": "cxsim.scenario",
}

__all__ = sorted([*_WHERE, "ENGINE_NAMES", "compat"])


def __getattr__(name: str):
    if name == "compat":
        return import_module("cxsim.compat")
    if name in _WHERE:
        value = getattr(import_module(_WHERE[name]), name)
        globals()[name] = value  # later look-ups do not come back here
        return value
    raise AttributeError(f"module 'cxsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
