"""Settings for every dockbed part, and their defaults.

Values come, lowest priority first, from the defaults below, the TOML file
(``/etc/dockbed/dockbed.toml``, or the path in ``DOCKBED_CONFIG``) and
``DOCKBED_*`` environment variables. Nested fields use ``__`` in variable
names: ``DOCKBED_LAB__SUBNET=10.70.0.0/24``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_PATH = Path("/etc/dockbed/dockbed.toml")

#: Every label dockbed puts on a container starts with this prefix.
LABEL_PREFIX = "org.dockbed"


class LabSettings(BaseModel):
    """The lab network of a node: a macvlan network on the lab cable."""

    network: str = "lab"
    subnet: IPv4Network = IPv4Network("10.64.98.0/23")
    gateway: IPv4Address = IPv4Address("10.64.98.1")
    pool_first: IPv4Address = IPv4Address("10.64.98.52")
    pool_last: IPv4Address = IPv4Address("10.64.98.240")
    node_address: IPv4Address = IPv4Address("10.64.98.51")
    #: The interface that carries the lab cable. ``None``: dockbed creates a
    #: veth pair that stands for it (see ``dockbed.devlab.cable``).
    parent: str | None = None
    #: Allow the interface with the default route as parent.
    force_parent: bool = False
    #: Names of the stand-in cable's ends and of the host's shim interface.
    cable_name: str = "dbcable0"
    cable_peer_name: str = "dbcable1"
    shim_name: str = "dbshim0"

    @model_validator(mode="after")
    def _addresses_in_subnet(self) -> LabSettings:
        for field in ("gateway", "pool_first", "pool_last", "node_address"):
            address = getattr(self, field)
            if address not in self.subnet:
                raise ValueError(f"lab.{field} {address} is outside {self.subnet}")
        if self.pool_first > self.pool_last:
            raise ValueError(
                f"lab.pool_first {self.pool_first} is after "
                f"lab.pool_last {self.pool_last}"
            )
        return self


class LimitSettings(BaseModel):
    """Default resource limits for each container, so one cannot starve a node."""

    cpus: float = Field(default=1.0, gt=0)
    memory: str = "512m"
    pids: int = Field(default=512, gt=0)


class BrokerSettings(BaseModel):
    """The RabbitMQ broker that carries stats from the agents to the pages."""

    host: str = "127.0.0.1"
    port: int = Field(default=5672, gt=0, lt=65536)
    vhost: str = "/"
    #: Web STOMP, which the browser connects to (``ws://HOST:PORT/PATH``).
    web_stomp_port: int = Field(default=15674, gt=0, lt=65536)
    web_stomp_path: str = "/ws"
    #: The Web STOMP URL the monitor page is given, for a broker behind a
    #: proxy (``wss://example.org/stomp``). ``None``: the host the page was
    #: served from, with ``web_stomp_port`` and ``web_stomp_path``.
    web_stomp_url: str | None = None
    #: The agent's broker password. ``None``: read from the file that
    #: ``dockbed broker setup`` wrote under ``state_dir/broker/`` (mode 0600).
    agent_password: SecretStr | None = None
    #: Seconds ``dockbed broker setup`` waits for a starting broker to answer.
    startup_timeout: float = Field(default=90.0, gt=0)


class AgentSettings(BaseModel):
    """The node agent that samples containers and publishes their stats."""

    #: Seconds between two samples of every running container.
    interval: float = Field(default=3.0, gt=0)
    #: Roots of the cgroup and proc file systems the agent reads.
    cgroup_root: Path = Path("/sys/fs/cgroup")
    proc_root: Path = Path("/proc")
    #: Where the Prometheus metrics are served; port ``None`` serves none.
    #: 9338, not 9323: that one is customary for dockerd's own metrics-addr.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=9338, gt=0, lt=65536)
    #: The longest wait, in seconds, between two attempts to reach the broker
    #: (never more than half an interval, so each tick tries once).
    reconnect_max_delay: float = Field(default=3.0, gt=0)


def _devlab_lab() -> LabSettings:
    return LabSettings(
        subnet=IPv4Network("10.64.100.0/24"),
        gateway=IPv4Address("10.64.100.1"),
        pool_first=IPv4Address("10.64.100.52"),
        pool_last=IPv4Address("10.64.100.240"),
        node_address=IPv4Address("10.64.100.10"),
    )


class DevlabSettings(BaseModel):
    """Simulated nodes on this machine, for development and tests.

    ``dockbed devlab up`` makes, per node, a network namespace running its own
    dockerd (TLS on its control address) with a lab network cabled to one
    shared lab segment. Both subnets are checked against the host's routes
    before anything is made.
    """

    #: How many nodes ``devlab up`` makes when not told.
    nodes: int = Field(default=3, ge=1, le=30)
    #: Nodes are PREFIX1, PREFIX2, …: the namespace's name and the node's.
    name_prefix: str = "dbnode"
    #: The host reaches the engines here: the host has the first address on
    #: the bridge ``control_bridge``, node N has the address 10 + N.
    control_subnet: IPv4Network = IPv4Network("10.213.50.0/24")
    control_bridge: str = "dbctl0"
    engine_port: int = Field(default=2376, gt=0, lt=65536)
    #: The shared lab segment. ``node_address`` is the host's own address on
    #: it; node N has ``node_address + N``, outside the one shared pool.
    lab: LabSettings = Field(default_factory=_devlab_lab)
    #: The namespace that holds the bridge standing for the lab switch (out of
    #: reach of the host's firewall), and the host's interface into it.
    switch_namespace: str = "dbswitch"
    host_interface: str = "dbdevlab0"
    #: Seconds a node's dockerd may take to answer after it was started.
    start_timeout: float = Field(default=60.0, gt=0)


class Settings(BaseSettings):
    """All of dockbed's settings."""

    model_config = SettingsConfigDict(
        env_prefix="DOCKBED_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    #: Where the server listens. Every request needs a login (a session or an
    #: API token), so another address may be set; the default stays loopback.
    server_host: str = "127.0.0.1"
    server_port: int = 4003
    #: Where the CLI finds the server.
    server_url: str = "http://127.0.0.1:4003"

    #: The local node's name and the URL of its Docker Engine.
    node_name: str = "local"
    engine_url: str = "unix:///var/run/docker.sock"
    #: For a ``tcp://`` engine URL: the directory with the CA and the client
    #: certificate (``ca.pem``, ``cert.pem``, ``key.pem``); plain TCP is refused.
    engine_tls_dir: Path | None = None
    #: Where ``dockbed node setup --remote`` keeps the engine's CA and
    #: certificates; ``None``: ``state_dir/tls``.
    tls_dir: Path | None = None

    image: str = "dockbed/lab:bookworm"
    image_suite: str = "bookworm"

    lab: LabSettings = LabSettings()
    limits: LimitSettings = LimitSettings()
    broker: BrokerSettings = BrokerSettings()
    agent: AgentSettings = AgentSettings()
    devlab: DevlabSettings = DevlabSettings()

    #: The most containers one batch may ask for.
    batch_max: int = Field(default=200, gt=0)
    #: How many containers of a batch are created at the same time.
    batch_concurrency: int = Field(default=8, gt=0)

    #: The store of users, API tokens and the audit log: any SQLAlchemy URL.
    #: ``None``: the SQLite file ``state_dir/dockbed.db``.
    database_url: str | None = None
    #: Running containers a user may have at once, over all nodes.
    user_max_running: int = Field(default=40, ge=0)
    #: The same cap for admins; ``None``: admins have none.
    admin_max_running: int | None = Field(default=None, ge=0)
    #: Hours a page login lasts without use.
    session_hours: float = Field(default=12.0, gt=0)
    #: Send the session cookie over HTTPS only; set it behind a TLS proxy.
    session_cookie_secure: bool = False

    #: Where runtime state (pid files, logs, built images) is kept.
    state_dir: Path = Path("/var/lib/dockbed")
    log_dir: Path = Path("/var/log/dockbed")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = Path(os.environ.get("DOCKBED_CONFIG", str(DEFAULT_CONFIG_PATH)))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=path),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
