"""Whether a lab subnet is safe to put on this host.

Pure logic on the host's routes, as ``ip -json route show table all`` prints
them; reading them is ``dockbed.devlab.cable``'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Network, ip_network
from typing import Any

from dockbed.errors import UnsafeNetwork

#: Route destinations that cover everything and so overlap any subnet.
_CATCH_ALL = {"default", "0.0.0.0/0"}


def route_networks(
    routes: Iterable[Mapping[str, Any]], *, ignore_devices: Iterable[str] = ()
) -> list[tuple[IPv4Network, str]]:
    """The IPv4 destinations of ``routes`` with their device.

    Default routes, and routes through ``ignore_devices`` (dockbed's own shim,
    on a re-run), are left out: the first overlap everything by definition,
    the second are ours.
    """
    ignored = set(ignore_devices)
    networks: list[tuple[IPv4Network, str]] = []
    for route in routes:
        destination = str(route.get("dst", ""))
        device = str(route.get("dev", ""))
        if destination in _CATCH_ALL or device in ignored:
            continue
        if route.get("type") in {"broadcast", "multicast"}:
            continue
        try:
            network = ip_network(destination, strict=False)
        except ValueError:
            continue
        if isinstance(network, IPv4Network):
            networks.append((network, device))
    return networks


def check_subnet_is_free(
    subnet: IPv4Network,
    routes: Iterable[Mapping[str, Any]],
    *,
    ignore_devices: Iterable[str] = (),
) -> None:
    """Raise UnsafeNetwork if ``subnet`` overlaps a route of the host."""
    for network, device in route_networks(routes, ignore_devices=ignore_devices):
        if subnet.overlaps(network):
            raise UnsafeNetwork(
                f"the lab subnet {subnet} overlaps the host's route to "
                f"{network} via {device or 'an unnamed device'}",
                hint="adding it would break the host's own routing; choose "
                "another lab subnet (lab.subnet in the config)",
                subnet=str(subnet),
                route=str(network),
                device=device,
            )


def default_route_devices(routes: Iterable[Mapping[str, Any]]) -> set[str]:
    """The devices that carry a default route: never a lab parent by default.

    A multipath default route names its devices in ``nexthops``, not ``dev``.
    """
    devices: set[str] = set()
    for route in routes:
        if str(route.get("dst", "")) not in _CATCH_ALL:
            continue
        hops = [route, *(route.get("nexthops") or [])]
        devices.update(str(hop["dev"]) for hop in hops if hop.get("dev"))
    return devices
