"""dockbed.agent.collector with a recorded engine and the fixture trees.

The engine is a stand-in that answers the two calls the collector makes (the
list of running containers, an inspect) with the shapes a 20.10 engine sends.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from dockbed.agent.collector import Collector
from dockbed.agent.rates import NS_PER_SECOND

FIXTURES = Path(__file__).parent / "fixtures"
V1_ID = "c0ffee" + "1" * 58
GONE_ID = "0dd" + "4" * 61


class RecordedApi:
    def __init__(self, containers: list[dict[str, Any]], pids: dict[str, int]):
        self.listed = containers
        self.pids = pids
        self.inspects = 0
        self.lists = 0

    def containers(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        assert filters["status"] == "running"
        self.lists += 1
        return self.listed

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        self.inspects += 1
        return {"Id": container_id, "State": {"Pid": self.pids[container_id]}}


class RecordedClient:
    def __init__(self, api: RecordedApi):
        self.api = api


def entry(container_id: str, name: str, **labels: str) -> dict[str, Any]:
    return {"Id": container_id, "Names": [f"/{name}"], "Labels": labels}


@pytest.fixture
def cgroup_root(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    shutil.copytree(FIXTURES / "cgroup_v1", root)
    return root


def test_two_ticks_give_rates_and_one_inspect(
    cgroup_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = RecordedApi(
        [entry(V1_ID, "lab-1", **{"org.dockbed.owner": "alice"})], {V1_ID: 4242}
    )
    collector = Collector(
        RecordedClient(api),  # type: ignore[arg-type]
        node="node1",
        cgroup_root=cgroup_root,
        proc_root=FIXTURES / "proc",
    )
    clock = iter([100 * NS_PER_SECOND, 103 * NS_PER_SECOND])
    monkeypatch.setattr("time.monotonic_ns", lambda: next(clock))

    first = collector.collect()
    usage = cgroup_root / "cpuacct" / "node1" / V1_ID / "cpuacct.usage"
    usage.write_text(str(12_345_678_901 + 3 * NS_PER_SECOND // 4))
    second = collector.collect()

    assert [s.name for s in first] == ["lab-1"]
    assert first[0].owner == "alice"
    assert first[0].cpu_percent is None
    assert first[0].interfaces["eth0"].rx_bps is None
    assert second[0].cpu_percent == pytest.approx(25.0)
    assert second[0].interfaces["eth0"].rx_bps == 0.0
    assert second[0].memory_bytes == 163_577_856 - 41_943_040
    assert (api.lists, api.inspects) == (1, 1), "a tick reads files, not the engine"

    summary = collector.summarize(second)
    assert summary.containers == 1
    assert summary.cpu_percent == pytest.approx(25.0)
    assert summary.memory_total_bytes == 8 * 2**30


def test_a_container_gone_mid_read_is_skipped(
    cgroup_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = RecordedApi(
        [entry(GONE_ID, "gone"), entry(V1_ID, "lab-1")],
        {GONE_ID: 999_999, V1_ID: 4242},
    )
    collector = Collector(
        RecordedClient(api),  # type: ignore[arg-type]
        node="node1",
        cgroup_root=cgroup_root,
        proc_root=FIXTURES / "proc",
    )
    assert [s.name for s in collector.collect()] == ["lab-1"]

    # It stops between two ticks: the kernel removes its cgroup, whose files
    # still open then answer ENODEV, as a deleted fixture file does here.
    monkeypatch.setattr(os, "pread", _pread_like_cgroupfs)
    shutil.rmtree(cgroup_root / "cpuacct" / "node1" / V1_ID)
    assert collector.collect() == []
    assert api.lists == 1
    collector.collect()
    assert api.lists == 2, "a container gone unannounced makes the agent look again"


_real_pread = os.pread


def _pread_like_cgroupfs(descriptor: int, size: int, offset: int) -> bytes:
    if os.readlink(f"/proc/self/fd/{descriptor}").endswith(" (deleted)"):
        raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
    return _real_pread(descriptor, size, offset)


def test_events_become_messages_and_keep_the_list_current(cgroup_root: Path) -> None:
    api = RecordedApi([entry(V1_ID, "lab-1")], {V1_ID: 4242})
    collector = Collector(
        RecordedClient(api),  # type: ignore[arg-type]
        node="node1",
        cgroup_root=cgroup_root,
        proc_root=FIXTURES / "proc",
    )
    collector.collect()
    die = {
        "Type": "container",
        "Action": "die",
        "Actor": {
            "ID": V1_ID,
            "Attributes": {
                "name": "lab-1",
                "org.dockbed.owner": "bob",
                "exitCode": "137",
            },
        },
        "timeNano": 1_700_000_000_500_000_000,
    }
    message = collector.on_event(die)
    assert message is not None
    assert (message.action, message.owner, message.exit_code) == ("die", "bob", 137)
    assert message.timestamp == pytest.approx(1_700_000_000.5)

    assert collector.collect() == [], "a dead container is not sampled"

    collector.on_event({**die, "Action": "start"})
    assert [s.name for s in collector.collect()] == ["lab-1"]
    assert (api.lists, api.inspects) == (2, 2), "a start makes the agent look again"
    assert collector.on_event({**die, "Action": "exec_start: sh"}) is None
    assert collector.on_event({**die, "Type": "network"}) is None
