"""Experiment networks on a node: what a container's second interface joins."""

from __future__ import annotations

from dockbed.engine import network as engine_network
from dockbed.engine.network import NetworkInfo
from dockbed.errors import PermissionDenied
from dockbed.server.nodes import NodeRegistry
from dockbed.server.schemas import NetworkCreateRequest
from dockbed.server.service import Principal


class NetworkService:
    """List, create and remove a node's Docker networks, the lab one protected."""

    def __init__(self, nodes: NodeRegistry, default_node: str) -> None:
        self.nodes = nodes
        self.default_node = default_node

    def list(self, node: str | None) -> list[NetworkInfo]:
        """Every network of the node, the lab network marked."""
        name = node or self.default_node
        lab = self.nodes.config(name).lab
        engine = self.nodes.engine(name)
        return engine_network.list_networks(engine.client, lab_name=lab.network)

    def create(
        self, principal: Principal, request: NetworkCreateRequest
    ) -> NetworkInfo:
        """Create an experiment network, checked against the host and the lab."""
        name = request.node or self.default_node
        config = self.nodes.config(name)
        engine = self.nodes.engine(name)
        # TODO: for a remote node the host routes checked are the server's own;
        # the node's routes are not known to the server yet.
        return engine_network.create_network(
            engine.client,
            request.name,
            request.subnet,
            driver=request.driver,
            parent=request.parent,
            gateway=request.gateway,
            lab=config.lab,
            owner=principal.name,
        )

    def remove(self, principal: Principal, node: str | None, network: str) -> None:
        """Remove an experiment network with nothing attached.

        Only the user who made it, or an admin, may; PermissionDenied otherwise.
        """
        name = node or self.default_node
        lab = self.nodes.config(name).lab
        engine = self.nodes.engine(name)
        found = engine_network.find_network(
            engine.client, network, lab_name=lab.network
        )
        owner = found.labels.get(engine_network.OWNER_LABEL) if found else None
        if found is not None and not principal.is_admin and owner != principal.name:
            raise PermissionDenied(
                f"the network {network} was made by {owner or 'an admin'}",
                hint="only the user who made a network, or an admin, may remove it",
                field="name",
                network=network,
            )
        engine_network.remove_network(engine.client, network, lab_name=lab.network)
