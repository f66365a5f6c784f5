"""The nodes the server drives, and a connection to each one's engine.

Nodes come from three places, in this order of precedence: the settings (the
local node, ``node_name`` at ``engine_url``), the registry in the store
(``dockbed node add``), and the record of ``dockbed devlab up`` (simulated
nodes on this machine), re-read whenever it changes.

A node that is down must not take the others with it:

- every engine is probed with a short timeout before use (at most once a
  second), so an action on a dead node fails at once with EngineUnavailable
  naming it, and a node that answers again is used again, with no restart;
- listings ask every node in parallel and show a node that does not answer
  with the containers it had when last seen, in the state ``unknown``;
- addresses on a lab segment are read from every node on it; for a node
  that does not answer, the addresses its containers held when last seen
  count as taken (the server is the one authority for them, so nothing can
  have taken a new one there meanwhile). A node never seen since the server
  started blocks allocation on its segment instead of risking a duplicate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import docker
import docker.errors
import requests.exceptions
from pydantic import ValidationError

from dockbed.config import LabSettings, Settings
from dockbed.devlab.nodes import read_record, record_path
from dockbed.engine.client import (
    DEFAULT_TIMEOUT,
    check_engine_url,
    connect,
    engine_errors,
)
from dockbed.engine.containers import ContainerInfo, Engine
from dockbed.engine.tls import TlsFiles, write_files
from dockbed.errors import (
    Conflict,
    DockbedError,
    EngineUnavailable,
    InvalidInput,
    NotFound,
)
from dockbed.lab.addresses import AddressPool
from dockbed.lab.names import check_name
from dockbed.lab.placement import node_addresses, segment_key
from dockbed.server.store import RegisteredNode

log = logging.getLogger(__name__)

Source = Literal["settings", "registry", "devlab"]
T = TypeVar("T")

#: Seconds a probe of an engine may take: a dead node costs at most this.
PROBE_TIMEOUT = 3.0
#: Seconds during which an engine that answered is used without a new probe.
PROBE_INTERVAL = 1.0
#: The state shown for the containers of a node that does not answer.
UNKNOWN_STATE = "unknown"


@dataclass(frozen=True)
class NodeConfig:
    """A node: its name, where its engine listens, and its lab network."""

    name: str
    engine_url: str
    lab: LabSettings
    #: The CA and client certificate for a ``tcp://`` engine.
    tls_dir: Path | None = None
    source: Source = "settings"

    def pool(self) -> AddressPool:
        return AddressPool.from_lab(self.lab)

    @property
    def segment(self) -> str:
        """The lab segment (its subnet) the node's containers take addresses on."""
        return segment_key(self.pool())

    def tls(self) -> TlsFiles | None:
        return TlsFiles(self.tls_dir) if self.tls_dir else None


class NodeRecords(Protocol):
    """Where the registry keeps the nodes added at run time (the store)."""

    def node_records(self) -> Sequence[RegisteredNode]: ...

    def add_node_record(self, node: RegisteredNode, added_by: str) -> None: ...

    def remove_node_record(self, name: str) -> None: ...


@dataclass(frozen=True)
class NodeSnapshot:
    """A node's containers, as just read or as last seen."""

    node: str
    containers: list[ContainerInfo]
    reachable: bool
    #: Why the node could not be read; None when it could.
    error: str | None = None
    #: Whether ``containers`` is a last-seen list (the node answered before).
    seen: bool = True
    #: For a node that does not answer: the containers that ran when last seen.
    seen_running: frozenset[str] = frozenset()


@dataclass
class NodeHealth:
    """What ``dockbed node ls`` shows of a node, read on request."""

    name: str
    engine_url: str
    source: Source
    network: str
    subnet: str
    segment: str
    reachable: bool
    status: Literal["up", "unknown"]
    engine_version: str | None = None
    containers: int | None = None
    running: int | None = None
    free_addresses: int | None = None
    error: str | None = None


@dataclass
class _Connection:
    engine: Engine
    probe: docker.DockerClient
    version: str
    checked: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        for client in (self.engine.client, self.probe):
            try:
                client.close()
            except Exception:  # closing a dead connection may fail; it is gone
                log.debug("closing a client failed", exc_info=True)


class NodeRegistry:
    """Nodes by name, each engine connected on first use and probed before use."""

    def __init__(
        self,
        nodes: Iterable[NodeConfig],
        *,
        records: NodeRecords | None = None,
        devlab_record: Path | None = None,
        tls_root: Path | None = None,
        probe_timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self._fixed = {node.name: node for node in nodes}
        self._records = records
        self._devlab_record = devlab_record
        self._tls_root = tls_root
        self.probe_timeout = probe_timeout
        self._lock = threading.Lock()
        self._connections: dict[str, _Connection] = {}
        self._connecting: dict[str, threading.Lock] = {}
        self._last_seen: dict[str, list[ContainerInfo]] = {}
        self._registered: dict[str, NodeConfig] | None = None
        self._devlab: dict[str, NodeConfig] = {}
        self._devlab_stamp: tuple[float, int] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, records: NodeRecords | None = None
    ) -> NodeRegistry:
        """The local node of the settings, the store's nodes, and devlab's."""
        local = NodeConfig(
            settings.node_name,
            settings.engine_url,
            settings.lab,
            tls_dir=settings.engine_tls_dir,
        )
        return cls(
            [local],
            records=records,
            devlab_record=record_path(settings),
            tls_root=(settings.tls_dir or settings.state_dir / "tls") / "nodes",
        )

    # The nodes --------------------------------------------------------------

    def _all(self) -> dict[str, NodeConfig]:
        nodes = dict(self._read_devlab())
        nodes.update(self._read_registered())
        nodes.update(self._fixed)
        return nodes

    def _read_registered(self) -> dict[str, NodeConfig]:
        if self._records is None:
            return {}
        with self._lock:
            if self._registered is not None:
                return self._registered
        registered: dict[str, NodeConfig] = {}
        for record in self._records.node_records():
            try:
                lab = LabSettings.model_validate(record.lab)
            except ValueError as error:
                log.warning(
                    "ignoring node %s: bad lab settings: %s", record.name, error
                )
                continue
            registered[record.name] = NodeConfig(
                record.name,
                record.engine_url,
                lab,
                tls_dir=Path(record.tls_dir) if record.tls_dir else None,
                source="registry",
            )
        with self._lock:
            self._registered = registered
        return registered

    def _read_devlab(self) -> dict[str, NodeConfig]:
        path = self._devlab_record
        if path is None:
            return {}
        try:
            status = path.stat()
            stamp: tuple[float, int] | None = (status.st_mtime, status.st_size)
        except OSError:
            stamp = None
        with self._lock:
            if stamp == self._devlab_stamp:
                return self._devlab
        nodes = {
            item.name: NodeConfig(
                item.name, item.engine_url, item.lab, item.tls_dir, source="devlab"
            )
            for item in (read_record(path) if stamp else [])
        }
        with self._lock:
            self._devlab, self._devlab_stamp = nodes, stamp
        return nodes

    def names(self) -> list[str]:
        """Every node: the settings' first, then the others by name."""
        nodes = self._all()
        fixed = [name for name in self._fixed]
        return fixed + sorted(name for name in nodes if name not in self._fixed)

    def configs(self) -> list[NodeConfig]:
        nodes = self._all()
        return [nodes[name] for name in self.names()]

    def config(self, name: str) -> NodeConfig:
        """The node called ``name``; raises NotFound naming the known ones."""
        try:
            return self._all()[name]
        except KeyError:
            raise NotFound(
                f"unknown node {name!r}",
                hint=f"known nodes: {', '.join(self.names()) or 'none'}",
                field="node",
                node=name,
            ) from None

    def on_segment(self, segment: str) -> list[NodeConfig]:
        """Every node whose lab network is on ``segment``."""
        return [node for node in self.configs() if node.segment == segment]

    # Engines ----------------------------------------------------------------

    def engine(self, name: str) -> Engine:
        """The engine of node ``name``, which has just answered.

        Raises NotFound for an unknown node and EngineUnavailable, naming
        the node, for one that does not answer within the probe timeout;
        the next call tries again.
        """
        node = self.config(name)
        with self._lock:
            connection = self._connections.get(name)
        if connection is not None:
            if time.monotonic() - connection.checked < PROBE_INTERVAL:
                return connection.engine
            try:
                connection.probe.ping()
            except (
                docker.errors.DockerException,
                requests.exceptions.RequestException,
            ) as error:
                self._drop(name, connection)
                log.info("node %s stopped answering: %s", name, error)
            else:
                connection.checked = time.monotonic()
                return connection.engine
        return self._connect(node).engine

    def _connect(self, node: NodeConfig) -> _Connection:
        with self._lock:
            gate = self._connecting.setdefault(node.name, threading.Lock())
        # One attempt at a time per node; the others wait for its outcome.
        with gate:
            with self._lock:
                existing = self._connections.get(node.name)
            if existing is not None:
                return existing
            try:
                probe = connect(
                    node.engine_url, tls=node.tls(), timeout=self.probe_timeout
                )
                version = str(probe.version().get("Version", "?"))
                client = connect(
                    node.engine_url, tls=node.tls(), timeout=DEFAULT_TIMEOUT
                )
            except EngineUnavailable as error:
                raise EngineUnavailable(
                    f"node {node.name} is unreachable: {error.message}",
                    hint="it is tried again on the next request; check that its "
                    "engine runs (dockbed node ls shows every node)",
                    node=node.name,
                    url=node.engine_url,
                ) from error
            except Exception as error:
                raise EngineUnavailable(
                    f"node {node.name} is unreachable: {error}",
                    node=node.name,
                    url=node.engine_url,
                ) from error
            connection = _Connection(Engine(node.name, client), probe, version)
            with self._lock:
                self._connections[node.name] = connection
            log.info("connected to node %s at %s", node.name, node.engine_url)
            return connection

    def _drop(self, name: str, connection: _Connection) -> None:
        with self._lock:
            if self._connections.get(name) is connection:
                del self._connections[name]
        connection.close()

    def forget(self, name: str) -> None:
        """Drop the node's connection, so the next use connects afresh."""
        with self._lock:
            connection = self._connections.pop(name, None)
        if connection is not None:
            connection.close()

    # Reading every node ------------------------------------------------------

    def snapshot(self, name: str) -> NodeSnapshot:
        """The node's containers now, or as last seen if it does not answer."""
        try:
            containers = self.engine(name).containers()
        except EngineUnavailable as error:
            self.forget(name)
            with self._lock:
                seen = self._last_seen.get(name)
            return NodeSnapshot(
                node=name,
                containers=[
                    replace(info, state=UNKNOWN_STATE, status="node unreachable")
                    for info in seen or []
                ],
                reachable=False,
                error=error.message,
                seen=seen is not None,
                seen_running=frozenset(
                    info.name for info in seen or [] if info.running
                ),
            )
        with self._lock:
            self._last_seen[name] = containers
        return NodeSnapshot(node=name, containers=containers, reachable=True)

    def remember(self, info: ContainerInfo) -> None:
        """Count a container just made in its node's last-seen list.

        Should the node stop answering before it is read again, the address
        the container holds stays taken, and it is listed as unknown.
        """
        with self._lock:
            seen = self._last_seen.setdefault(info.node, [])
            seen[:] = [item for item in seen if item.name != info.name] + [info]

    def snapshots(self, names: Sequence[str]) -> list[NodeSnapshot]:
        """:meth:`snapshot` of each node, all at once."""
        return self.each(names, self.snapshot)

    def each(self, names: Sequence[str], read: Callable[[str], T]) -> list[T]:
        """``read`` of every node, in parallel, in the order of ``names``."""
        if len(names) <= 1:
            return [read(name) for name in names]
        with ThreadPoolExecutor(
            max_workers=min(len(names), 16), thread_name_prefix="nodes"
        ) as workers:
            return list(workers.map(read, names))

    def segment_addresses(self, segment: str) -> dict[IPv4Address, str]:
        """Every address taken on a lab segment → its holder.

        Read from every node on the segment (containers running or stopped,
        and each node's own address). Raises EngineUnavailable when a node
        of the segment does not answer and was never seen: what it holds is
        unknown, so nothing may be handed out.
        """
        nodes = self.on_segment(segment)
        used: dict[IPv4Address, str] = node_addresses(
            {node.name: node.pool() for node in nodes}
        )
        for node, snapshot in zip(
            nodes, self.snapshots([node.name for node in nodes]), strict=True
        ):
            if not snapshot.reachable and not snapshot.seen:
                raise EngineUnavailable(
                    f"node {node.name}, on the lab segment {segment}, is "
                    "unreachable and has not been seen since the server started, "
                    "so the addresses it holds are unknown",
                    hint="start its engine, or remove it from the registry "
                    "(dockbed node rm)",
                    node=node.name,
                    segment=segment,
                )
            for info in snapshot.containers:
                address = info.addresses.get(node.lab.network)
                if address:
                    holder = (
                        info.name if len(nodes) == 1 else f"{info.name} on {node.name}"
                    )
                    used[IPv4Address(address)] = holder
        return used

    def health(self) -> list[NodeHealth]:
        """Every node's health, read now, all nodes at once."""
        configs = self.configs()
        snapshots = self.snapshots([node.name for node in configs])
        by_segment: dict[str, set[IPv4Address]] = {}
        for node, snapshot in zip(configs, snapshots, strict=True):
            taken = by_segment.setdefault(node.segment, set())
            taken.add(node.lab.node_address)
            for info in snapshot.containers:
                address = info.addresses.get(node.lab.network)
                if address:
                    taken.add(IPv4Address(address))
        found = []
        for node, snapshot in zip(configs, snapshots, strict=True):
            free = sum(
                1
                for address in node.pool().addresses()
                if address not in by_segment[node.segment]
            )
            with self._lock:
                connection = self._connections.get(node.name)
            found.append(
                NodeHealth(
                    name=node.name,
                    engine_url=node.engine_url,
                    source=node.source,
                    network=node.lab.network,
                    subnet=str(node.lab.subnet),
                    segment=node.segment,
                    reachable=snapshot.reachable,
                    status="up" if snapshot.reachable else "unknown",
                    engine_version=connection.version if connection else None,
                    containers=len(snapshot.containers) if snapshot.reachable else None,
                    running=sum(1 for info in snapshot.containers if info.running)
                    if snapshot.reachable
                    else None,
                    free_addresses=free if snapshot.reachable else None,
                    error=snapshot.error,
                )
            )
        return found

    # Changes ------------------------------------------------------------------

    def add(
        self,
        name: str,
        engine_url: str,
        *,
        tls_files: dict[str, bytes] | None,
        lab: LabChoice,
        defaults: LabSettings,
        added_by: str,
    ) -> NodeConfig:
        """Register a node after checking that its engine answers.

        ``tls_files`` (``ca``, ``cert``, ``key`` as PEM) are stored under the
        server's TLS directory with tight modes. The lab network ``lab.network``
        must exist on the node's engine: its subnet and gateway are read from
        it, the node's own address from its ``node`` aux-address (as ``node
        setup`` makes it) unless given, the pool from ``defaults`` unless
        given. Raises InvalidName, InvalidInput (the engine URL, lab settings
        that do not fit), Conflict (a name taken), EngineUnavailable and
        NotFound (no such network there). Nothing is kept on failure.
        """
        check_name(name)
        if self._records is None:
            raise InvalidInput("this server has no store to keep nodes in")
        if name in self._all():
            raise Conflict(
                f"a node named {name} exists",
                hint="remove it first (dockbed node rm), or choose another name",
                field="name",
                node=name,
            )
        if tls_files is not None and self._tls_root is None:
            raise InvalidInput("this server keeps no TLS files", field="tls")
        tls: TlsFiles | None = None
        try:
            if tls_files is not None and self._tls_root is not None:
                tls = write_files(self._tls_root / name, **tls_files)
            check_engine_url(engine_url, tls)
            client = connect(engine_url, tls=tls, timeout=self.probe_timeout * 3)
            try:
                settings = _read_lab(client, name, lab, defaults)
            finally:
                client.close()
            config = NodeConfig(
                name,
                engine_url,
                settings,
                tls_dir=tls.directory if tls else None,
                source="registry",
            )
            self._records.add_node_record(
                RegisteredNode(
                    name,
                    engine_url,
                    str(tls.directory) if tls else None,
                    settings.model_dump(mode="json"),
                ),
                added_by,
            )
        except DockbedError:
            if tls is not None:
                _remove_tls_dir(tls.directory)
            raise
        with self._lock:
            self._registered = None
        log.info("registered node %s at %s", name, engine_url)
        return config

    def remove(self, name: str) -> None:
        """Forget a registered node; its engine and containers are not touched.

        InvalidInput for the settings' node and devlab's (they come from
        their own files), NotFound for an unknown one.
        """
        node = self.config(name)
        if node.source != "registry" or self._records is None:
            raise InvalidInput(
                f"node {name} comes from the {node.source}, not the registry",
                hint="the local node is in the config; devlab's go with "
                "'dockbed devlab down'",
                field="name",
                node=name,
            )
        self._records.remove_node_record(name)
        with self._lock:
            self._registered = None
            self._last_seen.pop(name, None)
        self.forget(name)
        # Only files the registry stored itself, never a directory given to it.
        if node.tls_dir is not None and node.tls_dir.parent == self._tls_root:
            _remove_tls_dir(node.tls_dir)
        log.info("removed node %s from the registry", name)


@dataclass(frozen=True)
class LabChoice:
    """What ``dockbed node add`` may say of a node's lab network.

    The subnet and gateway are always read from the network itself.
    """

    network: str = "lab"
    pool_first: IPv4Address | None = None
    pool_last: IPv4Address | None = None
    node_address: IPv4Address | None = None


def _read_lab(
    client: docker.DockerClient, node: str, choice: LabChoice, defaults: LabSettings
) -> LabSettings:
    """The node's lab settings, from its lab network and ``choice``."""
    with engine_errors(f"inspect the network {choice.network} of {node}", node=node):
        try:
            attrs = client.api.inspect_network(choice.network)
        except docker.errors.NotFound:
            attrs = None
    if attrs is None:
        raise NotFound(
            f"node {node} has no network {choice.network}",
            hint="run 'dockbed node setup' on it first, or name its lab network",
            field="network",
            node=node,
            network=choice.network,
        )
    ipam: dict[str, Any] = next(
        (
            item
            for item in (attrs.get("IPAM") or {}).get("Config") or []
            if ":" not in str(item.get("Subnet", ""))
        ),
        {},
    )
    aux = (ipam.get("AuxiliaryAddresses") or {}).get("node")
    node_address = choice.node_address or (IPv4Address(aux) if aux else None)
    if not ipam.get("Subnet") or not ipam.get("Gateway") or node_address is None:
        raise InvalidInput(
            f"the network {choice.network} of node {node} lacks a subnet, a "
            "gateway or the node's own address",
            hint="give --node-address, or make the lab network with "
            "'dockbed node setup' on the node",
            field="network",
            node=node,
        )
    subnet = IPv4Network(ipam["Subnet"])
    try:
        return LabSettings(
            network=choice.network,
            subnet=subnet,
            gateway=ipam["Gateway"],
            pool_first=choice.pool_first
            or _same_offset(defaults.pool_first, defaults, subnet),
            pool_last=choice.pool_last
            or _same_offset(defaults.pool_last, defaults, subnet),
            node_address=node_address,
            parent=(attrs.get("Options") or {}).get("parent"),
        )
    except ValidationError as error:
        reason = "; ".join(str(item["msg"]) for item in error.errors())
        raise InvalidInput(
            f"the lab settings of node {node} do not fit its network "
            f"{choice.network} ({subnet}): {reason}",
            hint="give --pool-first and --pool-last inside its subnet",
            field="pool_first",
            node=node,
        ) from error


def _same_offset(
    address: IPv4Address, defaults: LabSettings, subnet: IPv4Network
) -> IPv4Address:
    """``address`` of the server's lab subnet, moved to the same place in
    ``subnet`` (``.52`` stays ``.52``) when it is not in ``subnet`` already."""
    if address in subnet:
        return address
    offset = int(address) - int(defaults.subnet.network_address)
    return subnet.network_address + offset


def _remove_tls_dir(directory: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (directory / name).unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:
        log.warning("could not remove %s", directory)
