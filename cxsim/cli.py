"""The ``cxsim`` command line: run, calibrate, validate, schema.

User mistakes (a bad scenario value, a missing file) print one clear message and exit with
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from cxsim.calibration import fit_walk_away, left_by, simulate_left_by
from cxsim.engines import ENGINES
from cxsim.loading import (
    ScenarioError,
    apply_overrides,
    load_scenario,
    load_scenarios,
    scenario_yaml,
)
from cxsim.results import ResultsError
from cxsim.scenario import Scenario


class UsageError(Exception):
    """A command-line mistake; printed as it is, exit status 2."""


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
    run.add_argument("--engine", choices=sorted(ENGINES), help="default: vector")
    run.add_argument("--out", help="parent folder of the new results folder (default: results)")
    run.add_argument("--workers", type=_whole(1), help="processes (default: all cores)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="[SCENARIO:]KEY=VALUE",
        help="override a scenario field, e.g. --set strategy.detection=0.5 (repeatable); "
        "a prefix changes one scenario only: --set proactive:strategy.costs.fixed=0",
    )

    cal = sub.add_parser("calibrate", help="fit the walk-away curve to a scenario's survey")
    cal.add_argument("scenario", metavar="SCENARIO")
    cal.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

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

    schema = sub.add_parser("schema", help="print the JSON Schema of the scenario format")
    schema.add_argument(
        "--markdown", action="store_true", help="a Markdown table of every field instead"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ScenarioError, UsageError, ResultsError) as exc:
        print(f"cxsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cxsim: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from cxsim.experiment import run_experiment
    from cxsim.results import PARTS, Plan, start, write_experiment

    if args.resume:
        given = [flag for flag, value in (("SCENARIO", args.scenarios), ("--set", args.overrides),
                 ("--replications", args.replications), ("--seed", args.seed),
                 ("--engine", args.engine), ("--out", args.out)) if value]  # fmt: skip
        if given:
            raise UsageError(
                f"--resume runs what the folder's plan says; drop {', '.join(given)} "
                "(only --workers may change)"
            )
        out = Path(args.resume)
        plan = Plan.load(out)
    elif not args.scenarios:
        raise UsageError("name at least one scenario file, or --resume FOLDER")
    else:
        plan = _plan(args)
        out = start(Path(args.out or "results"), plan)
    started = time.perf_counter()
    experiment = run_experiment(
        plan.scenarios, plan.replications, plan.seed, plan.engine, args.workers,
        parts=out / PARTS,
    )  # fmt: skip
    wall = time.perf_counter() - started
    write_experiment(experiment, out, plan.sources, wall)
    _print_figures(experiment)
    print(
        f"\n{plan.replications} replication(s) x {len(plan.scenarios)} scenario(s), "
        f"engine {plan.engine}, {wall:.1f} s. Results: {out}"
    )
    return 0


def _plan(args: argparse.Namespace):
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
    return Plan(list(args.scenarios), specs, args.engine or "vector", replications, seed)


# (figure, text, format of a value, format of a paired difference)
HEADLINE = [
    ("annual_churn", "annual churn", "{:.1%}", "{:+.1f} pts"),
    ("nps", "NPS (last year)", "{:+.1f}", "{:+.1f} pts"),
    ("csat", "CSAT % (last year)", "{:.1f}", "{:+.1f} pts"),
    ("final_customers", "customers at end", "{:,.0f}", "{:+,.0f}"),
    ("revenue", "revenue", "{:,.0f}", "{:+,.0f}"),
    ("profit", "profit", "{:,.0f}", "{:+,.0f}"),
    ("lost_revenue_experience_horizon", "revenue lost to poor experiences", "{:,.0f}", "{:+,.0f}"),
]
RETURNS = [
    ("cost_programme", "extra programme cost", "{:+,.0f}"),
    ("roi", "return on programme cost", "{:+.2f}"),
    ("payback_step", "payback (step)", "{:.0f}"),
]


def _line(text: str, fmt: str, m: float, lo: float, hi: float) -> str:
    return f"  {text:<34} {fmt.format(m):>18}  [{fmt.format(lo)}, {fmt.format(hi)}]"


def _print_figures(experiment) -> None:
    figures = experiment.figures().set_index(["scenario", "figure"])
    diffs = experiment.differences()
    currency = experiment.scenarios[0].economics.currency
    print(f"Mean over replications [95% CI]; money in {currency} for the represented base.")
    for spec in experiment.scenarios:
        print(f"\n{spec.name}")
        for key, text, fmt, _ in HEADLINE:
            print(_line(text, fmt, *figures.loc[(spec.name, key), ["mean", "low", "high"]]))
    if not len(diffs):
        return
    diffs = diffs.set_index(["scenario", "figure"])
    for label in dict.fromkeys(diffs.index.get_level_values(0)):
        print(f"\n{label} (paired: same seeds)")
        for key, text, _, fmt in HEADLINE:
            scale = 100 if key == "annual_churn" else 1  # a difference of shares, in points
            print(_line(text, fmt, *scale * diffs.loc[(label, key), ["mean", "low", "high"]]))
        runs = len(experiment.seeds)
        for key, text, fmt in RETURNS:
            if key == "payback_step" and diffs.loc[(label, key), "n"] == 0:
                print(f"  {text:<34} {'none within the horizon':>18}")
            if (label, key) in diffs.index and not np.isnan(diffs.loc[(label, key), "mean"]):
                row = diffs.loc[(label, key)]
                line = _line(text, fmt, row["mean"], row["low"], row["high"])
                note = "" if row["n"] == runs else f"  ({row['n']} of {runs} replications)"
                print(line + note)


def _calibrate(args: argparse.Namespace) -> int:
    spec = load_scenario(args.scenario, args.overrides)
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
    specs = load_scenarios(args.scenarios, args.overrides)
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


def _schema(args: argparse.Namespace) -> int:
    if args.markdown:
        from cxsim.reference import markdown

        print(markdown(), end="")
        return 0
    schema = Scenario.model_json_schema()
    schema["title"] = "cxsim scenario"
    print(json.dumps(schema, indent=2))
    return 0


COMMANDS = {"run": _run, "calibrate": _calibrate, "validate": _validate, "schema": _schema}

if __name__ == "__main__":
    sys.exit(main())
