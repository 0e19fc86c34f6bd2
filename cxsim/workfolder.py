"""A results folder while cxsim works in it: one process at a time, a log of every session, and
the final files written aside and moved in whole.

``cxsim run`` and ``cxsim sweep`` (started or resumed) hold :class:`Session` on their folder for
as long as they work in it. It takes an exclusive lock (``flock`` on ``.lock`` in the folder), so
a second command pointed at the same folder stops at once with a message naming the process that
has it, instead of redoing the work beside it; the kernel lets go of the lock when the process
ends, however it ends (even SIGKILL). It also keeps ``.sessions.json``: the command, start, end,
wall time and outcome of every session that worked on the folder, so the manifest of a resumed
folder accounts for all of them, including one that was killed before it could write anything
(its end is then the last run it saved). :func:`staged` writes the final tables and charts into
a hidden folder and moves them in only when every one is whole, so a full disk, a kill or Ctrl-C
while writing leaves the parts, the plan and no finished-looking file; ``--resume`` writes them
again.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

PLAN = "plan.json"  # what an unfinished folder was asked to do (gone once it is finished)
PARTS = "parts"  # its finished runs
LOCK = ".lock"
SESSIONS = ".sessions.json"
STAGE = ".writing"


class FolderError(Exception):
    """The folder cannot be worked in now (another process has it, or it cannot be written);
    the message names it and says what to do."""


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """Write ``path`` by ``write(temporary path)`` and a rename, so the file is whole or absent;
    a failed write names ``path`` (an OSError from write() names no file)."""
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not exc.filename:
            exc.filename = str(path)
        raise
    return path


def _write_json(path: Path, data) -> None:
    text = json.dumps(data, indent=2) + "\n"
    atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_sessions(folder: Path) -> list[dict]:
    """The sessions recorded in ``folder`` (none if it has no log or the log is damaged)."""
    try:
        data = json.loads((Path(folder) / SESSIONS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [s for s in data if isinstance(s, dict)] if isinstance(data, list) else []


def _last_saved(folder: Path, since: float) -> float | None:
    """When the newest part in ``folder/parts`` was saved, if after ``since`` (epoch seconds)."""
    times = []
    try:
        for part in (folder / PARTS).iterdir():
            if not part.name.startswith("."):
                times.append(part.stat().st_mtime)
    except OSError:
        return None
    newest = max(times, default=None)
    return newest if newest is not None and newest >= since else None


def close_session(record: dict, outcome: str, ended: float | None = None) -> dict:
    """``record`` with its end, wall time and outcome (``ended``: epoch seconds; now if None)."""
    end = time.time() if ended is None else ended
    return {**record, "ended": datetime.fromtimestamp(end).astimezone().isoformat(
        timespec="seconds"), "wall_seconds": round(max(0.0, end - record["started_at"]), 3),
        "outcome": outcome}  # fmt: skip


def sessions_so_far(folder: Path) -> list[dict]:
    """Every session of ``folder``, this process's own closed as of now ("completed")."""
    return [
        close_session(s, "completed") if s.get("pid") == os.getpid() and s.get("ended") is None
        else s for s in read_sessions(folder)
    ]  # fmt: skip


class Session:
    """Exclusive use of a results folder for one command, logged in the folder.

    ``with Session(folder):`` raises FolderError if another process holds the folder. On the
    way out the session is logged as completed, interrupted (Ctrl-C) or failed, and the lock
    file is removed once the folder is finished (it has no plan left to resume)."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self._fd: int | None = None

    def __enter__(self) -> Session:
        path = self.folder / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise FolderError(
                f"{self.folder}: cannot work in this folder ({exc.strerror})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FolderError(
                    f"{self.folder}: in use by {holder}; wait for it to finish (or stop it), "
                    "then run the command again"
                ) from None
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"cxsim process {os.getpid()} (started {_now()})\n".encode(), 0)
            self._log_start()
        except OSError as exc:  # a full disk: say so before any work is done
            os.close(fd)
            raise FolderError(
                f"{self.folder / SESSIONS}: cannot be written ({exc.strerror})"
            ) from None
        self._fd = fd
        return self

    def _log_start(self) -> None:
        now = time.time()
        sessions = []
        for s in read_sessions(self.folder):
            if s.get("ended") is None:  # its process died without a word (killed)
                seen = _last_saved(self.folder, s.get("started_at", now))
                s = close_session(s, "killed", seen if seen is not None else s["started_at"])
                s["note"] = "ended and wall_seconds: up to the last run it saved"
            sessions.append(s)
        sessions.append({"command": list(sys.argv), "pid": os.getpid(), "started": _now(),
                         "started_at": now, "ended": None})  # fmt: skip
        _write_json(self.folder / SESSIONS, sessions)

    def __exit__(self, kind, error, trace) -> None:
        try:
            if not (self.folder / PLAN).exists():  # finished: nothing left to lock or log
                (self.folder / LOCK).unlink(missing_ok=True)
                (self.folder / SESSIONS).unlink(missing_ok=True)
                return
            outcome = ("completed" if kind is None else "interrupted"
                       if issubclass(kind, KeyboardInterrupt) else "failed")  # fmt: skip
            sessions = [close_session(s, outcome) if s.get("pid") == os.getpid()
                        and s.get("ended") is None else s
                        for s in read_sessions(self.folder)]  # fmt: skip
            _write_json(self.folder / SESSIONS, sessions)
        except OSError:
            pass  # a full disk must not hide the error that brought us here
        finally:
            os.close(self._fd)
            self._fd = None


def manifest_sessions(folder: Path, wall_seconds: float) -> dict:
    """The manifest's account of the work: every session and the total wall time. Without a
    session log (a folder written by the Python API), the one session is this one."""
    sessions = [{k: v for k, v in s.items() if k not in ("pid", "started_at")}
                for s in sessions_so_far(folder)]  # fmt: skip
    if not sessions:
        return {"wall_seconds": round(wall_seconds, 3), "sessions": []}
    return {"wall_seconds": round(sum(s["wall_seconds"] for s in sessions), 3),
            "sessions": sessions}  # fmt: skip


# A Ctrl-C whose KeyboardInterrupt Python swallowed (raised inside a weakref callback or a
# __del__, Python hands it to sys.unraisablehook and the work goes on) is raised again here,
# before the next part is saved and before the final files are moved in. (The command line's
# hook keeps such a swallowed one quiet: Python's own prints "Exception ignored" and a
# traceback.)
_stop_asked = [False]


def ask_to_stop(asked: bool = True) -> None:
    """Ctrl-C was pressed (the command line's handler says so), or, with False, forget it."""
    _stop_asked[0] = asked


def stop_asked() -> bool:
    """Whether Ctrl-C was pressed (:func:`ask_to_stop`) and not yet forgotten."""
    return _stop_asked[0]


def stop_if_asked() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed and the work still goes on."""
    if stop_asked():
        raise KeyboardInterrupt


@contextmanager
def staged(folder: Path) -> Iterator[Path]:
    """A hidden folder to write the final files into; they are moved into ``folder`` when the
    block ends without an error, and the hidden folder (with anything half-written) is removed
    whatever happens."""
    stage = Path(folder) / STAGE
    shutil.rmtree(stage, ignore_errors=True)  # left by a writer that was killed
    stage.mkdir()
    try:
        yield stage
        stop_if_asked()
        for path in sorted(stage.iterdir()):
            os.replace(path, Path(folder) / path.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
