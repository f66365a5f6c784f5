"""dockbed.agent.metrics: the last tick under cAdvisor's metric names."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from dockbed.agent.metrics import ContainerMetrics
from dockbed.bus.messages import ContainerStats, InterfaceStats


def sample(name: str, **values: object) -> ContainerStats:
    fields: dict[str, object] = {
        "node": "node1",
        "name": name,
        "id": f"{name}-id",
        "timestamp": 1.0,
        "cpu_percent": None,
        "cpu_usage_ns": 2_500_000_000,
        "memory_bytes": 4096,
        "memory_limit_bytes": 8192,
        "interfaces": {
            "eth0": InterfaceStats(rx_bytes=10, tx_bytes=20, rx_bps=None, tx_bps=None)
        },
    }
    fields.update(values)
    return ContainerStats.model_validate(fields)


def exposition(metrics: ContainerMetrics) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return generate_latest(registry).decode()


def test_cadvisor_names_and_labels() -> None:
    metrics = ContainerMetrics()
    metrics.update([sample("lab-1")])
    text = exposition(metrics)

    labels = 'id="lab-1-id",name="lab-1"'
    assert f"container_cpu_usage_seconds_total{{{labels}}} 2.5" in text
    assert f"container_memory_working_set_bytes{{{labels}}} 4096.0" in text
    assert f"container_spec_memory_limit_bytes{{{labels}}} 8192.0" in text
    net = 'id="lab-1-id",interface="eth0",name="lab-1"'
    assert f"container_network_receive_bytes_total{{{net}}} 10.0" in text
    assert f"container_network_transmit_bytes_total{{{net}}} 20.0" in text


def test_an_unread_quantity_is_absent_not_zero() -> None:
    metrics = ContainerMetrics()
    metrics.update([sample("lab-2", memory_bytes=None)])
    text = exposition(metrics)
    assert "container_memory_working_set_bytes{" not in text
    assert 'container_cpu_usage_seconds_total{id="lab-2-id"' in text


def test_a_stopped_container_leaves_with_the_next_tick() -> None:
    metrics = ContainerMetrics()
    metrics.update([sample("lab-1"), sample("lab-3")])
    metrics.update([sample("lab-3")])
    assert 'name="lab-1"' not in exposition(metrics)
