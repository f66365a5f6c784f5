"""The dockbed server: REST API under ``/api/v1``, the pages, and who may use them.

Around every route sit two middlewares: the signed session cookie (outer)
and the audit log's writer (inner). Who the caller is and whether they may
is decided by the routes' dependencies (``dockbed.server.auth``).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from dockbed.config import Settings, get_settings
from dockbed.server.api import containers, monitor, networks, nodes, users
from dockbed.server.api.errors import install_error_handlers
from dockbed.server.audit import AuditMiddleware, record_job_end
from dockbed.server.auth import SESSION_COOKIE, session_secret
from dockbed.server.jobs import JobBoard
from dockbed.server.networks import NetworkService
from dockbed.server.nodes import NodeRegistry
from dockbed.server.pages import monitor as monitor_page
from dockbed.server.pages import views
from dockbed.server.service import LabService
from dockbed.server.store import Store

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """The ASGI app, wired to the nodes the settings name and to the store.

    ``store`` defaults to the one ``database_url`` names (SQLite under
    ``state_dir``); the session key is kept in ``state_dir`` too.
    """
    settings = settings or get_settings()
    store = store or Store.from_settings(settings)
    app = FastAPI(
        title="dockbed",
        summary="ssh-able lab containers on the nodes of a testbed",
        version="0.1.0",
    )
    app.state.settings = settings
    app.state.store = store
    registry = NodeRegistry.from_settings(settings, records=store)
    app.state.service = LabService(settings, registry, saved_keys=store)
    app.state.networks = NetworkService(registry, settings.node_name)
    app.state.jobs = JobBoard(on_finished=lambda job: record_job_end(store, job))
    install_error_handlers(app, page_error=views.page_error)
    for module in (containers, monitor, networks, nodes, users):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(views.router)
    app.include_router(monitor_page.router)
    app.mount("/static", StaticFiles(directory=views.STATIC_DIR), name="static")

    app.add_middleware(AuditMiddleware, store=store)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings.state_dir),
        session_cookie=SESSION_COOKIE,
        max_age=int(settings.session_hours * 3600),
        same_site="lax",
        https_only=settings.session_cookie_secure,
    )

    @app.get(f"{API_PREFIX}/health", tags=["server"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
