"""``/api/v1/nodes``: the nodes, their images and their free addresses."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from dockbed.server.api.deps import Caller, Service
from dockbed.server.schemas import AddressReport

router = APIRouter(tags=["nodes"])


class Node(BaseModel):
    name: str
    engine_url: str
    lab_network: str
    subnet: str


@router.get("/nodes", response_model=list[Node])
def list_nodes(service: Service, caller: Caller) -> list[Node]:
    nodes = [service.nodes.config(name) for name in service.nodes.names()]
    return [
        Node(
            name=node.name,
            engine_url=node.engine_url,
            lab_network=node.lab.network,
            subnet=str(node.lab.subnet),
        )
        for node in nodes
    ]


@router.get("/nodes/{node}/images", response_model=list[str])
def list_images(node: str, service: Service, caller: Caller) -> list[str]:
    """Image tags present on the node: what ``--image`` may name."""
    return service.nodes.engine(node).images()


@router.get("/nodes/{node}/addresses", response_model=AddressReport)
def address_report(node: str, service: Service, caller: Caller) -> AddressReport:
    """The lab pool of a node: which addresses are taken and by whom."""
    return service.address_report(node)
