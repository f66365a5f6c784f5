"""The agent as a long-running service: sample, publish, forward events.

One thread does all the publishing (pika's connection is not thread-safe): it
samples every ``agent.interval`` seconds and, between ticks, forwards the
engine events that a second thread reads from the engine's event stream. A
broker that goes away costs the ticks until it is back (see
:mod:`dockbed.bus.publisher`); an engine that goes away costs the ticks until
it answers again. Neither ends the loop; only :meth:`Agent.stop` does.
"""

from __future__ import annotations

import logging
import queue
import resource
import threading
import time
from collections.abc import Mapping
from typing import Any

import docker

from dockbed.agent.collector import Collector
from dockbed.agent.metrics import ContainerMetrics, serve_metrics
from dockbed.bus.broker import agent_credentials
from dockbed.bus.messages import ContainerStats
from dockbed.bus.publisher import Publisher
from dockbed.bus.routing import event_key, node_key, stats_key
from dockbed.config import Settings
from dockbed.engine.client import connect, settings_tls
from dockbed.errors import EngineError

log = logging.getLogger(__name__)

#: Longest pause between answering the broker's heartbeats while waiting.
_POLL_SECONDS = 1.0
#: Ticks a sample may wait in a subscriber's queue before the broker drops it.
_EXPIRY_TICKS = 3
_EVENT_RETRY_SECONDS = 2.0
#: Put on the event queue when the event stream (re)starts: events may have
#: been missed, so the collector reads the engine's list again.
_RESYNC: Mapping[str, Any] = {"Type": "dockbed", "Action": "resync"}


class Agent:
    """Samples one engine's containers and publishes them to the broker."""

    def __init__(
        self,
        settings: Settings,
        *,
        client: docker.DockerClient,
        publisher: Publisher,
        collector: Collector | None = None,
    ) -> None:
        self.settings = settings
        self.interval = settings.agent.interval
        self.client = client
        self.publisher = publisher
        self.collector = collector or Collector(
            client,
            node=settings.node_name,
            cgroup_root=settings.agent.cgroup_root,
            proc_root=settings.agent.proc_root,
        )
        self.metrics = ContainerMetrics()
        self._events: queue.Queue[Mapping[str, Any]] = queue.Queue()
        self._stopping = threading.Event()
        self._event_stream: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Agent:
        """The agent of ``settings.node_name``, its engine and broker user.

        Raises EngineUnavailable if the engine does not answer now, and
        BrokerError if the agent has no broker password; once running, it
        outlives outages of either.
        """
        credentials = agent_credentials(settings)
        client = connect(settings.engine_url, tls=settings_tls(settings))
        # Half a tick at most, so that a broker back again is tried next tick.
        max_delay = min(settings.agent.reconnect_max_delay, settings.agent.interval / 2)
        publisher = Publisher(
            credentials,
            connection_name=f"dockbed agent {settings.node_name}",
            max_delay=max_delay,
        )
        return cls(settings, client=client, publisher=publisher)

    def run(self) -> None:
        """Tick until :meth:`stop`; serves metrics and forwards events meanwhile."""
        agent = self.settings.agent
        _raise_file_limit()
        server = None
        if agent.metrics_port is not None:
            try:
                server, _ = serve_metrics(
                    self.metrics, host=agent.metrics_host, port=agent.metrics_port
                )
            except OSError as error:
                # Stats matter more than metrics: go on without them, loudly.
                log.error(
                    "cannot serve metrics on %s:%d (%s); going on without",
                    agent.metrics_host,
                    agent.metrics_port,
                    error,
                )
        events = threading.Thread(
            target=self._read_events, name="engine-events", daemon=True
        )
        events.start()
        log.info(
            "agent of node %s sampling every %g s", self.collector.node, self.interval
        )
        try:
            next_tick = time.monotonic()
            while not self._stopping.is_set():
                self.tick()
                next_tick += self.interval
                # A tick that overran starts the next one now, not a burst.
                next_tick = max(next_tick, time.monotonic())
                self._forward_events_until(next_tick)
        finally:
            self._close_event_stream()
            self.collector.close()
            self.publisher.close()
            if server is not None:
                server.shutdown()
                server.server_close()
            log.info("agent of node %s stopped", self.collector.node)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current step (any thread)."""
        self._stopping.set()
        self._close_event_stream()

    def tick(self) -> list[ContainerStats]:
        """Sample every running container once and publish the samples."""
        try:
            stats = self.collector.collect()
        except EngineError as error:
            log.warning("cannot sample node %s: %s", self.collector.node, error)
            return []
        self.metrics.update(stats)

        summary = self.collector.summarize(stats)
        messages = [
            (
                stats_key(sample.node, sample.owner, sample.name),
                sample.model_dump_json().encode(),
            )
            for sample in stats
        ]
        messages.append((node_key(summary.node), summary.model_dump_json().encode()))
        self.publisher.publish_many(
            messages, expiration_ms=int(self.interval * _EXPIRY_TICKS * 1000)
        )
        return stats

    def _forward_events_until(self, deadline: float) -> None:
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                event = self._events.get(timeout=min(remaining, _POLL_SECONDS))
            except queue.Empty:
                self.publisher.poll()
                continue
            if event is _RESYNC:
                self.collector.resync()
                continue
            message = self.collector.on_event(event)
            if message is not None:
                self.publisher.publish(
                    event_key(message.node, message.owner, message.name),
                    message.model_dump_json().encode(),
                )

    def _read_events(self) -> None:
        """Feed the engine's container events to the queue, reconnecting."""
        said = False
        while not self._stopping.is_set():
            try:
                self._event_stream = self.client.api.events(
                    decode=True, filters={"type": "container"}
                )
                said = False
                self._events.put(_RESYNC)
                for event in self._event_stream:
                    self._events.put(event)
            except Exception as error:  # this thread must outlive any failure
                if self._stopping.is_set():
                    return
                if not said:
                    log.warning("engine events interrupted: %s; retrying", error)
                    said = True
            self._stopping.wait(_EVENT_RETRY_SECONDS)

    def _close_event_stream(self) -> None:
        stream, self._event_stream = self._event_stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception:  # closing a dead stream may raise anything
                log.debug("closing the event stream failed", exc_info=True)


def _raise_file_limit() -> None:
    """Allow as many open files as the hard limit: four a container are kept."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    wanted = 1 << 20 if hard == unlimited else hard
    if soft != unlimited and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            log.debug("the open-file limit stays at %d", soft)
