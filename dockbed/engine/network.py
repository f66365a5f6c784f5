"""Docker networks: the node's lab network and experiment networks.

The lab network is a macvlan network on the lab cable::

    docker network create -d macvlan --subnet SUBNET --gateway GATEWAY \\
        --ip-range DYNAMIC_RANGE --aux-address node=NODE_ADDRESS \\
        -o parent=PARENT -o macvlan_mode=bridge \\
        --label org.dockbed.role=lab NAME

Its ``--ip-range`` is the largest block clear of the container pool and the
reserved addresses (``AddressPool.dynamic_range``), so Docker's own IPAM never
hands out an address the server allocates. Experiment networks are a
container's further interfaces: a bridge (which puts an address of its subnet
on the host) or a macvlan on another interface of the node.

Everything returned is a plain ``NetworkInfo``, never an SDK object; SDK
errors become dockbed's through ``dockbed.engine.client.engine_errors``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, ip_network
from typing import Any, Literal

import docker
import docker.errors
import docker.types

from dockbed.config import LABEL_PREFIX, LabSettings
from dockbed.devlab.cable import read_routes
from dockbed.engine.client import engine_errors
from dockbed.errors import (
    Conflict,
    InvalidAddress,
    InvalidInput,
    InvalidName,
    NameInUse,
    NotFound,
    UnsafeNetwork,
)
from dockbed.lab.addresses import AddressPool
from dockbed.lab.routes import check_subnet_is_free, default_route_devices

log = logging.getLogger(__name__)

#: The label that says what a network is to dockbed: ``lab`` or ``experiment``.
ROLE_LABEL = f"{LABEL_PREFIX}.role"
#: Who made an experiment network: they, or an admin, may remove it.
OWNER_LABEL = f"{LABEL_PREFIX}.owner"
LAB_ROLE = "lab"
EXPERIMENT_ROLE = "experiment"

#: Networks every engine has; they are never created or removed by dockbed.
PREDEFINED_NETWORKS = frozenset({"bridge", "host", "none"})

#: Docker's rule for network names, capped at a length that fits in labels
#: and messages.
_NETWORK_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")

#: The lab network's name unless the settings say otherwise. It is the default
#: wherever a lab network must be recognised, because one made by hand carries
#: no label, and removing it by mistake would cut every container off.
DEFAULT_LAB_NETWORK = str(LabSettings.model_fields["network"].default)

Driver = Literal["bridge", "macvlan"]
Route = Mapping[str, Any]


@dataclass(frozen=True)
class NetworkInfo:
    """A Docker network as dockbed shows it (``docker network inspect``)."""

    name: str
    id: str
    driver: str
    subnet: IPv4Network | None
    gateway: IPv4Address | None
    ip_range: IPv4Network | None
    #: The host interface under a macvlan network; None for other drivers.
    parent: str | None
    #: Names of the attached containers, sorted.
    container_names: tuple[str, ...] = ()
    is_lab: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def containers(self) -> int:
        """How many containers are attached."""
        return len(self.container_names)


def network_info(
    attrs: Mapping[str, Any], *, lab_name: str | None = None
) -> NetworkInfo:
    """A ``NetworkInfo`` from the engine's inspect answer for one network.

    A network counts as the lab network when it carries the lab label, or
    when it is named ``lab_name`` (a lab network made by hand has no label,
    and a network's labels cannot be added later).
    """
    config: list[dict[str, Any]] = (attrs.get("IPAM") or {}).get("Config") or []
    ipv4: dict[str, Any] = next(
        (item for item in config if ":" not in str(item.get("Subnet", ""))),
        {},
    )
    labels = dict(attrs.get("Labels") or {})
    driver = str(attrs.get("Driver", ""))
    name = str(attrs.get("Name", ""))
    containers = attrs.get("Containers") or {}
    return NetworkInfo(
        name=name,
        id=str(attrs.get("Id", "")),
        driver=driver,
        subnet=_network_or_none(ipv4.get("Subnet")),
        gateway=IPv4Address(ipv4["Gateway"]) if ipv4.get("Gateway") else None,
        ip_range=_network_or_none(ipv4.get("IPRange")),
        parent=(attrs.get("Options") or {}).get("parent")
        if driver == "macvlan"
        else None,
        container_names=tuple(
            sorted(str(item.get("Name", "")) for item in containers.values())
        ),
        is_lab=labels.get(ROLE_LABEL) == LAB_ROLE
        or (lab_name is not None and name == lab_name),
        labels=labels,
    )


def find_network(
    client: docker.DockerClient,
    name: str,
    *,
    lab_name: str | None = DEFAULT_LAB_NETWORK,
) -> NetworkInfo | None:
    """The network named exactly ``name``, or None (``docker network inspect``).

    The engine matches ids and id prefixes too; only an exact name counts here.
    """
    with engine_errors(f"looking up network {name}", network=name):
        try:
            network = client.networks.get(name)
        except docker.errors.NotFound:
            return None
    info = network_info(network.attrs, lab_name=lab_name)
    return info if info.name == name else None


def list_networks(
    client: docker.DockerClient, *, lab_name: str | None = DEFAULT_LAB_NETWORK
) -> list[NetworkInfo]:
    """Every network of the engine, by name (``docker network ls`` + inspect).

    ``lab_name`` marks an unlabelled network of that name as the lab network;
    pass the configured ``lab.network``, or None to trust labels alone.
    """
    with engine_errors("listing networks"):
        summaries = client.api.networks()
    infos = []
    for summary in summaries:
        # The list leaves out Containers, so each network is inspected; one
        # removed in between is simply no longer there, not an error.
        with engine_errors("inspecting networks"):
            try:
                attrs = client.api.inspect_network(summary["Id"])
            except docker.errors.NotFound:
                continue
        infos.append(network_info(attrs, lab_name=lab_name))
    return sorted(infos, key=lambda info: info.name)


def check_lab_network(
    client: docker.DockerClient, lab: LabSettings, parent: str
) -> NetworkInfo | None:
    """Check the lab network could be made, or matches; the existing one if any.

    Changes nothing. Raises Conflict when a network named ``lab.network``
    differs in driver, subnet, gateway or parent, or when its ``ip-range``
    reaches into the pool (Docker would hand out pool addresses); raises
    UnsafeNetwork when another network already uses the subnet.
    """
    existing = find_network(client, lab.network, lab_name=lab.network)
    if existing is not None:
        _check_matches(existing, lab, parent)
        return existing
    _check_no_overlap(client, lab.subnet)
    return None


def ensure_lab_network(
    client: docker.DockerClient, lab: LabSettings, parent: str
) -> NetworkInfo:
    """The lab network ``lab.network`` on ``parent``, created if it is missing.

    An existing network of that name that matches is left as it is, labelled
    or not; one that differs raises Conflict (see ``check_lab_network``). The
    parent itself is ``dockbed.devlab.cable``'s to check: it is never a
    default-route device unless the settings force it.
    """
    existing = check_lab_network(client, lab, parent)
    if existing is not None:
        log.debug("lab network %s exists on %s", lab.network, parent)
        return existing

    dynamic = AddressPool.from_lab(lab).dynamic_range()
    ipam = docker.types.IPAMConfig(
        pool_configs=[
            docker.types.IPAMPool(
                subnet=str(lab.subnet),
                gateway=str(lab.gateway),
                iprange=str(dynamic),
                aux_addresses={"node": str(lab.node_address)},
            )
        ]
    )
    with engine_errors(f"creating the lab network {lab.network}", network=lab.network):
        network = client.networks.create(
            lab.network,
            driver="macvlan",
            options={"parent": parent, "macvlan_mode": "bridge"},
            ipam=ipam,
            labels={ROLE_LABEL: LAB_ROLE},
            check_duplicate=True,
        )
        network.reload()
    log.info(
        "created the lab network %s (%s on %s, Docker's own range %s)",
        lab.network,
        lab.subnet,
        parent,
        dynamic,
    )
    return network_info(network.attrs, lab_name=lab.network)


def _check_matches(existing: NetworkInfo, lab: LabSettings, parent: str) -> None:
    wanted = {
        "driver": "macvlan",
        "subnet": lab.subnet,
        "gateway": lab.gateway,
        "parent": parent,
    }
    found = {
        "driver": existing.driver,
        "subnet": existing.subnet,
        "gateway": existing.gateway,
        "parent": existing.parent,
    }
    differences = [
        f"{key} {found[key]} instead of {wanted[key]}"
        for key in wanted
        if found[key] != wanted[key]
    ]
    pool = AddressPool.from_lab(lab)
    if existing.ip_range is None:
        differences.append("no ip-range, so Docker may hand out pool addresses")
    elif _range_hits_pool(existing.ip_range, pool):
        differences.append(f"ip-range {existing.ip_range} reaches into the pool {pool}")
    if differences:
        raise Conflict(
            f"the network {lab.network} exists but differs from the lab "
            f"settings: {'; '.join(differences)}",
            hint=f"remove it (docker network rm {lab.network}) once no container "
            "uses it, or change the lab settings to match it",
            network=lab.network,
            differences=differences,
        )


def _range_hits_pool(block: IPv4Network, pool: AddressPool) -> bool:
    """Whether any address of ``block`` is in the pool or reserved."""
    low, high = int(block.network_address), int(block.broadcast_address)
    if low <= int(pool.last) and high >= int(pool.first):
        return True
    return any(low <= int(address) <= high for address in pool.reserved())


def create_network(
    client: docker.DockerClient,
    name: str,
    subnet: IPv4Network | str,
    driver: Driver = "bridge",
    parent: str | None = None,
    gateway: IPv4Address | str | None = None,
    *,
    lab: LabSettings | None = None,
    routes: Sequence[Route] | None = None,
    owner: str | None = None,
) -> NetworkInfo:
    """Create an experiment network for containers' further interfaces.

    Mirrors ``docker network create -d DRIVER --subnet S [--gateway G]
    [-o parent=P] --label org.dockbed.role=experiment NAME``. Checked first,
    nothing made on failure: the name (InvalidName, NameInUse), the subnet
    (InvalidAddress; UnsafeNetwork if it overlaps another Docker network or,
    for a bridge, which puts an address on the host, a host route), and a
    macvlan parent (required; UnsafeNetwork for a default-route device, the
    lab cable or the lab network's parent).

    ``routes`` are the host's routes (``ip -json route show table all``),
    read here when not given; ``lab`` names the cable to keep clear of;
    ``owner`` is recorded in a label, for who may remove it.
    """
    # TODO: a remote node's routes are not this host's; the server must pass
    # the node's own routes once nodes report them.
    check_network_name(name)
    network = _parse_subnet(subnet)
    gateway_address = _parse_gateway(gateway, network)
    if driver not in ("bridge", "macvlan"):
        raise InvalidInput(
            f"the driver {driver!r} is not supported",
            hint="use bridge or macvlan",
            field="driver",
            driver=driver,
        )
    if routes is None:
        routes = read_routes()
    if find_network(client, name) is not None:
        raise NameInUse(
            f"a network named {name} exists",
            hint="choose another name",
            field="name",
            network=name,
        )
    _check_no_overlap(client, network)
    options: dict[str, str] = {}
    if driver == "bridge":
        if parent is not None:
            raise InvalidInput(
                "a bridge network takes no parent interface",
                hint="leave out --parent, or use --driver macvlan",
                field="parent",
            )
        try:
            check_subnet_is_free(network, routes)
        except UnsafeNetwork as error:
            # routes.py words it for the lab subnet; say why a bridge matters.
            device = error.details["device"] or "an unnamed device"
            raise UnsafeNetwork(
                f"the subnet {network} overlaps the host's route to "
                f"{error.details['route']} via {device}; a bridge network puts "
                "an address of its subnet on the host",
                hint="choose a subnet the host does not route (ip route lists them)",
                field="subnet",
                **error.details,
            ) from error
    else:
        options = {"parent": _check_macvlan_parent(client, parent, routes, lab)}
        options["macvlan_mode"] = "bridge"

    ipam = docker.types.IPAMConfig(
        pool_configs=[
            docker.types.IPAMPool(
                subnet=str(network),
                gateway=str(gateway_address) if gateway_address else None,
            )
        ]
    )
    with engine_errors(f"creating network {name}", network=name):
        created = client.networks.create(
            name,
            driver=driver,
            options=options,
            ipam=ipam,
            labels={
                ROLE_LABEL: EXPERIMENT_ROLE,
                **({OWNER_LABEL: owner} if owner else {}),
            },
            check_duplicate=True,
        )
        created.reload()
    log.info("created the %s network %s (%s)", driver, name, network)
    return network_info(created.attrs)


def remove_network(
    client: docker.DockerClient,
    name: str,
    *,
    lab_name: str | None = DEFAULT_LAB_NETWORK,
) -> None:
    """Remove the experiment network ``name`` (``docker network rm NAME``).

    Raises NotFound; InvalidInput for the lab network (labelled, or named
    ``lab_name``) and Docker's predefined networks; Conflict naming the
    containers still attached, which the engine would refuse anyway with a
    less helpful message.
    """
    info = find_network(client, name, lab_name=lab_name)
    if info is None:
        raise NotFound(
            f"no network named {name}",
            hint="dockbed net ls lists them",
            field="name",
            network=name,
        )
    if info.is_lab or name in PREDEFINED_NETWORKS:
        raise InvalidInput(
            f"{name} is {'the lab network' if info.is_lab else 'a Docker network'}"
            " and cannot be removed here",
            hint="only experiment networks can be removed",
            field="name",
            network=name,
        )
    if info.container_names:
        raise Conflict(
            f"the network {name} still has containers attached: "
            f"{', '.join(info.container_names)}",
            hint=f"detach them first (dockbed nic rm CONTAINER --network {name})",
            network=name,
            containers=list(info.container_names),
        )
    with engine_errors(f"removing network {name}", network=name):
        client.networks.get(info.id).remove()
    log.info("removed the network %s", name)


def _network_or_none(value: Any) -> IPv4Network | None:
    """The IPv4 block in an inspect answer's field, or None if absent or IPv6."""
    if not value:
        return None
    network = ip_network(str(value), strict=False)
    return network if isinstance(network, IPv4Network) else None


def check_network_name(name: str) -> None:
    """Raise InvalidName unless Docker accepts ``name`` for a network."""
    if not _NETWORK_NAME.fullmatch(name):
        raise InvalidName(
            f"{name!r} is not a valid network name",
            hint="use letters, digits, '_', '.' and '-', starting with a letter "
            "or digit, at most 63 characters",
            field="name",
            name=name,
        )


def _parse_subnet(subnet: IPv4Network | str) -> IPv4Network:
    try:
        network = ip_network(str(subnet), strict=True)
    except ValueError as error:
        raise InvalidAddress(
            f"{subnet} is not a subnet: {error}",
            hint="give it as ADDRESS/PREFIX with no host bits, e.g. 10.70.0.0/24",
            field="subnet",
            subnet=str(subnet),
        ) from error
    if not isinstance(network, IPv4Network) or network.prefixlen > 30:
        raise InvalidAddress(
            f"{subnet} is not an IPv4 subnet with room for containers",
            hint="use an IPv4 subnet of /30 or larger",
            field="subnet",
            subnet=str(subnet),
        )
    return network


def _parse_gateway(
    gateway: IPv4Address | str | None, subnet: IPv4Network
) -> IPv4Address | None:
    if gateway is None:
        return None
    try:
        address = IPv4Address(str(gateway))
    except ValueError as error:
        raise InvalidAddress(
            f"{gateway} is not an IPv4 address",
            field="gateway",
            address=str(gateway),
        ) from error
    if address not in subnet or address in (
        subnet.network_address,
        subnet.broadcast_address,
    ):
        raise InvalidAddress(
            f"the gateway {address} is not a host address of {subnet}",
            hint="choose an address inside the subnet, e.g. its first",
            field="gateway",
            address=str(address),
            subnet=str(subnet),
        )
    return address


def _check_no_overlap(client: docker.DockerClient, subnet: IPv4Network) -> None:
    """UnsafeNetwork if another Docker network already uses part of ``subnet``."""
    for info in list_networks(client):
        if info.subnet is not None and subnet.overlaps(info.subnet):
            raise UnsafeNetwork(
                f"the subnet {subnet} overlaps the network {info.name} ({info.subnet})",
                hint="choose a subnet no other network uses (dockbed net ls)",
                field="subnet",
                subnet=str(subnet),
                network=info.name,
            )


def _check_macvlan_parent(
    client: docker.DockerClient,
    parent: str | None,
    routes: Sequence[Route],
    lab: LabSettings | None,
) -> str:
    if not parent:
        raise InvalidInput(
            "a macvlan network needs a parent interface",
            hint="give --parent, an interface of the node other than its uplink "
            "and the lab cable",
            field="parent",
        )
    # A VLAN sub-interface (eth0.100) sends on its base interface.
    base = parent.split(".", 1)[0]
    if base in default_route_devices(routes):
        raise UnsafeNetwork(
            f"{parent} is on the host's default-route device {base}",
            hint="containers on it would sit on the host's uplink; choose another "
            "interface",
            field="parent",
            parent=parent,
        )
    taken = {
        info.parent: info.name
        for info in list_networks(client, lab_name=lab.network if lab else None)
        if info.is_lab and info.parent
    }
    if lab is not None:
        for name in (lab.cable_name, lab.cable_peer_name, lab.shim_name):
            taken.setdefault(name, "the lab cable")
        if lab.parent:
            taken.setdefault(lab.parent, "the lab cable")
    for name in (parent, base):
        if name in taken:
            raise UnsafeNetwork(
                f"{name} carries the lab network ({taken[name]}); an experiment "
                "network must use another interface",
                hint="choose an interface of the node other than the lab cable",
                field="parent",
                parent=parent,
            )
    return parent
