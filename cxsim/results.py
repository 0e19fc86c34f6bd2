"""Write an experiment to a new results folder: tables, charts and a manifest to reproduce it.

A folder is never overwritten: each run gets ``<parent>/<name>-<timestamp>`` (with a numeric
suffix if that exists). While it runs, the folder holds the plan and one part file per finished
run, so ``cxsim run --resume FOLDER`` can finish an interrupted run. When done, ``manifest.json``
holds each scenario exactly as run, the seeds, the engine, package versions, the git commit and
the wall time, so any figure can be reproduced.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path

from cxsim.charts import write_all
from cxsim.experiment import Experiment
from cxsim.loading import validate
from cxsim.scenario import Scenario

PACKAGES = ["cxsim", "mesa", "numpy", "scipy", "pandas", "networkx", "pydantic", "matplotlib"]


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


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _git_commit() -> str | None:
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


PLAN = "plan.json"
PARTS = "parts"


class ResultsError(Exception):
    """A results folder that cannot be used as asked; the message is for the user."""


@dataclass
class Plan:
    """What a run was asked to do, saved in its folder until it completes (for --resume)."""

    sources: list[str]
    scenarios: list[Scenario]
    engine: str
    replications: int
    seed: int

    def save(self, folder: Path) -> None:
        data = {
            "sources": self.sources,
            "scenarios": [s.model_dump(mode="json") for s in self.scenarios],
            "engine": self.engine,
            "replications": self.replications,
            "seed": self.seed,
        }
        (folder / PLAN).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

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
            return cls(
                list(data["sources"]), scenarios, str(data["engine"]),
                int(data["replications"]), int(data["seed"]),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ResultsError(f"{path}: damaged plan, cannot resume ({exc})") from None


def start(parent: Path, plan: Plan) -> Path:
    """A new results folder holding the plan; finished runs go to its parts/ as they end."""
    out = new_folder(Path(parent), "-vs-".join(s.name for s in plan.scenarios))
    plan.save(out)
    return out


def write_experiment(
    experiment: Experiment, out: Path, sources: list[str], wall_seconds: float
) -> Path:
    """Write tables, charts and manifest into ``out``, then drop the plan and the parts."""
    out = Path(out)
    experiment.steps.to_csv(out / "steps.csv", index=False)
    experiment.summaries.to_csv(out / "summary.csv", index=False)
    experiment.figures().to_csv(out / "figures.csv", index=False)
    diffs = experiment.differences()
    if len(diffs):
        diffs.to_csv(out / "differences.csv", index=False)
    experiment.customers.to_csv(out / "customers.csv.gz", index=False)
    experiment.cohorts().to_csv(out / "cohorts.csv", index=False)
    started = time.perf_counter()
    charts = write_all(experiment, out)
    manifest = {
        "cxsim_manifest": 1,
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": sys.argv,
        "engine": experiment.engine,
        "replications": len(experiment.seeds),
        "root_seed": experiment.scenarios[0].run.seed,
        "seeds": experiment.seeds,
        "scenarios": [
            {
                "source": src,
                "walk_away_curve": dict(zip(("a", "b"), spec.walk_away_curve, strict=True)),
                "scenario": spec.model_dump(mode="json"),
            }
            for src, spec in zip(sources, experiment.scenarios, strict=True)
        ],
        "versions": _versions(),
        "git_commit": _git_commit(),
        "wall_seconds": round(wall_seconds + time.perf_counter() - started, 3),
        "files": sorted(p.name for p in out.iterdir() if p.name not in (PLAN, PARTS))
        + ["manifest.json"],
        "charts": [p.name for p in charts],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (out / PLAN).unlink(missing_ok=True)
    shutil.rmtree(out / PARTS, ignore_errors=True)
    return out
