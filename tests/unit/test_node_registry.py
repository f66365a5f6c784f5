"""dockbed.server.nodes: where the nodes come from, and a node that does not
answer (engines at socket paths where nothing listens)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from dockbed.config import LabSettings
from dockbed.engine.containers import ContainerInfo
from dockbed.errors import EngineUnavailable, InvalidInput
from dockbed.server.nodes import UNKNOWN_STATE, NodeConfig, NodeRegistry
from dockbed.server.store import RegisteredNode

SEGMENT = LabSettings(
    subnet=IPv4Network("10.64.100.0/24"),
    gateway=IPv4Address("10.64.100.1"),
    pool_first=IPv4Address("10.64.100.52"),
    pool_last=IPv4Address("10.64.100.240"),
    node_address=IPv4Address("10.64.100.11"),
)


class Records:
    def __init__(self, *nodes: RegisteredNode) -> None:
        self.nodes = list(nodes)

    def node_records(self) -> Sequence[RegisteredNode]:
        return self.nodes

    def add_node_record(self, node: RegisteredNode, added_by: str) -> None:
        self.nodes.append(node)

    def remove_node_record(self, name: str) -> None:
        self.nodes = [node for node in self.nodes if node.name != name]


def nowhere(tmp_path: Path, name: str) -> str:
    return f"unix://{tmp_path / f'{name}.sock'}"


def write_record(path: Path, names: list[str], tmp_path: Path) -> None:
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "nodes": [
                    {
                        "name": name,
                        "engine_url": nowhere(tmp_path, name),
                        "tls_dir": str(tmp_path / "tls"),
                        "lab": SEGMENT.model_copy(
                            update={"node_address": SEGMENT.node_address + index}
                        ).model_dump(mode="json"),
                    }
                    for index, name in enumerate(names, start=1)
                ],
            }
        )
    )


@pytest.fixture
def registry(tmp_path: Path) -> NodeRegistry:
    local = NodeConfig("local", nowhere(tmp_path, "local"), LabSettings())
    record = tmp_path / "nodes.json"
    write_record(record, ["dbnode1", "dbnode2"], tmp_path)
    registered = RegisteredNode(
        "far", "ssh://root@far", None, LabSettings().model_dump(mode="json")
    )
    return NodeRegistry(
        [local], records=Records(registered), devlab_record=record, probe_timeout=1
    )


def test_the_settings_node_comes_first_then_the_others_by_name(
    registry: NodeRegistry,
) -> None:
    assert registry.names() == ["local", "dbnode1", "dbnode2", "far"]
    assert registry.config("far").source == "registry"
    assert registry.config("dbnode2").source == "devlab"


def test_a_new_devlab_record_is_read_without_a_restart(
    registry: NodeRegistry, tmp_path: Path
) -> None:
    write_record(tmp_path / "nodes.json", ["dbnode1", "dbnode2", "dbnode3"], tmp_path)

    assert "dbnode3" in registry.names()

    (tmp_path / "nodes.json").unlink()
    assert registry.names() == ["local", "far"]


def test_nodes_are_grouped_by_their_lab_segment(registry: NodeRegistry) -> None:
    shared = registry.on_segment("10.64.100.0/24")

    assert [node.name for node in shared] == ["dbnode1", "dbnode2"]
    assert registry.config("local").segment == "10.64.98.0/23"


def test_only_registered_nodes_can_be_removed(registry: NodeRegistry) -> None:
    for name in ("local", "dbnode1"):
        with pytest.raises(InvalidInput):
            registry.remove(name)

    registry.remove("far")
    assert "far" not in registry.names()


def test_a_node_that_does_not_answer_is_named_in_the_error(
    registry: NodeRegistry,
) -> None:
    with pytest.raises(EngineUnavailable, match="node dbnode1 is unreachable") as err:
        registry.engine("dbnode1")

    assert err.value.details["node"] == "dbnode1"


def test_its_containers_show_as_last_seen_in_the_state_unknown(
    registry: NodeRegistry,
) -> None:
    info = ContainerInfo(
        name="lab-1",
        id="0" * 64,
        node="dbnode1",
        image="dockbed/lab:bookworm",
        state="running",
        status="Up",
        created=0.0,
        addresses={"lab": "10.64.100.60"},
        managed=True,
    )
    registry.remember(info)

    snapshot = registry.snapshot("dbnode1")

    assert not snapshot.reachable
    assert [item.state for item in snapshot.containers] == [UNKNOWN_STATE]
    assert snapshot.seen_running == {"lab-1"}


def test_a_never_seen_node_blocks_its_segment_and_a_seen_one_does_not(
    registry: NodeRegistry,
) -> None:
    with pytest.raises(EngineUnavailable, match="not been seen"):
        registry.segment_addresses("10.64.100.0/24")

    for name in ("dbnode1", "dbnode2"):
        registry.remember(
            ContainerInfo(
                name=f"{name}-c",
                id="1" * 64,
                node=name,
                image="i",
                state="exited",
                status="",
                created=0.0,
                addresses={"lab": "10.64.100.7" + name[-1]},
            )
        )
    used = registry.segment_addresses("10.64.100.0/24")

    assert used[IPv4Address("10.64.100.71")] == "dbnode1-c on dbnode1"
    assert used[IPv4Address("10.64.100.12")] == "the node dbnode1's own address"
