"""``dockbed devlab up|down|status``: simulated nodes on this machine.

Like ``node setup``, these act on the local machine, not through the server;
the server finds the nodes in the record ``devlab up`` writes. Mounted in
``dockbed.cli.main`` with::

    app.add_typer(devlab_app, name="devlab")
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dockbed.cli.output import console, fail
from dockbed.config import get_settings
from dockbed.devlab.nodes import (
    DevlabUp,
    NodeStatus,
    devlab_down,
    devlab_status,
    devlab_up,
)
from dockbed.errors import DockbedError

devlab_app = typer.Typer(
    help="Simulated testbed nodes on this machine, for development and tests.",
    no_args_is_help=True,
)


@devlab_app.callback()
def devlab_group() -> None:
    """Simulated testbed nodes on this machine, for development and tests."""


@devlab_app.command("up")
def up(
    nodes: Annotated[
        int | None,
        typer.Option("--nodes", "-n", help="how many; default devlab.nodes (3)"),
    ] = None,
    agents: Annotated[bool, typer.Option(help="start an agent for each node")] = True,
) -> None:
    """Bring up simulated nodes, each its own dockerd in a namespace; idempotent."""
    settings = get_settings()
    try:
        with console.status("bringing up the simulated nodes..."):
            result = devlab_up(settings, nodes, agents=agents)
    except DockbedError as error:
        raise fail(error) from error
    _show_up(result)


def _show_up(result: DevlabUp) -> None:
    _show_nodes(result.nodes)
    devlab = result.plan.settings
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(
        f"{len(result.nodes)} nodes up in {result.seconds:.1f} s; lab segment "
        f"{devlab.lab.subnet} (the host is {devlab.lab.node_address} on "
        f"{devlab.host_interface}), control {devlab.control_subnet}",
        highlight=False,
    )
    if result.client is not None:
        console.print(
            f"client certificate: {result.client.directory}; record: "
            f"{result.plan.record_path}",
            highlight=False,
        )


@devlab_app.command("status")
def status() -> None:
    """The recorded simulated nodes and whether their engines answer."""
    settings = get_settings()
    try:
        nodes = devlab_status(settings)
    except DockbedError as error:
        raise fail(error) from error
    if not nodes:
        console.print("no simulated nodes (dockbed devlab up makes them)")
        return
    _show_nodes(nodes)


def _show_nodes(nodes: list[NodeStatus]) -> None:
    table = Table(header_style="bold", show_edge=False)
    for column in ("NODE", "ENGINE", "DOCKERD", "ANSWERS", "AGENT", "UP", "IMAGE"):
        table.add_column(column)
    for node in nodes:
        table.add_row(
            node.name,
            node.engine_url,
            str(node.dockerd_pid or "-"),
            "[green]yes[/]" if node.answers else "[red]no[/]",
            str(node.agent_pid or "-"),
            node.outcome,
            f"loaded in {node.image_seconds:.1f} s"
            if node.image_seconds is not None
            else "",
        )
    console.print(table)


@devlab_app.command("down")
def down() -> None:
    """Remove every simulated node: engines, namespaces, links and data."""
    settings = get_settings()
    try:
        removed = devlab_down(settings)
    except DockbedError as error:
        raise fail(error) from error
    console.print(
        f"removed {', '.join(removed)}" if removed else "nothing to remove",
        highlight=False,
    )
