"""Making sure this machine runs a Docker Engine that answers.

Testbed nodes have no systemd, so the package's service never starts by
itself: :func:`ensure_engine` installs ``docker.io`` when ``dockerd`` is
missing and starts ``dockerd`` in the background, the way an admin would::

    apt-get update && apt-get install -y docker.io
    nohup dockerd > LOG_DIR/dockerd.log 2>&1 &
    until docker version; do sleep 0.2; done
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from dockbed.config import Settings
from dockbed.engine.client import connect
from dockbed.errors import EngineUnavailable, HostError

log = logging.getLogger(__name__)

#: The engine's address when dockerd is started without ``-H``.
DEFAULT_SOCKET_URL = "unix:///var/run/docker.sock"

#: Seconds to wait for a fresh dockerd. It answers in 1 to 3 s here; a data root
#: with many containers or images to restore can take much longer.
START_TIMEOUT = 60.0

_POLL_INTERVAL = 0.25


def ensure_engine(settings: Settings, *, timeout: float = START_TIMEOUT) -> str:
    """Make the engine at ``settings.engine_url`` answer; say what it took.

    Returns ``"running"`` when it already answered, ``"started"`` when dockerd
    was started here, ``"installed"`` when docker.io was installed too. Only a
    local unix socket can be brought up; a remote engine that does not answer
    raises EngineUnavailable. Raises HostError when the install fails or the
    started dockerd dies or stays silent until ``timeout`` (with the end of
    its log).
    """
    url = settings.engine_url
    if _answers(url):
        log.debug("the Docker Engine at %s answers", url)
        return "running"
    if not url.startswith("unix://"):
        raise EngineUnavailable(
            f"the Docker Engine at {url} does not answer",
            hint="dockbed can only start a local engine; start that node's "
            "dockerd, or check engine_url",
            url=url,
        )

    outcome = "started"
    if shutil.which("dockerd") is None:
        install_docker()
        outcome = "installed"
        # The package may come with a way to start itself; only start ours if
        # it did not.
        if _answers(url):
            return outcome

    start_dockerd(settings, timeout=timeout)
    return outcome


def install_docker() -> None:
    """``apt-get update && apt-get install -y docker.io``; HostError on failure."""
    log.info("installing docker.io with apt-get")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "docker.io"],
    ):
        result = subprocess.run(
            command, capture_output=True, text=True, env=environment, check=False
        )
        if result.returncode != 0:
            raise HostError(
                f"{' '.join(command)} failed with exit code {result.returncode}",
                hint="install docker.io by hand, then run dockbed node setup again",
                output=_tail(result.stdout + result.stderr),
            )
    if shutil.which("dockerd") is None:
        raise HostError(
            "docker.io was installed but dockerd is not on the PATH",
            hint="check PATH contains /usr/sbin",
        )


def start_dockerd(settings: Settings, *, timeout: float = START_TIMEOUT) -> int:
    """Start ``dockerd`` detached, log to ``log_dir/dockerd.log``; its pid.

    The daemon gets a session of its own, so it outlives this process and its
    terminal. Waits until the engine answers; raises HostError with the log's
    end if dockerd exits or is silent for ``timeout`` seconds.
    """
    url = settings.engine_url
    log_path = settings.log_dir / "dockerd.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = ["dockerd"]
    if url != DEFAULT_SOCKET_URL:
        command += ["--host", url]

    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    log.info("started dockerd (pid %d), log in %s", process.pid, log_path)

    deadline = time.monotonic() + timeout
    while not _answers(url):
        code = process.poll()
        if code is not None:
            raise HostError(
                f"dockerd exited with code {code} before it answered",
                hint=f"see {log_path}",
                log=_log_tail(log_path),
            )
        if time.monotonic() > deadline:
            raise HostError(
                f"dockerd (pid {process.pid}) did not answer at {url} within "
                f"{timeout:.0f} s",
                hint=f"see {log_path}; it is left running",
                log=_log_tail(log_path),
            )
        time.sleep(_POLL_INTERVAL)
    log.debug("dockerd answers at %s", url)
    return process.pid


def _answers(url: str) -> bool:
    try:
        connect(url, timeout=5).close()
    except EngineUnavailable:
        return False
    return True


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return _tail(path.read_text(errors="replace"), lines)
    except OSError:
        return ""


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
