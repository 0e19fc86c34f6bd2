"""Pool processes die with the cxsim process that started them, and leave Ctrl-C to it.

A local process pool forks its workers from a fork server (see :mod:`cxsim.executors`). Both
outlive a parent killed with SIGKILL on their own: the server waits for every worker to let go
and the workers wait for tasks that will never come. This module is the fork server's first
preload. The parent names itself in :data:`PARENT` before it starts the server; on import in
that server (and nowhere else) it asks Linux to kill the server when the parent dies and every
worker when the server dies (``prctl(PR_SET_PDEATHSIG)``), and it makes sure SIGINT is ignored
(the parent starts the server so): Ctrl-C reaches the whole process group, and it is the
parent that stops the work and says what finished, with no traceback from the server or a
worker. Elsewhere (another platform, any other process importing it) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PARENT = "CXSIM_POOL_PARENT"
"""Environment variable: the process id of the cxsim process that starts the fork server."""

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Get SIGKILL when the parent dies; exit now if it already has (the race before prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # cannot arm it: the worker still works, as it did before
    if os.getppid() != parent:
        os._exit(1)


def _arm() -> None:
    server = os.getpid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # started so already; its workers inherit it
    _die_with_parent(int(os.environ[PARENT]))
    os.register_at_fork(after_in_child=lambda: _die_with_parent(server))


def _in_fork_server() -> bool:
    """Started by ``python -c "from multiprocessing.forkserver import main; ..."`` from the
    process named in PARENT, which sets it only while it starts the server (a test once ran
    ``python -c`` with it inherited and lost its Ctrl-C). That parent may already be dead:
    then the server exits at once (see _die_with_parent)."""
    return (
        sys.argv[:1] == ["-c"]
        and "multiprocessing.forkserver" in sys.modules
        and os.environ.get(PARENT, "").isdigit()
    )


if sys.platform.startswith("linux") and _in_fork_server():
    _arm()
