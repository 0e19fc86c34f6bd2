"""Guards: refuse a scenario that could not be built, before anything is allocated.

Validation says a scenario is well formed; this module says whether it fits. It estimates the
memory a model needs from the scenario alone (no arrays are made) and compares it with the
memory the machine has available, and it rejects values that validate but would overflow the
arithmetic of building the model. Both raise :class:`~cxsim.loading.ScenarioError` with a
one-line message, so ``cxsim validate`` and ``cxsim run`` exit with status 2 instead of dying
later with a traceback or being killed by the operating system.

The per-item sizes were measured with ``tracemalloc`` on this code (peak while building and
stepping, 2025): the vector engine ~74 bytes per person at peak (40 resident: its int8 /
int16 / int32 / float32 state arrays, plus float64 traits and per-step index arrays while they
live) and ~67 bytes per network edge at peak (int64 edge list, both directions of the int32
CSR adjacency, and the COO arrays it is built from; since every kind of network is built from
int64 sort keys without them, measured again in 2026 on 2M people as resident memory over the
imports while building: ~28 bytes per edge for a ring, Watts-Strogatz or Barabasi-Albert
network, ~29 for Erdos-Renyi, 9 kept); the agents engine ~1.4 KB per person (a
Mesa agent object with its attributes) and, as a rough allowance not measured, 500 bytes per
edge for its networkx graph. The estimates are rounded up, not exact: they are meant to stop
scenarios that are off by orders of magnitude, not to pack memory tightly.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from cxsim.loading import ScenarioError
from cxsim.scenario import Scenario

PERSON_BYTES = {"vector": 80, "agents": 1_500}
"""Peak bytes per simulated person, by engine (see the module docstring)."""
EDGE_BYTES = {"vector": 30, "agents": 500}
"""Peak bytes per network edge, by engine (the vector engine's, every kind built in blocks of
sort keys: ~28 to 29 measured)."""
METRIC_VALUE_BYTES = 40
"""One recorded per-step value: a Python float in the collector's list plus its table copy."""
SPELL_BYTES = 100
"""One row of the customer table (seven columns and two short text labels)."""

FALLBACK_LIMIT = 4 * 2**30
"""Assumed available memory when the machine cannot say (4 GiB)."""
LIMIT_ENV = "CXSIM_MEMORY_LIMIT"
"""Environment variable with the limit in bytes (suffixes K, M, G, T allowed), e.g. for tests."""

MAX_ARPU_SPREAD = 100.0
"""Largest ARPU sd as a multiple of its mean: a lognormal wider than that overflows float32."""
MAX_MONEY = 1e30
"""Largest money a run may add up (revenue, costs) before float arithmetic loses it."""


@dataclass(frozen=True)
class Estimate:
    """Bytes a scenario needs, by part."""

    people: int
    network: int
    tables: int

    @property
    def total(self) -> int:
        return self.people + self.network + self.tables


def estimate(spec: Scenario, engine: str = "vector", runs: int = 1) -> Estimate:
    """Memory of one model (people, network) plus the tables ``runs`` replications keep."""
    # Float arithmetic from here: a population beyond 1e18 needs far more memory than any
    # machine has anyway, and an integer of 10^400 people cannot be made a float at all.
    n = float(min(spec.population.size, 10**18))
    per_person = PERSON_BYTES.get(engine, max(PERSON_BYTES.values()))
    per_edge = EDGE_BYTES.get(engine, max(EDGE_BYTES.values()))
    edges = 0
    if spec.network.kind.value != "well_mixed":
        # mean_degree/2 edges per person, but never more than every pair once.
        edges = min(n * spec.network.mean_degree / 2, n * (n - 1) / 2)
    years = spec.time.horizon / spec.time.steps_per_year
    # Spells: everyone at the start may be a customer, and churn plus win-back can make each
    # person a customer again a few times a year; one spell per person-year bounds it loosely.
    spells = n * (1 + years)
    tables = step_tables(spec, runs) + runs * spells * SPELL_BYTES
    return Estimate(_ceil(n * per_person), _ceil(edges * per_edge), _ceil(tables))


def step_tables(spec: Scenario, runs: int = 1) -> int:
    """Bytes of the per-step metric tables of ``runs`` replications (they grow with the
    horizon, not the population)."""
    metrics = 60 + 2 * len(spec.touchpoints)  # the per-step metrics: fixed ones + by cause
    return runs * (spec.time.horizon + 1) * metrics * METRIC_VALUE_BYTES


def _ceil(x: float) -> int:
    return math.ceil(x) if math.isfinite(x) else 2**126


def available() -> int:
    """Bytes this process may use: CXSIM_MEMORY_LIMIT, else MemAvailable, else a fallback."""
    text = os.environ.get(LIMIT_ENV, "").strip()
    if text:
        return parse_bytes(text)
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return FALLBACK_LIMIT


_SUFFIX = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str) -> int:
    """'2G', '512M', '1000000' (bytes) to bytes."""
    body = text.upper().removesuffix("B").removesuffix("I")
    suffix = body[-1:] if body[-1:] in _SUFFIX else ""
    try:
        value = float(body[: len(body) - len(suffix)]) * _SUFFIX[suffix]
    except ValueError:
        raise ScenarioError(
            f"{LIMIT_ENV}={text!r}: expected a number of bytes such as 2G or 500000000"
        ) from None
    if not value > 0:
        raise ScenarioError(f"{LIMIT_ENV}={text!r}: expected a positive number of bytes")
    return int(value)


def count(n: int) -> str:
    """A count of people for a message: 12,000; or 1e+30 when it is beyond belief (an
    integer of thousands of digits cannot even be written out)."""
    if n < 10**15:
        return f"{n:,}"
    return f"about 10^{int(n.bit_length() * math.log10(2))}"


def size(n: float) -> str:
    """Bytes in words: '80 GB', '1.2 TB', '512 MB'."""
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            value = n / scale
            if unit == "PB" and value >= 1000:
                return f"{value:.1e} PB"
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{n:.0f} bytes"


def check(spec: Scenario, label: str, engine: str = "vector", runs: int = 1) -> None:
    """Raise a one-line ScenarioError if ``spec`` cannot be built or would not fit.

    ``label`` (the file name) starts the message; ``runs`` is the number of replications
    whose tables are kept together.
    """
    need = estimate(spec, engine, runs)
    limit = available()
    if need.total <= limit:
        _check_values(spec, label)
        return
    parts = [(name, getattr(need, name)) for name in ("people", "network", "tables")]
    shown = ", ".join(f"{name} {size(value)}" for name, value in parts if value)
    # Blame the setting behind most of it: the horizon (with the replications kept together)
    # when the tables outgrow the model tenfold, the contacts for a dense network, else the
    # population.
    if need.tables > 10 * (need.people + need.network):
        field = "time.horizon x run.replications" if runs > 1 else "time.horizon"
    elif need.network > 10 * need.people:
        field = "network.mean_degree"
    else:
        field = "population"
    raise ScenarioError(
        f"{label}: {field}: {count(spec.population.size)} people need about "
        f"{size(need.total)} "
        f"({shown}; {engine} engine); this machine has {size(limit)} available "
        f"(fewer people or contacts, or a shorter horizon, fit; {LIMIT_ENV} sets the limit)"
    )


def _check_values(spec: Scenario, label: str) -> None:
    """Values validation accepts but building or adding up would overflow."""
    arpu = spec.economics.arpu
    if arpu.sd > MAX_ARPU_SPREAD * arpu.mean:
        raise ScenarioError(
            f"{label}: economics.arpu.sd: expected at most {MAX_ARPU_SPREAD:g} x the mean "
            f"({MAX_ARPU_SPREAD * arpu.mean:g}); a wider lognormal overflows, found {arpu.sd:g}"
        )
    p = spec.population
    costs = spec.strategy.costs
    size = float(min(p.size, 10**18))  # as in estimate(): beyond that no model fits anyway
    per_step = (arpu.mean + costs.per_customer) * size + costs.fixed / p.represents
    total = per_step * p.represents * spec.time.horizon
    if not total < MAX_MONEY:
        raise ScenarioError(
            f"{label}: economics.arpu.mean x population.represents: money over the run would "
            f"reach about {total:.3g} (ARPU, costs x people x represents x horizon); "
            f"expected below {MAX_MONEY:g}"
        )
