"""Sweeps: many parameter points of one or more scenarios, each run on the same seeds.

A sweep file (:mod:`cxsim.sweep.spec`) names the scenario(s) to start from, the parameters to
vary as dotted scenario keys, a design and its size, replications per point, the figures to
report and a seed. :mod:`cxsim.sweep.design` turns it into a table of parameter points (with the
SALib ``problem`` for analysis); :mod:`cxsim.sweep.run` makes one task per point, scenario and
replication, runs them through one executor interface (:mod:`cxsim.executors`: serial, local
process pool or Dask), stores each finished run as a part (:mod:`cxsim.parts`) so an
interrupted sweep resumes, and assembles the tables: every run's summary, every run x step, and
per point the mean and 95% CI of each figure (and of the paired difference between scenarios).

From Python::

    from cxsim.sweep import load_sweep, run_sweep
    result = run_sweep(load_sweep("scenarios/my_sweep.yaml"), out="results", workers=2)
    result.points      # one row per point and scenario: mean, low, high of each figure
"""

from cxsim.sweep.design import design
from cxsim.sweep.run import SweepResult, SweepTaskError, run_sweep
from cxsim.sweep.spec import Sweep, SweepSpec, load_sweep, parse_sweep

__all__ = [
    "Sweep",
    "SweepResult",
    "SweepSpec",
    "SweepTaskError",
    "design",
    "load_sweep",
    "parse_sweep",
    "run_sweep",
]
