"""cxsim: an agent-based model of customer churn under reactive service or proactive CX.

Quick use from Python::

    from cxsim import load_scenario, VectorModel
    model = VectorModel(load_scenario("scenarios/proactive.yaml"), rng=1).run()
    model.metrics_frame()        # per-step metrics
    model.customer_table()       # one row per customer spell
    simulate(scenario="scenarios/proactive.yaml", **{"strategy.detection": 0.7}, seed=1)
"""

from cxsim import compat
from cxsim.engines import ENGINES, AgentsModel, CustomerModel, VectorModel
from cxsim.experiment import run_experiment, run_once
from cxsim.interop import simulate
from cxsim.loading import ScenarioError, load_scenario, parse_scenario
from cxsim.scenario import Scenario

__version__ = "0.1.0"

__all__ = [
    "ENGINES",
    "AgentsModel",
    "CustomerModel",
    "Scenario",
    "ScenarioError",
    "compat",
    "VectorModel",
    "load_scenario",
    "parse_scenario",
    "run_experiment",
    "run_once",
    "simulate",
]
