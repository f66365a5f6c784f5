"""``/api/v1/nodes``: the nodes and their health, their images and free addresses.

Anyone logged in lists the nodes; only admins add and remove them.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from dockbed.server.api.deps import Admin, Caller, Service
from dockbed.server.nodes import LabChoice, NodeHealth
from dockbed.server.schemas import AddressReport, NodeAddRequest, NodeView

router = APIRouter(tags=["nodes"])


def _view(health: NodeHealth) -> NodeView:
    return NodeView(
        name=health.name,
        engine_url=health.engine_url,
        source=health.source,
        lab_network=health.network,
        subnet=health.subnet,
        segment=health.segment,
        status=health.status,
        reachable=health.reachable,
        engine_version=health.engine_version,
        containers=health.containers,
        running=health.running,
        free_addresses=health.free_addresses,
        error=health.error,
    )


@router.get("/nodes", response_model=list[NodeView])
def list_nodes(service: Service, caller: Caller) -> list[NodeView]:
    """Every node with its health, all asked at once, each briefly.

    A node that does not answer is listed with the status ``unknown``.
    """
    return [_view(health) for health in service.nodes.health()]


@router.post("/nodes", response_model=NodeView, status_code=status.HTTP_201_CREATED)
def add_node(
    body: NodeAddRequest, service: Service, caller: Admin, request: Request
) -> NodeView:
    """Register a node once its engine answered: ``dockbed node add``."""
    settings = request.app.state.settings
    service.nodes.add(
        body.name,
        body.engine_url,
        tls_files={
            "ca": body.tls.ca.encode(),
            "cert": body.tls.cert.encode(),
            "key": body.tls.key.encode(),
        }
        if body.tls
        else None,
        lab=LabChoice(
            network=body.network,
            pool_first=body.pool_first,
            pool_last=body.pool_last,
            node_address=body.node_address,
        ),
        defaults=settings.lab,
        added_by=caller.name,
    )
    found = [health for health in service.nodes.health() if health.name == body.name]
    return _view(found[0])


@router.delete("/nodes/{node}", status_code=status.HTTP_204_NO_CONTENT)
def remove_node(node: str, service: Service, caller: Admin) -> Response:
    """Forget a registered node; its engine and containers are left alone."""
    service.nodes.remove(node)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/nodes/{node}/images", response_model=list[str])
def list_images(node: str, service: Service, caller: Caller) -> list[str]:
    """Image tags present on the node: what ``--image`` may name."""
    return service.nodes.engine(node).images()


@router.get("/nodes/{node}/addresses", response_model=AddressReport)
def address_report(node: str, service: Service, caller: Caller) -> AddressReport:
    """The lab pool of a node: which addresses are taken on its segment, by whom."""
    return service.address_report(node)
