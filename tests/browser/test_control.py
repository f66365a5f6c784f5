"""The control page in headless Chromium, against a real server and engine."""

from __future__ import annotations

import re
from pathlib import Path

import docker
import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer, fill_batch, log_in, screenshot
from tests.integration.conftest import Made, engine_snapshot

pytestmark = pytest.mark.browser

#: Creating containers takes seconds, not the default 15 s wait for a widget.
SLOW = 90_000


def test_log_in_then_out(page: Page, live_server: LiveServer, output_dir: Path) -> None:
    page.goto(f"{live_server.url}/login")
    page.fill("#login-name", live_server.alice.name)
    page.fill("#login-password", "not the password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_contain_text("wrong user name or password")

    log_in(page, live_server, live_server.alice)
    expect(page.get_by_role("heading", name="Docker control")).to_be_visible()
    expect(page.locator("#node-summary")).to_contain_text("lab network")
    # A user has no admin pages in the navbar.
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    screenshot(page, output_dir, "control-logged-in")

    page.click("#user-menu")
    page.click("#logout")
    expect(page).to_have_url(f"{live_server.url}/login")
    page.goto(f"{live_server.url}/docker")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_batch_preview_create_stop_remove(
    page: Page,
    live_server: LiveServer,
    made: Made,
    docker_client: docker.DockerClient,
    output_dir: Path,
) -> None:
    log_in(page, live_server, live_server.alice)
    prefix = made.name("page")
    names = [f"{prefix}-{index}" for index in (1, 2, 3)]

    fill_batch(page, prefix, 3)
    items = page.locator("#batch-preview-list .preview-item")
    expect(items).to_have_count(3)
    expect(items.locator("span").first).to_have_text(names[0])
    planned = {
        item.get_attribute("data-name"): item.locator(".ip").inner_text()
        for item in items.all()
    }
    assert list(planned) == names
    screenshot(page, output_dir, "batch-preview")

    page.click("#batch-submit")
    expect(page.locator("#batch-progress")).to_be_visible()
    expect(page.locator("#batch-progress-label")).to_have_text(
        "Batch created", timeout=SLOW
    )
    for name, address in planned.items():
        row = page.locator(f'#containers-body tr[data-name="{name}"]')
        expect(row.locator(".address")).to_contain_text(address)
        expect(row.locator(".container-state")).to_contain_text("running")
    screenshot(page, output_dir, "batch-created")
    for name, address in planned.items():
        engine = docker_client.containers.get(name)
        networks = engine.attrs["NetworkSettings"]["Networks"]
        assert networks["lab"]["IPAMConfig"]["IPv4Address"] == address
        assert engine.labels["org.dockbed.owner"] == live_server.alice.name

    stopped = page.locator(f'#containers-body tr[data-name="{names[1]}"]')
    stopped.locator('[data-action="stop"]').click()
    expect(stopped.locator(".container-state")).to_contain_text("stopped", timeout=SLOW)
    assert docker_client.containers.get(names[1]).status == "exited"
    screenshot(page, output_dir, "batch-one-stopped")

    page.select_option("#filter-batch", prefix)
    page.click('[data-batch-action="remove"]')
    expect(page.locator("#confirm-body")).to_contain_text(prefix)
    page.click("#confirm-ok")
    expect(page.locator("#containers-body tr[data-name]")).to_have_count(
        0, timeout=SLOW
    )
    assert not docker_client.containers.list(all=True, filters={"name": prefix})
    screenshot(page, output_dir, "batch-removed")


def test_base_address_outside_the_pool_is_shown_by_its_field(
    page: Page,
    live_server: LiveServer,
    made: Made,
    docker_client: docker.DockerClient,
    output_dir: Path,
) -> None:
    log_in(page, live_server, live_server.alice)
    before = engine_snapshot(docker_client)

    fill_batch(page, made.name("outside"), 3, base_ip="10.64.98.10")
    page.click("#batch-submit")

    field = page.locator("#batch-base-ip")
    feedback = page.locator('#batch-form [data-feedback-for="base_ip"]')
    expect(field).to_have_class(re.compile(r"\bis-invalid\b"))
    expect(feedback).to_be_visible()
    expect(feedback).to_contain_text("10.64.98.10 is outside the container pool")
    expect(page.locator("#batch-progress")).to_be_hidden()
    screenshot(page, output_dir, "batch-base-outside-pool")
    assert engine_snapshot(docker_client) == before


def test_a_user_cannot_see_or_stop_another_users_container(
    page: Page,
    live_server: LiveServer,
    made: Made,
    docker_client: docker.DockerClient,
    output_dir: Path,
) -> None:
    theirs = made.name("bobs")
    bob = httpx.Client(
        base_url=f"{live_server.url}/api/v1",
        headers={"Authorization": f"Bearer {live_server.bob.token}"},
    )
    created = bob.post("/containers", json={"name": theirs})
    assert created.status_code == 201, created.text

    log_in(page, live_server, live_server.alice)
    expect(page.locator("#containers-updated")).to_contain_text("updated")
    page.fill("#filter-text", theirs)
    expect(page.locator("#containers-body")).to_contain_text("No container")
    assert theirs not in page.locator("#containers-body").inner_text()
    screenshot(page, output_dir, "user-sees-only-own")

    alice = httpx.Client(
        base_url=f"{live_server.url}/api/v1",
        headers={"Authorization": f"Bearer {live_server.alice.token}"},
    )
    assert alice.post(f"/containers/{theirs}/stop").status_code in {403, 404}
    selection = {"names": [theirs]}
    assert alice.post("/actions/stop", json=selection).status_code in {403, 404}
    assert alice.delete(f"/containers/{theirs}").status_code in {403, 404}
    assert theirs not in {row["name"] for row in alice.get("/containers").json()}
    # The page's own session gets the same answer as the token.
    status = page.evaluate(
        """async (name) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const answer = await fetch(`/api/v1/containers/${name}/stop`,
                {method: "POST", headers: {"X-CSRF-Token": csrf}});
            return answer.status;
        }""",
        theirs,
    )
    assert status in {403, 404}
    assert docker_client.containers.get(theirs).status == "running"


def test_admin_pages_list_users_and_the_audit_log(
    page: Page, live_server: LiveServer, output_dir: Path
) -> None:
    log_in(page, live_server, live_server.admin)
    page.click("text=Users")
    expect(page).to_have_url(f"{live_server.url}/docker/users")
    table = page.locator("#users-table")
    expect(table).to_contain_text(live_server.alice.name)
    expect(table).to_contain_text(live_server.bob.name)
    screenshot(page, output_dir, "users")

    page.click("text=Audit")
    expect(page).to_have_url(f"{live_server.url}/docker/audit")
    expect(page.locator("#audit-table tbody tr").first).to_contain_text("log_in")
    screenshot(page, output_dir, "audit")
