"""The lab base image: built, lean, sshd as its main process, no baked keys.

Containers run on Docker's default bridge, so these tests need no lab network;
each is registered and removed by id afterwards.
"""

from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from dockbed.config import Settings
from dockbed.engine.image import IMAGE_LABEL, PACKAGES, build_image, rootfs_path
from tests.integration.conftest import ssh

pytestmark = pytest.mark.integration


class LabContainers:
    """Containers a test ran from the lab image, removed by id when it ends.

    By id, not by listing the engine: other tests' containers come and go
    meanwhile, and a listing races with them.
    """

    def __init__(self, client: docker.DockerClient, settings: Settings) -> None:
        self.client = client
        self.image = settings.image
        self.prefix = f"dbtimg-{uuid.uuid4().hex[:6]}"
        self.ids: list[str] = []

    def run(self, stem: str) -> Container:
        container = self.client.containers.run(
            self.image, name=f"{self.prefix}-{stem}", detach=True
        )
        self.ids.append(str(container.id))
        container.reload()
        return container

    def remove_all(self) -> None:
        for container_id in self.ids:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.api.remove_container(container_id, force=True)


@pytest.fixture
def lab_containers(
    docker_client: docker.DockerClient, settings: Settings
) -> Iterator[LabContainers]:
    registry = LabContainers(docker_client, settings)
    yield registry
    registry.remove_all()


def address_of(container: Container) -> str:
    return str(container.attrs["NetworkSettings"]["IPAddress"])


def wait_for_sshd(address: str, timeout: float = 15) -> bytes:
    """sshd's banner once it accepts connections on port 22."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, 22), timeout=1) as connection:
                banner = connection.recv(64)
                if banner:
                    return banner
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"sshd on {address} does not answer")
        time.sleep(0.1)


def run_once(client: docker.DockerClient, settings: Settings, script: str) -> str:
    """Output of ``sh -c script`` in a fresh container, the entrypoint bypassed.

    Bypassing it shows the image as built, before a first start makes keys.
    """
    output = client.containers.run(
        settings.image, entrypoint=["sh", "-c", script], remove=True
    )
    return bytes(output).decode()


def authorize(container: Container, key: Path) -> None:
    """Put ``authorized_keys`` in the way the server does: ``put_archive``."""
    data = key.with_suffix(".pub").read_bytes()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("authorized_keys")
        info.size = len(data)
        info.mode = 0o600
        tar.addfile(info, io.BytesIO(data))
    assert container.put_archive("/root/.ssh", archive.getvalue())


def test_the_image_exists_labelled_and_lean(
    docker_client: docker.DockerClient, settings: Settings
) -> None:
    image = docker_client.images.get(settings.image)

    assert image.labels[IMAGE_LABEL] == "lab"
    assert image.attrs["Config"]["Entrypoint"] == ["/usr/local/sbin/dockbed-entrypoint"]
    assert "22/tcp" in image.attrs["Config"]["ExposedPorts"]
    assert int(image.attrs["Size"]) < 300_000_000


def test_build_skips_an_existing_tag(
    docker_client: docker.DockerClient, settings: Settings
) -> None:
    result = build_image(docker_client, settings)

    assert not result.built
    assert result.image_id == docker_client.images.get(settings.image).id


def test_a_forced_build_reuses_the_cached_root_file_system(
    docker_client: docker.DockerClient, settings: Settings
) -> None:
    tag = "dbtest/lab:cached"
    cache = rootfs_path(settings, settings.image_suite, PACKAGES)
    cached_before = cache.exists()
    try:
        result = build_image(docker_client, settings, tag=tag, force=True)

        assert result.built
        assert result.rootfs_cached == cached_before
        assert cache.exists()
        labels = docker_client.images.get(tag).labels
        assert labels[IMAGE_LABEL] == "lab"
        assert labels[f"{IMAGE_LABEL}.rootfs"] == cache.name
    finally:
        docker_client.images.remove(tag, force=True)


def test_no_keys_are_baked_in(
    docker_client: docker.DockerClient, settings: Settings
) -> None:
    listing = run_once(
        docker_client,
        settings,
        "ls /etc/ssh; stat -c '%a %U' /root/.ssh; ls -A /root/.ssh; "
        "find / -xdev \\( -name 'authorized_keys*' -o -name 'id_*' "
        "-o -name 'ssh_host_*' \\) -print",
    )

    lines = listing.split()
    assert not [line for line in lines if "ssh_host_" in line]
    assert not [line for line in lines if "authorized_keys" in line]
    assert "700 root" in listing
    assert "sshd_config" in lines


def test_sshd_is_the_main_process_and_listens(lab_containers: LabContainers) -> None:
    container = lab_containers.run("sshd")

    banner = wait_for_sshd(address_of(container))

    assert banner.startswith(b"SSH-2.0-OpenSSH")
    main = container.exec_run(["cat", "/proc/1/comm"]).output.decode().strip()
    assert main == "sshd"
    config = container.exec_run(["/usr/sbin/sshd", "-T"]).output.decode()
    assert "passwordauthentication no" in config
    assert "permitrootlogin without-password" in config  # prohibit-password


def test_host_keys_differ_between_two_containers(
    lab_containers: LabContainers,
) -> None:
    first = lab_containers.run("keys-1")
    second = lab_containers.run("keys-2")
    keys = []
    for container in (first, second):
        wait_for_sshd(address_of(container))
        result = container.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
        assert result.exit_code == 0
        keys.append(result.output.split()[1])

    assert keys[0] != keys[1]


def test_login_with_the_users_key_and_never_a_password(
    lab_containers: LabContainers, ssh_key: Path
) -> None:
    container = lab_containers.run("login")
    authorize(container, ssh_key)
    address = address_of(container)
    wait_for_sshd(address)

    assert ssh(ssh_key, address, "id -un").strip() == "root"
    refused = subprocess.run(
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PubkeyAuthentication=no",
            f"root@{address}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert refused.returncode == 255
    assert "Permission denied (publickey)" in refused.stderr
