"""The ``cxsim`` command line: run, sweep, calibrate, validate, schema, dashboard.

User mistakes (a bad scenario value, a missing file) print one clear message and exit with
status 2, never a traceback. A sweep run that raises after its points were checked is a bug in
the model: one line naming the point, status 1.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

# Only light modules here: ``cxsim run`` starts the pool's fork server, which imports the
# model, before this process loads pydantic, NumPy and pandas for its own part.
from cxsim import ENGINE_NAMES
from cxsim.errors import PartError, ResultsError, ScenarioError, UsageError
from cxsim.executors import WorkerDied, deaths_line, stop_in_hand
from cxsim.workfolder import PARTS, FolderError, Session, ask_to_stop, stop_asked

if TYPE_CHECKING:
    from cxsim.scenario import Scenario


class InterruptedRun(KeyboardInterrupt):
    """Ctrl-C during a run: the message says what finished and how to resume (still a
    KeyboardInterrupt, so the folder's session log records it as interrupted)."""


def _whole(minimum: int):
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, found {value}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cxsim",
        description="Agent-based model of customer churn: reactive service vs proactive CX.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate one or more scenarios and write a results folder")
    run.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="scenario YAML file(s)")
    run.add_argument(
        "--resume", metavar="FOLDER", help="finish an interrupted run in its results folder"
    )
    run.add_argument("--replications", "-r", type=_whole(1), help="runs per scenario")
    run.add_argument("--seed", type=_whole(0), help="root seed (default: the first scenario's)")
    run.add_argument("--engine", choices=sorted(ENGINE_NAMES), help="default: vector")
    run.add_argument("--out", help="parent folder of the new results folder (default: results)")
    run.add_argument("--workers", type=_whole(1), help="processes (default: all cores)")
    run.add_argument(
        "--precision",
        metavar="FIGURE=HALF_WIDTH",
        help="add replications until the 95%% CI half-width of FIGURE (of its paired difference "
        "when comparing) is at most HALF_WIDTH, e.g. annual_churn=0.002 or profit=5e6; "
        "--replications is the minimum",
    )
    run.add_argument(
        "--max-replications", type=_whole(2), default=200,
        help="upper limit for --precision (default 200)",
    )  # fmt: skip
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="[SCENARIO:]KEY=VALUE",
        help="override a scenario field, e.g. --set strategy.detection=0.5 (repeatable); "
        "a prefix changes one scenario only: --set proactive:strategy.costs.fixed=0",
    )

    cal = sub.add_parser(
        "calibrate",
        help="fit a scenario's unknowns to its observed figures (calibration section), and the "
        "walk-away curve to its survey",
    )
    cal.add_argument("scenario", metavar="SCENARIO")
    cal.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    cal.add_argument(
        "--out", metavar="FILE", help="calibrated variant to write (default: SCENARIO_fitted.yaml)"
    )
    cal.add_argument(
        "--replications", "-r", type=_whole(1),
        help="runs per evaluation (default: calibration.replications)",
    )  # fmt: skip

    val = sub.add_parser("validate", help="check scenario files without running them")
    val.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    val.add_argument(
        "--resolved",
        action="store_true",
        help="print each scenario as YAML with its bases merged and every default filled in",
    )
    val.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="[SCENARIO:]KEY=VALUE"
    )

    sweep = sub.add_parser(
        "sweep", help="run a sweep file: many parameter points, each on the same seeds"
    )
    sweep.add_argument("file", nargs="?", metavar="SWEEP", help="sweep YAML file")
    sweep.add_argument("--workers", type=_whole(1), help="local processes (default: all cores)")
    sweep.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run on a dask.distributed scheduler instead, e.g. tcp://10.0.0.5:8786",
    )  # fmt: skip
    sweep.add_argument("--out", help="parent folder of the new sweep folder (default: results)")
    sweep.add_argument(
        "--resume", metavar="FOLDER",
        help="finish an interrupted sweep (naming SWEEP too checks it is the same sweep)",
    )  # fmt: skip
    sweep.add_argument(
        "--print-problem", action="store_true",
        help="print the sweep's SALib problem (names, bounds, dists) as JSON and stop",
    )  # fmt: skip

    schema = sub.add_parser("schema", help="print the JSON Schema of the scenario format")
    schema.add_argument(
        "--markdown", action="store_true", help="a Markdown table of every field instead"
    )
    schema.add_argument("--sweep", action="store_true", help="the sweep file format instead")

    dash = sub.add_parser("dashboard", help="the what-if dashboard in the browser")
    dash.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                      help="baseline and strategy to try (default: the shipped two)")  # fmt: skip
    dash.add_argument("--host", default="127.0.0.1", help="address to listen on")
    dash.add_argument(
        "--port", type=_whole(0), default=8765, help="port (default 8765; 0: a free one)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ScenarioError, UsageError, ResultsError, PartError, FolderError) as exc:
        print(f"cxsim: error: {exc}", file=sys.stderr)
        return 2
    except WorkerDied as exc:
        print(f"cxsim: error: {exc}; --resume runs what is missing", file=sys.stderr)
        return 1
    except InterruptedRun as stop:
        print(f"\ncxsim: interrupted. {stop}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # whoever read the output left (`cxsim run ... | head`)
        # What was written stays; the unread output goes nowhere, so that the exit's own flush
        # cannot fail again; and, as the shell reports a command a closed pipe stopped, 141.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141
    except KeyboardInterrupt:  # before the work began (reading the scenarios or the plan)
        folder = getattr(args, "resume", None)
        if folder:  # a folder being resumed keeps what it had
            from cxsim.parts import finished

            done = finished(Path(folder) / PARTS)
            print(f"\ncxsim: interrupted before anything was run; {done} runs finished and "
                  f"are kept in {folder}; to finish, run: cxsim {args.command} --resume "
                  f"{shlex.quote(folder)}", file=sys.stderr)  # fmt: skip
        else:
            print("\ncxsim: interrupted before anything was run", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from cxsim import executors

    if (args.workers or os.cpu_count() or 1) > 1:
        # The workers' imports, alongside this process's; matplotlib too, once for both chart
        # painters (see cxsim.charts.prepare), which then start ready.
        executors.warm_up(
            "cxsim.experiment", "matplotlib.pyplot", "matplotlib.backends.backend_agg"
        )
    # findings and report are for the end; loaded now, while the fork server starts.
    from cxsim import charts, checkpoint, findings, report  # noqa: F401

    try:
        checkpoint.interval()  # a wrong value is said now, not by every run
    except checkpoint.CheckpointError as exc:
        raise UsageError(str(exc)) from None
    from cxsim.experiment import run_experiment
    from cxsim.results import Plan, start, unwritten, write_experiment

    if args.resume:
        given = [flag for flag, value in (("SCENARIO", args.scenarios), ("--set", args.overrides),
                 ("--replications", args.replications), ("--seed", args.seed),
                 ("--engine", args.engine), ("--out", args.out),
                 ("--precision", args.precision)) if value]  # fmt: skip
        if given:
            raise UsageError(
                f"--resume runs what the folder's plan says; drop {', '.join(given)} "
                "(only --workers may change)"
            )
        out = Path(args.resume)
        plan = Plan.load(out)  # says why a folder cannot be resumed, before touching it
    elif not args.scenarios:
        raise UsageError("name at least one scenario file, or --resume FOLDER")
    else:
        plan = _plan(args)
        out = start(Path(args.out or "results"), plan)
    resume = f"cxsim run --resume {shlex.quote(str(out))}"
    started = time.perf_counter()

    def heard(n: int, widths: list[float]) -> None:
        shown = ", ".join(f"{w:.4g}" for w in widths)
        print(f"precision: {n} replications, 95% CI half-width of {plan.precision.figure} "
              f"{shown} (target {plan.precision.half_width:g})", file=sys.stderr)  # fmt: skip

    planned = len(plan.scenarios) * plan.replications
    _ready_for_the_end()
    # The chart painters start now and load matplotlib while the runs go on.
    with _kept_on_interrupt(out, planned, plan.precision, resume), \
            _second_interrupt_exits(out, resume), Session(out), \
            executors.warm_pool(args.workers, charts.prepare) as painters:  # fmt: skip
        try:
            if args.resume:
                plan = Plan.load(out)  # again, holding the folder: another may have finished it
            experiment = run_experiment(
                plan.scenarios, plan.replications, plan.seed, plan.engine, args.workers,
                parts=out / PARTS, precision=plan.precision, on_batch=heard,
            )  # fmt: skip
        except OSError as exc:  # saving a part: a full disk, a folder made read-only
            raise ResultsError(unwritten(out, exc, "run")) from None
        except WorkerDied as exc:
            raise WorkerDied(f"{exc}; the finished runs are kept in {out}") from None
        _say_deaths(experiment.worker_deaths)
        _say_continued(experiment.continued)
        wall = time.perf_counter() - started
        try:
            write_experiment(experiment, out, plan, wall, pool=painters)
        except KeyboardInterrupt:
            raise InterruptedRun(
                f"while writing the results; all {len(experiment.summaries)} runs are kept in "
                f"{out}; to write the results, run: {resume}"
            ) from None
    with _complete(out):
        _print_figures(experiment)
        if plan.precision is not None:
            p = plan.precision
            print(
                f"\nPrecision: {len(experiment.seeds)} replications for a 95% CI half-width of "
                f"{p.figure} at most {p.half_width:g} (between {p.minimum} and {p.maximum})."
            )
        print(
            f"\n{len(experiment.seeds)} replication(s) x {len(plan.scenarios)} scenario(s), "
            f"engine {plan.engine}, {wall:.1f} s. Results: {out} (open report.html)"
        )
    return 0


def _ready_for_the_end() -> None:
    """Do now what saving the runs and writing the results will need whatever the runs give
    (the Parquet writer, the report's template, the package versions; 0.03 s of CPU): this
    process is about to wait for the fork server's imports with nothing to do (half a second
    with two cores), while from the first run to the last chart every core is busy."""
    import pyarrow.parquet  # noqa: F401 (saving a part, see cxsim.parts)

    from cxsim import report, results

    report.template()
    results.versions()


@contextmanager
def _complete(folder: Path) -> Iterator[None]:
    """Ctrl-C while the figures of a finished folder are printed: say that nothing is lost."""
    try:
        yield
    except KeyboardInterrupt:
        raise InterruptedRun(f"the results are complete in {folder}") from None


def _kept(folder: Path, planned: int, precision, resume: str) -> str:
    """What an interrupted run or sweep leaves: how many runs finished and how to finish."""
    from cxsim.checkpoint import saved
    from cxsim.parts import finished

    done = finished(folder / PARTS)
    of = f"at least {planned}" if precision is not None else str(planned)
    states = saved(folder / PARTS)
    more = f" ({states} more saved their state as they went, and go on from it)" if states else ""
    return (f"{done} of {of} runs finished and are kept in {folder}{more}; to finish, run: "
            f"{resume}")  # fmt: skip


@contextmanager
def _kept_on_interrupt(folder: Path, planned: int | None, precision,
                       resume: str) -> Iterator[None]:  # fmt: skip
    """Ctrl-C while a folder is being taken or let go: what finished, and how to resume."""
    try:
        yield
    except InterruptedRun:
        raise
    except KeyboardInterrupt:
        if planned is None:
            raise InterruptedRun(f"the finished runs are kept in {folder}; to finish, run: "
                                 f"{resume}") from None  # fmt: skip
        raise InterruptedRun(_kept(folder, planned, precision, resume)) from None


@contextmanager
def _second_interrupt_exits(folder: Path, resume: str) -> Iterator[None]:
    """The first Ctrl-C stops the work and says what finished (a KeyboardInterrupt; a run
    stepped in this process that saves its state first ends its step and saves it, as a
    pool's workers do: see cxsim.executors.winds_up); a second one, while that is under way,
    ends the process at once: the finished runs are on disk already, the lock goes with the
    process and the pool's workers die with it. A first one that Python swallows (raised in a
    weakref callback or a __del__) is raised again before the next part is saved or the final
    files are moved in (see cxsim.workfolder), and prints no "Exception ignored" traceback."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):  # fmt: skip
        yield  # not ours to change (a test runner, a host program, an ignored SIGINT)
        return

    def second(signum, frame) -> None:
        os.write(2, f"\ncxsim: stopped at once. The finished runs are kept in {folder}; to "
                    f"finish, run: {resume}\n".encode())  # fmt: skip
        os._exit(130)

    def first(signum, frame) -> None:
        signal.signal(signal.SIGINT, second)
        ask_to_stop()  # raised again if Python swallows this one (see cxsim.workfolder)
        if stop_in_hand():  # a run stepped here ends its step, saves its state, then raises it
            return
        raise KeyboardInterrupt

    def unraisable(info) -> None:
        # The KeyboardInterrupt of ``first`` raised inside a weakref callback or a __del__ (the
        # garbage collector runs them anywhere: in pandas, matplotlib, ...) is swallowed by
        # Python, which would print "Exception ignored" and its traceback; it is raised again
        # (stop_if_asked), so say nothing of it here.
        if not (issubclass(info.exc_type, KeyboardInterrupt) and stop_asked()):
            hook(info)

    hook = sys.unraisablehook
    sys.unraisablehook = unraisable
    signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = hook
        ask_to_stop(False)


def _plan(args: argparse.Namespace):
    from cxsim import guards
    from cxsim.loading import apply_overrides, load_scenarios
    from cxsim.results import Plan

    specs = load_scenarios(args.scenarios, args.overrides)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UsageError(
            f"scenarios to compare need different 'name' fields, found {names}; "
            "set one with --set 2:name=... (a variant names itself with a 'name:' line)"
        )
    times = {s.time for s in specs}
    if len(times) > 1:
        raise UsageError(
            "scenarios compared in one run need the same time section (step, steps_per_year, "
            f"horizon); found {', '.join(sorted({repr(t.model_dump()) for t in times}))}"
        )
    replications = args.replications or specs[0].run.replications
    seed = specs[0].run.seed if args.seed is None else args.seed
    specs = [
        apply_overrides(s, {"run.seed": seed, "run.replications": replications}) for s in specs
    ]
    for path, spec in zip(args.scenarios, specs, strict=True):
        guards.check(spec, path, args.engine or "vector", replications * len(specs))
    return Plan(list(args.scenarios), specs, args.engine or "vector", replications, seed,
                _precision(args, replications))  # fmt: skip


def _precision(args: argparse.Namespace, replications: int):
    """The --precision target, checked against the registry of figures."""
    from cxsim.experiment import Precision
    from cxsim.metrics import FIGURE

    if not args.precision:
        return None
    name, sep, value = args.precision.partition("=")
    known = [f.name for f in FIGURE.values() if not f.paired]
    if not sep or name not in known:
        raise UsageError(
            f"--precision {args.precision!r}: expected FIGURE=HALF_WIDTH with FIGURE one of "
            f"{', '.join(known)}"
        )
    try:
        half = float(value)
    except ValueError:
        half = float("nan")
    if not half > 0 or half == float("inf"):
        raise UsageError(
            f"--precision {args.precision!r}: expected a half-width > 0, found {value!r}"
        )
    minimum = max(2, args.replications or 10)
    if minimum > args.max_replications:
        raise UsageError(
            f"--replications {minimum} is above --max-replications {args.max_replications}"
        )
    return Precision(name, half, minimum, args.max_replications)


def _print_figures(experiment) -> None:
    from cxsim.findings import as_text, break_even, headline, loss_tables

    spec = experiment.scenarios[0]
    print(f"Money in {spec.economics.currency} for {spec.population.represents:,.0f} real "
          "customers per simulated one; people are real customers.\n")  # fmt: skip
    table = headline(experiment)
    print(table.intro)
    print(as_text(table))
    for extra in [*loss_tables(experiment, ("lost_revenue_horizon",)), break_even(experiment)]:
        if extra is not None:
            print(f"\n{extra.title}\n{as_text(extra)}")
    print("\nDefinitions: " + table.note)


def _calibrate(args: argparse.Namespace) -> int:
    from cxsim.loading import load_scenario

    spec = load_scenario(args.scenario, args.overrides)
    if spec.calibration is not None:
        return _fit_observed(args, spec)
    if args.out or args.replications:
        raise UsageError(
            f"{args.scenario}: --out and --replications need a calibration section "
            "(observed figures and unknowns; see docs/SCENARIO.md)"
        )
    return _walk_away_fit(args, spec, brief=False)


def _fit_observed(args: argparse.Namespace, spec: Scenario) -> int:
    """Fit the calibration section's unknowns, print the fit, write the calibrated variant."""
    from cxsim.fitting import describe, fit, set_arguments, variant_text
    from cxsim.workfolder import atomic

    cal = spec.calibration
    observed = [k for k, v in cal.observed.model_dump().items() if v is not None]
    source = Path(args.scenario)
    out = Path(args.out) if args.out else source.with_name(f"{source.stem}_fitted.yaml")
    if out.resolve() == source.resolve():
        raise UsageError(f"--out {out}: would overwrite the scenario it calibrates")
    if not args.out and out.exists():  # checked before the fit, which can take minutes
        raise UsageError(
            f"{out}: exists already (an earlier fit?); to replace it, name it: --out "
            f"{shlex.quote(str(out))}, or name another file"
        )
    print(f"Fitting {', '.join(cal.unknowns)} in {args.scenario} to {', '.join(observed)}.")
    if len(cal.unknowns) > len(observed):
        print(
            f"Note: {len(cal.unknowns)} unknowns and {len(observed)} observed figure(s): the "
            "observations cannot determine every unknown (see below).",
        )
    sys.stdout.flush()

    def heard(n: int, means: dict[str, float], worst: float) -> None:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in means.items())
        print(f"fit: evaluation {n}: {shown}; worst residual {worst:.2f} tolerances",
              file=sys.stderr)  # fmt: skip

    result = fit(spec, args.replications, on_evaluation=heard)
    print()
    print(describe(result))
    try:
        text = variant_text(spec, source, out, result)
        atomic(out, lambda p: p.write_text(text, encoding="utf-8"))  # whole or untouched
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot be written ({exc.strerror})") from None
    print(f"\nWrote the calibrated scenario to {out} (base: {source.name} and the fitted keys).")
    print(f"Run it:  cxsim run {shlex.quote(str(out))}")
    sets = " ".join(set_arguments(spec, result.values))
    print(f"or:      cxsim run {shlex.quote(str(source))} {sets}")
    if args.overrides:
        print("Note: the --set values shaped the fit but are not in the written file.")
    print("\nWalk-away curve (behaviour.walk_away), fitted to the survey figures:")
    _walk_away_fit(args, spec, brief=True)
    return 0


def _walk_away_fit(args: argparse.Namespace, spec: Scenario, brief: bool) -> int:
    import numpy as np

    from cxsim.calibration import fit_walk_away, left_by, simulate_left_by

    w = spec.behaviour.walk_away
    try:
        fit = fit_walk_away(
            w.survey.after_one, w.survey.after_several, w.survey.several, w.tolerance_sd
        )
    except ValueError:
        raise UsageError(
            f"{args.scenario}: behaviour.walk_away.survey: no walk-away curve fits these figures "
            f"with tolerance_sd {w.tolerance_sd:g}"
        ) from None
    n = w.survey.several
    if brief:
        print(
            f"  a = {fit.a:.4f}, b = {fit.b:.4f}: left by 1 = {fit.left_by(1):.4f} (survey "
            f"{w.survey.after_one}), left by {n} = {fit.left_by(n):.4f} (survey "
            f"{w.survey.after_several})"
        )
        return 0
    print(
        f"Survey in {args.scenario}: {w.survey.after_one:.1%} walk away after one bad "
        f"experience, {w.survey.after_several:.1%} after {n}."
    )
    print(f"Individual tolerance: Normal(0, {w.tolerance_sd:g}) on the log-odds scale.\n")
    print("Fitted walk-away curve  p(k) = sigmoid(a + b (k - 1) - tolerance):")
    print(f"  a = {fit.a:.4f}\n  b = {fit.b:.4f}\n")
    mc = simulate_left_by(fit.a, fit.b, w.tolerance_sd, n, 200_000, np.random.default_rng(0))
    print(
        f"{'k':>3} {'p(k), average person':>22} {'left by k (exact)':>19} "
        f"{'left by k (simulated)':>22}"
    )
    for k in range(1, n + 1):
        print(
            f"{k:>3} {fit.per_event(k):>22.3f} {left_by(fit.a, fit.b, w.tolerance_sd, k):>19.3f}"
            f" {mc[k - 1]:>22.3f}"
        )
    print(
        f"\nCheck: left by 1 = {fit.left_by(1):.4f} (target {w.survey.after_one}), "
        f"left by {n} = {fit.left_by(n):.4f} (target {w.survey.after_several})."
    )
    if w.a is not None:
        print(f"Note: the scenario fixes a = {w.a}, b = {w.b}; the run uses those, not this fit.")
    print(
        "\nTo fix the curve in a scenario:\nbehaviour:\n  walk_away:\n"
        f"    a: {fit.a:.4f}\n    b: {fit.b:.4f}"
    )
    return 0


def _validate(args: argparse.Namespace) -> int:
    from cxsim import guards
    from cxsim.loading import load_scenarios, scenario_yaml

    specs = load_scenarios(args.scenarios, args.overrides)
    for path, spec in zip(args.scenarios, specs, strict=True):
        guards.check(spec, path, runs=spec.run.replications)  # before any is reported ok
    for i, (path, spec) in enumerate(zip(args.scenarios, specs, strict=True)):
        if args.resolved:
            # Only YAML on stdout (documents split by ---), so the output loads again.
            separator = "---\n" if i else ""
            print(f"{separator}# {path}, resolved: bases merged, --set applied, defaults filled")
            print(scenario_yaml(spec), end="")
            continue
        a, b = spec.walk_away_curve
        print(
            f"{path}: ok — '{spec.name}', {spec.population.size:,} people, "
            f"{spec.time.horizon} {spec.time.step}s, {len(spec.touchpoints)} touchpoints, "
            f"strategy '{spec.strategy.name}'"
        )
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from cxsim.results import unwritten
    from cxsim.sweep.design import design
    from cxsim.sweep.run import SweepTaskError, resume, run_sweep, start
    from cxsim.sweep.spec import load_sweep

    if args.print_problem:
        if not args.file:
            raise UsageError("--print-problem needs a sweep file")
        from cxsim.sweep.design import problem_of

        # The same problem the design is sampled from, for SALib or other tools outside cxsim.
        print(json.dumps(problem_of(load_sweep(args.file)), indent=2))
        return 0
    if args.scheduler and args.workers:
        raise UsageError("--workers sets local processes; a Dask scheduler has its own workers")
    if args.resume:
        if args.out:
            raise UsageError("--resume finishes the sweep in its own folder; drop --out")
        folder = Path(args.resume)
        named = load_sweep(args.file) if args.file else None
        sweep = resume(folder, named)  # says why a folder cannot be resumed, before touching it
    elif not args.file:
        raise UsageError("name a sweep file, or --resume FOLDER")
    else:
        sweep = load_sweep(args.file)
        folder = start(Path(args.out or "results"), sweep)
    again = f"cxsim sweep --resume {shlex.quote(str(folder))}"
    with _kept_on_interrupt(folder, None, None, again), \
            _second_interrupt_exits(folder, again), Session(folder):  # fmt: skip
        client = None
        try:
            if args.resume:
                sweep = resume(folder, named)  # again, holding the folder
            client = _dask_client(args.scheduler) if args.scheduler else None
            result = run_sweep(sweep, workers=args.workers, client=client, folder=folder,
                               analysis=_analysis())  # fmt: skip
        except SweepTaskError as exc:
            if isinstance(exc.__cause__, WorkerDied):
                print(f"cxsim: error: {exc}; --resume runs what is missing", file=sys.stderr)
                return 1
            print(f"cxsim: error: {exc}. This is a bug in the model (the point was checked "
                  "before it ran): please report it; after a fix, --resume runs what is missing",
                  file=sys.stderr)  # fmt: skip
            return 1
        except KeyboardInterrupt:
            planned = len(design(sweep)[0]) * len(sweep.scenarios) * sweep.spec.replications
            raise InterruptedRun(_kept(folder, planned, None, again)) from None
        except OSError as exc:  # saving a part: a full disk, a folder made read-only
            raise ResultsError(unwritten(folder, exc, "sweep")) from None
        finally:
            if client is not None:
                client.close()
    _say_deaths(result.worker_deaths)
    with _complete(folder):
        _print_sweep(result, folder)
    return 0


def _print_sweep(result, folder: Path) -> None:
    written = result.analysis
    sweep = result.sweep
    spec = sweep.spec
    print(
        f"{len(result.design)} point(s) x {len(sweep.scenarios)} scenario(s) x "
        f"{spec.replications} replication(s) = {len(result.runs)} runs, design {spec.design}, "
        f"engine {spec.engine}, {result.executor}, {result.wall_seconds:.1f} s."
    )
    print(f"Results: {folder} (points.csv: mean and 95% CI of {', '.join(spec.figures)} per "
          "point; runs.parquet, steps.parquet)")  # fmt: skip
    headline = folder / "analysis.md"
    if headline in written:
        # The analysis's one-sentence answers, then where its charts and tables are.
        print(headline.read_text(encoding="utf-8").split("\n", 2)[-1].rstrip())
        charts = len({p.stem for p in written if p.suffix == ".png"})
        print(f"Analysis: {charts} chart(s) (PNG and SVG) and tables in {folder}")


def _say_deaths(deaths) -> None:
    """One line on stderr if worker processes died under runs (which were then run again)."""
    line = deaths_line(deaths)
    if line:
        print(f"cxsim: {line}", file=sys.stderr)


def _say_continued(continued: list[dict]) -> None:
    """One line on stderr if runs went on from the state they had saved (see cxsim.checkpoint)."""
    if continued:
        runs = ", ".join(f"{c['scenario']} replication {c['replication']} from step "
                         f"{c['from_step']}" for c in continued)  # fmt: skip
        count = "1 run" if len(continued) == 1 else f"{len(continued)} runs"
        print(f"cxsim: {count} went on from a saved state: {runs}", file=sys.stderr)


def _analysis():
    """The sweep analysis (charts, indices), if this installation has it."""
    try:
        from cxsim.sweep.analysis import write_analysis
    except ModuleNotFoundError as exc:
        if exc.name != "cxsim.sweep.analysis":
            raise  # the module is there but something it needs is not: say so
        return None
    return write_analysis


def _dask_client(address: str):
    from dask.distributed import Client

    try:
        return Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"--scheduler {address}: cannot connect ({exc})") from None


def _schema(args: argparse.Namespace) -> int:
    from cxsim import reference
    from cxsim.scenario import Scenario

    if args.sweep:
        from cxsim.sweep.spec import SweepSpec

        model, title, page = SweepSpec, "cxsim sweep", reference.sweep_markdown
    else:
        model, title, page = Scenario, "cxsim scenario", reference.markdown
    if args.markdown:
        print(page(), end="")
        return 0
    schema = model.model_json_schema()
    schema["title"] = title
    print(json.dumps(schema, indent=2))
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    try:  # the dashboard's web stack is an optional extra; the core never imports it
        from cxsim.dashboard.server import serve
    except ImportError as exc:
        raise UsageError(
            f"the dashboard needs its extra: pip install 'cxsim[dashboard]' ({exc})"
        ) from None
    return serve(args.scenarios, args.host, args.port)


COMMANDS = {
    "run": _run,
    "sweep": _sweep,
    "calibrate": _calibrate,
    "validate": _validate,
    "schema": _schema,
    "dashboard": _dashboard,
}


def command() -> None:
    """The ``cxsim`` command (and ``python -m cxsim.cli``): :func:`main`, then a quick exit.

    Once the work is done and its files are closed, tearing down the interpreter's modules
    (pandas, NumPy, SciPy, Mesa...) one object at a time costs some 0.3 s of a run of a few
    seconds and changes nothing on disk. So: run the exit handlers (multiprocessing's among
    them: it ends the pools' helper processes and their semaphores), flush the output and end
    the process there. If a thread that is not a daemon is still running (an executor left open
    by a library, say Dask's), Python's own shutdown, which knows how to stop it, ends the
    process instead."""
    code = main()
    if any(t is not threading.current_thread() and not t.daemon and t.is_alive()
           for t in threading.enumerate()):  # fmt: skip
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe (`cxsim run ... | head`): as Python would
        code = code or 120
    os._exit(code)


if __name__ == "__main__":
    command()
