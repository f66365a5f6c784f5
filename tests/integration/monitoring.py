"""A broker and a real agent for the tests of the live views (page, ``dockbed stats``).

The tests' servers keep their state in a temporary ``state_dir``, where the
broker's secrets live too. :func:`provision_broker` copies the configured
state_dir's secrets in first when there are any, so the users a test touches
(``dockbed-viewer-admin``, ``dockbed-agent-local``) keep the passwords that a
dockbed already running on this machine uses, and nothing of it is locked
out. :func:`running_agent` runs an agent in a thread with a short tick, unless
the node's agent is already connected (then that one is watched: two agents
of one node would send every sample twice).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from dockbed.agent.service import Agent
from dockbed.bus.broker import agent_username, rabbitmqctl, setup_broker, stop_broker
from dockbed.bus.routing import routing_word
from dockbed.config import Settings, get_settings

log = logging.getLogger(__name__)

#: The tests' tick: short, so that "within two ticks" is seconds.
TICK = 1.0


def _listed(*args: str) -> list[list[str]]:
    output = rabbitmqctl(*args, "--no-table-headers")
    return [line.split("\t") for line in output.splitlines() if line.strip()]


def channels_of(user: str) -> list[tuple[str, str]]:
    """``(channel, connection)`` pids of the broker's channels opened as ``user``.

    A Web STOMP session is one channel on a connection inside the broker,
    which RabbitMQ 3.10 lists among channels but not ``list_connections``.
    """
    return [
        (row[0], row[1])
        for row in _listed("list_channels", "pid", "connection", "user")
        if row[2:] == [user]
    ]


def consumers_of(user: str) -> int:
    """How many subscriptions ``user`` holds, over all its channels."""
    channels = {channel for channel, _ in channels_of(user)}
    return sum(
        1 for row in _listed("list_consumers", "channel_pid") if row[0] in channels
    )


def close_connections_of(user: str) -> int:
    """Close ``user``'s Web STOMP connections, as an outage would; how many.

    ``rabbitmqctl close_connection`` and ``close_all_user_connections`` pass
    Web STOMP's connections by in 3.10: these are closed as the broker's own
    client library closes a connection, with a reason the client is told.
    """
    connections = {connection for _, connection in channels_of(user)}
    for connection in connections:
        rabbitmqctl(
            "eval",
            f'amqp_connection:close(rabbit_misc:string_to_pid("{connection}"), '
            '320, <<"dockbed test: a dropped connection">>).',
        )
    return len(connections)


@contextmanager
def provision_broker(settings: Settings, *, nodes: list[str]) -> Iterator[None]:
    """The broker up, with agent users for ``nodes`` and the shared secrets.

    Stops the broker again at the end only if this started it.
    """
    configured = get_settings().state_dir / "broker"
    mine = settings.state_dir / "broker"
    mine.mkdir(mode=0o700, parents=True, exist_ok=True)
    names = [
        "viewer.secret",
        *(f"agent-{routing_word(node)}.password" for node in nodes),
    ]
    for name in names:
        if (configured / name).is_file() and not (mine / name).exists():
            shutil.copy2(configured / name, mine / name)
    setup = setup_broker(settings, nodes=nodes)
    try:
        yield
    finally:
        if setup.started:
            stop_broker()


@dataclass
class RunningAgent:
    """The agent whose samples a test waits for, and its tick in seconds."""

    node: str
    interval: float
    agent: Agent | None


@contextmanager
def running_agent(
    settings: Settings, *, interval: float = TICK
) -> Iterator[RunningAgent]:
    """Run ``settings.node_name``'s agent in a thread until the block ends."""
    node = settings.node_name
    if channels_of(agent_username(node)):
        log.warning("node %s's agent already runs: the tests watch that one", node)
        yield RunningAgent(node, settings.agent.interval, None)
        return
    agent_settings = settings.model_copy(
        update={
            "agent": settings.agent.model_copy(
                update={"interval": interval, "metrics_port": None}
            )
        }
    )
    agent = Agent.from_settings(agent_settings)
    thread = threading.Thread(target=agent.run, name=f"agent-{node}", daemon=True)
    thread.start()
    try:
        yield RunningAgent(node, interval, agent)
    finally:
        agent.stop()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the agent did not stop"


def create_container(server_url: str, token: str, name: str) -> dict[str, Any]:
    """Create and start a container through the API as ``token``'s user."""
    answer = httpx.post(
        f"{server_url}/api/v1/containers",
        json={"name": name},
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until it holds; the seconds it took, at most ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)
    return time.monotonic() - start
