"""``dockbed node setup`` and ``dockbed image build``: preparing this machine.

These are the admin commands that act on the local machine instead of going
through the server (the server cannot make interfaces or start an engine on
the host it runs on). Mounted in ``dockbed.cli.main`` with::

    app.add_typer(node_app, name="node")
    app.add_typer(image_app, name="image")
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Annotated

import typer
from rich.table import Table

from dockbed.cli.output import console, fail
from dockbed.config import get_settings
from dockbed.engine.client import connect, settings_tls
from dockbed.engine.image import ImageBuild, build_image
from dockbed.engine.node import NodeSetup, RemoteAccess, RemoteEngine, setup_node
from dockbed.errors import DockbedError, InvalidInput

node_app = typer.Typer(
    help="Prepare this machine as a dockbed node.", no_args_is_help=True
)
image_app = typer.Typer(help="The lab containers' base image.", no_args_is_help=True)


# A callback keeps each app a group even with one command, so ``setup`` and
# ``build`` stay sub-commands whether the app is mounted or run on its own.
@node_app.callback()
def node_group() -> None:
    """Prepare this machine as a dockbed node."""


@image_app.callback()
def image_group() -> None:
    """The lab containers' base image."""


_OUTCOME_STYLE = {
    "present": "dim",
    "skipped": "dim",
    "created": "green",
    "started": "green",
    "installed": "green",
    "built": "green",
}


@node_app.command("setup")
def node_setup(
    parent: Annotated[
        str | None,
        typer.Option(
            "--parent",
            help="the interface wired to the lab network; default a stand-in veth pair",
        ),
    ] = None,
    force_parent: Annotated[
        bool,
        typer.Option(
            "--force-parent",
            help="allow the interface of the default route as parent",
        ),
    ] = False,
    no_image: Annotated[
        bool, typer.Option("--no-image", help="leave the image build out")
    ] = False,
    remote: Annotated[
        bool,
        typer.Option(
            "--remote",
            help="open the engine to the server: TLS with client certificates "
            "on tcp port 2376 (restarts dockerd)",
        ),
    ] = False,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="with --remote: the address the server reaches this node at; "
            "default the uplink's",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="with --remote: the node's name; default the host name"
        ),
    ] = None,
) -> None:
    """Engine, lab cable, shim, lab network and image; safe to run again."""
    settings = get_settings()
    try:
        access = _remote_access(remote, address, name)
        with console.status("setting up this node..."):
            result = setup_node(
                settings,
                parent=parent,
                force=force_parent,
                build=not no_image,
                remote=access,
            )
    except DockbedError as error:
        raise fail(error) from error
    _show_setup(result)
    if result.remote is not None:
        _show_remote(result.remote)


def _remote_access(
    remote: bool, address: str | None, name: str | None
) -> RemoteAccess | None:
    if not remote:
        if address is not None or name is not None:
            raise InvalidInput(
                "--address and --name only apply with --remote", field="remote"
            )
        return None
    try:
        parsed = IPv4Address(address) if address is not None else None
    except ValueError as error:
        raise InvalidInput(
            f"--address {address!r} is not an IPv4 address", field="address"
        ) from error
    return RemoteAccess(address=parsed, name=name)


def _show_remote(engine: RemoteEngine) -> None:
    client = engine.client
    console.print(
        f"\nthe engine answers at [bold]{engine.url}[/] to clients with a "
        "certificate of its CA. Copy the client files to the server:",
        highlight=False,
    )
    for path in (client.ca, client.cert, client.key):
        console.print(f"  {path}", highlight=False)
    console.print(
        "then register the node there (as an admin):\n"
        f"  scp -r root@{engine.name}:{client.directory} ./{engine.name}-tls\n"
        f"  dockbed node add {engine.name} --engine {engine.url} "
        f"--tls-dir ./{engine.name}-tls",
        highlight=False,
    )


def _show_setup(result: NodeSetup) -> None:
    table = Table(header_style="bold", show_edge=False)
    table.add_column("STEP")
    table.add_column("OUTCOME")
    table.add_column("DETAIL")
    for step in result.steps:
        style = _OUTCOME_STYLE.get(step.outcome, "")
        table.add_row(step.name, f"[{style}]{step.outcome}[/]", step.detail)
    console.print(table)
    verdict = "set up" if result.changed else "already set up"
    console.print(f"node {verdict} in {result.seconds:.1f} s", highlight=False)


@image_app.command("build")
def image_build(
    suite: Annotated[
        str | None,
        typer.Option("--suite", help="Debian suite; default image_suite (bookworm)"),
    ] = None,
    tag: Annotated[
        str | None,
        typer.Option("--tag", help="image tag; default the configured image"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="rebuild even if the tag exists")
    ] = False,
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh",
            help="bootstrap fresh packages instead of the cached root file system",
        ),
    ] = False,
) -> None:
    """Build the lab image from Debian packages with mmdebstrap."""
    settings = get_settings()
    try:
        client = connect(settings.engine_url, tls=settings_tls(settings))
        try:
            with console.status("building the image..."):
                result = build_image(
                    client,
                    settings,
                    suite=suite,
                    tag=tag,
                    force=force or refresh,
                    refresh_rootfs=refresh,
                )
        finally:
            client.close()
    except DockbedError as error:
        raise fail(error) from error
    _show_build(result)


def _show_build(result: ImageBuild) -> None:
    size = f"{result.size_bytes / 1_000_000:.0f} MB"
    if not result.built:
        console.print(
            f"{result.tag} exists ({size}); --force rebuilds it", highlight=False
        )
        return
    source = "the cached root file system" if result.rootfs_cached else "Debian"
    console.print(
        f"built {result.tag} ({size}, {result.image_id[7:19]}) from {source} in "
        f"{result.seconds:.1f} s",
        highlight=False,
    )
