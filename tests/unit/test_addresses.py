"""dockbed.lab.addresses: which addresses a container may have, and runs of them."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from dockbed.errors import AddressInUse, InvalidAddress, PoolExhausted
from dockbed.lab.addresses import AddressPool, describe_holders


def a(text: str) -> IPv4Address:
    return IPv4Address(text)


def lab_pool(subnet: str = "10.64.98.0/23") -> AddressPool:
    """The default lab: .1 gateway, .51 node, pool .52 to .240 of the first /24."""
    network = IPv4Network(subnet)
    base = int(network.network_address)
    return AddressPool(
        subnet=network,
        gateway=IPv4Address(base + 1),
        first=IPv4Address(base + 52),
        last=IPv4Address(base + 240),
        node_address=IPv4Address(base + 51),
    )


def test_pool_size_and_text() -> None:
    pool = lab_pool()

    assert pool.size == 189
    assert str(pool) == "10.64.98.52-10.64.98.240"


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("10.64.98.0", "network address"),
        ("10.64.99.255", "broadcast address"),
        ("10.64.98.1", "gateway"),
        ("10.64.98.51", "node's own address"),
        ("10.64.100.7", "outside the lab subnet"),
        ("10.64.98.50", "outside the container pool"),
        ("10.64.98.241", "outside the container pool"),
        ("10.64.99.10", "outside the container pool"),
    ],
)
def test_check_refuses_with_the_reason(address: str, words: str) -> None:
    with pytest.raises(InvalidAddress) as caught:
        lab_pool().check(a(address), field="ip")

    assert words in caught.value.message
    assert caught.value.field == "ip"
    assert caught.value.details["address"] == address
    assert "10.64.98.52-10.64.98.240" in str(caught.value.hint)


@pytest.mark.parametrize("address", ["10.64.98.52", "10.64.98.100", "10.64.98.240"])
def test_check_accepts_pool_addresses(address: str) -> None:
    lab_pool().check(a(address))


def test_a_pool_with_addresses_outside_its_subnet_is_refused() -> None:
    with pytest.raises(InvalidAddress) as caught:
        AddressPool(
            subnet=IPv4Network("10.213.0.0/24"),
            gateway=a("10.213.1.1"),
            first=a("10.213.0.52"),
            last=a("10.213.0.240"),
            node_address=a("10.213.0.51"),
        )

    assert "gateway" in caught.value.message


def test_a_pool_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(InvalidAddress):
        AddressPool(
            subnet=IPv4Network("10.213.0.0/24"),
            gateway=a("10.213.0.1"),
            first=a("10.213.0.100"),
            last=a("10.213.0.99"),
            node_address=a("10.213.0.51"),
        )


def test_reserved_addresses_are_not_handed_out() -> None:
    # A pool that spans the node address and the gateway leaves both out.
    pool = AddressPool(
        subnet=IPv4Network("10.213.0.0/29"),
        gateway=a("10.213.0.1"),
        first=a("10.213.0.1"),
        last=a("10.213.0.6"),
        node_address=a("10.213.0.3"),
    )

    assert list(pool.addresses()) == [
        a("10.213.0.2"),
        a("10.213.0.4"),
        a("10.213.0.5"),
        a("10.213.0.6"),
    ]


def test_allocate_from_a_base() -> None:
    run = lab_pool().allocate(3, {}, base=a("10.64.98.60"))

    assert run == [a("10.64.98.60"), a("10.64.98.61"), a("10.64.98.62")]


def test_allocate_the_whole_pool_from_its_start() -> None:
    pool = lab_pool()

    run = pool.allocate(pool.size, {}, base=pool.first)

    assert run[0] == pool.first
    assert run[-1] == pool.last


def test_a_run_past_the_pool_end_says_how_many_fit() -> None:
    with pytest.raises(PoolExhausted) as caught:
        lab_pool().allocate(5, {}, base=a("10.64.98.238"))

    assert "10.64.98.242" in caught.value.message
    assert "at most 3 fit" in str(caught.value.hint)
    assert caught.value.details == {"base": "10.64.98.238", "count": 5}


def test_a_base_outside_the_pool_is_invalid() -> None:
    with pytest.raises(InvalidAddress) as caught:
        lab_pool().allocate(2, {}, base=a("10.64.98.51"), field="base_ip")

    assert caught.value.field == "base_ip"


def test_an_address_in_use_names_its_holder() -> None:
    used = {a("10.64.98.62"): "web-3"}

    with pytest.raises(AddressInUse) as caught:
        lab_pool().allocate(5, used, base=a("10.64.98.60"))

    assert "10.64.98.62 is in use by web-3" in caught.value.message
    assert caught.value.details["holder"] == "web-3"
    assert caught.value.details["address"] == "10.64.98.62"


def test_first_free_run_skips_holes_too_small() -> None:
    used = {
        a("10.64.98.52"): "a-1",
        a("10.64.98.54"): "a-2",
        a("10.64.98.57"): "a-3",
    }

    run = lab_pool().allocate(3, used)

    # .53 alone and .55-.56 are too short; .58-.60 is the first run of three.
    assert run == [a("10.64.98.58"), a("10.64.98.59"), a("10.64.98.60")]


def test_first_free_run_takes_a_hole_that_fits() -> None:
    used = {a("10.64.98.52"): "a-1", a("10.64.98.55"): "a-2"}

    assert lab_pool().allocate(2, used) == [a("10.64.98.53"), a("10.64.98.54")]


def test_no_free_run_says_how_many_are_free() -> None:
    pool = lab_pool()
    # Every other address taken: many free, but none next to another.
    used = {address: "x" for address in list(pool.addresses())[::2]}

    with pytest.raises(PoolExhausted) as caught:
        pool.allocate(2, used)

    assert caught.value.details == {"count": 2, "free": pool.size - len(used)}


def test_dynamic_range_of_the_default_23() -> None:
    # The upper /24 is clear of the pool; .255 is the broadcast, so a /25.
    assert lab_pool("10.64.98.0/23").dynamic_range() == IPv4Network("10.64.99.0/25")


def test_dynamic_range_of_a_24() -> None:
    pool = lab_pool("10.213.0.0/24")

    block = pool.dynamic_range()

    # Between the gateway (.1) and the node (.51) the largest aligned block is
    # a /28 (.16-.31); above the pool (.241-.254) only a /29 fits.
    assert block == IPv4Network("10.213.0.16/28")
    assert not any(address in block for address in pool.reserved())
    assert not any(address in block for address in pool.addresses())


def test_dynamic_range_when_the_pool_fills_the_subnet() -> None:
    pool = AddressPool(
        subnet=IPv4Network("10.213.0.0/30"),
        gateway=a("10.213.0.1"),
        first=a("10.213.0.1"),
        last=a("10.213.0.2"),
        node_address=a("10.213.0.2"),
    )

    with pytest.raises(PoolExhausted):
        pool.dynamic_range()


def test_describe_holders_sorts_by_address() -> None:
    holders = {a("10.64.98.61"): "web-2", a("10.64.98.60"): "web-1"}

    assert describe_holders(holders) == "10.64.98.60 (web-1), 10.64.98.61 (web-2)"
