"""Write an experiment to a new results folder: tables, charts and a manifest to reproduce it.

A folder is never overwritten: each run gets ``<parent>/<name>-<timestamp>`` (with a numeric
suffix if that exists). ``manifest.json`` holds each scenario exactly as run, the seeds, the
engine, package versions, the git commit and the wall time, so any figure can be reproduced.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path

from cxsim.charts import write_all
from cxsim.experiment import Experiment

PACKAGES = ["cxsim", "mesa", "numpy", "scipy", "pandas", "networkx", "pydantic", "matplotlib"]


def new_folder(parent: Path, name: str) -> Path:
    """Create and return a folder under ``parent`` that did not exist before."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    parent.mkdir(parents=True, exist_ok=True)
    for i in range(1000):
        candidate = parent / (f"{name}-{stamp}" + (f"-{i + 1}" if i else ""))
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new folder under {parent}")


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


def write_experiment(
    experiment: Experiment, parent: Path, sources: list[str], wall_seconds: float
) -> Path:
    """Write tables, charts and manifest; returns the new folder."""
    name = "-vs-".join(s.name for s in experiment.scenarios)
    out = new_folder(Path(parent), name)
    experiment.steps.to_csv(out / "steps.csv", index=False)
    experiment.summaries.to_csv(out / "summary.csv", index=False)
    experiment.figures().to_csv(out / "figures.csv", index=False)
    diffs = experiment.differences()
    if len(diffs):
        diffs.to_csv(out / "differences.csv", index=False)
    experiment.customers.to_csv(out / "customers.csv.gz", index=False)
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
        "files": sorted(p.name for p in out.iterdir()) + ["manifest.json"],
        "charts": [p.name for p in charts],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out
