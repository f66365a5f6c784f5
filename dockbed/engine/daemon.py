"""Making sure this machine runs a Docker Engine that answers.

Testbed nodes have no systemd, so the package's service never starts by
itself: :func:`ensure_engine` installs ``docker.io`` when ``dockerd`` is
missing and starts ``dockerd`` in the background, the way an admin would::

    apt-get update && apt-get install -y docker.io
    nohup dockerd > LOG_DIR/dockerd.log 2>&1 &
    until docker version; do sleep 0.2; done

For a node the server reaches over the network, :func:`configure_tls`
writes the TLS settings into ``/etc/docker/daemon.json`` (the engine then
answers on ``tcp://ADDRESS:2376`` only to clients with a certificate of its
CA) and restarts the dockerd that dockbed started, which reads that file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dockbed.config import Settings
from dockbed.engine.client import connect
from dockbed.engine.tls import TlsFiles
from dockbed.errors import EngineUnavailable, HostError
from dockbed.processes import spawn_detached

log = logging.getLogger(__name__)

#: The engine's address when dockerd is started without ``-H``.
DEFAULT_SOCKET_URL = "unix:///var/run/docker.sock"
#: The file dockerd reads its settings from, and where it writes its pid.
DAEMON_CONFIG = Path("/etc/docker/daemon.json")
DAEMON_PID_FILE = Path("/var/run/docker.pid")
#: The port Docker reserves for its API over TLS.
TLS_PORT = 2376

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
    command = ["dockerd"]
    # dockerd refuses to start with hosts both as flags and in its config.
    if url != DEFAULT_SOCKET_URL and not read_daemon_config().get("hosts"):
        command += ["--host", url]

    process = spawn_detached(command, log_path)
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


def tls_daemon_config(server: TlsFiles, hosts: Sequence[str]) -> dict[str, Any]:
    """The ``daemon.json`` keys for an engine on ``hosts`` that checks clients.

    The same as ``dockerd -H HOST… --tlsverify --tlscacert CA --tlscert CERT
    --tlskey KEY``: with ``tlsverify`` a client must show a certificate the
    CA signed, not merely speak TLS.
    """
    return {
        "hosts": list(hosts),
        "tlsverify": True,
        "tlscacert": str(server.ca),
        "tlscert": str(server.cert),
        "tlskey": str(server.key),
    }


def read_daemon_config(path: Path = DAEMON_CONFIG) -> dict[str, Any]:
    """dockerd's settings file as a dict; empty when there is none.

    Raises HostError for a file that is not a JSON object: dockerd would not
    start with it either.
    """
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise HostError(
            f"cannot read dockerd's settings {path}: {error}",
            hint="fix or remove the file; dockerd refuses to start with it",
            path=str(path),
        ) from error
    if not isinstance(data, dict):
        raise HostError(f"{path} is not a JSON object", path=str(path))
    return data


def update_daemon_config(
    updates: Mapping[str, Any], path: Path = DAEMON_CONFIG
) -> bool:
    """Merge ``updates`` into dockerd's settings file; whether it changed.

    The admin's other keys are kept. The file is replaced atomically (mode
    0644; it names key files, it holds none).
    """
    current = read_daemon_config(path)
    merged = {**current, **updates}
    if merged == current and path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".daemon-")
    try:
        os.fchmod(descriptor, 0o644)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(merged, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise HostError(f"cannot write {path}: {error}", path=str(path)) from error
    log.info("updated dockerd's settings in %s: %s", path, ", ".join(sorted(updates)))
    return True


def check_restartable(pid_file: Path = DAEMON_PID_FILE) -> int | None:
    """The pid of a dockerd that :func:`restart_dockerd` may restart, or None.

    Only a dockerd started the way dockbed starts it (``dockerd`` and no
    flag, everything from ``daemon.json``) is restarted: under systemd the
    unit would fight it, and a dockerd with flags of its own would lose them.
    None when no dockerd runs. Raises HostError for the other cases.
    """
    if _is_systemd():
        raise HostError(
            "this machine runs systemd; dockbed restarts only a dockerd it "
            "started itself",
            hint="let the unit read daemon.json: a drop-in with 'ExecStart=' and "
            "'ExecStart=/usr/sbin/dockerd' (no -H, since daemon.json now names "
            "the hosts), then 'systemctl daemon-reload && systemctl restart docker'",
        )
    pid = read_pid(pid_file)
    if pid is None:
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    arguments = [part.decode(errors="replace") for part in argv if part]
    if len(arguments) != 1 or Path(arguments[0]).name != "dockerd":
        raise HostError(
            f"dockerd (pid {pid}) runs as {' '.join(arguments)!r}, not as dockbed "
            "starts it",
            hint="move its flags into /etc/docker/daemon.json and restart it by "
            "hand, or stop it and run the setup again",
            pid=pid,
            command=arguments,
        )
    return pid


def restart_dockerd(
    settings: Settings,
    *,
    pid_file: Path = DAEMON_PID_FILE,
    timeout: float = START_TIMEOUT,
) -> int:
    """Stop the running dockerd (see :func:`check_restartable`) and start it again.

    It then reads ``daemon.json`` afresh. Containers with a restart policy
    (all of dockbed's) come back with it. Returns the new pid.
    """
    pid = check_restartable(pid_file)
    if pid is not None:
        log.info("restarting dockerd (pid %d) to apply its new settings", pid)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{pid}").exists():
            if time.monotonic() > deadline:
                raise HostError(
                    f"dockerd (pid {pid}) did not stop within {timeout:.0f} s",
                    pid=pid,
                )
            time.sleep(_POLL_INTERVAL)
    return start_dockerd(settings, timeout=timeout)


def _is_systemd() -> bool:
    try:
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    """The pid in a pid file, if that process exists."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


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
