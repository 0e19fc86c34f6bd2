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

    Every address ``host`` names is bound once here, as the server binds them (``SO_REUSEADDR``,
    IPv6 apart from IPv4), so that a port another program holds, a host that is not this
    machine's or a port this user may not use is a one-line error before a server starts
    (otherwise the other program's page answers and is announced as the dashboard). A free port
    found for 0 is let go again for the server to take, a moment later."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: expected a port from 0 to 65535 (0: a free one)")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: cannot listen there ({exc.strerror})") from None
    addresses = list(dict.fromkeys((family, where) for family, _, _, _, where in found))
    probes: list[socket.socket] = []
    try:
        for family, where in addresses:
            probe = socket.socket(family, socket.SOCK_STREAM)
            probes.append(probe)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(probes) > 1:  # the free port the first address got, for all
                where = (where[0], probes[0].getsockname()[1], *where[2:])
            try:
                probe.bind(where)
            except OSError as exc:
                raise _address_error(exc, host, port) from None
        return probes[0].getsockname()[1]
    finally:
        for probe in probes:
            probe.close()


def _address_error(exc: OSError, host: str, port: int) -> UsageError:
    if exc.errno == errno.EADDRINUSE:
        return UsageError(
            f"--port {port}: another program is using it at {host}; "
            "choose another port (--port 0 takes a free one)"
        )
    if exc.errno == errno.EACCES:
        return UsageError(
            f"--port {port}: this user may not listen on it; use 1024 or above, or --port 0"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return UsageError(f"--host {host}: not an address of this machine ({exc.strerror})")
    return UsageError(f"--host {host}: cannot listen there ({exc.strerror})")


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
