"""dockbed's long-running processes on this machine: started detached, found
again by their pid files, and stopped.

This machine has no service manager to lean on (no systemd as PID 1 on the
testbed's images, nor in CI), so ``dockbed up`` starts the server and agent
itself; on a real testbed the units in ``deploy/`` do the same job.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from dockbed.errors import HostError

log = logging.getLogger(__name__)


class Daemon:
    """One background process of dockbed's, with its pid file and log."""

    def __init__(self, name: str, run_dir: Path, log_dir: Path) -> None:
        self.name = name
        self.pid_file = run_dir / f"{name}.pid"
        self.log_file = log_dir / f"{name}.log"

    def pid(self) -> int | None:
        """The pid of the running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _alive(pid):
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def start(self, argv: Sequence[str], *, env: dict[str, str] | None = None) -> int:
        """Start ``argv`` detached unless it already runs; its pid.

        The process gets its own session so it outlives the caller and its
        terminal; its output goes to the log file.
        """
        running = self.pid()
        if running is not None:
            log.debug("%s already runs (pid %d)", self.name, running)
            return running
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        process = spawn_detached(argv, self.log_file, env=env)
        self.pid_file.write_text(f"{process.pid}\n")
        log.info(
            "started %s (pid %d), log in %s", self.name, process.pid, self.log_file
        )
        return process.pid

    def stop(self, *, timeout: float = 15.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; False if it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                log.warning("%s (pid %d) ignored SIGTERM; killing it", self.name, pid)
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        log.info("stopped %s (pid %d)", self.name, pid)
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(
                self.log_file.read_text(errors="replace").splitlines()[-lines:]
            )
        except OSError:
            return ""

    def exited_early(self) -> HostError:
        """The error for a process that died before it was ready."""
        return HostError(
            f"{self.name} exited before it was ready",
            hint=f"see {self.log_file}",
            log=self.log_tail(),
        )


def spawn_detached(
    argv: Sequence[str], log_file: Path, *, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own, its output appended to ``log_file``.

    The process outlives the caller and its terminal. ``env`` adds to this
    process's environment. Raises OSError when ``argv`` cannot be run.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as output:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, **(env or {})},
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers signal 0; its state in /proc says it is gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"
