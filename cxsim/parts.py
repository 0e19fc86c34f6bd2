"""Finished runs on disk, in data formats only: one folder per run, checked when read back.

A part is ``s<scenario>-r<replication>/`` holding ``steps.parquet``, ``customers.parquet``,
``losses.parquet`` and ``meta.json`` (the summary figures and what the run was made from: a hash
of the scenario, the seed, the engine, the horizon). It is written under a temporary name and
renamed when complete, so a half-written part is never read as a finished one. Reading never
executes anything from the folder (no pickle), and a part that is damaged or was made from
other settings is refused with a message naming it, never silently used or skipped.

A sweep's parts (``p<point>-s<scenario>-r<replication>/``) are the same kind of folder with less
in it: the requested figures' per-step columns and a ``meta.json`` that also records the
parameter point (see :func:`save_sweep_run`). :func:`write_part` and :func:`read_part` are
shared by both, so both are written and checked the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from cxsim.checkpoint import state_name
from cxsim.errors import PartError
from cxsim.scenario import Scenario
from cxsim.workfolder import stop_if_asked

TABLES = ("steps", "customers", "losses")
_NAME = re.compile(r"^s(\d{3})-r(\d{5})$")


def scenario_hash(spec: Scenario) -> str:
    """A fingerprint of everything a scenario says (sha256 of its canonical JSON)."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def part_name(scenario: int, replication: int) -> str:
    return f"s{scenario:03d}-r{replication:05d}"


def save(folder: Path, scenario: int, replication: int, spec: Scenario, seed: int,
         engine: str, result) -> Path:  # fmt: skip
    """Write one finished run as a part (temporary folder, then an atomic rename); the state
    the run saved as it went (see :mod:`cxsim.checkpoint`) is then of no more use."""
    meta = {
        "scenario_index": scenario,
        "replication": replication,
        "scenario_name": spec.name,
        **made_from(spec, seed, engine),
        "horizon": spec.time.horizon,
        "summary": result.summary,
    }
    tables = {t: getattr(result, t) for t in TABLES}
    name = part_name(scenario, replication)
    written = write_part(folder, name, tables, meta)
    (folder / state_name(name)).unlink(missing_ok=True)
    return written


def made_from(spec: Scenario, seed: int, engine: str) -> dict:
    """What a run is made from, as a part's meta records it and a saved state must match."""
    return {"scenario_hash": scenario_hash(spec), "seed": int(seed), "engine": engine}


def write_part(folder: Path, name: str, tables: Mapping[str, pd.DataFrame], meta: dict) -> Path:
    """Write ``folder/name/``: each table as Parquet and ``meta`` as JSON, under a temporary
    name renamed when complete, so a killed writer leaves no part that looks finished."""
    stop_if_asked()
    final = folder / name
    tmp = folder / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    file = final
    try:
        tmp.mkdir()
        for table, frame in tables.items():
            file = final / f"{table}.parquet"
            write_parquet(frame, tmp / file.name)
        file = final / "meta.json"
        (tmp / file.name).write_text(json.dumps(meta), encoding="utf-8")
        os.replace(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk, Ctrl-C: leave no half a part
        if isinstance(exc, OSError) and not exc.filename:
            exc.filename = str(file)  # a failed write does not say which file it was writing
        raise
    return final


def write_parquet(frame: pd.DataFrame, path: Path, dictionary: bool = False) -> None:
    """``frame`` as Parquet, as ``frame.to_parquet(path, index=False)`` writes it (pandas'
    metadata too, so it reads back as the same frame), with a dictionary only for the columns
    that are not floats when ``dictionary``, else for none. A run's numbers seldom repeat:
    trying a dictionary for them took a quarter of a part's writing time (in the main process,
    while the runs go on) and a third of the customer table's, for files no smaller."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    repeating = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    pq.write_table(table, path, use_dictionary=repeating if dictionary else False)


def read_part(path: Path, expected: Mapping[str, Any], tables: tuple[str, ...]):
    """(meta, tables) of the part at ``path``, refused with PartError if any ``expected`` entry
    of its meta differs (it was made from other settings) or a file cannot be read."""
    meta = _meta(path)
    wrong = [k for k, v in expected.items() if meta.get(k) != v]
    if wrong:
        raise PartError(
            f"{path}: made from other settings ({', '.join(wrong)} differ from this run's); "
            "it belongs to another run: move it away or resume the folder it came from"
        )
    try:
        frames = {t: pd.read_parquet(path / f"{t}.parquet") for t in tables}
    except (OSError, ValueError) as exc:
        raise PartError(f"{path}: damaged part ({exc}); delete it to run it again") from None
    return meta, frames


def finished(folder: Path) -> int:
    """How many finished runs (of a run or a sweep) a parts folder holds; half-written parts,
    under their temporary names, do not count."""
    if not folder.is_dir():
        return 0
    return sum(
        1
        for p in folder.iterdir()
        if (_NAME.match(p.name) or _SWEEP_NAME.match(p.name)) and p.is_dir()
    )


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
        expected = {
            "scenario_hash": hashes[i] if i < len(scenarios) else "(no such scenario)",
            "seed": seeds[r],
            "engine": engine,
            "replication": r,
            "scenario_index": i,
        }
        meta, tables = read_part(path, expected, TABLES)
        out[(i, r)] = RunResult(summary=meta["summary"], **tables)
    return out


# --- sweeps -------------------------------------------------------------------------------

SweepKey = tuple[int, int, int]
"""(point, scenario index, replication)."""
_SWEEP_NAME = re.compile(r"^p(\d{6})-s(\d{2})-r(\d{5})$")


def sweep_part_name(key: SweepKey) -> str:
    point, scenario, replication = key
    return f"p{point:06d}-s{scenario:02d}-r{replication:05d}"


def save_sweep_run(folder: Path, key: SweepKey, record: dict, summary: dict[str, float],
                   steps: pd.DataFrame) -> Path:  # fmt: skip
    """One finished sweep run: its per-step table, and as meta ``record`` (what it was made
    from: scenario hash, point, parameter values, seed, engine, horizon) plus its summary."""
    meta = {**record, "summary": summary}
    return write_part(folder, sweep_part_name(key), {"steps": steps}, meta)


def load_sweep_runs(
    folder: Path, record: Callable[[SweepKey], dict | None]
) -> dict[SweepKey, tuple[dict[str, float], pd.DataFrame]]:
    """Every finished sweep part in ``folder`` as (summary, steps), keyed by (point, scenario,
    replication); ``record(key)`` is what this sweep would have written for that key (None if
    the sweep has no such run). A part whose record differs is refused with PartError."""
    out = {}
    for path in sorted(folder.iterdir()):
        m = _SWEEP_NAME.match(path.name)
        if not m or not path.is_dir():
            continue
        key = (int(m[1]), int(m[2]), int(m[3]))
        expected = record(key)
        if expected is None:
            raise PartError(
                f"{path}: this sweep has no run {key} (point, scenario, replication); it belongs "
                "to another sweep: move it away or resume the folder it came from"
            )
        meta, tables = read_part(path, expected, ("steps",))
        out[key] = (meta["summary"], tables["steps"])
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
