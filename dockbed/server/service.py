"""What the server does for a user: the rules, then the engine.

Every request is checked in full before the engine is touched, so bad input
changes nothing; a batch that fails midway is rolled back. Addresses on a lab
network come only from here, through one ledger, which is what makes the
server the one authority for them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Literal, Protocol

import docker.errors
import docker.utils

from dockbed.config import Settings
from dockbed.engine.containers import ContainerInfo, ContainerSpec, Engine
from dockbed.engine.network import NetworkInfo
from dockbed.errors import (
    AddressInUse,
    AlreadyAttached,
    BatchFailed,
    Conflict,
    DockbedError,
    EngineError,
    InvalidAddress,
    InvalidCount,
    InvalidInput,
    NameInUse,
    NotFound,
)
from dockbed.lab.addresses import AddressPool
from dockbed.lab.allocation import AddressLedger, Reservation
from dockbed.lab.names import batch_names, check_name
from dockbed.lab.placement import check_one_segment, spread
from dockbed.server import readiness
from dockbed.server.nodes import NodeRegistry
from dockbed.server.schemas import (
    ActionResult,
    AddressReport,
    BatchPlan,
    BatchRequest,
    CreateRequest,
    Limits,
    PlannedContainer,
)

log = logging.getLogger(__name__)

#: Docker's predefined networks: never a container's second interface here.
DOCKER_NETWORKS = frozenset({"bridge", "host", "none"})

_SSH_KEY = re.compile(
    r"(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+( .*)?"
)

Action = Literal["start", "stop", "remove"]


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user's name and whether they administer dockbed.

    ``token_id`` is the API token the request came with, if it came with one.
    """

    name: str
    is_admin: bool = False
    token_id: int | None = None

    def may_see(self, info: ContainerInfo) -> bool:
        """Their own lab containers; an admin's, every lab container.

        Containers dockbed did not make (no ``managed`` label: the broker,
        other tools' containers) are nobody's to list or act on here.
        """
        return info.managed and (self.is_admin or info.owner == self.name)


class SavedKeys(Protocol):
    """Where a user's own public keys are kept (the store)."""

    def keys_of(self, user_name: str) -> list[str]: ...


class _NoSavedKeys:
    def keys_of(self, user_name: str) -> list[str]:
        return []


@dataclass(frozen=True)
class PreparedBatch:
    """A checked batch with its addresses reserved, ready to be created."""

    plan: BatchPlan
    specs: list[ContainerSpec]
    reservation: Reservation
    wait_ready: bool
    claim: CapClaim
    #: The node of each spec, in the same order.
    placement: list[str]


@dataclass(frozen=True)
class _CheckedBatch:
    """A batch request that passed every check but the addresses."""

    prefix: str
    #: The nodes it is spread over, and the node of each container.
    nodes: list[str]
    placement: list[str]
    image: str
    network: str
    names: list[str]
    keys: tuple[str, ...]
    pool: AddressPool
    base: IPv4Address | None

    @property
    def node(self) -> str:
        return self.nodes[0]

    def choose(self, used: Mapping[IPv4Address, str]) -> list[IPv4Address]:
        return self.pool.allocate(
            len(self.names), used, base=self.base, field="base_ip"
        )

    def plan(self, addresses: list[IPv4Address]) -> BatchPlan:
        return BatchPlan(
            prefix=self.prefix,
            node=self.node,
            nodes=self.nodes,
            image=self.image,
            network=self.network,
            containers=[
                PlannedContainer(name=name, ip=address, node=node)
                for name, address, node in zip(
                    self.names, addresses, self.placement, strict=True
                )
            ],
        )


class LabService:
    """Container operations on the nodes of a registry, with dockbed's rules."""

    def __init__(
        self,
        settings: Settings,
        nodes: NodeRegistry,
        saved_keys: SavedKeys | None = None,
    ) -> None:
        self.settings = settings
        self.nodes = nodes
        self.ledger = AddressLedger()
        self.saved_keys = saved_keys or _NoSavedKeys()
        self.running_cap = RunningCap(settings)

    # Look-ups -----------------------------------------------------------------

    def list_containers(
        self,
        principal: Principal,
        *,
        node: str | None = None,
        batch: str | None = None,
        running_only: bool = False,
    ) -> list[ContainerInfo]:
        """The containers ``principal`` may see, on one node or all of them.

        All nodes are read at once; a node that does not answer shows the
        containers it had when last seen, in the state ``unknown``.
        """
        found: list[ContainerInfo] = []
        names = [self._node_name(node)] if node else self.nodes.names()
        for snapshot in self.nodes.snapshots(names):
            for info in snapshot.containers:
                if not principal.may_see(info):
                    continue
                if batch is not None and info.batch != batch:
                    continue
                if running_only and not info.running:
                    continue
                found.append(info)
        return sorted(found, key=_natural_order)

    def get_container(
        self, principal: Principal, node: str | None, name: str
    ) -> ContainerInfo:
        """One container ``principal`` may see; NotFound for the others."""
        node_name = self._node_name(node)
        info = self.nodes.engine(node_name).find(name)
        if info is None or not principal.may_see(info):
            raise NotFound(
                f"no container {name!r} on node {node_name}",
                hint="'dockbed ls' lists yours",
                field="name",
                node=node_name,
                container=name,
            )
        return info

    def address_report(self, node: str | None) -> AddressReport:
        """Used and free addresses of a node's lab pool."""
        node_name = self._node_name(node)
        config = self.nodes.config(node_name)
        pool = config.pool()
        used = self._lab_addresses_in_use(node_name)
        free = [address for address in pool.addresses() if address not in used]
        return AddressReport(
            node=node_name,
            network=config.lab.network,
            subnet=str(config.lab.subnet),
            pool_first=pool.first,
            pool_last=pool.last,
            used={str(address): holder for address, holder in sorted(used.items())},
            free=len(free),
            next_free=free[0] if free else None,
            free_addresses=free,
        )

    # Creation -----------------------------------------------------------------

    def create(self, principal: Principal, request: CreateRequest) -> ContainerInfo:
        """Check, reserve an address, create and start one container."""
        node_name = self._node_name(request.node)
        engine = self.nodes.engine(node_name)
        check_name(request.name)
        image = self._check_image(engine, request.image)
        self._check_limits(engine, request)
        keys = self._keys_for(principal, request.ssh_keys)
        self._check_names_free(engine, [request.name])

        pool = self.nodes.config(node_name).pool()
        if request.ip is not None:
            pool.check(request.ip, field="ip")
        with (
            self.running_cap.hold(principal, 1, self._running_counts),
            self._reserve(
                node_name,
                lambda used: pool.allocate(1, used, base=request.ip, field="ip"),
                holder=request.name,
            ) as reservation,
        ):
            spec = self._spec(
                principal,
                node_name,
                image,
                request,
                request.name,
                reservation.addresses[0],
                keys,
                request=request.model_dump_json(exclude={"ssh_keys"}),
            )
            info = engine.create(spec)
            self.nodes.remember(info)
        if request.wait_ready:
            readiness.wait_for_ssh([reservation.addresses[0]])
        return info

    def preview_batch(self, principal: Principal, request: BatchRequest) -> BatchPlan:
        """What the batch would create now; checks everything, creates nothing."""
        checked = self._check_batch(request)
        self.running_cap.hold(
            principal, request.count, self._running_counts, field="count"
        ).release()
        promised = self.ledger.promised(self._ledger_key(checked.node))
        used = {**self._lab_addresses_in_use(checked.node), **promised}
        return checked.plan(checked.choose(used))

    def prepare_batch(
        self, principal: Principal, request: BatchRequest
    ) -> PreparedBatch:
        """Check a batch and reserve its addresses; nothing is created yet.

        The caller must hand the result to :meth:`run_batch`, which releases
        the reservation and the claim on the principal's running cap when it
        is done.
        """
        checked = self._check_batch(request)
        keys = self._keys_for(principal, list(checked.keys))
        claim = self.running_cap.hold(
            principal, request.count, self._running_counts, field="count"
        )
        try:
            reservation = self._reserve(
                checked.node, checked.choose, holder=f"batch {request.prefix}"
            )
        except BaseException:
            claim.release()
            raise
        recorded = request.model_dump_json(exclude={"ssh_keys"})
        specs = [
            self._spec(
                principal,
                node,
                checked.image,
                request,
                name,
                address,
                keys,
                batch=request.prefix,
                batch_index=index,
                request=recorded,
            )
            for index, (name, address, node) in enumerate(
                zip(
                    checked.names,
                    reservation.addresses,
                    checked.placement,
                    strict=True,
                ),
                start=1,
            )
        ]
        return PreparedBatch(
            checked.plan(reservation.addresses),
            specs,
            reservation,
            request.wait_ready,
            claim,
            checked.placement,
        )

    def _batch_nodes(self, request: BatchRequest) -> list[str]:
        """The nodes a batch goes to: ``nodes``, else ``node``, else the default."""
        if request.nodes and request.node:
            raise InvalidInput(
                "give node or nodes, not both",
                hint="nodes spreads the batch over several; node puts it on one",
                field="nodes",
            )
        names = request.nodes or [self._node_name(request.node)]
        for name in names:
            self.nodes.config(name)
        return names

    def _check_batch(self, request: BatchRequest) -> _CheckedBatch:
        targets = self._batch_nodes(request)
        if request.count <= 0 or request.count > self.settings.batch_max:
            raise InvalidCount(
                f"a batch holds 1 to {self.settings.batch_max} containers, "
                f"not {request.count}",
                hint="the cap is batch_max in the config",
                field="count",
                count=request.count,
            )
        placement = spread(request.count, targets)
        names = batch_names(request.prefix, request.count)
        pool = check_one_segment(
            {name: self.nodes.config(name).pool() for name in targets}
        )
        keys = check_ssh_keys(request.ssh_keys)
        image = ""
        for name in targets:
            engine = self.nodes.engine(name)
            image = self._check_image(engine, request.image)
            self._check_limits(engine, request)
            # A member's name is free on every node of the batch, so that
            # --batch and the names mean one container each.
            self._check_names_free(engine, names, field="prefix")
        return _CheckedBatch(
            prefix=request.prefix,
            nodes=targets,
            placement=placement,
            image=image,
            network=self.nodes.config(targets[0]).lab.network,
            names=names,
            keys=keys,
            pool=pool,
            base=None if request.base_ip == "auto" else request.base_ip,
        )

    def run_batch(
        self,
        prepared: PreparedBatch,
        on_created: Callable[[ContainerInfo], None] = lambda info: None,
    ) -> list[ContainerInfo]:
        """Create and start a prepared batch in parallel: all of it, or none.

        If any container fails, the rest are not started, those already made
        are removed, and BatchFailed says which failed and why.
        """
        engines = {name: self.nodes.engine(name) for name in prepared.plan.nodes}
        created: list[ContainerInfo] = []
        failures: dict[str, str] = {}
        with (
            prepared.claim,
            prepared.reservation,
            ThreadPoolExecutor(
                max_workers=self.settings.batch_concurrency,
                thread_name_prefix=f"batch-{prepared.plan.prefix}",
            ) as workers,
        ):
            futures: dict[Future[ContainerInfo], ContainerSpec] = {
                workers.submit(engines[node].create, spec): spec
                for spec, node in zip(prepared.specs, prepared.placement, strict=True)
            }
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    error = future.exception()
                    if error is None:
                        created.append(future.result())
                        self.nodes.remember(created[-1])
                        on_created(created[-1])
                    else:
                        failures[futures[future].name] = str(error)
                if failures:
                    for future in pending:
                        future.cancel()
            if failures:
                self._roll_back(engines, created, workers)
        if failures:
            raise _batch_failed(prepared.plan.prefix, failures, created)
        if prepared.wait_ready:
            try:
                readiness.wait_for_ssh([spec.address for spec in prepared.specs])
            except EngineError as error:
                # A container whose sshd never answers is of no use to the
                # class: the batch failed, and all or nothing still holds.
                with ThreadPoolExecutor(self.settings.batch_concurrency) as workers:
                    self._roll_back(engines, created, workers)
                late = {
                    str(a): "sshd did not answer"
                    for a in error.details.get("addresses", [])
                }
                raise _batch_failed(prepared.plan.prefix, late, created) from error
        log.info("batch %s: %d containers up", prepared.plan.prefix, len(created))
        return sorted(created, key=_natural_order)

    # Lifecycle ----------------------------------------------------------------

    def act(
        self,
        principal: Principal,
        action: Action,
        *,
        node: str | None,
        names: Iterable[str] = (),
        batch: str | None = None,
    ) -> ActionResult:
        """Start, stop or remove the named containers, or a whole batch.

        Names are looked up on ``node`` (default the local one); a batch on
        ``node``, or on every node when none is given, since a batch may be
        spread over several. Every name is looked up first: an unknown one
        refuses the whole request before anything is done. A member on a
        node that does not answer fails on its own, naming the node.
        """
        node_name = self._node_name(node)
        targets = [self.get_container(principal, node_name, name) for name in names]
        if batch is not None:
            members = self.list_containers(principal, node=node, batch=batch)
            if not members:
                where = f"on node {node}" if node else "on any node"
                raise NotFound(
                    f"no batch {batch!r} {where}",
                    field="batch",
                    node=node,
                    batch=batch,
                )
            targets.extend(members)
        if not targets:
            raise InvalidInput("name at least one container, or a batch", field="names")

        def operation(info: ContainerInfo) -> None:
            engine = self.nodes.engine(info.node)
            methods = {
                "start": engine.start,
                "stop": engine.stop,
                "remove": engine.remove,
            }
            methods[action](info.name)

        if action == "start":
            starting = [info for info in targets if not info.running]
            with self.running_cap.hold(principal, len(starting), self._running_counts):
                return self._apply(operation, targets)
        return self._apply(operation, targets)

    def _apply(
        self,
        operation: Callable[[ContainerInfo], object],
        targets: list[ContainerInfo],
    ) -> ActionResult:
        """Run ``operation`` on each target in parallel; what worked and what not."""
        result = ActionResult(done=[])
        with ThreadPoolExecutor(max_workers=self.settings.batch_concurrency) as workers:
            futures = {workers.submit(operation, info): info.name for info in targets}
            for future, name in futures.items():
                error = future.exception()
                if error is None:
                    result.done.append(name)
                else:
                    result.failed[name] = str(error)
        return result

    # Second interfaces --------------------------------------------------------

    def attach(
        self,
        principal: Principal,
        node: str | None,
        name: str,
        network: str,
        address: IPv4Address | None,
    ) -> ContainerInfo:
        """Attach a container to another network: ``docker network connect``."""
        node_name = self._node_name(node)
        engine = self.nodes.engine(node_name)
        info = self.get_container(principal, node_name, name)
        facts = self._network_facts(engine, network)
        if facts.name in DOCKER_NETWORKS:
            raise InvalidInput(
                f"{facts.name} is Docker's own network, not an experiment network",
                hint="make one with 'dockbed net create NAME --subnet S'",
                field="network",
                network=facts.name,
            )
        if network in info.addresses or facts.name in info.addresses:
            raise AlreadyAttached(
                f"{name} is already on {network} at {info.addresses.get(facts.name)}",
                hint=f"use 'dockbed nic set {name} --network {network} --ip A' to "
                "re-address it",
                field="network",
                container=name,
                network=network,
            )
        if facts.name == self.nodes.config(node_name).lab.network:
            with self._reserve_lab(node_name, name, address) as reservation:
                engine.connect(name, facts.name, reservation.addresses[0])
        else:
            if address is not None:
                self._check_on_network(engine, facts.name, address)
            engine.connect(name, facts.name, address)
        return engine.container(name)

    def readdress(
        self,
        principal: Principal,
        node: str | None,
        name: str,
        network: str,
        address: IPv4Address,
    ) -> ContainerInfo:
        """Give a container's interface on ``network`` another address.

        Docker cannot change an endpoint's address in place, so the container
        is detached and attached again; if the new address is refused by the
        engine, the old one is put back.
        """
        node_name = self._node_name(node)
        engine = self.nodes.engine(node_name)
        info = self.get_container(principal, node_name, name)
        facts = self._network_facts(engine, network)
        old = info.addresses.get(facts.name)
        if old is None:
            raise NotFound(
                f"{name} has no interface on {network}",
                hint=f"use 'dockbed nic add {name} --network {network}' first",
                field="network",
                container=name,
                network=network,
            )
        if str(address) == old:
            return info
        if facts.name == self.nodes.config(node_name).lab.network:
            with self._reserve_lab(node_name, name, address) as reservation:
                self._swap_address(
                    engine, name, facts.name, IPv4Address(old), reservation.addresses[0]
                )
        else:
            self._check_on_network(engine, facts.name, address)
            self._swap_address(engine, name, facts.name, IPv4Address(old), address)
        return engine.container(name)

    def detach(
        self, principal: Principal, node: str | None, name: str, network: str
    ) -> ContainerInfo:
        """Detach a container from a network: ``docker network disconnect``."""
        node_name = self._node_name(node)
        engine = self.nodes.engine(node_name)
        info = self.get_container(principal, node_name, name)
        facts = self._network_facts(engine, network)
        if facts.name not in info.addresses:
            raise NotFound(
                f"{name} has no interface on {network}",
                field="network",
                container=name,
                network=network,
            )
        if facts.name == self.nodes.config(node_name).lab.network:
            raise InvalidInput(
                f"{name} would lose its lab address: the lab network is its first "
                "interface, not a second one",
                hint=f"'dockbed nic set {name} --network {network} --ip A' "
                "re-addresses it; 'dockbed rm' removes the container",
                field="network",
                container=name,
                network=network,
            )
        engine.disconnect(name, facts.name)
        return engine.container(name)

    # Helpers ------------------------------------------------------------------

    def _node_name(self, node: str | None) -> str:
        name = node or self.settings.node_name
        self.nodes.config(name)
        return name

    def _ledger_key(self, node: str) -> str:
        """Addresses are promised per lab segment: nodes on one lab switch
        share its subnet, so an address is unique on the segment."""
        return self.nodes.config(node).segment

    def _lab_addresses_in_use(self, node: str) -> dict[IPv4Address, str]:
        """Every address taken on the node's lab segment, on whichever node."""
        return self.nodes.segment_addresses(self.nodes.config(node).segment)

    def _reserve(
        self,
        node: str,
        choose: Callable[[Mapping[IPv4Address, str]], list[IPv4Address]],
        holder: str,
    ) -> Reservation:
        return self.ledger.reserve(
            self._ledger_key(node),
            lambda: self._lab_addresses_in_use(node),
            choose,
            holder,
        )

    def _reserve_lab(
        self, node: str, name: str, address: IPv4Address | None
    ) -> Reservation:
        pool = self.nodes.config(node).pool()
        if address is not None:
            pool.check(address, field="ip")
        return self._reserve(
            node,
            lambda used: pool.allocate(1, used, base=address, field="ip"),
            holder=name,
        )

    def _check_image(self, engine: Engine, image: str | None) -> str:
        name = image or self.settings.image
        if not engine.has_image(name):
            raise NotFound(
                f"no image {name!r} on node {engine.node}",
                hint=f"images there: {', '.join(engine.images()) or 'none'}; "
                "'dockbed image build' makes the base image",
                field="image",
                node=engine.node,
                image=name,
            )
        return name

    def _check_limits(self, engine: Engine, limits: Limits) -> None:
        defaults = self.settings.limits
        cpus = limits.cpus if limits.cpus is not None else defaults.cpus
        if not 0.01 <= cpus <= engine.cpu_count():
            raise InvalidInput(
                f"cpus must be between 0.01 and {engine.cpu_count()} "
                f"(the node's CPUs), not {cpus}",
                field="cpus",
                cpus=cpus,
            )
        memory = limits.memory or defaults.memory
        try:
            memory_bytes = docker.utils.parse_bytes(memory)
        except docker.errors.DockerException as error:
            raise InvalidInput(
                f"memory {memory!r} is not a size",
                hint="write it like 512m or 2g",
                field="memory",
                memory=memory,
            ) from error
        if memory_bytes > engine.memory_total():
            raise InvalidInput(
                f"memory {memory!r} is more than node {engine.node} has "
                f"({engine.memory_total() / 2**30:.1f} GiB)",
                field="memory",
                memory=memory,
            )
        if memory_bytes < 6 * 2**20:
            raise InvalidInput(
                f"memory {memory!r} is below the engine's minimum of 6m",
                field="memory",
                memory=memory,
            )
        pids = limits.pids if limits.pids is not None else defaults.pids
        if pids < 8:
            raise InvalidInput(
                f"pids must be at least 8 (sshd and a shell need a few), not {pids}",
                field="pids",
                pids=pids,
            )

    def _keys_for(self, principal: Principal, keys: list[str]) -> tuple[str, ...]:
        """The request's keys, or else the ones the principal saved."""
        return check_ssh_keys(keys or self.saved_keys.keys_of(principal.name))

    def _running_counts(self) -> Counter[str]:
        """Running containers by owner, over every node.

        A node that does not answer counts with what ran there when it was
        last seen: its containers may well still run.
        """
        counts: Counter[str] = Counter()
        for snapshot in self.nodes.snapshots(self.nodes.names()):
            for info in snapshot.containers:
                if info.owner and (info.running or info.name in snapshot.seen_running):
                    counts[info.owner] += 1
        return counts

    def _check_names_free(
        self, engine: Engine, names: list[str], *, field: str = "name"
    ) -> None:
        existing = {info.name for info in engine.containers()}
        taken = [name for name in names if name in existing]
        if taken:
            raise NameInUse(
                f"{', '.join(taken)} already exist{'s' if len(taken) == 1 else ''} "
                f"on node {engine.node}",
                hint="remove them first, or choose another name",
                field=field,
                node=engine.node,
                names=taken,
            )

    def _spec(
        self,
        principal: Principal,
        node: str,
        image: str,
        limits: Limits,
        name: str,
        address: IPv4Address,
        keys: tuple[str, ...],
        *,
        batch: str | None = None,
        batch_index: int | None = None,
        request: str | None = None,
    ) -> ContainerSpec:
        defaults = self.settings.limits
        return ContainerSpec(
            name=name,
            image=image,
            network=self.nodes.config(node).lab.network,
            address=address,
            cpus=limits.cpus if limits.cpus is not None else defaults.cpus,
            memory=limits.memory or defaults.memory,
            pids=limits.pids if limits.pids is not None else defaults.pids,
            ssh_keys=keys,
            owner=principal.name,
            batch=batch,
            batch_index=batch_index,
            request=request,
        )

    @staticmethod
    def _network_facts(engine: Engine, network: str) -> NetworkInfo:
        try:
            return engine.network(network)
        except NotFound as error:
            raise NotFound(
                f"no network {network!r} on node {engine.node}",
                hint="'dockbed net ls' lists them",
                field="network",
                network=network,
            ) from error

    @staticmethod
    def _check_on_network(engine: Engine, network: str, address: IPv4Address) -> None:
        facts = engine.network(network)
        if facts.subnet is not None and address not in facts.subnet:
            raise InvalidAddress(
                f"{address} is outside {network}'s subnet {facts.subnet}",
                field="ip",
                address=str(address),
            )
        # A network made without a gateway still has one: Docker takes the
        # subnet's first host for a bridge, and its inspect answer omits it.
        gateway = facts.gateway
        if gateway is None and facts.subnet is not None and facts.driver == "bridge":
            gateway = facts.subnet.network_address + 1
        if facts.subnet is not None and address in (
            facts.subnet.network_address,
            facts.subnet.broadcast_address,
        ):
            raise InvalidAddress(
                f"{address} is the network or broadcast address of {network}",
                field="ip",
                address=str(address),
            )
        if address == gateway:
            raise InvalidAddress(
                f"{address} is the gateway of {network}",
                field="ip",
                address=str(address),
            )
        holder = engine.addresses_in_use(network).get(address)
        if holder is not None:
            raise AddressInUse(
                f"{address} is in use on {network} by {holder}",
                field="ip",
                address=str(address),
                holder=holder,
            )

    @staticmethod
    def _swap_address(
        engine: Engine, name: str, network: str, old: IPv4Address, new: IPv4Address
    ) -> None:
        engine.disconnect(name, network)
        try:
            engine.connect(name, network, new)
        except DockbedError:
            engine.connect(name, network, old)
            raise

    @staticmethod
    def _roll_back(
        engines: Mapping[str, Engine],
        created: list[ContainerInfo],
        workers: ThreadPoolExecutor,
    ) -> None:
        for future in [
            workers.submit(engines[info.node].remove, info.name) for info in created
        ]:
            if future.exception() is not None:
                log.warning(
                    "rollback could not remove a container: %s", future.exception()
                )


def _batch_failed(
    prefix: str, failures: Mapping[str, str], created: list[ContainerInfo]
) -> BatchFailed:
    """The error of a rolled-back batch: the first failure, then the count."""
    first, why = sorted(failures.items())[0]
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    removed = (
        f"the {len(created)} containers already made were removed"
        if created
        else "no container had been made"
    )
    return BatchFailed(
        f"batch {prefix} failed: {first}: {why}{more}",
        hint=f"{removed}; nothing of the batch is left",
        failed=dict(failures),
        rolled_back=[info.name for info in created],
    )


def check_ssh_keys(keys: Iterable[str]) -> tuple[str, ...]:
    """The keys stripped, each checked to be one line of a ``.pub`` file.

    Raises InvalidInput (field ``ssh_keys``) naming the first bad one.
    """
    checked: list[str] = []
    for key in keys:
        if not _SSH_KEY.fullmatch(key.strip()):
            raise InvalidInput(
                f"not an ssh public key: {key[:40]!r}",
                hint="pass the contents of a .pub file, e.g. ~/.ssh/id_ed25519.pub",
                field="ssh_keys",
            )
        checked.append(key.strip())
    return tuple(checked)


class CapClaim:
    """Room under a user's running cap, held until the containers run or fail.

    A context manager; leaving it (or :meth:`release`) gives the room back,
    once, after which the containers themselves count.
    """

    def __init__(self, cap: RunningCap | None, owner: str, count: int) -> None:
        self._cap = cap
        self._owner = owner
        self._count = count

    def release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.give_back(self._owner, self._count)

    def __enter__(self) -> CapClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RunningCap:
    """The per-user cap on running containers (``user_max_running``).

    A request is checked against the containers the owner has running plus
    those still being created for them, so two batches sent at once cannot
    both slip under the cap. Admins have ``admin_max_running``, by default
    none. The cap counts containers by owner label over every node.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pending: Counter[str] = Counter()
        self._lock = threading.Lock()

    def limit_for(self, principal: Principal) -> int | None:
        if principal.is_admin:
            return self.settings.admin_max_running
        return self.settings.user_max_running

    def hold(
        self,
        principal: Principal,
        count: int,
        running_counts: Callable[[], Counter[str]],
        *,
        field: str | None = None,
    ) -> CapClaim:
        """Claim room for ``count`` more; raises Conflict naming cap and count."""
        cap = self.limit_for(principal)
        if cap is None or count <= 0:
            return CapClaim(None, principal.name, 0)
        running = running_counts()[principal.name]
        with self._lock:
            pending = self._pending[principal.name]
            if running + pending + count > cap:
                raise Conflict(
                    f"{principal.name} may run {cap} containers at once and has "
                    f"{running + pending}; {count} more would make "
                    f"{running + pending + count}",
                    hint="stop or remove some first, or ask an admin to raise "
                    "user_max_running",
                    field=field,
                    cap=cap,
                    running=running,
                    pending=pending,
                    requested=count,
                )
            self._pending[principal.name] += count
        return CapClaim(self, principal.name, count)

    def give_back(self, owner: str, count: int) -> None:
        with self._lock:
            self._pending[owner] -= count
            if self._pending[owner] <= 0:
                del self._pending[owner]


def _natural_order(info: ContainerInfo) -> tuple[str, str, int, str]:
    """lab-2 before lab-10: batch members by index, the rest by name."""
    return (info.node, info.batch or info.name, info.batch_index or 0, info.name)
