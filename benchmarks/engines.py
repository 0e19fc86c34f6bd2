"""Benchmark: the agents and vector engines side by side, the vector engine at scale, and the
README's main command, each against the targets of the speed issue.

    python benchmarks/engines.py            # full: about 8 minutes on two cores
    python benchmarks/engines.py --quick    # a smoke run of every part
    python benchmarks/engines.py --quick-start --against OTHER/bin/cxsim   # part 5, both
    python benchmarks/engines.py --before CHECKOUT   # the vector engine, other code and this

Every measurement runs in a fresh child process (so peak memory is its own), and the two engines
alternate, repeated, within this one script run: the speed ratio is taken from runs made side by
side on the same machine at the same time. Speed is person-steps per second of stepping (every
person, whatever their stage, counts once per step); building the model is timed apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(engine: str, scenario: str, people: int, steps: int, kind: str | None) -> None:
    """Build and run one model; print build time, step time and peak memory as JSON."""
    from cxsim.engines import ENGINES
    from cxsim.loading import load_scenario

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    overrides = {
        "population.customers": people // 5,
        "population.prospects": people - people // 5,
        "time.horizon": steps,
    }
    if kind:
        overrides["network.kind"] = kind
    spec = load_scenario(ROOT / "scenarios" / f"{scenario}.yaml", overrides)
    started = time.perf_counter()
    model = ENGINES[engine](spec, rng=1)
    built = time.perf_counter()
    model.run()
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "build_s": built - started,
                "step_s": done - built,
                "rate": people * steps / (done - built),
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "import_mb": base_rss,
                "customers_end": int(model.metrics["customers"]),
            }
        )
    )


def measure(
    engine: str,
    scenario: str,
    people: int,
    steps: int,
    kind: str | None = None,
    source: str | None = None,
) -> dict:
    """One child run; ``source``: a checkout of other cxsim code to run instead of this one."""
    cmd = [sys.executable, __file__, "--child", engine, scenario, str(people), str(steps)]
    if kind:
        cmd.append(kind)
    env = {**os.environ, "PYTHONPATH": source} if source else None
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def before_and_after(source: str, repeats: int, sizes: list[tuple[str, int, int]]) -> None:
    """The vector engine of another checkout (``source``, e.g. ``git worktree add /tmp/old
    REV``) and of this one, alternately in fresh processes: what a change to the engine bought."""
    print(f"\n0. Vector engine before (code in {source}) and now, best of {repeats} alternating")
    print(f"   {'run':<34} {'before s':>9} {'now s':>9} {'speed-up':>9}")
    for scenario, people, steps in sizes:
        best = {"before": float("inf"), "now": float("inf")}
        for _ in range(repeats):
            best["before"] = min(best["before"], measure("vector", scenario, people, steps,
                                                         source=source)["step_s"])  # fmt: skip
            best["now"] = min(best["now"], measure("vector", scenario, people, steps)["step_s"])
        name = f"{scenario}, {people:,} x {steps}"
        print(
            f"   {name:<34} {best['before']:>9.3f} {best['now']:>9.3f} "
            f"{best['before'] / best['now']:>8.2f}x"
        )


def side_by_side(people: int, steps: int, repeats: int) -> list[float]:
    print(
        f"\n1. Agents vs vector, shipped scenarios, {people:,} people x {steps} steps, "
        f"best of {repeats} alternating runs"
    )
    print(
        f"   {'scenario':<10} {'engine':<7} {'person-steps/s':>15} {'step s':>8} {'build s':>8} "
        f"{'peak MB':>8}"
    )
    ratios = []
    for scenario in ("reactive", "proactive"):
        best: dict[str, dict] = {}
        for _ in range(repeats):
            for engine in ("agents", "vector"):
                r = measure(engine, scenario, people, steps)
                if engine not in best or r["step_s"] < best[engine]["step_s"]:
                    best[engine] = r
        for engine, r in best.items():
            print(
                f"   {scenario:<10} {engine:<7} {r['rate']:>15,.0f} {r['step_s']:>8.2f} "
                f"{r['build_s']:>8.2f} {r['peak_mb']:>8.0f}"
            )
        ratio = best["agents"]["step_s"] / best["vector"]["step_s"]
        ratios.append(ratio)
        print(f"   {scenario:<10} vector / agents speed ratio: {ratio:.0f}x")
    return ratios


def throughput(people: int, steps: int) -> dict[str, float]:
    print(f"\n2. Vector engine, {people:,} people x {steps} steps, mean degree 10, one core")
    rates = {}
    for kind in ("watts_strogatz", "erdos_renyi", "barabasi_albert", "well_mixed"):
        r = measure("vector", "reactive", people, steps, kind)
        rates[kind] = r["rate"]
        print(
            f"   {kind:<16} {r['rate'] / 1e6:6.1f} M person-steps/s  (build {r['build_s']:.1f} s, "
            f"peak {r['peak_mb']:.0f} MB)"
        )
    return rates


def scale(
    people: int, steps: int, target_steps: int | None = None, part: int = 3, growth: float = 0.0
) -> dict:
    """One big run; with ``target_steps`` the stepping time is also scaled up to that many steps
    by ``growth``, the ratio of the two horizons' stepping times measured at a smaller size (a
    step costs more as customers accumulate, so a linear scale-up would undercount)."""
    print(
        f"\n{part}. Scale: vector engine, {people:,} people x {steps} steps "
        "(Watts-Strogatz, degree 10)"
    )
    started = time.perf_counter()
    r = measure("vector", "reactive", people, steps)
    wall = time.perf_counter() - started
    r["bytes_per_person"] = (r["peak_mb"] - r["import_mb"]) * 2**20 / people
    print(
        f"   build {r['build_s']:.1f} s + steps {r['step_s']:.1f} s = "
        f"{r['build_s'] + r['step_s']:.1f} s in the model ({wall:.1f} s with interpreter start "
        f"and imports); {r['rate'] / 1e6:.1f} M person-steps/s; peak memory {r['peak_mb']:.0f} MB "
        f"(of which {r['import_mb']:.0f} MB after imports), "
        f"{r['bytes_per_person']:.0f} bytes per person; {r['customers_end']:,} customers at the end"
    )
    if target_steps and target_steps != steps:
        factor = growth or target_steps / steps
        r["extrapolated_step_s"] = r["step_s"] * factor
        print(
            f"   extrapolated to {target_steps} steps: {r['extrapolated_step_s']:.0f} s stepping "
            f"(measured {steps} steps x {factor:.1f}, the ratio of {target_steps} to {steps} "
            "steps at a million people; memory grows only with the closed spells kept)"
        )
    return r


QUICK_START = ["run", "scenarios/reactive.yaml", "scenarios/proactive.yaml"]


def _cxsim() -> list[str]:
    found = shutil.which("cxsim", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "cxsim.cli"]


def quick_start_child(out: str, launched: float) -> None:
    """The README's main command in this process, as the ``cxsim`` command runs it (its exit
    too), timing its parts; prints them as JSON just before the process ends. ``launched``:
    the parent's clock (time.time()) when it started this process."""
    begun = time.time()
    started = time.perf_counter()
    import cxsim.cli as cli

    imported = time.perf_counter() - started
    marks: dict[str, float] = {}  # when things began, in seconds since `started`
    spent: dict[str, float] = {}

    def timing(inner, label: str, first: str | None = None):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            if first:
                marks.setdefault(first, t - started)
            try:
                return inner(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t

        return wrapper

    def timed(owner, name: str, label: str, first: str | None = None) -> None:
        setattr(owner, name, timing(getattr(owner, name), label, first))

    def later() -> None:  # the modules the command imports after it started the fork server
        import cxsim.charts as charts
        import cxsim.experiment as experiment
        import cxsim.findings as findings
        import cxsim.parts as parts
        import cxsim.report as report
        import cxsim.results as results

        timed(experiment, "run_experiment", "simulating (pool, runs, saving parts)", "runs")
        timed(parts, "save", "  saving each run as a part")
        execute = experiment._execute

        def first_result(*args):
            t = time.perf_counter()
            for n, item in enumerate(execute(*args)):
                if n == 0:
                    spent["  pool start to first run back"] = time.perf_counter() - t
                yield item

        experiment._execute = first_result
        for i, writer in enumerate(results.WRITERS):  # frozen dataclasses: replaced
            results.WRITERS[i] = dataclasses.replace(
                writer, write=timing(writer.write, "  tables (CSV, Parquet)")
            )
        timed(results, "write_experiment", "writing (tables, charts, report, manifest)")
        timed(charts.Drawing, "wait", "  waiting for the charts (9 PNG)")
        timed(findings, "report_content", "  report.html")
        timed(report, "write_report", "  report.html")

    # The command imports the modules timed here once its fork server is starting (on one core
    # there is none): so does this one.
    from cxsim import executors

    warm_up = executors.warm_up

    def warm_up_then_hook(*modules: str) -> None:
        warm_up(*modules)
        marks["fork server started"] = time.perf_counter() - started
        later()

    executors.warm_up = warm_up_then_hook
    if (os.cpu_count() or 1) == 1:
        later()
    timed(cli, "_plan", "reading the scenarios (plan)")
    timed(cli, "_print_figures", "printing the figures")
    main = cli.main

    def main_timed(argv=None):
        t = time.perf_counter()
        try:
            return main(argv)
        finally:
            spent["main"] = time.perf_counter() - t

    cli.main = main_timed
    Path(out).mkdir(parents=True, exist_ok=True)  # the run writes a new folder inside
    quiet = open(Path(out) / "stdout.txt", "w")  # noqa: SIM115 (closed below)
    stdout = sys.stdout

    def report() -> None:  # an exit handler: the command runs them as it ends
        sys.stdout = stdout
        quiet.close()
        spent["ended"] = time.time()
        spent["interpreter start"] = begun - launched
        print(json.dumps({"imports": imported, **marks, **spent}), flush=True)

    import atexit

    atexit.register(report)
    sys.stdout = quiet
    sys.argv = ["cxsim", *QUICK_START, "--out", out]
    if hasattr(cli, "command"):
        cli.command()  # ends the process
    sys.exit(main_timed())


def _adopt_orphans() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux), so that the CPU time
    of the fork server and of the pool's workers, which outlive or are not waited for by the
    command, is counted in this process's children's usage too."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # SUBREAPER
    except (OSError, AttributeError):
        return False


def _wall(command: list[str], out: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every process the command started) of one run. It runs
    in the folder of ``out``, not in this tree: the pool's fork server puts its working folder
    first on its path, so from this tree another installation's workers and painters would
    run this tree's cxsim."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    args = [str(ROOT / a) if a.endswith(".yaml") else a for a in QUICK_START]
    subprocess.run([*command, *args, "--out", out], cwd=Path(out).parent, check=True,
                   capture_output=True)  # fmt: skip
    wall = time.perf_counter() - t
    while True:  # the orphans this process adopted, once they end
        try:
            os.wait()
        except ChildProcessError:
            break
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def _runs(label: str, runs: list[tuple[float, float]], counted: bool) -> str:
    """Median wall (and CPU) seconds of ``runs`` and every run's, on one line."""

    def shown(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} s (runs: {', '.join(f'{v:.2f}' for v in values)})"

    text = f"{label}wall {shown([w for w, _ in runs])}"
    if counted:
        text += f"; CPU of all its processes {shown([c for _, c in runs])}"
    return text


def quick_start(repeats: int, against: str | None = None) -> dict:
    """The README's main command, ``repeats`` times; with ``against`` (another installation's
    ``cxsim`` command, e.g. of the code before a change) that one too, the two alternating, so
    their medians and their ratio come from runs made side by side."""
    print(f"\n5. README main command (cxsim {' '.join(QUICK_START)}), median of {repeats}")
    counted = _adopt_orphans()
    runs, others = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            if against:
                others.append(_wall([against], f"{tmp}/a{i}"))
            runs.append(_wall(_cxsim(), f"{tmp}/w{i}"))
        t = time.perf_counter()
        launched = time.time()
        done = subprocess.run(
            [sys.executable, __file__, "--quick-start-child", f"{tmp}/parts", str(launched)],
            cwd=ROOT, check=True, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - t
        exited = time.time()
    parts = json.loads(done.stdout.strip().splitlines()[-1])
    median = statistics.median(w for w, _ in runs)
    print(_runs("   ", runs, counted))
    if against:
        before = statistics.median(w for w, _ in others)
        print(_runs(f"   {against}: ", others, counted))
        share = f"   this one takes {median / before:.2f} of its wall time"
        if counted:
            cpu = statistics.median(c for _, c in runs) / statistics.median(c for _, c in others)
            share += f" and {cpu:.2f} of its CPU time"
        print(share)
    print(f"   one more run, timed inside: {wall:.2f} s wall, of which")

    def line(label: str, value: float) -> None:
        print(f"     {label:<44} {value:6.2f} s")

    line("interpreter start", parts.pop("interpreter start"))
    line("imports (cxsim.cli)", parts.pop("imports"))
    for key in ("fork server started", "runs"):
        if key in parts:
            print(f"     {'(' + key + ' at':<44} {parts.pop(key):6.2f} s)")
    outside = parts.pop("main")
    ended = parts.pop("ended")
    order = [
        "reading the scenarios (plan)",
        "simulating (pool, runs, saving parts)",
        "  pool start to first run back",
        "  saving each run as a part",
        "writing (tables, charts, report, manifest)",
        "  tables (CSV, Parquet)",
        "  report.html",
        "  waiting for the charts (9 PNG)",
        "printing the figures",
    ]
    for key in sorted(parts, key=lambda k: order.index(k) if k in order else len(order)):
        line(key, parts[key])
        if not key.startswith("  "):
            outside -= parts[key]
    line("the rest (imports, folder, lock, pool start)", outside)
    line("exit (after the command's last line)", exited - ended)
    return {"median": median, **parts}


def targets(ratios: list[float], rates: dict, big: dict, huge: dict, quick: dict) -> None:
    """Every target of the speed issue against what this run measured."""
    ws = rates["watts_strogatz"]
    worst = min(rates.values())

    def line(name: str, measured: str, met: bool) -> None:
        print(f"   {'met    ' if met else 'not met'}  {name:<58} {measured}")

    print("\nTargets (this run)")
    line(
        "vector >= 100x agents at the shipped size (both scenarios)",
        " / ".join(f"{r:.0f}x" for r in ratios),
        min(ratios) >= 100,
    )
    line(">= 50 M person-steps/s, 1M x 52, Watts-Strogatz", f"{ws / 1e6:.1f} M", ws >= 50e6)
    line("other networks within 30% of it", f"slowest {worst / ws:.0%} of it", worst >= 0.7 * ws)
    line(
        "1M x 520 steps in <= 10 s stepping",
        f"{big['step_s']:.1f} s, peak {big['peak_mb']:.0f} MB",
        big["step_s"] <= 10,
    )
    steps = huge.get("extrapolated_step_s", huge["step_s"])
    line(
        "10M x 520 on this machine; <= 200 bytes per person",
        f"{steps:.0f} s stepping, peak {huge['peak_mb'] / 1024:.1f} GB, "
        f"{huge['bytes_per_person']:.0f} B/person",
        huge["bytes_per_person"] <= 200,
    )
    line("README main command <= 4 s wall (median of 5)", f"{quick['median']:.2f} s",
         quick["median"] <= 4)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check it runs")
    parser.add_argument(
        "--ten-million-steps",
        type=int,
        default=52,
        help="steps of the 10M run (520 takes some minutes; fewer are scaled up)",
    )
    parser.add_argument(
        "--quick-start", action="store_true", help="only the README main command (part 5)"
    )
    parser.add_argument(
        "--against", metavar="CXSIM",
        help="with --quick-start: another installation's cxsim command to time alternately "
        "with this one (e.g. the code before a change, installed in its own environment)",
    )  # fmt: skip
    parser.add_argument(
        "--before", metavar="DIR",
        help="only the vector engine, side by side with the code of another checkout DIR",
    )  # fmt: skip
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--quick-start-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()  # fmt: skip
    if args.child:
        engine, scenario, people, steps, *kind = args.child
        child(engine, scenario, int(people), int(steps), kind[0] if kind else None)
        return
    if args.quick_start_child:
        quick_start_child(args.quick_start_child[0], float(args.quick_start_child[1]))
        return
    if args.quick_start:
        quick_start(1 if args.quick else 5, args.against)
        return
    if args.before:
        sizes = [("reactive", 10_000, 156), ("proactive", 10_000, 156)]
        sizes += [("reactive", 50_000, 10)] if args.quick else [("reactive", 1_000_000, 52)]
        before_and_after(str(Path(args.before).resolve()), 1 if args.quick else 3, sizes)
        return
    if args.quick:
        ratios = side_by_side(2_000, 20, 1)
        rates = throughput(50_000, 10)
        big = scale(100_000, 20)
        huge = scale(200_000, 5, target_steps=20, part=4)
        quick = quick_start(1)
    else:
        ratios = side_by_side(10_000, 156, 3)  # the shipped size: 10,000 people, 2,000 customers
        side_by_side(50_000, 52, 2)  # 10,000 customers at start (and 40,000 prospects)
        rates = throughput(1_000_000, 52)
        big = scale(1_000_000, 520)
        at_52 = 1_000_000 * 52 / rates["watts_strogatz"]  # stepping time of 1M x 52
        growth = big["step_s"] / at_52 if args.ten_million_steps == 52 else 0.0
        huge = scale(10_000_000, args.ten_million_steps, target_steps=520, part=4, growth=growth)
        quick = quick_start(5)
    targets(ratios, rates, big, huge, quick)


if __name__ == "__main__":
    main()
