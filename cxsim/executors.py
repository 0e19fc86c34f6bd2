"""Where runs are executed: in this process, on a local process pool, or on a Dask cluster.

Every caller (``cxsim run``, ``cxsim sweep``) hands an executor the same thing: one module-level
task function and a mapping of task keys to arguments. ``map_unordered`` yields ``(key,
result)`` as each task finishes, in whatever order they finish; callers put results back in
their own order, so a result never depends on which executor ran it or on how many workers it
had. A task that raises stops the run with :class:`TaskFailed`, which names the task's key and
keeps the original exception as its cause; tasks not yet started are cancelled, on a failure as
on Ctrl-C, so nobody waits for runs that will not be collected.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver
from typing import Any, Protocol

from cxsim import lifeline


class TaskFailed(Exception):  # noqa: N818 (it reports a task's own exception, not a new error)
    """A task raised; ``key`` says which one, ``error`` is what it raised (also ``__cause__``)."""

    def __init__(self, key: Hashable, error: BaseException):
        super().__init__(f"task {key!r} failed: {type(error).__name__}: {error}")
        self.key = key
        self.error = error


class Executor(Protocol):
    """Runs ``fn(args)`` for every item of ``tasks``; yields (key, result) as each finishes."""

    def map_unordered(
        self, fn: Callable[[Any], Any], tasks: Mapping[Hashable, Any]
    ) -> Iterator[tuple[Hashable, Any]]: ...

    def describe(self) -> str:
        """A few words for a manifest: which executor, how many workers."""
        ...


class SerialExecutor:
    """Every task in this process, one after another (also what a debugger wants)."""

    def map_unordered(self, fn, tasks):
        for key, args in tasks.items():
            try:
                result = fn(args)
            except Exception as exc:
                raise TaskFailed(key, exc) from exc
            yield key, result

    def describe(self) -> str:
        return "serial"


def _context() -> multiprocessing.context.BaseContext:
    """How pool workers start. Importing Mesa's batch runner forces "spawn" for the whole
    process, and a spawned worker imports cxsim anew (about a second each). A fork server
    imports cxsim once and forks each worker from it: nearly as cheap as fork, and safe in a
    parent that runs threads (a progress bar, a Dask client), which fork is not."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["cxsim.lifeline", "cxsim.experiment", "cxsim.sweep.run"])
        # The lifeline (see cxsim.lifeline): Linux ties the death signal to the thread that
        # starts the server, so only the main thread, whose end is the process's, arms it.
        if threading.current_thread() is not threading.main_thread():
            os.environ.pop(lifeline.PARENT, None)
            return context
        os.environ[lifeline.PARENT] = str(os.getpid())
        # Start the server deaf to Ctrl-C (an ignored signal stays ignored across exec), so a
        # Ctrl-C while it imports cxsim prints no traceback of its own; its workers inherit it.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            forkserver.ensure_running()
        finally:
            signal.signal(signal.SIGINT, previous)
        return context
    return multiprocessing.get_context("spawn")


class PoolExecutor:
    """A local process pool of ``workers`` processes (default: every core).

    As with any process pool, a script that uses it needs the ``if __name__ == "__main__":``
    guard: workers import the main module.
    """

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1

    def map_unordered(self, fn, tasks):
        if not tasks:
            return
        workers = min(self.workers, len(tasks))
        with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
            futures = {pool.submit(fn, args): key for key, args in tasks.items()}
            try:
                for future in as_completed(futures):
                    key = futures[future]
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        raise  # a worker died (killed, out of memory): not this task's error
                    except Exception as exc:
                        raise TaskFailed(key, exc) from exc
                    yield key, result
            except BaseException:
                # Do not wait for runs nobody will collect; the runs in progress end on their
                # own (one run each): a worker killed while it sends a result leaves half a
                # message in the pipe, and the pool's thread waits for the rest for ever.
                for future in futures:
                    future.cancel()
                raise

    def describe(self) -> str:
        return f"local process pool, {self.workers} worker(s)"


class DaskExecutor:
    """The tasks of a run on a ``dask.distributed`` cluster.

    Give a connected ``Client`` (it is left open) or a scheduler ``address`` (a client is
    opened for the run and closed after). The workers need cxsim installed: the task function
    travels by reference to its module, not as code.
    """

    def __init__(self, client: Any = None, address: str | None = None):
        if (client is None) == (address is None):
            raise ValueError("give a dask.distributed Client or a scheduler address, not both")
        self.client = client
        self.address = address

    def map_unordered(self, fn, tasks):
        from dask.distributed import Client, as_completed

        client = self.client if self.client is not None else Client(self.address)
        futures = {}
        try:
            # pure=False: two tasks with equal arguments are still two runs, never deduplicated.
            futures = {client.submit(fn, args, pure=False): key for key, args in tasks.items()}
            for future in as_completed(futures):
                key = futures[future]
                try:
                    result = future.result()
                except Exception as exc:
                    raise TaskFailed(key, exc) from exc
                yield key, result
        finally:
            if futures:
                client.cancel(list(futures))
            if self.client is None:
                client.close()

    def describe(self) -> str:
        client = self.client
        address = self.address or getattr(getattr(client, "scheduler", None), "address", "?")
        return f"dask.distributed scheduler at {address}"


def local(workers: int | None, tasks: int) -> SerialExecutor | PoolExecutor:
    """The local executor for ``tasks`` runs: a pool when there is something to share out."""
    workers = workers or os.cpu_count() or 1
    if min(workers, tasks) <= 1:
        return SerialExecutor()
    return PoolExecutor(min(workers, tasks))
