"""How the CLI shows results and errors, and its exit codes: one place each."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dockbed import errors

#: Piped output keeps whole rows on one line; scripts should use --json anyway.
console = Console() if sys.stdout.isatty() else Console(width=200)
error_console = Console(stderr=True, soft_wrap=True)

#: Exit codes by error class; the first class in an error's MRO found wins.
EXIT_CODES: dict[type[errors.DockbedError], int] = {
    errors.InvalidInput: 2,
    errors.NotFound: 3,
    errors.Conflict: 4,
    errors.BatchFailed: 4,
    errors.PermissionDenied: 5,
    errors.AuthenticationRequired: 5,
    errors.EngineError: 6,
    errors.BrokerError: 6,
    errors.UnsafeNetwork: 2,
    errors.HostError: 7,
}


def exit_code(error: errors.DockbedError) -> int:
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


def fail(error: errors.DockbedError) -> typer.Exit:
    """Print ``error: …`` (and the hint) to stderr; the Exit to raise."""
    error_console.print(f"[bold red]error:[/] {error.message}", highlight=False)
    failed = error.details.get("failed")
    if isinstance(failed, Mapping):
        for name, why in failed.items():
            error_console.print(f"  {name}: {why}", highlight=False)
    if error.hint:
        error_console.print(f"[yellow]hint:[/] {error.hint}", highlight=False)
    return typer.Exit(exit_code(error))


def print_json(document: Any) -> None:
    """One JSON document on stdout, for scripts."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")


def containers_table(
    rows: Iterable[Mapping[str, Any]], *, title: str | None = None
) -> None:
    table = Table(title=title, header_style="bold")
    for column in (
        "NAME",
        "ID",
        "NODE",
        "IMAGE",
        "STATE",
        "ADDRESSES",
        "BATCH",
        "OWNER",
        "CREATED",
    ):
        table.add_column(column, no_wrap=column in {"NAME", "ID", "ADDRESSES"})
    for row in rows:
        addresses = ", ".join(
            f"{net}={ip}" for net, ip in sorted(row["addresses"].items())
        )
        state = row["state"]
        colour = "green" if state == "running" else "yellow"
        table.add_row(
            row["name"],
            row["id"][:12],
            row["node"],
            row["image"],
            f"[{colour}]{state}[/]",
            addresses,
            row.get("batch") or "",
            row.get("owner") or "",
            datetime.fromtimestamp(row["created"]).strftime("%m-%d %H:%M"),
        )
    console.print(table)
