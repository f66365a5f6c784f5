"""Node setup and experiment networks on the real engine and the host's ``ip``.

Everything here has its own names and subnet (network ``dbtest-lab``, cable
``dbtcab0``/``dbtcab1``, shim ``dbtshim0``, 10.213.0.0/24 and neighbours),
never the node's own lab: that one carries other tests' containers. Every
interface and network a test makes is registered and removed afterwards,
whatever the outcome. The host's uplink is read from ``ip -json route`` at
test time: it can be any subnet on another machine.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, ip_network
from pathlib import Path

import docker
import docker.errors
import pytest

from dockbed.config import LabSettings, Settings
from dockbed.devlab.cable import (
    check_cable,
    ensure_shim,
    read_link,
    read_routes,
    remove_cable,
)
from dockbed.engine.network import (
    NetworkInfo,
    check_lab_network,
    create_network,
    find_network,
    list_networks,
    remove_network,
)
from dockbed.engine.node import setup_node
from dockbed.errors import (
    Conflict,
    HostError,
    InvalidAddress,
    InvalidInput,
    InvalidName,
    NameInUse,
    NotFound,
    UnsafeNetwork,
)
from dockbed.lab.routes import default_route_devices

pytestmark = pytest.mark.integration

TEST_LAB = LabSettings(
    network="dbtest-lab",
    subnet=IPv4Network("10.213.0.0/24"),
    gateway=IPv4Address("10.213.0.1"),
    pool_first=IPv4Address("10.213.0.52"),
    pool_last=IPv4Address("10.213.0.240"),
    node_address=IPv4Address("10.213.0.51"),
    cable_name="dbtcab0",
    cable_peer_name="dbtcab1",
    shim_name="dbtshim0",
)
#: A second stand-in interface, for experiment macvlan networks.
EXPERIMENT_CABLE = ("dbtexp0", "dbtexp1")
TEST_INTERFACES = (
    TEST_LAB.shim_name,
    TEST_LAB.cable_name,
    TEST_LAB.cable_peer_name,
    *EXPERIMENT_CABLE,
)


class Created:
    """Networks and interfaces a test made, removed when it ends."""

    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.client = client
        self.image = image
        self.networks: list[str] = [TEST_LAB.network]
        self.cables: list[str] = []
        self.containers: list[str] = []

    def container(self, stem: str, network: str, address: str | None = None) -> str:
        """Run a lab container on ``network``; its name, registered by id.

        Removed by id, not by listing the engine: other tests' containers come
        and go meanwhile, and a listing races with them.
        """
        name = f"dbtnet-{stem}"
        endpoint = self.client.api.create_endpoint_config(ipv4_address=address)
        container = self.client.containers.run(
            self.image,
            name=name,
            detach=True,
            network=network,
            networking_config={network: endpoint},
        )
        self.containers.append(str(container.id))
        return name

    def network(self, name: str) -> str:
        self.networks.append(name)
        return name

    def veth(self, name: str, peer: str) -> str:
        """A veth pair, both ends up, registered for removal."""
        self.cables.append(name)
        subprocess.run(
            ["ip", "link", "add", name, "type", "veth", "peer", "name", peer],
            check=True,
        )
        for end in (name, peer):
            subprocess.run(["ip", "link", "set", end, "up"], check=True)
        return name

    def remove_all(self) -> None:
        for container_id in self.containers:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.api.remove_container(container_id, force=True)
        for name in reversed(self.networks):
            try:
                network = self.client.networks.get(name)
            except docker.errors.NotFound:
                continue
            if network.name != name:
                continue
            network.reload()
            for container_id in network.attrs.get("Containers") or {}:
                network.disconnect(container_id, force=True)
            network.remove()
        remove_cable(TEST_LAB)
        for name in self.cables:
            if read_link(name) is not None:
                subprocess.run(["ip", "link", "del", name], check=True)


@pytest.fixture
def created(
    docker_client: docker.DockerClient, settings: Settings
) -> Iterator[Created]:
    registry = Created(docker_client, settings.image)
    # A run that was killed may have left its objects; start from nothing.
    registry.remove_all()
    yield registry
    registry.remove_all()


@pytest.fixture
def test_settings(settings: Settings, tmp_path: Path) -> Settings:
    """The node's settings with the test lab, and logs kept to the test."""
    return settings.model_copy(update={"lab": TEST_LAB, "log_dir": tmp_path})


def uplink() -> tuple[str, IPv4Network]:
    """The device of the host's IPv4 default route, and a subnet it routes."""
    routes = read_routes()
    devices = default_route_devices(
        route for route in routes if ":" not in str(route.get("gateway", ""))
    )
    for route in routes:
        if route.get("dev") in devices and route.get("table") is None:
            destination = str(route.get("dst", ""))
            if destination != "default" and ":" not in destination:
                network = ip_network(destination, strict=False)
                assert isinstance(network, IPv4Network)
                return str(route["dev"]), network
    pytest.fail(f"no IPv4 route through the default-route devices {devices}")


def lab_in(subnet: IPv4Network) -> LabSettings:
    """Test lab settings whose subnet overlaps ``subnet`` (at least a /24)."""
    block = subnet.supernet(new_prefix=min(subnet.prefixlen, 24))
    hosts = list(block.hosts())
    return TEST_LAB.model_copy(
        update={
            "subnet": block,
            "gateway": hosts[0],
            "node_address": hosts[1],
            "pool_first": hosts[2],
            "pool_last": hosts[-1],
        }
    )


#: Interfaces Docker makes for containers of other tests running meanwhile.
_DOCKER_DEVICES = ("br-", "veth", "docker0")


def host_state(client: docker.DockerClient) -> tuple[list[str], list[str], list[str]]:
    """IPv4 addresses, IPv4 routes and test networks, to show nothing changed.

    Docker's own bridges and veths are left out: containers of tests running
    meanwhile come and go on them.
    """
    addresses = json.loads(
        subprocess.run(
            ["ip", "-json", "addr"], capture_output=True, text=True, check=True
        ).stdout
    )
    ipv4 = sorted(
        f"{link['ifname']} {info['local']}/{info['prefixlen']}"
        for link in addresses
        if not str(link["ifname"]).startswith(_DOCKER_DEVICES)
        for info in link.get("addr_info", [])
        if info.get("family") == "inet"
    )
    routes = sorted(
        f"{route.get('table', 'main')} {route.get('type', '')} {route['dst']} "
        f"{route.get('dev', '')}"
        for route in read_routes()
        if ":" not in str(route["dst"])
        and not str(route.get("dev", "")).startswith(_DOCKER_DEVICES)
    )
    networks = sorted(
        info.name for info in list_networks(client) if info.name.startswith("dbt")
    )
    return ipv4, routes, networks


def assert_no_test_objects(client: docker.DockerClient) -> None:
    for name in TEST_INTERFACES:
        assert read_link(name) is None, f"{name} was created"
    assert find_network(client, TEST_LAB.network) is None


def wait_for_ping(address: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(
            ["ping", "-c", "1", "-W", "1", address], capture_output=True, check=False
        )
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{address} does not answer ping")
        time.sleep(0.2)


# --- node setup -------------------------------------------------------------


def test_setup_makes_the_lab_and_a_second_run_changes_nothing(
    test_settings: Settings, created: Created, docker_client: docker.DockerClient
) -> None:
    first = setup_node(test_settings, build=False)

    outcomes = {step.name: step.outcome for step in first.steps}
    assert outcomes == {
        "engine": "present",
        "cable": "created",
        "shim": "created",
        "lab network": "created",
        "image": "skipped",
    }
    shim = read_link(TEST_LAB.shim_name)
    assert shim is not None
    assert shim["link"] == TEST_LAB.cable_name
    network = find_network(docker_client, TEST_LAB.network)
    assert network is not None
    assert network.is_lab
    assert network.driver == "macvlan"
    assert network.parent == TEST_LAB.cable_name
    assert network.subnet == TEST_LAB.subnet
    assert network.ip_range == IPv4Network("10.213.0.16/28")
    before = host_state(docker_client)

    second = setup_node(test_settings, build=False)

    assert not second.changed
    assert {step.outcome for step in second.steps} == {"present", "skipped"}
    assert host_state(docker_client) == before
    again = find_network(docker_client, TEST_LAB.network)
    assert again is not None
    assert again.id == network.id

    # The shim is what lets the host reach its macvlan containers.
    created.container("shim", TEST_LAB.network, "10.213.0.60")
    wait_for_ping("10.213.0.60")


def test_setup_with_the_image_step_finds_the_image(
    test_settings: Settings, created: Created
) -> None:
    result = setup_node(test_settings)

    image = next(step for step in result.steps if step.name == "image")
    assert image.outcome == "present"
    assert test_settings.image in image.detail


def test_a_lab_subnet_overlapping_the_uplink_is_refused_and_nothing_made(
    test_settings: Settings, created: Created, docker_client: docker.DockerClient
) -> None:
    device, uplink_subnet = uplink()
    unsafe = test_settings.model_copy(update={"lab": lab_in(uplink_subnet)})
    before = host_state(docker_client)

    with pytest.raises(UnsafeNetwork) as caught:
        setup_node(unsafe, build=False)

    assert caught.value.details["device"] == device
    assert host_state(docker_client) == before
    assert_no_test_objects(docker_client)


def test_the_default_route_device_is_refused_as_parent(
    test_settings: Settings, created: Created, docker_client: docker.DockerClient
) -> None:
    device, _ = uplink()
    before = host_state(docker_client)

    with pytest.raises(UnsafeNetwork) as caught:
        setup_node(test_settings, parent=device, build=False)

    assert device in caught.value.message
    assert "--force-parent" in str(caught.value.hint)
    assert host_state(docker_client) == before
    assert_no_test_objects(docker_client)


def test_force_parent_lets_the_uplink_pass_the_check(created: Created) -> None:
    # Only the check: making a macvlan on the real uplink is never done here.
    device, _ = uplink()
    forced = TEST_LAB.model_copy(update={"parent": device, "force_parent": True})

    assert check_cable(forced) == device


def test_a_missing_parent_is_not_found(
    test_settings: Settings, created: Created
) -> None:
    with pytest.raises(NotFound):
        setup_node(test_settings, parent="dbtnosuch0", build=False)


def test_a_shim_with_another_address_is_an_error_not_changed(
    test_settings: Settings, created: Created
) -> None:
    setup_node(test_settings, build=False)
    moved = TEST_LAB.model_copy(update={"node_address": IPv4Address("10.213.0.50")})

    with pytest.raises(HostError) as caught:
        ensure_shim(moved, TEST_LAB.cable_name)

    assert "10.213.0.51/24" in caught.value.message
    shim = read_link(TEST_LAB.shim_name)
    assert shim is not None
    addresses = [
        info["local"] for info in shim["addr_info"] if info["family"] == "inet"
    ]
    assert addresses == ["10.213.0.51"]


def test_a_lab_network_on_another_parent_is_a_conflict(
    test_settings: Settings, created: Created, docker_client: docker.DockerClient
) -> None:
    setup_node(test_settings, build=False)

    with pytest.raises(Conflict) as caught:
        check_lab_network(docker_client, TEST_LAB, TEST_LAB.cable_peer_name)

    assert "parent" in caught.value.message


# --- experiment networks ----------------------------------------------------


@pytest.fixture
def test_lab_ready(test_settings: Settings, created: Created) -> Created:
    """The test lab set up, so experiment networks have a lab to keep clear of."""
    setup_node(test_settings, build=False)
    return created


def names(client: docker.DockerClient) -> list[str]:
    return sorted(info.name for info in list_networks(client))


def test_bridge_network_create_list_remove(
    test_lab_ready: Created, docker_client: docker.DockerClient
) -> None:
    name = test_lab_ready.network("dbtest-exp-br")

    made_network = create_network(
        docker_client, name, "10.213.8.0/24", gateway="10.213.8.1", lab=TEST_LAB
    )

    assert made_network.driver == "bridge"
    assert made_network.subnet == IPv4Network("10.213.8.0/24")
    assert made_network.gateway == IPv4Address("10.213.8.1")
    assert not made_network.is_lab
    listed = {info.name: info for info in list_networks(docker_client)}
    assert listed[name] == made_network
    assert listed[TEST_LAB.network].is_lab
    assert listed[name].containers == 0

    remove_network(docker_client, name)

    assert name not in names(docker_client)


def test_macvlan_network_on_another_interface(
    test_lab_ready: Created, docker_client: docker.DockerClient
) -> None:
    parent = test_lab_ready.veth(*EXPERIMENT_CABLE)
    name = test_lab_ready.network("dbtest-exp-mv")

    info = create_network(
        docker_client, name, "10.213.9.0/24", driver="macvlan", parent=parent
    )

    assert isinstance(info, NetworkInfo)
    assert (info.driver, info.parent) == ("macvlan", parent)
    remove_network(docker_client, name)
    assert find_network(docker_client, name) is None


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"name": "bad name!", "subnet": "10.213.10.0/24"}, InvalidName),
        ({"name": "dbtest-exp", "subnet": "10.213.10.1/24"}, InvalidAddress),
        ({"name": "dbtest-exp", "subnet": "10.213.10.0/31"}, InvalidAddress),
        (
            {
                "name": "dbtest-exp",
                "subnet": "10.213.10.0/24",
                "gateway": "10.213.11.1",
            },
            InvalidAddress,
        ),
        # The test lab's own subnet, held by another Docker network.
        ({"name": "dbtest-exp", "subnet": "10.213.0.128/25"}, UnsafeNetwork),
        (
            {"name": "dbtest-exp", "subnet": "10.213.10.0/24", "parent": "x"},
            InvalidInput,
        ),
        (
            {"name": "dbtest-exp", "subnet": "10.213.10.0/24", "driver": "macvlan"},
            InvalidInput,
        ),
        (
            {
                "name": "dbtest-exp",
                "subnet": "10.213.10.0/24",
                "driver": "macvlan",
                "parent": "dbtcab0",
            },
            UnsafeNetwork,
        ),
        (
            {
                "name": "dbtest-exp",
                "subnet": "10.213.10.0/24",
                "driver": "macvlan",
                "parent": "dbtcab1",
            },
            UnsafeNetwork,
        ),
        ({"name": "dbtest-lab", "subnet": "10.213.10.0/24"}, NameInUse),
    ],
    ids=[
        "bad-name",
        "host-bits",
        "too-small",
        "gateway-outside",
        "overlaps-lab",
        "bridge-with-parent",
        "macvlan-without-parent",
        "on-lab-cable",
        "on-lab-cable-peer",
        "name-taken",
    ],
)
def test_create_network_refusals_make_nothing(
    test_lab_ready: Created,
    docker_client: docker.DockerClient,
    arguments: dict[str, str],
    error: type[Exception],
) -> None:
    test_lab_ready.network(arguments["name"])
    before = names(docker_client)

    with pytest.raises(error):
        create_network(docker_client, lab=TEST_LAB, **arguments)  # type: ignore[arg-type]

    assert names(docker_client) == before


def test_a_bridge_on_the_uplink_subnet_is_refused(
    test_lab_ready: Created, docker_client: docker.DockerClient
) -> None:
    device, uplink_subnet = uplink()
    name = test_lab_ready.network("dbtest-exp-up")
    before = names(docker_client)

    with pytest.raises(UnsafeNetwork) as caught:
        create_network(docker_client, name, uplink_subnet, lab=TEST_LAB)

    assert caught.value.details["device"] == device
    assert names(docker_client) == before


def test_a_macvlan_on_the_uplink_is_refused(
    test_lab_ready: Created, docker_client: docker.DockerClient
) -> None:
    device, _ = uplink()
    name = test_lab_ready.network("dbtest-exp-up")

    for parent in (device, f"{device}.42"):
        with pytest.raises(UnsafeNetwork):
            create_network(
                docker_client,
                name,
                "10.213.10.0/24",
                driver="macvlan",
                parent=parent,
                lab=TEST_LAB,
            )
    assert find_network(docker_client, name) is None


def test_remove_refuses_while_containers_are_attached(
    test_lab_ready: Created, docker_client: docker.DockerClient
) -> None:
    name = test_lab_ready.network("dbtest-exp-busy")
    create_network(docker_client, name, "10.213.12.0/24", lab=TEST_LAB)
    container = test_lab_ready.container("busy", name)

    with pytest.raises(Conflict) as caught:
        remove_network(docker_client, name)

    assert container in caught.value.message
    assert caught.value.details["containers"] == [container]
    assert find_network(docker_client, name) is not None
    docker_client.containers.get(container).remove(force=True)
    remove_network(docker_client, name)
    assert find_network(docker_client, name) is None


def test_remove_refuses_the_lab_and_predefined_networks(
    test_lab_ready: Created, docker_client: docker.DockerClient
) -> None:
    for name in (TEST_LAB.network, "bridge"):
        with pytest.raises(InvalidInput):
            remove_network(docker_client, name)
        assert find_network(docker_client, name) is not None
    with pytest.raises(NotFound):
        remove_network(docker_client, "dbtest-no-such-network")
