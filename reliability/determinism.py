"""Do cxsim's results repeat byte for byte, whatever ran them?

Runs one small comparison (the two shipped scenarios, as ``cxsim run`` writes it) and one small
Sobol' sweep (as ``cxsim sweep`` writes it, with its analysis) on each of: this process, this
process again, a local pool of 2 and of 4 workers, a Dask LocalCluster of 2 one-thread workers
and one of 1 worker running 2 threads. Every file each writes is compared byte for byte with
what the first one wrote:

- tables: ``*.csv``, ``*.parquet``, ``problem.json``, ``analysis.md``;
- charts: ``*.png`` and ``*.svg``;
- ``report.html``, with the three values it copies from the manifest masked (the creation
  time, the wall time and the command);
- ``manifest.json`` is left out: it records when the run was made, how long it took, on which
  executor, with which command and package versions (it is the provenance, not a result).

``--digest FILE`` writes the SHA-256 of every file of the first configuration, with the Python
and package versions; ``--compare A B`` compares two digests (e.g. written under Python 3.11
and 3.12): tables must match; charts and the report also carry the package versions and
matplotlib's rendering, so they are listed but only expected to match between equal versions.

    python reliability/determinism.py [--out DIR] [--digest FILE] [--quick]
    python reliability/determinism.py --compare A.json B.json

Exit status 0 if everything that must match does, 1 if not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = [ROOT / "scenarios" / "reactive.yaml", ROOT / "scenarios" / "proactive.yaml"]
SIZES = {"population.customers": 80, "population.prospects": 300, "time.horizon": 20}
SEED, REPLICATIONS = 7, 4
SWEEP = f"""scenarios: [{SCENARIOS[0]}, {SCENARIOS[1]}]
parameters:
  strategy.detection: {{low: 0.1, high: 0.9}}
  population.customers: {{low: 40, high: 80}}
design: sobol
points: 4
replications: 2
seed: 11
overrides: {{population.customers: 60, population.prospects: 200, time.horizon: 12}}
"""
TABLES = (".csv", ".parquet", ".md", ".json")
CHARTS = (".png", ".svg")
LEFT_OUT = {"manifest.json"}


def kind(name: str) -> str:
    """What a file is ("table", "chart" or "report"), which says where it must match."""
    if name.endswith(CHARTS):
        return "chart"
    if name == "report.html":
        return "report"
    if name.endswith(TABLES):
        return "table"
    raise ValueError(f"{name}: a file this script does not know; say what it is")


def executors(quick: bool):
    """(name, start) of each configuration; ``start()`` returns (executor, close)."""
    from cxsim.executors import DaskExecutor, PoolExecutor, SerialExecutor

    def dask(workers: int, threads: int):
        def start():
            from dask.distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=workers, threads_per_worker=threads,
                                   processes=True, host="127.0.0.1",
                                   dashboard_address=":0")  # fmt: skip
            client = Client(cluster)

            def close():
                client.close()
                cluster.close()

            return DaskExecutor(client), close

        return start

    configs = [
        ("serial", lambda: (SerialExecutor(), None)),
        ("serial again", lambda: (SerialExecutor(), None)),
        ("pool of 2", lambda: (PoolExecutor(2), None)),
        ("pool of 4", lambda: (PoolExecutor(4), None)),
        ("dask, 2 workers", dask(2, 1)),
        ("dask, 1 worker x 2 threads", dask(1, 2)),
    ]
    return configs[::2] if quick else configs


def run_comparison(executor, parent: Path) -> Path:
    """The two shipped scenarios, small, written as ``cxsim run`` writes them."""
    from cxsim.experiment import run_experiment
    from cxsim.loading import apply_overrides, load_scenarios
    from cxsim.results import PARTS, Plan, start, write_experiment

    specs = [
        apply_overrides(s, {**SIZES, "run.seed": SEED, "run.replications": REPLICATIONS})
        for s in load_scenarios([str(p) for p in SCENARIOS], [])
    ]
    plan = Plan([str(p) for p in SCENARIOS], specs, "vector", REPLICATIONS, SEED,
                command=["cxsim", "run", "(reliability/determinism.py)"])  # fmt: skip
    out = start(parent, plan)
    started = time.perf_counter()
    experiment = run_experiment(specs, REPLICATIONS, SEED, parts=out / PARTS, progress=False,
                                executor=executor)  # fmt: skip
    return write_experiment(experiment, out, plan, time.perf_counter() - started, progress=False)


def run_sweep_folder(executor, parent: Path, sweep_file: Path) -> Path:
    """The small sweep, written as ``cxsim sweep`` writes it (tables and analysis)."""
    from cxsim.sweep import load_sweep, run_sweep
    from cxsim.sweep.analysis import write_analysis

    result = run_sweep(load_sweep(sweep_file), out=parent, executor=executor, progress=False)
    write_analysis(result, result.folder)
    return result.folder


def masked(path: Path, manifest: dict) -> bytes:
    """A file's bytes; for report.html, with the creation time, wall time and command it
    copies from the manifest masked."""
    data = path.read_bytes()
    if path.name != "report.html":
        return data
    text = data.decode("utf-8").replace(manifest["created"], "(created)")
    text = re.sub(r"<dt>Wall time</dt><dd>[^<]*</dd>", "<dt>Wall time</dt><dd>(wall)</dd>", text)
    text = re.sub(r'<pre class="command">[^<]*</pre>', '<pre class="command">(command)</pre>',
                  text)  # fmt: skip
    return text.encode("utf-8")


def contents(folder: Path) -> dict[str, bytes]:
    """Every compared file of a results folder, by name (masked as :func:`masked` says)."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    out = {}
    for path in sorted(folder.iterdir()):
        if path.name in LEFT_OUT:
            continue
        kind(path.name)  # every file is accounted for
        out[path.name] = masked(path, manifest)
    return out


def produce(out: Path, quick: bool) -> dict[str, dict[str, dict[str, bytes]]]:
    """{configuration: {"run" or "sweep": {file: bytes}}}."""
    sweep_file = out / "sweep.yaml"
    sweep_file.write_text(SWEEP, encoding="utf-8")
    seen = {}
    for name, start in executors(quick):
        executor, close = start()
        described = executor.describe()
        try:
            began = time.perf_counter()
            place = out / re.sub(r"\W+", "-", name)
            run = run_comparison(executor, place)
            sweep = run_sweep_folder(executor, place, sweep_file)
        finally:
            if close is not None:
                close()
        seen[name] = found = {"run": contents(run), "sweep": contents(sweep)}
        print(f"{name}: {described}, {time.perf_counter() - began:.1f} s, "
              f"{len(found['run'])} + {len(found['sweep'])} files", flush=True)  # fmt: skip
    return seen


def compare(seen: dict) -> bool:
    """Print, per file, whether every configuration wrote the same bytes; True if all did."""
    names = list(seen)
    first = seen[names[0]]
    same = True
    print(f"\nCompared with '{names[0]}' byte for byte ({', '.join(names[1:])}); "
          f"left out: {', '.join(sorted(LEFT_OUT))}")  # fmt: skip
    for part in ("run", "sweep"):
        for file, data in first[part].items():
            differ = [n for n in names[1:] if seen[n][part].get(file) != data]
            missing = [n for n in names[1:] if file not in seen[n][part]]
            same &= not differ
            verdict = "identical" if not differ else f"DIFFERS in {', '.join(differ)}"
            if missing:
                verdict += f" (missing in {', '.join(missing)})"
            print(f"  {part}/{file} [{kind(file)}]: {verdict}")
        extra = {f for n in names[1:] for f in seen[n][part]} - set(first[part])
        for file in sorted(extra):
            same = False
            print(f"  {part}/{file}: DIFFERS (not written by '{names[0]}')")
    return same


def digest(seen: dict) -> dict:
    from cxsim.results import versions

    first = next(iter(seen.values()))
    files = {f"{part}/{file}": hashlib.sha256(data).hexdigest()
             for part, found in first.items() for file, data in found.items()}  # fmt: skip
    return {"versions": versions(), "files": files}


def compare_digests(a_path: Path, b_path: Path) -> bool:
    """Tables must match; charts and the report are listed (they match only on equal versions)."""
    a, b = (json.loads(Path(p).read_text(encoding="utf-8")) for p in (a_path, b_path))
    print(f"A: {a_path} {a['versions']}\nB: {b_path} {b['versions']}")
    ok = True
    for file in sorted(set(a["files"]) | set(b["files"])):
        what = kind(file.split("/", 1)[1])
        equal = a["files"].get(file) == b["files"].get(file)
        if what == "table":
            ok &= equal
        print(f"  {file} [{what}]: {'identical' if equal else 'DIFFERS'}")
    print("tables: " + ("all identical" if ok else "SOME DIFFER"))
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="keep the folders here (default: a temporary one)")
    parser.add_argument("--digest", type=Path, help="write the digest of the tables and charts")
    parser.add_argument("--quick", action="store_true", help="serial, pool of 2 and Dask only")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                        help="compare two digests instead of running")  # fmt: skip
    args = parser.parse_args(argv)
    if args.compare:
        return 0 if compare_digests(*args.compare) else 1
    with tempfile.TemporaryDirectory(prefix="cxsim-determinism-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        seen = produce(out, args.quick)
    same = compare(seen)
    if args.digest:
        args.digest.write_text(json.dumps(digest(seen), indent=2) + "\n", encoding="utf-8")
        print(f"digest: {args.digest}")
    print("everything compared is identical" if same else "SOME FILES DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
