"""Worker processes that die under a run: on the local pool and on a Dask LocalCluster, the run
finishes with the same tables as an undisturbed one and says what happened; a run that kills
its worker every time fails with a clear message instead of looping. (Tables that do not depend
on the executor at all: tests/test_sweep.py, tests/test_cli.py and reliability/determinism.py.)"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from cxsim.cli import main
from cxsim.executors import (
    MAX_DEATHS,
    DaskExecutor,
    PoolExecutor,
    WorkerDeath,
    WorkerDied,
    deaths_line,
)
from cxsim.experiment import run_experiment
from cxsim.sweep import SweepTaskError, load_sweep, run_sweep

from .conftest import ROOT, small

TABLES = ("runs.parquet", "steps.parquet", "points.csv", "design.csv", "problem.json")


def _dies(fn, marker: str, victim, mode: str, task):
    """``fn(task)``, except for the task keyed ``victim``: on its first try it writes its worker's
    pid to ``marker`` and waits to be killed from outside ("killed"); or it ends its worker
    with ``os._exit(3)`` every time ("exits")."""
    if task.key == victim:
        if mode == "exits":
            os._exit(3)
        if not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            time.sleep(60)  # the test kills this process long before
    return fn(task)


class _Killing:
    """An executor whose task ``victim`` loses its worker process (see :func:`_dies`); with
    "killed", a thread of this process sends that worker SIGKILL while it runs the task."""

    def __init__(self, folder: Path, victim, mode: str = "killed", **kwargs):
        super().__init__(**kwargs)
        self.marker, self.victim, self.mode = str(folder / "victim.pid"), victim, mode

    def map_unordered(self, fn, tasks):
        if self.mode == "killed":
            threading.Thread(target=self._kill, daemon=True).start()
        return super().map_unordered(partial(_dies, fn, self.marker, self.victim, self.mode), tasks)

    def _kill(self):
        for _ in range(3000):
            if os.path.exists(self.marker) and (text := Path(self.marker).read_text()):
                os.kill(int(text), signal.SIGKILL)
                return
            time.sleep(0.01)


class KillingPool(_Killing, PoolExecutor):
    pass


class KillingDask(_Killing, DaskExecutor):
    pass


SWEEP = (
    f"scenarios: [{ROOT / 'scenarios' / 'reactive.yaml'}, {ROOT / 'scenarios' / 'proactive.yaml'}]"
    "\nparameters:\n  strategy.detection: [0.2, 0.8]\n"
    "replications: 2\nseed: 11\n"
    "overrides: {population.customers: 60, population.prospects: 200, time.horizon: 12}\n"
)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "sweep.yaml"
    path.write_text(SWEEP, encoding="utf-8")
    return load_sweep(path)


@pytest.fixture(scope="module")
def undisturbed(sweep, tmp_path_factory):
    return run_sweep(sweep, out=tmp_path_factory.mktemp("undisturbed"), workers=1, progress=False)


def _same_tables(result, reference) -> None:
    for name in TABLES:
        assert (result.folder / name).read_bytes() == (reference.folder / name).read_bytes(), name


def test_a_pool_worker_killed_mid_sweep_is_replaced_and_its_run_run_again(sweep, undisturbed,
                                                                          tmp_path):  # fmt: skip
    victim = (1, 0, 1)  # point, scenario, replication
    pool = KillingPool(tmp_path, victim, workers=2)
    done = run_sweep(sweep, out=tmp_path, executor=pool, progress=False)
    _same_tables(done, undisturbed)
    (death,) = done.worker_deaths
    assert death.how == "signal 9 (SIGKILL)" and death.tasks == (victim,)
    assert death.worker == f"process {Path(pool.marker).read_text()}"
    manifest = json.loads((done.folder / "manifest.json").read_text())
    assert manifest["worker_deaths"] == [{
        "worker": death.worker, "how": "signal 9 (SIGKILL)",
        "runs_again": [{"point": 1, "scenario": "reactive", "replication": 1}],
    }]  # fmt: skip


def test_a_run_that_kills_its_worker_every_time_fails_after_three_deaths(sweep, tmp_path):
    pool = KillingPool(tmp_path, (0, 1, 0), mode="exits", workers=2)
    with pytest.raises(SweepTaskError) as caught:
        run_sweep(sweep, out=tmp_path, executor=pool, progress=False)
    assert isinstance(caught.value.__cause__, WorkerDied)
    assert str(caught.value).startswith(
        "run failed at point 0 (strategy.detection=0.2), scenario 'proactive', replication 0"
    )
    assert f"its worker process died {MAX_DEATHS} times while running it (last: exit code 3)" in (
        str(caught.value)
    )
    assert [d.tasks for d in pool.deaths] == [((0, 1, 0),)] * MAX_DEATHS


def test_a_pool_worker_killed_mid_run_gives_the_same_experiment(tmp_path):
    spec = small(time__horizon=8, population__customers=50)
    args = ([spec], 4, 5)
    calm = run_experiment(*args, workers=1, progress=False)
    victim = (0, 2)  # scenario index, replication
    pool = KillingPool(tmp_path, victim, workers=2)
    # run_experiment's tasks are (scenario, seed, engine) tuples: key them as the victim says
    killed = run_experiment(*args, executor=_Keyed(pool), progress=False)
    for table in ("steps", "summaries", "customers", "losses"):
        assert getattr(killed, table).equals(getattr(calm, table)), table
    assert [d.tasks for d in killed.worker_deaths] == [(victim,)]


class _Keyed:
    """Gives each of run_experiment's tasks a ``key`` attribute (its (scenario, replication)),
    as a sweep task has, so :func:`_dies` can pick the victim."""

    def __init__(self, inner):
        self.inner, self.deaths = inner, inner.deaths

    def map_unordered(self, fn, tasks):
        keyed = {k: _KeyedArgs(k, a) for k, a in tasks.items()}
        return self.inner.map_unordered(partial(_unkey, fn), keyed)

    def describe(self):
        return self.inner.describe()


class _KeyedArgs:
    def __init__(self, key, args):
        self.key, self.args = key, args


def _unkey(fn, keyed):
    return fn(keyed.args)


@pytest.mark.parametrize("mode", ["killed", "exits"])
def test_cxsim_run_says_when_workers_died(mode, tmp_path, monkeypatch, capsys):
    import cxsim.experiment

    pool = KillingPool(tmp_path, (0, 1), mode=mode, workers=2)
    monkeypatch.setattr(cxsim.experiment, "local", lambda workers, tasks, grace=0.0: _Keyed(pool))
    small_run = ["--set", "population.customers=50", "--set", "time.horizon=8"]
    argv = ["run", str(ROOT / "scenarios" / "reactive.yaml"), "-r", "2", "--workers", "2",
            "--out", str(tmp_path / "out"), *small_run]  # fmt: skip
    status = main(argv)
    err = capsys.readouterr().err
    if mode == "killed":
        assert status == 0
        assert err == "cxsim: a worker process died: signal 9 (SIGKILL); 1 run was run again\n"
        (folder,) = (tmp_path / "out").iterdir()
        deaths = json.loads((folder / "manifest.json").read_text())["worker_deaths"]
        assert deaths[0]["runs_again"] == [{"scenario": "reactive", "replication": 1}]
    else:
        assert status == 1 and len(err.splitlines()) == 1 and "Traceback" not in err
        assert err.startswith("cxsim: error: the run of scenario 'reactive', replication 1 (seed ")
        assert f"failed: its worker process died {MAX_DEATHS} times" in err
        assert err.rstrip().endswith("are kept in " + str(next((tmp_path / "out").iterdir()))
                                     + "; --resume runs what is missing")  # fmt: skip


def test_the_line_that_says_what_happened():
    assert deaths_line([]) is None
    one = WorkerDeath("process 7", "signal 9 (SIGKILL)", ((0, 1, 2), (0, 1, 3)))
    assert deaths_line([one]) == (
        "a worker process died: signal 9 (SIGKILL); 2 runs were run again"
    )
    other = WorkerDeath("process 8", "exit code 3", ((1, 0, 0),))
    assert deaths_line([one, one, other]) == (
        "3 worker processes died: signal 9 (SIGKILL) (2 times), exit code 3; 5 runs were run again"
    )


# --- Dask ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    import dask
    from dask.distributed import Client, LocalCluster

    # A task is given up after its first lost worker, so the give-up test needs one restart.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                             host="127.0.0.1", dashboard_address=":0")  # fmt: skip
    client = Client(local)
    yield client
    client.close()
    local.close()


def test_a_dask_worker_killed_mid_sweep_is_noticed_and_the_tables_are_the_same(
    sweep, undisturbed, cluster, tmp_path
):
    victim = (0, 1, 1)
    dask = KillingDask(tmp_path, victim, client=cluster)
    done = run_sweep(sweep, out=tmp_path, executor=dask, progress=False)
    _same_tables(done, undisturbed)
    (death,) = done.worker_deaths
    assert death.how == "connection lost" and victim in death.tasks
    assert death.worker.startswith("tcp://127.0.0.1:")
    manifest = json.loads((done.folder / "manifest.json").read_text())
    assert manifest["worker_deaths"][0]["worker"] == death.worker


def test_a_run_on_dask_gives_the_same_experiment_as_in_this_process(cluster):
    spec = small(time__horizon=8, population__customers=50)
    calm = run_experiment([spec], 3, 5, workers=1, progress=False)
    remote = run_experiment([spec], 3, 5, executor=DaskExecutor(cluster), progress=False)
    for table in ("steps", "summaries", "customers", "losses"):
        assert getattr(remote, table).equals(getattr(calm, table)), table


def test_a_dask_run_whose_workers_keep_dying_fails_with_a_clear_message(sweep, cluster, tmp_path):
    dask = KillingDask(tmp_path, (1, 1, 0), mode="exits", client=cluster)
    with pytest.raises(SweepTaskError) as caught:
        run_sweep(sweep, out=tmp_path, executor=dask, progress=False)
    message = str(caught.value)
    assert isinstance(caught.value.__cause__, WorkerDied)
    # Dask blames every task on a worker that died, so the run named is the killer or a run
    # that shared its worker (seen under load: replication 1 beside the killer, replication 0).
    assert re.search(
        r"at point \d \(strategy\.detection=0\.\d\), scenario '\w+', replication \d", message
    )
    assert "2 Dask workers died while running it" in message


def test_a_dask_cluster_without_workers_stops_the_run_with_a_clear_message(sweep, tmp_path):
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as empty, Client(empty) as client:  # fmt: skip
        dask = DaskExecutor(client, no_workers_timeout=1.0)
        alone = r"has had no workers for \d+ s; 8 of 8 runs unfinished"
        with pytest.raises(WorkerDied, match=alone):
            run_sweep(sweep, out=tmp_path, executor=dask, progress=False)
