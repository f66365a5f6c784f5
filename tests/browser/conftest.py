"""Fixtures for the pages in headless Chromium against a real dockbed server.

One server for the session, on a temporary state_dir (its own store and
session key, never ``/var/lib/dockbed``), with an admin and two users made
for this run. Chromium is Debian's (``/usr/bin/chromium``), driven by
Playwright's sync API; every test gets a fresh browser context, so nobody is
logged in at its start.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from dockbed.config import Settings, get_settings
from dockbed.server.app import create_app
from dockbed.server.store import Role, Store, generate_password

# The engine's fixtures, shared with the integration tests: importing them
# here registers them for these tests too.
from tests.integration.conftest import (  # noqa: F401
    docker_client,
    made,
    serving,
    settings,
)

CHROMIUM = "/usr/bin/chromium"
#: Flags that keep Chromium from reaching for an internet it does not have.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1600, "height": 1000}


@dataclass(frozen=True)
class Account:
    """A user of the test server, with a password for the page and a token."""

    name: str
    password: str
    token: str


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings
    store: Store
    admin: Account
    alice: Account
    bob: Account


def _account(store: Store, name: str, role: Role = "user") -> Account:
    password = generate_password()
    store.add_user(name, password, role=role)
    token, _ = store.issue_token(name, "browser tests")
    return Account(name, password, token)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    state = tmp_path_factory.mktemp("browser-state")
    server_settings = get_settings().model_copy(
        update={"state_dir": state, "database_url": None}
    )
    store = Store.from_settings(server_settings)
    # Names unique to this run, so a container left by an earlier run (its
    # owner label) is never anyone's here.
    tag = uuid.uuid4().hex[:4]
    admin = _account(store, "admin", "admin")
    alice = _account(store, f"alice-{tag}")
    bob = _account(store, f"bob-{tag}")
    with serving(create_app(server_settings, store)) as url:
        yield LiveServer(url, server_settings, store, admin, alice, bob)
    store.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def log_in(page: Page, server: LiveServer, account: Account) -> None:
    """Log in through the login page and land on the control page."""
    page.goto(f"{server.url}/docker")
    expect(page).to_have_url(f"{server.url}/login?next=/docker")
    page.fill("#login-name", account.name)
    page.fill("#login-password", account.password)
    page.click("#login-submit")
    expect(page).to_have_url(f"{server.url}/docker")
    expect(page.get_by_test_id("current-user")).to_have_text(account.name)


def screenshot(page: Page, output_dir: Path, name: str) -> Path:
    """Save the whole page as ``test-output/browser-<name>.png``."""
    path = output_dir / f"browser-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def fill_batch(page: Page, prefix: str, count: int, base_ip: str = "") -> None:
    """Open the batch tab and fill its form; the preview follows by itself."""
    page.click("#batch-tab")
    page.fill("#batch-prefix", prefix)
    page.fill("#batch-count", str(count))
    if base_ip:
        page.fill("#batch-base-ip", base_ip)
