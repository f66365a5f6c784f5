"""Sample every running container of one engine, and turn its events into messages.

A tick reads files only. Which containers run, with their names, labels and
main pids, is learnt from the engine (one list as ``docker ps`` makes, one
inspect per container newly seen) only when it may have changed: when an
event says a container started, was renamed or updated, when a container
went away while being read, and at least every ``RESYNC_SECONDS`` in case an
event was missed. The limits (memory limit, cpuset) are read at those times
too, not every tick. A container that stops between two syncs is dropped at
its next read, never an error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast, get_args

import docker

from dockbed.agent.cgroups import (
    DEFAULT_CGROUP_ROOT,
    DEFAULT_PROC_ROOT,
    ContainerCgroup,
    HostFacts,
    KeptFiles,
    ProcessGone,
    find_cgroup,
    read_cpu_usage,
    read_host_facts,
    read_memory_limit,
    read_memory_usage,
    read_online_cpus,
)
from dockbed.agent.netdev import read_interfaces
from dockbed.agent.rates import Sample, compute_rates
from dockbed.bus.messages import (
    ContainerEvent,
    ContainerStats,
    EventAction,
    InterfaceStats,
    NodeSummary,
)
from dockbed.engine.client import engine_errors
from dockbed.engine.containers import LABEL_BATCH, LABEL_OWNER
from dockbed.errors import NotFound

log = logging.getLogger(__name__)

#: The longest time between two looks at the engine's list of containers.
RESYNC_SECONDS = 30.0
#: The engine's container events that are forwarded.
FORWARDED_ACTIONS: frozenset[str] = frozenset(get_args(EventAction))
#: Events after which the container's process is no longer the one read.
_GONE = frozenset({"die", "stop", "kill", "destroy", "oom"})
#: Events after which the list of running containers must be read again.
_CHANGED = frozenset({"start", "restart", "unpause", "rename", "update"})


@dataclass
class _Tracked:
    """What is known about one running container between syncs."""

    name: str
    owner: str | None
    batch: str | None
    pid: int
    cgroup: ContainerCgroup
    memory_limit_bytes: int | None = None
    online_cpus: int | None = None
    previous: Sample | None = None
    files: KeptFiles = field(default_factory=KeptFiles)


class Collector:
    """Samples the running containers of the engine behind ``client``.

    ``filters`` narrow the containers, as ``docker ps --filter`` does (the
    benchmark samples only its own); the default is every running one.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        node: str,
        cgroup_root: Path = DEFAULT_CGROUP_ROOT,
        proc_root: Path = DEFAULT_PROC_ROOT,
        filters: Mapping[str, Any] | None = None,
    ) -> None:
        self._api = client.api
        self.node = node
        self._cgroup_root = cgroup_root
        self._proc_root = proc_root
        self._filters = {**(filters or {}), "status": "running"}
        self._running: dict[str, _Tracked] = {}
        self._synced_at: float | None = None
        self.host: HostFacts = read_host_facts(proc_root)

    def close(self) -> None:
        """Close the files kept open; the next tick opens them again."""
        for tracked in self._running.values():
            tracked.files.close()
        self._running = {}
        self.resync()

    def resync(self) -> None:
        """Read the engine's list again at the next tick (events were missed)."""
        self._synced_at = None

    def collect(self) -> list[ContainerStats]:
        """One sample of each running container, with rates since the last.

        Raises EngineError or EngineUnavailable when the engine cannot list.
        """
        now = time.monotonic()
        if self._synced_at is None or now - self._synced_at >= RESYNC_SECONDS:
            self._sync()
            self._synced_at = now

        timestamp = time.time()
        stats = []
        for container_id, tracked in list(self._running.items()):
            sample = self._sample(container_id, tracked, timestamp)
            if sample is not None:
                stats.append(sample)
        return stats

    def summarize(self, stats: list[ContainerStats]) -> NodeSummary:
        """The node's totals over one tick's samples."""
        rx = tx = 0.0
        for sample in stats:
            for interface in sample.interfaces.values():
                rx += interface.rx_bps or 0.0
                tx += interface.tx_bps or 0.0
        return NodeSummary(
            node=self.node,
            timestamp=stats[0].timestamp if stats else time.time(),
            containers=len(stats),
            cpu_percent=round(sum(s.cpu_percent or 0.0 for s in stats), 2),
            memory_bytes=sum(s.memory_bytes or 0 for s in stats),
            memory_total_bytes=self.host.memory_bytes,
            online_cpus=self.host.online_cpus,
            rx_bps=round(rx, 1),
            tx_bps=round(tx, 1),
        )

    def on_event(self, event: Mapping[str, Any]) -> ContainerEvent | None:
        """Note an engine event; the message to forward, if it is one we forward.

        ``event`` is one decoded item of the engine's event stream (``docker
        events --filter type=container``).
        """
        if event.get("Type", "container") != "container":
            return None
        action = str(event.get("Action") or event.get("status") or "")
        actor = event.get("Actor") or {}
        container_id = str(actor.get("ID") or event.get("id") or "")
        if action in _GONE:
            self._forget(container_id)
        elif action in _CHANGED:
            self.resync()
        if action not in FORWARDED_ACTIONS:
            return None

        attributes: Mapping[str, str] = actor.get("Attributes") or {}
        exit_code = attributes.get("exitCode")
        return ContainerEvent(
            node=self.node,
            name=attributes.get("name", container_id[:12]),
            id=container_id,
            owner=attributes.get(LABEL_OWNER),
            batch=attributes.get(LABEL_BATCH),
            action=cast(EventAction, action),
            timestamp=event.get("timeNano", time.time_ns()) / 1e9,
            exit_code=int(exit_code) if exit_code is not None else None,
        )

    def _sync(self) -> None:
        """Learn the running containers from the engine; inspect the new ones."""
        with engine_errors("listing running containers", node=self.node):
            listed: list[dict[str, Any]] = self._api.containers(filters=self._filters)

        running: dict[str, _Tracked] = {}
        for entry in listed:
            container_id: str = entry["Id"]
            labels: Mapping[str, str] = entry.get("Labels") or {}
            name = (entry.get("Names") or ["/" + container_id[:12]])[0].lstrip("/")
            tracked = self._running.get(container_id)
            try:
                if tracked is None:
                    tracked = self._track(container_id, name)
                if tracked is None:
                    continue
                tracked.memory_limit_bytes = read_memory_limit(
                    tracked.cgroup, self.host
                )
                tracked.online_cpus = read_online_cpus(tracked.cgroup, self.host)
            except ProcessGone:
                continue
            tracked.name = name
            tracked.owner = labels.get(LABEL_OWNER)
            tracked.batch = labels.get(LABEL_BATCH)
            running[container_id] = tracked
        for gone in self._running.keys() - running.keys():
            self._forget(gone)
        log.debug("node %s: %d running containers", self.node, len(running))
        self._running = running

    def _forget(self, container_id: str) -> None:
        tracked = self._running.pop(container_id, None)
        if tracked is not None:
            tracked.files.close()

    def _track(self, container_id: str, name: str) -> _Tracked | None:
        """Inspect a container newly seen running: its pid and cgroup.

        Raises ProcessGone if its process has exited since.
        """
        try:
            with engine_errors("inspecting a container", container=container_id):
                state = self._api.inspect_container(container_id)["State"]
        except NotFound:
            return None
        pid = int(state.get("Pid") or 0)
        if not pid:
            return None
        cgroup = find_cgroup(
            pid, cgroup_root=self._cgroup_root, proc_root=self._proc_root
        )
        return _Tracked(name=name, owner=None, batch=None, pid=pid, cgroup=cgroup)

    def _sample(
        self, container_id: str, tracked: _Tracked, timestamp: float
    ) -> ContainerStats | None:
        try:
            taken_ns = time.monotonic_ns()
            cpu_usage_ns = read_cpu_usage(tracked.cgroup, tracked.files)
            memory_bytes = read_memory_usage(tracked.cgroup, tracked.files)
            interfaces = read_interfaces(
                tracked.pid, proc_root=self._proc_root, files=tracked.files
            )
        except ProcessGone:
            # Stopped, or restarted with another pid: the next tick looks again.
            log.debug("container %s went away while being read", tracked.name)
            self._forget(container_id)
            self.resync()
            return None

        sample = Sample(
            taken_ns=taken_ns,
            pid=tracked.pid,
            cpu_usage_ns=cpu_usage_ns,
            interfaces=interfaces,
        )
        rates = compute_rates(tracked.previous, sample)
        tracked.previous = sample

        return ContainerStats(
            node=self.node,
            name=tracked.name,
            id=container_id,
            owner=tracked.owner,
            batch=tracked.batch,
            timestamp=timestamp,
            cpu_percent=_rounded(rates.cpu_percent, 2),
            cpu_usage_ns=cpu_usage_ns,
            memory_bytes=memory_bytes,
            memory_limit_bytes=tracked.memory_limit_bytes,
            online_cpus=tracked.online_cpus,
            interfaces={
                interface: InterfaceStats(
                    rx_bytes=counters.rx_bytes,
                    tx_bytes=counters.tx_bytes,
                    rx_bps=_rounded(rates.interfaces[interface].rx_bps, 1),
                    tx_bps=_rounded(rates.interfaces[interface].tx_bps, 1),
                )
                for interface, counters in interfaces.items()
            },
        )


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
