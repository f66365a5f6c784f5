"""The shapes of what the REST API takes and gives, as pydantic models.

Types are checked here (an address must parse as IPv4); the lab's rules (the
pool, names, counts) are checked by ``dockbed.server.service`` so that the
API, the page and the CLI get one message for each broken rule.
"""

from __future__ import annotations

from datetime import datetime
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from pydantic import BaseModel, Field

from dockbed.engine.containers import ContainerInfo
from dockbed.server.store import Outcome, Role


class Limits(BaseModel):
    """Resource limits; a missing one takes the configured default."""

    cpus: float | None = Field(default=None, description="CPUs, e.g. 0.5")
    memory: str | None = Field(default=None, description="memory, e.g. 512m or 1g")
    pids: int | None = Field(default=None, description="most processes at once")


class CreateRequest(Limits):
    """One container: ``dockbed create NAME``."""

    name: str
    node: str | None = None
    image: str | None = None
    ip: IPv4Address | None = Field(
        default=None, description="lab address; omitted: the next free one"
    )
    ssh_keys: list[str] = Field(default_factory=list)
    wait_ready: bool = Field(
        default=False, description="answer only once sshd accepts connections"
    )


class BatchRequest(Limits):
    """``PREFIX-1`` … ``PREFIX-count`` on ascending addresses: ``dockbed batch``."""

    prefix: str
    count: int
    base_ip: IPv4Address | Literal["auto"] = "auto"
    node: str | None = None
    nodes: list[str] = Field(
        default_factory=list,
        description="spread the batch over these nodes in turn (one lab "
        "segment); instead of node",
    )
    image: str | None = None
    ssh_keys: list[str] = Field(default_factory=list)
    wait_ready: bool = False


class PlannedContainer(BaseModel):
    name: str
    ip: IPv4Address
    node: str | None = None


class BatchPlan(BaseModel):
    """What a batch would create, shown before it is submitted."""

    prefix: str
    #: The first node; ``nodes`` lists every node the batch is spread over.
    node: str
    nodes: list[str] = Field(default_factory=list)
    image: str
    network: str
    containers: list[PlannedContainer]


class Container(BaseModel):
    """A container as ``dockbed ls --json`` shows it."""

    name: str
    id: str
    node: str
    image: str
    state: str
    status: str
    addresses: dict[str, str]
    batch: str | None
    owner: str | None
    created: float

    @classmethod
    def of(cls, info: ContainerInfo) -> Container:
        return cls(
            name=info.name,
            id=info.id,
            node=info.node,
            image=info.image,
            state=info.state,
            status=info.status,
            addresses=info.addresses,
            batch=info.batch,
            owner=info.owner,
            created=info.created,
        )


class Selection(BaseModel):
    """Containers to act on: by name, or a whole batch."""

    names: list[str] = Field(default_factory=list)
    batch: str | None = None
    node: str | None = None


class ActionResult(BaseModel):
    """What a start / stop / remove did to each container."""

    done: list[str]
    failed: dict[str, str] = Field(default_factory=dict)


class NicRequest(BaseModel):
    """A second interface: ``dockbed nic add NAME --network NET [--ip A]``."""

    network: str
    ip: IPv4Address | None = None


class NicAddressRequest(BaseModel):
    ip: IPv4Address


class NetworkCreateRequest(BaseModel):
    """An experiment network: ``dockbed net create NAME --subnet S``."""

    name: str
    subnet: IPv4Network
    driver: Literal["bridge", "macvlan"] = "bridge"
    parent: str | None = None
    gateway: IPv4Address | None = None
    node: str | None = None


class AddressReport(BaseModel):
    """Which pool addresses are free on a node's lab network."""

    node: str
    network: str
    subnet: str
    pool_first: IPv4Address
    pool_last: IPv4Address
    used: dict[str, str]
    free: int
    next_free: IPv4Address | None
    #: Every free address of the pool, in order: what an address picker offers.
    free_addresses: list[IPv4Address] = Field(default_factory=list)


class Job(BaseModel):
    """A batch running in the background, polled for progress."""

    id: str
    kind: str
    state: Literal["running", "succeeded", "failed"]
    total: int
    done: int
    containers: list[Container]
    error: dict[str, object] | None = None


# Users, tokens and the audit log ----------------------------------------------


class UserView(BaseModel):
    """A user as admins see them; never the password hash."""

    name: str
    role: Role
    created: datetime
    disabled: bool


class UserCreateRequest(BaseModel):
    """A new user: ``dockbed user add NAME [--admin]``."""

    name: str
    role: Role = "user"
    password: str | None = Field(
        default=None, description="omitted: one is generated and answered, once"
    )


class UserCreated(UserView):
    #: The generated password, shown this once; None when the request set one.
    password: str | None = None


class UserUpdateRequest(BaseModel):
    role: Role | None = None
    disabled: bool | None = None


class NewPassword(BaseModel):
    """A password the server generated, shown once."""

    password: str


class PasswordChangeRequest(BaseModel):
    current_password: str
    new_password: str


class Whoami(BaseModel):
    """The caller: ``dockbed whoami``."""

    name: str
    role: Role
    via: Literal["token", "session"]
    #: The most running containers they may have; None: no cap.
    max_running: int | None


class SshKeys(BaseModel):
    """A user's saved public keys, given to their new containers by default."""

    keys: list[str]


class TokenRequest(BaseModel):
    """Log in for an API token: ``dockbed login``."""

    name: str
    password: str
    label: str = Field(default="cli", description="what the token is for")


class TokenView(BaseModel):
    id: int
    name: str
    created: datetime
    last_used: datetime | None


class TokenIssued(BaseModel):
    """A new token: the secret is in this answer and nowhere else."""

    token: str
    id: int
    user: UserView


class AuditView(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    outcome: Outcome
    status: int
    details: dict[str, object]


# Nodes ----------------------------------------------------------------------------


class NodeView(BaseModel):
    """A node and its health, read when asked: ``dockbed node ls``."""

    name: str
    engine_url: str
    #: Where the server knows it from: ``settings``, ``registry`` or ``devlab``.
    source: str
    lab_network: str
    subnet: str
    #: Nodes on one segment share its addresses.
    segment: str
    status: Literal["up", "unknown"]
    reachable: bool
    engine_version: str | None = None
    containers: int | None = None
    running: int | None = None
    free_addresses: int | None = None
    error: str | None = None


class TlsMaterial(BaseModel):
    """A node's CA and the client certificate and key, as PEM text."""

    ca: str
    cert: str
    key: str


class NodeAddRequest(BaseModel):
    """A node to drive: ``dockbed node add NAME --engine URL [--tls-dir DIR]``."""

    name: str
    engine_url: str = Field(
        description="unix://, ssh:// or tcp:// (the last only with tls)"
    )
    tls: TlsMaterial | None = None
    network: str = Field(default="lab", description="the node's lab network")
    pool_first: IPv4Address | None = Field(
        default=None, description="omitted: the server's lab.pool_first"
    )
    pool_last: IPv4Address | None = None
    node_address: IPv4Address | None = Field(
        default=None, description="omitted: the lab network's 'node' aux-address"
    )
