"""Three simulated nodes (``dockbed devlab up``) driven by one server.

Each node is a network namespace with its own dockerd, reached over TLS with
client certificates; their lab interfaces meet on one switch, so all three
share one lab segment. The module brings them up once and removes them at
its end, whatever the outcome. They get names and subnets of their own
(``dbtnode*``, 10.213.51.0/24 and 10.64.101.0/24), so a developer's own
``devlab up`` keeps running beside them.
"""

from __future__ import annotations

import io
import json
import os
import ssl
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, TypeVar

import docker
import httpx
import pytest
from fastapi.testclient import TestClient

from dockbed.cli.client import TOKEN_VARIABLE
from dockbed.config import DevlabSettings, LabSettings, Settings
from dockbed.devlab.nodes import DevlabUp, devlab_down, devlab_up, stop_node
from dockbed.engine.client import connect
from dockbed.engine.tls import TlsFiles, ensure_ca, ensure_client_files
from dockbed.server.app import create_app
from dockbed.server.store import Store, generate_password
from tests.integration.conftest import serving

pytestmark = [pytest.mark.integration, pytest.mark.devlab]

NODES = ("dbtnode1", "dbtnode2", "dbtnode3")
SEGMENT = "10.64.101.0/24"
DOCKBED = str(Path(sys.executable).with_name("dockbed"))
T = TypeVar("T")


@pytest.fixture(scope="module")
def devlab_settings(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    root = tmp_path_factory.mktemp("devlab")
    devlab = DevlabSettings(
        name_prefix="dbtnode",
        control_subnet=IPv4Network("10.213.51.0/24"),
        control_bridge="dbtctl0",
        switch_namespace="dbtswitch",
        host_interface="dbtdevlab0",
        lab=LabSettings(
            subnet=IPv4Network(SEGMENT),
            gateway=IPv4Address("10.64.101.1"),
            pool_first=IPv4Address("10.64.101.52"),
            pool_last=IPv4Address("10.64.101.240"),
            node_address=IPv4Address("10.64.101.10"),
        ),
    )
    return settings.model_copy(
        update={
            "state_dir": root / "state",
            "log_dir": root / "log",
            "database_url": None,
            "devlab": devlab,
        }
    )


@pytest.fixture(scope="module")
def devlab(devlab_settings: Settings, output_dir: Path) -> Iterator[DevlabUp]:
    try:
        started = time.monotonic()
        result = devlab_up(devlab_settings, len(NODES), agents=False)
        loads = [node.image_seconds or 0.0 for node in result.nodes]
        (output_dir / "devlab-up.txt").write_text(
            f"devlab up {time.monotonic() - started:.1f} s, image loads "
            + ", ".join(f"{seconds:.1f} s" for seconds in loads)
            + "\n"
        )
        yield result
    finally:
        started = time.monotonic()
        devlab_down(devlab_settings)
        with (output_dir / "devlab-up.txt").open("a") as report:
            report.write(f"devlab down {time.monotonic() - started:.1f} s\n")


@pytest.fixture(scope="module")
def devlab_store(devlab_settings: Settings) -> Iterator[Store]:
    store = Store("sqlite://")
    store.add_user("admin", generate_password(), role="admin")
    yield store
    store.close()


@pytest.fixture(scope="module")
def devlab_token(devlab_store: Store) -> str:
    secret, _ = devlab_store.issue_token("admin", "devlab tests")
    return secret


@pytest.fixture(scope="module")
def api(
    devlab: DevlabUp, devlab_settings: Settings, devlab_store: Store, devlab_token: str
) -> Iterator[TestClient]:
    app = create_app(devlab_settings, devlab_store)
    headers = {"Authorization": f"Bearer {devlab_token}"}
    with TestClient(app, headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def server_url(
    devlab: DevlabUp, devlab_settings: Settings, devlab_store: Store
) -> Iterator[str]:
    with serving(create_app(devlab_settings, devlab_store)) as url:
        yield url


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:6]}"


@pytest.fixture
def cleanup(api: TestClient) -> Iterator[list[str]]:
    """Batch prefixes and container names a test made, removed at its end."""
    made: list[str] = []
    yield made
    for name in made:
        for node in NODES:
            api.post("/api/v1/actions/remove", json={"names": [name], "node": node})
        api.post("/api/v1/actions/remove", json={"batch": name})


def client_files(devlab: DevlabUp) -> TlsFiles:
    assert devlab.client is not None
    return devlab.client


def node_engine(devlab: DevlabUp, name: str) -> docker.DockerClient:
    node = devlab.plan.node(name)
    return connect(node.engine_url, tls=client_files(devlab))


def eventually(check: Callable[[], T | None], timeout: float = 30) -> T:
    """Poll ``check`` until it returns something, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.25)


def nodes_by_name(api: TestClient) -> dict[str, dict[str, Any]]:
    answer = api.get("/api/v1/nodes")
    assert answer.status_code == 200, answer.text
    return {row["name"]: row for row in answer.json()}


def run_nodes_cli(
    server_url: str, token: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """``dockbed node ls|add|rm`` as their module defines them, in a process."""
    script = (
        "import typer; from dockbed.cli.nodes import register; "
        "app = typer.Typer(); register(app); app()"
    )
    env = {**os.environ, "DOCKBED_SERVER_URL": server_url, TOKEN_VARIABLE: token}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_every_node_answers_over_tls_on_one_segment(api: TestClient) -> None:
    nodes = nodes_by_name(api)

    for name in NODES:
        node = nodes[name]
        assert node["status"] == "up", node
        assert node["source"] == "devlab"
        assert node["engine_url"].startswith("tcp://10.213.51.")
        assert node["engine_version"]
        assert node["segment"] == SEGMENT
    assert len({nodes[name]["free_addresses"] for name in NODES}) == 1


def test_a_batch_spread_over_three_nodes_ascends_and_nodes_reach_each_other(
    server_url: str,
    devlab_token: str,
    devlab: DevlabUp,
    ssh_key: Path,
    prefix: str,
    cleanup: list[str],
) -> None:
    cleanup.append(prefix)
    env = {**os.environ, "DOCKBED_SERVER_URL": server_url, TOKEN_VARIABLE: devlab_token}
    created = subprocess.run(
        [DOCKBED, "batch", prefix, "--count", "6", "--nodes", ",".join(NODES),
         "--ssh-key", str(ssh_key.with_suffix(".pub")), "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    rows = sorted(json.loads(created.stdout), key=lambda row: row["name"])

    assert [row["node"] for row in rows] == [*NODES, *NODES]
    addresses = [IPv4Address(row["addresses"]["lab"]) for row in rows]
    assert addresses == [addresses[0] + step for step in range(6)]
    assert addresses[0] in IPv4Network(SEGMENT)

    # ssh from the first (on dbtnode1) to the second (on dbtnode2), with the
    # test's key put into the first.
    first, second = rows[0], rows[1]
    engine = node_engine(devlab, first["node"])
    try:
        engine.api.put_archive(first["name"], "/root/.ssh", _key_archive(ssh_key))
        result = engine.containers.get(first["name"]).exec_run(
            ["ssh", "-i", "/root/.ssh/id_test", "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
             f"root@{second['addresses']['lab']}", "hostname"],
            demux=True,
        )  # fmt: skip
    finally:
        engine.close()
    stdout, stderr = result.output
    assert result.exit_code == 0, stderr
    assert stdout.decode().strip() == second["name"]


def _key_archive(key: Path) -> bytes:
    content = key.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        item = tarfile.TarInfo("id_test")
        item.size, item.mode = len(content), 0o600
        archive.addfile(item, io.BytesIO(content))
    return buffer.getvalue()


def test_a_client_without_a_certificate_is_refused_by_every_node(
    devlab: DevlabUp, tmp_path: Path, api: TestClient
) -> None:
    client = client_files(devlab)
    stranger = ensure_client_files(ensure_ca(tmp_path), tmp_path)

    for node in devlab.plan.nodes:
        host = f"{node.control_address}:{node.engine_port}"

        plain = httpx.get(f"http://{host}/_ping", timeout=5)
        assert plain.status_code == 400
        assert "HTTPS" in plain.text

        with pytest.raises(httpx.TransportError):
            httpx.get(f"https://{host}/_ping", verify=_context(client), timeout=5)
        with pytest.raises(httpx.TransportError):
            httpx.get(
                f"https://{host}/_ping",
                verify=_context(client, certificate=stranger),
                timeout=5,
            )

        welcome = httpx.get(
            f"https://{host}/_ping",
            verify=_context(client, certificate=client),
            timeout=5,
        )
        assert welcome.text == "OK"

    # The server itself takes no engine on plain TCP.
    refused = api.post(
        "/api/v1/nodes",
        json={"name": "plain", "engine_url": f"tcp://{host.split(':')[0]}:2375"},
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "engine_url"
    assert "plain" not in nodes_by_name(api)


def _context(ca: TlsFiles, *, certificate: TlsFiles | None = None) -> ssl.SSLContext:
    """Checks the engine against its CA; shows ``certificate`` if given."""
    context = ssl.create_default_context(cafile=str(ca.ca))
    if certificate is not None:
        context.load_cert_chain(str(certificate.cert), str(certificate.key))
    return context


def test_a_node_that_stops_shows_unknown_and_comes_back_by_itself(
    api: TestClient,
    devlab: DevlabUp,
    devlab_settings: Settings,
    ssh_key: Path,
    prefix: str,
    cleanup: list[str],
) -> None:
    key = ssh_key.with_suffix(".pub").read_text()
    victim, other = f"{prefix}-down", f"{prefix}-other"
    cleanup += [victim, other]
    made = api.post(
        "/api/v1/containers",
        json={"name": victim, "node": "dbtnode2", "ssh_keys": [key]},
    )
    assert made.status_code == 201, made.text
    victim_address = made.json()["addresses"]["lab"]

    # As a node going down would: dockerd stops its containers, then itself.
    assert stop_node(devlab_settings, "dbtnode2")
    started = time.monotonic()
    nodes = nodes_by_name(api)
    assert time.monotonic() - started < 10
    assert nodes["dbtnode2"]["status"] == "unknown"
    assert nodes["dbtnode2"]["error"] and "dbtnode2" in nodes["dbtnode2"]["error"]
    assert nodes["dbtnode1"]["status"] == nodes["dbtnode3"]["status"] == "up"

    listed = api.get("/api/v1/containers", params={"all": True}).json()
    shown = {row["name"]: row for row in listed}
    assert shown[victim]["state"] == "unknown"
    assert shown[victim]["node"] == "dbtnode2"

    action = api.post(
        "/api/v1/actions/stop", json={"names": [victim], "node": "dbtnode2"}
    )
    assert action.status_code == 503, action.text
    assert "dbtnode2" in action.json()["error"]["message"]

    # The other nodes keep working, on the shared segment too: the address
    # the stopped node's container holds stays taken.
    beside = api.post(
        "/api/v1/containers",
        json={"name": other, "node": "dbtnode1", "ssh_keys": [key]},
    )
    assert beside.status_code == 201, beside.text
    assert beside.json()["addresses"]["lab"] != victim_address

    devlab_up(devlab_settings, len(NODES), agents=False, load_image=False)

    def back() -> dict[str, Any] | None:
        node = nodes_by_name(api)["dbtnode2"]
        return node if node["status"] == "up" else None

    eventually(back)

    def running() -> dict[str, Any] | None:
        row = api.get(
            f"/api/v1/containers/{victim}", params={"node": "dbtnode2"}
        ).json()
        return row if row.get("state") == "running" else None

    assert eventually(running)["addresses"]["lab"] == victim_address


def test_a_node_is_added_listed_and_removed_from_the_cli(
    server_url: str, devlab_token: str, devlab: DevlabUp, api: TestClient
) -> None:
    node = devlab.plan.node("dbtnode3")
    added = run_nodes_cli(
        server_url, devlab_token, "add", "dbtextra",
        "--engine", node.engine_url, "--tls-dir", str(client_files(devlab).directory),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    try:
        listed = run_nodes_cli(server_url, devlab_token, "ls", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = {row["name"]: row for row in json.loads(listed.stdout)}
        assert rows["dbtextra"]["source"] == "registry"
        assert rows["dbtextra"]["status"] == "up"
        assert rows["dbtextra"]["segment"] == SEGMENT

        plain = run_nodes_cli(
            server_url, devlab_token, "add", "dbtplain",
            "--engine", f"tcp://{node.control_address}:2375",
        )  # fmt: skip
        assert plain.returncode == 2
        assert "plain TCP" in plain.stderr
    finally:
        removed = run_nodes_cli(server_url, devlab_token, "rm", "dbtextra")
    assert removed.returncode == 0, removed.stderr
    assert "dbtextra" not in nodes_by_name(api)
