"""``dockbed stats --once --json`` end to end: server, broker, a real agent, the CLI.

The agent runs in a thread with a one-second tick against the real engine
(see ``tests/integration/monitoring.py``); the command runs as the installed
``dockbed``, with the broker login the server hands it for its token's user.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dockbed.bus.broker import remove_viewer
from dockbed.cli.client import TOKEN_VARIABLE
from dockbed.cli.stats import ONCE_MARGIN, ONCE_TICKS
from dockbed.config import Settings
from dockbed.server.store import Store, generate_password
from tests.integration.conftest import Made
from tests.integration.monitoring import (
    RunningAgent,
    create_container,
    provision_broker,
    running_agent,
)
from tests.integration.test_cli import DOCKBED

pytestmark = [pytest.mark.integration, pytest.mark.broker]

KEYS = {
    "node",
    "name",
    "id",
    "cpu_percent",
    "memory_bytes",
    "memory_limit_bytes",
    "interfaces",
}
INTERFACE_KEYS = {"rx_bytes", "tx_bytes", "rx_bps", "tx_bps"}
#: What a Python start-up and the first broker user set-up may add to a run.
START_UP = 20.0


@pytest.fixture(scope="module")
def agent(server_settings: Settings) -> Iterator[RunningAgent]:
    node = server_settings.node_name
    with (
        provision_broker(server_settings, nodes=[node]),
        running_agent(server_settings) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def user(store: Store, server_settings: Settings) -> Iterator[tuple[str, str]]:
    """A plain user of the test server: their name and API token."""
    name = f"stats-{uuid.uuid4().hex[:6]}"
    store.add_user(name, generate_password())
    token, _ = store.issue_token(name, "stats test")
    yield name, token
    remove_viewer(server_settings, name)


def stats_once(server_url: str, token: str, *args: str) -> tuple[list[Any], float]:
    """``dockbed stats --once --json ARGS`` as ``token``'s user; its list, its time."""
    env = {**os.environ, "DOCKBED_SERVER_URL": server_url, TOKEN_VARIABLE: token}
    started = time.monotonic()
    result = subprocess.run(
        [DOCKBED, "stats", "--once", "--json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    samples: list[Any] = json.loads(result.stdout)
    return samples, took


def test_once_json_has_the_documented_keys(
    server_url: str,
    admin_token: str,
    server_settings: Settings,
    agent: RunningAgent,
    made: Made,
) -> None:
    created = create_container(server_url, admin_token, made.name("stats"))
    # Two samples apart, so the one printed has rates.
    time.sleep(2 * agent.interval)

    samples, took = stats_once(server_url, admin_token, "--node", agent.node)

    mine = [s for s in samples if s["name"] == created["name"]]
    assert len(mine) == 1, [s["name"] for s in samples]
    found = mine[0]
    assert found.keys() >= KEYS
    assert found["node"] == agent.node
    assert found["id"] == created["id"]
    assert found["memory_bytes"] > 0
    assert found["memory_limit_bytes"] >= found["memory_bytes"]
    assert found["cpu_percent"] is not None and found["cpu_percent"] >= 0
    assert "eth0" in found["interfaces"]
    for counters in found["interfaces"].values():
        assert set(counters) == INTERFACE_KEYS
        assert counters["rx_bps"] is not None and counters["tx_bps"] is not None
    assert all(s["node"] == agent.node for s in samples)
    bound = ONCE_TICKS * server_settings.agent.interval + ONCE_MARGIN + START_UP
    assert took < bound, f"--once took {took:.1f} s"


def test_once_json_shows_a_user_only_their_own(
    server_url: str,
    admin_token: str,
    user: tuple[str, str],
    agent: RunningAgent,
    made: Made,
) -> None:
    name, token = user
    others = create_container(server_url, admin_token, made.name("admins"))
    theirs = create_container(server_url, token, made.name("theirs"))

    samples, _ = stats_once(server_url, token)

    assert [s["name"] for s in samples] == [theirs["name"]]
    assert samples[0]["owner"] == name
    assert others["name"] not in {s["name"] for s in samples}
