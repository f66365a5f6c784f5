"""The monitor page in headless Chromium: a real server, broker, engine and agent.

One agent for the server's own node runs in a thread with a one-second tick
for the module (``tests/integration/monitoring.py``). Containers are made
through the API with the test users' tokens and removed afterwards; the
connection drop closes only the page's own broker connection, so nothing
else using the broker notices.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from dockbed.bus.broker import remove_viewer, viewer_username
from dockbed.bus.publisher import BrokerCredentials
from dockbed.bus.subscriber import Subscription
from dockbed.errors import PermissionDenied
from tests.browser.conftest import Account, LiveServer, log_in, screenshot
from tests.integration.conftest import Made
from tests.integration.monitoring import (
    RunningAgent,
    channels_of,
    close_connections_of,
    consumers_of,
    create_container,
    provision_broker,
    running_agent,
    wait_until,
)

pytestmark = [pytest.mark.browser, pytest.mark.broker]

#: The first subscription of a user makes their broker user (rabbitmqctl,
#: seconds on a busy machine); later ones are at once.
CONNECT_TIMEOUT = 60_000
#: What a tick's message takes to be drawn: the broker, Web STOMP and the
#: page's render, which runs at most every 250 ms.
DRAW_MARGIN = 1.0


@pytest.fixture(scope="module")
def agent(live_server: LiveServer) -> Iterator[RunningAgent]:
    settings = live_server.settings
    with (
        provision_broker(settings, nodes=[settings.node_name]),
        running_agent(settings) as running,
    ):
        yield running
    for account in (live_server.alice, live_server.bob):
        remove_viewer(settings, account.name)


def create(server: LiveServer, account: Account, name: str) -> dict[str, Any]:
    return create_container(server.url, account.token, name)


def subscription_of(server: LiveServer, account: Account) -> dict[str, Any]:
    answer = httpx.get(
        f"{server.url}/api/v1/monitor/subscription",
        headers={"Authorization": f"Bearer {account.token}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    subscription: dict[str, Any] = answer.json()
    return subscription


def open_monitor(page: Page, server: LiveServer, account: Account) -> None:
    log_in(page, server, account)
    page.click("a.nav-link[href='/docker/monitor']")
    expect(page).to_have_url(f"{server.url}/docker/monitor")
    expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=CONNECT_TIMEOUT
    )


def row_of(page: Page, name: str, node: str) -> Locator:
    """The row of ``name`` on ``node``.

    An agent that another test runs on this engine, under a node name of its
    own, shows the same container again on that node.
    """
    return page.locator(f'#monitor-body tr[data-name="{name}"][data-node="{node}"]')


def _percent(shown: str) -> float:
    """``12.5 %`` as 12.5; the first sample's ``—`` as 0."""
    number = shown.removesuffix("%").strip()
    return float(number) if number.replace(".", "", 1).isdigit() else 0.0


def monitor_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        "({...window.dockbedMonitor,"
        " active: window.dockbedMonitor.activeSubscriptions()})"
    )
    return state


def test_new_row_within_two_ticks_and_its_stop_button_stops_it(
    page: Page,
    live_server: LiveServer,
    agent: RunningAgent,
    made: Made,
    docker_client: docker.DockerClient,
    output_dir: Path,
) -> None:
    open_monitor(page, live_server, live_server.alice)
    name = made.name("mon")

    created = create(live_server, live_server.alice, name)
    started = time.monotonic()
    row = row_of(page, name, agent.node)
    expect(row).to_be_visible(timeout=(2 * agent.interval + DRAW_MARGIN) * 1000)
    appeared = time.monotonic() - started
    print(f"row appeared {appeared:.2f} s after the API answered")
    page.select_option("#filter-node", agent.node)
    expect(page.locator("#rows-shown")).to_contain_text("1 of")

    expect(row.locator(".container-id")).to_have_text(created["id"][:12])
    expect(row.locator(".container-node")).to_have_text(agent.node)
    expect(row.locator(".memory-limit")).to_contain_text("of 512")
    expect(row.locator('.interface[data-interface="eth0"]')).to_be_visible()
    # The second sample has rates: CPU % is a number, not the first's "—".
    expect(row.locator(".cpu-value")).to_have_text(
        re.compile(r"^\d+\.\d+ %$"), timeout=(3 * agent.interval + DRAW_MARGIN) * 1000
    )
    before = row.locator(".memory-used").inner_text()
    assert "iB" in before, before
    screenshot(page, output_dir, "monitor-row")

    page.once("dialog", lambda dialog: dialog.accept())
    row.locator('[data-action="stop"]').click()
    expect(row).to_have_count(0, timeout=30_000)
    assert docker_client.containers.get(name).status == "exited"
    expect(page.locator("#toasts")).to_contain_text(f"Stopped {name}")
    # Neither a late sample nor the staleness timer brings it back.
    time.sleep(3 * agent.interval)
    expect(row).to_have_count(0)
    screenshot(page, output_dir, "monitor-stopped")


def test_a_user_sees_only_their_own_containers(
    page: Page,
    live_server: LiveServer,
    agent: RunningAgent,
    made: Made,
    output_dir: Path,
) -> None:
    alice, bob = live_server.alice, live_server.bob
    hers = create(live_server, alice, made.name("hers"))["name"]
    his = create(live_server, bob, made.name("his"))["name"]

    open_monitor(page, live_server, alice)
    expect(row_of(page, hers, agent.node)).to_be_visible(
        timeout=(3 * agent.interval) * 1000
    )
    time.sleep(2 * agent.interval)
    expect(page.locator(f'#monitor-body tr[data-name="{his}"]')).to_have_count(0)
    expect(page.locator("#cpu-chart-scope")).to_contain_text("your containers")
    screenshot(page, output_dir, "monitor-user")

    # The broker, not only the page, keeps alice to her own keys.
    given = subscription_of(live_server, alice)
    credentials = BrokerCredentials(
        username=given["username"],
        password=given["password"],
        host=given["amqp_host"],
        port=given["amqp_port"],
        vhost=given["vhost"],
    )
    assert given["username"] == viewer_username(alice.name)
    assert all(alice.name in binding for binding in given["bindings"])
    for wider in (f"dockbed.stats.*.{bob.name}.*", "dockbed.stats.#", "dockbed.#"):
        with pytest.raises(PermissionDenied):
            Subscription(credentials, [wider], connection_name="test").open()
    with Subscription(
        credentials, given["bindings"], connection_name="test"
    ) as subscription:
        deadline = time.monotonic() + 3 * agent.interval
        routed: set[str] = set()
        while time.monotonic() < deadline:
            routed |= {key for key, _ in subscription.receive(0.2)}
    assert routed, "alice's own subscription received nothing"
    assert all(f".{alice.name}." in key for key in routed), routed


def test_admin_sees_everyones_containers_and_the_node_totals(
    page: Page,
    live_server: LiveServer,
    agent: RunningAgent,
    made: Made,
    docker_client: docker.DockerClient,
    output_dir: Path,
) -> None:
    hers = create(live_server, live_server.alice, made.name("a"))["name"]
    his = create(live_server, live_server.bob, made.name("b"))["name"]
    # One of them busy for a while, under its default limit of one CPU.
    docker_client.containers.get(his).exec_run(
        ["timeout", "60", "sh", "-c", "while :; do :; done"], detach=True
    )

    open_monitor(page, live_server, live_server.admin)
    page.fill("#filter-text", made.name(""))
    for name in (hers, his):
        expect(row_of(page, name, agent.node)).to_be_visible(
            timeout=3 * agent.interval * 1000
        )
    page.select_option("#filter-node", agent.node)
    expect(page.locator("#cpu-chart-scope")).to_contain_text(
        f"node total on {agent.node}", timeout=3 * agent.interval * 1000
    )
    expect(page.locator("#stat-containers")).to_have_text("2")
    busy = row_of(page, his, agent.node).locator(".cpu-value")
    wait_until(
        lambda: _percent(busy.inner_text()) > 50,
        timeout=5 * agent.interval,
        what=f"{his}'s busy loop on show",
    )
    time.sleep(4 * agent.interval)  # a few points on the charts
    screenshot(page, output_dir, "monitor-admin")


def test_shows_the_drop_reconnects_and_subscribes_once(
    page: Page,
    live_server: LiveServer,
    agent: RunningAgent,
    made: Made,
    output_dir: Path,
) -> None:
    alice = live_server.alice
    name = create(live_server, alice, made.name("drop"))["name"]
    open_monitor(page, live_server, alice)
    row = row_of(page, name, agent.node)
    expect(row).to_be_visible(timeout=3 * agent.interval * 1000)
    page.select_option("#filter-node", agent.node)
    bindings = len(subscription_of(live_server, alice)["bindings"])
    broker_user = viewer_username(alice.name)
    assert consumers_of(broker_user) == bindings

    # rabbitmqctl takes seconds to start: close from a thread, watch meanwhile.
    closing = threading.Thread(target=close_connections_of, args=(broker_user,))
    dropped = time.monotonic()
    closing.start()
    banner = page.locator("#disconnected")
    expect(banner).to_be_visible(timeout=30_000)
    expect(banner).to_contain_text("Disconnected — reconnecting")
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    expect(row).to_be_visible()  # the last values stay on show meanwhile
    screenshot(page, output_dir, "monitor-disconnected")
    closing.join(timeout=60)

    expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=30_000
    )
    expect(banner).to_be_hidden()
    print(f"live again {time.monotonic() - dropped:.2f} s after the drop began")

    # Exactly one subscription per binding: at the broker and in the page.
    wait_until(
        lambda: consumers_of(broker_user) == bindings,
        timeout=10,
        what="the page's subscriptions at the broker",
    )
    assert len(channels_of(broker_user)) == 1, "one Web STOMP session, no leftover"
    state = monitor_state(page)
    assert state["connects"] == 2 and state["disconnects"] == 1, state
    assert state["active"] == bindings
    assert state["subscribeCalls"] == 2 * bindings

    # And one message per container per tick: none is counted twice.
    received = state["received"]
    time.sleep(3 * agent.interval)
    state = monitor_state(page)
    assert state["duplicates"] == 0, state
    assert state["received"] > received, "no samples after the reconnect"
    assert consumers_of(broker_user) == bindings
    expect(row).to_be_visible()
    screenshot(page, output_dir, "monitor-reconnected")
