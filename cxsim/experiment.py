"""Replications: independent seeds from one root, run locally on a process pool.

Every scenario in an experiment gets the same replication seeds (common random numbers), so
differences between strategies are paired. Results do not depend on how many workers ran them:
each replication's seed is fixed by the root seed and its index, and results are put back in
replication order. Each finished run can be saved as a part (see :mod:`cxsim.parts`) so an
interrupted experiment resumes where it stopped, and a precision target can ask for more
replications until a confidence interval is narrow enough.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from cxsim import checkpoint
from cxsim.executors import Executor, TaskFailed, WorkerDeath, WorkerDied, local
from cxsim.metrics import cohort_retention, mean_ci, run_summary, summarise
from cxsim.scenario import Scenario


def replication_seeds(root: int, replications: int) -> list[int]:
    """One 63-bit seed per replication, spawned from the root seed (the i-th seed does not
    depend on how many are asked for, so adding replications keeps the earlier ones)."""
    children = np.random.SeedSequence(root).spawn(replications)
    return [int(c.generate_state(1, np.uint64)[0] >> np.uint64(1)) for c in children]


@dataclass
class RunResult:
    """One replication of one scenario: per-step metrics, summary, per-customer table, and
    churn and revenue lost by cause."""

    steps: pd.DataFrame
    summary: dict[str, float]
    customers: pd.DataFrame
    losses: pd.DataFrame
    continued_from: int = 0  # the saved step this run went on from (0: it ran from the start)


def run_once(
    spec: Scenario, seed: int, engine: str = "vector", saving: checkpoint.Saving | None = None
) -> RunResult:
    """Build the model with ``seed``, run it to the horizon, and collect its tables; with
    ``saving``, go on from the run's saved state if it has one, saving it as it goes (see
    :mod:`cxsim.checkpoint`)."""
    from cxsim.engines import ENGINES  # here: a process that only collects runs never needs it

    model = ENGINES[engine](spec, rng=seed)
    start = checkpoint.run(model, saving)
    steps = model.metrics_frame()
    return RunResult(steps, run_summary(steps, spec), model.customer_table(), model.losses(),
                     continued_from=start)  # fmt: skip


def _task(args: tuple[Scenario, int, str, checkpoint.Saving | None]) -> RunResult:
    return run_once(*args)


@dataclass(frozen=True)
class Precision:
    """Run replications until the 95% CI half-width of ``figure`` is at most ``half_width``
    (for a comparison: of every paired difference against the first scenario), with at least
    ``minimum`` and at most ``maximum`` replications."""

    figure: str
    half_width: float
    minimum: int = 10
    maximum: int = 200

    def half_widths(self, summaries: pd.DataFrame, names: list[str]) -> list[float]:
        """The current half-width of the target, per comparison (or for the one scenario)."""
        wide = summaries.pivot(index="replication", columns="scenario", values=self.figure)
        columns = [wide[n] - wide[names[0]] for n in names[1:]] or [wide[names[0]]]
        out = []
        for values in columns:
            m, lo, hi = mean_ci(values.to_numpy(float))
            out.append((hi - lo) / 2 if len(values) > 1 else float("inf"))
        return out

    def met(self, summaries: pd.DataFrame, names: list[str]) -> bool:
        return all(h <= self.half_width for h in self.half_widths(summaries, names))


def _kept(method):
    """A table derived from an experiment's runs, computed on first use and kept: the CSV
    files, the charts, the report page and the printout all read the same few tables."""

    @wraps(method)
    def kept(self):
        if method.__name__ not in self._derived:
            self._derived[method.__name__] = method(self)
        return self._derived[method.__name__]

    return kept


@dataclass
class Experiment:
    """All replications of one or more scenarios, as tidy tables (treat them as read-only:
    the tables derived from them are kept once computed)."""

    scenarios: list[Scenario]
    seeds: list[int]
    engine: str
    steps: pd.DataFrame  # scenario, replication, seed, step, metrics...
    summaries: pd.DataFrame  # scenario, replication, seed, figures...
    customers: pd.DataFrame  # scenario, replication, per-customer columns
    losses: pd.DataFrame  # scenario, replication, cause, department, churn, lost revenue
    precision: Precision | None = None
    worker_deaths: list[WorkerDeath] = field(default_factory=list)  # keys (scenario index, r)
    # Runs that went on from a saved state (see cxsim.checkpoint): scenario, replication, step.
    continued: list[dict] = field(default_factory=list)
    _derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scenarios]

    @_kept
    def cohorts(self) -> pd.DataFrame:
        """Retention by acquisition cohort and tenure, pooled over replications; cohorts and
        tenures in quarters (or a quarter of the horizon, if that is shorter)."""
        spec = self.scenarios[0]
        period = max(1, min(round(spec.time.steps_per_year / 4), spec.time.horizon // 4))
        return cohort_retention(self.customers, spec.time.horizon, period)

    @_kept
    def figures(self) -> pd.DataFrame:
        """Mean and 95% CI of each summary figure per scenario."""
        return summarise(self.summaries.drop(columns=["seed"]))

    @_kept
    def paired(self) -> pd.DataFrame:
        """Per replication, every scenario minus the first (same seeds: common random numbers).

        Besides the differences of every summary figure:
        - ``break_even_cost``: the second scenario's total programme cost at which its profit
          equals the first's. The programme cost is money only (no customer sees it), so the
          runs already made give it exactly: the second scenario's profit before its programme
          cost minus the first's profit. ``break_even_per_customer_step`` divides it by the
          customer-steps the second scenario served (per real customer per step).
        - ``roi``: extra profit per unit of extra programme cost, and ``payback_step``: the
          first step from which the cumulative profit stays ahead of the first scenario's
          (NaN if it never does). Both only where the extra programme cost is positive.
        """
        names = self.names
        if len(names) < 2:
            return pd.DataFrame()
        wide = self.summaries.set_index(["scenario", "replication"]).drop(columns=["seed"])
        profit = self.steps.pivot_table(
            index=["scenario", "replication"], columns="step", values="cumulative_profit"
        )
        represents = {s.name: s.population.represents for s in self.scenarios}
        frames = []
        for name in names[1:]:
            mine, base = wide.loc[name], wide.loc[names[0]]
            diff = mine - base
            extra = diff["cost_programme"].where(diff["cost_programme"] > 0)
            diff["roi"] = diff["profit"] / extra
            ahead = (profit.loc[name] - profit.loc[names[0]]).to_numpy() >= 0
            stays = np.flip(np.cumprod(np.flip(ahead, axis=1), axis=1), axis=1).astype(bool)
            first = np.where(stays.any(axis=1), stays.argmax(axis=1), -1)
            payback = np.where(first >= 0, profit.columns.to_numpy()[first], np.nan)
            diff["payback_step"] = np.where(extra.notna(), payback, np.nan)
            diff["break_even_cost"] = mine["profit"] + mine["cost_programme"] - base["profit"]
            served = mine["customer_steps"] * represents[name]
            diff["break_even_per_customer_step"] = diff["break_even_cost"] / served
            diff = diff.reset_index()
            diff.insert(0, "scenario", f"{name} - {names[0]}")
            frames.append(diff)
        return pd.concat(frames, ignore_index=True)

    @_kept
    def differences(self) -> pd.DataFrame:
        """Mean and 95% CI of the paired differences against the first scenario. A payback
        step's interval is kept within the horizon (steps 0 to horizon)."""
        paired = self.paired()
        if not len(paired):
            return paired
        out = summarise(paired, levels=False)
        horizon = self.scenarios[0].time.horizon
        pay = out["figure"] == "payback_step"
        out.loc[pay, ["low", "high"]] = out.loc[pay, ["low", "high"]].clip(0, horizon)
        return out

    @_kept
    def loss_breakdown(self) -> pd.DataFrame:
        """Revenue lost to customers who walked away after bad experiences, by touchpoint and by
        department, per scenario (mean and 95% CI over replications), and what each later
        scenario recovers against the first (paired, same seeds).

        Columns: scenario, by (touchpoint or department), part, churn, lost_revenue_horizon,
        lost_revenue_lifetime, each with _low and _high. ``scenario`` is a scenario name, or
        "B recovers vs A" for the paired recovery (A's loss minus B's).
        """
        walked = self.losses[self.losses["cause"] != "baseline"]
        values = ["churn", "lost_revenue_horizon", "lost_revenue_lifetime"]
        rows = []
        for by, column in (("touchpoint", "cause"), ("department", "department")):
            order = list(dict.fromkeys(walked[column]))
            # Every part for every run, 0 where a scenario has no such touchpoint or department.
            full = pd.MultiIndex.from_product(
                [self.names, range(len(self.seeds)), order],
                names=["scenario", "replication", column],
            )
            grouped = walked.groupby(["scenario", "replication", column], sort=False)[values]
            per_run = grouped.sum().reindex(full, fill_value=0.0)
            for name in self.names:
                rows += _ci_rows(per_run.loc[name], name, by, order, values, floor=0.0)
            for name in self.names[1:]:
                recovered = per_run.loc[self.names[0]] - per_run.loc[name]
                rows += _ci_rows(recovered, f"{name} recovers vs {self.names[0]}", by, order,
                                 values, floor=None)  # fmt: skip
        return pd.DataFrame(rows)


def _ci_rows(per_run: pd.DataFrame, scenario: str, by: str, order: list[str], values,
             floor: float | None) -> list:  # fmt: skip
    """Mean and 95% CI over replications of each part, in journey order."""
    rows = []
    for part in order:
        group = per_run.xs(part, level=-1)
        row = {"scenario": scenario, "by": by, "part": part}
        for v in values:
            m, lo, hi = mean_ci(group[v].to_numpy(float), floor=floor)
            row.update({v: m, f"{v}_low": lo, f"{v}_high": hi})
        rows.append(row)
    return rows


def run_experiment(
    scenarios: list[Scenario],
    replications: int,
    seed: int,
    engine: str = "vector",
    workers: int | None = None,
    progress: bool | None = None,
    parts: Path | None = None,
    precision: Precision | None = None,
    on_batch: Callable[[int, list[float]], None] | None = None,
    executor: Executor | None = None,
) -> Experiment:
    """Run every scenario ``replications`` times with the same seeds, on ``workers`` processes.

    With ``parts`` (a folder), each finished run is saved there as it ends and runs already
    saved are loaded instead of run again, so an interrupted experiment resumes where it
    stopped. With ``precision``, ``replications`` is the first batch and more follow, a batch
    at a time, until the target is met or its maximum is reached; ``on_batch(n, half_widths)``
    hears after each batch. ``executor`` (see :mod:`cxsim.executors`) runs the replications;
    by default a local pool of ``workers`` processes, or this process for one worker.
    """
    from cxsim import parts as store

    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ValueError(f"scenario names must differ to be compared, found {names}")
    if progress is None:
        progress = sys.stderr.isatty()
    workers = workers or os.cpu_count() or 1
    results: dict[tuple[int, int], RunResult] = {}
    deaths: list[WorkerDeath] = []
    n = replications if precision is None else max(replications, precision.minimum)
    if precision is not None:
        n = min(n, precision.maximum)
    if parts is not None:
        parts.mkdir(parents=True, exist_ok=True)
        results.update(store.load_all(parts, scenarios, engine, seed))
    # A run saves its state as it goes into the parts folder, where its worker can write (not
    # on a cluster's workers, which may not see this machine's disk), and goes on from a state
    # saved there before (even if saving is now off: every 0).
    local_parts = parts is not None and executor is None
    every = checkpoint.interval() if local_parts else 0.0

    def saving(i: int, r: int, run_seed: int) -> checkpoint.Saving | None:
        if not local_parts:
            return None
        return checkpoint.Saving(
            parts / checkpoint.state_name(store.part_name(i, r)), every,
            store.made_from(scenarios[i], run_seed, engine),
        )  # fmt: skip

    while True:
        seeds = replication_seeds(seed, n)
        tasks = [(i, r) for i in range(len(scenarios)) for r in range(n)]
        todo = [t for t in tasks if t not in results]
        bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="runs", unit="run",
                   disable=not progress)  # fmt: skip
        args = {t: (scenarios[t[0]], seeds[t[1]], engine, saving(*t, seeds[t[1]])) for t in todo}
        # Stopped, a pool's runs in hand first save their state (if they save it at all).
        grace = checkpoint.WIND_UP if every else 0.0
        runner = executor if executor is not None else local(workers, len(args), grace)
        known = len(runner.deaths)
        # closing: if saving a part fails (a full disk), the runs not started are cancelled
        # now, not run to the end while the error waits to be printed.
        with closing(_execute(runner, args)) as finished:
            for (i, r), result in finished:
                results[(i, r)] = result
                if parts is not None:
                    store.save(parts, i, r, scenarios[i], seeds[r], engine, result)
                bar.update()
        bar.close()
        deaths += runner.deaths[known:]
        experiment = _assemble(scenarios, seeds, engine, [results[t] for t in tasks], precision)
        experiment.worker_deaths = list(deaths)
        if precision is None:
            return experiment
        widths = precision.half_widths(experiment.summaries, names)
        if on_batch is not None:
            on_batch(n, widths)
        if n >= precision.maximum or all(w <= precision.half_width for w in widths):
            return experiment
        n = min(precision.maximum, n + max(workers, n // 2))


def _execute(executor: Executor, args: dict):
    """(key, result) of every run as it finishes. A run that raises raises its own exception
    here (a model error is a bug to see with its traceback, not a message about a task); a run
    whose workers kept dying raises WorkerDied naming the run."""
    try:
        yield from executor.map_unordered(_task, args)
    except TaskFailed as failed:
        if isinstance(failed.error, WorkerDied):
            spec, seed = args[failed.key][:2]
            raise WorkerDied(f"the run of scenario '{spec.name}', replication {failed.key[1]} "
                             f"(seed {seed}) failed: {failed.error}") from None  # fmt: skip
        raise failed.error from None


def _assemble(scenarios, seeds, engine, ordered: list[RunResult], precision) -> Experiment:
    """Tidy tables of all runs, tagged by scenario, replication and seed."""
    steps, summaries, customers, losses, continued = [], [], [], [], []
    for k, result in enumerate(ordered):
        spec, r = scenarios[k // len(seeds)], k % len(seeds)
        tags = {"scenario": spec.name, "replication": r, "seed": seeds[r]}
        if result.continued_from:
            continued.append({"scenario": spec.name, "replication": r,
                              "from_step": result.continued_from})  # fmt: skip
        steps.append(result.steps.assign(**tags))
        summaries.append({**tags, **result.summary})
        customers.append(result.customers.assign(scenario=spec.name, replication=r))
        losses.append(result.losses.assign(scenario=spec.name, replication=r))
    steps_frame = pd.concat(steps, ignore_index=True)
    front = ["scenario", "replication", "seed", "step"]
    steps_frame = steps_frame[front + [c for c in steps_frame.columns if c not in front]]
    return Experiment(
        scenarios=scenarios,
        seeds=seeds,
        engine=engine,
        steps=steps_frame,
        summaries=pd.DataFrame(summaries),
        customers=pd.concat(customers, ignore_index=True),
        losses=pd.concat(losses, ignore_index=True),
        precision=precision,
        continued=continued,
    )
