"""Measure a sweep: one worker against two, the local pool against a Dask LocalCluster, and where
the time of one run goes (build, step, collect, summarise, store, send between processes).

    python benchmarks/sweep.py SWEEP.yaml [--points N]

``--points N`` keeps the first N points of the design (a quick look at a large grid). Each
executor runs the same tasks; the tables must be identical, and the script says whether they are.
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from pathlib import Path

from cxsim import parts
from cxsim.engines import ENGINES
from cxsim.executors import PoolExecutor, SerialExecutor
from cxsim.metrics import run_summary
from cxsim.sweep import load_sweep, run_sweep
from cxsim.sweep.run import _record, _tasks, replication_seeds


def _first_points(sweep, n: int | None):
    """The sweep with its design cut to the first n points (by patching the design call)."""
    if n is None:
        return
    import cxsim.sweep.run as runner

    full = runner.design

    def cut(s):
        frame, problem = full(s)
        return frame.iloc[:n].reset_index(drop=True), problem

    runner.design = cut


def timed(label: str, sweep, **kwargs):
    started = time.perf_counter()
    result = run_sweep(sweep, progress=False, **kwargs)
    wall = time.perf_counter() - started
    print(f"{label:<34} {wall:7.1f} s  ({len(result.runs)} runs, {len(result.runs) / wall:.2f} "
          "runs/s)", flush=True)  # fmt: skip
    return result, wall


def anatomy(sweep) -> None:
    """Where one run's time goes, at the sweep's own scenario size (mean of 5 runs)."""
    from cxsim.sweep.design import design

    frame, _ = design(sweep)
    task = _tasks(sweep, frame.iloc[:1], replication_seeds(sweep.spec.seed, 1))[0]
    totals = dict.fromkeys(["build", "step", "collect", "summarise", "store", "send"], 0.0)
    n = 5
    with tempfile.TemporaryDirectory() as folder:
        for i in range(n):
            t0 = time.perf_counter()
            model = ENGINES[task.engine](task.spec, rng=task.seed + i)
            t1 = time.perf_counter()
            model.run()
            t2 = time.perf_counter()
            steps = model.metrics_frame()
            t3 = time.perf_counter()
            summary = run_summary(steps, task.spec)
            t4 = time.perf_counter()
            parts.save_sweep_run(Path(folder), (i, 0, 0), _record(task, sweep), summary,
                                 steps[["step", *task.columns]])  # fmt: skip
            t5 = time.perf_counter()
            # What a pool or Dask adds per run: the task out, the result back.
            pickle.loads(pickle.dumps(task))
            pickle.loads(pickle.dumps((summary, steps[["step", *task.columns]])))
            t6 = time.perf_counter()
            for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5),
                               strict=True):  # fmt: skip
                totals[key] += dt / n
    whole = sum(totals.values())
    print("\nOne run at this size (mean of 5, this process):")
    for key, dt in totals.items():
        print(f"  {key:<10} {1000 * dt:8.1f} ms  {dt / whole:6.1%}")
    fixed = whole - totals["step"]
    print(
        f"  fixed cost (everything but stepping): {1000 * fixed:.1f} ms = "
        f"{fixed / totals['step']:.1%} of the stepping"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep")
    parser.add_argument("--points", type=int)
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    sweep = load_sweep(args.sweep)
    _first_points(sweep, args.points)
    serial, one = timed("serial (1 worker)", sweep, executor=SerialExecutor())
    pooled, two = timed("local pool, 2 workers", sweep, executor=PoolExecutor(2))
    print(
        f"2 workers vs 1: {one / two:.2f}x faster; tables identical: "
        f"{serial.runs.equals(pooled.runs) and serial.steps.equals(pooled.steps)}"
    )
    print(f"throughput on 2 workers: {len(pooled.runs) / two / 2:.2f} runs/s per core")
    if not args.no_dask:
        from dask.distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)  # fmt: skip
        client = Client(cluster)
        try:
            dask, wall = timed("dask LocalCluster, 2 workers", sweep, client=client)
        finally:
            client.close()
            cluster.close()
        print(
            f"LocalCluster vs pool: {wall / two:.2f}x the pool's time; tables identical: "
            f"{serial.runs.equals(dask.runs) and serial.steps.equals(dask.steps)}"
        )
    anatomy(sweep)


if __name__ == "__main__":
    main()
