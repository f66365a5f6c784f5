"""``/api/v1/networks``: experiment networks for second interfaces."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from dockbed.engine.network import NetworkInfo
from dockbed.server.api.deps import Caller
from dockbed.server.networks import NetworkService
from dockbed.server.schemas import NetworkCreateRequest

router = APIRouter(tags=["networks"])


def get_networks(request: Request) -> NetworkService:
    networks: NetworkService = request.app.state.networks
    return networks


Networks = Annotated[NetworkService, Depends(get_networks)]


class Network(BaseModel):
    """A Docker network as ``dockbed net ls`` shows it."""

    name: str
    id: str
    driver: str
    subnet: str | None
    gateway: str | None
    parent: str | None
    containers: list[str]
    is_lab: bool

    @classmethod
    def of(cls, info: NetworkInfo) -> Network:
        return cls(
            name=info.name,
            id=info.id,
            driver=info.driver,
            subnet=str(info.subnet) if info.subnet else None,
            gateway=str(info.gateway) if info.gateway else None,
            parent=info.parent,
            containers=list(info.container_names),
            is_lab=info.is_lab,
        )


@router.get("/networks", response_model=list[Network])
def list_networks(
    networks: Networks, caller: Caller, node: str | None = Query(default=None)
) -> list[Network]:
    """The node's networks: ``dockbed net ls``."""
    return [Network.of(info) for info in networks.list(node)]


@router.post("/networks", response_model=Network, status_code=201)
def create_network(
    request: NetworkCreateRequest, networks: Networks, caller: Caller
) -> Network:
    """Create an experiment network: ``dockbed net create``."""
    return Network.of(networks.create(caller, request))


@router.delete("/networks/{name}", status_code=204)
def remove_network(
    name: str,
    networks: Networks,
    caller: Caller,
    node: str | None = Query(default=None),
) -> None:
    """Remove an experiment network: ``dockbed net rm``."""
    networks.remove(caller, node, name)
