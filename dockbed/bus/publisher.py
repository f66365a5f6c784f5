"""Publish to ``amq.topic`` over one AMQP connection that mends itself.

Live stats are worth nothing late, so while the broker cannot be reached a
message is dropped, not queued: :meth:`Publisher.publish` says whether it went
out. The connection is (re)opened on demand, at most once per back-off delay,
which doubles from half a second up to ``max_delay``; the caller's loop never
sees a pika exception. Not thread-safe (pika's BlockingConnection is not): use
one publisher from one thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from dockbed.bus.routing import EXCHANGE

log = logging.getLogger(__name__)

FIRST_DELAY = 0.5
#: Seconds one connection attempt may take before it counts as failed.
CONNECT_TIMEOUT = 5.0
HEARTBEAT = 30


@dataclass(frozen=True)
class BrokerCredentials:
    """Who connects to which broker. ``repr`` never shows the password."""

    username: str
    password: str
    host: str = "127.0.0.1"
    port: int = 5672
    vhost: str = "/"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(username={self.username!r}, host={self.host!r}, "
            f"port={self.port}, vhost={self.vhost!r})"
        )

    def parameters(self, connection_name: str) -> pika.ConnectionParameters:
        """pika's parameters for one connection attempt, named for the broker."""
        return pika.ConnectionParameters(
            host=self.host,
            port=self.port,
            virtual_host=self.vhost,
            credentials=pika.PlainCredentials(self.username, self.password),
            heartbeat=HEARTBEAT,
            connection_attempts=1,
            socket_timeout=CONNECT_TIMEOUT,
            blocked_connection_timeout=CONNECT_TIMEOUT * 6,
            client_properties={"connection_name": connection_name},
        )


class Publisher:
    """Publishes JSON bodies to ``amq.topic``, reconnecting when it must."""

    def __init__(
        self,
        credentials: BrokerCredentials,
        *,
        connection_name: str,
        max_delay: float = 3.0,
    ) -> None:
        self._parameters = credentials.parameters(connection_name)
        self._where = f"{credentials.username}@{credentials.host}:{credentials.port}"
        self._max_delay = max_delay
        self._delay = FIRST_DELAY
        self._next_attempt = 0.0
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._outage_logged = False
        #: Messages dropped since the last successful publish, for the log.
        self.dropped = 0

    @property
    def connected(self) -> bool:
        return self._channel is not None and self._channel.is_open

    def publish(
        self, routing_key: str, body: bytes, *, expiration_ms: int | None = None
    ) -> bool:
        """Send one message; ``False`` if the broker could not be reached.

        ``expiration_ms`` bounds how long it may wait in a slow subscriber's
        queue: a sample older than a few ticks only misleads.
        """
        return (
            self.publish_many([(routing_key, body)], expiration_ms=expiration_ms) == 1
        )

    def publish_many(
        self,
        messages: Iterable[tuple[str, bytes]],
        *,
        expiration_ms: int | None = None,
    ) -> int:
        """Send ``(routing key, body)`` pairs in one write; how many went out.

        A tick's samples go out together: queued on the channel and flushed
        once. FIXME(pika 1.x): ``BlockingChannel.basic_publish`` flushes and
        polls after every message, four times the CPU of this (about 120 µs
        against 30 µs a message here), and pika offers no public batch
        publish, so the messages are queued on the channel it wraps.
        """
        batch = list(messages)
        channel = self._open_channel()
        if channel is None:
            self.dropped += len(batch)
            return 0
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=1,
            expiration=None if expiration_ms is None else str(expiration_ms),
        )
        queue_message = getattr(channel, "_impl", channel).basic_publish
        try:
            for routing_key, body in batch:
                queue_message(EXCHANGE, routing_key, body, properties)
            if self._connection is not None:
                self._connection.process_data_events(time_limit=0)
        except (pika.exceptions.AMQPError, OSError) as error:
            self._lost(error)
            self.dropped += len(batch)
            return 0
        if self.dropped:
            log.info(
                "broker %s: %d messages dropped meanwhile", self._where, self.dropped
            )
            self.dropped = 0
        return len(batch)

    def poll(self) -> None:
        """Let the connection answer heartbeats between ticks."""
        if self._connection is None:
            return
        try:
            self._connection.process_data_events(time_limit=0)
        except (pika.exceptions.AMQPError, OSError) as error:
            self._lost(error)

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                log.debug("closing the broker connection failed", exc_info=True)

    def _open_channel(self) -> BlockingChannel | None:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        if self._connection is not None and self._connection.is_open:
            # The broker closed only the channel (a refused publish): reopen it.
            try:
                self._channel = self._connection.channel()
                return self._channel
            except (pika.exceptions.AMQPError, OSError) as error:
                self._lost(error)
        now = time.monotonic()
        if now < self._next_attempt:
            return None
        try:
            self._connection = pika.BlockingConnection(self._parameters)
            self._channel = self._connection.channel()
        except (pika.exceptions.AMQPError, OSError) as error:
            self._connection = self._channel = None
            self._next_attempt = now + self._delay
            self._delay = min(self._delay * 2, self._max_delay)
            if not self._outage_logged:
                log.warning(
                    "broker %s cannot be reached: %r; retrying", self._where, error
                )
                self._outage_logged = True
            else:
                log.debug("broker %s still unreachable: %r", self._where, error)
            return None
        log.info("connected to the broker %s", self._where)
        self._delay = FIRST_DELAY
        self._outage_logged = False
        return self._channel

    def _lost(self, error: BaseException) -> None:
        log.warning("lost the broker %s: %r", self._where, error)
        self._outage_logged = True
        self.close()
