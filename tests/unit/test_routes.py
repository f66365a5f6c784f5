"""dockbed.lab.routes on ``ip -json route show table all`` outputs recorded here.

``host-with-lab.json`` is this kind of machine with the lab shim in place
(uplink eth0 192.0.2.0/24, docker0, dbshim0 10.64.98.0/23); the other two were
recorded in network namespaces: an uplink whose subnet covers the default lab
subnet, and a multipath default route over two devices plus a blackhole.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from dockbed.errors import UnsafeNetwork
from dockbed.lab.routes import (
    check_subnet_is_free,
    default_route_devices,
    route_networks,
)

FIXTURES = Path(__file__).parent / "fixtures" / "routes"
LAB = IPv4Network("10.64.98.0/23")


def routes(name: str) -> list[dict[str, Any]]:
    return list(json.loads((FIXTURES / f"{name}.json").read_text()))


def test_route_networks_leave_out_defaults_broadcasts_and_ipv6() -> None:
    found = route_networks(routes("host-with-lab"))

    networks = {network for network, _ in found}
    assert IPv4Network("192.0.2.0/24") in networks
    assert IPv4Network("10.64.98.51/32") in networks  # the local table's entry
    assert IPv4Network("10.64.99.255/32") not in networks  # a broadcast route
    assert all(network.version == 4 for network in networks)
    assert IPv4Network("0.0.0.0/0") not in networks


def test_route_networks_ignore_the_given_devices() -> None:
    found = route_networks(routes("host-with-lab"), ignore_devices=["dbshim0"])

    assert all(device != "dbshim0" for _, device in found)
    assert any(device == "eth0" for _, device in found)


def test_a_free_subnet_passes() -> None:
    check_subnet_is_free(IPv4Network("10.213.0.0/24"), routes("host-with-lab"))


def test_the_uplink_subnet_is_refused_with_the_route_and_device() -> None:
    with pytest.raises(UnsafeNetwork) as caught:
        check_subnet_is_free(IPv4Network("192.0.2.0/25"), routes("host-with-lab"))

    assert caught.value.details["route"] == "192.0.2.0/24"
    assert caught.value.details["device"] == "eth0"
    assert caught.value.hint


def test_a_subnet_covering_a_route_is_refused_too() -> None:
    with pytest.raises(UnsafeNetwork):
        check_subnet_is_free(IPv4Network("192.0.0.0/16"), routes("host-with-lab"))


def test_the_lab_subnet_passes_on_a_rerun_when_the_shim_is_ignored() -> None:
    with pytest.raises(UnsafeNetwork):
        check_subnet_is_free(LAB, routes("host-with-lab"))

    check_subnet_is_free(LAB, routes("host-with-lab"), ignore_devices=["dbshim0"])


def test_docker0_counts_as_a_host_route() -> None:
    with pytest.raises(UnsafeNetwork) as caught:
        check_subnet_is_free(IPv4Network("172.17.5.0/24"), routes("host-with-lab"))

    assert caught.value.details["device"] == "docker0"


def test_an_uplink_that_covers_the_lab_subnet_is_refused() -> None:
    with pytest.raises(UnsafeNetwork) as caught:
        check_subnet_is_free(LAB, routes("campus-uplink"))

    assert caught.value.details["route"] == "10.64.0.0/16"


def test_a_blackhole_route_without_a_device_counts() -> None:
    with pytest.raises(UnsafeNetwork) as caught:
        check_subnet_is_free(IPv4Network("10.99.4.0/24"), routes("multipath-default"))

    assert "unnamed device" in caught.value.message


@pytest.mark.parametrize(
    ("fixture", "devices"),
    [("host-with-lab", {"eth0"}), ("campus-uplink", {"eth0"})],
)
def test_default_route_devices(fixture: str, devices: set[str]) -> None:
    assert default_route_devices(routes(fixture)) == devices


def test_default_route_devices_of_a_multipath_route() -> None:
    assert default_route_devices(routes("multipath-default")) == {"eth0", "eth1"}
