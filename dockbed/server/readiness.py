"""Waiting until sshd in new containers accepts connections."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address

from dockbed.errors import EngineError

log = logging.getLogger(__name__)

SSH_PORT = 22


def wait_for_ssh(
    addresses: Iterable[IPv4Address], *, timeout: float = 60.0, port: int = SSH_PORT
) -> None:
    """Return once every address accepts a TCP connection on ``port``.

    Only meaningful where this host can route to the lab subnet (the local
    node's shim interface does that). Raises EngineError naming the addresses
    that still refuse when ``timeout`` seconds have passed.
    """
    targets = list(addresses)
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(targets)))) as workers:
        ready = list(workers.map(lambda a: _wait_one(a, port, deadline), targets))
    late = [str(address) for address, ok in zip(targets, ready, strict=True) if not ok]
    if late:
        raise EngineError(
            f"sshd did not accept connections within {timeout:.0f} s at "
            + ", ".join(late),
            hint="the containers run; check 'docker logs' on the node",
            addresses=late,
        )


def _wait_one(address: IPv4Address, port: int, deadline: float) -> bool:
    while True:
        try:
            with socket.create_connection((str(address), port), timeout=1.0):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                log.debug("%s:%d still refuses", address, port)
                return False
            time.sleep(0.05)
