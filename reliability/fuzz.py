"""Fuzzing at scale: thousands of broken input files through the cxsim command line.

Every case (see :mod:`reliability.cases`) is written into its own fresh folder and run in a
worker process through the command line's entry point, ``cxsim.cli.main`` (``cxsim validate``
for scenarios and variants, ``cxsim sweep --print-problem`` for sweep files), with stdout and
stderr captured. A file the command accepts is then run briefly on both engines, as ``cxsim
run`` and ``cxsim sweep`` would build it: the memory guard is asked for each engine at the
file's own size, then the model is built and run from the file's own seed, with the horizon
cut to 6 steps and, where the file's population is larger, the population scaled down to
20,000 people (vector engine) or 1,000 (agents engine) and the contacts per person with it.
The rule this checks: whatever validation accepts, the model builds and runs; a file whose own
values could not be built (memory, overflow) is refused by validation with one line. Running
time is not refused: a long run is legitimate (Ctrl-C stops it; ``--resume`` finishes it).

Outcomes, one per case:

- ``rejected``: exit status 2 and a message whose first line starts ``cxsim: error:``, one
  line per problem (a further line must start with the file and line of its own problem, as
  cxsim reports several mistakes in one file), at most 500 characters a line, naming a file
  of the case (or ``--set``) and, when the mutation touched a field, that field or one of its
  parent sections (a YAML error, found before any field, must give its line instead); for an
  accepted file, a guard's one-line refusal at run time also counts here;
- ``ran``: accepted, and the model ran on both engines without an error or a warning;
- ``unclear``: exit status 2 but the message breaks one of the rules above;
- ``warning``: accepted and ran, but Python or NumPy warned (an overflow, a deprecation);
- ``crash``: a traceback (any exception but a clean refusal), another exit status, or a
  worker that died;
- ``memory``: a ``MemoryError`` under the worker's address-space limit (``--memory``);
- ``hang``: no answer within ``--timeout`` seconds (the worker is killed and replaced).

Run it (the default 10,000 cases took 2,186 s, 4.6 cases a second, on two workers of a
shared two-core machine with a load average of 7 to 9)::

    python -m reliability.fuzz                          # 10,000 cases, seed 0, 2 workers
    python -m reliability.fuzz --cases 500 --seed 7 --workers 1
    python -m reliability.fuzz --save failures/         # keep every failing case's files
    python -m reliability.fuzz --replay failures/       # run the kept cases again

It prints counts by outcome, by kind and by category, the first failures with their messages,
and exits with status 1 if any case failed. ``tests/test_fuzz.py`` runs a seeded subset.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import wait
from pathlib import Path

from reliability.cases import KINDS, Case, one

OUTCOMES = ("rejected", "ran", "unclear", "warning", "crash", "memory", "hang")
FAILURES = ("unclear", "warning", "crash", "memory", "hang")
MAX_LINE = 500
"""Longest line a clear message may have (a long value must be shortened when shown)."""
CAPS = {"vector": 20_000, "agents": 1_000}
"""Most people a brief run builds, by engine; a larger file is scaled down to this."""
HORIZON = 6
"""Steps of a brief run."""


@dataclass
class Result:
    """What one case did."""

    id: int
    kind: str
    category: str
    outcome: str
    phase: str = "validate"  # validate or run
    message: str = ""
    seconds: float = 0.0
    args: list[str] = field(default_factory=list)


# --- one case, in a worker --------------------------------------------------------------------


def write_case(case: Case, folder: Path) -> list[str]:
    """Write the case's files into ``folder``; its command's arguments."""
    for name, body in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return [a.replace("{dir}", str(folder)) for a in case.args]


def call_cli(args: list[str]) -> tuple[int | str, str]:
    """(exit status, stderr) of ``cxsim ARGS`` in this process; an exception that escapes is
    returned as its name in place of a status, with the traceback as the message."""
    from cxsim.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except MemoryError:
            return "MemoryError", traceback.format_exc()
        except RecursionError:
            return "RecursionError", traceback.format_exc()
        except Exception:  # noqa: BLE001 (any escape is a finding)
            return "Exception", traceback.format_exc()
    return code, err.getvalue()


def judge_message(case: Case, code: int, stderr: str) -> str | None:
    """Why a refusal is not clean (None if it is)."""
    if code != 2:
        return f"exit status {code}"
    lines = stderr.strip().splitlines()
    if not lines:
        return "no message"
    if "Traceback" in stderr:
        return "traceback"
    if not lines[0].startswith("cxsim: error: "):
        return "message does not start with 'cxsim: error:'"
    if len(lines) > 1 and not case.several:
        # One line per problem: each further line must say where its problem is.
        located = re.compile(r"^\S.*?(\.yaml|\.txt)(:\d+)?( \(from --set\))?: |^\.\.\. and ")
        unplaced = [line for line in lines[1:] if not located.match(line)]
        if unplaced or len(set(lines)) < len(lines):
            return f"{len(lines)} lines, not one located problem each"
    if max(len(line) for line in lines) > MAX_LINE:
        return f"a line of {max(len(line) for line in lines)} characters"
    names = [Path(n).name for n in case.files] + ["--set"]
    if not any(name in stderr for name in names):
        return "names no file"
    if "not valid YAML" in stderr:
        # Found while reading the YAML, before any field: the file and line are the place.
        if not re.search(r"\.yaml:\d+: ", stderr):
            return "a YAML error without its line"
    elif case.field is not None and not _names_field(case.field, stderr):
        return f"does not name {case.field[:60]!r}"
    return None


def _names_field(touched: str, message: str) -> bool:
    """Whether the message names the touched field or a parent section of it (for several
    faults, '|'-separated, one of them)."""
    for path in touched.split("|"):
        for part in path.split("."):
            shown = repr(part)[1:-1]
            if part and (part in message or shown in message or part[:40] in message):
                return True
    return False


def capped(spec, engine: str):
    """The scenario of a brief run: HORIZON steps, at most CAPS[engine] people."""
    from cxsim.loading import apply_overrides

    changes: dict = {"time.horizon": min(spec.time.horizon, HORIZON)}
    n, cap = spec.population.size, CAPS[engine]
    if n > cap:
        customers = round(spec.population.customers * cap / n)
        changes["population.customers"] = customers
        changes["population.prospects"] = max(cap - customers, 2 - customers, 0)
        degree = spec.network.mean_degree
        if degree > 10:  # keep the share of the population each person knows
            changes["network.mean_degree"] = degree * cap / n
    return apply_overrides(spec, changes)


def brief_run(case: Case, args: list[str]) -> tuple[str, str]:
    """(outcome, message) of running an accepted file briefly on both engines."""
    from cxsim.loading import ScenarioError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if case.kind == "sweep":
                _run_sweep(args[-1])
            else:
                _run_scenario(args)
    except ScenarioError as refused:
        # cxsim run / sweep would print this and exit 2: judge it as a refusal.
        message = f"cxsim: error: {refused}"
        problem = judge_message(case, 2, message)
        return ("unclear", f"{problem}: {message}") if problem else ("rejected", message)
    except MemoryError:
        return "memory", traceback.format_exc()
    except Exception:  # noqa: BLE001
        return "crash", traceback.format_exc()
    if caught:
        first = caught[0]
        return (
            "warning",
            f"{first.category.__name__}: {first.message} ({first.filename}:"
            f"{first.lineno}); {len(caught)} warning(s)",
        )
    return "ran", ""


def _run_scenario(args: list[str]) -> None:
    from cxsim import guards
    from cxsim.experiment import replication_seeds, run_once
    from cxsim.loading import load_scenarios

    path = args[1]
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    spec = load_scenarios([path], sets)[0]
    seed = replication_seeds(spec.run.seed, 1)[0]
    for engine in CAPS:
        guards.check(spec, path, engine, spec.run.replications)  # as cxsim run --engine does
        run_once(capped(spec, engine), seed, engine)


def _run_sweep(path: str) -> None:
    from cxsim.experiment import replication_seeds
    from cxsim.sweep.design import design
    from cxsim.sweep.run import _tasks, run_task
    from cxsim.sweep.spec import load_sweep

    sweep = load_sweep(path)
    points, _ = design(sweep)
    seeds = replication_seeds(sweep.spec.seed, sweep.spec.replications)[:1]
    for task in _tasks(sweep, points.iloc[:1], seeds):
        for engine in CAPS:
            run_task(replace(task, spec=capped(task.spec, engine), engine=engine))


def run_case(case: Case, root: Path) -> Result:
    """Write, validate and (if accepted) briefly run one case; its outcome."""
    folder = Path(tempfile.mkdtemp(prefix=f"case{case.id}-", dir=root))
    started = time.perf_counter()
    result = Result(case.id, case.kind, case.category, "crash", args=case.args)
    try:
        args = write_case(case, folder)
        code, stderr = call_cli(args)
        if code == "MemoryError":
            result.outcome, result.message = "memory", stderr
        elif isinstance(code, str):
            result.outcome, result.message = "crash", stderr
        elif code == 0:
            result.phase = "run"
            result.outcome, result.message = brief_run(case, args)
        else:
            problem = judge_message(case, code, stderr)
            result.outcome = "unclear" if problem and code == 2 else "crash" if problem else (
                "rejected")  # fmt: skip
            result.message = f"{problem}: {stderr}" if problem else stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result.seconds = time.perf_counter() - started
    result.message = result.message.strip()[-3000:]
    return result


# --- workers ----------------------------------------------------------------------------------


def _limit_memory(budget: int) -> None:
    """Cap this process's address space at what it uses now plus ``budget`` bytes."""
    import resource

    with open("/proc/self/status", encoding="ascii") as status:
        used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (used + budget, used + budget))


def _worker(conn, seed: int, kinds: tuple[str, ...], root: str, budget: int) -> None:
    # Everything the cases need, imported before the limit (imports map a lot of memory).
    import cxsim.cli  # noqa: F401
    import cxsim.engines.agents  # noqa: F401
    import cxsim.experiment  # noqa: F401
    import cxsim.sweep.design  # noqa: F401
    import cxsim.sweep.run  # noqa: F401

    _limit_memory(budget)
    while True:
        index = conn.recv()
        if index is None:
            return
        case = index if isinstance(index, Case) else one(index, seed, kinds)
        conn.send(asdict(run_case(case, Path(root))))


@dataclass
class _Slot:
    process: multiprocessing.Process
    conn: object
    job: int | Case | None = None
    started: float = 0.0


def run_cases(jobs: list, seed: int = 0, kinds: tuple[str, ...] = tuple(KINDS),
              workers: int = 2, timeout: float = 60.0,
              budget: int = 3 * 2**30):  # fmt: skip
    """Run ``jobs`` (case indices of the seeded series, or Case objects) on ``workers``
    processes; yield a :class:`Result` per job, in the order they finish."""
    ctx = multiprocessing.get_context("spawn")
    root = tempfile.mkdtemp(prefix="cxsim-fuzz-")
    # The guard must refuse before the address-space limit bites: give it half the budget.
    env = {"CXSIM_MEMORY_LIMIT": str(budget // 2), "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)

    def start() -> _Slot:
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_worker, args=(child, seed, kinds, root, budget),
                              daemon=True)  # fmt: skip
        process.start()
        child.close()
        return _Slot(process, parent)

    todo = list(reversed(jobs))
    slots = [start() for _ in range(max(1, min(workers, len(jobs))))]
    try:
        while todo or any(s.job is not None for s in slots):
            for slot in slots:
                if slot.job is None and todo:
                    slot.job = todo.pop()
                    slot.started = time.perf_counter()
                    slot.conn.send(slot.job)
            busy = [s for s in slots if s.job is not None]
            ready = wait([s.conn for s in busy], timeout=1.0)
            for i, slot in enumerate(slots):
                if slot.job is None:
                    continue
                lost = None
                if slot.conn in ready:
                    try:
                        yield Result(**slot.conn.recv())
                        slot.job = None
                        continue
                    except (EOFError, OSError):
                        slot.process.join(5)
                        lost = ("crash", f"worker died (exit code {slot.process.exitcode})")
                elif time.perf_counter() - slot.started > timeout:
                    lost = ("hang", f"no answer in {timeout:g} s")
                if lost is not None:
                    case = slot.job if isinstance(slot.job, Case) else one(
                        slot.job, seed, kinds)  # fmt: skip
                    yield Result(case.id, case.kind, case.category, lost[0], "?", lost[1],
                                 time.perf_counter() - slot.started, case.args)  # fmt: skip
                    slot.process.kill()
                    slot.process.join()
                    slots[i] = start()
    finally:
        for slot in slots:
            with contextlib.suppress(OSError, BrokenPipeError):
                slot.conn.send(None)
        for slot in slots:
            slot.process.join(5)
            if slot.process.is_alive():
                slot.process.kill()
        shutil.rmtree(root, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- keeping and replaying failures -----------------------------------------------------------


def save_case(case: Case, result: Result, folder: Path) -> Path:
    """The case's files and what happened, in ``folder/case-ID``, to run again later."""
    target = folder / f"case-{case.id}"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    write_case(case, target / "files")
    record = {**asdict(result), "field": case.field, "several": case.several,
              "files": sorted(case.files)}  # fmt: skip
    (target / "case.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return target


def load_saved(folder: Path) -> list[Case]:
    """The cases kept by :func:`save_case` under ``folder``."""
    cases = []
    for record_path in sorted(folder.glob("case-*/case.json")):
        record = json.loads(record_path.read_text(encoding="utf-8"))
        files = {name: (record_path.parent / "files" / name).read_bytes()
                 for name in record["files"]}  # fmt: skip
        cases.append(Case(record["id"], record["kind"], record["category"], files,
                          record["args"], record["field"], record["several"]))  # fmt: skip
    return cases


# --- the command ------------------------------------------------------------------------------


def summary(results: list[Result]) -> str:
    """Counts by outcome, then by kind and by category (outcomes as columns)."""
    total = Counter(r.outcome for r in results)
    lines = [f"{len(results)} cases: " + ", ".join(f"{o} {total[o]}" for o in OUTCOMES)]
    for label, key in (("kind", "kind"), ("category", "category")):
        groups: dict[str, Counter] = {}
        for r in results:
            groups.setdefault(getattr(r, key), Counter())[r.outcome] += 1
        lines.append(f"\n{'by ' + label:<34}" + "".join(f"{o:>9}" for o in OUTCOMES))
        for name in sorted(groups):
            lines.append(f"{name:<34}" + "".join(f"{groups[name][o]:>9}" for o in OUTCOMES))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reliability.fuzz", description=__doc__.split(
        "\n")[0])  # fmt: skip
    p.add_argument("--cases", type=int, default=10_000, help="number of cases (default 10,000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the series (default 0)")
    p.add_argument("--first", type=int, default=0,
                   help="index of the first case (a series in parts; default 0)")  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per case (default 60)")
    p.add_argument("--memory", default="3G", help="address space per worker beyond its "
                   "imports (default 3G; the guard is told half)")  # fmt: skip
    p.add_argument("--kinds", default=",".join(KINDS), help="scenario,variant,sweep")
    p.add_argument("--save", metavar="DIR", help="keep every failing case's files here")
    p.add_argument("--replay", metavar="DIR", help="run the cases kept in DIR instead")
    p.add_argument("--show", type=int, default=10, help="failures to print (default 10)")
    args = p.parse_args(argv)
    from cxsim.guards import parse_bytes

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    jobs: list = (load_saved(Path(args.replay)) if args.replay
                  else list(range(args.first, args.first + args.cases)))  # fmt: skip
    started = time.perf_counter()
    results: list[Result] = []
    for result in run_cases(jobs, args.seed, kinds, args.workers, args.timeout,
                            parse_bytes(args.memory)):  # fmt: skip
        results.append(result)
        if result.outcome in FAILURES and args.save:
            case = next((j for j in jobs if isinstance(j, Case) and j.id == result.id), None)
            save_case(case or one(result.id, args.seed, kinds), result, Path(args.save))
        if len(results) % 500 == 0:
            rate = len(results) / (time.perf_counter() - started)
            print(f"{len(results)} cases, {rate:.1f}/s", file=sys.stderr, flush=True)
    wall = time.perf_counter() - started
    results.sort(key=lambda r: r.id)
    print(summary(results))
    failed = [r for r in results if r.outcome in FAILURES]
    for r in failed[: args.show]:
        print(
            f"\n--- case {r.id} ({r.kind}, {r.category}): {r.outcome} in {r.phase}, "
            f"{r.seconds:.1f} s; cxsim {' '.join(a[:80] for a in r.args)}\n{r.message[-1500:]}"
        )
    slowest = max(results, key=lambda r: r.seconds, default=Result(-1, "", "", ""))
    print(f"\n{len(results)} cases in {wall:.0f} s ({len(results) / max(wall, 1e-9):.1f}/s, "
          f"{args.workers} workers, seed {args.seed}); slowest: case {slowest.id}, "
          f"{slowest.seconds:.1f} s; {len(failed)} failed")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
