"""Lab containers through the REST API, on the real engine and lab network."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import docker
import pytest
from fastapi.testclient import TestClient

from tests.integration.conftest import Made, engine_snapshot, ssh

pytestmark = pytest.mark.integration


def _keys(ssh_key: Path) -> list[str]:
    return [ssh_key.with_suffix(".pub").read_text()]


def _batch(
    client: TestClient, prefix: str, count: int, ssh_key: Path, **extra: Any
) -> list[dict[str, Any]]:
    body = {"prefix": prefix, "count": count, "ssh_keys": _keys(ssh_key), **extra}
    response = client.post("/api/v1/batches", params={"wait": True}, json=body)
    assert response.status_code == 201, response.text
    return list(response.json()["containers"])


def test_batch_of_five_on_consecutive_addresses_accepts_ssh(
    app_client: TestClient, made: Made, ssh_key: Path
) -> None:
    prefix = made.name("five")
    rows = _batch(app_client, prefix, 5, ssh_key, wait_ready=True)

    assert [row["name"] for row in rows] == [f"{prefix}-{i}" for i in range(1, 6)]
    addresses = [IPv4Address(row["addresses"]["lab"]) for row in rows]
    assert [int(a) - int(addresses[0]) for a in addresses] == [0, 1, 2, 3, 4]
    for row, address in zip(rows, addresses, strict=True):
        assert ssh(ssh_key, str(address), "hostname").strip() == row["name"]


def test_stop_then_start_keeps_the_address(
    app_client: TestClient, made: Made, ssh_key: Path
) -> None:
    name = made.name("keep")
    body = {"name": name, "ssh_keys": _keys(ssh_key), "wait_ready": True}
    created = app_client.post("/api/v1/containers", json=body)
    assert created.status_code == 201, created.text
    address = created.json()["addresses"]["lab"]

    assert app_client.post(f"/api/v1/containers/{name}/stop").status_code == 200
    stopped = app_client.get(f"/api/v1/containers/{name}").json()
    assert stopped["state"] == "exited"
    assert stopped["addresses"]["lab"] == address
    report = app_client.get("/api/v1/nodes/local/addresses").json()
    assert report["used"][address] == name

    assert app_client.post(f"/api/v1/containers/{name}/start").status_code == 200
    started = app_client.get(f"/api/v1/containers/{name}").json()
    assert started["state"] == "running"
    assert started["addresses"]["lab"] == address


@pytest.fixture
def experiment_network(docker_client: docker.DockerClient, made: Made) -> Any:
    ipam = docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="172.30.77.0/24")]
    )
    network = docker_client.networks.create(
        made.name("exp"), driver="bridge", ipam=ipam
    )
    yield network
    network.reload()
    for container in network.containers:
        network.disconnect(container, force=True)
    network.remove()


def test_second_interface_add_readdress_remove(
    app_client: TestClient, made: Made, ssh_key: Path, experiment_network: Any
) -> None:
    name = made.name("nic")
    net = experiment_network.name
    body = {"name": name, "ssh_keys": _keys(ssh_key), "wait_ready": True}
    lab_address = app_client.post("/api/v1/containers", json=body).json()["addresses"][
        "lab"
    ]

    added = app_client.post(
        f"/api/v1/containers/{name}/networks", json={"network": net}
    )
    assert added.status_code == 200, added.text
    dynamic = added.json()["addresses"][net]
    assert dynamic in ssh(ssh_key, lab_address, "ip -4 -o addr")

    moved = app_client.put(
        f"/api/v1/containers/{name}/networks/{net}", json={"ip": "172.30.77.50"}
    )
    assert moved.status_code == 200, moved.text
    inside = ssh(ssh_key, lab_address, "ip -4 -o addr")
    assert "172.30.77.50/24" in inside
    assert f"{dynamic}/" not in inside

    removed = app_client.delete(f"/api/v1/containers/{name}/networks/{net}")
    assert removed.status_code == 200, removed.text
    assert "172.30.77." not in ssh(ssh_key, lab_address, "ip -4 -o addr")


def test_two_concurrent_batches_get_disjoint_addresses(
    app_client: TestClient, made: Made, ssh_key: Path
) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(
                lambda stem: _batch(app_client, made.name(stem), 5, ssh_key),
                ["left", "right"],
            )
        )

    left, right = ({row["addresses"]["lab"] for row in rows} for rows in results)
    assert len(left) == len(right) == 5
    assert not left & right


# Bad input: a 4xx with a message naming the rule and value, and no change. ------


def _refused(
    client: TestClient,
    docker_client: docker.DockerClient,
    method: str,
    path: str,
    body: dict[str, Any],
    status: int,
    *words: str,
) -> dict[str, Any]:
    before = engine_snapshot(docker_client)
    response = client.request(method, path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    for word in words:
        assert word in error["message"], error
    assert engine_snapshot(docker_client) == before
    return dict(error)


@pytest.mark.parametrize(
    ("body", "words", "field"),
    [
        ({"name": "bad_name!"}, ["'bad_name!'", "not a valid container name"], "name"),
        ({"name": "-lead"}, ["'-lead'"], "name"),
        ({"name": "x"}, ["'x'"], "name"),
        ({"ip": "10.64.100.5"}, ["10.64.100.5", "outside the lab subnet"], "ip"),
        ({"ip": "10.64.98.10"}, ["10.64.98.10", "outside the container pool"], "ip"),
        ({"ip": "10.64.98.0"}, ["10.64.98.0", "network address"], "ip"),
        ({"ip": "10.64.98.1"}, ["10.64.98.1", "gateway"], "ip"),
        ({"ip": "10.64.99.255"}, ["10.64.99.255", "broadcast"], "ip"),
        ({"ip": "10.64.98.51"}, ["10.64.98.51", "node's own address"], "ip"),
        ({"ip": "not-an-ip"}, ["not-an-ip"], "ip"),
        ({"image": "nosuch/image:1"}, ["nosuch/image:1"], "image"),
        ({"node": "atlantis"}, ["atlantis"], "node"),
        ({"memory": "lots"}, ["lots"], "memory"),
        ({"memory": "100000g"}, ["100000g", "more than node"], "memory"),
        ({"cpus": 64}, ["cpus"], "cpus"),
    ],
)
def test_bad_create_is_refused_and_changes_nothing(
    app_client: TestClient,
    docker_client: docker.DockerClient,
    made: Made,
    body: dict[str, Any],
    words: list[str],
    field: str,
) -> None:
    request = {"name": made.name("bad"), **body}
    status = 404 if field in {"image", "node"} else 422
    error = _refused(
        app_client, docker_client, "POST", "/api/v1/containers", request, status, *words
    )
    assert error["field"] == field


def test_address_in_use_names_the_holder(
    app_client: TestClient,
    docker_client: docker.DockerClient,
    made: Made,
    ssh_key: Path,
) -> None:
    holder = made.name("holder")
    body = {"name": holder, "ssh_keys": _keys(ssh_key)}
    address = app_client.post("/api/v1/containers", json=body).json()["addresses"][
        "lab"
    ]

    request = {"name": made.name("second"), "ip": address}
    _refused(
        app_client,
        docker_client,
        "POST",
        "/api/v1/containers",
        request,
        409,
        address,
        holder,
    )
    batch = {"prefix": made.name("clash"), "count": 3, "base_ip": address}
    _refused(
        app_client,
        docker_client,
        "POST",
        "/api/v1/batches",
        batch,
        409,
        address,
        holder,
    )
    _refused(
        app_client,
        docker_client,
        "POST",
        "/api/v1/containers",
        {"name": holder},
        409,
        holder,
        "already exist",
    )


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"count": 3, "base_ip": "10.64.98.239"}, 422, ["past the end of the pool"]),
        ({"count": 0}, 422, ["not 0"]),
        ({"count": -2}, 422, ["not -2"]),
        ({"count": 100000}, 422, ["not 100000"]),
        ({"count": 2, "base_ip": "10.64.98.51"}, 422, ["node's own address"]),
        ({"count": 2, "image": "nosuch/image:1"}, 404, ["nosuch/image:1"]),
        ({"count": 2, "node": "atlantis"}, 404, ["atlantis"]),
    ],
)
def test_bad_batch_is_refused_and_changes_nothing(
    app_client: TestClient,
    docker_client: docker.DockerClient,
    made: Made,
    body: dict[str, Any],
    status: int,
    words: list[str],
) -> None:
    request = {"prefix": made.name("badbatch"), **body}
    _refused(
        app_client, docker_client, "POST", "/api/v1/batches", request, status, *words
    )


def test_bad_prefix_is_refused(
    app_client: TestClient, docker_client: docker.DockerClient
) -> None:
    request = {"prefix": "Bad Prefix", "count": 2}
    _refused(
        app_client,
        docker_client,
        "POST",
        "/api/v1/batches",
        request,
        422,
        "'Bad Prefix'",
    )


def test_bad_second_interface_is_refused(
    app_client: TestClient,
    docker_client: docker.DockerClient,
    made: Made,
    ssh_key: Path,
    experiment_network: Any,
) -> None:
    name = made.name("nicbad")
    app_client.post(
        "/api/v1/containers", json={"name": name, "ssh_keys": _keys(ssh_key)}
    )
    nics = f"/api/v1/containers/{name}/networks"

    _refused(
        app_client,
        docker_client,
        "POST",
        nics,
        {"network": "nosuchnet"},
        404,
        "nosuchnet",
    )
    _refused(
        app_client,
        docker_client,
        "POST",
        nics,
        {"network": "lab"},
        409,
        "already on lab",
    )
    gateway = {"network": experiment_network.name, "ip": "172.30.77.1"}
    _refused(app_client, docker_client, "POST", nics, gateway, 422, "gateway")
    _refused(
        app_client, docker_client, "POST", nics, {"network": "bridge"}, 422, "Docker's"
    )
    _refused(app_client, docker_client, "DELETE", f"{nics}/lab", {}, 422, "lab address")
    outside = {"network": experiment_network.name, "ip": "10.9.9.9"}
    _refused(
        app_client, docker_client, "POST", nics, outside, 422, "10.9.9.9", "outside"
    )
