"""The lab base image: a lean Debian with sshd as its main process.

No image can be pulled on a testbed node, so the image is built from Debian's
own packages::

    mmdebstrap --variant=minbase --include=openssh-server,... SUITE rootfs.tar
    docker import --change 'ENTRYPOINT [...]' --change 'LABEL ...' rootfs.tar TAG

The files in ``dockbed/engine/image/`` do the customising: ``customize.sh`` (the
mmdebstrap hook), ``entrypoint.sh`` (host keys at first start, then ``exec
sshd -D -e``), ``sshd_config`` (keys only) and ``dpkg.cfg`` (no docs). No ssh
key of any kind is in the image. The root file system tarball is kept under
``state_dir/images/`` keyed by its inputs, so rebuilding the image (``force``)
is an import of a few seconds instead of a fresh bootstrap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import docker
import docker.errors

from dockbed.config import LABEL_PREFIX, Settings
from dockbed.engine.client import engine_errors
from dockbed.errors import EngineError, HostError, InvalidInput

log = logging.getLogger(__name__)

#: What a lab container offers: a login, and the tools of network experiments.
PACKAGES: tuple[str, ...] = (
    "openssh-server",
    "iproute2",
    "iputils-ping",
    "iperf3",
    "tcpdump",
    "procps",
    "python3",
    "vim-tiny",
    "less",
    "ca-certificates",
    "netcat-openbsd",
    "curl",
    "traceroute",
    "ethtool",
)

#: The label that marks an image as a dockbed lab image, and its value.
IMAGE_LABEL = f"{LABEL_PREFIX}.image"
IMAGE_ROLE = "lab"

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY_MIRROR = "http://deb.debian.org/debian-security"

#: Suites without security updates or an -updates suite of their own.
_ROLLING_SUITES = {"sid", "unstable", "experimental"}

#: The data files that shape the image; their content is part of the cache key.
_DATA_FILES = ("customize.sh", "entrypoint.sh", "sshd_config", "dpkg.cfg")

_ENTRYPOINT = "/usr/local/sbin/dockbed-entrypoint"


@dataclass(frozen=True)
class ImageBuild:
    """What ``build_image`` did: the image, and whether anything was built."""

    tag: str
    image_id: str
    size_bytes: int
    #: False when the tag already existed and ``force`` was not given.
    built: bool
    #: True when the root file system came from the cache, not from mmdebstrap.
    rootfs_cached: bool
    seconds: float


def build_image(
    client: docker.DockerClient,
    settings: Settings,
    suite: str | None = None,
    tag: str | None = None,
    *,
    force: bool = False,
    refresh_rootfs: bool = False,
    packages: Sequence[str] = PACKAGES,
) -> ImageBuild:
    """Build the lab image ``tag`` (default ``settings.image``) from ``suite``.

    Skips the build when ``tag`` exists, unless ``force``. The root file system
    is bootstrapped with mmdebstrap only when no cached tarball matches (suite,
    packages and the image's data files), or when ``refresh_rootfs`` asks for
    fresh packages. Raises InvalidInput for a bad suite or tag, HostError when
    mmdebstrap fails (with the end of its output), EngineError when the import
    fails.
    """
    suite = suite or settings.image_suite
    tag = tag or settings.image
    _check_suite(suite)
    repository, tag_name = _split_tag(tag)
    started = time.monotonic()

    existing = _find_image(client, tag)
    if existing is not None and not force:
        log.debug("image %s exists (%s), not rebuilding", tag, existing.short_id)
        return _report(existing, tag, started, built=False, rootfs_cached=False)

    rootfs = rootfs_path(settings, suite, packages)
    cached = rootfs.exists() and not refresh_rootfs
    if not cached:
        bootstrap_rootfs(suite, packages, rootfs)
    else:
        log.debug("using the cached root file system %s", rootfs)

    image_id = _import_rootfs(client, rootfs, repository, tag_name, suite)
    if existing is not None and existing.id != image_id:
        _remove_superseded(client, str(existing.id), tag)
    with engine_errors(f"looking up the new image {tag}", tag=tag):
        image = client.images.get(image_id)
    result = _report(image, tag, started, built=True, rootfs_cached=cached)
    log.info(
        "built image %s (%s, %d MB) from %s",
        tag,
        image.short_id,
        result.size_bytes // 1_000_000,
        rootfs.name,
    )
    return result


def _report(
    image: Any, tag: str, started: float, *, built: bool, rootfs_cached: bool
) -> ImageBuild:
    return ImageBuild(
        tag=tag,
        image_id=str(image.id),
        size_bytes=int(image.attrs.get("Size", 0)),
        built=built,
        rootfs_cached=rootfs_cached,
        seconds=time.monotonic() - started,
    )


def rootfs_path(settings: Settings, suite: str, packages: Sequence[str]) -> Path:
    """Where the root file system tarball for these inputs is cached.

    The name carries a digest of the package list and the image's data files,
    so a change to either never reuses a stale tarball.
    """
    digest = hashlib.sha256()
    digest.update(suite.encode())
    digest.update(",".join(sorted(packages)).encode())
    for name in _DATA_FILES:
        digest.update(name.encode())
        digest.update(_data_file(name).read_bytes())
    return (
        settings.state_dir / "images" / f"rootfs-{suite}-{digest.hexdigest()[:12]}.tar"
    )


def bootstrap_rootfs(suite: str, packages: Sequence[str], output: Path) -> None:
    """Write a minbase Debian ``suite`` with ``packages`` to the tarball ``output``.

    Mirrors ``mmdebstrap --variant=minbase --include=... --dpkgopt=dpkg.cfg
    --customize-hook=customize.sh SUITE OUTPUT MIRRORS``. The tarball is
    written under a temporary name and renamed, so a failed run never leaves a
    half-written cache entry. Raises HostError when mmdebstrap is missing or
    fails.
    """
    if shutil.which("mmdebstrap") is None:
        raise HostError(
            "mmdebstrap is not installed",
            hint="apt-get install -y mmdebstrap (scripts/install.sh does)",
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial.tar")
    customize = _data_file("customize.sh")
    command = [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--format=tar",
        f"--include={','.join(packages)}",
        f"--dpkgopt={_data_file('dpkg.cfg')}",
        # The hook runs on the host with the root file system as "$1".
        f'--customize-hook=sh {customize} "$1"',
        suite,
        str(partial),
        *_mirrors(suite),
    ]
    log.info("bootstrapping Debian %s into %s", suite, output)
    log.debug("running %s", command)
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(
        command, capture_output=True, text=True, env=environment, check=False
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise HostError(
            f"mmdebstrap failed with exit code {result.returncode} building "
            f"Debian {suite}",
            hint="check that the Debian mirror is reachable and the package "
            "names exist in this suite",
            suite=suite,
            output=_tail(result.stdout + result.stderr),
        )
    partial.replace(output)
    _prune_rootfs_cache(output, suite)


def _prune_rootfs_cache(kept: Path, suite: str) -> None:
    """Delete the suite's older tarballs: each weighs as much as the image."""
    for stale in kept.parent.glob(f"rootfs-{suite}-*.tar"):
        if stale != kept:
            stale.unlink(missing_ok=True)
            log.info("deleted the superseded root file system %s", stale.name)


def _mirrors(suite: str) -> list[str]:
    """The sources.list lines for ``suite``: main, its updates and security."""
    lines = [f"deb {DEBIAN_MIRROR} {suite} main"]
    if suite not in _ROLLING_SUITES:
        lines.append(f"deb {DEBIAN_MIRROR} {suite}-updates main")
        lines.append(f"deb {DEBIAN_SECURITY_MIRROR} {suite}-security main")
    return lines


def _import_rootfs(
    client: docker.DockerClient,
    rootfs: Path,
    repository: str,
    tag_name: str,
    suite: str,
) -> str:
    """``docker import`` the tarball with the image's config; the new image's id."""
    changes = [
        f'ENTRYPOINT ["{_ENTRYPOINT}"]',
        "CMD []",
        "EXPOSE 22",
        f'LABEL {IMAGE_LABEL}="{IMAGE_ROLE}"',
        f'LABEL {IMAGE_LABEL}.suite="{suite}"',
        f'LABEL {IMAGE_LABEL}.rootfs="{rootfs.name}"',
    ]
    log.debug("importing %s as %s:%s", rootfs, repository, tag_name)
    tag = f"{repository}:{tag_name}"
    with engine_errors(f"importing {rootfs} as {tag}", tag=tag):
        answer = client.api.import_image_from_file(
            str(rootfs), repository=repository, tag=tag_name, changes=changes
        )
    return _imported_id(answer, tag)


def _imported_id(answer: Any, tag: str) -> str:
    """The image id from the import's answer: JSON lines, one with the id.

    The engine reports a failed import inside a 200 answer, as an ``error``
    line, so each line is checked.
    """
    text = answer.decode() if isinstance(answer, bytes) else str(answer)
    image_id = ""
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "error" in message:
            raise EngineError(f"importing {tag} failed: {message['error']}", tag=tag)
        status = str(message.get("status", ""))
        if status.startswith("sha256:"):
            image_id = status
    if not image_id:
        raise EngineError(
            f"importing {tag} gave no image id", tag=tag, answer=_tail(text)
        )
    return image_id


def _remove_superseded(client: docker.DockerClient, image_id: str, tag: str) -> None:
    """Drop the image a rebuild untagged, unless containers still use it."""
    try:
        client.images.remove(image_id)
    except docker.errors.APIError as error:
        # 409: containers made from it still exist; it goes when they do.
        log.debug("kept the previous %s (%s): %s", tag, image_id[:19], error)
        return
    log.info("removed the previous %s (%s)", tag, image_id[:19])


def _find_image(client: docker.DockerClient, tag: str) -> Any | None:
    """The image ``tag``, or None when the engine has no such image."""
    with engine_errors(f"looking up image {tag}", tag=tag):
        try:
            return client.images.get(tag)
        except docker.errors.ImageNotFound:
            return None


def _split_tag(tag: str) -> tuple[str, str]:
    """``dockbed/lab:bookworm`` as (``dockbed/lab``, ``bookworm``)."""
    repository, _, name = tag.rpartition(":")
    # A colon before the last slash is a registry port, not a tag.
    if not repository or "/" in name:
        repository, name = tag, "latest"
    if not repository or repository != repository.lower() or " " in tag:
        raise InvalidInput(
            f"{tag!r} is not a valid image tag",
            hint="use REPOSITORY[:TAG] in lower case, e.g. dockbed/lab:bookworm",
            field="tag",
            tag=tag,
        )
    return repository, name


def _check_suite(suite: str) -> None:
    if not suite.isascii() or not suite.replace("-", "").isalnum():
        raise InvalidInput(
            f"{suite!r} is not a Debian suite name",
            hint="use a code name such as bookworm or trixie",
            field="suite",
            suite=suite,
        )


def _data_file(name: str) -> Path:
    """A file of ``dockbed/engine/image/`` as a path mmdebstrap can open."""
    return Path(str(resources.files("dockbed.engine").joinpath("image", name)))


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
