"""Preparing this machine as a dockbed node, in one idempotent step.

``dockbed node setup`` runs, in order and each only as far as needed::

    ensure_engine      docker.io installed, dockerd answering
    ensure_cable       the lab parent: a stand-in veth pair, or the given NIC
    ensure_shim        the host's own address on the lab (macvlan shim)
    ensure_lab_network the macvlan network Docker attaches containers to
    build_image        the lab base image, skipped when it exists

Everything that can refuse (an unsafe subnet or parent, a mismatching lab
network) is checked before the first interface is made, so a refused setup
leaves the host as it found it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

from dockbed.config import Settings
from dockbed.devlab.cable import (
    check_cable,
    check_shim,
    ensure_cable,
    ensure_shim,
    read_link,
    read_routes,
)
from dockbed.engine.client import connect
from dockbed.engine.daemon import ensure_engine
from dockbed.engine.image import build_image
from dockbed.engine.network import check_lab_network, ensure_lab_network

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


@dataclass
class NodeSetup:
    """What ``setup_node`` found and did, step by step."""

    parent: str
    steps: list[SetupStep] = field(default_factory=list)
    seconds: float = 0.0

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
) -> NodeSetup:
    """Make this machine a node: engine, lab cable, shim, lab network, image.

    ``parent`` (the interface wired to the lab) overrides ``lab.parent``;
    ``force`` allows it to be the default-route device (``lab.force_parent``).
    ``build=False`` leaves the image out. Safe to run again: what is in place
    is left alone. Raises UnsafeNetwork, Conflict, HostError, EngineError and
    their kin from the steps, before the first change where they can be known.
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

    engine = ensure_engine(settings)
    steps.append(SetupStep("engine", _ENGINE_OUTCOMES[engine], settings.engine_url))
    client = connect(settings.engine_url)
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

    result = NodeSetup(
        parent=parent_name, steps=steps, seconds=time.monotonic() - started
    )
    log.info(
        "node set up in %.1f s: %s",
        result.seconds,
        ", ".join(f"{step.name} {step.outcome}" for step in steps),
    )
    return result
