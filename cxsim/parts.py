"""Finished runs on disk, in data formats only: one folder per run, checked when read back.

A part is ``s<scenario>-r<replication>/`` holding ``steps.parquet``, ``customers.parquet``,
``losses.parquet`` and ``meta.json`` (the summary figures and what the run was made from: a hash
of the scenario, the seed, the engine, the horizon). It is written under a temporary name and
renamed when complete, so a half-written part is never read as a finished one. Reading never
executes anything from the folder (no pickle), and a part that is damaged or was made from
other settings is refused with a message naming it, never silently used or skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd

from cxsim.scenario import Scenario

TABLES = ("steps", "customers", "losses")
_NAME = re.compile(r"^s(\d{3})-r(\d{5})$")


class PartError(Exception):
    """A part that cannot be used; the message names it and says why."""


def scenario_hash(spec: Scenario) -> str:
    """A fingerprint of everything a scenario says (sha256 of its canonical JSON)."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def part_name(scenario: int, replication: int) -> str:
    return f"s{scenario:03d}-r{replication:05d}"


def save(folder: Path, scenario: int, replication: int, spec: Scenario, seed: int,
         engine: str, result) -> Path:  # fmt: skip
    """Write one finished run as a part (temporary folder, then an atomic rename)."""
    final = folder / part_name(scenario, replication)
    tmp = folder / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for table in TABLES:
        getattr(result, table).to_parquet(tmp / f"{table}.parquet", index=False)
    meta = {
        "scenario_index": scenario,
        "replication": replication,
        "scenario_name": spec.name,
        "scenario_hash": scenario_hash(spec),
        "seed": int(seed),
        "engine": engine,
        "horizon": spec.time.horizon,
        "summary": result.summary,
    }
    (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp, final)
    return final


def load_all(folder: Path, scenarios: list[Scenario], engine: str, root_seed: int) -> dict:
    """Every finished part in ``folder``, keyed by (scenario index, replication), each checked
    against what this run would make; raises PartError on a damaged or foreign part."""
    from cxsim.experiment import RunResult, replication_seeds

    found = sorted(
        (int(m[1]), int(m[2]), p)
        for p in folder.iterdir()
        if (m := _NAME.match(p.name)) and p.is_dir()
    )
    if not found:
        return {}
    seeds = replication_seeds(root_seed, max(r for _, r, _ in found) + 1)
    hashes = [scenario_hash(s) for s in scenarios]
    out = {}
    for i, r, path in found:
        meta = _meta(path)
        expected = {
            "scenario_hash": hashes[i] if i < len(scenarios) else "(no such scenario)",
            "seed": seeds[r],
            "engine": engine,
            "replication": r,
            "scenario_index": i,
        }
        wrong = [k for k, v in expected.items() if meta.get(k) != v]
        if wrong:
            raise PartError(
                f"{path}: made from other settings ({', '.join(wrong)} differ from this run's); "
                "it belongs to another run: move it away or resume the folder it came from"
            )
        try:
            tables = {t: pd.read_parquet(path / f"{t}.parquet") for t in TABLES}
        except (OSError, ValueError) as exc:
            raise PartError(f"{path}: damaged part ({exc}); delete it to run it again") from None
        out[(i, r)] = RunResult(summary=meta["summary"], **tables)
    return out


def _meta(path: Path) -> dict:
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PartError(f"{path}: damaged part, meta.json unreadable ({exc}); delete it to run "
                        "it again") from None  # fmt: skip
    if not isinstance(meta, dict) or not isinstance(meta.get("summary"), dict):
        raise PartError(f"{path}: damaged part, meta.json is not a cxsim part record")
    return meta
