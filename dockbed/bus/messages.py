"""The JSON bodies dockbed publishes, one model per routing-key kind.

Each body carries a ``kind`` (``stats``, ``event``, ``node``) so that a
subscriber to several keys can tell them apart without the key. Times are
Unix seconds (``new Date(timestamp * 1000)`` in a page); byte rates are bytes
per second. A quantity the agent could not read, and a rate it has no
baseline for yet, is ``null``, never 0. docs/monitoring.md shows examples.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class InterfaceStats(BaseModel):
    """One interface of a container: counters since it came up, and rates."""

    rx_bytes: int
    tx_bytes: int
    #: Bytes per second since the previous tick; ``None`` without one.
    rx_bps: float | None
    tx_bps: float | None


class ContainerMessage(BaseModel):
    """What every message about one container says about which one it is."""

    kind: str
    node: str
    name: str
    #: The container's full id.
    id: str
    #: The dockbed user the container belongs to (its ``org.dockbed.owner``).
    owner: str | None = None
    batch: str | None = None


class ContainerStats(ContainerMessage):
    """One container's sample: one message per running container per tick."""

    kind: Literal["stats"] = "stats"
    timestamp: float
    #: Of one CPU, as ``docker stats`` shows it: 200 is two CPUs fully busy.
    cpu_percent: float | None
    #: CPU time used since the container started, in nanoseconds.
    cpu_usage_ns: int | None
    #: In use without the inactive file cache, as ``docker stats`` shows it.
    memory_bytes: int | None
    #: The limit, or the node's memory for a container without one.
    memory_limit_bytes: int | None
    #: CPUs the container may run on.
    online_cpus: int | None = None
    interfaces: dict[str, InterfaceStats] = Field(default_factory=dict)


EventAction = Literal["create", "start", "stop", "die", "destroy"]


class ContainerEvent(ContainerMessage):
    """A container's engine event, forwarded as it happens."""

    kind: Literal["event"] = "event"
    action: EventAction
    timestamp: float
    #: The main process's exit status, for ``die``.
    exit_code: int | None = None


class NodeSummary(BaseModel):
    """A node's totals over its running containers, once a tick, for charts.

    Published on ``dockbed.node.<node>``, which only administrators may read:
    totals tell about other users' containers.
    """

    kind: Literal["node"] = "node"
    node: str
    timestamp: float
    containers: int
    #: Sum of the containers' CPU % (of one CPU) that have a rate this tick.
    cpu_percent: float
    memory_bytes: int
    #: The node's memory and CPUs, the scale of the two charts.
    memory_total_bytes: int | None
    online_cpus: int | None
    rx_bps: float
    tx_bps: float
