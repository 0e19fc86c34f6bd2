"""Replications: independent seeds from one root, run locally on a process pool.

Every scenario in an experiment gets the same replication seeds (common random numbers), so
differences between strategies are paired. Results do not depend on how many workers ran them:
each replication's seed is fixed by the root seed and its index, and results are put back in
replication order.
"""

from __future__ import annotations

import os
import pickle
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from cxsim.engines import ENGINES
from cxsim.metrics import cohort_retention, run_summary, summarise
from cxsim.scenario import Scenario


def replication_seeds(root: int, replications: int) -> list[int]:
    """One 63-bit seed per replication, spawned from the root seed."""
    children = np.random.SeedSequence(root).spawn(replications)
    return [int(c.generate_state(1, np.uint64)[0] >> np.uint64(1)) for c in children]


@dataclass
class RunResult:
    """One replication of one scenario: per-step metrics, summary, per-customer table."""

    steps: pd.DataFrame
    summary: dict[str, float]
    customers: pd.DataFrame


def run_once(spec: Scenario, seed: int, engine: str = "vector") -> RunResult:
    """Build the model with ``seed``, run it to the horizon, and collect its tables."""
    model = ENGINES[engine](spec, rng=seed).run()
    steps = model.metrics_frame()
    return RunResult(steps, run_summary(steps, spec), model.customer_table())


def _task(args: tuple[Scenario, int, str]) -> RunResult:
    return run_once(*args)


@dataclass
class Experiment:
    """All replications of one or more scenarios, as tidy tables."""

    scenarios: list[Scenario]
    seeds: list[int]
    engine: str
    steps: pd.DataFrame  # scenario, replication, seed, step, metrics...
    summaries: pd.DataFrame  # scenario, replication, seed, figures...
    customers: pd.DataFrame  # scenario, replication, per-customer columns

    def cohorts(self) -> pd.DataFrame:
        """Retention by acquisition cohort and tenure, pooled over replications; cohorts and
        tenures in quarters (or a quarter of the horizon, if that is shorter)."""
        spec = self.scenarios[0]
        period = max(1, min(round(spec.time.steps_per_year / 4), spec.time.horizon // 4))
        return cohort_retention(self.customers, spec.time.horizon, period)

    def figures(self) -> pd.DataFrame:
        """Mean and 95% CI of each summary figure per scenario."""
        return summarise(self.summaries.drop(columns=["seed"]))

    def paired(self) -> pd.DataFrame:
        """Per replication, every scenario minus the first (same seeds: common random numbers).

        Besides the differences of every summary figure: ``roi``, the extra profit per unit of
        extra programme cost, and ``payback_step``, the first step from which the cumulative
        profit stays ahead of the first scenario's (NaN if it never does).
        """
        names = [s.name for s in self.scenarios]
        if len(names) < 2:
            return pd.DataFrame()
        wide = self.summaries.set_index(["scenario", "replication"]).drop(columns=["seed"])
        profit = self.steps.pivot_table(
            index=["scenario", "replication"], columns="step", values="cumulative_profit"
        )
        frames = []
        for name in names[1:]:
            diff = wide.loc[name] - wide.loc[names[0]]
            extra = diff["cost_programme"].where(diff["cost_programme"] > 0)
            diff["roi"] = diff["profit"] / extra
            ahead = (profit.loc[name] - profit.loc[names[0]]).to_numpy() >= 0
            stays = np.flip(np.cumprod(np.flip(ahead, axis=1), axis=1), axis=1).astype(bool)
            first = np.where(stays.any(axis=1), stays.argmax(axis=1), -1)
            diff["payback_step"] = np.where(first >= 0, profit.columns.to_numpy()[first], np.nan)
            diff = diff.reset_index()
            diff.insert(0, "scenario", f"{name} - {names[0]}")
            frames.append(diff)
        return pd.concat(frames, ignore_index=True)

    def differences(self) -> pd.DataFrame:
        """Mean and 95% CI of the paired differences against the first scenario."""
        paired = self.paired()
        return summarise(paired) if len(paired) else paired


def run_experiment(
    scenarios: list[Scenario],
    replications: int,
    seed: int,
    engine: str = "vector",
    workers: int | None = None,
    progress: bool | None = None,
    parts: Path | None = None,
) -> Experiment:
    """Run every scenario ``replications`` times with the same seeds, on ``workers`` processes.

    With ``parts`` (a folder), each finished run is saved there as it ends (written to a
    temporary name, then renamed) and runs already saved are loaded instead of run again, so an
    interrupted experiment resumes where it stopped.
    """
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ValueError(f"scenario names must differ to be compared, found {names}")
    seeds = replication_seeds(seed, replications)
    tasks = [(spec, s, engine) for spec in scenarios for s in seeds]
    results: dict[int, RunResult] = {}
    files: list[Path] = []  # one part file per task, when saving parts
    if parts is not None:
        files = [parts / f"scenario{i:03d}-replication{r:05d}.pkl"
                 for i in range(len(scenarios)) for r in range(replications)]  # fmt: skip
        parts.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(files):
            if path.exists():
                with path.open("rb") as f:
                    results[i] = pickle.load(f)
    todo = [i for i in range(len(tasks)) if i not in results]
    workers = min(workers or os.cpu_count() or 1, max(len(todo), 1))
    if progress is None:
        progress = sys.stderr.isatty()
    bar = tqdm(total=len(tasks), initial=len(results), desc="runs", unit="run",
               disable=not progress)  # fmt: skip

    def finished(i: int, result: RunResult) -> None:
        results[i] = result
        if parts is not None:
            tmp = files[i].with_suffix(".tmp")
            with tmp.open("wb") as f:
                pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, files[i])
        bar.update()

    if workers <= 1:
        for i in todo:
            finished(i, _task(tasks[i]))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_task, tasks[i]): i for i in todo}
            for future in as_completed(futures):
                finished(futures[future], future.result())
    bar.close()
    ordered = [results[i] for i in range(len(tasks))]  # replication order, whatever finished first
    steps, summaries, customers = [], [], []
    for (spec, s, _), result in zip(tasks, ordered, strict=True):
        tags = {"scenario": spec.name, "replication": seeds.index(s), "seed": s}
        steps.append(result.steps.assign(**tags))
        summaries.append({**tags, **result.summary})
        customers.append(
            result.customers.assign(scenario=spec.name, replication=tags["replication"])
        )
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
    )
