"""dockbed.agent.netdev on committed ``/proc/<pid>/net/dev`` files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockbed.agent.cgroups import ProcessGone
from dockbed.agent.netdev import read_interfaces
from dockbed.agent.rates import InterfaceCounters

PROC = Path(__file__).parent / "fixtures" / "proc"


def test_several_interfaces_without_loopback() -> None:
    assert read_interfaces(4242, proc_root=PROC) == {
        "eth0": InterfaceCounters(rx_bytes=10_485_760, tx_bytes=524_288),
        "eth1": InterfaceCounters(rx_bytes=2048, tx_bytes=1024),
    }


def test_a_count_glued_to_the_name() -> None:
    """Old kernels drop the space after ``eth0:`` once the number is wide."""
    assert read_interfaces(4343, proc_root=PROC) == {
        "eth0": InterfaceCounters(rx_bytes=12_345_678_901_234, tx_bytes=42)
    }


def test_only_loopback_is_no_interfaces() -> None:
    """A ``--network none`` container."""
    assert read_interfaces(4444, proc_root=PROC) == {}


def test_a_gone_process() -> None:
    with pytest.raises(ProcessGone):
        read_interfaces(999_999, proc_root=PROC)
