"""The address ledger: concurrent requests never share an address."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, IPv4Network

import pytest

from dockbed.errors import PoolExhausted
from dockbed.lab.addresses import AddressPool
from dockbed.lab.allocation import AddressLedger

POOL = AddressPool(
    subnet=IPv4Network("10.64.98.0/23"),
    gateway=IPv4Address("10.64.98.1"),
    first=IPv4Address("10.64.98.52"),
    last=IPv4Address("10.64.98.240"),
    node_address=IPv4Address("10.64.98.51"),
)


def _nothing_used() -> Mapping[IPv4Address, str]:
    return {}


def test_open_reservations_are_not_handed_out_again() -> None:
    ledger = AddressLedger()
    first = ledger.reserve("n/lab", _nothing_used, lambda u: POOL.allocate(3, u), "a")
    second = ledger.reserve("n/lab", _nothing_used, lambda u: POOL.allocate(3, u), "b")

    assert [str(a) for a in first.addresses] == [
        "10.64.98.52",
        "10.64.98.53",
        "10.64.98.54",
    ]
    assert [str(a) for a in second.addresses] == [
        "10.64.98.55",
        "10.64.98.56",
        "10.64.98.57",
    ]
    assert ledger.promised("n/lab")[IPv4Address("10.64.98.55")] == "b"


def test_released_addresses_are_free_again() -> None:
    ledger = AddressLedger()
    with ledger.reserve("n/lab", _nothing_used, lambda u: POOL.allocate(2, u), "a"):
        pass
    again = ledger.reserve("n/lab", _nothing_used, lambda u: POOL.allocate(2, u), "b")
    assert str(again.addresses[0]) == "10.64.98.52"
    assert ledger.promised("other/lab") == {}


def test_a_refused_choice_reserves_nothing() -> None:
    ledger = AddressLedger()
    with pytest.raises(PoolExhausted):
        ledger.reserve("n/lab", _nothing_used, lambda u: POOL.allocate(500, u), "a")
    assert ledger.promised("n/lab") == {}


def test_parallel_reservations_are_disjoint() -> None:
    ledger = AddressLedger()
    gate = threading.Barrier(8)

    def reserve(index: int) -> set[IPv4Address]:
        gate.wait()
        held = ledger.reserve(
            "n/lab", _nothing_used, lambda u: POOL.allocate(10, u), str(index)
        )
        return set(held.addresses)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(reserve, range(8)))

    assert sum(len(r) for r in results) == len(set().union(*results)) == 80
