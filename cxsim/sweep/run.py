"""Run a sweep: tasks from the design, one executor, a part per finished run, the final tables.

Every point runs every scenario on the same replication seeds (common random numbers: the
seeds come from the sweep's root seed and do not depend on the point or the scenario), so the
difference between two points or two scenarios is not blurred by different luck. A task
returns only what a sweep reports (the summary figures and the requested figures' per-step
columns), not the customer table. Results are put back in (point, scenario, replication)
order, so the tables are the same whatever executor ran them and however many workers it had.

A sweep folder holds ``plan.json`` (the sweep as read, and its hash) and ``parts/`` while it
runs; ``run_sweep(..., folder=F)`` on a folder with parts runs only what is missing, and refuses
a folder started from other settings. When complete it holds ``runs.parquet``, ``steps.parquet``,
``points.csv``, ``design.csv``, ``problem.json`` and ``manifest.json``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from cxsim import guards
from cxsim import parts as store
from cxsim.engines import ENGINES
from cxsim.executors import (
    DaskExecutor,
    Executor,
    TaskFailed,
    WorkerDeath,
    WorkerDied,
    local,
)
from cxsim.experiment import replication_seeds
from cxsim.loading import ScenarioError, apply_overrides
from cxsim.metrics import STEP_METRICS, figure, run_summary, t_quantile
from cxsim.results import (
    ResultsError,
    finish,
    git_commit,
    planned_folder,
    versions,
    writing,
)
from cxsim.scenario import Scenario
from cxsim.sweep.design import POINT, design, point_overrides
from cxsim.sweep.spec import Sweep, for_scenario, unblame
from cxsim.workfolder import PARTS, PLAN, atomic, manifest_sessions

TAGS = [POINT, "scenario", "replication", "seed"]
SWEEP_PACKAGES = ["SALib", "dask", "distributed"]

# Per-step columns behind a figure whose name is not itself a per-step metric.
_STEP_COLUMNS = {
    "annual_churn": ["churn_rate"],
    "final_customers": ["customers"],
    "total_churn": ["churn"],
    "churn_experience": ["churn", "churn_by_baseline"],
    "churn_baseline": ["churn_by_baseline"],
    "profit_per_year": ["profit"],
    "profit_discounted": ["profit"],
    "conversion_per_prospect": ["new_customers", "prospects"],
}


def step_columns(figures: list[str]) -> list[str]:
    """The per-step columns the requested figures are made from, in figure order, once each."""
    known = {m.name for m in STEP_METRICS}
    out: list[str] = []
    for name in figures:
        for column in _STEP_COLUMNS.get(name, [name] if name in known else []):
            if column not in out:
                out.append(column)
    return out


# --- tasks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepTask:
    """One run of a sweep: which point, scenario and replication, its seed and overrides, and
    the scenario already overridden (checked in the parent, so a worker only runs it)."""

    id: int
    point: int
    scenario: int
    replication: int
    seed: int
    overrides: dict[str, Any]
    spec: Scenario
    engine: str
    columns: tuple[str, ...]

    @property
    def key(self) -> store.SweepKey:
        return (self.point, self.scenario, self.replication)


def run_task(task: SweepTask) -> tuple[dict[str, float], pd.DataFrame]:
    """Build, run and summarise one model; return (summary figures, per-step table of the
    requested columns). A module-level function, so every executor can send it by name."""
    model = ENGINES[task.engine](task.spec, rng=task.seed).run()
    steps = model.metrics_frame()
    summary = run_summary(steps, task.spec)
    return summary, steps[["step", *task.columns]].reset_index(drop=True)


class SweepTaskError(Exception):
    """A run of a sweep raised. The points were checked before anything ran, so this is a bug
    in the model, not in the sweep file; the message names the point and keeps the parts."""


# --- the run ----------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """A finished sweep's tables (as written to its folder, if it has one)."""

    sweep: Sweep
    design: pd.DataFrame
    problem: dict
    runs: pd.DataFrame
    steps: pd.DataFrame
    points: pd.DataFrame
    seeds: list[int]
    folder: Path | None = None
    wall_seconds: float = 0.0
    executor: str = ""
    worker_deaths: list[WorkerDeath] = field(default_factory=list)
    analysis: list[Path] = field(default_factory=list)  # the files the analysis wrote


def start(parent: Path | str, sweep: Sweep, command: list[str] | None = None) -> Path:
    """A new sweep folder under ``parent`` holding the plan (the sweep as read, its hash)."""
    plan = {
        "cxsim_sweep_plan": 1,
        "sweep_hash": sweep.hash(),
        "command": list(sys.argv if command is None else command),
        **sweep.to_plan(),
    }
    text = json.dumps(plan, indent=2) + "\n"

    def save_plan(folder: Path) -> None:
        atomic(folder / PLAN, lambda p: p.write_text(text, encoding="utf-8"))

    return planned_folder(Path(parent), f"sweep-{sweep.name}", save_plan, "sweep")


def read_plan(folder: Path | str) -> dict:
    """The plan of an unfinished sweep folder (plain JSON; nothing in it is executed)."""
    path = Path(folder) / PLAN
    if not path.exists():
        if (Path(folder) / "manifest.json").exists():
            raise ResultsError(f"{folder}: this sweep is complete; nothing to resume")
        raise ResultsError(f"{folder}: not a cxsim sweep folder (no {PLAN})")
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(plan, dict) or plan.get("cxsim_sweep_plan") != 1:
            raise ValueError("not a sweep plan")
        return plan
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: damaged or not a sweep plan, cannot resume ({exc})") from None


def resume(folder: Path | str, sweep: Sweep | None = None) -> Sweep:
    """The sweep to finish in ``folder``: its plan's, or ``sweep`` if it is the same one
    (same settings, same scenarios); a different sweep is refused."""
    plan = read_plan(folder)
    if sweep is None:
        try:
            return Sweep.from_plan(plan, str(Path(folder) / PLAN))
        except (KeyError, TypeError) as exc:
            raise ResultsError(f"{folder}: damaged plan, cannot resume ({exc})") from None
    if plan.get("sweep_hash") != sweep.hash():
        raise ResultsError(
            f"{folder}: made from other settings than {sweep.source} (the sweep or its "
            f"scenarios changed since it started from {plan.get('source')}); resume it without "
            "naming a sweep file to finish it as planned, or start a new sweep"
        )
    return sweep


def run_sweep(
    sweep: Sweep,
    out: Path | str | None = None,
    workers: int | None = None,
    client: Any = None,
    progress: bool | None = None,
    folder: Path | str | None = None,
    executor: Executor | None = None,
    analysis: Callable[[SweepResult, Path], list[Path]] | None = None,
) -> SweepResult:
    """Run every point of ``sweep`` for every scenario and replication, and collect the tables.

    ``out``: parent of a new sweep folder; ``folder``: a folder made by :func:`start` (or one
    to resume); neither: nothing is written. ``client``: a ``dask.distributed.Client`` to run
    on; else ``executor``; else a local pool of ``workers`` processes (default: every core).
    ``analysis(result, folder)``, if given, writes more files with the tables (see
    :func:`write_tables`).
    """
    started = time.perf_counter()
    if progress is None:
        progress = sys.stderr.isatty()
    if folder is None and out is not None:
        folder = start(out, sweep)
    folder = Path(folder) if folder is not None else None
    points, problem = design(sweep)
    seeds = replication_seeds(sweep.spec.seed, sweep.spec.replications)
    tasks = _tasks(sweep, points, seeds)
    done: dict[store.SweepKey, tuple[dict, pd.DataFrame]] = {}
    if folder is not None:
        (folder / PARTS).mkdir(exist_ok=True)
        records = {t.key: _record(t, sweep) for t in tasks}
        done.update(store.load_sweep_runs(folder / PARTS, records.get))
    todo = {t.key: t for t in tasks if t.key not in done}
    if client is not None:
        executor = DaskExecutor(client)
    elif executor is None:
        executor = local(workers, len(todo))
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="runs", unit="run",
               disable=not progress, smoothing=0.1)  # fmt: skip
    try:  # closing: a part that cannot be saved (a full disk) cancels the runs not started
        with closing(executor.map_unordered(run_task, todo)) as finished:
            for key, (summary, steps) in finished:
                if folder is not None:
                    store.save_sweep_run(folder / PARTS, key, records[key], summary, steps)
                done[key] = (summary, steps)
                bar.update()
    except TaskFailed as failed:
        raise SweepTaskError(_failure(sweep, todo[failed.key], failed.error, folder)) from (
            failed.error
        )
    except WorkerDied as exc:  # the cluster lost every worker
        raise WorkerDied(f"{exc}{_kept(folder)}") from None
    finally:
        bar.close()
    result = assemble(sweep, points, problem, seeds, done, folder)
    result.executor = executor.describe()
    result.worker_deaths = list(executor.deaths)
    result.wall_seconds = time.perf_counter() - started
    if folder is not None:
        write_tables(result, analysis)
    return result


def _tasks(sweep: Sweep, points: pd.DataFrame, seeds: list[int]) -> list[SweepTask]:
    """Every (point, scenario, replication), each scenario checked at each point first, so a
    point the model cannot take stops the sweep before anything runs."""
    columns = tuple(step_columns(list(sweep.spec.figures)))
    tasks = []
    for p in range(len(points)):
        overrides = point_overrides(points, p)
        for s, base in enumerate(sweep.scenarios):
            mine = for_scenario(overrides, s, sweep.targets)
            try:
                spec = apply_overrides(base, mine)
                guards.check(spec, sweep.source, sweep.spec.engine)
            except ScenarioError as exc:
                # The guard's message starts with the sweep file, which this one names first.
                message = unblame(str(exc)).removeprefix(f"{sweep.source}: ")
                raise ScenarioError(
                    f"{sweep.source}: point {p} ({_shown(overrides)}), scenario '{base.name}': "
                    f"{message}"
                ) from None
            for r, seed in enumerate(seeds):
                tasks.append(SweepTask(len(tasks), p, s, r, seed, mine, spec,
                                       sweep.spec.engine, columns))  # fmt: skip
    return tasks


def _record(task: SweepTask, sweep: Sweep) -> dict:
    """What a part says it was made from; a part whose record differs is not this run's."""
    return {
        "point": task.point,
        "scenario_index": task.scenario,
        "replication": task.replication,
        "scenario_name": task.spec.name,
        "scenario_hash": store.scenario_hash(task.spec),
        "parameters": task.overrides,
        "seed": task.seed,
        "engine": task.engine,
        "horizon": task.spec.time.horizon,
        "columns": list(task.columns),
    }


def _shown(overrides: dict, most: int = 3) -> str:
    """A point's values for a one-line message (the first few of a long list)."""
    shown = [f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={str(v)[:40]}"
             for k, v in overrides.items()]  # fmt: skip
    more = f", ... ({len(shown)} parameters)" if len(shown) > most else ""
    return ", ".join(shown[:most]) + more


def _failure(sweep: Sweep, task: SweepTask, error: BaseException, folder: Path | None) -> str:
    return (
        f"run failed at point {task.point} ({_shown(task.overrides)}), scenario "
        f"'{sweep.names[task.scenario]}', replication {task.replication} (seed {task.seed}): "
        f"{type(error).__name__}: {error}{_kept(folder)}"
    )


def _kept(folder: Path | None) -> str:
    """The end of a failure message: how many finished runs are kept, and where."""
    if folder is None:
        return ""
    n = store.finished(folder / PARTS)
    return f"; {n} finished run(s) are kept in {folder}"


# --- tables -----------------------------------------------------------------------------------


def assemble(sweep: Sweep, points: pd.DataFrame, problem: dict, seeds: list[int],
             done: dict, folder: Path | None) -> SweepResult:  # fmt: skip
    """The tables of a complete sweep, in (point, scenario, replication) order."""
    names = sweep.names
    keys = sorted(done)
    rows, frames = [], []
    for p, s, r in keys:
        summary, steps = done[(p, s, r)]
        rows.append({POINT: p, "scenario": names[s], "replication": r, "seed": seeds[r],
                     **summary})  # fmt: skip
        frames.append(steps.assign(**{POINT: p, "scenario": names[s], "replication": r}))
    summaries = pd.DataFrame(rows)
    parameters = list(sweep.parameters)
    runs = summaries.merge(points, on=POINT, how="left")
    figures = [c for c in summaries.columns if c not in TAGS]
    runs = runs[TAGS + parameters + figures]
    steps = pd.concat(frames, ignore_index=True)
    front = [POINT, "scenario", "replication", "step"]
    steps = steps[front + [c for c in steps.columns if c not in front]]
    table = point_table(runs, sweep, points)
    return SweepResult(sweep, points, problem, runs, steps, table, seeds, folder)


def _ci(groups, floor: float | None) -> pd.DataFrame:
    """Mean and 95% Student-t interval per group, as :func:`cxsim.metrics.mean_ci` (NaNs left
    out, one value gives a zero-width interval), for many groups at once."""
    mean, sd, n = groups.mean(), groups.std(ddof=1), groups.count()
    half = t_quantile(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    half = half.where(n >= 2, 0.0)
    low = mean - half
    if floor is not None:
        low = np.maximum(low, floor)
    return pd.DataFrame({"mean": mean, "low": low, "high": mean + half, "n": n})


def point_table(runs: pd.DataFrame, sweep: Sweep, points: pd.DataFrame) -> pd.DataFrame:
    """One row per point and scenario: ``<figure>_mean``, ``_low``, ``_high`` (95% CI over
    replications) of each requested figure, and ``n`` replications; with several scenarios,
    rows ``B - A`` for the paired difference of each later scenario against the first."""
    figures = list(sweep.spec.figures)
    names = sweep.names
    by = [POINT, "scenario"]
    blocks = [(runs, {f: _floor(f) for f in figures})]
    if len(names) > 1:
        wide = runs.set_index([POINT, "replication", "scenario"])[figures].unstack("scenario")
        for name in names[1:]:
            diff = (wide.xs(name, axis=1, level="scenario")
                    - wide.xs(names[0], axis=1, level="scenario")).reset_index()  # fmt: skip
            diff.insert(1, "scenario", f"{name} - {names[0]}")
            blocks.append((diff, dict.fromkeys(figures)))
    out = []
    for frame, floors in blocks:
        grouped = frame.groupby(by, sort=False)
        table = None
        for f in figures:
            ci = _ci(grouped[f], floors[f])
            n = ci.pop("n")
            ci.columns = [f"{f}_{c}" for c in ci.columns]
            table = ci if table is None else table.join(ci)
        table.insert(0, "n", n)
        out.append(table.reset_index())
    order = {name: i for i, name in enumerate([*names, *(f"{n} - {names[0]}" for n in names[1:])])}
    result = pd.concat(out, ignore_index=True)
    result = result.sort_values([POINT, "scenario"], key=lambda c: c.map(order) if
                                c.name == "scenario" else c, kind="stable")  # fmt: skip
    result = result.merge(points, on=POINT, how="left")
    parameters = list(sweep.parameters)
    rest = [c for c in result.columns if c not in (POINT, "scenario", *parameters)]
    return result[[POINT, "scenario", *parameters, *rest]].reset_index(drop=True)


def _floor(name: str) -> float | None:
    """0 for a figure that cannot be negative (as cxsim.metrics.summarise keeps it)."""
    if figure(name).unit == "points" or name in ("profit", "profit_per_year", "profit_discounted"):
        return None
    return 0.0


def write_tables(
    result: SweepResult, analysis: Callable[[SweepResult, Path], list[Path]] | None = None
) -> Path:
    """The final tables, the files ``analysis(result, folder)`` writes and the manifest, then
    drop the plan and the parts: the tables hold everything they did. All of it is written
    aside and moved in when whole (see :func:`cxsim.results.writing`): a failed or killed
    write leaves the parts and the plan for ``--resume``."""
    folder = result.folder
    plan = read_plan(folder)
    with writing(folder, "sweep") as stage:
        result.runs.to_parquet(stage / "runs.parquet", index=False)
        result.steps.to_parquet(stage / "steps.parquet", index=False)
        result.points.to_csv(stage / "points.csv", index=False)
        result.design.to_csv(stage / "design.csv", index=False)
        (stage / "problem.json").write_text(json.dumps(result.problem, indent=2) + "\n", "utf-8")
        extra = analysis(result, stage) if analysis is not None else []
    result.analysis = [folder / p.name for p in extra]
    sweep = result.sweep
    versions_ = versions()
    for name in SWEEP_PACKAGES:
        try:
            versions_[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions_[name] = "not installed"
    manifest = {
        "cxsim_manifest": 1,
        "kind": "sweep",
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": plan.get("command"),
        "sweep_hash": sweep.hash(),
        **sweep.to_plan(),
        "sweep_text": _text(sweep.source),
        "points": len(result.design),
        "runs": len(result.runs),
        "root_seed": sweep.spec.seed,
        "seeds": result.seeds,
        "executor": result.executor,
        "worker_deaths": [
            d.record(lambda k: {POINT: k[0], "scenario": sweep.names[k[1]], "replication": k[2]})
            for d in result.worker_deaths
        ],
        "versions": versions_,
        "git_commit": git_commit(),
        **manifest_sessions(folder, result.wall_seconds),
    }
    finish(folder, manifest, "sweep")
    return folder


def _text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return None


def load_result(folder: Path | str) -> SweepResult:
    """A finished sweep folder read back: tables from Parquet and CSV, the sweep from the
    manifest's JSON, validated again. Nothing from the folder is executed (no pickle)."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("kind") != "sweep":
            raise ValueError("not a sweep manifest")
        sweep = Sweep.from_plan(manifest, str(folder / "manifest.json"))
        problem = json.loads((folder / "problem.json").read_text(encoding="utf-8"))
        return SweepResult(
            sweep=sweep,
            design=pd.read_csv(folder / "design.csv"),
            problem=problem,
            runs=pd.read_parquet(folder / "runs.parquet"),
            steps=pd.read_parquet(folder / "steps.parquet"),
            points=pd.read_csv(folder / "points.csv"),
            seeds=[int(s) for s in manifest["seeds"]],
            folder=folder,
            wall_seconds=float(manifest.get("wall_seconds", 0.0)),
            executor=str(manifest.get("executor", "")),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ResultsError(f"{folder}: not a finished cxsim sweep folder ({exc})") from None
