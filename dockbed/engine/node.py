"""Preparing this machine as a dockbed node, in one idempotent step.

``dockbed node setup`` runs, in order and each only as far as needed::

    ensure_engine      docker.io installed, dockerd answering
    ensure_cable       the lab parent: a stand-in veth pair, or the given NIC
    ensure_shim        the host's own address on the lab (macvlan shim)
    ensure_lab_network the macvlan network Docker attaches containers to
    build_image        the lab base image, skipped when it exists
    (with --remote)    the engine's CA and certificates, dockerd on TLS port
                       2376 (daemon.json, then a restart of dockerd)

Everything that can refuse (an unsafe subnet or parent, a mismatching lab
network) is checked before the first interface is made, so a refused setup
leaves the host as it found it.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Literal

from dockbed.config import Settings
from dockbed.devlab.cable import (
    check_cable,
    check_shim,
    ensure_cable,
    ensure_shim,
    read_addresses,
    read_link,
    read_routes,
)
from dockbed.engine.client import connect, settings_tls
from dockbed.engine.daemon import (
    DAEMON_CONFIG,
    TLS_PORT,
    check_restartable,
    ensure_engine,
    read_daemon_config,
    restart_dockerd,
    tls_daemon_config,
    update_daemon_config,
)
from dockbed.engine.image import build_image
from dockbed.engine.network import check_lab_network, ensure_lab_network
from dockbed.engine.tls import (
    TlsFiles,
    ensure_ca,
    ensure_client_files,
    ensure_server_files,
)
from dockbed.errors import EngineUnavailable, InvalidInput, NotFound
from dockbed.lab.routes import default_route_devices

log = logging.getLogger(__name__)

Outcome = Literal["present", "created", "started", "installed", "built", "skipped"]

_ENGINE_OUTCOMES: dict[str, Outcome] = {
    "running": "present",
    "started": "started",
    "installed": "installed",
}


@dataclass(frozen=True)
class SetupStep:
    """One step of the setup: what it concerns and whether it changed things."""

    name: str
    outcome: Outcome
    detail: str

    @property
    def changed(self) -> bool:
        return self.outcome not in ("present", "skipped")


@dataclass(frozen=True)
class RemoteAccess:
    """``--remote``: the engine answers the server over TLS on ``address``.

    ``address`` defaults to this node's address on its uplink, ``name`` (in
    the certificate, and what the node is registered as) to its host name.
    """

    address: IPv4Address | None = None
    name: str | None = None
    port: int = TLS_PORT


@dataclass(frozen=True)
class RemoteEngine:
    """Where the server reaches this node's engine, and with which files."""

    name: str
    url: str
    #: The CA and client certificate to copy to the server.
    client: TlsFiles
    #: The engine's own certificate, which dockerd reads.
    server: TlsFiles


@dataclass
class NodeSetup:
    """What ``setup_node`` found and did, step by step."""

    parent: str
    steps: list[SetupStep] = field(default_factory=list)
    seconds: float = 0.0
    remote: RemoteEngine | None = None

    @property
    def changed(self) -> bool:
        """False when the node was already fully set up."""
        return any(step.changed for step in self.steps)


def setup_node(
    settings: Settings,
    parent: str | None = None,
    force: bool = False,
    *,
    build: bool = True,
    remote: RemoteAccess | None = None,
) -> NodeSetup:
    """Make this machine a node: engine, lab cable, shim, lab network, image.

    ``parent`` (the interface wired to the lab) overrides ``lab.parent``;
    ``force`` allows it to be the default-route device (``lab.force_parent``).
    ``build=False`` leaves the image out. ``remote`` also opens the engine to
    the server over TLS (see :func:`setup_remote_engine`); without it nothing
    of that is touched. Safe to run again: what is in place is left alone.
    Raises UnsafeNetwork, Conflict, HostError, EngineError and their kin from
    the steps, before the first change where they can be known.
    """
    started = time.monotonic()
    lab = settings.lab.model_copy(
        update={
            "parent": parent if parent is not None else settings.lab.parent,
            "force_parent": force or settings.lab.force_parent,
        }
    )
    steps: list[SetupStep] = []

    # The refusals that need no change to find out come before the first
    # change: the host's own (parent, subnet), then the engine's (lab network).
    routes = read_routes()
    planned_parent = check_cable(lab, routes=routes)
    check_shim(lab, planned_parent, routes=routes)
    access = _resolve_remote(settings, remote, routes) if remote else None

    engine = ensure_engine(settings)
    steps.append(SetupStep("engine", _ENGINE_OUTCOMES[engine], settings.engine_url))
    client = connect(settings.engine_url, tls=settings_tls(settings))
    try:
        network_existed = check_lab_network(client, lab, planned_parent) is not None

        cable_existed = lab.parent is not None or read_link(lab.cable_name) is not None
        parent_name = ensure_cable(lab, routes=routes)
        steps.append(
            SetupStep(
                "cable",
                "present" if cable_existed else "created",
                parent_name
                if lab.parent
                else f"veth {lab.cable_name}/{lab.cable_peer_name}",
            )
        )

        shim_changed = ensure_shim(lab, parent_name, routes=routes)
        steps.append(
            SetupStep(
                "shim",
                "created" if shim_changed else "present",
                f"{lab.shim_name} {lab.node_address}/{lab.subnet.prefixlen} on "
                f"{parent_name}",
            )
        )

        network = ensure_lab_network(client, lab, parent_name)
        steps.append(
            SetupStep(
                "lab network",
                "present" if network_existed else "created",
                f"{network.name} {network.subnet} on {network.parent}, "
                f"Docker's range {network.ip_range}",
            )
        )

        if build:
            image = build_image(client, settings)
            steps.append(
                SetupStep(
                    "image",
                    "built" if image.built else "present",
                    f"{image.tag} {image.size_bytes // 1_000_000} MB",
                )
            )
        else:
            steps.append(SetupStep("image", "skipped", settings.image))
    finally:
        client.close()

    remote_engine: RemoteEngine | None = None
    if access is not None:
        name, address, port = access
        remote_engine, step = setup_remote_engine(settings, name, address, port=port)
        steps.append(step)

    result = NodeSetup(
        parent=parent_name,
        steps=steps,
        seconds=time.monotonic() - started,
        remote=remote_engine,
    )
    log.info(
        "node set up in %.1f s: %s",
        result.seconds,
        ", ".join(f"{step.name} {step.outcome}" for step in steps),
    )
    return result


def setup_remote_engine(
    settings: Settings,
    name: str,
    address: IPv4Address,
    *,
    port: int = TLS_PORT,
    daemon_config: Path = DAEMON_CONFIG,
) -> tuple[RemoteEngine, SetupStep]:
    """Open this node's engine to the server: TLS on ``tcp://ADDRESS:PORT``.

    Makes (or keeps) the CA, the engine's certificate for ``address`` and
    ``name``, and the server's client certificate under
    ``tls_dir``; writes the TLS keys and the hosts (the local socket and the
    TLS port) into dockerd's ``daemon.json``; restarts dockerd when that
    changed or the engine does not answer over TLS yet. Checks at the end
    that the engine answers the client certificate. Raises HostError
    (systemd, a dockerd with flags of its own, files that cannot be
    written) and EngineUnavailable.
    """
    tls_dir = settings.tls_dir or settings.state_dir / "tls"
    ca = ensure_ca(tls_dir)
    server = ensure_server_files(ca, tls_dir, name, [address])
    client = ensure_client_files(ca, tls_dir)
    url = f"tcp://{address}:{port}"
    hosts = [settings.engine_url, url]

    config = tls_daemon_config(server, hosts)
    if not _answers_with(url, client) or _differs(config, daemon_config):
        # Refuse before the file changes if the restart cannot happen.
        check_restartable()
        update_daemon_config(config, daemon_config)
        restart_dockerd(settings)
        outcome: Outcome = "started"
    else:
        outcome = "present"
    try:
        connect(url, tls=client, timeout=10).close()
    except EngineUnavailable as error:
        raise EngineUnavailable(
            f"the engine does not answer over TLS at {url} after the restart: "
            f"{error.message}",
            hint=f"see {settings.log_dir / 'dockerd.log'}",
            url=url,
        ) from error
    engine = RemoteEngine(name=name, url=url, client=client, server=server)
    step = SetupStep("remote", outcome, f"{url}, TLS with client certificates")
    return engine, step


def _resolve_remote(
    settings: Settings, access: RemoteAccess, routes: Sequence[dict[str, Any]]
) -> tuple[str, IPv4Address, int]:
    """``access``'s name, address and port, filled in and checked.

    The address must be one of this host's own; by default the first of the
    uplink's. InvalidInput for an engine URL that is not the local socket,
    NotFound for an address the host does not have.
    """
    if not settings.engine_url.startswith("unix://"):
        raise InvalidInput(
            f"--remote opens the local engine, but engine_url is {settings.engine_url}",
            hint="run it on the node itself, with engine_url its unix socket",
            field="engine_url",
        )
    addresses = read_addresses()
    address = access.address
    if address is None:
        uplinks = sorted(default_route_devices(routes))
        found = [item.ip for name in uplinks for item in addresses.get(name, [])]
        if not found:
            raise NotFound(
                "this host has no IPv4 address on an uplink to listen on",
                hint="give the address the server reaches this node at: --address A",
                field="address",
            )
        address = found[0]
    elif all(address != item.ip for items in addresses.values() for item in items):
        raise NotFound(
            f"{address} is not an address of this host",
            hint="give one of this node's own addresses (ip -br addr lists them)",
            field="address",
            address=str(address),
        )
    return access.name or socket.gethostname(), address, access.port


def _answers_with(url: str, client: TlsFiles) -> bool:
    try:
        connect(url, tls=client, timeout=5).close()
    except EngineUnavailable:
        return False
    return True


def _differs(config: dict[str, Any], path: Path) -> bool:
    current = read_daemon_config(path)
    return any(current.get(key) != value for key, value in config.items())
