"""Where runs are executed: in this process, on a local process pool, or on a Dask cluster.

Every caller (``cxsim run``, ``cxsim sweep``) hands an executor the same thing: one module-level
task function and a mapping of task keys to arguments. ``map_unordered`` yields ``(key,
result)`` as each task finishes, in whatever order they finish; callers put results back in
their own order, so a result never depends on which executor ran it or on how many workers it
had. A task that raises stops the run with :class:`TaskFailed`, which names the task's key and
keeps the original exception as its cause; tasks not yet started are cancelled, on a failure as
on Ctrl-C, so nobody waits for runs that will not be collected.

A worker process can die under a task (killed by a cluster's job manager or the kernel's
out-of-memory killer, a crash in native code). Its tasks are then run again on another worker,
and the executor keeps a :class:`WorkerDeath` record of it in ``deaths``; callers write these
to the manifest and say what happened in one line (:func:`deaths_line`). A task whose worker
died :data:`MAX_DEATHS` times is not tried again: it fails with :class:`WorkerDied` (on Dask, the
scheduler's ``distributed.scheduler.allowed-failures`` setting decides, and its KilledWorker
becomes WorkerDied), since the task itself is the likely killer.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.reduction import ForkingPickler
from typing import Any, Protocol

from cxsim import lifeline

MAX_DEATHS = 3
"""A pool task whose worker process died this many times is reported as failed."""


class TaskFailed(Exception):  # noqa: N818 (it reports a task's own exception, not a new error)
    """A task raised; ``key`` says which one, ``error`` is what it raised (also ``__cause__``)."""

    def __init__(self, key: Hashable, error: BaseException):
        super().__init__(f"task {key!r} failed: {type(error).__name__}: {error}")
        self.key = key
        self.error = error


class WorkerDied(Exception):  # noqa: N818 (what happened, as the user reads it)
    """The worker processes running a task died under it too often to try it again."""


@dataclass(frozen=True)
class WorkerDeath:
    """A worker that ended while it had tasks: which one, how, and the tasks run again."""

    worker: str  # "process 1234", or a Dask worker's address
    how: str  # "signal 9 (SIGKILL)", "exit code 3", or for Dask "connection lost"
    tasks: tuple[Hashable, ...]

    def record(self, name: Callable[[Hashable], dict]) -> dict:
        """For a manifest: the worker, how it ended, and each run it lost as ``name(key)``."""
        return {"worker": self.worker, "how": self.how,
                "runs_again": [name(key) for key in self.tasks]}  # fmt: skip


def deaths_line(deaths: list[WorkerDeath]) -> str | None:
    """One line saying which workers died and how many runs were run again (None: no death)."""
    if not deaths:
        return None
    hows = Counter(d.how for d in deaths)
    shown = ", ".join(how if n == 1 else f"{how} ({n} times)" for how, n in hows.items())
    workers = "a worker process" if len(deaths) == 1 else f"{len(deaths)} worker processes"
    runs = sum(len(d.tasks) for d in deaths)
    again = "1 run was" if runs == 1 else f"{runs} runs were"
    return f"{workers} died: {shown}; {again} run again"


class Executor(Protocol):
    """Runs ``fn(args)`` for every item of ``tasks``; yields (key, result) as each finishes."""

    deaths: list[WorkerDeath]

    def map_unordered(
        self, fn: Callable[[Any], Any], tasks: Mapping[Hashable, Any]
    ) -> Iterator[tuple[Hashable, Any]]: ...

    def describe(self) -> str:
        """A few words for a manifest: which executor, how many workers."""
        ...


class SerialExecutor:
    """Every task in this process, one after another (also what a debugger wants)."""

    def __init__(self) -> None:
        self.deaths: list[WorkerDeath] = []  # this process is the only worker

    def map_unordered(self, fn, tasks):
        for key, args in tasks.items():
            try:
                result = fn(args)
            except Exception as exc:
                raise TaskFailed(key, exc) from exc
            yield key, result

    def describe(self) -> str:
        return "serial"


def _context(preload: list[str]) -> multiprocessing.context.BaseContext:
    """How pool workers start. Importing Mesa's batch runner forces "spawn" for the whole
    process, and a spawned worker imports cxsim anew (about a second each). A fork server
    imports cxsim once (the modules in ``preload``, unless it is already running) and forks
    each worker from it: nearly as cheap as fork, and safe in a parent that runs threads (a
    progress bar, a Dask client), which fork is not."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["cxsim.lifeline", "cxsim.engines", *preload])
        # The lifeline (see cxsim.lifeline): Linux ties the death signal to the thread that
        # starts the server, so only the main thread, whose end is the process's, arms it.
        if threading.current_thread() is not threading.main_thread():
            os.environ.pop(lifeline.PARENT, None)
            return context
        from multiprocessing import forkserver  # here: its presence marks the fork server

        # The variable is set only while the server starts, so no other process started from
        # this one (a subprocess that happens to run ``python -c``) takes itself for the server.
        os.environ[lifeline.PARENT] = str(os.getpid())
        # Start the server deaf to Ctrl-C (an ignored signal stays ignored across exec), so a
        # Ctrl-C while it imports cxsim prints no traceback of its own; its workers inherit it.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            forkserver.ensure_running()
        finally:
            signal.signal(signal.SIGINT, previous)
            os.environ.pop(lifeline.PARENT, None)
        return context
    return multiprocessing.get_context("spawn")


# --- the local pool ---------------------------------------------------------------------------


class _RemoteTraceback(Exception):  # noqa: N818 (as concurrent.futures names it)
    """The traceback of a task's exception in its worker, kept as that exception's cause."""

    def __str__(self) -> str:
        return f"\n{self.args[0]}"


_wind_up = [False]  # the task in hand was asked to wind up (by its pool's parent, or Ctrl-C)
_in_hand = [False]  # this process runs a task that winds up when asked (see winds_up)
_by_ctrl_c = [False]  # the wind-up was asked by Ctrl-C in this process (see stop_in_hand)


def wind_up_asked() -> bool:
    """Whether the task in hand is asked to end early, keeping what it can: in a pool worker
    whose parent is being stopped (see :class:`PoolExecutor`'s ``grace``), or in the process
    that runs the tasks one after another, by the command's first Ctrl-C (see
    :func:`winds_up`). A long task checks this now and then; it is never asked elsewhere."""
    return _wind_up[0]


@contextmanager
def winds_up() -> Iterator[None]:
    """Around the part of a task that checks :func:`wind_up_asked` between short stretches of
    work and, when it is asked, keeps what it can and ends early by raising an exception.

    In a pool worker this changes nothing (its parent asks by SIGUSR1). In the process that
    runs the command (a :class:`SerialExecutor`'s task), the command's Ctrl-C handler asks
    through :func:`stop_in_hand` instead of interrupting the work; the block then ends as
    that Ctrl-C would have ended it, with KeyboardInterrupt (its cause: the task's exception),
    once the task has kept what it can. Outside the block, Ctrl-C interrupts as ever."""
    _in_hand[0] = True
    try:
        yield
    except Exception as exc:
        if not _by_ctrl_c[0]:
            raise
        raise KeyboardInterrupt from exc
    finally:
        _in_hand[0] = False
        asked, _by_ctrl_c[0] = _by_ctrl_c[0], False
        if asked:
            _wind_up[0] = False
    if asked:  # the block ended of itself (its last stretch of work was done): stop all the same
        raise KeyboardInterrupt


def stop_in_hand() -> bool:
    """For a Ctrl-C handler of the process that runs the tasks: if the task in hand winds up
    when asked (it is inside :func:`winds_up`), ask it and return True: it ends its stretch of
    work, keeps what it can, and raises KeyboardInterrupt. False if it does not (the handler
    should interrupt it) or was asked already."""
    if not _in_hand[0] or _wind_up[0]:
        return False
    _wind_up[0] = _by_ctrl_c[0] = True
    return True


def _serve(conn, fn: Callable[[Any], Any]) -> None:
    """A pool worker: run ``fn`` on each ``(index, args)`` received and send back ``(index,
    ok, result or exception, traceback text)``; ``None`` or a closed pipe ends it. SIGUSR1
    asks the task in hand to wind up (:func:`wind_up_asked`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # on Ctrl-C the parent stops its workers
    signal.signal(signal.SIGUSR1, lambda signum, frame: _wind_up.__setitem__(0, True))
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if item is None:
            return
        index, args = item
        _wind_up[0] = False
        try:
            reply = (index, True, fn(args), None)
        except Exception as exc:
            reply = (index, False, exc, "".join(traceback.format_exception(exc)))
        try:
            conn.send_bytes(_encoded(reply))
        except (EOFError, OSError):
            return


def _encoded(reply: tuple) -> bytes:
    """``reply`` pickled; if it cannot be (an odd result or exception, or an exception that
    cannot be rebuilt from its pickle), a reply carrying a RuntimeError that says why, so the
    parent always hears about its task."""
    index, ok, value, text = reply
    try:
        data = ForkingPickler.dumps(reply)
        if not ok:
            pickle.loads(data)
        return data
    except Exception as exc:
        what = "result" if ok else f"exception {type(value).__name__}: {value}"
        problem = RuntimeError(f"cannot send the task's {what} to the parent process: {exc}")
        return ForkingPickler.dumps((index, False, problem, text))


def _ended(exitcode: int | None) -> str:
    """How a process ended, in words: "signal 9 (SIGKILL)" or "exit code 3"."""
    if exitcode is None:
        return "unknown"
    if exitcode < 0:
        try:
            name = f" ({signal.Signals(-exitcode).name})"
        except ValueError:
            name = ""
        return f"signal {-exitcode}{name}"
    return f"exit code {exitcode}"


class _Worker:
    """One pool process and the parent's end of the pipe it reads tasks from."""

    def __init__(self, context, fn: Callable[[Any], Any]):
        self.conn, theirs = context.Pipe()
        self.process = context.Process(target=_serve, args=(theirs, fn), daemon=True)
        self.process.start()
        theirs.close()  # only the worker holds its end, so its death reads as end-of-file here

    def give(self, item) -> bool:
        """Send a task; False if the worker is gone."""
        try:
            self.conn.send(item)
            return True
        except (EOFError, OSError):
            return False

    def reply(self) -> tuple | None:
        """The worker's reply to its task, or None if it died before sending one."""
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            return None

    def death(self, tasks: tuple) -> WorkerDeath:
        self.process.join(5)
        return WorkerDeath(f"process {self.process.pid}", _ended(self.process.exitcode), tasks)

    def stop(self, now: bool) -> None:
        """End the worker: ask it to finish, or with ``now`` terminate it (its task is lost)."""
        if not now and self.give(None):
            self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self.conn.close()


def warm_up(task_module: str, *more: str) -> None:
    """Start the fork server now, loading the engines, ``task_module`` (the module of the task
    function a pool will run) and the modules ``more`` in it, so that the model is imported
    there while this process does its own work (reading the scenarios, importing what it needs
    to collect and write the results); the pool's workers then fork from it at once. Nothing to
    do where workers are spawned (``_context`` starts the server)."""
    _context([task_module, *more])


@contextmanager
def warm_pool(workers: int | None, prepare: Callable[[], object]
              ) -> Iterator[ProcessPoolExecutor | None]:  # fmt: skip
    """A local process pool of ``workers`` processes (default: every core) that start at once
    and call ``prepare`` (a module-level function), for work that comes later: the charts of a
    run, drawn at its end by workers made ready while the runs went on (``prepare``:
    :func:`cxsim.charts.prepare`; ``cxsim run`` has the fork server load matplotlib, see
    :func:`warm_up`). None for a single worker (do the work in this process). The workers stop
    when the block ends."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        yield None
        return
    context = _context([])
    with ProcessPoolExecutor(workers, mp_context=context, initializer=prepare) as pool:
        for _ in range(workers):  # a task each makes the pool start every worker now
            pool.submit(os.getpid)
        yield pool


class PoolExecutor:
    """A local process pool of ``workers`` processes (default: every core).

    A worker that dies is replaced, and its task run again on a fresh one (see the module's
    docstring). As with any process pool, a script that uses it needs the ``if __name__ ==
    "__main__":`` guard: workers import the main module.

    When the run stops before its tasks are done (Ctrl-C, a task that failed), the tasks in
    hand are lost; with ``grace`` (seconds), their workers are first asked to wind them up
    (:func:`wind_up_asked`: a long run saves its state, see :mod:`cxsim.checkpoint`) and given
    up to that long to answer.
    """

    def __init__(self, workers: int | None = None, grace: float = 0.0):
        self.workers = workers or os.cpu_count() or 1
        self.grace = grace
        self.deaths: list[WorkerDeath] = []

    def map_unordered(self, fn, tasks):
        if not tasks:
            return
        keys = list(tasks)
        size = min(self.workers, len(keys))
        context = _context([fn.__module__])
        todo = deque(range(len(keys)))
        killed = Counter()  # task index -> how many of its workers died
        idle: list[_Worker] = []
        busy: dict[_Worker, int] = {}
        finished = False

        def give_out() -> None:
            """Give every worker not busy a task, starting workers as needed."""
            while todo and len(busy) < size:
                worker = idle.pop() if idle else _Worker(context, fn)
                index = todo.popleft()
                if worker.give((index, tasks[keys[index]])):
                    busy[worker] = index
                else:  # died while idle: nothing lost, start another
                    todo.appendleft(index)
                    self.deaths.append(worker.death(()))
                    worker.stop(now=True)

        try:
            while todo or busy:
                give_out()
                waiting = [w.conn for w in busy] + [w.process.sentinel for w in busy]
                ready = set(wait(waiting))
                done = []
                for worker in [w for w in busy if {w.conn, w.process.sentinel} & ready]:
                    index = busy.pop(worker)
                    reply = worker.reply()
                    if reply is None:
                        self._lost(worker, keys[index], killed, index)
                        todo.appendleft(index)
                        continue
                    idle.append(worker)
                    _, ok, value, text = reply
                    if not ok:
                        value.__cause__ = _RemoteTraceback(text) if text else None
                        raise TaskFailed(keys[index], value) from value
                    done.append((keys[index], value))
                give_out()  # before the caller handles the results (saves parts), not after
                yield from done
            finished = True
        finally:
            for worker in idle:
                worker.stop(now=not finished)
            if busy and not finished and self.grace > 0:
                self._wind_up(list(busy))
            for worker in busy:  # do not wait for runs nobody will collect
                worker.stop(now=True)

    def _wind_up(self, busy: list[_Worker]) -> None:
        """Ask the workers of tasks nobody will collect to wind them up, and wait up to
        ``grace`` seconds for each to answer (its answer is not read) or end."""
        for worker in busy:
            with suppress(ProcessLookupError):  # ended already
                os.kill(worker.process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + self.grace
        for worker in busy:
            left = max(0.0, deadline - time.monotonic())
            wait([worker.conn, worker.process.sentinel], timeout=left)

    def _lost(self, worker: _Worker, key: Hashable, killed: Counter, index: int) -> None:
        """Record a worker that died under task ``key``; give the task up after MAX_DEATHS."""
        death = worker.death((key,))
        worker.stop(now=True)
        self.deaths.append(death)
        killed[index] += 1
        if killed[index] >= MAX_DEATHS:
            error = WorkerDied(
                f"its worker process died {killed[index]} times while running it (last: "
                f"{death.how}); it may need more memory than a worker has, or crash the worker"
            )
            raise TaskFailed(key, error)

    def describe(self) -> str:
        return f"local process pool, {self.workers} worker(s)"


# --- Dask ------------------------------------------------------------------------------------


class DaskExecutor:
    """The tasks of a run on a ``dask.distributed`` cluster.

    Give a connected ``Client`` (it is left open) or a scheduler ``address`` (a client is
    opened for the run and closed after). The workers need cxsim installed: the task function
    travels by reference to its module, not as code. The scheduler runs again the tasks of a
    worker it loses; their workers' removals are read from its event log into ``deaths``. A
    cluster left without any worker for ``no_workers_timeout`` seconds stops the run with
    :class:`WorkerDied` rather than waiting for ever.
    """

    def __init__(self, client: Any = None, address: str | None = None,
                 no_workers_timeout: float = 600.0):  # fmt: skip
        if (client is None) == (address is None):
            raise ValueError("give a dask.distributed Client or a scheduler address, not both")
        self.client = client
        self.address = address
        self.no_workers_timeout = no_workers_timeout
        self.deaths: list[WorkerDeath] = []

    def map_unordered(self, fn, tasks):
        from dask.distributed import Client, KilledWorker, as_completed

        client = self.client if self.client is not None else Client(self.address)
        futures, ours = {}, {}
        try:
            # pure=False: two tasks with equal arguments are still two runs, never deduplicated.
            futures = {client.submit(fn, args, pure=False): key for key, args in tasks.items()}
            ours = {future.key: key for future, key in futures.items()}
            running = as_completed(futures)
            while not running.is_empty():
                for future in self._next(client, running, len(ours)):
                    key = futures.pop(future)  # dropped: the cluster can forget its result
                    try:
                        result = future.result()
                    except KilledWorker as exc:
                        raise TaskFailed(key, WorkerDied(
                            f"{exc.allowed_failures + 1} Dask workers died while running it "
                            "(the scheduler's distributed.scheduler.allowed-failures is "
                            f"{exc.allowed_failures}); it may need more memory than a worker "
                            "has, or crash the worker")) from exc  # fmt: skip
                    except Exception as exc:
                        raise TaskFailed(key, exc) from exc
                    yield key, result
        finally:
            if futures:
                client.cancel(list(futures))
            if ours:
                self.deaths += _removed_workers(client, ours)
            if self.client is None:
                client.close()

    def _next(self, client, running, total: int) -> list:
        """The next finished futures; raises WorkerDied once the cluster has had no worker for
        ``no_workers_timeout`` seconds (Dask itself would wait for workers for ever)."""
        alone_since = None
        checked = time.monotonic()
        every = min(2.0, self.no_workers_timeout / 2)  # seconds between asking for workers
        while not running.has_ready():
            time.sleep(0.05)
            now = time.monotonic()
            if now - checked < every:
                continue
            checked = now
            if client.nthreads():
                alone_since = None
            elif alone_since is None:
                alone_since = now
            elif now - alone_since >= self.no_workers_timeout:
                raise WorkerDied(
                    f"the Dask cluster at {self.describe_address()} has had no workers for "
                    f"{now - alone_since:.0f} s; {running.count()} of {total} runs unfinished"
                )
        return running.next_batch(block=False)

    def describe_address(self) -> str:
        client = self.client
        return self.address or getattr(getattr(client, "scheduler", None), "address", "?")

    def describe(self) -> str:
        return f"dask.distributed scheduler at {self.describe_address()}"


def _removed_workers(client, ours: dict) -> list[WorkerDeath]:
    """The scheduler's records of workers it lost unexpectedly while running tasks of ours
    (``ours``: the Dask task key of each of our futures -> our key)."""
    try:
        events = client.get_events()
    except Exception:  # the scheduler is gone: nothing more to learn from it
        return []
    out = []
    for topic, logged in events.items():
        if topic == "all":  # the same events again, under their worker's address too
            continue
        for _, msg in logged:
            if not isinstance(msg, dict) or msg.get("action") != "remove-worker":
                continue
            if msg.get("expected"):
                continue
            lost = set(msg.get("processing-tasks", ())) | set(msg.get("lost-computed-tasks", ()))
            mine = _sorted([ours[k] for k in lost if k in ours])
            if mine:
                out.append(WorkerDeath(str(topic), "connection lost", mine))
    return out


def _sorted(keys: list) -> tuple:
    try:
        return tuple(sorted(keys))
    except TypeError:  # keys that do not compare: as found
        return tuple(keys)


def local(workers: int | None, tasks: int, grace: float = 0.0) -> SerialExecutor | PoolExecutor:
    """The local executor for ``tasks`` runs: a pool when there is something to share out
    (``grace``: see :class:`PoolExecutor`)."""
    workers = workers or os.cpu_count() or 1
    if min(workers, tasks) <= 1:
        return SerialExecutor()
    return PoolExecutor(min(workers, tasks), grace)
