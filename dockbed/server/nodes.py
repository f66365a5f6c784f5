"""The nodes the server drives, and a connection to each one's engine."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from dockbed.config import LabSettings, Settings
from dockbed.engine.client import connect
from dockbed.engine.containers import Engine
from dockbed.errors import NotFound
from dockbed.lab.addresses import AddressPool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeConfig:
    """A node: its name, where its engine listens, and its lab network."""

    name: str
    engine_url: str
    lab: LabSettings

    def pool(self) -> AddressPool:
        return AddressPool.from_lab(self.lab)


class NodeRegistry:
    """Nodes by name, each engine connected on first use and then kept."""

    def __init__(self, nodes: list[NodeConfig]) -> None:
        self._nodes = {node.name: node for node in nodes}
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> NodeRegistry:
        """The one local node the settings describe."""
        return cls([NodeConfig(settings.node_name, settings.engine_url, settings.lab)])

    def names(self) -> list[str]:
        return sorted(self._nodes)

    def config(self, name: str) -> NodeConfig:
        """The node called ``name``; raises NotFound naming the known ones."""
        try:
            return self._nodes[name]
        except KeyError:
            raise NotFound(
                f"unknown node {name!r}",
                hint=f"known nodes: {', '.join(self.names()) or 'none'}",
                field="node",
                node=name,
            ) from None

    def engine(self, name: str) -> Engine:
        """The engine of node ``name``; raises NotFound or EngineUnavailable."""
        node = self.config(name)
        with self._lock:
            engine = self._engines.get(name)
        if engine is None:
            engine = Engine(name, connect(node.engine_url))
            with self._lock:
                engine = self._engines.setdefault(name, engine)
        return engine
