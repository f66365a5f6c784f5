"""``dockbed stats``'s view of the messages: rows, late samples, staleness, --once."""

from __future__ import annotations

import pytest

from dockbed.bus.messages import (
    ContainerEvent,
    ContainerStats,
    EventAction,
    InterfaceStats,
)
from dockbed.cli.stats import TICK_SETTLE, LiveStats, human_bytes, sample_document

TICK = 3.0
T0 = 1_700_000_000.0


def sample(
    name: str,
    timestamp: float,
    *,
    node: str = "n1",
    rated: bool = True,
) -> bytes:
    rate = 10.0 if rated else None
    return (
        ContainerStats(
            node=node,
            name=name,
            id=f"{name}-id",
            owner="alice",
            timestamp=timestamp,
            cpu_percent=rate,
            cpu_usage_ns=1000,
            memory_bytes=4 * 2**20,
            memory_limit_bytes=512 * 2**20,
            interfaces={
                "eth0": InterfaceStats(rx_bytes=1, tx_bytes=2, rx_bps=rate, tx_bps=rate)
            },
        )
        .model_dump_json()
        .encode()
    )


def event(
    name: str, action: EventAction, timestamp: float, *, node: str = "n1"
) -> bytes:
    return (
        ContainerEvent(
            node=node, name=name, id=f"{name}-id", action=action, timestamp=timestamp
        )
        .model_dump_json()
        .encode()
    )


def names(stats: LiveStats) -> list[str]:
    return [s.name for s in stats.running()]


def test_latest_sample_per_container_by_node_and_name() -> None:
    stats = LiveStats(interval=TICK)
    stats.add(sample("b", T0), now=0)
    stats.add(sample("a", T0, node="n2"), now=0)
    stats.add(sample("a", T0), now=0)
    stats.add(sample("a", T0 + TICK), now=TICK)

    assert [(s.node, s.name) for s in stats.running()] == [
        ("n1", "a"),
        ("n1", "b"),
        ("n2", "a"),
    ]
    assert stats.running()[0].timestamp == T0 + TICK


def test_stop_event_drops_the_row_and_late_samples_stay_out() -> None:
    stats = LiveStats(interval=TICK)
    stats.add(sample("a", T0), now=0)
    stats.add(event("a", "die", T0 + 1), now=1)
    assert names(stats) == []

    stats.add(sample("a", T0 + 0.5), now=1.1)  # taken before it died, come late
    assert names(stats) == []
    stats.add(sample("a", T0 + TICK), now=TICK)  # started again
    assert names(stats) == ["a"]


def test_start_event_changes_nothing() -> None:
    stats = LiveStats(interval=TICK)
    stats.add(event("a", "start", T0), now=0)
    assert names(stats) == []


def test_a_container_without_samples_for_two_and_a_half_ticks_goes() -> None:
    stats = LiveStats(interval=TICK)
    stats.add(sample("a", T0), now=0)
    stats.add(sample("b", T0), now=0)
    stats.add(sample("b", T0 + TICK), now=TICK)

    stats.drop_stale(now=2.4 * TICK)
    assert names(stats) == ["a", "b"]
    stats.drop_stale(now=2.6 * TICK)
    assert names(stats) == ["b"]


def test_the_seen_tick_overrides_the_configured_one() -> None:
    stats = LiveStats(interval=TICK)
    stats.add(sample("a", T0), now=0)
    stats.add(sample("a", T0 + 1), now=1)
    assert stats.tick_of("n1") == 1
    assert stats.tick_of("other") == TICK

    stats.drop_stale(now=1 + 2.6)
    assert names(stats) == []


def test_clocks_restart_after_an_outage() -> None:
    stats = LiveStats(interval=TICK)
    stats.add(sample("a", T0), now=0)
    stats.restart_clocks(now=100)
    stats.drop_stale(now=100 + 2 * TICK)
    assert names(stats) == ["a"]


def test_node_filter() -> None:
    stats = LiveStats(interval=TICK, node="n2")
    stats.add(sample("a", T0), now=0)
    stats.add(sample("b", T0, node="n2"), now=0)
    assert names(stats) == ["b"]


def test_once_waits_for_a_whole_tick_then_for_rates() -> None:
    stats = LiveStats(interval=TICK)
    assert not stats.complete(now=0)
    stats.add(sample("a", T0), now=0)
    assert not stats.complete(now=0.5), "the first tick may have been caught halfway"

    stats.add(sample("a", T0 + TICK), now=TICK)
    stats.add(sample("new", T0 + TICK, rated=False), now=TICK)
    assert not stats.complete(now=TICK), "the tick may not be all in yet"
    assert not stats.complete(now=TICK + TICK_SETTLE), "'new' has no rates yet"

    stats.add(sample("a", T0 + 2 * TICK), now=2 * TICK)
    stats.add(sample("new", T0 + 2 * TICK), now=2 * TICK)
    assert stats.complete(now=2 * TICK + TICK_SETTLE)


def test_messages_that_are_not_ours_are_skipped() -> None:
    stats = LiveStats(interval=TICK)
    stats.add(b"not json", now=0)
    stats.add(b'{"kind": "stats"}', now=0)
    assert stats.running() == []


def test_json_document_is_the_sample_without_its_kind() -> None:
    stats = LiveStats(interval=TICK)
    stats.add(sample("a", T0), now=0)

    assert sample_document(stats.running()[0]) == {
        "node": "n1",
        "name": "a",
        "id": "a-id",
        "owner": "alice",
        "batch": None,
        "timestamp": T0,
        "cpu_percent": 10.0,
        "cpu_usage_ns": 1000,
        "memory_bytes": 4 * 2**20,
        "memory_limit_bytes": 512 * 2**20,
        "online_cpus": None,
        "interfaces": {
            "eth0": {"rx_bytes": 1, "tx_bytes": 2, "rx_bps": 10.0, "tx_bps": 10.0}
        },
    }


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.50 KiB"),
        (100 * 2**20, "100.0 MiB"),
        (3 * 2**40, "3.00 TiB"),
        (5000 * 2**40, "5000.0 TiB"),
    ],
)
def test_human_bytes(value: float | None, shown: str) -> None:
    assert human_bytes(value) == shown
