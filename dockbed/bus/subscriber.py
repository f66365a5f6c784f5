"""Read ``amq.topic`` as a viewer over AMQP: the terminal's live views.

A :class:`Subscription` is one blocking connection with one server-named,
exclusive queue bound with the viewer's binding keys, the AMQP twin of the
page's Web STOMP subscriptions: the broker checks each binding against the
viewer's topic read permission. pika's errors are mapped here, once: a
binding or login the broker refuses is PermissionDenied, anything else
(broker unreachable, connection lost) BrokerError. Not thread-safe, like
pika's BlockingConnection under it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from dockbed.bus.publisher import BrokerCredentials
from dockbed.bus.routing import EXCHANGE
from dockbed.errors import BrokerError, PermissionDenied

log = logging.getLogger(__name__)

#: AMQP's reply code for "access refused".
ACCESS_REFUSED = 403


class Subscription:
    """Messages routed to ``bindings`` on ``amq.topic``, as they arrive."""

    def __init__(
        self,
        credentials: BrokerCredentials,
        bindings: Sequence[str],
        *,
        connection_name: str,
    ) -> None:
        self.credentials = credentials
        self.bindings = list(bindings)
        self._connection_name = connection_name
        self._connection: pika.BlockingConnection | None = None
        self._inbox: list[tuple[str, bytes]] = []

    @property
    def where(self) -> str:
        credentials = self.credentials
        return f"{credentials.username}@{credentials.host}:{credentials.port}"

    def open(self) -> None:
        """Connect, declare the queue and bind it with every key.

        Raises PermissionDenied when the broker refuses the login or one of
        the bindings, BrokerError when it cannot be reached.
        """
        self.close()
        binding = None
        try:
            connection = pika.BlockingConnection(
                self.credentials.parameters(self._connection_name)
            )
            self._connection = connection
            channel = connection.channel()
            queue = channel.queue_declare("", exclusive=True, auto_delete=True)
            name = queue.method.queue
            for binding in self.bindings:
                channel.queue_bind(name, EXCHANGE, binding)
            channel.basic_consume(name, self._on_message, auto_ack=True)
        except pika.exceptions.ChannelClosedByBroker as error:
            self.close()
            if error.reply_code == ACCESS_REFUSED:
                raise PermissionDenied(
                    f"the broker refused {self.credentials.username} the binding "
                    f"{binding!r}: {error.reply_text}",
                    binding=binding,
                    user=self.credentials.username,
                ) from error
            raise BrokerError(
                f"the broker closed the subscription: {error.reply_text}"
            ) from error
        except pika.exceptions.ProbableAuthenticationError as error:
            self.close()
            raise PermissionDenied(
                f"the broker refused the login of {self.credentials.username}",
                hint="its password comes from the dockbed server: ask an admin to "
                "run `dockbed broker setup` on the broker's host",
                user=self.credentials.username,
            ) from error
        except (pika.exceptions.AMQPError, OSError) as error:
            self.close()
            raise BrokerError(
                f"cannot reach the broker at {self.where}: {error!r}",
                hint="check that RabbitMQ runs (`dockbed broker setup`)",
                host=self.credentials.host,
                port=self.credentials.port,
            ) from error
        log.debug("subscribed to %s as %s", self.bindings, self.where)

    def receive(self, timeout: float) -> list[tuple[str, bytes]]:
        """``(routing key, body)`` of what arrives within ``timeout`` seconds.

        Returns as soon as something has arrived (with all that is ready by
        then), or empty-handed at the timeout. Raises BrokerError when the
        connection is lost; :meth:`open` makes a new one.
        """
        connection = self._connection
        if connection is None:
            raise BrokerError(f"not subscribed to {self.where}")
        deadline = time.monotonic() + timeout
        try:
            while not self._inbox:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                connection.process_data_events(time_limit=remaining)
            connection.process_data_events(time_limit=0)
        except (pika.exceptions.AMQPError, OSError) as error:
            self.close()
            raise BrokerError(
                f"lost the broker at {self.where}: {error!r}",
                host=self.credentials.host,
            ) from error
        received, self._inbox = self._inbox, []
        return received

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                log.debug("closing the subscription failed", exc_info=True)

    def __enter__(self) -> Subscription:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _on_message(
        self,
        channel: BlockingChannel,
        method: Any,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        self._inbox.append((str(method.routing_key), body))
