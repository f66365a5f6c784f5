"""Who is asking, and whether they may: API tokens, page sessions, CSRF, roles.

A request proves who sent it with ``Authorization: Bearer <token>`` (the CLI,
scripts) or with the signed session cookie that the login page sets (the
pages; Starlette's ``SessionMiddleware``, HttpOnly and SameSite=Lax, Secure
when ``session_cookie_secure`` is set). A cookie request that changes
something must also carry the session's CSRF token, in the ``X-CSRF-Token``
header (the pages' scripts) or the ``csrf_token`` form field (forms): a
browser sends the cookie on its own, never the token. Bearer requests need
no CSRF token, since no browser adds that header by itself.

No credentials: ``AuthenticationRequired`` (401, or a redirect to ``/login``
for a page); a user who may not: ``PermissionDenied`` (403).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from dockbed.errors import AuthenticationRequired, PermissionDenied
from dockbed.server.audit import note_actor
from dockbed.server.service import Principal
from dockbed.server.store import Store, User

log = logging.getLogger(__name__)

SESSION_COOKIE = "dockbed_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECRET_FILE = "session.key"


def session_secret(state_dir: Path) -> str:
    """The key that signs session cookies: made once, kept 0600 in ``state_dir``.

    Kept across restarts so that a restarted server does not log everyone
    out; delete the file to end every session at once.
    """
    path = state_dir / SECRET_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret)
    log.info("made a new session key at %s", path)
    return secret


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def csrf_token(request: Request) -> str:
    """This session's CSRF token, made on first use (before login, too)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def start_session(request: Request, user: User) -> None:
    """Log ``user`` in on this browser, with a fresh session and CSRF token."""
    request.session.clear()
    request.session.update(
        user=user.name, stamp=user.session_stamp, csrf=secrets.token_urlsafe(32)
    )
    note_actor(request, user.name)


def end_session(request: Request) -> None:
    request.session.clear()


async def get_principal(request: Request) -> Principal:
    """The caller, from their bearer token or their session cookie.

    Raises AuthenticationRequired without valid credentials and, for a cookie
    request that changes something, PermissionDenied without the CSRF token.
    """
    store = get_store(request)
    header = request.headers.get("authorization")
    if header is not None:
        principal = await _token_principal(store, header)
        note_actor(request, principal.name)
        return principal
    principal = await _session_principal(request, store)
    note_actor(request, principal.name)
    if request.method not in SAFE_METHODS:
        await _check_csrf(request)
    return principal


def require_admin(
    principal: Annotated[Principal, Depends(get_principal)],
) -> Principal:
    """The caller, if an admin; PermissionDenied for anyone else."""
    if not principal.is_admin:
        raise PermissionDenied(
            "only an admin may do this",
            hint="ask an admin of this dockbed server",
            user=principal.name,
        )
    return principal


async def _token_principal(store: Store, header: str) -> Principal:
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationRequired(
            "the Authorization header must be 'Bearer <token>'",
            hint="'dockbed login' gets a token",
        )
    holder = await run_in_threadpool(store.token_holder, secret.strip())
    if holder is None:
        raise AuthenticationRequired(
            "this API token is not valid: revoked, or its user disabled",
            hint="log in again with 'dockbed login'",
        )
    user, token = holder
    return Principal(user.name, is_admin=user.is_admin, token_id=token.id)


async def _session_principal(request: Request, store: Store) -> Principal:
    name = request.session.get("user")
    if not isinstance(name, str):
        raise AuthenticationRequired(
            "log in first",
            hint="the pages log in at /login; the API takes a token from "
            "POST /api/v1/tokens ('dockbed login')",
        )
    user = await run_in_threadpool(store.user, name)
    if (
        user is None
        or user.disabled
        or request.session.get("stamp") != user.session_stamp
    ):
        end_session(request)
        raise AuthenticationRequired(
            "your session has ended (user removed, disabled or password changed)",
            hint="log in again",
        )
    return Principal(user.name, is_admin=user.is_admin)


async def _check_csrf(request: Request) -> None:
    """Refuse a cookie request that changes state without the session's token."""
    expected = request.session.get("csrf")
    given = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if given is None and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        field = (await request.form()).get(CSRF_FIELD)
        given = field if isinstance(field, str) else None
    if (
        not isinstance(expected, str)
        or given is None
        or not hmac.compare_digest(expected, given)
    ):
        raise PermissionDenied(
            "this request lacks the page's CSRF token",
            hint=f"send the {CSRF_HEADER} header the page gives, or reload the page",
        )
