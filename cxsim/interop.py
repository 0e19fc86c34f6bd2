"""cxsim as a plain function, for other tools' samplers and optimisers.

:func:`simulate` runs one scenario once with some of its fields changed and returns its summary
figures as a dict of floats: the shape EMA Workbench, SALib loops, scipy optimisers or a
notebook want from a model. Parameters are the same dotted scenario keys as ``--set`` and sweep
files; Python keyword names cannot hold dots, so ``strategy__detection=0.5`` means
``strategy.detection`` too (or pass a dict: ``simulate(**{"strategy.detection": 0.5})``).

With EMA Workbench::

    from ema_workbench import Constant, Model, RealParameter, ScalarOutcome
    model = Model("cxsim", function=cxsim.simulate)
    model.constants = [Constant("scenario", "scenarios/proactive.yaml")]
    model.uncertainties = [RealParameter("behaviour__problem_fade", 0.1, 0.5)]
    model.outcomes = [ScalarOutcome("profit"), ScalarOutcome("annual_churn")]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cxsim.scenario import Scenario


def simulate(
    scenario: str | Path | Scenario | None = None,
    seed: int | None = None,
    engine: str = "vector",
    **params: Any,
) -> dict[str, float]:
    """Run ``scenario`` (a file, a Scenario, or the defaults) once with ``params`` applied;
    every summary figure of the run, as plain floats.

    ``seed`` is the run's own seed; without one, the run is replication 0 of the scenario's
    ``run.seed`` (the first run ``cxsim run`` makes), so a call without a seed is reproducible
    too. Give each replication its own seed. A bad key or value raises
    :class:`cxsim.ScenarioError` naming it.
    """
    from cxsim.engines.base import resolve_scenario
    from cxsim.experiment import replication_seeds, run_once

    overrides = {key.replace("__", "."): value for key, value in params.items()}
    spec = resolve_scenario(scenario, overrides)
    seed = replication_seeds(spec.run.seed, 1)[0] if seed is None else int(seed)
    result = run_once(spec, seed, engine)
    return {name: float(value) for name, value in result.summary.items()}
