"""The pages: login, the control page ``/docker``, users and the audit log.

Pages are rendered once by the server (Jinja2 + Bootstrap) and then call the
REST API from their scripts, with the session cookie and the CSRF token the
page carries in a ``<meta>`` tag, so the page and the CLI pass through the
same routes and checks. Other page modules (the monitor) extend
``base.html`` and call :func:`render`.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from dockbed import errors
from dockbed.server.api.errors import status_of
from dockbed.server.auth import (
    csrf_token,
    end_session,
    get_principal,
    get_store,
    require_admin,
    start_session,
)
from dockbed.server.service import LabService, Principal

log = logging.getLogger(__name__)

PAGES_DIR = Path(__file__).resolve().parent
STATIC_DIR = PAGES_DIR / "static"
templates = Jinja2Templates(directory=PAGES_DIR / "templates")

router = APIRouter(include_in_schema=False)

PageCaller = Annotated[Principal, Depends(get_principal)]
PageAdmin = Annotated[Principal, Depends(require_admin)]


def render(
    request: Request,
    template: str,
    principal: Principal | None,
    *,
    active: str = "",
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page from ``template`` with what ``base.html`` needs: user, CSRF, nodes."""
    service: LabService = request.app.state.service
    settings = service.settings
    return templates.TemplateResponse(
        request,
        template,
        {
            "me": principal,
            "csrf": csrf_token(request),
            "active": active,
            "nodes": service.nodes.names(),
            "default_node": settings.node_name,
            "defaults": {
                "image": settings.image,
                "cpus": settings.limits.cpus,
                "memory": settings.limits.memory,
                "pids": settings.limits.pids,
                "batch_max": settings.batch_max,
            },
            **context,
        },
        status_code=status_code,
    )


def page_error(request: Request, error: errors.DockbedError) -> Response:
    """A page's error: log in first, or a page that says what went wrong."""
    if isinstance(error, errors.AuthenticationRequired):
        target = request.url.path
        if request.url.query:
            target += f"?{request.url.query}"
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    return render(
        request,
        "error.html",
        None,
        status_code=status_of(error),
        error=error,
        status=status_of(error),
    )


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/docker", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/docker") -> HTMLResponse:
    return render(request, "login.html", None, next=_local(next))


@router.post("/login", response_class=HTMLResponse)
def log_in(
    request: Request,
    name: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token_field: Annotated[str, Form(alias="csrf_token")] = "",
    next: Annotated[str, Form()] = "/docker",
) -> Response:
    """Check the form's CSRF token, then the password; start a session."""
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not hmac.compare_digest(
        expected, csrf_token_field
    ):
        return _login_again(request, name, next, "The form expired; try again.", 403)
    try:
        user = get_store(request).authenticate(name, password)
    except errors.AuthenticationRequired as error:
        return _login_again(request, name, next, error.message, 401)
    start_session(request, user)
    log.info("%s logged in to the pages", user.name)
    return RedirectResponse(_local(next), status_code=303)


def _login_again(
    request: Request, name: str, next: str, message: str, status: int
) -> HTMLResponse:
    return render(
        request,
        "login.html",
        None,
        status_code=status,
        next=_local(next),
        name=name,
        error=message,
    )


@router.post("/logout")
def log_out(request: Request, principal: PageCaller) -> RedirectResponse:
    end_session(request)
    return RedirectResponse("/login", status_code=303)


@router.get("/docker", response_class=HTMLResponse)
def control_page(request: Request, principal: PageCaller) -> HTMLResponse:
    """Create, batch, list, start, stop, remove; second interfaces; networks."""
    service: LabService = request.app.state.service
    return render(
        request,
        "control.html",
        principal,
        active="control",
        max_running=service.running_cap.limit_for(principal),
    )


@router.get("/docker/users", response_class=HTMLResponse)
def users_page(request: Request, principal: PageAdmin) -> HTMLResponse:
    return render(request, "users.html", principal, active="users")


@router.get("/docker/audit", response_class=HTMLResponse)
def audit_page(request: Request, principal: PageAdmin) -> HTMLResponse:
    return render(request, "audit.html", principal, active="audit")


def _local(target: str) -> str:
    """``target`` if it is a path on this server, else the control page.

    A login link must not send the browser to another site afterwards.
    """
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/docker"
