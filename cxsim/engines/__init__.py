"""The two engines of the one model: ``agents`` (Mesa agents, the reference) and ``vector``."""

from __future__ import annotations

from cxsim.engines.agents import AgentsModel
from cxsim.engines.base import Channel, CustomerModel, Stage
from cxsim.engines.vector import VectorModel

ENGINES: dict[str, type[CustomerModel]] = {"vector": VectorModel, "agents": AgentsModel}

__all__ = ["ENGINES", "AgentsModel", "Channel", "CustomerModel", "Stage", "VectorModel"]
