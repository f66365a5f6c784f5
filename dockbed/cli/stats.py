"""``dockbed stats``: the monitor page's table in a terminal, live or once.

Like the page, the command is a client of the server for who may see what:
it asks ``GET /api/v1/monitor/subscription`` (with the caller's token) for
its user's broker login and binding keys, then subscribes to ``amq.topic``
over AMQP itself (:mod:`dockbed.bus.subscriber`), so the broker's topic
permissions keep a non-admin to their own containers.

A container is on show from its first sample until a stop, die or destroy
event names it, or until 2.5 of its node's ticks pass without a sample; a
sample older than the event that stopped its container is ignored.

``--once`` waits for one full tick of every node heard from and returns as
soon as each container's latest sample has rates; a container first seen
this tick has none (``null``) yet, so it then waits for the next tick, but
never longer than two ticks and a second in all: what has arrived by then is
printed, a ``null`` rate included. A user with no running container gets an
empty list after that wait.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import Field, TypeAdapter, ValidationError
from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from dockbed.bus.messages import ContainerEvent, ContainerStats, NodeSummary
from dockbed.bus.publisher import BrokerCredentials
from dockbed.bus.subscriber import Subscription
from dockbed.cli.client import ApiClient, call, default_client
from dockbed.cli.output import console, error_console, print_json
from dockbed.errors import (
    AuthenticationRequired,
    BrokerError,
    DockbedError,
    PermissionDenied,
)

log = logging.getLogger(__name__)

#: Ticks without a sample after which a container counts as gone.
STALE_TICKS = 2.5
#: ``--once`` waits at most this many ticks, plus ``ONCE_MARGIN`` seconds.
ONCE_TICKS = 2
ONCE_MARGIN = 1.0
#: Seconds after a tick's first message by which the rest of it has arrived
#: (an agent sends a tick's samples in one write).
TICK_SETTLE = 0.25
#: Longest wait between two attempts to reach a lost broker again.
RECONNECT_MAX_DELAY = 15.0
GONE_ACTIONS = frozenset({"stop", "die", "destroy"})

Message = Annotated[
    ContainerStats | ContainerEvent | NodeSummary, Field(discriminator="kind")
]
_messages: TypeAdapter[Message] = TypeAdapter(Message)


@dataclass(frozen=True)
class Viewer:
    """What the server answered: a broker login, the keys, the agents' tick."""

    credentials: BrokerCredentials
    bindings: list[str]
    interval: float
    nodes: list[str]

    @classmethod
    def from_server(cls, client: ApiClient) -> Viewer:
        answer: dict[str, Any] = client.get("/monitor/subscription")
        credentials = BrokerCredentials(
            username=answer["username"],
            password=answer["password"],
            host=answer["amqp_host"],
            port=int(answer["amqp_port"]),
            vhost=answer["vhost"],
        )
        return cls(
            credentials,
            list(answer["bindings"]),
            float(answer["interval"]),
            list(answer["nodes"]),
        )


@dataclass
class _NodeTicks:
    first: float
    latest: float
    #: ``time.monotonic()`` when the latest tick's first message arrived.
    latest_arrived: float
    previous: float | None = None

    @property
    def interval(self) -> float | None:
        return None if self.previous is None else self.latest - self.previous


@dataclass
class LiveStats:
    """The latest sample of every running container, from the messages so far.

    Pure: the caller passes ``now`` (``time.monotonic()``) in, so the unit
    tests replay messages without a clock.
    """

    interval: float
    node: str | None = None
    samples: dict[tuple[str, str], ContainerStats] = field(default_factory=dict)
    received: dict[tuple[str, str], float] = field(default_factory=dict)
    #: Per container, the time of the event that ended it: older samples are late.
    gone: dict[tuple[str, str], float] = field(default_factory=dict)
    ticks: dict[str, _NodeTicks] = field(default_factory=dict)

    def add(self, body: bytes, now: float) -> None:
        """Take one message body in; one that is not ours is logged and skipped."""
        try:
            message = _messages.validate_json(body)
        except ValidationError as error:
            log.debug("skipped a message that is not dockbed's: %s", error)
            return
        if self.node is not None and message.node != self.node:
            return
        if isinstance(message, ContainerStats):
            self._add_sample(message, now)
        elif isinstance(message, ContainerEvent) and message.action in GONE_ACTIONS:
            key = (message.node, message.id)
            self.gone[key] = max(self.gone.get(key, 0.0), message.timestamp)
            self._forget(key)

    def _add_sample(self, sample: ContainerStats, now: float) -> None:
        key = (sample.node, sample.id)
        if sample.timestamp <= self.gone.get(key, float("-inf")):
            return
        self.samples[key] = sample
        self.received[key] = now
        ticks = self.ticks.get(sample.node)
        if ticks is None:
            self.ticks[sample.node] = _NodeTicks(
                sample.timestamp, sample.timestamp, now
            )
        elif sample.timestamp > ticks.latest:
            ticks.previous, ticks.latest = ticks.latest, sample.timestamp
            ticks.latest_arrived = now

    def _forget(self, key: tuple[str, str]) -> None:
        self.samples.pop(key, None)
        self.received.pop(key, None)

    def restart_clocks(self, now: float) -> None:
        """After an outage: nothing could arrive, so no container is late yet."""
        for key in self.received:
            self.received[key] = now

    def tick_of(self, node: str) -> float:
        """Seconds between two of ``node``'s ticks: as seen, else the configured."""
        ticks = self.ticks.get(node)
        seen = ticks.interval if ticks is not None else None
        return seen if seen is not None and 0.1 < seen < 120 else self.interval

    def drop_stale(self, now: float) -> None:
        """Forget the containers whose samples stopped coming."""
        for key, received in list(self.received.items()):
            if now - received > STALE_TICKS * self.tick_of(key[0]):
                self._forget(key)

    def running(self) -> list[ContainerStats]:
        """The latest sample of each container on show, by node and name."""
        return sorted(self.samples.values(), key=lambda s: (s.node, s.name, s.id))

    def complete(self, now: float) -> bool:
        """Whether ``--once`` has what it waits for (see the module docstring)."""
        if not self.ticks:
            return False
        whole_tick = all(
            ticks.latest > ticks.first and now - ticks.latest_arrived >= TICK_SETTLE
            for ticks in self.ticks.values()
        )
        return whole_tick and all(_has_rates(s) for s in self.samples.values())


def _has_rates(sample: ContainerStats) -> bool:
    return sample.cpu_percent is not None and all(
        i.rx_bps is not None and i.tx_bps is not None
        for i in sample.interfaces.values()
    )


def sample_document(sample: ContainerStats) -> dict[str, Any]:
    """One sample for ``--json``: the agent's message without its ``kind``."""
    return sample.model_dump(mode="json", exclude={"kind"})


# --- rendering ------------------------------------------------------------


def human_bytes(value: float | None) -> str:
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(amount) < 1024 or unit == "TiB":
            break
        amount /= 1024
    if unit == "B":
        return f"{amount:.0f} B"
    return f"{amount:.2f} {unit}" if amount < 10 else f"{amount:.1f} {unit}"


def human_rate(value: float | None) -> str:
    return "—" if value is None else f"{human_bytes(value)}/s"


def stats_table(samples: Iterable[ContainerStats], *, caption: str = "") -> Table:
    """The page's columns: name, id, node, CPU %, memory used / limit, rx / tx."""
    table = Table(header_style="bold", caption=caption, caption_justify="left")
    table.add_column("NAME", no_wrap=True)
    table.add_column("ID", no_wrap=True)
    table.add_column("NODE")
    table.add_column("CPU %", justify="right")
    table.add_column("MEMORY", justify="right", no_wrap=True)
    table.add_column("", width=12)
    table.add_column("NETWORK rx / tx", no_wrap=True)
    for sample in samples:
        cpu = "—" if sample.cpu_percent is None else f"{sample.cpu_percent:.2f}"
        limit = sample.memory_limit_bytes
        used = sample.memory_bytes
        bar: RenderableType = (
            ProgressBar(total=limit, completed=min(used, limit), width=12)
            if used is not None and limit
            else Text("")
        )
        network = (
            Group(
                *(
                    Text.assemble(
                        (f"{name:<6}", "dim"),
                        f" ↓ {human_rate(counters.rx_bps):>11}",
                        f"  ↑ {human_rate(counters.tx_bps):>11}",
                    )
                    for name, counters in sorted(sample.interfaces.items())
                )
            )
            if sample.interfaces
            else Text("no interfaces", style="dim")
        )
        table.add_row(
            sample.name,
            sample.id[:12],
            sample.node,
            cpu,
            f"{human_bytes(used)} / {human_bytes(limit)}",
            bar,
            network,
        )
    return table


def _caption(stats: LiveStats, status: str) -> str:
    running = stats.running()
    cpu = sum(s.cpu_percent or 0.0 for s in running)
    memory = sum(s.memory_bytes or 0 for s in running)
    latest = max((s.timestamp for s in running), default=None)
    when = datetime.fromtimestamp(latest).strftime("%H:%M:%S") if latest else "—"
    return (
        f"{status} · {len(running)} running · CPU {cpu:.1f} % · "
        f"memory {human_bytes(memory)} · last sample {when} · Ctrl-C to quit"
    )


# --- the command ------------------------------------------------------------


def stats_command(
    once: Annotated[
        bool, typer.Option("--once", help="print one sample and exit")
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="one sample as a JSON list (implies --once)"),
    ] = False,
    node: Annotated[
        str | None, typer.Option("--node", "-n", help="only this node's containers")
    ] = None,
) -> None:
    """Live CPU, memory and network of your running containers (admins: all)."""
    client = default_client()
    viewer = call(lambda: Viewer.from_server(client))
    if node is not None and node not in viewer.nodes:
        # An agent may publish for a node the server does not drive: wait anyway.
        error_console.print(
            f"[yellow]warning:[/] {node!r} is not one of the server's nodes "
            f"({', '.join(viewer.nodes)}); showing its samples if any arrive",
            highlight=False,
        )
    stats = LiveStats(interval=viewer.interval, node=node)
    if once or json_output:
        call(lambda: _collect_once(viewer, stats))
        if json_output:
            print_json([sample_document(s) for s in stats.running()])
        else:
            console.print(stats_table(stats.running()))
        return
    with contextlib.suppress(KeyboardInterrupt):
        call(lambda: _watch(client, viewer, stats))


def _collect_once(viewer: Viewer, stats: LiveStats) -> None:
    with Subscription(
        viewer.credentials, viewer.bindings, connection_name="dockbed stats --once"
    ) as subscription:
        deadline = time.monotonic() + ONCE_TICKS * viewer.interval + ONCE_MARGIN
        while (now := time.monotonic()) < deadline and not stats.complete(now):
            for _, body in subscription.receive(min(0.1, deadline - now)):
                stats.add(body, time.monotonic())
        stats.drop_stale(time.monotonic())


def _watch(client: ApiClient, viewer: Viewer, stats: LiveStats) -> None:
    """Keep the table live until Ctrl-C; a lost broker is tried again."""
    subscription: Subscription | None = None
    delay = 1.0
    status = "connecting…"
    with Live(
        stats_table([], caption=status), console=console, refresh_per_second=4
    ) as live:
        while True:
            if subscription is None:
                try:
                    viewer = Viewer.from_server(client)
                    subscription = Subscription(
                        viewer.credentials,
                        viewer.bindings,
                        connection_name="dockbed stats",
                    )
                    subscription.open()
                    status, delay = "live", 1.0
                    stats.restart_clocks(time.monotonic())
                except (PermissionDenied, AuthenticationRequired):
                    raise
                except DockbedError as error:  # the server or the broker: retried
                    subscription = None
                    status = f"disconnected — reconnecting ({_reason(error)})"
                    live.update(stats_table(stats.running(), caption=status))
                    time.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX_DELAY)
                    continue
            try:
                for _, body in subscription.receive(0.5):
                    stats.add(body, time.monotonic())
            except BrokerError as error:
                subscription = None
                status = f"disconnected — reconnecting ({_reason(error)})"
            if subscription is not None:
                stats.drop_stale(time.monotonic())
            live.update(stats_table(stats.running(), caption=_caption(stats, status)))


def _reason(error: DockbedError) -> str:
    return error.message
