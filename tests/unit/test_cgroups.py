"""dockbed.agent.cgroups on committed cgroup v1 and v2 trees.

``fixtures/proc`` is a host with 4 CPUs and 8 GiB and three container
processes: 4242 in a v1 tree under the cgroup parent ``/node1`` (as a
simulated node's engine makes them), 4444 in v1 under ``/docker`` with no
memory limit and no ``memory.stat``, 4343 in a pure v2 tree under systemd's
``system.slice``. The values are shaped like this machine's own files.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from dockbed.agent import cgroups
from dockbed.agent.cgroups import (
    ProcessGone,
    count_cpus,
    find_cgroup,
    read_cgroup,
    read_host_facts,
)

FIXTURES = Path(__file__).parent / "fixtures"
PROC = FIXTURES / "proc"
V1 = FIXTURES / "cgroup_v1"
V2 = FIXTURES / "cgroup_v2"
V1_ID = "c0ffee" + "1" * 58
V2_ID = "feed" + "3" * 60
HOST_MEMORY = 8 * 2**30


def process(root: Path, pid: int, cgroup: str) -> Path:
    """A proc root under ``root`` with one process in the cgroups given."""
    (root / "proc" / str(pid)).mkdir(parents=True)
    (root / "proc" / str(pid) / "cgroup").write_text(cgroup)
    return root / "proc"


@pytest.fixture(autouse=True)
def _fresh_log_once() -> None:
    """Each test sees its own "said once" messages."""
    cgroups._said.clear()


def test_host_facts() -> None:
    host = read_host_facts(PROC)
    assert host.memory_bytes == HOST_MEMORY
    assert host.online_cpus == 4


def test_v1_paths_follow_the_cgroup_parent() -> None:
    found = find_cgroup(4242, cgroup_root=V1, proc_root=PROC)
    assert found.version == 1
    assert found.cpuacct == V1 / "cpuacct" / "node1" / V1_ID
    assert found.memory == V1 / "memory" / "node1" / V1_ID
    assert found.cpuset == V1 / "cpuset" / "node1" / V1_ID


def test_v1_reading() -> None:
    found = find_cgroup(4242, cgroup_root=V1, proc_root=PROC)
    reading = read_cgroup(found, read_host_facts(PROC))
    assert reading.cpu_usage_ns == 12_345_678_901
    # usage_in_bytes 156 MiB minus total_inactive_file 40 MiB
    assert reading.memory_bytes == 163_577_856 - 41_943_040
    assert reading.memory_limit_bytes == 256 * 2**20
    assert reading.online_cpus == 2


def test_v1_unlimited_is_host_memory_and_missing_stat_drops_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    found = find_cgroup(4444, cgroup_root=V1, proc_root=PROC)
    host = read_host_facts(PROC)
    with caplog.at_level(logging.WARNING, logger="dockbed.agent.cgroups"):
        first = read_cgroup(found, host)
        second = read_cgroup(found, host)

    assert first == second
    assert first.memory_bytes is None  # never 0: memory.stat is missing
    assert first.memory_limit_bytes == HOST_MEMORY
    assert first.cpu_usage_ns == 500
    assert first.online_cpus == 3  # "0,2-3"
    missing = [r for r in caplog.records if "memory.stat" in r.getMessage()]
    assert len(missing) == 1, "a missing file is said once, not every tick"


def test_v2_reading_from_microseconds() -> None:
    found = find_cgroup(4343, cgroup_root=V2, proc_root=PROC)
    assert found.version == 2
    assert found.unified == V2 / "system.slice" / f"docker-{V2_ID}.scope"

    reading = read_cgroup(found, read_host_facts(PROC))
    assert reading.cpu_usage_ns == 7_654_321 * 1000
    # memory.current 110 MiB minus inactive_file 8 MiB
    assert reading.memory_bytes == 115_343_360 - 8_388_608
    assert reading.memory_limit_bytes == HOST_MEMORY  # memory.max "max"
    assert reading.online_cpus == 4  # no cpuset controller: the host's


def test_v2_under_a_hybrid_unified_mount(tmp_path: Path) -> None:
    """Beside v1 (no v1 controllers for the process), v2 is at ``unified/``."""
    scope = tmp_path / "unified" / "node2" / "c1"
    scope.mkdir(parents=True)
    (scope / "cpu.stat").write_text("usage_usec 1500\n")
    (tmp_path / "unified" / "cgroup.procs").write_text("")
    proc = process(tmp_path, 7, "1:name=systemd:/node2/c1\n0::/node2/c1\n")

    found = find_cgroup(7, cgroup_root=tmp_path, proc_root=proc)
    assert found.unified == scope
    assert cgroups.read_cpu_usage(found) == 1_500_000


def test_combined_cpu_cpuacct_mount(tmp_path: Path) -> None:
    """Hosts that mount ``cpu,cpuacct`` together are found too."""
    directory = tmp_path / "cpu,cpuacct" / "docker" / "c2"
    directory.mkdir(parents=True)
    (directory / "cpuacct.usage").write_text("42\n")
    proc = process(tmp_path, 8, "2:cpu,cpuacct:/docker/c2\n0::/docker/c2\n")

    found = find_cgroup(8, cgroup_root=tmp_path, proc_root=proc)
    assert found.cpuacct == directory
    assert cgroups.read_cpu_usage(found) == 42


def test_a_gone_process_is_process_gone() -> None:
    with pytest.raises(ProcessGone):
        find_cgroup(999_999, cgroup_root=V1, proc_root=PROC)


def test_a_gone_cgroup_is_process_gone_not_a_missing_metric(tmp_path: Path) -> None:
    tree = tmp_path / "cgroup"
    shutil.copytree(V1, tree)
    found = find_cgroup(4242, cgroup_root=tree, proc_root=PROC)
    assert found.memory is not None
    shutil.rmtree(found.memory)

    with pytest.raises(ProcessGone):
        read_cgroup(found, read_host_facts(PROC))


@pytest.mark.parametrize(
    ("cpu_list", "count"),
    [("0", 1), ("0-1", 2), ("0,2-3", 3), ("0-3,8-11\n", 8), ("", 0)],
)
def test_count_cpus(cpu_list: str, count: int) -> None:
    assert count_cpus(cpu_list) == count
