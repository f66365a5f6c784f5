"""``/api/v1/users``, ``/tokens``, ``/audit``: accounts, logins and the log.

Anyone may ``POST /tokens`` with a name and password; the caller manages
their own tokens, password and saved ssh keys under ``/users/me``; only
admins list, add, change and remove users, and read the audit log.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response, status

from dockbed.errors import AuthenticationRequired, Conflict, InvalidInput
from dockbed.server.api.deps import Admin, Caller, Service, StoreDep
from dockbed.server.audit import note_actor
from dockbed.server.auth import start_session
from dockbed.server.schemas import (
    AuditView,
    NewPassword,
    PasswordChangeRequest,
    SshKeys,
    TokenIssued,
    TokenRequest,
    TokenView,
    UserCreated,
    UserCreateRequest,
    UserUpdateRequest,
    UserView,
    Whoami,
)
from dockbed.server.service import Principal, check_ssh_keys
from dockbed.server.store import Outcome, User, as_role, generate_password

router = APIRouter()


def _user_view(user: User) -> UserView:
    return UserView(
        name=user.name,
        role=as_role(user.role),
        created=user.created,
        disabled=user.disabled,
    )


# Tokens -----------------------------------------------------------------------


@router.post("/tokens", response_model=TokenIssued, status_code=201, tags=["auth"])
def log_in(body: TokenRequest, store: StoreDep, request: Request) -> TokenIssued:
    """Trade a name and password for an API token: ``dockbed login``.

    The token is in this answer only; the server keeps its sha256 digest.
    """
    user = store.authenticate(body.name, body.password)
    note_actor(request, user.name)
    secret, token = store.issue_token(user.name, body.label)
    return TokenIssued(token=secret, id=token.id, user=_user_view(user))


@router.get("/tokens", response_model=list[TokenView], tags=["auth"])
def list_tokens(store: StoreDep, caller: Caller) -> list[TokenView]:
    """Your API tokens (never their secrets)."""
    return [
        TokenView(id=t.id, name=t.name, created=t.created, last_used=t.last_used)
        for t in store.tokens(caller.name)
    ]


@router.delete("/tokens/current", status_code=204, tags=["auth"])
def log_out(store: StoreDep, caller: Caller) -> Response:
    """Revoke the token this request came with: ``dockbed logout``."""
    if caller.token_id is None:
        raise InvalidInput(
            "this request came with a session, not a token",
            hint="pages log out with POST /logout",
        )
    store.revoke_token(caller.name, caller.token_id)
    return Response(status_code=204)


@router.delete("/tokens/{token_id}", status_code=204, tags=["auth"])
def revoke_token(token_id: int, store: StoreDep, caller: Caller) -> Response:
    """Revoke one of your tokens."""
    store.revoke_token(caller.name, token_id)
    return Response(status_code=204)


# The caller's own account -----------------------------------------------------


@router.get("/users/me", response_model=Whoami, tags=["users"])
def whoami(caller: Caller, service: Service) -> Whoami:
    """Who you are to the server: ``dockbed whoami``."""
    return Whoami(
        name=caller.name,
        role="admin" if caller.is_admin else "user",
        via="session" if caller.token_id is None else "token",
        max_running=service.running_cap.limit_for(caller),
    )


@router.put("/users/me/password", status_code=204, tags=["users"])
def change_password(
    body: PasswordChangeRequest, store: StoreDep, caller: Caller, request: Request
) -> Response:
    """Change your password; your other page sessions end, this one goes on."""
    try:
        store.authenticate(caller.name, body.current_password)
    except AuthenticationRequired as error:
        raise InvalidInput(
            "the current password is wrong", field="current_password"
        ) from error
    user = store.set_password(caller.name, body.new_password)
    if caller.token_id is None:
        start_session(request, user)
    return Response(status_code=204)


@router.get("/users/me/keys", response_model=SshKeys, tags=["users"])
def get_keys(store: StoreDep, caller: Caller) -> SshKeys:
    """Your saved public keys: new containers get them when a request has none."""
    return SshKeys(keys=store.keys_of(caller.name))


@router.put("/users/me/keys", response_model=SshKeys, tags=["users"])
def set_keys(body: SshKeys, store: StoreDep, caller: Caller) -> SshKeys:
    """Replace your saved public keys (one ``.pub`` line each)."""
    keys = check_ssh_keys(key for key in body.keys if key.strip())
    return SshKeys(keys=store.set_keys(caller.name, keys))


# Users, for admins ------------------------------------------------------------


@router.get("/users", response_model=list[UserView], tags=["users"])
def list_users(store: StoreDep, admin: Admin) -> list[UserView]:
    """Every user: ``dockbed user ls``."""
    return [_user_view(user) for user in store.users()]


@router.post("/users", response_model=UserCreated, status_code=201, tags=["users"])
def create_user(body: UserCreateRequest, store: StoreDep, admin: Admin) -> UserCreated:
    """Add a user: ``dockbed user add``. A generated password is answered once."""
    password = body.password or generate_password()
    user = store.add_user(body.name, password, body.role)
    shown = None if body.password else password
    return UserCreated(**_user_view(user).model_dump(), password=shown)


@router.get("/users/{name}", response_model=UserView, tags=["users"])
def get_user(name: str, store: StoreDep, admin: Admin) -> UserView:
    return _user_view(store.get_user(name))


@router.patch("/users/{name}", response_model=UserView, tags=["users"])
def update_user(
    name: str, body: UserUpdateRequest, store: StoreDep, admin: Admin
) -> UserView:
    """Make a user an admin or not, disable (which revokes their tokens) or enable."""
    if name == admin.name and (body.role == "user" or body.disabled):
        _refuse_self(admin, "demote or disable")
    return _user_view(store.update_user(name, role=body.role, disabled=body.disabled))


@router.post("/users/{name}/password", response_model=NewPassword, tags=["users"])
def reset_password(name: str, store: StoreDep, admin: Admin) -> NewPassword:
    """Give a user a new generated password, answered once; ends their sessions."""
    password = generate_password()
    store.set_password(name, password)
    return NewPassword(password=password)


@router.delete("/users/{name}", status_code=204, tags=["users"])
def remove_user(name: str, store: StoreDep, admin: Admin) -> Response:
    """Remove a user and their tokens: ``dockbed user rm``. Containers stay."""
    if name == admin.name:
        _refuse_self(admin, "remove")
    store.remove_user(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _refuse_self(admin: Principal, what: str) -> None:
    raise Conflict(
        f"an admin may not {what} themselves",
        hint="another admin can",
        field="name",
        user=admin.name,
    )


# The audit log ----------------------------------------------------------------


@router.get("/audit", response_model=list[AuditView], tags=["audit"])
def read_audit(
    store: StoreDep,
    admin: Admin,
    limit: int = Query(default=100, ge=1, le=1000),
    before: int | None = Query(default=None, description="entries older than this id"),
    actor: str | None = None,
    outcome: Outcome | None = None,
    q: str | None = Query(default=None, description="text in the action or target"),
) -> list[AuditView]:
    """The newest audit entries first; page back with ``before``."""
    entries = store.audit(
        limit=limit, before=before, actor=actor, outcome=outcome, text=q
    )
    return [AuditView.model_validate(entry, from_attributes=True) for entry in entries]
