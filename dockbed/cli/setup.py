"""``dockbed node setup`` and ``dockbed image build``: preparing this machine.

These are the admin commands that act on the local machine instead of going
through the server (the server cannot make interfaces or start an engine on
the host it runs on). Mounted in ``dockbed.cli.main`` with::

    app.add_typer(node_app, name="node")
    app.add_typer(image_app, name="image")
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dockbed.cli.output import console, fail
from dockbed.config import get_settings
from dockbed.engine.client import connect
from dockbed.engine.image import ImageBuild, build_image
from dockbed.engine.node import NodeSetup, setup_node
from dockbed.errors import DockbedError

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
) -> None:
    """Engine, lab cable, shim, lab network and image; safe to run again."""
    settings = get_settings()
    try:
        with console.status("setting up this node..."):
            result = setup_node(
                settings, parent=parent, force=force_parent, build=not no_image
            )
    except DockbedError as error:
        raise fail(error) from error
    _show_setup(result)


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
        client = connect(settings.engine_url)
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
