"""Logins, tokens, CSRF, roles and the audit log, in-process: no engine needed.

Every request here is refused, or answered, before any engine is reached
(unknown nodes are refused by name), so these run anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dockbed.config import get_settings
from dockbed.server.app import create_app
from dockbed.server.store import Store

ADMIN_PASSWORD = "admin-secret-1"
ALICE_PASSWORD = "alice-secret-1"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLEKEYEXAMPLEKEYEXAMPLEKEYEXAMPLEKE a@b"


@pytest.fixture
def store() -> Iterator[Store]:
    store = Store("sqlite://")
    store.add_user("admin", ADMIN_PASSWORD, role="admin")
    store.add_user("alice", ALICE_PASSWORD)
    yield store
    store.close()


@pytest.fixture
def client(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    settings = get_settings().model_copy(update={"state_dir": tmp_path})
    with TestClient(create_app(settings, store)) as client:
        yield client


def token(client: TestClient, name: str, password: str) -> dict[str, str]:
    answer = client.post("/api/v1/tokens", json={"name": name, "password": password})
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def page_login(client: TestClient, name: str, password: str) -> str:
    """Log in through the login form; the CSRF token of the new session."""
    form = client.get("/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    answer = client.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": csrf.group(1)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    page = client.get("/docker").text
    meta = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert meta is not None
    return meta.group(1)


def test_the_api_needs_credentials(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "x"}):
        answer = client.get("/api/v1/containers", headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "authentication_required"
    assert client.get("/api/v1/health").status_code == 200


def test_a_page_without_a_session_redirects_to_the_login(client: TestClient) -> None:
    answer = client.get("/docker", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/docker"


def test_token_login_whoami_and_logout(client: TestClient) -> None:
    wrong = client.post("/api/v1/tokens", json={"name": "alice", "password": "nope"})
    assert wrong.status_code == 401
    unknown = client.post("/api/v1/tokens", json={"name": "zed", "password": "nope"})
    assert unknown.json()["error"]["message"] == wrong.json()["error"]["message"]

    headers = token(client, "alice", ALICE_PASSWORD)
    me = client.get("/api/v1/users/me", headers=headers).json()
    assert me == {"name": "alice", "role": "user", "via": "token", "max_running": 40}

    assert client.delete("/api/v1/tokens/current", headers=headers).status_code == 204
    assert client.get("/api/v1/users/me", headers=headers).status_code == 401


def test_tokens_are_stored_as_digests_only(client: TestClient, store: Store) -> None:
    headers = token(client, "alice", ALICE_PASSWORD)
    secret = headers["Authorization"].removeprefix("Bearer ")
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT * FROM api_tokens").fetchall()
        users = connection.exec_driver_sql("SELECT password_hash FROM users").all()
    assert rows and all(secret not in str(row) for row in rows)
    assert all(str(row[0]).startswith("$argon2") for row in users)


def test_a_cookie_request_that_changes_state_needs_the_csrf_token(
    client: TestClient,
) -> None:
    csrf = page_login(client, "alice", ALICE_PASSWORD)
    body = {"name": "c1", "node": "atlantis"}

    refused = client.post("/api/v1/containers", json=body)
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]["message"]
    forged = client.post("/api/v1/containers", json=body, headers={"X-CSRF-Token": "x"})
    assert forged.status_code == 403
    # With the token the request gets through to the rules: the node is unknown.
    passed = client.post(
        "/api/v1/containers", json=body, headers={"X-CSRF-Token": csrf}
    )
    assert passed.status_code == 404
    assert passed.json()["error"]["field"] == "node"
    # Reading needs no token; forms carry it as a field.
    assert client.get("/api/v1/containers?node=atlantis").status_code == 404
    assert client.post("/logout", follow_redirects=False).status_code == 403
    out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/api/v1/users/me").status_code == 401


def test_a_login_form_without_its_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    answer = client.post("/login", data={"name": "alice", "password": ALICE_PASSWORD})
    assert answer.status_code == 403
    assert client.get("/api/v1/users/me").status_code == 401


def test_admin_only_routes_refuse_users(client: TestClient) -> None:
    alice = token(client, "alice", ALICE_PASSWORD)
    admin = token(client, "admin", ADMIN_PASSWORD)
    for method, path in [
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/users/admin"),
        ("PATCH", "/api/v1/users/admin"),
        ("DELETE", "/api/v1/users/admin"),
        ("POST", "/api/v1/users/admin/password"),
        ("GET", "/api/v1/audit"),
    ]:
        body = {} if method in {"POST", "PATCH"} else None
        answer = client.request(method, path, headers=alice, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
    assert client.get("/api/v1/users", headers=admin).status_code == 200
    assert client.get("/api/v1/audit", headers=admin).status_code == 200

    page_login(client, "alice", ALICE_PASSWORD)
    assert client.get("/docker/users").status_code == 403
    assert client.get("/docker/audit").status_code == 403


def test_admins_manage_users(client: TestClient) -> None:
    admin = token(client, "admin", ADMIN_PASSWORD)
    created = client.post("/api/v1/users", json={"name": "bob"}, headers=admin)
    assert created.status_code == 201, created.text
    password = created.json()["password"]
    bob = token(client, "bob", password)
    assert client.get("/api/v1/users/me", headers=bob).json()["role"] == "user"

    taken = client.post("/api/v1/users", json={"name": "bob"}, headers=admin)
    assert taken.status_code == 409
    bad = client.post("/api/v1/users", json={"name": "Bob!"}, headers=admin)
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "name")

    disabled = {"disabled": True}
    assert client.patch("/api/v1/users/bob", json=disabled, headers=admin).is_success
    assert client.get("/api/v1/users/me", headers=bob).status_code == 401

    demote = client.patch("/api/v1/users/admin", json={"role": "user"}, headers=admin)
    assert demote.status_code == 409
    assert client.delete("/api/v1/users/admin", headers=admin).status_code == 409
    assert client.delete("/api/v1/users/bob", headers=admin).status_code == 204
    names = [user["name"] for user in client.get("/api/v1/users", headers=admin).json()]
    assert names == ["admin", "alice"]


def test_saved_keys_are_checked(client: TestClient) -> None:
    alice = token(client, "alice", ALICE_PASSWORD)
    bad = client.put("/api/v1/users/me/keys", json={"keys": ["hello"]}, headers=alice)
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "ssh_keys")
    saved = client.put("/api/v1/users/me/keys", json={"keys": [KEY, ""]}, headers=alice)
    assert saved.json() == {"keys": [KEY]}
    assert client.get("/api/v1/users/me/keys", headers=alice).json() == {"keys": [KEY]}


def test_a_refused_request_is_audited_once_without_secrets(
    client: TestClient, store: Store
) -> None:
    alice = token(client, "alice", ALICE_PASSWORD)
    body = {"name": "c1", "node": "atlantis", "ssh_keys": [KEY]}
    assert (
        client.post("/api/v1/containers", json=body, headers=alice).status_code == 404
    )
    client.post("/api/v1/batches/preview", json={"prefix": "p", "count": 1})

    entries = store.audit()
    assert [entry.action for entry in entries] == ["create_container", "log_in"]
    refused, login = entries
    assert (refused.actor, refused.outcome, refused.status) == ("alice", "refused", 404)
    assert refused.target == "c1"
    assert refused.details["body"]["ssh_keys"] == "[redacted]"
    assert refused.details["error"]["code"] == "not_found"
    assert login.details["body"]["password"] == "[redacted]"
    assert KEY not in str(refused.details) and ALICE_PASSWORD not in str(login.details)


def test_a_refused_anonymous_request_is_audited(
    client: TestClient, store: Store
) -> None:
    client.post("/api/v1/tokens", json={"name": "alice", "password": "guess"})
    client.delete("/api/v1/users/alice")
    entries = store.audit()
    assert [(e.actor, e.action, e.outcome, e.status) for e in entries] == [
        ("-", "remove_user", "refused", 401),
        ("-", "log_in", "refused", 401),
    ]
