"""Connecting to a Docker Engine, with its failures mapped to ours.

The one place where the Docker SDK's and the transport's exceptions become
dockbed's: :func:`connect` turns "cannot reach the engine" (a missing socket,
a refused TCP port, a TLS or ssh failure) into ``EngineUnavailable``, and
:func:`engine_errors` wraps any other call::

    docker.errors.NotFound / ImageNotFound    → NotFound
    docker.errors.APIError, status 409        → Conflict
    docker.errors.APIError, other statuses    → EngineError
    requests ConnectionError / Timeout        → EngineUnavailable
    docker.errors.DockerException             → EngineError

An engine is reached only three ways: its local socket (``unix://``), ssh
(``ssh://``, through the system's ssh client), or TCP with TLS both ways
(``tcp://HOST:2376`` and a client certificate its CA signed). A plain
``tcp://`` URL without TLS would hand root on the node to whoever reaches
the port, so :func:`check_engine_url` refuses it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors
import docker.tls
import requests.exceptions

from dockbed.config import Settings
from dockbed.engine.tls import TlsFiles
from dockbed.errors import (
    Conflict,
    EngineError,
    EngineUnavailable,
    InvalidInput,
    NotFound,
)

log = logging.getLogger(__name__)

#: Seconds a single API call may take before the engine counts as unresponsive.
#: Image imports pass their own (unlimited) timeout.
DEFAULT_TIMEOUT = 60

#: The schemes an engine URL may have, and what each needs.
SCHEMES = ("unix", "ssh", "tcp")

_UNAVAILABLE_HINT = (
    "start it (dockbed node setup does) or check engine_url in the config"
)


def check_engine_url(url: str, tls: TlsFiles | None) -> str:
    """The URL's scheme, once ``url`` and ``tls`` make a safe pair.

    ``unix://`` and ``ssh://`` take no TLS files; ``tcp://`` requires them
    (InvalidInput otherwise: an engine on plain TCP is open to anyone who
    reaches the port); the files must exist (NotFound).
    """
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme not in SCHEMES:
        raise InvalidInput(
            f"the engine URL {url!r} is not unix://, ssh:// or tcp://",
            hint="e.g. unix:///var/run/docker.sock, ssh://root@node1 or "
            "tcp://node1:2376 with --tls-dir",
            field="engine_url",
            url=url,
        )
    if scheme == "tcp":
        if tls is None:
            raise InvalidInput(
                f"refusing the engine URL {url}: plain TCP without TLS gives "
                "root on the node to anyone who reaches the port",
                hint="give the client certificates (ca.pem, cert.pem, key.pem) "
                "that 'dockbed node setup --remote' made, or use ssh://",
                field="engine_url",
                url=url,
            )
        if not parts.hostname or not parts.port:
            raise InvalidInput(
                f"the engine URL {url} needs a host and a port",
                hint="e.g. tcp://10.213.50.11:2376",
                field="engine_url",
                url=url,
            )
        tls.check()
    elif tls is not None:
        raise InvalidInput(
            f"TLS files apply to tcp:// engines only, not {scheme}://",
            hint="leave out the TLS directory for a local socket or ssh",
            field="tls_dir",
            url=url,
        )
    return scheme


def settings_tls(settings: Settings) -> TlsFiles | None:
    """The TLS files for ``settings.engine_url``: ``engine_tls_dir``, if set."""
    return TlsFiles(settings.engine_tls_dir) if settings.engine_tls_dir else None


def connect(
    url: str, *, tls: TlsFiles | None = None, timeout: float = DEFAULT_TIMEOUT
) -> docker.DockerClient:
    """A client for the engine at ``url`` that has answered a ping.

    ``url`` is what ``docker -H`` takes: ``unix:///var/run/docker.sock``,
    ``ssh://user@host`` or ``tcp://host:2376``, the last with ``tls`` (the
    CA to check the engine with, and the client certificate to show it).
    The API version is negotiated, so a 20.10 engine (API 1.41) and newer
    ones both work; ``timeout`` bounds the negotiation and the ping too.
    Raises InvalidInput for a URL refused by :func:`check_engine_url`, and
    EngineUnavailable, from the SDK's or the transport's error, when the
    engine does not answer or the TLS handshake fails.
    """
    scheme = check_engine_url(url, tls)
    log.debug("connecting to the Docker Engine at %s", url)
    options: dict[str, Any] = {}
    if tls is not None:
        options["tls"] = docker.tls.TLSConfig(
            client_cert=(str(tls.cert), str(tls.key)),
            ca_cert=str(tls.ca),
            verify=True,
        )
    if scheme == "ssh":
        # The system's ssh honours ~/.ssh/config and agents; no paramiko.
        options["use_ssh_client"] = True
    try:
        client = _EngineClient(base_url=url, version="auto", timeout=timeout, **options)
        client.ping()
    except (
        docker.errors.DockerException,
        requests.exceptions.RequestException,
    ) as error:
        raise EngineUnavailable(
            f"the Docker Engine at {url} does not answer: {error}",
            hint=_UNAVAILABLE_HINT,
            url=url,
        ) from error
    return client


class _EngineApiClient(docker.APIClient):  # type: ignore[misc]
    """The SDK's API client, deaf to the process environment's HTTP settings.

    requests lets ``REQUESTS_CA_BUNDLE`` override a session's own CA (and
    ``HTTPS_PROXY`` route its traffic), so an engine's TLS would be checked
    against the system's CAs instead of the node's and fail, or its API
    sent through a proxy. An engine is always reached directly, checked
    against its own CA.
    """

    @property
    def trust_env(self) -> bool:
        return False

    @trust_env.setter
    def trust_env(self, value: bool) -> None:
        """requests.Session sets it at start; it stays off."""


class _EngineClient(docker.DockerClient):  # type: ignore[misc]
    def __init__(self, **options: Any) -> None:
        # DockerClient's own __init__ does only this, with the stock client.
        self.api = _EngineApiClient(**options)


@contextmanager
def engine_errors(action: str, **details: Any) -> Iterator[None]:
    """Map the SDK's exceptions raised inside the block to dockbed's.

    ``action`` completes "… failed" in the message (``"creating network x"``);
    ``details`` are the facts the error carries. The engine's own explanation
    is kept in ``details["engine"]``.
    """
    try:
        yield
    except docker.errors.NotFound as error:
        raise NotFound(
            f"{action} failed: {_explanation(error)}",
            engine=_explanation(error),
            **details,
        ) from error
    except docker.errors.APIError as error:
        cls = Conflict if error.status_code == 409 else EngineError
        raise cls(
            f"{action} failed: {_explanation(error)}",
            engine=_explanation(error),
            status=error.status_code,
            **details,
        ) from error
    except requests.exceptions.RequestException as error:
        node = details.get("node")
        engine = f"the Docker Engine of node {node}" if node else "the Docker Engine"
        raise EngineUnavailable(
            f"{action} failed: {engine} does not answer ({error})",
            hint=_UNAVAILABLE_HINT,
            **details,
        ) from error
    except docker.errors.DockerException as error:
        raise EngineError(f"{action} failed: {error}", **details) from error


def _explanation(error: docker.errors.APIError) -> str:
    """The engine's own sentence, without the SDK's URL-laden prefix."""
    explanation = error.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or error)
