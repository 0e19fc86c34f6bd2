"""Write an experiment to a new results folder: tables, charts and a manifest to reproduce it.

A folder is never overwritten: each run gets ``<parent>/<name>-<timestamp>`` (with a numeric
suffix if that exists). While it runs, the folder holds the plan and one part file per finished
run, so ``cxsim run --resume FOLDER`` can finish an interrupted run. When done, ``manifest.json``
holds each scenario exactly as run, the seeds, the engine, package versions, the git commit and
the wall time, so any figure can be reproduced.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import metadata
from pathlib import Path

from tqdm import tqdm

from cxsim.errors import ResultsError
from cxsim.experiment import Experiment, Precision
from cxsim.loading import validate
from cxsim.parts import write_parquet
from cxsim.scenario import Scenario
from cxsim.workfolder import PARTS, PLAN, SESSIONS, atomic, manifest_sessions, staged

PACKAGES = ["cxsim", "mesa", "numpy", "scipy", "pandas", "networkx", "pydantic", "matplotlib",
            "pyarrow", "jinja2"]  # fmt: skip


def slug(name: str) -> str:
    """A scenario name made safe as part of a file name (no separators, no leading dots)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip(".-") or "scenario"


def new_folder(parent: Path, name: str) -> Path:
    """Create and return a folder under ``parent`` that did not exist before."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for i in range(1000):
            candidate = parent / (f"{slug(name)}-{stamp}" + (f"-{i + 1}" if i else ""))
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                continue
    except OSError as exc:
        raise ResultsError(
            f"{parent}: cannot create a results folder there ({exc.strerror})"
        ) from None
    raise ResultsError(f"{parent}: could not find a new folder name")


def versions() -> dict[str, str]:
    """The versions of Python and of the packages in :data:`PACKAGES` (looked up once)."""
    return dict(_versions())


@cache
def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=here,
        capture_output=True,
        text=True,
        timeout=5,
    ).stdout.strip()
    return done.stdout.strip() + ("-dirty" if dirty else "")


@dataclass
class Plan:
    """What a run was asked to do, saved in its folder until it completes (for --resume)."""

    sources: list[str]
    scenarios: list[Scenario]
    engine: str
    replications: int
    seed: int
    precision: Precision | None = None
    command: list[str] = field(default_factory=lambda: list(sys.argv))

    def save(self, folder: Path) -> None:
        data = {
            "sources": self.sources,
            "scenarios": [s.model_dump(mode="json") for s in self.scenarios],
            "engine": self.engine,
            "replications": self.replications,
            "seed": self.seed,
            "precision": None if self.precision is None else vars(self.precision),
            "command": self.command,
        }
        text = json.dumps(data, indent=2) + "\n"
        atomic(folder / PLAN, lambda p: p.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, folder: Path) -> Plan:
        path = Path(folder) / PLAN
        if not path.exists():
            if (Path(folder) / "manifest.json").exists():
                raise ResultsError(f"{folder}: this run is complete; nothing to resume")
            raise ResultsError(f"{folder}: not a cxsim results folder (no {PLAN})")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            scenarios = [validate(s, f"{path} (scenario {i + 1})") for i, s in
                         enumerate(data["scenarios"])]  # fmt: skip
            precision = data.get("precision")
            return cls(
                list(data["sources"]), scenarios, str(data["engine"]),
                int(data["replications"]), int(data["seed"]),
                Precision(**precision) if precision else None,
                [str(a) for a in data.get("command", [])],
            )  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ResultsError(f"{path}: damaged plan, cannot resume ({exc})") from None


def start(parent: Path, plan: Plan) -> Path:
    """A new results folder holding the plan; finished runs go to its parts/ as they end."""
    name = "-vs-".join(s.name for s in plan.scenarios)
    return planned_folder(Path(parent), name, plan.save, "run")


def planned_folder(parent: Path, name: str, save_plan: Callable[[Path], object],
                   command: str) -> Path:  # fmt: skip
    """A new folder under ``parent`` with its plan saved by ``save_plan``; if the plan cannot
    be written (or Ctrl-C comes first), the folder is removed again and a full disk is one
    line (ResultsError)."""
    out = new_folder(parent, name)
    try:
        save_plan(out)
    except BaseException as exc:
        shutil.rmtree(out, ignore_errors=True)  # nothing in it yet: no folder left to puzzle over
        if isinstance(exc, OSError):
            raise ResultsError(unwritten(out, exc, command)) from None
        raise
    return out


@dataclass(frozen=True)
class Writer:
    """One output of a results folder: the file (or files) it writes and how."""

    name: str
    write: Callable[[Experiment, Path], list[Path] | Path | None]


def _csv(name: str, table: Callable[[Experiment], object]) -> Writer:
    def write(x: Experiment, out: Path) -> Path | None:
        frame = table(x)
        if frame is None or not len(frame):
            return None
        return atomic(out / name, lambda p: frame.to_csv(p, index=False))

    return Writer(name, write)


def _parquet(name: str, table: Callable[[Experiment], object]) -> Writer:
    def write(x: Experiment, out: Path) -> Path:
        return atomic(out / name, lambda p: write_parquet(table(x), p, dictionary=True))

    return Writer(name, write)


WRITERS: list[Writer] = [
    _csv("steps.csv", lambda x: x.steps),
    _csv("summary.csv", lambda x: x.summaries),
    _csv("figures.csv", lambda x: x.figures()),
    _csv("differences.csv", lambda x: x.differences()),
    _csv("lost_revenue.csv", lambda x: x.loss_breakdown()),
    _csv("cohorts.csv", lambda x: x.cohorts()),
    _parquet("customers.parquet", lambda x: x.customers),
    _parquet("losses.parquet", lambda x: x.losses),
]
"""The tables of a results folder; the charts and the report page come besides them."""


def write_experiment(
    experiment: Experiment, out: Path, plan: Plan, wall_seconds: float,
    progress: bool | None = None, pool: ProcessPoolExecutor | None = None,
) -> Path:  # fmt: skip
    """Write tables, charts, the report page and the manifest into ``out``, then drop the plan
    and the parts. Everything is written aside first and moved in when all of it is whole (see
    :func:`cxsim.workfolder.staged`); a write that fails (a full disk) raises ResultsError
    naming the file and keeps the plan and the parts, so ``--resume`` can write them again.
    With ``pool`` (see :func:`cxsim.executors.warm_pool`), its workers draw the charts while
    this process writes the tables and composes the report."""
    from cxsim import charts as drawing

    out = Path(out)
    started = time.perf_counter()
    if progress is None:
        progress = sys.stderr.isatty()
    with writing(out) as stage:
        drawn = drawing.start(experiment, stage, pool)
        steps = tqdm(WRITERS, desc="writing", unit="file", disable=not progress, leave=False)
        for writer in steps:
            steps.set_postfix_str(writer.name)
            writer.write(experiment, stage)
        manifest = {
            "cxsim_manifest": 1,
            "created": datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": plan.command,
            "engine": experiment.engine,
            "replications": len(experiment.seeds),
            "precision": None if plan.precision is None else vars(plan.precision),
            "root_seed": plan.seed,
            "seeds": experiment.seeds,
            "scenarios": [
                {
                    "source": src,
                    "walk_away_curve": dict(zip(("a", "b"), spec.walk_away_curve, strict=True)),
                    "scenario": spec.model_dump(mode="json"),
                }
                for src, spec in zip(plan.sources, experiment.scenarios, strict=True)
            ],
            "worker_deaths": [
                d.record(lambda k: {"scenario": experiment.names[k[0]], "replication": k[1]})
                for d in experiment.worker_deaths
            ],
            "continued_runs": experiment.continued,
            "versions": versions(),
            "git_commit": git_commit(),
        }
        from cxsim.findings import report_content
        from cxsim.report import write_report

        # The page's text is composed while the charts are drawn; its wall time, once they are.
        charts = drawn.paths
        content = report_content(experiment, plan, {**manifest, "wall_seconds": None}, charts)
        drawn.wait()
        manifest.update(manifest_sessions(out, wall_seconds + time.perf_counter() - started))
        reproduce = dataclasses.replace(content.reproduce, wall_seconds=manifest["wall_seconds"])
        write_report(dataclasses.replace(content, reproduce=reproduce), stage)
        manifest["charts"] = [p.name for p in charts]
    finish(out, manifest)
    return out


@contextmanager
def writing(out: Path, command: str = "run") -> Iterator[Path]:
    """The stage to write a folder's final files into (see :func:`cxsim.workfolder.staged`).
    A failed write becomes ResultsError naming the file and keeps the parts and the plan:
    ``cxsim COMMAND --resume OUT`` writes them again."""
    try:
        with staged(out) as stage:
            try:
                yield stage
            except OSError as exc:
                raise ResultsError(unwritten(out, exc, command, stage)) from None
    except OSError as exc:  # creating the stage or moving its files in
        raise ResultsError(unwritten(out, exc, command)) from None


def unwritten(out: Path, exc: OSError, command: str, stage: Path | None = None) -> str:
    """One line: which file of ``out`` could not be written, why, and how to finish."""
    path = Path(exc.filename) if exc.filename else out / "a results file"
    if not exc.filename and stage is not None and stage.is_dir():
        # A failed write() does not name its file: it is the newest one in the stage.
        files = sorted(stage.iterdir(), key=lambda p: p.stat().st_mtime)
        path = files[-1] if files else path
    if stage is not None and path.parent == stage:
        path = out / path.name  # where it was going
    path = path.with_name(path.name.removeprefix(".tmp-"))
    hint = ""
    if (out / PLAN).exists():
        hint = (f"; the finished runs are kept: to write the results, run: cxsim {command} "
                f"--resume {shlex.quote(str(out))}")  # fmt: skip
    return f"{path}: cannot be written ({exc.strerror or exc}){hint}"


def finish(out: Path, manifest: dict, command: str = "run") -> None:
    """Write the manifest, listing the folder's files, then drop the parts, the plan and the
    session log: the folder is finished. The plan goes after the parts, so a kill on the way
    leaves a folder that --resume finishes again (re-running any run already deleted), never
    a finished one with half its parts still in it."""
    manifest["files"] = sorted(
        p.name for p in out.iterdir() if p.name not in (PLAN, PARTS) and not p.name.startswith(".")
    ) + ["manifest.json"]  # fmt: skip
    text = json.dumps(manifest, indent=2) + "\n"
    try:
        atomic(out / "manifest.json", lambda p: p.write_text(text, encoding="utf-8"))
    except OSError as exc:
        raise ResultsError(unwritten(out, exc, command)) from None
    shutil.rmtree(out / PARTS, ignore_errors=True)
    (out / PLAN).unlink(missing_ok=True)
    (out / SESSIONS).unlink(missing_ok=True)  # the manifest has it
