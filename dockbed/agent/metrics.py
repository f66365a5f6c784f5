"""The agent's last samples as Prometheus metrics, under cAdvisor's names.

A dashboard made for cAdvisor works unchanged, with two differences: ``id``
is the container's id (cAdvisor puts its cgroup path there), and only running
containers that have been sampled appear. Served from the agent's own
registry, so no process or Python metrics are mixed in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dockbed.bus.messages import ContainerStats

log = logging.getLogger(__name__)


class ContainerMetrics(Collector):
    """Exposes the samples of the latest tick; :meth:`update` replaces them."""

    def __init__(self) -> None:
        self._stats: Sequence[ContainerStats] = ()

    def update(self, stats: Sequence[ContainerStats]) -> None:
        # One reference swap: a scrape in the server's thread sees either tick.
        self._stats = tuple(stats)

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        cpu = CounterMetricFamily(
            "container_cpu_usage_seconds_total",
            "Cumulative CPU time consumed in seconds.",
            labels=["name", "id"],
        )
        working_set = GaugeMetricFamily(
            "container_memory_working_set_bytes",
            "Current working set in bytes (usage without inactive file cache).",
            labels=["name", "id"],
        )
        limit = GaugeMetricFamily(
            "container_spec_memory_limit_bytes",
            "Memory limit for the container in bytes.",
            labels=["name", "id"],
        )
        received = CounterMetricFamily(
            "container_network_receive_bytes_total",
            "Cumulative count of bytes received.",
            labels=["name", "id", "interface"],
        )
        sent = CounterMetricFamily(
            "container_network_transmit_bytes_total",
            "Cumulative count of bytes transmitted.",
            labels=["name", "id", "interface"],
        )
        for sample in stats:
            labels = [sample.name, sample.id]
            if sample.cpu_usage_ns is not None:
                cpu.add_metric(labels, sample.cpu_usage_ns / 1e9)
            if sample.memory_bytes is not None:
                working_set.add_metric(labels, sample.memory_bytes)
            if sample.memory_limit_bytes is not None:
                limit.add_metric(labels, sample.memory_limit_bytes)
            for interface, counters in sample.interfaces.items():
                received.add_metric([*labels, interface], counters.rx_bytes)
                sent.add_metric([*labels, interface], counters.tx_bytes)
        yield from (cpu, working_set, limit, received, sent)


def serve_metrics(
    metrics: ContainerMetrics, *, host: str, port: int
) -> tuple[WSGIServer, Thread]:
    """Serve ``metrics`` at ``http://host:port/metrics`` from a daemon thread.

    Raises OSError when the port cannot be bound.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("serving Prometheus metrics on http://%s:%d/metrics", host, port)
    return server, thread
