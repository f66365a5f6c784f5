"""The monitor page ``/docker/monitor``: live stats of the caller's containers.

The page is a frame; its script (``static/js/monitor.js``) asks
``/api/v1/monitor/subscription`` for the caller's broker user and subscribes
to ``amq.topic`` over Web STOMP itself, so the server never relays a sample.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from dockbed.server.pages.views import PageCaller, render

router = APIRouter(include_in_schema=False)


@router.get("/docker/monitor", response_class=HTMLResponse)
def monitor_page(request: Request, principal: PageCaller) -> HTMLResponse:
    """A row per running container, charts of the nodes' totals, a stop button."""
    return render(
        request,
        "monitor.html",
        principal,
        active="monitor",
        interval=request.app.state.settings.agent.interval,
    )
