"""Kill worker processes under a running ``cxsim sweep`` and check it still gives the same tables.

Runs one sweep undisturbed (``--workers 1``), then again as a child ``cxsim sweep`` process:

- on a local pool (``--workers 2``), killing one of its pool workers with SIGKILL (``--kills``
  times, each once more parts are finished);
- on a Dask LocalCluster of 2 workers on loopback (``--scheduler tcp://127.0.0.1:...``),
  killing one worker process (its pid from ``client.run(os.getpid)``) the same way; its nanny
  starts a new one.

Each disturbed sweep must exit 0, write tables byte-identical to the undisturbed ones
(``runs.parquet``, ``steps.parquet``, ``points.csv``, ``design.csv``, ``problem.json``), say on
stderr that workers died and record them in its manifest's ``worker_deaths``.

    python reliability/kill_workers.py [--kills 2] [--out DIR]

Exit status 0 if every check passed, 1 if not.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("runs.parquet", "steps.parquet", "points.csv", "design.csv", "problem.json")
SCENARIOS = [ROOT / "scenarios" / "reactive.yaml", ROOT / "scenarios" / "proactive.yaml"]
SWEEP = f"""scenarios: [{SCENARIOS[0]}, {SCENARIOS[1]}]
parameters:
  strategy.detection: {{low: 0.1, high: 0.9}}
  strategy.first_contact_resolution: {{low: 0.3, high: 0.8}}
design: lhs
points: 24
replications: 2
seed: 5
overrides: {{population.customers: 150, population.prospects: 400, time.horizon: 40}}
"""
RUNS = 24 * 2 * 2


def cxsim(*args: str) -> list[str]:
    return [sys.executable, "-m", "cxsim.cli", *args]


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def pool_workers(pid: int) -> list[int]:
    """The pool workers of a cxsim process: children of its fork server, a child of it."""
    return sorted(w for server in children(pid) for w in children(server))


def finished(parent: Path) -> int:
    return len(list(parent.glob("sweep-*/parts/p*")))


def disturbed(command: list[str], parent: Path, kills: int, victims) -> tuple[int, str, list]:
    """Run ``command``; each time another RUNS / (kills + 1) parts are finished, kill one of
    ``victims(child pid)`` with SIGKILL. Returns (exit status, stderr, pids killed)."""
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    killed = []
    for k in range(kills):
        while child.poll() is None and finished(parent) < (k + 1) * RUNS // (kills + 1):
            time.sleep(0.05)
        pids = victims(child.pid)
        if child.poll() is None and pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
    _, err = child.communicate(timeout=900)
    return child.returncode, err, killed


def check(name: str, parent: Path, reference: Path, status: int, err: str, killed: list) -> bool:
    """Print what happened and whether the sweep finished identical and said so."""
    print(f"\n{name}: killed {len(killed)} worker process(es) {killed}; exit status {status}")
    lines = [line for line in err.splitlines() if line.startswith("cxsim:")]
    print("  stderr: " + (" | ".join(lines) or "(no cxsim line)"))
    if status != 0:
        print(err[-2000:])
        return False
    (folder,) = parent.glob("sweep-*")
    same = {t: (folder / t).read_bytes() == (reference / t).read_bytes() for t in TABLES}
    deaths = json.loads((folder / "manifest.json").read_text())["worker_deaths"]
    again = sum(len(d["runs_again"]) for d in deaths)
    print(f"  manifest worker_deaths: {len(deaths)} record(s), {again} run(s) run again: "
          f"{[(d['worker'], d['how']) for d in deaths]}")  # fmt: skip
    print("  tables: " + ", ".join(f"{t} {'identical' if s else 'DIFFERS'}" for t, s in
                                   same.items()))  # fmt: skip
    ok = all(same.values()) and len(deaths) >= len(killed) > 0 and any("died" in x for x in lines)
    print(f"  {'PASS' if ok else 'FAIL'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=2, help="workers to kill per sweep")
    parser.add_argument("--out", type=Path, help="keep the folders here (default: temporary)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cxsim-kill-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        sweep = out / "sweep.yaml"
        sweep.write_text(SWEEP, encoding="utf-8")
        started = time.perf_counter()
        subprocess.run(cxsim("sweep", str(sweep), "--workers", "1", "--out", str(out / "calm")),
                       check=True, capture_output=True)  # fmt: skip
        (reference,) = (out / "calm").glob("sweep-*")
        print(f"undisturbed: {RUNS} runs, serial, {time.perf_counter() - started:.1f} s")

        parent = out / "pool"
        command = cxsim("sweep", str(sweep), "--workers", "2", "--out", str(parent))
        ok = check("local pool of 2", parent, reference,
                   *disturbed(command, parent, args.kills, pool_workers))  # fmt: skip

        from dask.distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=":0") as cluster, \
                Client(cluster) as client:  # fmt: skip
            parent = out / "dask"
            command = cxsim("sweep", str(sweep), "--scheduler", cluster.scheduler_address,
                            "--out", str(parent))  # fmt: skip

            def dask_workers(_):
                return sorted(client.run(os.getpid).values())

            ok &= check("dask LocalCluster of 2", parent, reference,
                        *disturbed(command, parent, args.kills, dask_workers))  # fmt: skip
    print("\nall passed" if ok else "\nSOME FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
