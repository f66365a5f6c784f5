"""The dockbed server: REST API under ``/api/v1`` and the pages."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from dockbed.config import Settings, get_settings
from dockbed.server.api import containers, nodes
from dockbed.server.api.errors import install_error_handlers
from dockbed.server.jobs import JobBoard
from dockbed.server.nodes import NodeRegistry
from dockbed.server.service import LabService

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app, wired to the nodes the settings name."""
    settings = settings or get_settings()
    app = FastAPI(
        title="dockbed",
        summary="ssh-able lab containers on the nodes of a testbed",
        version="0.1.0",
    )
    app.state.settings = settings
    app.state.service = LabService(settings, NodeRegistry.from_settings(settings))
    app.state.jobs = JobBoard()
    install_error_handlers(app)
    for module in (containers, nodes):
        app.include_router(module.router, prefix=API_PREFIX)

    @app.get(f"{API_PREFIX}/health", tags=["server"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
