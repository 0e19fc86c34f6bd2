"""A long run's state saved as it goes, so that a run that was stopped continues where it was.

A run of a large market (millions of people, hundreds of steps) takes minutes, and a killed
worker or machine would otherwise lose all of it. When ``cxsim run`` works in a results folder,
each vector-engine run saves its state every :func:`interval` seconds of stepping (one minute;
``CXSIM_CHECKPOINT_SECONDS`` changes it, 0 saves none) as ``parts/.state-<run>.npz``, and once
more when Ctrl-C stops the runs in hand: a pool's workers are asked to wind up (see
:class:`cxsim.executors.PoolExecutor`), and a run stepped in the command's own process (one
worker, or one run) hears the first Ctrl-C the same way (see :func:`cxsim.executors.winds_up`):
each ends its step and saves before it stops; a second Ctrl-C ends the command at once. A run
started again on that folder (``cxsim run --resume``, or the pool running a task again after
its worker died) continues from the saved step instead of step 0, and ends with the same
tables, byte for byte, as a run never stopped. The file goes when the run's part is saved.

Only what stepping changes is saved: each engine names it (``CustomerModel.dynamic``). The rest,
the people's lifelong traits and the network, is built again from the scenario and seed exactly as
at the start. Arrays go into the .npz as they are; numbers, counters, generator states and the
metrics recorded so far go in as JSON text inside it: data only, never pickle. The file is written
aside and renamed, so it is whole or absent. A state made from another scenario, seed or engine,
or one that cannot be read, is not used: the run starts from step 0 (the results are the same;
only time is lost) and overwrites it.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cxsim.executors import wind_up_asked, winds_up
from cxsim.workfolder import atomic

if TYPE_CHECKING:  # the engines (and Mesa) are loaded where runs step, not where they are planned
    from cxsim.engines.base import CustomerModel

FORMAT = 1
"""Version of the file's layout; a state of another version is not used."""
EVERY = 60.0
"""Seconds of stepping between two saves, unless ``CXSIM_CHECKPOINT_SECONDS`` says otherwise."""
WIND_UP = 60.0
"""Seconds a run in a pool worker is given, once the command is stopped (Ctrl-C), to end its
step and save its state before it is ended anyway (a step and a save of 100M people: some 10 s)."""
VARIABLE = "CXSIM_CHECKPOINT_SECONDS"
_STATE = "__state__"  # the .npz member holding the JSON


class Stopped(Exception):  # noqa: N818 (what happened to the run)
    """A run was asked to wind up (the command was stopped): it saved its state and ended
    early; nobody collects it, and a resume goes on from that state. In the command's own
    process it becomes the KeyboardInterrupt of the Ctrl-C that asked (see
    :func:`cxsim.executors.winds_up`)."""


class CheckpointError(ValueError):
    """The variable that sets the interval does not hold a number of seconds."""


def interval() -> float:
    """Seconds between saves: ``CXSIM_CHECKPOINT_SECONDS`` if set (0: never save, but still go
    on from a state saved before), else EVERY."""
    text = os.environ.get(VARIABLE)
    if text is None or not text.strip():
        return EVERY
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds >= 0 or seconds == float("inf"):
        raise CheckpointError(
            f"{VARIABLE}: expected a number of seconds between saves of a run's state "
            f"(0: never), found {text!r}"
        )
    return seconds


def state_name(part: str) -> str:
    """The state file of the run whose part is named ``part``."""
    return f".state-{part}.npz"


def saved(parts: Path) -> int:
    """How many runs in a parts folder have a saved state (unfinished runs that went on a while)."""
    return len(list(parts.glob(state_name("*")))) if parts.is_dir() else 0


@dataclass(frozen=True)
class Saving:
    """Where one run keeps its state, how often, and what it must have been made from."""

    path: Path
    every: float
    made_from: dict  # scenario hash, seed, engine


def run(model: CustomerModel, saving: Saving | None) -> int:
    """Step ``model`` to its horizon, first continuing from ``saving``'s state if there is a
    usable one, and saving the state every ``saving.every`` seconds (never if 0) and when it
    is asked to wind up (its pool worker by the pool, or a run in the command's own process by
    the first Ctrl-C: :func:`cxsim.executors.winds_up`). A run that saves nothing is not asked:
    Ctrl-C stops it where it is. Returns the step it started from (0: the beginning)."""
    if saving is None or not model.dynamic:
        model.run()
        return 0
    start = restore(model, saving) if saving.path.exists() else 0
    if saving.every <= 0:  # nothing saved: Ctrl-C or a pool's end stops the run where it is
        model.run()
        return start
    last = time.monotonic()
    with winds_up():  # in a serial run, Ctrl-C too lets the step end and the state be saved
        while model.running:
            model.step()
            if not model.running:
                continue
            if wind_up_asked():  # the run was stopped: keep the steps made
                save(model, saving)
                raise Stopped(f"stopped at step {model.steps}, its state saved in {saving.path}")
            if time.monotonic() - last >= saving.every:
                save(model, saving)
                last = time.monotonic()
    return start


def save(model: CustomerModel, saving: Saving) -> None:
    """Write the model's changing state to ``saving.path`` (aside, then renamed)."""
    arrays: dict[str, np.ndarray] = {}
    values = {name: _encode(getattr(model, name), name, arrays)
              for name in model.dynamic if hasattr(model, name)}  # fmt: skip
    state = {
        "format": FORMAT,
        "made_from": saving.made_from,
        "step": model.steps,
        "values": values,
        "rng": model.rng.bit_generator.state,
        "random": _encode(model.random.getstate(), "random", arrays),
        "records": _encode(model.datacollector.records(), "records", arrays),
    }
    arrays[_STATE] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            np.savez(file, **arrays)

    atomic(saving.path, write)


def restore(model: CustomerModel, saving: Saving) -> int:
    """Bring a model just built from the run's scenario and seed to its saved state; the step
    it is at (0, and the model untouched, if the state is not this run's or unreadable)."""
    try:
        with np.load(saving.path, allow_pickle=False) as npz:
            state = json.loads(npz[_STATE].tobytes())
            if state.get("format") != FORMAT or state.get("made_from") != saving.made_from:
                return 0
            decoded = {name: _decode(value, npz) for name, value in state["values"].items()}
            random_state = _decode(state["random"], npz)
            records = _decode(state["records"], npz)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return 0
    for name, value in decoded.items():
        setattr(model, name, value)
    model.levers = model.schedule.at(model.now)
    model.steps = int(state["step"])  # Mesa's step counter (its event clock is not used)
    model.rng.bit_generator.state = state["rng"]
    model.random.setstate(random_state)
    model.datacollector.restore(records)
    return int(state["step"])


# --- values as JSON, arrays beside it -------------------------------------------------------------


def _encode(value: Any, where: str, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON, its arrays put in ``arrays`` under names made from ``where``."""
    from cxsim.engines.base import Census

    if isinstance(value, np.ndarray):
        arrays[where] = value
        return {"array": where}
    if isinstance(value, np.generic):
        return {"scalar": value.dtype.str, "value": value.item()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Census):
        return {"census": asdict(value)}
    if isinstance(value, deque):
        return {"deque": [_encode(v, f"{where}.{i}", arrays) for i, v in enumerate(value)],
                "maxlen": value.maxlen}  # fmt: skip
    if isinstance(value, (list, tuple)):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_encode(v, f"{where}.{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, f"{where}.{k}", arrays) for k, v in value.items()}}
    raise TypeError(f"a run's state cannot hold {where} ({type(value).__name__})")


def _decode(value: Any, npz) -> Any:
    if not isinstance(value, dict):
        return value
    if "array" in value:
        return npz[value["array"]]
    if "scalar" in value:
        return np.dtype(value["scalar"]).type(value["value"])
    if "census" in value:
        from cxsim.engines.base import Census

        return Census(**value["census"])
    if "deque" in value:
        return deque((_decode(v, npz) for v in value["deque"]), maxlen=value["maxlen"])
    if "list" in value:
        return [_decode(v, npz) for v in value["list"]]
    if "tuple" in value:
        return tuple(_decode(v, npz) for v in value["tuple"])
    return {k: _decode(v, npz) for k, v in value["dict"].items()}
