"""``dockbed up`` and ``dockbed down``: the whole local stack in one command.

``up`` prepares this machine as a node (engine, lab network, image), sets up
the broker, and starts the agent and the server in the background; ``down``
stops what ``up`` started, and the engine and broker only if ``up`` was the
one that started them (recorded in ``state_dir/run/up.json``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer

from dockbed.bus.broker import setup_broker, stop_broker
from dockbed.cli.accounts import FIRST_ADMIN
from dockbed.cli.client import TOKEN_FILE, ApiClient, Login, read_login, write_login
from dockbed.cli.output import console, fail
from dockbed.config import Settings, get_settings
from dockbed.engine.node import setup_node
from dockbed.errors import DockbedError, HostError
from dockbed.processes import Daemon
from dockbed.server.store import Store, generate_password

#: Seconds the server may take to answer its health check after starting.
SERVER_START_TIMEOUT = 30.0
DOCKERD_PID_FILE = Path("/var/run/docker.pid")


def _daemons(settings: Settings) -> dict[str, Daemon]:
    run_dir = settings.state_dir / "run"
    return {
        name: Daemon(name, run_dir, settings.log_dir) for name in ("agent", "server")
    }


def _record_path(settings: Settings) -> Path:
    return settings.state_dir / "run" / "up.json"


def _dockbed_command() -> str:
    """The ``dockbed`` script of the running interpreter's environment."""
    return str(Path(sys.executable).with_name("dockbed"))


def up(
    parent: Annotated[
        str | None, typer.Option(help="interface cabled to the lab network")
    ] = None,
) -> None:
    """Bring up a local node, the broker, the agent and the server."""
    settings = get_settings()
    try:
        record = _bring_up(settings, parent)
    except DockbedError as error:
        raise fail(error) from error
    path = _record_path(settings)
    previous = _read_record(path)
    # What an earlier 'up' started stays ours to stop, even if it ran already.
    merged = {key: record[key] or previous.get(key, False) for key in record}
    path.write_text(json.dumps(merged))
    url = f"http://{settings.server_host}:{settings.server_port}"
    console.print(f"[green]dockbed is up[/]: control page {url}/docker, API {url}/docs")


def _bring_up(settings: Settings, parent: str | None) -> dict[str, bool]:
    node = setup_node(settings, parent)
    for step in node.steps:
        console.print(
            f"  {step.name:12} {step.outcome:9} {step.detail}", highlight=False
        )
    engine_started = any(
        step.name == "engine" and step.outcome in {"started", "installed"}
        for step in node.steps
    )

    broker = setup_broker(settings)
    console.print(
        f"  {'broker':12} {'started' if broker.started else 'present':9} "
        f"{settings.broker.host}:{settings.broker.port}",
        highlight=False,
    )

    daemons = _daemons(settings)
    command = _dockbed_command()
    for name in ("agent", "server"):
        pid = daemons[name].start([command, name])
        console.print(f"  {name:12} {'running':9} pid {pid}", highlight=False)
    _wait_for_server(settings, daemons["server"])
    _bootstrap_admin(settings)
    return {"engine": engine_started, "broker": broker.started}


def _bootstrap_admin(settings: Settings) -> None:
    """Make the first admin, and log this machine's CLI in as that admin.

    Whoever runs ``dockbed up`` is root on the server's machine and so holds
    its store anyway; a token for them saves a ``dockbed login`` before the
    first ``dockbed batch``. The admin's password is printed once, when made.
    """
    store = Store.from_settings(settings)
    try:
        password = None
        if store.user(FIRST_ADMIN) is None:
            password = generate_password()
            store.add_user(FIRST_ADMIN, password, role="admin")
        login = read_login()
        if login is None or login.url != settings.server_url or not _token_works(login):
            secret, _ = store.issue_token(FIRST_ADMIN, "dockbed up")
            write_login(Login(url=settings.server_url, token=secret))
            console.print(
                f"  {'cli login':12} {'created':9} {FIRST_ADMIN} at {TOKEN_FILE}"
            )
    finally:
        store.close()
    if password is not None:
        console.print(
            f"  {'admin':12} {'created':9} password: {password}", highlight=False
        )
        console.print(
            "  [dim]shown this once; 'dockbed admin init --reset' makes a new one[/]"
        )


def _token_works(login: Login) -> bool:
    try:
        ApiClient(login.url, login.token).get("/users/me")
    except DockbedError:
        return False
    return True


def _wait_for_server(settings: Settings, daemon: Daemon) -> None:
    url = f"http://{settings.server_host}:{settings.server_port}/api/v1/health"
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        try:
            if httpx.get(url, timeout=2).is_success:
                return
        except httpx.TransportError:
            pass
        if daemon.pid() is None:
            raise daemon.exited_early()
        if time.monotonic() > deadline:
            raise HostError(
                f"the server did not answer at {url} within "
                f"{SERVER_START_TIMEOUT:.0f} s",
                hint=f"see {daemon.log_file}",
            )
        time.sleep(0.2)


def down(
    keep_services: Annotated[
        bool, typer.Option(help="leave the engine and broker running")
    ] = False,
) -> None:
    """Stop what 'dockbed up' started. Containers stay, stopped with the engine."""
    settings = get_settings()
    for name, daemon in _daemons(settings).items():
        stopped = daemon.stop()
        console.print(f"  {name:12} {'stopped' if stopped else 'not running'}")
    path = _record_path(settings)
    record = _read_record(path)
    if keep_services:
        return
    try:
        if record.get("broker"):
            stop_broker()
            console.print(f"  {'broker':12} stopped")
        if record.get("engine"):
            _stop_dockerd()
            console.print(f"  {'engine':12} stopped")
    except DockbedError as error:
        raise fail(error) from error
    path.unlink(missing_ok=True)


def _read_record(path: Path) -> dict[str, bool]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(key): bool(value) for key, value in data.items()}


def _stop_dockerd(timeout: float = 60.0) -> None:
    """SIGTERM to dockerd, which stops its containers first, and wait for it."""
    try:
        pid = int(DOCKERD_PID_FILE.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            raise HostError(f"dockerd (pid {pid}) did not stop within {timeout:.0f} s")
        time.sleep(0.2)
