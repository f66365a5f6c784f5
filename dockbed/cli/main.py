"""``dockbed``: the command line, a client of the server's REST API.

Each command maps to one API call (a batch to a call and a poll of its job).
Set-up commands that prepare this machine (``node setup``, ``image build``,
``up``, ``down``) act locally; see ``dockbed.cli.setup``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from dockbed.cli import accounts, nodes
from dockbed.cli.client import ApiClient, call, default_client
from dockbed.cli.devlab import devlab_app
from dockbed.cli.output import console, containers_table, fail, print_json
from dockbed.cli.services import agent_command, broker_app
from dockbed.cli.setup import image_app, node_app
from dockbed.cli.stats import stats_command
from dockbed.cli.up import down, up
from dockbed.config import get_settings
from dockbed.errors import InvalidInput, error_from_dict

app = typer.Typer(
    name="dockbed",
    help="Lightweight ssh-able containers on the nodes of a network testbed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
nic_app = typer.Typer(help="A container's second interfaces.", no_args_is_help=True)
net_app = typer.Typer(
    help="Experiment networks for second interfaces.", no_args_is_help=True
)
nodes.register(node_app)
app.add_typer(node_app, name="node")
app.add_typer(devlab_app, name="devlab")
app.add_typer(broker_app, name="broker")
app.command("agent")(agent_command)
app.command("up")(up)
app.command("down")(down)
app.command("stats")(stats_command)
app.add_typer(image_app, name="image")
app.add_typer(nic_app, name="nic")
app.add_typer(net_app, name="net")

T = TypeVar("T")

NodeOption = Annotated[
    str | None,
    typer.Option("--node", "-n", help="node to act on; default the local one"),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="one JSON document, for scripts")
]
KeyOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--ssh-key",
        help="public key allowed to log in as root (repeatable); "
        "default your own ~/.ssh/id_*.pub, else the keys saved on the server",
        exists=True,
        dir_okay=False,
    ),
]
CpusOption = Annotated[float | None, typer.Option(help="CPU limit, e.g. 0.5")]
MemoryOption = Annotated[str | None, typer.Option(help="memory limit, e.g. 512m")]
PidsOption = Annotated[int | None, typer.Option(help="process-count limit")]
ImageOption = Annotated[str | None, typer.Option(help="image; default the base image")]


def _client() -> ApiClient:
    return default_client()


def _call(action: Callable[[], T]) -> T:
    return call(action)


def _ssh_keys(paths: list[Path] | None, *, required: bool = True) -> list[str]:
    """The keys to put into new containers: given files, or the caller's own."""
    if paths:
        keys = [path.read_text().strip() for path in paths]
        for path, key in zip(paths, keys, strict=True):
            # Checked here, not only by the server, so a private key given by
            # mistake never leaves this machine.
            if "PRIVATE KEY" in key:
                raise fail(
                    InvalidInput(
                        f"{path} is a private key; it stays on this machine",
                        hint=f"pass the public half, {path}.pub",
                        field="ssh_keys",
                    )
                )
        return keys
    own = sorted((Path.home() / ".ssh").glob("id_*.pub"))
    if not own and required:
        raise fail(
            InvalidInput(
                "no ssh public key found in ~/.ssh, so nobody could log in",
                hint="pass --ssh-key FILE, or make one with 'ssh-keygen -t ed25519'",
                field="ssh_keys",
            )
        )
    return [path.read_text().strip() for path in own]


def _limits(cpus: float | None, memory: str | None, pids: int | None) -> dict[str, Any]:
    return {"cpus": cpus, "memory": memory, "pids": pids}


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="container name, also its hostname")],
    ip: Annotated[
        str | None, typer.Option(help="lab address; default the next free")
    ] = None,
    image: ImageOption = None,
    node: NodeOption = None,
    cpus: CpusOption = None,
    memory: MemoryOption = None,
    pids: PidsOption = None,
    ssh_key: KeyOption = None,
    wait: Annotated[bool, typer.Option(help="return once sshd accepts logins")] = True,
    json_output: JsonOption = False,
) -> None:
    """Create and start one container on the lab network."""
    body = {
        "name": name,
        "ip": ip,
        "image": image,
        "node": node,
        "ssh_keys": _ssh_keys(ssh_key, required=False),
        "wait_ready": wait,
        **_limits(cpus, memory, pids),
    }
    created = _call(lambda: _client().post("/containers", json=body))
    if json_output:
        print_json(created)
    else:
        containers_table([created])


@app.command()
def batch(
    prefix: Annotated[str, typer.Argument(help="names become PREFIX-1 … PREFIX-N")],
    count: Annotated[int, typer.Option("--count", "-c", help="how many containers")],
    base_ip: Annotated[
        str, typer.Option(help="address of PREFIX-1, or 'auto' for the first free run")
    ] = "auto",
    image: ImageOption = None,
    node: NodeOption = None,
    nodes: Annotated[
        str | None,
        typer.Option(
            "--nodes",
            help="spread the batch over these nodes in turn, e.g. n1,n2,n3 "
            "(one lab segment; addresses still ascend across the batch)",
        ),
    ] = None,
    cpus: CpusOption = None,
    memory: MemoryOption = None,
    pids: PidsOption = None,
    ssh_key: KeyOption = None,
    wait: Annotated[bool, typer.Option(help="return once sshd accepts logins")] = True,
    dry_run: Annotated[
        bool, typer.Option(help="show names and addresses only")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Create and start a batch on consecutive addresses: all of it or none."""
    body = {
        "prefix": prefix,
        "count": count,
        "base_ip": base_ip,
        "image": image,
        "node": node,
        "nodes": [name.strip() for name in (nodes or "").split(",") if name.strip()],
        "ssh_keys": _ssh_keys(ssh_key, required=False),
        "wait_ready": wait,
        **_limits(cpus, memory, pids),
    }
    client = _client()
    if dry_run:
        plan = _call(lambda: client.post("/batches/preview", json=body))
        if json_output:
            print_json(plan)
        else:
            for item in plan["containers"]:
                where = f"\t{item['node']}" if len(plan.get("nodes") or []) > 1 else ""
                console.print(f"{item['name']}\t{item['ip']}{where}", highlight=False)
        return
    job = _call(lambda: client.post("/batches", json=body))
    job = _follow(client, job, quiet=json_output)
    if job["state"] == "failed":
        raise fail(error_from_dict(job["error"]))
    if json_output:
        print_json(job["containers"])
    else:
        containers_table(job["containers"], title=f"batch {prefix}")


def _follow(client: ApiClient, job: dict[str, Any], *, quiet: bool) -> dict[str, Any]:
    """Poll a batch's job until it ends, with a progress bar."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True, disable=quiet) as progress:
        task = progress.add_task(f"creating {job['total']}", total=job["total"])
        path = f"/jobs/{job['id']}"
        while job["state"] == "running":
            time.sleep(0.25)
            job = _call(lambda: client.get(path))
            progress.update(task, completed=job["done"])
    return job


@app.command("ls")
def list_containers(
    all: Annotated[
        bool, typer.Option("--all", "-a", help="include stopped ones")
    ] = False,
    node: Annotated[
        str | None, typer.Option("--node", "-n", help="one node only")
    ] = None,
    batch: Annotated[str | None, typer.Option(help="one batch only")] = None,
    json_output: JsonOption = False,
) -> None:
    """List your containers (all of them, for an admin)."""
    params = {
        "all": all,
        **({"node": node} if node else {}),
        **({"batch": batch} if batch else {}),
    }
    rows = _call(lambda: _client().get("/containers", params=params))
    if json_output:
        print_json(rows)
    else:
        containers_table(rows)


def _act(
    action: str, names: list[str] | None, batch: str | None, node: str | None
) -> None:
    if not names and not batch:
        raise fail(InvalidInput("name at least one container, or --batch PREFIX"))
    body = {"names": names or [], "batch": batch, "node": node}
    result = _call(lambda: _client().post(f"/actions/{action}", json=body))
    for name in result["done"]:
        console.print(f"{action} {name}: done", highlight=False)
    for name, why in result["failed"].items():
        console.print(f"[red]{action} {name}: {why}[/]", highlight=False)
    if result["failed"]:
        raise typer.Exit(1)


NamesArgument = Annotated[list[str] | None, typer.Argument(help="container names")]
BatchOption = Annotated[str | None, typer.Option(help="every member of this batch")]


@app.command()
def start(
    names: NamesArgument = None, batch: BatchOption = None, node: NodeOption = None
) -> None:
    """Start stopped containers; they keep their addresses."""
    _act("start", names, batch, node)


@app.command()
def stop(
    names: NamesArgument = None, batch: BatchOption = None, node: NodeOption = None
) -> None:
    """Stop running containers; their addresses stay theirs."""
    _act("stop", names, batch, node)


@app.command()
def rm(
    names: NamesArgument = None, batch: BatchOption = None, node: NodeOption = None
) -> None:
    """Remove containers, running or not, and free their addresses."""
    _act("remove", names, batch, node)


NetworkOption = Annotated[str, typer.Option("--network", help="Docker network")]


@nic_app.command("add")
def nic_add(
    name: str,
    network: NetworkOption,
    ip: Annotated[
        str | None, typer.Option(help="static address; default dynamic")
    ] = None,
    node: NodeOption = None,
) -> None:
    """Attach a container to another network (a new interface inside)."""
    body = {"network": network, "ip": ip}
    row = _call(
        lambda: _client().post(
            f"/containers/{name}/networks", json=body, params=_node(node)
        )
    )
    containers_table([row])


@nic_app.command("set")
def nic_set(
    name: str,
    network: NetworkOption,
    ip: Annotated[str, typer.Option(help="the new address")],
    node: NodeOption = None,
) -> None:
    """Give a container's interface on a network another address."""
    path = f"/containers/{name}/networks/{network}"
    row = _call(lambda: _client().put(path, json={"ip": ip}, params=_node(node)))
    containers_table([row])


@nic_app.command("rm")
def nic_rm(name: str, network: NetworkOption, node: NodeOption = None) -> None:
    """Detach a container from a network."""
    path = f"/containers/{name}/networks/{network}"
    row = _call(lambda: _client().delete(path, params=_node(node)))
    containers_table([row])


def _node(node: str | None) -> dict[str, str]:
    return {"node": node} if node else {}


@app.command()
def server(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
) -> None:
    """Run the dockbed server (API and pages) in the foreground."""
    import uvicorn

    from dockbed.server.app import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.server_host,
        port=port or settings.server_port,
        log_level="info",
    )


@net_app.command("ls")
def net_ls(node: NodeOption = None, json_output: JsonOption = False) -> None:
    """List the node's networks; the lab network is marked."""
    rows = _call(lambda: _client().get("/networks", params=_node(node)))
    if json_output:
        print_json(rows)
        return
    table = Table(header_style="bold")
    for column in ("NAME", "DRIVER", "SUBNET", "GATEWAY", "PARENT", "CONTAINERS"):
        table.add_column(column)
    for row in rows:
        name = f"{row['name']} [cyan](lab)[/]" if row["is_lab"] else row["name"]
        table.add_row(
            name,
            row["driver"],
            row["subnet"] or "",
            row["gateway"] or "",
            row["parent"] or "",
            str(len(row["containers"])),
        )
    console.print(table)


@net_app.command("create")
def net_create(
    name: str,
    subnet: Annotated[str, typer.Option(help="IPv4 subnet, e.g. 172.30.5.0/24")],
    driver: Annotated[str, typer.Option(help="bridge or macvlan")] = "bridge",
    parent: Annotated[
        str | None, typer.Option(help="host interface, for macvlan only")
    ] = None,
    gateway: Annotated[str | None, typer.Option(help="gateway address")] = None,
    node: NodeOption = None,
) -> None:
    """Create an experiment network for second interfaces."""
    body = {
        "name": name,
        "subnet": subnet,
        "driver": driver,
        "parent": parent,
        "gateway": gateway,
        "node": node,
    }
    row = _call(lambda: _client().post("/networks", json=body))
    console.print(f"created {row['name']} ({row['driver']}, {row['subnet']})")


@net_app.command("rm")
def net_rm(name: str, node: NodeOption = None) -> None:
    """Remove an experiment network that has no containers attached."""
    _call(lambda: _client().delete(f"/networks/{name}", params=_node(node)))
    console.print(f"removed {name}")


# Accounts last, so that --help lists the everyday commands first.
accounts.register(app)
