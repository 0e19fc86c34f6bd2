"""Kill ``cxsim run`` and ``cxsim sweep`` at random moments, resume them, compare with a whole run.

Runs a small comparison (two scenarios, a few replications, ``--workers 2``) and a small sweep
once undisturbed, then again and again as child processes in their own session, each time
sending SIGINT to the process group (what Ctrl-C in a terminal does; sometimes twice) or
SIGKILL to the cxsim process alone, at a moment drawn at random: during start-up, after a
random number of finished runs, or while the final files are being written (when the hidden
``.writing`` folder appears, after a random delay). Then it checks:

- the process ended (a hang counts), SIGINT gave status 130 (or death by SIGINT: a second
  Ctrl-C as Python was ending) and a message naming how many runs finished, the folder and the
  exact ``--resume`` command, with no traceback;
- no process of its session is left (pool workers, fork server) after at most ``--linger`` s;
- no half-written file sits under a finished name (a table present before the resume equals
  the whole run's);
- ``--resume`` (itself killed again with probability ``--again``) finishes the folder: the same
  set of files as the whole run, every table (CSV, Parquet, JSON) byte for byte equal, no
  hidden leftovers, and a manifest that lists every session.

With ``--full-disk`` (root: it mounts small tmpfs folders) it first runs both commands on disks
too small for them and checks one line naming the file, status 2, the parts kept, nothing
half-written, and a resume on the grown disk giving the same tables.

Prints counts by command, signal and moment, and every mismatch. Exit status 0 if all passed.

    python reliability/kill.py [--count 100] [--seed 1] [--work DIR] [--keep] [--full-disk]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "population.customers=200", "--set", "population.prospects=500",
         "--set", "time.horizon=26"]  # fmt: skip
SWEEP = f"""name: kill
scenarios: [{ROOT}/scenarios/reactive.yaml, {ROOT}/scenarios/proactive.yaml]
design: grid
parameters:
  strategy.first_contact_resolution: {{low: 0.4, high: 0.8, steps: 2}}
overrides: {{population.customers: 200, population.prospects: 500, time.horizon: 26}}
replications: 2
figures: [profit, annual_churn]
seed: 5
"""
TABLES = (".csv", ".parquet", ".json")
NOT_COMPARED = {"manifest.json", "report.html"}  # they hold times and commands
NOTE = "note:"  # an observation, not a failure


def cxsim(*args: str) -> list[str]:
    return [sys.executable, "-m", "cxsim.cli", *args]


def commands(work: Path) -> dict[str, list[str]]:
    sweep = work / "kill_sweep.yaml"
    sweep.write_text(SWEEP, encoding="utf-8")
    return {
        "run": cxsim(
            "run",
            str(ROOT / "scenarios/reactive.yaml"),
            str(ROOT / "scenarios/proactive.yaml"),
            "-r",
            "3",
            "--workers",
            "2",
            "--out",
            ".",
            *SMALL,
        ),
        "sweep": cxsim("sweep", str(sweep), "--workers", "2", "--out", "."),
    }


def session_processes(sid: int) -> list[int]:
    """Processes of session ``sid`` still alive (zombies are dead: their parent reaps them)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry))
    return found


def only_folder(parent: Path) -> Path | None:
    folders = [p for p in parent.iterdir() if p.is_dir()] if parent.exists() else []
    return folders[0] if len(folders) == 1 else None


def state(folder: Path | None, pid: int, since: float) -> str:
    """Where the cxsim process ``pid`` (started at ``since``, epoch seconds) is: still starting
    (Python importing, the folder not yet taken), running, writing the final files, finished."""
    if folder is None or not folder.exists():
        return "start"
    if not (folder / "plan.json").exists():
        return "finished" if (folder / "manifest.json").exists() else "start"
    try:
        holder = (folder / ".lock").read_text()
        stage = (folder / ".writing").stat().st_mtime if (folder / ".writing").exists() else 0
    except OSError:
        return "start"
    if f"process {pid} " not in holder:
        return "start"  # a resume still starting sees what an earlier session left
    return "writing" if stage >= since else "runs"


def finished_runs(folder: Path | None) -> int:
    parts = folder / "parts" if folder is not None else None
    if parts is None or not parts.exists():
        return 0
    return sum(1 for p in parts.iterdir() if not p.name.startswith("."))


class Trial:
    """One command started, signalled at a chosen moment, and what it left."""

    def __init__(self, argv: list[str], parent: Path, rng: random.Random, linger: float,
                 total_runs: int, write_time: float, span: float):  # fmt: skip
        self.argv, self.parent, self.rng = argv, parent, rng
        self.linger, self.total_runs, self.write_time, self.span = (
            linger,
            total_runs,
            write_time,
            span,
        )

    def go(self, sig: signal.Signals, aim: str, twice: bool) -> dict:
        """Start ``argv``; signal it when ``aim`` is reached; what happened."""
        proc = subprocess.Popen(self.argv, start_new_session=True, cwd=self.parent,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        folder_of = self._folder_finder()
        started = time.monotonic()
        since = time.time() - 0.01

        def where() -> str:
            return state(folder_of(), proc.pid, since)

        # Each aim fires at its moment or as soon as the process has gone past it (the whole
        # run's times, measured under another load, are only a scale).
        if aim == "start":
            target = self.rng.uniform(0, self.span * 0.3)
            while (time.monotonic() - started < target and proc.poll() is None
                   and where() == "start"):  # fmt: skip
                time.sleep(0.005)
        elif aim == "runs":
            want = self.rng.randrange(1, self.total_runs)
            while (proc.poll() is None and finished_runs(folder_of()) < want
                   and where() in ("start", "runs")):  # fmt: skip
                time.sleep(0.005)
        else:  # writing: when the stage appears, after a random part of the writing time
            while proc.poll() is None and where() not in ("writing", "finished"):
                time.sleep(0.005)
            end = time.monotonic() + self.rng.uniform(0, self.write_time)
            while proc.poll() is None and time.monotonic() < end and where() == "writing":
                time.sleep(0.002)
        seen = where() if proc.poll() is None else "exited"
        folder = folder_of()
        listing = sorted(os.listdir(folder)) if folder is not None and folder.exists() else []
        if proc.poll() is None:
            if sig == signal.SIGINT:
                os.killpg(proc.pid, sig)  # as Ctrl-C in a terminal
                if twice:
                    time.sleep(self.rng.uniform(0.05, 0.5))
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, sig)
            else:
                os.kill(proc.pid, sig)  # the cxsim process alone, as the OOM killer would
        signalled = time.monotonic()
        try:
            _, err = proc.communicate(timeout=120)
            hung = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            hung = True
        exit_after = time.monotonic() - signalled
        left = session_processes(proc.pid)
        while left and time.monotonic() - signalled < self.linger:
            time.sleep(0.05)
            left = session_processes(proc.pid)
        lingered = time.monotonic() - signalled
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return {"state": seen, "code": proc.returncode, "err": err.decode(errors="replace"),
                "hung": hung, "exit_after": exit_after, "orphans": left,
                "lingered": lingered if left or lingered > 0.1 else 0.0,
                "folder": folder_of(), "listing": listing}  # fmt: skip

    def _folder_finder(self):
        cache: dict[str, Path] = {}

        def find() -> Path | None:
            if "f" not in cache:
                f = only_folder(self.parent)
                if f is None:
                    return None
                cache["f"] = f
            return cache["f"]

        return find


def reference(argv: list[str], parent: Path) -> tuple[Path, float, float]:
    """The whole run: its folder, how long it took, how long the final writing took."""
    parent.mkdir(parents=True)
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stage_seen = stage_gone = None
    while proc.poll() is None:
        folder = only_folder(parent)
        if folder is not None and (folder / ".writing").exists() and stage_seen is None:
            stage_seen = time.monotonic()
        if (
            stage_seen is not None
            and stage_gone is None
            and folder is not None
            and not (folder / ".writing").exists()
        ):
            stage_gone = time.monotonic()
        time.sleep(0.005)
    err = proc.stderr.read().decode()
    if proc.returncode != 0:
        sys.exit(f"the whole run failed ({proc.returncode}): {err}")
    end = time.monotonic()
    writing = (stage_gone or end) - (stage_seen or end)
    return only_folder(parent), end - started, max(writing, 0.2)


def compare(whole: Path, folder: Path) -> list[str]:
    """What differs between a resumed folder and the whole run's."""
    problems = []
    mine = {p.name for p in folder.iterdir()}
    theirs = {p.name for p in whole.iterdir()}
    if mine != theirs:
        problems.append(f"files differ: extra {sorted(mine - theirs)}, missing "
                        f"{sorted(theirs - mine)}")  # fmt: skip
    for name in sorted(theirs & mine):
        compared = name.endswith(TABLES) and name not in NOT_COMPARED
        if compared and (whole / name).read_bytes() != (folder / name).read_bytes():
            problems.append(f"{name} differs")
    return problems


def half_written(whole: Path, folder: Path | None) -> list[str]:
    """Finished-looking tables in an unfinished folder that are not the whole run's."""
    if folder is None or not folder.exists() or (folder / "manifest.json").exists():
        return []
    return [f"{p.name} present before resume and not whole" for p in folder.iterdir()
            if p.name.endswith(TABLES) and p.name not in NOT_COMPARED | {"plan.json"}
            and not p.name.startswith(".")
            and (not (whole / p.name).exists()
                 or p.read_bytes() != (whole / p.name).read_bytes())]  # fmt: skip


def check_message(kind: str, outcome: dict) -> list[str]:
    """What a SIGINT must print: the runs finished, the folder, the exact resume command."""
    err, folder = outcome["err"], outcome["folder"]
    problems = []
    if outcome["state"] == "start" and outcome["code"] in (-signal.SIGINT, 1):
        # Python still starting, the folder not yet taken: its own KeyboardInterrupt traceback
        # (or none, before its handler is set), exit -2 (1 if it was reading site-packages).
        said = err.strip().splitlines() or ["(nothing printed)"]
        return [f"{NOTE} Ctrl-C while Python was starting: {said[-1][:80]}"]
    if folder is None:
        return problems
    if "Traceback" in err:
        problems.append("traceback: " + err.strip().splitlines()[-1][:120])
    if outcome["code"] == 0 or not (folder / "plan.json").exists():
        return problems  # it finished before the signal landed (-2: while Python was ending)
    if outcome["code"] not in (130, -signal.SIGINT):  # -2: a second Ctrl-C as Python ended
        problems.append(f"exit status {outcome['code']} after SIGINT (expected 130); the "
                        f"folder held {outcome['listing']} when it was sent")  # fmt: skip
    if (folder / "plan.json").exists():
        given = [f"cxsim {kind} --resume {f}" for f in (folder, folder.name)]
        wanted = given[0]
        if not any(g in err for g in given):
            problems.append(f"SIGINT message lacks '{wanted}': {err.strip()[-200:]!r}")
        if (
            " runs finished" not in err
            and "while writing" not in err
            and ("stopped at once" not in err)
        ):
            problems.append(f"SIGINT message does not say what finished: {err.strip()[-200:]!r}")
    return problems


def resume(kind: str, folder: Path, rng: random.Random, again: float, args, whole_span: float,
           write_time: float, total: int, tally: Counter) -> tuple[list[str], int]:  # fmt: skip
    """Resume until finished (each resume killed again with probability ``again``)."""
    problems, sessions = [], 0
    for _ in range(5):
        if (folder / "manifest.json").exists() and not (folder / "plan.json").exists():
            return problems, sessions
        argv = cxsim(kind, "--resume", str(folder), "--workers", "2")
        if rng.random() < again:
            sig = rng.choice([signal.SIGINT, signal.SIGKILL])
            aim = rng.choice(["start", "runs", "writing"])
            trial = Trial(argv, folder.parent, rng, args.linger, total, write_time, whole_span)
            outcome = trial.go(sig, aim, twice=False)
            outcome["folder"] = folder
            sessions += 1
            tally[(kind, f"{sig.name} (resume)", outcome["state"])] += 1
            problems += check_outcome(kind, sig, outcome)
            continue
        done = subprocess.run(argv, cwd=folder.parent, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        sessions += 1
        if done.returncode != 0:
            problems.append(f"resume exit {done.returncode}: {done.stderr.strip()[-300:]}")
            return problems, sessions
    if not (folder / "manifest.json").exists():
        problems.append("not finished after 5 resumes")
    return problems, sessions


def check_outcome(kind: str, sig: signal.Signals, outcome: dict) -> list[str]:
    problems = []
    if outcome["hung"]:
        problems.append(f"hung: no exit 120 s after {sig.name}")
    if outcome["orphans"]:
        problems.append(f"orphans after {outcome['lingered']:.1f} s: {outcome['orphans']}")
    if sig == signal.SIGINT:
        problems += check_message(kind, outcome)
    return problems


def check_sessions(folder: Path, ran: int) -> list[str]:
    """The manifest lists the sessions that reached the folder (a process killed while Python
    was still starting never did): the last completed, the others stopped, wall times summed."""
    manifest = json.loads((folder / "manifest.json").read_text())
    logged = manifest.get("sessions", [])
    problems = []
    if not 1 <= len(logged) <= ran:
        problems.append(f"manifest lists {len(logged)} session(s), {ran} ran")
    elif logged[-1]["outcome"] != "completed" or any(
        s["outcome"] not in ("interrupted", "killed") for s in logged[:-1]
    ):
        problems.append(f"session outcomes {[s['outcome'] for s in logged]}")
    total = round(sum(s["wall_seconds"] for s in logged), 3)
    if abs(total - manifest["wall_seconds"]) > 0.01:
        problems.append(f"wall_seconds {manifest['wall_seconds']} is not the sessions' {total}")
    return problems


def full_disk(kind: str, argv: list[str], whole: Path, work: Path) -> list[str]:
    """Run ``argv`` on small tmpfs mounts (root only) so that the disk fills while parts are
    saved or while the final files are written: one line naming the file, status 2, what was
    written kept and nothing half-written; after growing the disk, --resume gives the whole
    run's tables."""
    mount = work / f"tiny-{kind}"
    mount.mkdir()
    problems = []
    for size in ("150k", "400k", "800k", "1500k"):
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                       check=True)  # fmt: skip
        try:
            done = subprocess.run(argv, cwd=mount, capture_output=True, text=True, timeout=600)
            lines = done.stderr.strip().splitlines()
            folder = only_folder(mount)
            if done.returncode == 0:
                print(f"full disk, {kind}, {size}: everything fitted", flush=True)
                continue
            said = lines[-1] if lines else ""
            print(f"full disk, {kind}, {size}: exit {done.returncode}: {said}", flush=True)
            if done.returncode != 2 or len(lines) != 1 or "Traceback" in done.stderr:
                problems.append(f"{size}: exit {done.returncode}, stderr {done.stderr[-300:]!r}")
            if "No space left on device" not in said or "--resume" not in said:
                problems.append(f"{size}: message {said!r}")
            problems += [f"{size}: {p}" for p in half_written(whole, folder)]
            if folder is None or not (folder / "plan.json").exists():
                problems.append(f"{size}: nothing left to resume")
                continue
            subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
            again = subprocess.run(cxsim(kind, "--resume", str(folder), "--workers", "2"),
                                   cwd=mount, capture_output=True, text=True)  # fmt: skip
            if again.returncode != 0:
                problems.append(f"{size}: resume exit {again.returncode}: {again.stderr[-300:]}")
            else:
                problems += [f"{size}: {p}" for p in compare(whole, folder)]
        finally:
            subprocess.run(["umount", str(mount)], check=True)
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--count", type=int, default=100, help="kills of a first session")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", type=Path, help="folder for the runs (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the folders")
    p.add_argument("--again", type=float, default=0.25,
                   help="chance that a resume is killed too (default 0.25)")  # fmt: skip
    p.add_argument("--linger", type=float, default=30.0,
                   help="seconds a process may outlive a kill (default 30)")  # fmt: skip
    p.add_argument("--full-disk", action="store_true",
                   help="also fill small tmpfs mounts (needs root)")  # fmt: skip
    args = p.parse_args(argv)
    # Children inherit an ignored SIGINT (this script started in the background with &, nohup):
    # let them hear Ctrl-C as from a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="cxsim-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    cmds = commands(work)
    wholes = {}
    for kind, argv_ in cmds.items():
        folder, span, write_time = reference(argv_, work / f"whole-{kind}")
        runs = len(json.loads((folder / "manifest.json").read_text())["seeds"])
        total = runs * 2 if kind == "run" else json.loads(
            (folder / "manifest.json").read_text())["runs"]  # fmt: skip
        wholes[kind] = (folder, span, write_time, total)
        print(f"whole {kind}: {span:.1f} s, final writing {write_time:.2f} s, {total} runs, "
              f"{folder}", flush=True)  # fmt: skip
    tally: Counter = Counter()
    failures: list[str] = []
    notes: list[str] = []
    if args.full_disk:
        for kind, (whole, *_) in wholes.items():
            failures += [f"full disk, {kind}: {p}" for p in full_disk(kind, cmds[kind], whole,
                                                                      work)]  # fmt: skip
    lingers: list[float] = []
    exits: dict[str, list[float]] = {"SIGINT": [], "SIGKILL": []}
    started = time.monotonic()
    for i in range(args.count):
        kind = rng.choice(sorted(cmds))
        sig = rng.choice([signal.SIGINT, signal.SIGKILL])
        aim = rng.choice(["start", "runs", "writing"])
        twice = sig == signal.SIGINT and rng.random() < 0.25
        whole, span, write_time, total = wholes[kind]
        parent = work / f"trial-{i:04d}"
        parent.mkdir()
        trial = Trial(cmds[kind], parent, rng, args.linger, total, write_time, span)
        outcome = trial.go(sig, aim, twice)
        label = sig.name + (" x2" if twice else "")
        tally[(kind, label, outcome["state"])] += 1
        exits[sig.name].append(outcome["exit_after"])
        lingers.append(outcome["lingered"])
        problems = check_outcome(kind, sig, outcome)
        folder = outcome["folder"]
        problems += half_written(whole, folder)
        sessions = 1
        if folder is not None and ((folder / "plan.json").exists() or
                                   (folder / "manifest.json").exists()):  # fmt: skip
            more, n = resume(kind, folder, rng, args.again, args, span, write_time, total, tally)
            problems += more
            sessions += n
            if (folder / "manifest.json").exists():
                problems += compare(whole, folder)
                problems += check_sessions(folder, sessions)
        elif folder is not None and any(folder.iterdir()):
            problems.append(f"folder without a plan or manifest: {sorted(os.listdir(folder))}")
        status = "FAIL" if any(not p.startswith(NOTE) for p in problems) else "ok"
        if status == "FAIL":
            (parent / "stderr.txt").write_text(outcome["err"], encoding="utf-8")
        print(f"{i + 1:4d} {kind:5s} {label:10s} aimed {aim:7s} hit {outcome['state']:8s} "
              f"exit {outcome['code']!s:>4} after {outcome['exit_after']:.2f} s, "
              f"sessions {sessions}: {status}", flush=True)  # fmt: skip
        for problem in problems:
            print(f"       {problem}", flush=True)
            where = f"trial {i + 1} ({kind}, {label}, {outcome['state']}): {problem}"
            (notes if problem.startswith(NOTE) else failures).append(where)
        if status == "ok" and not args.keep:
            shutil.rmtree(parent, ignore_errors=True)
    print(f"\n{args.count} first kills (seed {args.seed}) in {time.monotonic() - started:.0f} s;"
          " kills by command, signal and moment hit:")  # fmt: skip
    for (kind, label, where), n in sorted(tally.items()):
        print(f"  {kind:5s} {label:18s} {where:8s} {n}")
    for name, values in exits.items():
        if values:
            print(f"{name}: exit after the signal: median {sorted(values)[len(values) // 2]:.2f} s,"
                  f" max {max(values):.2f} s ({len(values)} kills)")  # fmt: skip
    print(f"processes of the session gone after: max {max(lingers, default=0):.2f} s")
    print(f"notes: {len(notes)}")
    for n in notes:
        print(f"  {n}")
    print(f"failures: {len(failures)}")
    for f in failures:
        print(f"  {f}")
    if not args.keep and not failures and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
