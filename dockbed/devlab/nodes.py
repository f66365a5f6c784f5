"""Simulated testbed nodes on one machine: ``dockbed devlab up`` / ``down``.

Each node is a network namespace (``dbnode1`` …) running a dockerd of its own
(own data root, exec root, pid file and cgroup parent), which answers on the
node's control address over TLS with client certificates, like a real node
after ``dockbed node setup --remote``. The wiring, with the defaults::

    host                          dbnodeN (netns)              dbswitch (netns)
    dbctl0 bridge 10.213.50.1/24
      └ dbnodeN-ctl ── veth ──── ctl0 10.213.50.(10+N)
                                 lab0 (macvlan parent) ── veth ── dbnodeN ┐
                                   └ containers 10.64.100.52-.240          br0
    dbdevlab0 10.64.100.10/24 ───────────────── veth ────────────── host ─┘

The bridge ``br0`` stands for the lab switch. It lives in a namespace of its
own because on the host it would be subject to the host's firewall (Docker
sets ``FORWARD`` to ``DROP`` and bridged frames pass through it when
``br_netfilter`` is loaded); there it is a plain switch and the host's
firewall is left as it was. Through ``dbdevlab0`` the host (and the server
on it) reaches every simulated node's containers; its routes gain exactly
the two subnets, each checked against every route first.

dockerd is started with ``nsenter --net=/run/netns/NAME`` rather than ``ip
netns exec``, which would remount ``/sys`` and hide the cgroup mounts. Its
settings file (``--config-file``) holds the hosts and TLS keys in the very
form ``node setup --remote`` writes into ``/etc/docker/daemon.json``.

What ``up`` made is recorded in ``state_dir/devlab/nodes.json`` (names,
engine URLs, client certificate directory, lab settings), which the server's
node registry reads. ``up`` is idempotent: a node whose engine answers is
left alone, one whose wiring is incomplete is wired afresh, one whose dockerd
is gone is started again. ``down`` removes everything ``up`` made.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

import docker

from dockbed.config import DevlabSettings, LabSettings, Settings
from dockbed.devlab.cable import (
    check_interface_name,
    link_kind,
    read_link,
    read_routes,
    run_ip,
    run_ip_json,
)
from dockbed.engine.client import connect, engine_errors, settings_tls
from dockbed.engine.daemon import read_pid, tls_daemon_config
from dockbed.engine.network import ensure_lab_network
from dockbed.engine.tls import (
    TlsFiles,
    ensure_ca,
    ensure_client_files,
    ensure_server_files,
)
from dockbed.errors import (
    DockbedError,
    EngineUnavailable,
    HostError,
    InvalidCount,
    InvalidName,
    UnsafeNetwork,
)
from dockbed.lab.addresses import AddressPool
from dockbed.lab.routes import check_subnet_is_free
from dockbed.processes import Daemon

log = logging.getLogger(__name__)

#: Names inside the namespaces; they cannot clash with the host's.
CONTROL_LINK = "ctl0"
LAB_LINK = "lab0"
SWITCH_BRIDGE = "br0"
SWITCH_HOST_PORT = "host"

#: Where the exec roots and sockets live: short, since unix socket paths are.
RUN_ROOT = Path("/run/dockbed/devlab")
NETNS_ROOT = Path("/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")

RECORD_VERSION = 1
_POLL_INTERVAL = 0.25
_DOCKERD_STOP_TIMEOUT = 30.0


# The plan: pure, from the settings ---------------------------------------------


@dataclass(frozen=True)
class SimulatedNode:
    """One simulated node: its names, addresses and files."""

    index: int
    name: str
    control_address: IPv4Address
    engine_port: int
    #: The node's lab settings: the shared segment, with its own node address.
    lab: LabSettings
    #: The host's end of the control veth.
    control_peer: str
    data_dir: Path
    run_dir: Path

    @property
    def engine_url(self) -> str:
        return f"tcp://{self.control_address}:{self.engine_port}"

    @property
    def socket_url(self) -> str:
        return f"unix://{self.run_dir / 'docker.sock'}"

    @property
    def namespace_path(self) -> Path:
        return NETNS_ROOT / self.name

    @property
    def config_file(self) -> Path:
        return self.data_dir / "daemon.json"


@dataclass(frozen=True)
class DevlabPlan:
    """Every simulated node and the shared pieces, as the settings lay them out."""

    settings: DevlabSettings
    nodes: tuple[SimulatedNode, ...]
    directory: Path
    log_dir: Path

    @property
    def tls_dir(self) -> Path:
        return self.directory / "tls"

    @property
    def record_path(self) -> Path:
        return self.directory / "nodes.json"

    @property
    def control_host_address(self) -> IPv4Interface:
        subnet = self.settings.control_subnet
        return IPv4Interface(f"{subnet.network_address + 1}/{subnet.prefixlen}")

    @property
    def lab_host_address(self) -> IPv4Interface:
        lab = self.settings.lab
        return IPv4Interface(f"{lab.node_address}/{lab.subnet.prefixlen}")

    def node(self, name: str) -> SimulatedNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise InvalidName(
            f"no simulated node {name!r}",
            hint=f"the nodes are {', '.join(n.name for n in self.nodes)}",
            field="node",
            node=name,
        )


def plan_devlab(settings: Settings, count: int | None = None) -> DevlabPlan:
    """The layout of ``count`` simulated nodes (default ``devlab.nodes``).

    Pure. Raises InvalidCount when the nodes' addresses would not fit below
    the pool or in the control subnet, InvalidName for names that cannot be
    namespaces and interfaces.
    """
    devlab = settings.devlab
    count = devlab.nodes if count is None else count
    lab = devlab.lab
    control = devlab.control_subnet
    room = min(
        int(lab.pool_first) - int(lab.node_address) - 1,
        control.num_addresses - 12,
    )
    if count < 1 or count > room:
        raise InvalidCount(
            f"devlab runs 1 to {room} nodes with these subnets, not {count}",
            hint="node N takes the lab address node_address + N, below the "
            "pool, and the control address 10 + N",
            field="nodes",
            count=count,
        )
    for name in (devlab.control_bridge, devlab.host_interface, devlab.switch_namespace):
        check_interface_name(name)
    directory = settings.state_dir / "devlab"
    nodes = []
    for index in range(1, count + 1):
        name = f"{devlab.name_prefix}{index}"
        control_peer = f"{name}-ctl"
        _check_node_name(name, control_peer)
        node_lab = lab.model_copy(update={"node_address": lab.node_address + index})
        nodes.append(
            SimulatedNode(
                index=index,
                name=name,
                control_address=control.network_address + 10 + index,
                engine_port=devlab.engine_port,
                lab=node_lab,
                control_peer=control_peer,
                data_dir=directory / name,
                run_dir=RUN_ROOT / name,
            )
        )
    _check_dynamic_ranges(lab, nodes)
    return DevlabPlan(
        settings=devlab,
        nodes=tuple(nodes),
        directory=directory,
        log_dir=settings.log_dir / "devlab",
    )


def _check_dynamic_ranges(lab: LabSettings, nodes: Sequence[SimulatedNode]) -> None:
    """InvalidCount if Docker could hand out a node's or the host's address.

    Each node's lab network lets Docker's own IPAM use the largest block
    clear of its pool and its own address (``AddressPool.dynamic_range``);
    on a shared segment that block must miss every other node's address too.
    """
    fixed = {lab.node_address, *(node.lab.node_address for node in nodes)}
    for node in nodes:
        block = AddressPool.from_lab(node.lab).dynamic_range()
        clash = sorted(address for address in fixed if address in block)
        if clash:
            raise InvalidCount(
                f"with {len(nodes)} nodes, {clash[0]} falls in Docker's own range "
                f"{block} of {node.name}'s lab network",
                hint="run fewer nodes, or move the nodes' addresses out of that "
                "block (a lower devlab.lab.node_address, e.g. the subnet's .2)",
                field="nodes",
                count=len(nodes),
            )


def _check_node_name(name: str, control_peer: str) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name) or len(control_peer) > 15:
        raise InvalidName(
            f"{name!r} cannot name a simulated node",
            hint="devlab.name_prefix: lower-case letters, digits and '-', short "
            "enough that NAME-ctl fits an interface name (15 characters)",
            field="name_prefix",
            name=name,
        )


# What up and down report ----------------------------------------------------------


@dataclass
class NodeStatus:
    """A simulated node as ``devlab up`` left it, or ``devlab status`` finds it."""

    name: str
    engine_url: str
    dockerd_pid: int | None = None
    answers: bool = False
    #: What ``up`` did: ``present`` (already up), ``started``, ``created``.
    outcome: str = "present"
    agent_pid: int | None = None
    image_seconds: float | None = None


@dataclass
class DevlabUp:
    """What ``devlab_up`` did, with its timings."""

    plan: DevlabPlan
    nodes: list[NodeStatus] = field(default_factory=list)
    client: TlsFiles | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


# up ---------------------------------------------------------------------------------


def devlab_up(
    settings: Settings,
    count: int | None = None,
    *,
    agents: bool = True,
    load_image: bool = True,
) -> DevlabUp:
    """Bring up ``count`` simulated nodes; safe to run again.

    Checks first, changes nothing on failure: both subnets against every
    route of the host (UnsafeNetwork), the names (InvalidName), the count
    (InvalidCount). Then the TLS material, the wiring, the engines (started
    in parallel), each node's lab network, the base image and the agents.
    ``agents=False`` leaves the agents out, ``load_image=False`` the image.
    Raises HostError, EngineError and their kin when a step fails; what was
    made stays, for ``down`` or another ``up``.
    """
    started = time.monotonic()
    plan = plan_devlab(settings, count)
    check_subnets(plan)
    result = DevlabUp(plan=plan)

    ca = ensure_ca(plan.tls_dir)
    client = ensure_client_files(ca, plan.tls_dir)
    result.client = client
    servers = {
        node.name: ensure_server_files(
            ca, plan.tls_dir, node.name, [node.control_address], [node.name]
        )
        for node in plan.nodes
    }

    ensure_switch(plan)
    statuses: dict[str, NodeStatus] = {}
    for node in plan.nodes:
        statuses[node.name] = NodeStatus(node.name, node.engine_url)
        if ensure_node_wiring(plan, node):
            statuses[node.name].outcome = "created"
    _write_record(plan, client)

    with ThreadPoolExecutor(max_workers=len(plan.nodes)) as workers:
        # list() waits for all, and raises the first failure.
        list(
            workers.map(
                lambda node: _bring_up_engine(
                    plan, node, servers[node.name], client, statuses[node.name]
                ),
                plan.nodes,
            )
        )
    if load_image:
        _load_image(settings, plan, client, statuses)

    if agents:
        result.warnings += _start_agents(settings, plan, client, statuses)
    result.nodes = [statuses[node.name] for node in plan.nodes]
    result.seconds = time.monotonic() - started
    log.info("devlab up with %d nodes in %.1f s", len(plan.nodes), result.seconds)
    return result


def check_subnets(
    plan: DevlabPlan, routes: Sequence[dict[str, Any]] | None = None
) -> None:
    """UnsafeNetwork unless the control and lab subnets overlap no host route.

    Routes through devlab's own interfaces (a re-run) are not counted.
    """
    routes = read_routes() if routes is None else routes
    ours = [plan.settings.control_bridge, plan.settings.host_interface]
    control, lab = plan.settings.control_subnet, plan.settings.lab.subnet
    if control.overlaps(lab):
        raise UnsafeNetwork(
            f"the devlab control subnet {control} overlaps its lab subnet {lab}",
            hint="set devlab.control_subnet and devlab.lab.subnet apart",
            subnet=str(control),
        )
    for subnet, setting in (
        (control, "devlab.control_subnet"),
        (lab, "devlab.lab.subnet"),
    ):
        try:
            check_subnet_is_free(subnet, routes, ignore_devices=ours)
        except UnsafeNetwork as error:
            device = error.details["device"] or "an unnamed device"
            raise UnsafeNetwork(
                f"the devlab subnet {subnet} overlaps the host's route to "
                f"{error.details['route']} via {device}",
                hint=f"putting it on the host would break its routing; choose "
                f"another ({setting} in the config)",
                field=setting,
                **error.details,
            ) from error


def ensure_switch(plan: DevlabPlan) -> None:
    """The lab switch (a bridge in its namespace), the host's port on it, and
    the control bridge with the host's control address."""
    devlab = plan.settings
    switch = devlab.switch_namespace
    _ensure_namespace(switch)
    if read_link(SWITCH_BRIDGE, namespace=switch) is None:
        run_ip("-n", switch, "link", "add", SWITCH_BRIDGE, "type", "bridge")
        log.info("created the lab switch %s in the namespace %s", SWITCH_BRIDGE, switch)
    run_ip("-n", switch, "link", "set", SWITCH_BRIDGE, "up")

    host_link = _own_link(devlab.host_interface, "veth")
    if host_link is None or read_link(SWITCH_HOST_PORT, namespace=switch) is None:
        if host_link is not None:
            _delete_link(devlab.host_interface)
        run_ip("link", "add", devlab.host_interface, "type", "veth", "peer",
               "name", SWITCH_HOST_PORT, "netns", switch)  # fmt: skip
        log.info("cabled the host to the lab switch: %s", devlab.host_interface)
    run_ip("-n", switch, "link", "set", SWITCH_HOST_PORT, "master", SWITCH_BRIDGE, "up")
    _ensure_address(None, devlab.host_interface, plan.lab_host_address)
    run_ip("link", "set", devlab.host_interface, "up")

    if _own_link(devlab.control_bridge, "bridge") is None:
        run_ip("link", "add", devlab.control_bridge, "type", "bridge")
        log.info("created the control bridge %s", devlab.control_bridge)
    _ensure_address(None, devlab.control_bridge, plan.control_host_address)
    run_ip("link", "set", devlab.control_bridge, "up")


def ensure_node_wiring(plan: DevlabPlan, node: SimulatedNode) -> bool:
    """The node's namespace with its control and lab links; whether it was made.

    Complete wiring is left alone (the engine inside keeps running); anything
    less is removed and made afresh.
    """
    if _wiring_complete(plan, node):
        return False
    if node.namespace_path.exists() or _own_link(node.control_peer, "veth"):
        log.info("rewiring %s: its wiring is incomplete", node.name)
        # Nothing may keep running in the namespace about to go.
        _dockerd(plan, node).stop(timeout=_DOCKERD_STOP_TIMEOUT)
        _kill_node_processes(node)
        _remove_wiring(plan, node)

    devlab = plan.settings
    run_ip("netns", "add", node.name)
    run_ip("-n", node.name, "link", "set", "lo", "up")
    run_ip("link", "add", node.control_peer, "type", "veth", "peer", "name",
           CONTROL_LINK, "netns", node.name)  # fmt: skip
    run_ip("link", "set", node.control_peer, "master", devlab.control_bridge, "up")
    control = IPv4Interface(f"{node.control_address}/{devlab.control_subnet.prefixlen}")
    run_ip("-n", node.name, "addr", "add", str(control), "dev", CONTROL_LINK)
    run_ip("-n", node.name, "link", "set", CONTROL_LINK, "up")
    run_ip("link", "add", LAB_LINK, "netns", node.name, "type", "veth", "peer",
           "name", node.name, "netns", devlab.switch_namespace)  # fmt: skip
    run_ip("-n", devlab.switch_namespace, "link", "set", node.name,
           "master", SWITCH_BRIDGE, "up")  # fmt: skip
    run_ip("-n", node.name, "link", "set", LAB_LINK, "up")
    log.info(
        "wired %s: control %s, lab cable %s on the switch",
        node.name,
        control,
        LAB_LINK,
    )
    return True


def _wiring_complete(plan: DevlabPlan, node: SimulatedNode) -> bool:
    devlab = plan.settings
    if not node.namespace_path.exists():
        return False
    host_end = _own_link(node.control_peer, "veth")
    control = read_link(CONTROL_LINK, namespace=node.name)
    lab = read_link(LAB_LINK, namespace=node.name)
    port = read_link(node.name, namespace=devlab.switch_namespace)
    return (
        host_end is not None
        and host_end.get("master") == devlab.control_bridge
        and control is not None
        and any(
            item.get("local") == str(node.control_address)
            for item in control.get("addr_info", [])
        )
        and lab is not None
        and port is not None
        and port.get("master") == SWITCH_BRIDGE
    )


def _bring_up_engine(
    plan: DevlabPlan,
    node: SimulatedNode,
    server: TlsFiles,
    client: TlsFiles,
    status: NodeStatus,
) -> None:
    """The node's dockerd answering over TLS, and its lab network made."""
    daemon = _dockerd(plan, node)
    if not _answers(node, client):
        _clear_stale_dockerd(node)
        _write_daemon_config(node, server)
        for directory in (node.data_dir, node.run_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        daemon.start(_dockerd_command(node))
        if status.outcome == "present":
            status.outcome = "started"
        _wait_for_engine(node, daemon, client, plan.settings.start_timeout)
    status.dockerd_pid = daemon.pid()
    status.answers = True
    engine = connect(node.engine_url, tls=client)
    try:
        ensure_lab_network(engine, node.lab, LAB_LINK)
    finally:
        engine.close()


def _dockerd_command(node: SimulatedNode) -> list[str]:
    """``nsenter --net=… dockerd …``: the engine of one simulated node."""
    return [
        "nsenter",
        f"--net={node.namespace_path}",
        "dockerd",
        "--config-file", str(node.config_file),
        "--data-root", str(node.data_dir / "docker"),
        "--exec-root", str(node.run_dir / "exec"),
        "--pidfile", str(node.run_dir / "docker.pid"),
        "--cgroup-parent", f"/{node.name}",
        "--bridge", "none",
    ]  # fmt: skip


def _write_daemon_config(node: SimulatedNode, server: TlsFiles) -> None:
    config = tls_daemon_config(server, [node.socket_url, node.engine_url])
    node.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    node.config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _wait_for_engine(
    node: SimulatedNode, daemon: Daemon, client: TlsFiles, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not _answers(node, client):
        if daemon.pid() is None:
            raise HostError(
                f"the dockerd of {node.name} exited before it answered",
                hint=f"see {daemon.log_file}",
                node=node.name,
                log=daemon.log_tail(),
            )
        if time.monotonic() > deadline:
            raise HostError(
                f"the dockerd of {node.name} did not answer at {node.engine_url} "
                f"within {timeout:.0f} s",
                hint=f"see {daemon.log_file}; it is left running",
                node=node.name,
                log=daemon.log_tail(),
            )
        time.sleep(_POLL_INTERVAL)
    log.info("the engine of %s answers at %s", node.name, node.engine_url)


def _answers(node: SimulatedNode, client: TlsFiles) -> bool:
    try:
        connect(node.engine_url, tls=client, timeout=3).close()
    except EngineUnavailable:
        return False
    return True


def _clear_stale_dockerd(node: SimulatedNode) -> None:
    """What an earlier dockerd of the node left, cleared before a fresh one.

    A dockerd that runs but does not answer over TLS (another configuration,
    or stuck) is stopped. The containerd a killed dockerd leaves behind is
    ended and its pid file removed: a fresh dockerd would otherwise wait for
    it, and keeps waiting when it is a zombie nobody reaps. The shims stay;
    the fresh containerd takes them over.
    """
    pid = read_pid(node.run_dir / "docker.pid")
    if pid is not None and not _is_zombie(pid):
        log.warning("stopping the unanswering dockerd of %s (pid %d)", node.name, pid)
        _terminate(pid, _DOCKERD_STOP_TIMEOUT)
    pid_file = node.run_dir / "exec" / "containerd" / "containerd.pid"
    pid = read_pid(pid_file)
    if pid is not None and not _is_zombie(pid):
        log.info("ending the left-over containerd of %s (pid %d)", node.name, pid)
        _terminate(pid, 10.0)
    pid_file.unlink(missing_ok=True)


def _dockerd(plan: DevlabPlan, node: SimulatedNode) -> Daemon:
    return Daemon(f"{node.name}-dockerd", plan.directory / "run", plan.log_dir)


def _agent(plan: DevlabPlan, node: SimulatedNode) -> Daemon:
    return Daemon(f"{node.name}-agent", plan.directory / "run", plan.log_dir)


# The base image -------------------------------------------------------------------


def _load_image(
    settings: Settings,
    plan: DevlabPlan,
    client: TlsFiles,
    statuses: dict[str, NodeStatus],
) -> None:
    """The host's base image into every node that lacks it, in parallel.

    Mirrors ``docker save IMAGE | docker -H NODE load``, once per node; the
    image is saved once, to a file next to the nodes' data, and streamed
    from there.
    """
    host = connect(settings.engine_url, tls=settings_tls(settings))
    try:
        with engine_errors(f"inspect {settings.image}", image=settings.image):
            image_id = host.api.inspect_image(settings.image)["Id"]
        missing = [
            node
            for node in plan.nodes
            if _image_id(node, client, settings.image) != image_id
        ]
        if not missing:
            return
        with (
            _saved_image(host, settings.image, plan.directory) as archive,
            ThreadPoolExecutor(max_workers=len(missing)) as workers,
        ):
            timings = list(
                workers.map(lambda node: _load_into(node, client, archive), missing)
            )
    finally:
        host.close()
    for node, seconds in zip(missing, timings, strict=True):
        statuses[node.name].image_seconds = seconds


def _image_id(node: SimulatedNode, client: TlsFiles, image: str) -> str | None:
    engine = connect(node.engine_url, tls=client)
    try:
        return str(engine.api.inspect_image(image)["Id"])
    except docker.errors.ImageNotFound:
        return None
    finally:
        engine.close()


@contextmanager
def _saved_image(
    host: docker.DockerClient, image: str, directory: Path
) -> Iterator[Path]:
    """``docker save IMAGE > FILE``, the file removed on exit."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=directory, prefix="image-", suffix=".tar")
    path = Path(name)
    try:
        started = time.monotonic()
        with (
            os.fdopen(descriptor, "wb") as handle,
            engine_errors(f"save {image}", image=image),
        ):
            for chunk in host.api.get_image(image):
                handle.write(chunk)
        log.info(
            "saved %s (%d MB) in %.1f s",
            image,
            path.stat().st_size // 1_000_000,
            time.monotonic() - started,
        )
        yield path
    finally:
        path.unlink(missing_ok=True)


def _load_into(node: SimulatedNode, client: TlsFiles, archive: Path) -> float:
    """``docker load < ARCHIVE`` on one node, streamed; the seconds it took."""
    started = time.monotonic()
    engine = connect(node.engine_url, tls=client, timeout=600)
    try:
        with (
            archive.open("rb") as handle,
            engine_errors(f"load the image into {node.name}", node=node.name),
        ):
            answer = engine.api.load_image(iter(lambda: handle.read(1 << 20), b""))
            for _ in answer or ():
                pass
    finally:
        engine.close()
    seconds = time.monotonic() - started
    log.info("loaded the base image into %s in %.1f s", node.name, seconds)
    return seconds


# Agents -------------------------------------------------------------------------------


def _start_agents(
    settings: Settings,
    plan: DevlabPlan,
    client: TlsFiles,
    statuses: dict[str, NodeStatus],
) -> list[str]:
    """``dockbed agent`` for each node, pointed at its engine; warnings.

    Skipped, with a warning, when this dockbed has no agent command or the
    broker cannot make the agents' users (it is not set up or not running).
    """
    command = str(Path(sys.executable).with_name("dockbed"))
    probe = subprocess.run(
        [command, "agent", "--help"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return ["no 'dockbed agent' command here; the nodes run without agents"]
    try:
        from dockbed.bus.broker import ensure_agent_user
    except ImportError:
        return ["no broker module here; the nodes run without agents"]

    warnings: list[str] = []
    for node in plan.nodes:
        try:
            ensure_agent_user(settings, node.name)
        except DockbedError as error:
            first_line = (error.message.splitlines() or ["?"])[0]
            warnings.append(
                f"no broker user for the agent of {node.name}, so no agent: "
                f"{first_line}"
            )
            continue
        environment = {
            "DOCKBED_NODE_NAME": node.name,
            "DOCKBED_ENGINE_URL": node.engine_url,
            "DOCKBED_ENGINE_TLS_DIR": str(client.directory),
        }
        port = settings.agent.metrics_port
        if port is not None:
            environment["DOCKBED_AGENT__METRICS_PORT"] = str(port + node.index)
        statuses[node.name].agent_pid = _agent(plan, node).start(
            [command, "agent"], env=environment
        )
    warnings += _agents_that_exited(plan, statuses)
    return warnings


def _agents_that_exited(
    plan: DevlabPlan, statuses: dict[str, NodeStatus], grace: float = 3.0
) -> list[str]:
    """Warnings for agents that die within ``grace`` seconds of their start
    (a refused engine URL, a broker that turns them away)."""
    started = [node for node in plan.nodes if statuses[node.name].agent_pid]
    deadline = time.monotonic() + grace
    exited: dict[str, str] = {}
    while started and time.monotonic() < deadline:
        for node in started:
            daemon = _agent(plan, node)
            if node.name not in exited and daemon.pid() is None:
                statuses[node.name].agent_pid = None
                last = daemon.log_tail(1) or "no output"
                exited[node.name] = f"the agent of {node.name} exited: {last}"
        if len(exited) == len(started):
            break
        time.sleep(_POLL_INTERVAL)
    return list(exited.values())


# The record the server reads ----------------------------------------------------------


def _write_record(plan: DevlabPlan, client: TlsFiles) -> None:
    record = {
        "version": RECORD_VERSION,
        "control_subnet": str(plan.settings.control_subnet),
        "segment": str(plan.settings.lab.subnet),
        "nodes": [
            {
                "name": node.name,
                "engine_url": node.engine_url,
                "tls_dir": str(client.directory),
                "socket_url": node.socket_url,
                "lab": node.lab.model_dump(mode="json"),
            }
            for node in plan.nodes
        ],
    }
    plan.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = plan.record_path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(temporary, plan.record_path)


@dataclass(frozen=True)
class RecordedNode:
    """A simulated node as ``nodes.json`` lists it."""

    name: str
    engine_url: str
    tls_dir: Path
    lab: LabSettings


def read_record(path: Path) -> list[RecordedNode]:
    """The nodes ``devlab up`` recorded at ``path``; empty if there is none.

    An unreadable record is logged and counts as none: the server keeps
    serving its other nodes.
    """
    try:
        data = json.loads(path.read_text())
        return [
            RecordedNode(
                name=str(item["name"]),
                engine_url=str(item["engine_url"]),
                tls_dir=Path(item["tls_dir"]),
                lab=LabSettings.model_validate(item["lab"]),
            )
            for item in data.get("nodes", [])
        ]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("ignoring the unreadable devlab record %s: %s", path, error)
        return []


def record_path(settings: Settings) -> Path:
    """Where ``devlab up`` records its nodes."""
    return settings.state_dir / "devlab" / "nodes.json"


# status, stop, start --------------------------------------------------------------


def devlab_status(settings: Settings) -> list[NodeStatus]:
    """Each recorded node: its dockerd's pid and whether its engine answers."""
    recorded = read_record(record_path(settings))
    if not recorded:
        return []
    plan = plan_devlab(settings, len(recorded))
    client = TlsFiles(recorded[0].tls_dir)

    def status(node: SimulatedNode) -> NodeStatus:
        return NodeStatus(
            name=node.name,
            engine_url=node.engine_url,
            dockerd_pid=_dockerd(plan, node).pid(),
            answers=_answers(node, client),
            agent_pid=_agent(plan, node).pid(),
        )

    with ThreadPoolExecutor(max_workers=len(plan.nodes)) as workers:
        return list(workers.map(status, plan.nodes))


def stop_node(settings: Settings, name: str, *, kill: bool = False) -> bool:
    """Stop one simulated node's dockerd (SIGKILL with ``kill``, as a crash
    would); whether it was running. Its wiring and data stay, so ``devlab
    up`` starts it again."""
    recorded = read_record(record_path(settings))
    plan = plan_devlab(settings, max(len(recorded), 1))
    node = plan.node(name)
    daemon = _dockerd(plan, node)
    pid = daemon.pid()
    if pid is None:
        return False
    if kill:
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 10.0)
        daemon.pid()
        log.info("killed the dockerd of %s (pid %d)", name, pid)
        return True
    return daemon.stop(timeout=_DOCKERD_STOP_TIMEOUT)


# down -----------------------------------------------------------------------------


def devlab_down(settings: Settings) -> list[str]:
    """Remove every simulated node and the shared pieces; what was removed.

    Nodes are found in the record and, for left-overs of an earlier session,
    among the namespaces named like them. Agents and dockerds are stopped
    (their container processes with them), the namespaces, links, cgroups,
    data and run directories removed. Only things devlab names and makes
    are touched; a link of one of its names but another kind is left alone
    and reported as HostError.
    """
    devlab = settings.devlab
    recorded = read_record(record_path(settings))
    leftover = _leftover_indexes(devlab)
    count = max([len(recorded), *leftover, 1])
    plan = plan_devlab(settings, min(count, _max_nodes(settings)))
    removed: list[str] = []

    def stop(node: SimulatedNode) -> None:
        _agent(plan, node).stop()
        _dockerd(plan, node).stop(timeout=_DOCKERD_STOP_TIMEOUT)
        _kill_node_processes(node)

    with ThreadPoolExecutor(max_workers=len(plan.nodes)) as workers:
        list(workers.map(stop, plan.nodes))

    for node in plan.nodes:
        if node.namespace_path.exists() or _own_link(node.control_peer, "veth"):
            _remove_wiring(plan, node)
            removed.append(node.name)
        _remove_cgroups(node.name)
        _unmount_under(node.data_dir)
        _unmount_under(node.run_dir)
        for directory in (node.data_dir, node.run_dir):
            shutil.rmtree(directory, ignore_errors=True)

    if Path(NETNS_ROOT / devlab.switch_namespace).exists():
        run_ip("netns", "del", devlab.switch_namespace)
        removed.append(devlab.switch_namespace)
        # The kernel takes the namespace's links (and their peers) down later.
        _wait_link_gone(devlab.host_interface)
    for name, kind in (
        (devlab.host_interface, "veth"),
        (devlab.control_bridge, "bridge"),
    ):
        if _own_link(name, kind) is not None:
            _delete_link(name)
            removed.append(name)
    _unmount_under(plan.directory)
    shutil.rmtree(plan.directory, ignore_errors=True)
    # Other devlabs (other name prefixes) may keep their run directories here.
    with suppress(OSError):
        RUN_ROOT.rmdir()
    log.info("devlab down: removed %s", ", ".join(removed) or "nothing")
    return removed


def _max_nodes(settings: Settings) -> int:
    lab, control = settings.devlab.lab, settings.devlab.control_subnet
    return min(
        int(lab.pool_first) - int(lab.node_address) - 1, control.num_addresses - 12
    )


def _leftover_indexes(devlab: DevlabSettings) -> list[int]:
    pattern = re.compile(rf"{re.escape(devlab.name_prefix)}(\d+)")
    indexes = []
    for item in run_ip_json("netns", "list"):
        match = pattern.fullmatch(str(item.get("name", "")))
        if match:
            indexes.append(int(match.group(1)))
    return indexes


def _remove_wiring(plan: DevlabPlan, node: SimulatedNode) -> None:
    """The node's namespace (and with it ``ctl0`` and ``lab0``, whose peers go
    too) and any left-over host end of its control veth."""
    switch = plan.settings.switch_namespace
    if node.namespace_path.exists():
        run_ip("netns", "del", node.name)
        # The kernel takes the namespace's links (and their peers) down later.
        _wait_link_gone(node.control_peer)
        _wait_link_gone(node.name, namespace=switch)
    if _own_link(node.control_peer, "veth") is not None:
        _delete_link(node.control_peer)
    port = read_link(node.name, namespace=switch)
    if port is not None and link_kind(port) == "veth":
        _delete_link(node.name, namespace=switch)


def _kill_node_processes(node: SimulatedNode) -> None:
    """Whatever still runs for the node once its dockerd is gone: its
    containerd and shims (their command lines name the node's exec root) and
    the containers' processes (in the node's cgroups)."""
    marker = f"{node.run_dir}/".encode()
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes():
                pids.add(int(entry.name))
        except OSError:
            continue
    pids |= _cgroup_pids(node.name)
    pids.discard(os.getpid())
    for pid in sorted(pids):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        _wait_gone(pid, 5.0)
    if pids:
        log.info("ended %d left-over processes of %s", len(pids), node.name)


def _cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for procs in CGROUP_ROOT.glob(f"*/{name}/**/cgroup.procs"):
        try:
            pids.update(int(line) for line in procs.read_text().split())
        except (OSError, ValueError):
            continue
    return pids


def _remove_cgroups(name: str) -> None:
    """The node's cgroup parent in every hierarchy, deepest first."""
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / name
        if not top.is_dir():
            continue
        for directory, _, _ in os.walk(top, topdown=False):
            with suppress(OSError):
                os.rmdir(directory)


def _unmount_under(directory: Path) -> None:
    """Lazily unmount whatever a killed dockerd left mounted below ``directory``."""
    prefix = str(directory).rstrip("/") + "/"
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[1] for line in mounts if len(line.split()) > 1]
    for point in sorted(
        (p for p in points if p.startswith(prefix)), key=len, reverse=True
    ):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


# Helpers ------------------------------------------------------------------------


def _delete_link(name: str, *, namespace: str | None = None) -> None:
    """``ip [-n NS] link del NAME``, tolerating a link that vanished meanwhile."""
    where = ["-n", namespace] if namespace else []
    result = run_ip(*where, "link", "del", name, check=False)
    if result.returncode != 0 and read_link(name, namespace=namespace) is not None:
        raise HostError(
            f"cannot delete the interface {name}: {result.stderr.strip()}",
            interface=name,
            namespace=namespace,
        )
    _wait_link_gone(name, namespace=namespace)


def _wait_link_gone(
    name: str, *, namespace: str | None = None, timeout: float = 5.0
) -> None:
    deadline = time.monotonic() + timeout
    while read_link(name, namespace=namespace) is not None:
        if time.monotonic() > deadline:
            log.warning("the interface %s is still there after %.0f s", name, timeout)
            return
        time.sleep(0.05)


def _ensure_namespace(name: str) -> None:
    if not (NETNS_ROOT / name).exists():
        run_ip("netns", "add", name)
        log.info("created the network namespace %s", name)
    run_ip("-n", name, "link", "set", "lo", "up")


def _own_link(name: str, kind: str) -> dict[str, Any] | None:
    """The host's link ``name`` if it is of ``kind``; None if absent.

    HostError for a link of that name and another kind: devlab never touches
    what it did not make.
    """
    link = read_link(name)
    if link is None:
        return None
    if link_kind(link) != kind:
        raise HostError(
            f"the interface {name} exists but is not a {kind}; devlab did not make "
            "it and will not touch it",
            hint="remove it yourself, or choose other devlab names in the config",
            interface=name,
            kind=link_kind(link) or "physical",
        )
    return link


def _ensure_address(namespace: str | None, name: str, address: IPv4Interface) -> None:
    link = read_link(name, namespace=namespace)
    present = {
        f"{item.get('local')}/{item.get('prefixlen')}"
        for item in (link or {}).get("addr_info", [])
        if item.get("family") == "inet"
    }
    if str(address) not in present:
        where = ["-n", namespace] if namespace else []
        run_ip(*where, "addr", "add", str(address), "dev", name)
        log.info("gave %s the address %s", name, address)


def _terminate(pid: int, timeout: float) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        if _is_zombie(pid) or time.monotonic() > deadline:
            return _is_zombie(pid)
        time.sleep(0.1)
    return True


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
