"""``/api/v1/monitor``: how the caller's live views reach the broker.

The monitor page and ``dockbed stats`` subscribe to ``amq.topic`` themselves
(over Web STOMP and AMQP); the server only hands them the caller's own
broker user (:func:`dockbed.bus.broker.ensure_viewer`) and the binding keys
to subscribe with. The broker's topic permissions on that user, not this
answer, keep a non-admin to their own containers' keys.
"""

from __future__ import annotations

import ipaddress
import logging

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from dockbed.bus.broker import ensure_viewer
from dockbed.config import Settings
from dockbed.server.api.deps import Caller, Service

log = logging.getLogger(__name__)

router = APIRouter(tags=["monitor"])

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class MonitorSubscription(BaseModel):
    """A broker user that may read what the caller may see, and where to use it."""

    user: str = Field(description="the dockbed user the broker user stands for")
    is_admin: bool
    username: str = Field(description="the broker user: STOMP login, AMQP user")
    password: str
    vhost: str
    bindings: list[str] = Field(
        description="binding keys on amq.topic; STOMP destination /topic/<key>"
    )
    web_stomp_url: str = Field(description="for the pages: ws://HOST:PORT/PATH")
    amqp_host: str
    amqp_port: int
    interval: float = Field(description="seconds between two of an agent's samples")
    nodes: list[str] = Field(description="the nodes the server knows")


@router.get("/monitor/subscription", response_model=MonitorSubscription)
def monitor_subscription(
    request: Request, response: Response, service: Service, caller: Caller
) -> MonitorSubscription:
    """Broker credentials for the caller's live views (the page, ``dockbed stats``).

    The broker user is made or updated on first use (BrokerError, 502, when
    the broker refuses or is down). The password is the same on every call
    for one user; the answer is never cached.
    """
    settings: Settings = request.app.state.settings
    viewer = ensure_viewer(settings, caller.name, caller.is_admin)
    response.headers["Cache-Control"] = "no-store"
    host = request.url.hostname or "127.0.0.1"
    return MonitorSubscription(
        user=caller.name,
        is_admin=caller.is_admin,
        username=viewer.username,
        password=viewer.password,
        vhost=viewer.vhost,
        bindings=list(viewer.bindings),
        web_stomp_url=settings.broker.web_stomp_url
        or web_stomp_url(
            host,
            viewer.web_stomp_port,
            viewer.web_stomp_path,
            secure=request.url.scheme == "https",
        ),
        amqp_host=advertised_host(viewer.host, host),
        amqp_port=viewer.port,
        interval=settings.agent.interval,
        nodes=service.nodes.names(),
    )


def web_stomp_url(host: str, port: int, path: str, *, secure: bool = False) -> str:
    """``ws://HOST:PORT/PATH`` for a page served from ``host``.

    ``wss`` for a page served over HTTPS, since a browser refuses a plain
    WebSocket from such a page; a TLS proxy in front of Web STOMP must then
    listen there, or ``broker.web_stomp_url`` name it.
    """
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{'wss' if secure else 'ws'}://{host}:{port}/{path.lstrip('/')}"


def advertised_host(broker_host: str, request_host: str) -> str:
    """Where a client reaches the broker: its configured host, unless loopback.

    A broker configured on a loopback address is on the server's machine, so
    a client that reached the server at ``request_host`` finds it there too.
    """
    return request_host if _is_loopback(broker_host) else broker_host


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
