"""``dockbed node ls|add|rm``: the server's registry of nodes.

Unlike ``node setup`` (which prepares the machine it runs on), these are
clients of the REST API: they show and change the nodes the server drives.
They join the ``node`` group of ``dockbed.cli.setup``; ``dockbed.cli.main``
adds them with::

    nodes.register(node_app)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dockbed.cli.client import call, default_client
from dockbed.cli.output import console, fail, print_json
from dockbed.engine.tls import TlsFiles
from dockbed.errors import DockbedError

JsonOption = Annotated[
    bool, typer.Option("--json", help="one JSON document, for scripts")
]


def node_ls(json_output: JsonOption = False) -> None:
    """The nodes the server drives, with their health, read now."""
    rows: list[dict[str, Any]] = call(lambda: default_client().get("/nodes"))
    if json_output:
        print_json(rows)
        return
    table = Table(header_style="bold")
    for column in (
        "NODE",
        "STATUS",
        "ENGINE",
        "VERSION",
        "CONTAINERS",
        "RUNNING",
        "SEGMENT",
        "FREE",
        "FROM",
    ):
        table.add_column(column)
    for row in rows:
        status = "[green]up[/]" if row["reachable"] else "[red]unknown[/]"
        table.add_row(
            row["name"],
            status,
            row["engine_url"],
            row["engine_version"] or "",
            _count(row["containers"]),
            _count(row["running"]),
            row["segment"],
            _count(row["free_addresses"]),
            row["source"],
        )
    console.print(table)
    for row in rows:
        if row["error"]:
            console.print(f"[red]{row['name']}[/]: {row['error']}", highlight=False)


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def node_add(
    name: Annotated[str, typer.Argument(help="the node's name on this server")],
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="its engine: tcp://ADDRESS:2376 (with --tls-dir), ssh://USER@HOST "
            "or unix:///PATH",
        ),
    ],
    tls_dir: Annotated[
        Path | None,
        typer.Option(
            "--tls-dir",
            help="the ca.pem, cert.pem and key.pem that 'dockbed node setup "
            "--remote' made on the node; the server keeps a copy",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    network: Annotated[str, typer.Option(help="the node's lab network")] = "lab",
    pool_first: Annotated[
        str | None, typer.Option(help="first pool address; default the server's")
    ] = None,
    pool_last: Annotated[
        str | None, typer.Option(help="last pool address; default the server's")
    ] = None,
    node_address: Annotated[
        str | None,
        typer.Option(help="the node's own lab address; default from its network"),
    ] = None,
) -> None:
    """Register a node with the server (admins only); its engine must answer."""
    body: dict[str, Any] = {
        "name": name,
        "engine_url": engine,
        "network": network,
        "pool_first": pool_first,
        "pool_last": pool_last,
        "node_address": node_address,
    }
    if tls_dir is not None:
        try:
            files = TlsFiles(tls_dir).check()
        except DockbedError as error:
            raise fail(error) from error
        body["tls"] = {
            "ca": files.ca.read_text(),
            "cert": files.cert.read_text(),
            "key": files.key.read_text(),
        }
    row = call(lambda: default_client().post("/nodes", json=body))
    state = "up" if row["reachable"] else "unknown"
    console.print(
        f"added node {row['name']} ({state}, {row['engine_url']}, lab "
        f"{row['subnet']}, {_count(row['free_addresses'])} free addresses)",
        highlight=False,
    )


def node_rm(
    name: Annotated[str, typer.Argument(help="a node added with 'dockbed node add'")],
) -> None:
    """Remove a node from the registry (admins only); its containers stay."""
    call(lambda: default_client().delete(f"/nodes/{name}"))
    console.print(f"removed node {name}", highlight=False)


def register(node_app: typer.Typer) -> None:
    """Add ``ls``, ``add`` and ``rm`` to the ``node`` group."""
    node_app.command("ls")(node_ls)
    node_app.command("add")(node_add)
    node_app.command("rm")(node_rm)
