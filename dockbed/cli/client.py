"""The CLI's client of the server's REST API.

The CLI never talks to an engine: every action goes through the server, so
it passes the same checks as the page. Error bodies come back as our own
exceptions, rebuilt by ``dockbed.errors.error_from_dict``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from dockbed.cli.output import fail
from dockbed.config import get_settings
from dockbed.errors import DockbedError, EngineUnavailable, error_from_dict

log = logging.getLogger(__name__)

#: Where ``dockbed login`` keeps the server URL and token, mode 0600.
TOKEN_FILE = Path(
    os.environ.get("DOCKBED_TOKEN_FILE", "~/.config/dockbed/token")
).expanduser()
#: A token in this variable is used instead of the saved login (scripts, CI).
TOKEN_VARIABLE = "DOCKBED_TOKEN"

T = TypeVar("T")


class ApiClient:
    """Thin wrapper over httpx that speaks dockbed's error bodies."""

    def __init__(
        self, base_url: str, token: str | None = None, timeout: float = 300
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=f"{self.base_url}/api/v1", headers=headers, timeout=timeout
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; the decoded JSON answer, or our error raised."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise EngineUnavailable(
                f"cannot reach the dockbed server at {self.base_url}: {error}",
                hint="start it with 'dockbed up' (or 'dockbed server'), or set "
                "DOCKBED_SERVER_URL",
                url=self.base_url,
            ) from error
        if response.is_success:
            return response.json() if response.content else None
        try:
            body = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            raise DockbedError(
                f"the server answered {response.status_code}: {response.text[:200]}"
            ) from None
        raise error_from_dict(body)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)


@dataclass(frozen=True)
class Login:
    """A server URL and the API token ``dockbed login`` got for it."""

    url: str
    token: str


def read_login(path: Path = TOKEN_FILE) -> Login | None:
    """The saved login, or None when there is none."""
    try:
        data = json.loads(path.read_text())
        return Login(url=str(data["url"]), token=str(data["token"]))
    except (OSError, ValueError, KeyError):
        return None


def write_login(login: Login, path: Path = TOKEN_FILE) -> None:
    """Save a login readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"url": login.url, "token": login.token}, handle)


def remove_login(path: Path = TOKEN_FILE) -> bool:
    """Forget the saved login; whether there was one."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def default_client() -> ApiClient:
    """A client of the configured server, with the caller's token.

    The token is ``DOCKBED_TOKEN`` if set, else the saved login's. The saved
    login's server is used unless ``server_url`` is configured to another.
    """
    settings = get_settings()
    token = os.environ.get(TOKEN_VARIABLE)
    if token:
        return ApiClient(settings.server_url, token.strip())
    login = read_login()
    if login is not None and (
        "server_url" not in settings.model_fields_set
        or login.url.rstrip("/") == settings.server_url.rstrip("/")
    ):
        return ApiClient(login.url, login.token)
    return ApiClient(settings.server_url)


def call(action: Callable[[], T]) -> T:
    """Run ``action``; our error becomes a message on stderr and an exit code."""
    try:
        return action()
    except DockbedError as error:
        raise fail(error) from error
