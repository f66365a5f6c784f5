"""The lab cable and the host's shim on it, made with ``ip``.

A node's containers sit on a macvlan network whose parent is the lab cable.
On a machine without a real lab interface, a veth pair stands for the cable
(one end is the parent, the other stays free for a simulated peer)::

    ip link add CABLE type veth peer name PEER
    ip link set CABLE up; ip link set PEER up

macvlan children cannot reach their parent's own stack, so the host gets a
macvlan "shim" of its own on the same parent, holding the node address; the
kernel's prefix route for the lab subnet then goes through it::

    ip link add SHIM link PARENT type macvlan mode bridge
    ip addr add NODE_ADDRESS/PREFIX dev SHIM
    ip link set SHIM up

Safety rules, enforced here and never bypassed: the parent is never the
device of a default route unless ``lab.force_parent``; the lab subnet is
checked against every route of the host before the address goes on (the
uplink's subnet can be anything, a lab subnet inside it would cut the host
off); an interface dockbed did not make is never changed or deleted.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Sequence
from ipaddress import IPv4Interface
from typing import Any

from dockbed.config import LabSettings
from dockbed.errors import HostError, InvalidName, NotFound, UnsafeNetwork
from dockbed.lab.routes import check_subnet_is_free, default_route_devices

log = logging.getLogger(__name__)

#: Linux interface names: at most 15 bytes, no '/', ':' or white space.
_INTERFACE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")

Route = dict[str, Any]
Link = dict[str, Any]


def read_routes() -> list[Route]:
    """Every route of the host, IPv4 and IPv6, in every table.

    Mirrors ``ip -json route show table all``; the local table counts too,
    since an address anywhere on the host shows up there.
    """
    routes: list[Route] = run_ip_json("route", "show", "table", "all")
    log.debug("read %d routes of the host", len(routes))
    return routes


def read_link(name: str, *, namespace: str | None = None) -> Link | None:
    """The interface ``name`` with its kind and addresses, or None if absent.

    Mirrors ``ip [-n NAMESPACE] -json -details addr show dev NAME``: the
    answer has ``linkinfo.info_kind`` (``veth``, ``macvlan``), ``link`` (a
    veth's peer or a macvlan's parent), ``master`` (its bridge) and
    ``addr_info``. ``namespace`` is a network namespace's name; None: the
    host's own.
    """
    check_interface_name(name)
    where = ["-n", namespace] if namespace else []
    args = [*where, "-json", "-details", "addr", "show", "dev", name]
    result = run_ip(*args, check=False)
    if result.returncode != 0:
        if "does not exist" in result.stderr or "Cannot open" in result.stderr:
            return None
        raise _ip_failed(args, result)
    links: list[Link] = json.loads(result.stdout or "[]")
    return links[0] if links else None


def read_addresses() -> dict[str, list[IPv4Interface]]:
    """Each interface's IPv4 addresses: ``ip -json addr show``."""
    links: list[Link] = run_ip_json("addr", "show")
    return {str(link.get("ifname", "")): ipv4_addresses(link) for link in links}


def link_kind(link: Link) -> str:
    """``veth``, ``macvlan``, ``bridge``…; ``""`` for a physical interface."""
    return str(link.get("linkinfo", {}).get("info_kind", ""))


def ipv4_addresses(link: Link) -> list[IPv4Interface]:
    """The interface's IPv4 addresses with their prefix lengths."""
    return [
        IPv4Interface(f"{info['local']}/{info['prefixlen']}")
        for info in link.get("addr_info", [])
        if info.get("family") == "inet"
    ]


def check_interface_name(name: str) -> None:
    """Raise InvalidName unless ``name`` can be a Linux interface name."""
    if not _INTERFACE_NAME.fullmatch(name):
        raise InvalidName(
            f"{name!r} is not a valid interface name",
            hint="use at most 15 letters, digits, '-', '_' or '.'",
            field="parent",
            name=name,
        )


def check_cable(lab: LabSettings, *, routes: Sequence[Route] | None = None) -> str:
    """The parent ``ensure_cable`` would use, checked without changing anything.

    With ``lab.parent`` set, that interface must exist and must not carry a
    default route unless ``lab.force_parent``. Without it, the names of the
    stand-in veth pair must be free or already be that pair. Raises NotFound
    (no such parent), UnsafeNetwork (the uplink, or the shim, as parent) and
    HostError (a cable name taken by an interface that is not our veth).
    """
    if lab.parent is not None:
        return _check_given_parent(lab, read_routes() if routes is None else routes)

    for name in (lab.cable_name, lab.cable_peer_name):
        check_interface_name(name)
    cable = read_link(lab.cable_name)
    if cable is None:
        if read_link(lab.cable_peer_name) is not None:
            raise HostError(
                f"the interface {lab.cable_peer_name} exists but the cable end "
                f"{lab.cable_name} does not",
                hint="remove it (ip link del) or choose other lab.cable_* names",
                interface=lab.cable_peer_name,
            )
    elif link_kind(cable) != "veth" or cable.get("link") != lab.cable_peer_name:
        raise HostError(
            f"the interface {lab.cable_name} exists but is not a veth paired "
            f"with {lab.cable_peer_name}",
            hint="dockbed will not change an interface it did not make; choose "
            "other lab.cable_* names, or give the real lab interface as parent",
            interface=lab.cable_name,
            kind=link_kind(cable) or "physical",
        )
    return lab.cable_name


def ensure_cable(lab: LabSettings, *, routes: Sequence[Route] | None = None) -> str:
    """The lab network's parent interface, made or checked; its name.

    With ``lab.parent`` unset, the veth pair ``lab.cable_name`` /
    ``lab.cable_peer_name`` is created, or left alone when it exists; both
    ends are set up. With ``lab.parent`` set, it is only checked. Raises what
    ``check_cable`` raises, and HostError when ``ip`` fails.
    """
    parent = check_cable(lab, routes=routes)
    if lab.parent is not None:
        return parent

    if read_link(lab.cable_name) is None:
        run_ip("link", "add", lab.cable_name, "type", "veth", "peer", "name",
            lab.cable_peer_name)  # fmt: skip
        log.info(
            "created the lab cable: veth pair %s/%s",
            lab.cable_name,
            lab.cable_peer_name,
        )
    # Both ends must be up for the veth to have carrier; macvlan children of a
    # parent without carrier cannot send.
    for name in (lab.cable_name, lab.cable_peer_name):
        _set_up(name)
    return lab.cable_name


def _check_given_parent(lab: LabSettings, routes: Sequence[Route]) -> str:
    parent = str(lab.parent)
    check_interface_name(parent)
    if read_link(parent) is None:
        raise NotFound(
            f"the lab parent interface {parent} does not exist",
            hint="give the interface wired to the lab network (ip -br link "
            "lists them), or no --parent for a stand-in cable",
            field="parent",
            interface=parent,
        )
    uplinks = default_route_devices(routes)
    if parent in uplinks and not lab.force_parent:
        raise UnsafeNetwork(
            f"{parent} carries the host's default route and cannot be the lab parent",
            hint="containers on it would sit on the host's uplink; use the lab "
            "interface, or --force-parent if the uplink really is the lab",
            field="parent",
            interface=parent,
        )
    if parent == lab.shim_name:
        raise UnsafeNetwork(
            f"{parent} is the host's shim and cannot be the lab parent",
            field="parent",
            interface=parent,
        )
    return parent


def check_shim(
    lab: LabSettings, parent: str, *, routes: Sequence[Route] | None = None
) -> Link | None:
    """Check the shim ``ensure_shim`` would make or keep; the existing one.

    Changes nothing. Raises UnsafeNetwork when the lab subnet overlaps a route
    of the host other than the shim's own (a re-run), and HostError when an
    interface named ``lab.shim_name`` exists but is not a bridge-mode macvlan
    on ``parent`` holding only the node address.
    """
    shim_name = lab.shim_name
    check_interface_name(shim_name)
    shim = read_link(shim_name)
    if shim is not None:
        _check_existing_shim(shim, lab, parent, _node_interface(lab))
    # An address in a subnet the host already routes elsewhere would take
    # those routes over and could cut the host off its uplink.
    check_subnet_is_free(
        lab.subnet,
        read_routes() if routes is None else routes,
        ignore_devices=[shim_name],
    )
    return shim


def ensure_shim(
    lab: LabSettings, parent: str, *, routes: Sequence[Route] | None = None
) -> bool:
    """Give the host its address on the lab: the macvlan shim ``lab.shim_name``.

    The shim is a bridge-mode macvlan on ``parent`` holding
    ``lab.node_address`` with the subnet's prefix length. Everything
    ``check_shim`` checks is checked before anything is made. Returns True
    when anything was changed, False when all was in place. Raises
    UnsafeNetwork (the subnet overlaps a host route) and HostError (a shim on
    another parent, of another kind, or with another address: it is never
    silently changed).
    """
    shim_name = lab.shim_name
    address = _node_interface(lab)
    shim = check_shim(lab, parent, routes=routes)

    changed = False
    if shim is None:
        run_ip("link", "add", shim_name, "link", parent, "type", "macvlan",
            "mode", "bridge")  # fmt: skip
        log.info("created the shim %s on %s", shim_name, parent)
        changed = True
    if shim is None or address not in ipv4_addresses(shim):
        run_ip("addr", "add", str(address), "dev", shim_name)
        log.info("gave %s the node address %s", shim_name, address)
        changed = True
    if shim is None or "UP" not in shim.get("flags", []):
        _set_up(shim_name)
        changed = True
    return changed


def _node_interface(lab: LabSettings) -> IPv4Interface:
    return IPv4Interface(f"{lab.node_address}/{lab.subnet.prefixlen}")


def _check_existing_shim(
    shim: Link, lab: LabSettings, parent: str, address: IPv4Interface
) -> None:
    name = lab.shim_name
    if link_kind(shim) != "macvlan" or shim.get("link") != parent:
        raise HostError(
            f"the interface {name} exists but is not a macvlan on {parent}",
            hint=f"remove it (ip link del {name}) if it is a left-over of "
            "dockbed, or choose another lab.shim_name",
            interface=name,
            kind=link_kind(shim) or "physical",
            link=shim.get("link"),
        )
    mode = shim.get("linkinfo", {}).get("info_data", {}).get("mode")
    if mode not in (None, "bridge"):
        raise HostError(
            f"the shim {name} is a macvlan in {mode} mode, not bridge",
            hint=f"containers are unreachable from the host that way; remove "
            f"it (ip link del {name}) and run the setup again",
            interface=name,
            mode=mode,
        )
    others = [found for found in ipv4_addresses(shim) if found != address]
    if others:
        raise HostError(
            f"the shim {name} has the address "
            f"{', '.join(map(str, others))}, not {address}",
            hint=f"dockbed will not change it; remove it (ip link del {name}) "
            "or set lab.node_address to match",
            interface=name,
            expected=str(address),
            found=[str(found) for found in others],
        )


def remove_cable(lab: LabSettings) -> list[str]:
    """Delete the shim and the stand-in veth pair; the names removed.

    For tests and teardown. Only interfaces of the kind dockbed makes are
    deleted (a macvlan shim, a veth cable); anything else of those names is
    left alone and reported as HostError, so a wrong setting can never delete
    the uplink. A given ``lab.parent`` is not ours and is never touched.
    """
    removed: list[str] = []
    targets = [(lab.shim_name, "macvlan")]
    if lab.parent is None:
        targets.append((lab.cable_name, "veth"))
    for name, kind in targets:
        link = read_link(name)
        if link is None:
            continue
        if link_kind(link) != kind:
            raise HostError(
                f"{name} is not a {kind} interface; dockbed did not make it and "
                "will not delete it",
                interface=name,
                kind=link_kind(link) or "physical",
            )
        # Deleting one end of a veth deletes its peer too.
        run_ip("link", "del", name)
        log.info("deleted the interface %s", name)
        removed.append(name)
    return removed


def _set_up(name: str) -> None:
    run_ip("link", "set", name, "up")


def run_ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; HostError on failure when ``check``.

    The one way dockbed changes the host's interfaces and namespaces.
    """
    command = ["ip", *args]
    log.debug("running %s", " ".join(command))
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise HostError(
            "the ip command is missing", hint="apt-get install -y iproute2"
        ) from error
    if check and result.returncode != 0:
        raise _ip_failed(list(args), result)
    return result


def run_ip_json(*args: str) -> Any:
    """``ip -json ARGS``, decoded."""
    return json.loads(run_ip("-json", *args).stdout or "[]")


def _ip_failed(args: list[str], result: subprocess.CompletedProcess[str]) -> HostError:
    return HostError(
        f"ip {' '.join(args)} failed: {result.stderr.strip() or result.returncode}",
        command=["ip", *args],
        exit_code=result.returncode,
    )
