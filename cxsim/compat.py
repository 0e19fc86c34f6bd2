"""The few places where Mesa 3.3 and Mesa 3.4+ differ, kept in one module."""

from __future__ import annotations

import inspect
import itertools
import weakref
from random import Random

import mesa
import networkx as nx
from mesa.discrete_space import Network

_NETWORK_HAS_LAYOUT = "layout" in inspect.signature(Network.__init__).parameters


class AgentIds(weakref.WeakKeyDictionary):
    """Agent ids counted per model (from 1), held without keeping the model alive.

    Mesa 3.3 counts them in ``Agent._ids``, a class-level defaultdict keyed by the model: every
    model that ever made an agent stays in memory, its agents, space and tables with it, for as
    long as the process lives (Mesa's issue #3179; its fix, PR #3180, counts in the model and
    reads no ``_ids``, so there this goes unused). An agent class sets ``_ids = AgentIds()`` to
    count here instead."""

    def __getitem__(self, model):
        try:
            return super().__getitem__(model)
        except KeyError:
            counter = self[model] = itertools.count(1)
            return counter


def network_space(graph: nx.Graph, random: Random) -> Network:
    """Mesa's network space over ``graph``, one person per node.

    Mesa 3.5 computes a spring layout by default, which takes minutes for 10,000 nodes; the
    circular layout is instant. Mesa 3.3 has no layout argument.
    """
    if _NETWORK_HAS_LAYOUT:
        return Network(graph, capacity=1, random=random, layout=nx.circular_layout)
    return Network(graph, capacity=1, random=random)


def batch_run(model_cls, parameters: dict, seeds: list[int], **kwargs) -> list[dict]:
    """``mesa.batch_run`` with one run per seed and parameter point, on any Mesa 3.x.

    Mesa 3.4+ takes seeds as ``rng=[...]`` (and overwrites an ``rng`` parameter); Mesa 3.3 has no
    such argument, so the seeds go in as an ``rng`` parameter there.
    """
    if "rng" in inspect.signature(mesa.batch_run).parameters:
        return mesa.batch_run(model_cls, parameters, rng=list(seeds), **kwargs)
    return mesa.batch_run(model_cls, {**parameters, "rng": list(seeds)}, iterations=1, **kwargs)
