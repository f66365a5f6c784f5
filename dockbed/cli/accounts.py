"""Accounts on the command line: the first admin, users, logging in and out.

``dockbed admin init`` is local: it opens the server's store directly (so it
runs on the server's machine, as whoever may read ``state_dir``) and works
before anyone can log in. Everything else is a client of the REST API.
"""

from __future__ import annotations

import functools
import getpass
import socket
import sys
from typing import Annotated

import typer
from rich.table import Table

from dockbed.cli.client import (
    ApiClient,
    Login,
    call,
    default_client,
    read_login,
    remove_login,
    write_login,
)
from dockbed.cli.output import console, error_console, fail, print_json
from dockbed.config import get_settings
from dockbed.errors import DockbedError, InvalidInput

admin_app = typer.Typer(help="Set-up of the server's accounts.", no_args_is_help=True)
user_app = typer.Typer(help="Users of this server (admins only).", no_args_is_help=True)

#: The user ``dockbed admin init`` makes.
FIRST_ADMIN = "admin"

PasswordStdinOption = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="read the password from standard input, not a prompt"
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="one JSON document, for scripts")
]


def _read_password(from_stdin: bool, prompt: str = "Password") -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"{prompt}: ")
    if not password:
        raise fail(InvalidInput("no password given", field="password"))
    return password


@admin_app.command("init")
def admin_init(
    reset: Annotated[
        bool, typer.Option("--reset", help="give the admin a new password")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Create the first admin with a random password, printed this once.

    Safe to run again: if the admin exists it changes nothing and prints no
    secret. ``--reset`` sets a new password (and makes the user an enabled
    admin again), for when it is lost.
    """
    from dockbed.server.store import Store, generate_password

    store = call(lambda: Store.from_settings(get_settings()))
    try:
        existing = store.user(FIRST_ADMIN)
        password: str | None = None
        if existing is None:
            password = generate_password()
            call(lambda: store.add_user(FIRST_ADMIN, password or "", role="admin"))
        elif reset:
            password = generate_password()
            call(lambda: store.set_password(FIRST_ADMIN, password or ""))
            call(lambda: store.update_user(FIRST_ADMIN, role="admin", disabled=False))
    finally:
        store.close()

    if json_output:
        print_json(
            {"user": FIRST_ADMIN, "created": existing is None, "password": password}
        )
    elif password is None:
        console.print(
            f"user {FIRST_ADMIN} exists; nothing changed "
            "(--reset gives it a new password)",
            highlight=False,
        )
    else:
        verb = "created" if existing is None else "given a new password"
        console.print(f"user {FIRST_ADMIN} {verb}", highlight=False)
        console.print(f"password: {password}", highlight=False, soft_wrap=True)
        console.print(
            "[dim]shown this once; log in with 'dockbed login --user admin' "
            "or on the page /login[/]"
        )


@user_app.command("add")
def user_add(
    name: str,
    admin: Annotated[
        bool, typer.Option("--admin", help="an admin, not a user")
    ] = False,
    password_stdin: PasswordStdinOption = False,
    json_output: JsonOption = False,
) -> None:
    """Add a user; without --password-stdin a password is generated and printed."""
    body: dict[str, str] = {"name": name, "role": "admin" if admin else "user"}
    if password_stdin:
        body["password"] = _read_password(True)
    created = call(lambda: default_client().post("/users", json=body))
    if json_output:
        print_json(created)
        return
    console.print(f"user {created['name']} added ({created['role']})", highlight=False)
    if created.get("password"):
        console.print(f"password: {created['password']}", highlight=False)
        console.print("[dim]shown this once: hand it over now[/]")


@user_app.command("ls")
def user_ls(json_output: JsonOption = False) -> None:
    """List the users."""
    rows = call(lambda: default_client().get("/users"))
    if json_output:
        print_json(rows)
        return
    table = Table(header_style="bold")
    for column in ("NAME", "ROLE", "STATUS", "CREATED"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"],
            row["role"],
            "[red]disabled[/]" if row["disabled"] else "active",
            row["created"][:16].replace("T", " "),
        )
    console.print(table)


@user_app.command("rm")
def user_rm(names: list[str]) -> None:
    """Remove users and their tokens; their containers stay."""
    client = default_client()
    for name in names:
        call(functools.partial(client.delete, f"/users/{name}"))
        console.print(f"removed {name}", highlight=False)


def login(
    server: Annotated[
        str | None, typer.Option(help="server URL; default the configured one")
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="user name; default your login name")
    ] = None,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Log in to a server and keep its API token for the next commands."""
    url = (server or get_settings().server_url).rstrip("/")
    name = user or getpass.getuser()
    password = _read_password(password_stdin, prompt=f"Password for {name} at {url}")
    label = f"cli {getpass.getuser()}@{socket.gethostname()}"
    body = {"name": name, "password": password, "label": label}
    issued = call(lambda: ApiClient(url).post("/tokens", json=body))
    write_login(Login(url=url, token=issued["token"]))
    console.print(
        f"logged in to {url} as {issued['user']['name']} ({issued['user']['role']})",
        highlight=False,
    )


def logout() -> None:
    """Revoke the saved token on its server and forget it here."""
    saved = read_login()
    if saved is None:
        console.print("not logged in")
        return
    try:
        ApiClient(saved.url, saved.token).delete("/tokens/current")
    except DockbedError as error:
        error_console.print(
            f"[yellow]warning:[/] the server did not revoke the token: {error}",
            highlight=False,
        )
    remove_login()
    console.print(f"logged out of {saved.url}", highlight=False)


def whoami(json_output: JsonOption = False) -> None:
    """Who the server takes you for."""
    client = default_client()
    me = call(lambda: client.get("/users/me"))
    if json_output:
        print_json({**me, "server": client.base_url})
        return
    cap = me["max_running"]
    limit = "no cap" if cap is None else f"up to {cap} running containers"
    console.print(
        f"{me['name']} ({me['role']}) at {client.base_url}; {limit}", highlight=False
    )


def register(app: typer.Typer) -> None:
    """Add these commands to the ``dockbed`` app."""
    app.add_typer(admin_app, name="admin")
    app.add_typer(user_app, name="user")
    app.command()(login)
    app.command()(logout)
    app.command()(whoami)
