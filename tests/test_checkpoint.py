"""A run's saved state (cxsim.checkpoint): a run that goes on from it ends exactly as one never
stopped, everything stepping changes is saved, a state that is not the run's is not used, and a
``cxsim run`` killed mid-run is resumed from the step it had saved."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cxsim import checkpoint
from cxsim.cli import main
from cxsim.engines import ENGINES
from cxsim.executors import stop_in_hand, wind_up_asked, winds_up
from cxsim.loading import load_scenario
from cxsim.parts import made_from

from .conftest import ROOT, only_folder
from .test_kill import _hears_ctrl_c, _no_process_left, _start, _wait, _wait_for_folder

SMALL = {"population.customers": 300, "population.prospects": 1200, "time.horizon": 30}
CASES = [
    ("reactive", {}),  # Watts-Strogatz, win-backs
    ("proactive", {"network.kind": "well_mixed", "strategy.start": 9}),
    ("proactive", {"network.kind": "barabasi_albert", "time.step": "month", "time.horizon": 10}),
    ("telecom", {"network.kind": "erdos_renyi"}),
]


def _model(name: str, overrides: dict, seed: int = 4):
    spec = load_scenario(ROOT / "scenarios" / f"{name}.yaml", {**SMALL, **overrides})
    return ENGINES["vector"](spec, rng=seed)


def _saved_after(steps: int, tmp_path, name: str, overrides: dict) -> checkpoint.Saving:
    """A model stepped ``steps`` times and saved; where and what it was made from."""
    model = _model(name, overrides)
    for _ in range(steps):
        model.step()
    saving = checkpoint.Saving(tmp_path / "state.npz", 1.0, made_from(model.spec, 4, "vector"))
    checkpoint.save(model, saving)
    return saving


def _same_run(a, b) -> None:
    assert a.metrics_frame().equals(b.metrics_frame())
    assert a.customer_table().equals(b.customer_table())
    assert a.losses().equals(b.losses())


@pytest.mark.parametrize(("name", "overrides"), CASES)
@pytest.mark.parametrize("stop", [1, 7])
def test_a_run_that_goes_on_from_its_saved_state_ends_as_one_never_stopped(
    name, overrides, stop, tmp_path
):
    whole = _model(name, overrides).run()
    saving = _saved_after(stop, tmp_path, name, overrides)
    again = _model(name, overrides)  # built anew: traits and network from the seed
    assert checkpoint.restore(again, saving) == stop
    again.run()
    _same_run(whole, again)


def test_everything_stepping_changes_is_saved():
    """Compares each attribute before and after some steps: any that changed must be in the
    engine's ``dynamic`` list, or be one of the things the checkpoint saves or rebuilds apart,
    or Mesa 3.4+'s event clock, which the models do not use."""
    apart = {"steps", "rng", "random", "datacollector", "levers", "schedule", "step",
             "_user_step"}  # fmt: skip
    apart |= {"time", "_time", "_event_list", "_default_schedule", "_event_generators",
              "_scenario"}  # fmt: skip
    for name, overrides in CASES:
        model = _model(name, overrides)
        before = {k: pickle.dumps(v) for k, v in vars(model).items() if k not in apart}
        for _ in range(5):
            model.step()
        changed = {k for k, v in vars(model).items()
                   if k not in apart and pickle.dumps(v) != before.get(k)}  # fmt: skip
        assert changed <= set(model.dynamic), changed - set(model.dynamic)


def test_a_state_made_from_another_run_or_damaged_is_not_used(tmp_path):
    saving = _saved_after(3, tmp_path, "reactive", {})
    for other in ({**saving.made_from, "seed": 5}, {**saving.made_from, "engine": "agents"}):
        fresh = _model("reactive", {})
        assert checkpoint.restore(fresh, checkpoint.Saving(saving.path, 1.0, other)) == 0
        assert fresh.steps == 0 and fresh.now == 0
    saving.path.write_bytes(saving.path.read_bytes()[:5000])  # cut short
    fresh = _model("reactive", {})
    assert checkpoint.restore(fresh, saving) == 0 and fresh.now == 0
    _same_run(fresh.run(), _model("reactive", {}).run())


def test_the_state_holds_data_only(tmp_path):
    saving = _saved_after(4, tmp_path, "proactive", {})
    with np.load(saving.path, allow_pickle=False) as npz:  # raises if anything needs pickle
        state = json.loads(npz["__state__"].tobytes())
        assert {npz[k].dtype.kind for k in npz.files} <= set("biuf")
    assert state["step"] == 4 and state["made_from"] == saving.made_from


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(checkpoint.VARIABLE, raising=False)
    assert checkpoint.interval() == checkpoint.EVERY
    monkeypatch.setenv(checkpoint.VARIABLE, "2.5")
    assert checkpoint.interval() == 2.5
    for wrong in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(checkpoint.VARIABLE, wrong)
        with pytest.raises(checkpoint.CheckpointError, match=checkpoint.VARIABLE):
            checkpoint.interval()


def test_cxsim_run_refuses_a_wrong_interval(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(checkpoint.VARIABLE, "every minute")
    assert main(["run", str(ROOT / "scenarios/reactive.yaml"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert checkpoint.VARIABLE in err and "'every minute'" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


BIG = ["--set", "population.customers=20000", "--set", "population.prospects=80000"]


def _stopped_once_saved(args: list[str], tmp_path, how: signal.Signals):
    """Start ``cxsim run ARGS`` in its own session, send ``how`` to it all once the first
    run's state is on disk: (folder, that state's path, the step it held then, stderr)."""
    parent = tmp_path / "stopped"
    parent.mkdir()
    proc = _start([*args, "--out", str(parent)], tmp_path)
    folder = _wait_for_folder(proc, parent)
    state = folder / "parts" / checkpoint.state_name("s000-r00000")
    _wait(proc, state.exists)
    step = _saved_step(state)
    os.killpg(proc.pid, how)
    _, err = proc.communicate(timeout=120)
    _no_process_left(proc.pid)
    assert proc.returncode == (130 if how is signal.SIGINT else -how)
    assert not (folder / "manifest.json").exists()
    return folder, state, step, err


def _saved_step(path) -> int:
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(npz["__state__"].tobytes())["step"]


def _same_tables_as_a_run_never_stopped(args: list[str], folder, tmp_path, monkeypatch):
    monkeypatch.setenv(checkpoint.VARIABLE, "0")  # never saved: the run from start to end
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    whole = only_folder(tmp_path / "whole")
    for p in whole.iterdir():
        if p.suffix in (".csv", ".parquet"):
            assert (folder / p.name).read_bytes() == p.read_bytes(), p.name


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_run_is_resumed_from_its_saved_state_with_the_same_tables(
    tmp_path, monkeypatch, capsys
):
    """A market large enough for a run to take seconds, its state saved every 0.1 s: killed
    once the state is on disk, then resumed: it goes on from that step, and every table equals
    an undisturbed run's byte for byte."""
    args = ["run", str(ROOT / "scenarios/reactive.yaml"), *BIG, "--set", "time.horizon=300",
            "-r", "1", "--workers", "1"]  # fmt: skip
    monkeypatch.setenv(checkpoint.VARIABLE, "0.1")
    folder, state, _, _ = _stopped_once_saved(args, tmp_path, signal.SIGKILL)
    assert checkpoint.saved(folder / "parts") == 1

    assert main(["run", "--resume", str(folder)]) == 0
    err = capsys.readouterr().err
    assert "cxsim: 1 run went on from a saved state: reactive replication 0 from step" in err
    manifest = json.loads((folder / "manifest.json").read_text())
    (continued,) = manifest["continued_runs"]
    assert 0 < continued["from_step"] < 300
    assert not (folder / "parts").exists()  # the state went with the parts
    _same_tables_as_a_run_never_stopped(args, folder, tmp_path, monkeypatch)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_has_the_runs_in_hand_save_their_state_and_resume_goes_on_from_it(
    tmp_path, monkeypatch, capsys
):
    """Two pool runs saving every 0.5 s: Ctrl-C just after the first save asks them to wind
    up; each saves the step it has reached, later than that save, and the resume goes on from
    there to the tables of an undisturbed run."""
    args = ["run", str(ROOT / "scenarios/reactive.yaml"), *BIG, "--set", "time.horizon=600",
            "-r", "2", "--workers", "2"]  # fmt: skip
    monkeypatch.setenv(checkpoint.VARIABLE, "0.5")
    folder, state, periodic, err = _stopped_once_saved(args, tmp_path, signal.SIGINT)
    assert "Traceback" not in err
    assert "0 of 2 runs finished and are kept in" in err
    assert "(2 more saved their state as they went, and go on from it)" in err
    wound_up = _saved_step(state)
    assert periodic < wound_up < 600

    monkeypatch.setenv(checkpoint.VARIABLE, "0")
    assert main(["run", "--resume", str(folder)]) == 0
    err = capsys.readouterr().err
    assert f"2 runs went on from a saved state: reactive replication 0 from step {wound_up}" in err
    _same_tables_as_a_run_never_stopped(args, folder, tmp_path, monkeypatch)


# A serial run (one worker, or one run): its steps are made in the cxsim process itself, which
# hears Ctrl-C. The script stops it from inside a chosen step, as Ctrl-C in a terminal does (to
# the whole process group), so the step is known exactly, under any load: STOP_AT counts the
# steps of every run made; THEN: "" the step goes on at once, "slow" it then takes a minute,
# "again" Ctrl-C comes a second time half a second later; HOST: a host program's own SIGINT
# handler, which cxsim must leave alone.
CTRL_C_IN_A_STEP = """
import os, signal, sys, time
from cxsim.cli import main
from cxsim.engines import ENGINES

engine, made = ENGINES["vector"], [0]
real = engine.step
then = os.environ.get("THEN", "")

def step(self):
    made[0] += 1
    if made[0] == int(os.environ["STOP_AT"]):
        os.killpg(0, signal.SIGINT)
        if then == "again":
            time.sleep(0.5)
            os.killpg(0, signal.SIGINT)
        if then:
            time.sleep(60)
    real(self)

def host(signum, frame):
    raise KeyboardInterrupt

if os.environ.get("HOST"):
    signal.signal(signal.SIGINT, host)
engine.step = step
sys.exit(main(sys.argv[1:]))
"""
SERIAL = ["run", str(ROOT / "scenarios/reactive.yaml"), "--set", "population.customers=2000",
          "--set", "population.prospects=8000", "--set", "time.horizon=40", "-r", "2",
          "--workers", "1"]  # fmt: skip


def _ctrl_c_in_a_step(tmp_path, stop_at: int, **env: str):
    """``cxsim run SERIAL`` stopped by Ctrl-C in its ``stop_at``-th step: (its results folder,
    exit status, stderr, seconds it took)."""
    parent = tmp_path / "stopped"
    parent.mkdir()
    env = {**os.environ, "STOP_AT": str(stop_at), **env}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_IN_A_STEP, *SERIAL, "--out",
                             str(parent)], cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_hears_ctrl_c)  # fmt: skip
    _, err = proc.communicate(timeout=120)
    took = time.monotonic() - started
    _no_process_left(proc.pid)
    return only_folder(parent), proc.returncode, err, took


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_in_a_serial_run_saves_the_step_in_hand_and_resume_goes_on_from_it(
    tmp_path, monkeypatch, capsys
):
    """Two runs one after the other, saving once an hour (never, here): Ctrl-C in the 7th
    step of the second lets that step end and saves the state there; the resume goes on from
    step 7 to the tables of an undisturbed run."""
    monkeypatch.setenv(checkpoint.VARIABLE, "3600")
    folder, code, err, _ = _ctrl_c_in_a_step(tmp_path, 40 + 7)
    assert code == 130 and "Traceback" not in err, err
    assert f"1 of 2 runs finished and are kept in {folder} (1 more saved their state" in err
    assert err.strip().endswith(f"to finish, run: cxsim run --resume {folder}")
    assert _saved_step(folder / "parts" / checkpoint.state_name("s000-r00001")) == 7
    assert not (folder / "manifest.json").exists()

    assert main(["run", "--resume", str(folder)]) == 0
    err = capsys.readouterr().err
    assert "cxsim: 1 run went on from a saved state: reactive replication 1 from step 7" in err
    _same_tables_as_a_run_never_stopped(SERIAL, folder, tmp_path, monkeypatch)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    ("why", "env"),
    [("it saves nothing", {checkpoint.VARIABLE: "0"}),
     ("a host program handles SIGINT", {checkpoint.VARIABLE: "3600", "HOST": "1"})],
)  # fmt: skip
def test_a_serial_run_that_cannot_wind_up_stops_at_once(tmp_path, why, env):
    """Ctrl-C in a step that would then take a minute: the run stops where it is."""
    folder, code, err, took = _ctrl_c_in_a_step(tmp_path, 40 + 7, THEN="slow", **env)
    assert code == 130 and took < 40 and "Traceback" not in err, err
    assert f"1 of 2 runs finished and are kept in {folder}; to finish" in err  # nothing saved
    assert checkpoint.saved(folder / "parts") == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_second_ctrl_c_ends_a_serial_run_winding_up_at_once(tmp_path, monkeypatch):
    """The first Ctrl-C comes in a step that takes a minute; the second ends the command."""
    monkeypatch.setenv(checkpoint.VARIABLE, "3600")
    folder, code, err, took = _ctrl_c_in_a_step(tmp_path, 7, THEN="again")
    assert code == 130 and took < 40, err
    assert err.strip().startswith(f"cxsim: stopped at once. The finished runs are kept in {folder}")
    assert checkpoint.saved(folder / "parts") == 0


def test_a_wind_up_asked_in_this_process_ends_its_block_as_ctrl_c_would():
    """What the command's Ctrl-C handler relies on (see _second_interrupt_exits): outside a
    block that winds up nothing is asked; inside, the task is asked once, and its block ends
    with KeyboardInterrupt, however the task ended; an error not asked for stays itself."""
    assert not stop_in_hand() and not wind_up_asked()
    with pytest.raises(ValueError), winds_up():
        raise ValueError
    with pytest.raises(KeyboardInterrupt) as stopped, winds_up():
        assert stop_in_hand() and wind_up_asked() and not stop_in_hand()
        raise checkpoint.Stopped("saved")
    assert isinstance(stopped.value.__cause__, checkpoint.Stopped)
    with pytest.raises(KeyboardInterrupt), winds_up():
        assert stop_in_hand()  # as its last step ended: nothing more to save, it stops
    assert not stop_in_hand() and not wind_up_asked()
