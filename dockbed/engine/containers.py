"""Lab containers on one node's Docker Engine.

This layer does what it is told, through the Docker SDK, and reports what the
engine holds: it applies no policy. Whether a name, an address or a limit is
allowed is decided by the server before it calls in here.
"""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Address
from typing import Any

import docker

from dockbed.config import LABEL_PREFIX
from dockbed.engine.client import engine_errors
from dockbed.engine.network import NetworkInfo, network_info
from dockbed.errors import EngineError, NotFound

log = logging.getLogger(__name__)

LABEL_MANAGED = f"{LABEL_PREFIX}.managed"
LABEL_OWNER = f"{LABEL_PREFIX}.owner"
LABEL_BATCH = f"{LABEL_PREFIX}.batch"
LABEL_BATCH_INDEX = f"{LABEL_PREFIX}.batch-index"
LABEL_REQUEST = f"{LABEL_PREFIX}.request"

#: Seconds sshd gets to exit on SIGTERM before the engine kills it.
STOP_TIMEOUT = 5


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create one lab container."""

    name: str
    image: str
    network: str
    address: IPv4Address
    cpus: float
    memory: str
    pids: int
    ssh_keys: tuple[str, ...] = ()
    owner: str | None = None
    batch: str | None = None
    batch_index: int | None = None
    #: The creation request as the user sent it, kept in a label.
    request: str | None = None

    def labels(self) -> dict[str, str]:
        labels = {LABEL_MANAGED: "true"}
        if self.owner is not None:
            labels[LABEL_OWNER] = self.owner
        if self.batch is not None:
            labels[LABEL_BATCH] = self.batch
        if self.batch_index is not None:
            labels[LABEL_BATCH_INDEX] = str(self.batch_index)
        if self.request is not None:
            labels[LABEL_REQUEST] = self.request
        return labels


@dataclass(frozen=True)
class ContainerInfo:
    """A container as the engine reports it, with dockbed's facts from its labels."""

    name: str
    id: str
    node: str
    image: str
    state: str
    status: str
    created: float
    #: Network name → IPv4 address; a stopped container keeps its static ones.
    addresses: dict[str, str] = field(default_factory=dict)
    owner: str | None = None
    batch: str | None = None
    batch_index: int | None = None
    managed: bool = False

    @property
    def running(self) -> bool:
        return self.state == "running"


class Engine:
    """One node's Docker Engine, as dockbed uses it."""

    def __init__(self, node: str, client: docker.DockerClient) -> None:
        self.node = node
        self.client = client
        self._engine_info: dict[str, Any] | None = None

    # Look-ups -----------------------------------------------------------------

    def containers(
        self, *, labels: Mapping[str, str] | None = None
    ) -> list[ContainerInfo]:
        """Every container, running or not; mirrors ``docker ps -a``.

        One engine call whatever the count: the list endpoint already carries
        the labels and network endpoints dockbed needs.
        """
        filters = {"label": [f"{k}={v}" for k, v in (labels or {}).items()]}
        with engine_errors("list containers", node=self.node):
            summaries = self.client.api.containers(all=True, filters=filters)
        return [self._from_summary(summary) for summary in summaries]

    def container(self, name: str) -> ContainerInfo:
        """One container by name or id; raises NotFound."""
        with engine_errors(f"inspect {name}", node=self.node, container=name):
            data = self.client.api.inspect_container(name)
        return self._from_inspect(data)

    def find(self, name: str) -> ContainerInfo | None:
        """The container called ``name``, or None."""
        try:
            return self.container(name)
        except NotFound:
            return None

    def addresses_in_use(self, network: str) -> dict[IPv4Address, str]:
        """Each address taken on ``network`` → the container holding it.

        Stopped containers count: their static address is theirs until they
        are removed.
        """
        used: dict[IPv4Address, str] = {}
        for info in self.containers():
            address = info.addresses.get(network)
            if address:
                used[IPv4Address(address)] = info.name
        return used

    def images(self) -> list[str]:
        """The tags of the images present on the node; mirrors ``docker images``."""
        with engine_errors("list images", node=self.node):
            images = self.client.api.images()
        return sorted(tag for image in images for tag in image.get("RepoTags") or [])

    def has_image(self, name: str) -> bool:
        with engine_errors(f"look up image {name}", node=self.node):
            try:
                self.client.api.inspect_image(name)
            except docker.errors.ImageNotFound:
                return False
        return True

    def cpu_count(self) -> int:
        """The node's CPUs, as the engine counts them (``docker info``)."""
        return int(self._engine_facts()["NCPU"])

    def memory_total(self) -> int:
        """The node's memory in bytes, as the engine counts it (``docker info``)."""
        return int(self._engine_facts()["MemTotal"])

    def _engine_facts(self) -> dict[str, Any]:
        if self._engine_info is None:
            with engine_errors("read engine info", node=self.node):
                self._engine_info = dict(self.client.info())
        return self._engine_info

    def network(self, name: str) -> NetworkInfo:
        """The network called ``name`` or with that id; raises NotFound."""
        with engine_errors(f"inspect network {name}", node=self.node, network=name):
            data = self.client.api.inspect_network(name)
        return network_info(data)

    # Changes ------------------------------------------------------------------

    def create(self, spec: ContainerSpec, *, start: bool = True) -> ContainerInfo:
        """Create (and start) one container; mirrors ``docker run -d``.

        The ssh keys are copied in before the first start, so sshd never runs
        without them. On any failure the half-made container is removed.
        """
        api = self.client.api
        host_config = api.create_host_config(
            nano_cpus=int(spec.cpus * 1e9),
            mem_limit=spec.memory,
            memswap_limit=spec.memory,
            pids_limit=spec.pids,
            init=False,
            # Back after a node reboot, but not if the user stopped it.
            restart_policy={"Name": "unless-stopped"},
        )
        networking = api.create_networking_config(
            {spec.network: api.create_endpoint_config(ipv4_address=str(spec.address))}
        )
        facts = {"node": self.node, "container": spec.name}
        with engine_errors(f"create {spec.name}", **facts):
            created = api.create_container(
                spec.image,
                name=spec.name,
                hostname=spec.name,
                labels=spec.labels(),
                host_config=host_config,
                networking_config=networking,
            )
        container_id = created["Id"]
        try:
            if spec.ssh_keys:
                with engine_errors(f"copy ssh keys into {spec.name}", **facts):
                    api.put_archive(
                        container_id, "/root", _ssh_key_archive(spec.ssh_keys)
                    )
            if start:
                with engine_errors(f"start {spec.name}", **facts):
                    api.start(container_id)
        except Exception:
            self._remove_quietly(container_id)
            raise
        log.info(
            "created %s at %s on %s (node %s)",
            spec.name,
            spec.address,
            spec.network,
            self.node,
        )
        return self.container(container_id)

    def start(self, name: str) -> None:
        """Mirrors ``docker start``."""
        with engine_errors(f"start {name}", node=self.node, container=name):
            self.client.api.start(name)
        log.info("started %s on %s", name, self.node)

    def stop(self, name: str) -> None:
        """Mirrors ``docker stop``."""
        with engine_errors(f"stop {name}", node=self.node, container=name):
            self.client.api.stop(name, timeout=STOP_TIMEOUT)
        log.info("stopped %s on %s", name, self.node)

    def remove(self, name: str) -> None:
        """Mirrors ``docker rm -f``."""
        with engine_errors(f"remove {name}", node=self.node, container=name):
            self.client.api.remove_container(name, force=True)
        log.info("removed %s from %s", name, self.node)

    def connect(self, name: str, network: str, address: IPv4Address | None) -> None:
        """Mirrors ``docker network connect [--ip A] NETWORK NAME``."""
        facts = {"node": self.node, "container": name, "network": network}
        try:
            with engine_errors(f"attach {name} to {network}", **facts):
                self.client.api.connect_container_to_network(
                    name, network, ipv4_address=str(address) if address else None
                )
        except EngineError:
            # A refused connect can leave an endpoint without a network in the
            # container's config, which then keeps it from starting again.
            with suppress(docker.errors.DockerException):
                self.client.api.disconnect_container_from_network(
                    name, network, force=True
                )
            raise
        log.info("attached %s to %s at %s", name, network, address or "(dynamic)")

    def disconnect(self, name: str, network: str) -> None:
        """Mirrors ``docker network disconnect NETWORK NAME``."""
        facts = {"node": self.node, "container": name, "network": network}
        with engine_errors(f"detach {name} from {network}", **facts):
            self.client.api.disconnect_container_from_network(name, network)
        log.info("detached %s from %s", name, network)

    def _remove_quietly(self, container_id: str) -> None:
        try:
            self.client.api.remove_container(container_id, force=True)
        except docker.errors.DockerException:
            log.warning("could not remove half-made container %s", container_id)

    # Translation --------------------------------------------------------------

    def _from_summary(self, summary: Mapping[str, Any]) -> ContainerInfo:
        names = summary.get("Names") or ["/" + summary["Id"][:12]]
        networks = (summary.get("NetworkSettings") or {}).get("Networks") or {}
        return self._info(
            name=names[0].lstrip("/"),
            container_id=summary["Id"],
            image=summary.get("Image", ""),
            state=summary.get("State", ""),
            status=summary.get("Status", ""),
            created=float(summary.get("Created", 0)),
            labels=summary.get("Labels") or {},
            networks=networks,
        )

    def _from_inspect(self, data: Mapping[str, Any]) -> ContainerInfo:
        state = data.get("State") or {}
        config = data.get("Config") or {}
        return self._info(
            name=data["Name"].lstrip("/"),
            container_id=data["Id"],
            image=config.get("Image", ""),
            state=state.get("Status", ""),
            status=state.get("Status", ""),
            created=_parse_created(data.get("Created", "")),
            labels=config.get("Labels") or {},
            networks=(data.get("NetworkSettings") or {}).get("Networks") or {},
        )

    def _info(
        self,
        *,
        name: str,
        container_id: str,
        image: str,
        state: str,
        status: str,
        created: float,
        labels: Mapping[str, str],
        networks: Mapping[str, Any],
    ) -> ContainerInfo:
        index = labels.get(LABEL_BATCH_INDEX)
        return ContainerInfo(
            name=name,
            id=container_id,
            node=self.node,
            image=image,
            state=state,
            status=status,
            created=created,
            addresses=_addresses(networks),
            owner=labels.get(LABEL_OWNER),
            batch=labels.get(LABEL_BATCH),
            batch_index=int(index) if index and index.isdigit() else None,
            managed=labels.get(LABEL_MANAGED) == "true",
        )


def _addresses(networks: Mapping[str, Any]) -> dict[str, str]:
    """Network → address, falling back to the static address of a stopped one."""
    addresses: dict[str, str] = {}
    for network, endpoint in networks.items():
        endpoint = endpoint or {}
        static = (endpoint.get("IPAMConfig") or {}).get("IPv4Address")
        address = endpoint.get("IPAddress") or static
        if address:
            addresses[network] = address
    return addresses


def _parse_created(text: str) -> float:
    """Docker's RFC 3339 timestamp (with nanoseconds) as Unix seconds."""
    if not text:
        return 0.0
    seconds = text.rstrip("Z").partition(".")[0]
    return datetime.fromisoformat(seconds).replace(tzinfo=UTC).timestamp()


def _ssh_key_archive(keys: Iterable[str]) -> bytes:
    """A tar of ``.ssh/authorized_keys`` for ``put_archive`` into ``/root``."""
    content = "".join(key.strip() + "\n" for key in keys).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directory = tarfile.TarInfo(".ssh")
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o700
        archive.addfile(directory)
        keys_file = tarfile.TarInfo(".ssh/authorized_keys")
        keys_file.size = len(content)
        keys_file.mode = 0o600
        archive.addfile(keys_file, io.BytesIO(content))
    return buffer.getvalue()
