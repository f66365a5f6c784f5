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
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import docker
import docker.errors
import requests.exceptions

from dockbed.errors import Conflict, EngineError, EngineUnavailable, NotFound

log = logging.getLogger(__name__)

#: Seconds a single API call may take before the engine counts as unresponsive.
#: Image imports pass their own (unlimited) timeout.
DEFAULT_TIMEOUT = 60

_UNAVAILABLE_HINT = (
    "start it (dockbed node setup does) or check engine_url in the config"
)


def connect(url: str, *, timeout: int = DEFAULT_TIMEOUT) -> docker.DockerClient:
    """A client for the engine at ``url`` that has answered a ping.

    ``url`` is what ``docker -H`` takes: ``unix:///var/run/docker.sock``,
    ``tcp://host:2375`` or ``ssh://user@host``. The API version is negotiated,
    so a 20.10 engine (API 1.41) and newer ones both work. Raises
    EngineUnavailable, from the SDK's or the transport's error, when the engine
    does not answer.
    """
    log.debug("connecting to the Docker Engine at %s", url)
    try:
        client = docker.DockerClient(base_url=url, version="auto", timeout=timeout)
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
        raise EngineUnavailable(
            f"{action} failed: the Docker Engine does not answer ({error})",
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
