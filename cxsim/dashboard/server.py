"""Start the dashboard's Solara server for ``cxsim dashboard`` and say where it listens.

The scenarios are checked here first, so a bad file gets the usual one-line error and exit
status 2 before any server starts. Solara then runs in a child process (``python -m solara
run``, production mode, no browser opened) with the scenario paths in an environment
variable; this process waits until the page answers, prints its address and waits for it.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import solara  # noqa: F401  (fails early, with the install hint, when the extra is missing)

from cxsim.dashboard.comparison import DEFAULT_PATHS, check_pair
from cxsim.errors import UsageError
from cxsim.loading import ScenarioError, load_scenario

APP = Path(__file__).with_name("app.py")
ENVIRONMENT = "CXSIM_DASHBOARD_SCENARIOS"  # read by cxsim.dashboard.app


def checked_paths(paths: Sequence[str]) -> list[str]:
    """Absolute paths of the two scenarios to compare, after loading and checking them."""
    paths = list(paths) or list(DEFAULT_PATHS)
    if len(paths) != 2:
        raise ScenarioError(
            f"the dashboard compares two scenarios (baseline, then the one to try), "
            f"found {len(paths)}"
        )
    specs = [load_scenario(p) for p in paths]
    check_pair(specs, paths)
    return [str(Path(p).resolve()) for p in paths]


def listening_port(host: str, port: int) -> int:
    """The port the server will listen on at ``host``: ``port``, or a free one when it is 0.

    The address is bound once here, as the server binds it (``SO_REUSEADDR``), so that a port
    another program listens on, a host that is not this machine's or a port this user may not
    use is a one-line error, before a server starts (otherwise the other program's page
    answers and is announced as the dashboard)."""
    try:
        family, kind, proto, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: cannot listen there ({exc.strerror})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(where)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"--port {port}: another program is listening on it at {host}; "
                    "choose another port (--port 0 takes a free one)"
                ) from None
            if exc.errno == errno.EACCES:
                raise UsageError(f"--port {port}: this user may not listen on it") from None
            raise UsageError(f"--host {host}: cannot listen there ({exc.strerror})") from None
        return probe.getsockname()[1]


def command(host: str, port: int) -> list[str]:
    """The child process that serves the page."""
    return [sys.executable, "-m", "solara", "run", str(APP), "--host", host, "--port", str(port),
            "--production", "--no-open", "--no-check-version",
            "--log-level", "warning"]  # fmt: skip


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 120.0) -> bool:
    """True once ``url`` answers; False if the server process ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def start(paths: Sequence[str], host: str, port: int) -> subprocess.Popen:
    """Start the server for two checked scenario files; the caller waits for or stops it."""
    env = {**os.environ, ENVIRONMENT: json.dumps(checked_paths(paths))}
    # Two start-up notes from Mesa's and Solara's own code that a user can do nothing about.
    quiet = "ignore::UserWarning:solara.validate_hooks,ignore::UserWarning:solara.server.starlette"
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"), quiet]))
    return subprocess.Popen(command(host, port), env=env)


def serve(paths: Sequence[str], host: str = "127.0.0.1", port: int = 8765) -> int:
    """Run the dashboard until interrupted; returns the server's exit status."""
    port = listening_port(host, port)
    process = start(paths, host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    try:
        if not wait_until_up(url, process):
            process.terminate()
            process.wait(timeout=10)
            print("cxsim: error: the dashboard server did not start (its messages are above)",
                  file=sys.stderr)  # fmt: skip
            return 1
        print(f"cxsim dashboard: {url} (Ctrl+C to stop)", flush=True)
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(timeout=10)
        return 130
