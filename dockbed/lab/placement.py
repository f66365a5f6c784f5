"""Which node each container of a batch goes to, on one shared lab segment.

Pure logic. Nodes cabled to the same lab switch share one subnet and one
pool of addresses: a container's address must be unique on the segment, not
only on its node. So the segment (its subnet) is what addresses are
allocated on, and a batch spread over several nodes still gets one run of
ascending addresses: ``lab-1`` on the first node at ``.60``, ``lab-2`` on the
second at ``.61``, and so on, round-robin in the order the nodes were given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address

from dockbed.errors import InvalidInput
from dockbed.lab.addresses import AddressPool


def segment_key(pool: AddressPool) -> str:
    """The name of the address space a node's lab network belongs to."""
    return str(pool.subnet)


def spread(count: int, nodes: Sequence[str]) -> list[str]:
    """The node of each of ``count`` containers: round-robin over ``nodes``.

    Raises InvalidInput for no nodes or a node named twice.
    """
    if not nodes:
        raise InvalidInput("a batch needs at least one node", field="nodes")
    repeated = sorted({node for node in nodes if list(nodes).count(node) > 1})
    if repeated:
        raise InvalidInput(
            f"the node {', '.join(repeated)} is named more than once",
            hint="name each node once; the batch is spread over them in turn",
            field="nodes",
            nodes=list(nodes),
        )
    return [nodes[index % len(nodes)] for index in range(count)]


def check_one_segment(pools: Mapping[str, AddressPool]) -> AddressPool:
    """The pool the nodes share; InvalidInput unless they are on one segment.

    One segment means one subnet, gateway and pool of container addresses;
    each node's own address may differ (and is kept free by
    :func:`node_addresses`).
    """
    if not pools:
        raise InvalidInput("no nodes to place containers on", field="nodes")
    names = sorted(pools)
    first = pools[names[0]]
    for name in names[1:]:
        pool = pools[name]
        if (pool.subnet, pool.gateway, pool.first, pool.last) != (
            first.subnet,
            first.gateway,
            first.first,
            first.last,
        ):
            raise InvalidInput(
                f"the nodes {names[0]} ({first.subnet}, pool {first}) and {name} "
                f"({pool.subnet}, pool {pool}) are not on one lab segment",
                hint="a batch spread over several nodes needs nodes cabled to "
                "the same lab network; make one batch per segment",
                field="nodes",
                nodes=names,
            )
    return first


def node_addresses(pools: Mapping[str, AddressPool]) -> dict[IPv4Address, str]:
    """Each node's own address on the segment → who holds it, for ``used``."""
    return {
        pool.node_address: f"the node {name}'s own address"
        for name, pool in sorted(pools.items())
    }
