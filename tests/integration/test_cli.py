"""The CLI end to end: the installed ``dockbed`` command against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import Made, engine_snapshot, ssh

pytestmark = pytest.mark.integration

DOCKBED = str(Path(sys.executable).with_name("dockbed"))


def run(
    server_url: str, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKBED_SERVER_URL": server_url}
    result = subprocess.run(
        [DOCKBED, *args], capture_output=True, text=True, env=env, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_batch_ls_stop_rm(server_url: str, made: Made, ssh_key: Path) -> None:
    prefix = made.name("cli")
    key = str(ssh_key.with_suffix(".pub"))

    created = json.loads(
        run(server_url, "batch", prefix, "-c", "3", "--ssh-key", key, "--json").stdout
    )
    assert [row["name"] for row in created] == [
        f"{prefix}-1",
        f"{prefix}-2",
        f"{prefix}-3",
    ]
    first = created[0]["addresses"]["lab"]
    assert ssh(ssh_key, first, "hostname").strip() == f"{prefix}-1"

    listed = json.loads(
        run(server_url, "ls", "--all", "--json", "--batch", prefix).stdout
    )
    assert {row["name"] for row in listed} == {row["name"] for row in created}
    for row in listed:
        assert {
            "name",
            "id",
            "node",
            "image",
            "state",
            "addresses",
            "batch",
        } <= row.keys()
        assert row["batch"] == prefix and row["node"] == "local"

    run(server_url, "stop", f"{prefix}-2")
    states = {
        row["name"]: row["state"]
        for row in json.loads(run(server_url, "ls", "-a", "--json").stdout)
    }
    assert states[f"{prefix}-2"] == "exited"
    assert states[f"{prefix}-1"] == "running"
    running = {
        row["name"] for row in json.loads(run(server_url, "ls", "--json").stdout)
    }
    assert f"{prefix}-2" not in running

    run(server_url, "rm", "--batch", prefix)
    left = json.loads(run(server_url, "ls", "-a", "--json", "--batch", prefix).stdout)
    assert left == []


def test_bad_batch_exits_non_zero_and_changes_nothing(
    server_url: str, docker_client: docker.DockerClient, made: Made, ssh_key: Path
) -> None:
    before = engine_snapshot(docker_client)
    key = str(ssh_key.with_suffix(".pub"))

    result = run(
        server_url,
        "batch",
        made.name("past"),
        "-c",
        "5",
        "--base-ip",
        "10.64.98.238",
        "--ssh-key",
        key,
        check=False,
    )

    assert result.returncode == 2
    assert "past the end of the pool" in result.stderr
    assert "10.64.98.238" in result.stderr
    assert engine_snapshot(docker_client) == before


def test_unreachable_server_is_a_clear_error(ssh_key: Path) -> None:
    result = run("http://127.0.0.1:9", "ls", check=False)
    assert result.returncode == 6
    assert "cannot reach the dockbed server" in result.stderr
