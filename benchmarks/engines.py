"""Benchmark: the agents and vector engines side by side, and the vector engine at scale.

    python benchmarks/engines.py            # full: about 5 minutes on two cores
    python benchmarks/engines.py --quick    # a smoke run of every part

Every measurement runs in a fresh child process (so peak memory is its own), and the two engines
alternate, repeated, within this one script run: the speed ratio is taken from runs made side by
side on the same machine at the same time. Speed is person-steps per second of stepping (every
person, whatever their stage, counts once per step); building the model is timed apart.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
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


def measure(engine: str, scenario: str, people: int, steps: int, kind: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", engine, scenario, str(people), str(steps)]
    if kind:
        cmd.append(kind)
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


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


def throughput(people: int, steps: int) -> None:
    print(f"\n2. Vector engine, {people:,} people x {steps} steps, mean degree 10, one core")
    for kind in ("watts_strogatz", "erdos_renyi", "barabasi_albert", "well_mixed"):
        r = measure("vector", "reactive", people, steps, kind)
        print(
            f"   {kind:<16} {r['rate'] / 1e6:6.1f} M person-steps/s  (build {r['build_s']:.1f} s, "
            f"peak {r['peak_mb']:.0f} MB)"
        )


def scale(people: int, steps: int) -> None:
    print(
        f"\n3. Scale: vector engine, {people:,} people x {steps} steps (Watts-Strogatz, degree 10)"
    )
    started = time.perf_counter()
    r = measure("vector", "reactive", people, steps)
    wall = time.perf_counter() - started
    print(
        f"   build {r['build_s']:.1f} s + steps {r['step_s']:.1f} s = "
        f"{r['build_s'] + r['step_s']:.1f} s in the model ({wall:.1f} s with interpreter start "
        f"and imports); {r['rate'] / 1e6:.1f} M person-steps/s; peak memory {r['peak_mb']:.0f} MB "
        f"(of which {r['import_mb']:.0f} MB after imports); "
        f"{r['customers_end']:,} customers at the end"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check it runs")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine, scenario, people, steps, *kind = args.child
        child(engine, scenario, int(people), int(steps), kind[0] if kind else None)
        return
    if args.quick:
        side_by_side(2_000, 20, 1)
        throughput(50_000, 10)
        scale(100_000, 20)
    else:
        side_by_side(10_000, 156, 3)  # the shipped size: 10,000 people, 2,000 customers at start
        side_by_side(50_000, 52, 2)  # 10,000 customers at start (and 40,000 prospects)
        throughput(1_000_000, 52)
        scale(1_000_000, 520)


if __name__ == "__main__":
    main()
