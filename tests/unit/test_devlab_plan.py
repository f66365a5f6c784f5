"""dockbed.devlab.nodes: the layout of simulated nodes, and its route checks
on the routes recorded in ``fixtures/routes``."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from dockbed.config import DevlabSettings, Settings
from dockbed.devlab.nodes import check_subnets, plan_devlab
from dockbed.errors import InvalidCount, InvalidName, UnsafeNetwork

ROUTES = Path(__file__).parent / "fixtures" / "routes"


def routes(name: str) -> list[dict[str, Any]]:
    return list(json.loads((ROUTES / f"{name}.json").read_text()))


def settings(**devlab: Any) -> Settings:
    return Settings(state_dir=Path("/srv/state"), devlab=DevlabSettings(**devlab))


def test_three_nodes_get_their_names_addresses_and_engines() -> None:
    plan = plan_devlab(settings(), 3)

    assert [node.name for node in plan.nodes] == ["dbnode1", "dbnode2", "dbnode3"]
    node = plan.nodes[1]
    assert node.control_address == IPv4Address("10.213.50.12")
    assert node.engine_url == "tcp://10.213.50.12:2376"
    assert node.lab.node_address == IPv4Address("10.64.100.12")
    assert node.lab.subnet == IPv4Network("10.64.100.0/24")
    assert node.control_peer == "dbnode2-ctl"
    assert node.data_dir == Path("/srv/state/devlab/dbnode2")
    assert str(plan.control_host_address) == "10.213.50.1/24"
    assert str(plan.lab_host_address) == "10.64.100.10/24"


def test_the_nodes_share_one_pool_clear_of_their_own_addresses() -> None:
    plan = plan_devlab(settings(), 3)

    pools = {(node.lab.pool_first, node.lab.pool_last) for node in plan.nodes}
    assert pools == {(IPv4Address("10.64.100.52"), IPv4Address("10.64.100.240"))}
    assert all(node.lab.node_address < node.lab.pool_first for node in plan.nodes)


@pytest.mark.parametrize("count", [0, 42])
def test_a_count_that_does_not_fit_is_refused(count: int) -> None:
    with pytest.raises(InvalidCount):
        plan_devlab(settings(), count)


def test_a_prefix_too_long_for_an_interface_name_is_refused() -> None:
    with pytest.raises(InvalidName):
        plan_devlab(settings(name_prefix="averyverylongname"), 1)


def test_the_default_subnets_are_free_on_this_kind_of_host() -> None:
    check_subnets(plan_devlab(settings(), 3), routes("host-with-lab"))


def test_a_control_subnet_the_host_routes_is_refused() -> None:
    plan = plan_devlab(settings(control_subnet=IPv4Network("192.0.2.0/26")), 3)

    with pytest.raises(UnsafeNetwork) as caught:
        check_subnets(plan, routes("host-with-lab"))

    assert caught.value.field == "devlab.control_subnet"
    assert caught.value.details["device"] == "eth0"


def test_a_lab_subnet_the_host_routes_is_refused() -> None:
    lab = {
        "subnet": "10.64.98.0/24",
        "gateway": "10.64.98.1",
        "pool_first": "10.64.98.52",
        "pool_last": "10.64.98.240",
        "node_address": "10.64.98.10",
    }
    plan = plan_devlab(settings(lab=lab), 3)

    with pytest.raises(UnsafeNetwork) as caught:
        check_subnets(plan, routes("host-with-lab"))

    assert caught.value.field == "devlab.lab.subnet"
    assert caught.value.details["device"] == "dbshim0"


def test_routes_through_devlab_s_own_links_do_not_count() -> None:
    ours = [
        {"dst": "10.213.50.0/24", "dev": "dbctl0", "protocol": "kernel"},
        {"dst": "10.64.100.0/24", "dev": "dbdevlab0", "protocol": "kernel"},
    ]

    check_subnets(plan_devlab(settings(), 3), routes("host-with-lab") + ours)


def test_overlapping_control_and_lab_subnets_are_refused() -> None:
    plan = plan_devlab(settings(control_subnet=IPv4Network("10.64.100.0/25")), 3)

    with pytest.raises(UnsafeNetwork, match="overlaps its lab subnet"):
        check_subnets(plan, [])


def test_no_node_address_falls_in_docker_s_own_range() -> None:
    plan_devlab(settings(), 5)

    with pytest.raises(InvalidCount, match="Docker's own range") as caught:
        plan_devlab(settings(), 6)

    assert "10.64.100.16/28" in caught.value.message
