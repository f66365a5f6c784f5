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
    #: The longest wait, in seconds, between two attempts to reach the broker.
    reconnect_max_delay: float = Field(default=3.0, gt=0)


class Settings(BaseSettings):
    """All of dockbed's settings."""

    model_config = SettingsConfigDict(
        env_prefix="DOCKBED_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    #: Where the server listens. Until logins exist it stays on loopback.
    server_host: str = "127.0.0.1"
    server_port: int = 4003
    #: Where the CLI finds the server.
    server_url: str = "http://127.0.0.1:4003"

    #: The local node's name and the URL of its Docker Engine.
    node_name: str = "local"
    engine_url: str = "unix:///var/run/docker.sock"

    image: str = "dockbed/lab:bookworm"
    image_suite: str = "bookworm"

    lab: LabSettings = LabSettings()
    limits: LimitSettings = LimitSettings()
    broker: BrokerSettings = BrokerSettings()
    agent: AgentSettings = AgentSettings()

    #: The most containers one batch may ask for.
    batch_max: int = Field(default=200, gt=0)
    #: How many containers of a batch are created at the same time.
    batch_concurrency: int = Field(default=8, gt=0)

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
