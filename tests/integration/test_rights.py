"""Who may do what, on the real engine: ownership, the running cap, saved keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from fastapi.testclient import TestClient

from dockbed.config import Settings
from dockbed.server.app import create_app
from dockbed.server.store import Store
from tests.integration.conftest import Made, ssh

pytestmark = pytest.mark.integration

CAP = 2


@dataclass(frozen=True)
class User:
    name: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Capped:
    """A server whose users may run CAP containers, with users a and b."""

    client: TestClient
    store: Store
    a: User
    b: User


@pytest.fixture(scope="module")
def capped(
    server_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Capped]:
    state = tmp_path_factory.mktemp("capped")
    settings = server_settings.model_copy(
        update={"state_dir": state, "user_max_running": CAP}
    )
    store = Store.from_settings(settings)
    users = []
    for stem in ("a", "b"):
        # Unique names: the owner label must not match an earlier run's containers.
        name = f"{stem}-{uuid.uuid4().hex[:6]}"
        store.add_user(name, "password-123")
        secret, _ = store.issue_token(name, "tests")
        users.append(User(name, {"Authorization": f"Bearer {secret}"}))
    with TestClient(create_app(settings, store)) as client:
        yield Capped(client, store, *users)
    store.close()


def test_the_running_cap_holds_for_create_batch_and_start(
    capped: Capped, made: Made
) -> None:
    client, a = capped.client, capped.a.headers
    for stem in ("one", "two"):
        answer = client.post(
            "/api/v1/containers", json={"name": made.name(stem)}, headers=a
        )
        assert answer.status_code == 201, answer.text

    third = client.post(
        "/api/v1/containers", json={"name": made.name("three")}, headers=a
    )
    assert third.status_code == 409
    error = third.json()["error"]
    assert f"may run {CAP} containers" in error["message"]
    assert "has 2" in error["message"]
    assert error["details"]["cap"] == CAP and error["details"]["running"] == 2

    batch = {"prefix": made.name("more"), "count": 1}
    refused = client.post("/api/v1/batches", json=batch, headers=a)
    assert (refused.status_code, refused.json()["error"]["field"]) == (409, "count")
    preview = client.post("/api/v1/batches/preview", json=batch, headers=a)
    assert preview.status_code == 409

    # The cap is per user: B is not held back by A's containers.
    theirs = client.post(
        "/api/v1/containers", json={"name": made.name("b")}, headers=capped.b.headers
    )
    assert theirs.status_code == 201, theirs.text

    # A stopped container does not count; starting it again must fit.
    assert client.post(
        f"/api/v1/containers/{made.name('one')}/stop", headers=a
    ).is_success
    assert (
        client.post(
            "/api/v1/containers", json={"name": made.name("three")}, headers=a
        ).status_code
        == 201
    )
    start = client.post(f"/api/v1/containers/{made.name('one')}/start", headers=a)
    assert start.status_code == 409


def test_users_see_and_touch_only_their_own(capped: Capped, made: Made) -> None:
    client, a, b = capped.client, capped.a.headers, capped.b.headers
    batch = {"prefix": made.name("bb"), "count": 1}
    job = client.post("/api/v1/batches?wait=true", json=batch, headers=b)
    assert job.status_code == 201, job.text
    name = f"{made.name('bb')}-1"
    assert client.get(f"/api/v1/jobs/{job.json()['id']}", headers=b).is_success

    assert client.get(f"/api/v1/jobs/{job.json()['id']}", headers=a).status_code == 404
    listed = {row["name"] for row in client.get("/api/v1/containers", headers=a).json()}
    assert name not in listed
    for method, path, body in [
        ("GET", f"/api/v1/containers/{name}", None),
        ("POST", f"/api/v1/containers/{name}/stop", None),
        ("DELETE", f"/api/v1/containers/{name}", None),
        ("POST", "/api/v1/actions/remove", {"names": [name]}),
        ("POST", "/api/v1/actions/remove", {"batch": made.name("bb")}),
        ("POST", f"/api/v1/containers/{name}/networks", {"network": "lab"}),
        ("DELETE", f"/api/v1/containers/{name}/networks/lab", None),
    ]:
        answer = client.request(method, path, json=body, headers=a)
        assert answer.status_code == 404, (method, path, answer.text)


def test_creates_are_audited_and_use_the_owners_saved_keys(
    capped: Capped,
    made: Made,
    ssh_key: Path,
) -> None:
    client, store, b = capped.client, capped.store, capped.b
    key = ssh_key.with_suffix(".pub").read_text().strip()
    assert client.put(
        "/api/v1/users/me/keys", json={"keys": [key]}, headers=b.headers
    ).is_success

    name = made.name("keyed")
    body = {"name": name, "wait_ready": True}
    created = client.post("/api/v1/containers", json=body, headers=b.headers)
    assert created.status_code == 201, created.text
    assert ssh(ssh_key, created.json()["addresses"]["lab"], "hostname").strip() == name

    entry = next(e for e in store.audit(text=name) if e.action == "create_container")
    assert (entry.actor, entry.outcome, entry.status) == (b.name, "ok", 201)
    assert entry.target == name
    (saved,) = store.audit(actor=b.name, text="set_keys")
    assert saved.details["body"]["keys"] == "[redacted]"
    assert key not in str(saved.details)


def test_only_its_maker_or_an_admin_removes_a_network(
    capped: Capped, made: Made, docker_client: docker.DockerClient
) -> None:
    client, a, b = capped.client, capped.a.headers, capped.b.headers
    name = made.name("bnet")
    body = {"name": name, "subnet": "172.30.91.0/24"}
    assert client.post("/api/v1/networks", json=body, headers=b).status_code == 201
    try:
        refused = client.delete(f"/api/v1/networks/{name}", headers=a)
        assert refused.status_code == 403, refused.text
        assert capped.b.name in refused.json()["error"]["message"]
        assert client.delete(f"/api/v1/networks/{name}", headers=b).status_code == 204
    finally:
        with suppress(docker.errors.NotFound):
            docker_client.networks.get(name).remove()
