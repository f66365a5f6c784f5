"""dockbed.lab.placement: spreading a batch over nodes on one lab segment."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from dockbed.errors import InvalidInput
from dockbed.lab.addresses import AddressPool
from dockbed.lab.placement import (
    check_one_segment,
    node_addresses,
    segment_key,
    spread,
)


def pool(node_address: str, subnet: str = "10.64.100.0/24") -> AddressPool:
    network = IPv4Network(subnet)
    base = network.network_address
    return AddressPool(
        subnet=network,
        gateway=base + 1,
        first=base + 52,
        last=base + 240,
        node_address=IPv4Address(node_address),
    )


SEGMENT = {
    "dbnode1": pool("10.64.100.11"),
    "dbnode2": pool("10.64.100.12"),
    "dbnode3": pool("10.64.100.13"),
}


def test_a_batch_is_spread_round_robin_in_the_given_order() -> None:
    assert spread(7, ["b", "a", "c"]) == ["b", "a", "c", "b", "a", "c", "b"]


def test_one_node_takes_the_whole_batch() -> None:
    assert spread(3, ["only"]) == ["only", "only", "only"]


@pytest.mark.parametrize("nodes", [[], ["a", "b", "a"]])
def test_no_node_or_a_node_twice_is_refused(nodes: list[str]) -> None:
    with pytest.raises(InvalidInput) as caught:
        spread(3, nodes)

    assert caught.value.field == "nodes"


def test_nodes_on_one_segment_share_its_pool() -> None:
    shared = check_one_segment(SEGMENT)

    assert shared.subnet == IPv4Network("10.64.100.0/24")
    assert {segment_key(item) for item in SEGMENT.values()} == {"10.64.100.0/24"}


def test_nodes_on_two_segments_cannot_share_a_batch() -> None:
    mixed = {**SEGMENT, "local": pool("10.64.98.51", "10.64.98.0/23")}

    with pytest.raises(InvalidInput, match="not on one lab segment"):
        check_one_segment(mixed)


def test_addresses_ascend_across_the_nodes_and_skip_their_own() -> None:
    shared = check_one_segment(SEGMENT)
    used = {**node_addresses(SEGMENT), IPv4Address("10.64.100.53"): "lab-x"}

    addresses = shared.allocate(3, used)
    nodes = spread(3, ["dbnode1", "dbnode2", "dbnode3"])
    placed = list(zip(nodes, addresses, strict=True))

    assert placed == [
        ("dbnode1", IPv4Address("10.64.100.54")),
        ("dbnode2", IPv4Address("10.64.100.55")),
        ("dbnode3", IPv4Address("10.64.100.56")),
    ]


def test_each_node_address_is_named_as_held() -> None:
    held = node_addresses(SEGMENT)

    assert held[IPv4Address("10.64.100.12")] == "the node dbnode2's own address"
