"""Kills, Ctrl-C, a full disk and two commands on one folder: nothing is lost or half-written,
no process is left behind, and --resume gives the tables of an undisturbed run byte for byte.

(``reliability/kill.py`` does the same at random moments, many times over.)
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.figure
import pytest

from cxsim import parts
from cxsim.cli import main
from cxsim.workfolder import Session, ask_to_stop
from reliability.kill import session_processes

from .conftest import ROOT, only_folder

SMALL = ["--set", "population.customers=60", "--set", "population.prospects=140",
         "--set", "time.horizon=12"]  # fmt: skip
RUN = ["run", str(ROOT / "scenarios/reactive.yaml"), str(ROOT / "scenarios/proactive.yaml"),
       "-r", "2", *SMALL]  # fmt: skip
SWEEP = f"""scenarios: [{ROOT}/scenarios/reactive.yaml, {ROOT}/scenarios/proactive.yaml]
parameters:
  strategy.detection: [0.2, 0.6]
replications: 2
seed: 3
overrides: {{population.customers: 60, population.prospects: 140, time.horizon: 12}}
"""
TABLES = (".csv", ".parquet", ".json")


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """The comparison run undisturbed."""
    parent = tmp_path_factory.mktemp("whole")
    assert main([*RUN, "--workers", "1", "--out", str(parent)]) == 0
    return only_folder(parent)


def _same_tables(whole: Path, folder: Path) -> None:
    """The same files, and every table equal byte for byte (the manifest holds times)."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in whole.iterdir())
    for p in whole.iterdir():
        if p.suffix in TABLES and p.name != "manifest.json":
            assert (folder / p.name).read_bytes() == p.read_bytes(), p.name


def _hears_ctrl_c() -> None:
    """In the child: SIGINT as in a terminal, even if pytest runs with it ignored or blocked."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cxsim.cli", *args], cwd=cwd,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=_hears_ctrl_c)  # fmt: skip


def _wait(proc: subprocess.Popen, ready) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None, f"ended before it could be stopped: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "nothing happened in 120 s"
        time.sleep(0.01)


def _wait_for_folder(proc: subprocess.Popen, parent: Path) -> Path:
    _wait(proc, lambda: any(p.is_dir() for p in parent.iterdir()))
    return only_folder(parent)


def _wait_for_parts(proc: subprocess.Popen, parts: Path, n: int) -> None:
    _wait(proc, lambda: parts.exists() and sum(p.name[0] != "." for p in parts.iterdir()) >= n)


def _no_process_left(sid: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while session_processes(sid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = session_processes(sid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes outlived the cxsim that started them: {left}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_during_the_runs_leaves_no_process_and_resume_gives_the_same_tables(
    tmp_path, whole
):
    proc = _start([*RUN, "--workers", "2", "--out", str(tmp_path)], tmp_path)
    folder = _wait_for_folder(proc, tmp_path)
    _wait_for_parts(proc, folder / "parts", 1)
    os.kill(proc.pid, signal.SIGKILL)  # the cxsim process alone: its pool must follow it
    proc.communicate(timeout=60)
    _no_process_left(proc.pid)
    assert (folder / "plan.json").exists() and not (folder / "manifest.json").exists()

    assert main(["run", "--resume", str(folder), "--workers", "1"]) == 0
    _same_tables(whole, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [s["outcome"] for s in manifest["sessions"]] == ["killed", "completed"]
    assert manifest["wall_seconds"] == pytest.approx(
        sum(s["wall_seconds"] for s in manifest["sessions"]), abs=0.01
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_in_a_sweep_says_what_finished_and_resume_completes_it(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP, encoding="utf-8")
    assert main(["sweep", str(sweep), "--workers", "1", "--out", str(tmp_path / "whole")]) == 0
    whole = only_folder(tmp_path / "whole")
    cut = tmp_path / "cut"
    cut.mkdir()
    proc = _start(["sweep", str(sweep), "--workers", "2", "--out", "."], cut)
    folder = _wait_for_folder(proc, cut)
    _wait_for_parts(proc, folder / "parts", 1)
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in a terminal: every process of the group
    stopped = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - stopped < 20  # it does not wait for the queued runs
    _no_process_left(proc.pid)
    assert proc.returncode == 130 and "Traceback" not in err, err
    done = len([p for p in (folder / "parts").iterdir() if p.name[0] != "."])
    assert f"{done} of 8 runs finished and are kept in {folder.name}" in err
    assert f"to finish, run: cxsim sweep --resume {folder.name}" in err

    assert main(["sweep", "--resume", str(folder), "--workers", "1"]) == 0
    _same_tables(whole, folder)
    sessions = json.loads((folder / "manifest.json").read_text())["sessions"]
    assert [s["outcome"] for s in sessions] == ["interrupted", "completed"]


def _failing_savefig(monkeypatch, error: BaseException, after: int = 2) -> None:
    """savefig writes half a file on its ``after``-th call, then raises ``error``."""
    real, calls = matplotlib.figure.Figure.savefig, []

    def savefig(self, fname, *args, **kwargs):
        calls.append(fname)
        if len(calls) == after:
            Path(fname).write_bytes(b"\x89PNG\r\n\x1a\n half")
            raise error
        return real(self, fname, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)


def _unfinished(folder: Path) -> None:
    """The plan and the four parts kept, and no finished-looking file, whole or half."""
    assert set(os.listdir(folder)) == {"plan.json", "parts", ".lock", ".sessions.json"}
    assert len(list((folder / "parts").iterdir())) == 4


def test_ctrl_c_while_writing_keeps_the_runs_a_second_command_is_refused_resume_completes(
    tmp_path, whole, monkeypatch, capsys
):
    _failing_savefig(monkeypatch, KeyboardInterrupt())
    assert main([*RUN, "--workers", "1", "--out", str(tmp_path)]) == 130
    folder = only_folder(tmp_path)
    err = capsys.readouterr().err
    assert "while writing the results; all 4 runs are kept" in err
    assert f"cxsim run --resume {folder}" in err
    _unfinished(folder)
    monkeypatch.undo()
    with Session(folder):  # another cxsim working in it: a second one is refused at once
        assert main(["run", "--resume", str(folder)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"cxsim: error: {folder}: in use by cxsim process {os.getpid()}")
        _unfinished(folder)
    # What a writer killed with SIGKILL leaves: a half-written stage and a half-written part.
    (folder / ".writing").mkdir()
    (folder / ".writing" / "summary.csv").write_text("scenario,repl")
    (folder / "parts" / ".tmp-s000-r00000-99999").mkdir()
    assert main(["run", "--resume", str(folder), "--workers", "1"]) == 0
    _same_tables(whole, folder)  # and no lock, session log, stage or part left
    sessions = json.loads((folder / "manifest.json").read_text())["sessions"]
    # The run, the session this test held, the resume; the refused command never got in.
    assert [s["outcome"] for s in sessions] == ["interrupted", "completed", "completed"]


def test_a_full_disk_gives_one_line_and_keeps_what_was_written(tmp_path, monkeypatch, capsys):
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    _failing_savefig(monkeypatch, full, after=3)
    assert main([*RUN, "--workers", "1", "--out", str(tmp_path)]) == 2
    folder = only_folder(tmp_path)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"cxsim: error: {folder}/churn_by_cause.png: cannot be written (No space left on "
        f"device); the finished runs are kept: to write the results, run: cxsim run --resume "
        f"{folder}"
    )
    _unfinished(folder)
    monkeypatch.undo()

    # The disk fills while the runs are saved: the parts saved so far stay, none half-written.
    real, saved = parts.write_parquet, []

    def write_parquet(frame, path):
        if ".tmp-s" in str(path) and len(saved) == 3 * 2:  # two parts of three tables each
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        saved.append(path)
        return real(frame, path)

    monkeypatch.setattr(parts, "write_parquet", write_parquet)
    assert main([*RUN, "--workers", "1", "--out", str(tmp_path / "runs")]) == 2
    cut = only_folder(tmp_path / "runs")
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "No space left on device" in line and f"cxsim run --resume {cut}" in line
    assert sorted(p.name for p in (cut / "parts").iterdir()) == ["s000-r00000", "s000-r00001"]


def test_a_second_ctrl_c_ends_at_once_with_the_resume_command(tmp_path):
    stops_twice = (
        "import os, signal, time\n"
        "from pathlib import Path\n"
        "from cxsim.cli import _second_interrupt_exits\n"
        "with _second_interrupt_exits(Path('F'), 'cxsim run --resume F'):\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(30)\n"
        "    except KeyboardInterrupt:  # the first: the clean-up that follows is slow\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(30)\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", stops_twice], capture_output=True, text=True,
                          timeout=60, preexec_fn=_hears_ctrl_c)  # fmt: skip
    assert done.returncode == 130 and time.monotonic() - started < 30
    assert done.stderr.strip() == (
        "cxsim: stopped at once. The finished runs are kept in F; to finish, run: cxsim run "
        "--resume F"
    )


def test_a_ctrl_c_that_python_swallowed_still_stops_the_run(tmp_path, capsys):
    # The handler's KeyboardInterrupt can land in a weakref callback, where Python prints
    # "Exception ignored" and goes on; the next part to save raises it again.
    ask_to_stop()
    try:
        code = main([*RUN, "--workers", "1", "--out", str(tmp_path)])
    finally:
        ask_to_stop(False)
    assert code == 130 and "0 of 4 runs finished" in capsys.readouterr().err
    assert set(os.listdir(only_folder(tmp_path) / "parts")) == set()


def test_ctrl_c_before_a_resume_begins_names_the_folder_and_the_command(
    tmp_path, monkeypatch, capsys
):
    """Ctrl-C while a resume still reads its plan: the folder keeps its runs, and says so."""
    from cxsim.results import Plan

    folder = tmp_path / "half"
    (folder / "parts" / "s000-r00000").mkdir(parents=True)

    def interrupted(cls, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(Plan, "load", classmethod(interrupted))
    assert main(["run", "--resume", str(folder), "--workers", "1"]) == 130
    err = capsys.readouterr().err.strip()
    assert "1 runs finished and are kept in" in err
    assert err.endswith(f"cxsim run --resume {folder}")


# Ctrl-C while the garbage collector runs a weakref callback (it does so anywhere: in pandas,
# matplotlib...): Python swallows the KeyboardInterrupt and would print "Exception ignored"
# and a traceback. Here the callback comes while the final files are written.
CTRL_C_IN_A_CALLBACK = """
import os, signal, sys, weakref
import pandas as pd
from cxsim import parts
from cxsim.cli import main

real, refs = pd.DataFrame.to_csv, []

class Litter:
    pass

def collected(ref):
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):  # the handler's KeyboardInterrupt comes in here
        pass

def to_csv(self, path, *args, **kwargs):
    if not refs and ".writing" in str(path):
        litter = Litter()
        refs.append(weakref.ref(litter, collected))
        del litter  # collected now: the callback runs
    return real(self, path, *args, **kwargs)

pd.DataFrame.to_csv = to_csv
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("kind", ["run", "sweep"])
def test_ctrl_c_swallowed_by_a_callback_while_writing_stops_without_a_traceback(tmp_path, kind):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP, encoding="utf-8")
    args = [*RUN] if kind == "run" else ["sweep", str(sweep)]
    done = subprocess.run([sys.executable, "-c", CTRL_C_IN_A_CALLBACK, *args, "--workers", "1",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120, preexec_fn=_hears_ctrl_c)  # fmt: skip
    folder = only_folder(tmp_path / "out")
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    kept = {"run": "while writing the results; all 4 runs are kept in",
            "sweep": "8 of 8 runs finished and are kept in"}[kind]  # fmt: skip
    assert f"{kept} {folder}" in done.stderr
    assert done.stderr.strip().endswith(f"cxsim {kind} --resume {folder}")
    assert not (folder / "manifest.json").exists() and not (folder / ".writing").exists()
    assert main([kind, "--resume", str(folder), "--workers", "1"]) == 0
    assert (folder / "manifest.json").exists() and not (folder / "plan.json").exists()
