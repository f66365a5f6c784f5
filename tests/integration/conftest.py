"""Fixtures for tests against the real Docker Engine and lab network.

The node must have been set up (``dockbed node setup``, which ``make test``
runs). Every container a test makes is registered and removed afterwards,
whatever the test's outcome.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import docker
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dockbed.cli.client import TOKEN_VARIABLE
from dockbed.config import Settings, get_settings
from dockbed.server.app import create_app
from dockbed.server.store import Store, generate_password


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def docker_client(settings: Settings) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=settings.engine_url)
    yield client
    client.close()


class Made:
    """Names of containers a test created, removed when it ends."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.tag = uuid.uuid4().hex[:6]

    def name(self, stem: str) -> str:
        """A name unique to this test run: ``t<tag>-<stem>``."""
        return f"t{self.tag}-{stem}"

    def remove_all(self) -> None:
        prefix = f"t{self.tag}-"
        for summary in self.client.api.containers(all=True, filters={"name": prefix}):
            with suppress(docker.errors.NotFound):
                self.client.api.remove_container(summary["Id"], force=True)


@pytest.fixture
def made(docker_client: docker.DockerClient) -> Iterator[Made]:
    registry = Made(docker_client)
    yield registry
    registry.remove_all()


@pytest.fixture(scope="session")
def server_settings(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """The settings with a temporary state_dir: its own store and session key."""
    state = tmp_path_factory.mktemp("state")
    return settings.model_copy(update={"state_dir": state, "database_url": None})


@pytest.fixture(scope="session")
def store(server_settings: Settings) -> Iterator[Store]:
    store = Store.from_settings(server_settings)
    yield store
    store.close()


@pytest.fixture(scope="session")
def admin_token(store: Store) -> str:
    """An API token of the admin the tests act as."""
    store.add_user("admin", generate_password(), role="admin")
    secret, _ = store.issue_token("admin", "tests")
    return secret


@pytest.fixture(scope="session")
def app_client(
    server_settings: Settings, store: Store, admin_token: str
) -> Iterator[TestClient]:
    """The API in-process, every request sent with the admin's token."""
    app = create_app(server_settings, store)
    headers = {"Authorization": f"Bearer {admin_token}"}
    with TestClient(app, headers=headers) as client:
        yield client


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key pair made for this test session; the public half is ``.pub``."""
    path = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True
    )
    return path


def ssh(key: Path, address: str, command: str, timeout: float = 20) -> str:
    """Run ``command`` in a container over ssh as root; its stdout."""
    result = subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=5",
            f"root@{address}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return result.stdout


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run an app with uvicorn on a free loopback port, in a thread; its URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def server_url(
    server_settings: Settings, store: Store, admin_token: str
) -> Iterator[str]:
    """A real dockbed server on a free loopback port, in a thread.

    The ``dockbed`` commands that tests run act as the admin: the admin's
    token is in ``DOCKBED_TOKEN`` for the session.
    """
    app = create_app(server_settings, store)
    with pytest.MonkeyPatch.context() as patch, serving(app) as url:
        patch.setenv(TOKEN_VARIABLE, admin_token)
        yield url


def engine_snapshot(client: docker.DockerClient) -> set[tuple[str, str]]:
    """What ``docker ps -a`` shows, as (name, status) pairs."""
    return {(c.name, c.status) for c in client.containers.list(all=True)}
