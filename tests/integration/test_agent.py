"""The agent on the real engine and broker: values, events, outages, permissions.

The broker is set up once per session by ``setup_broker`` (and stopped again
only if this session started it). One agent, for a node of its own name, runs
in a thread with a one-second tick; every container and network made here is
named ``dbagent-test-*`` and removed afterwards. Waits poll a condition
against a deadline.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import statistics
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pika
import pika.exceptions
import pytest

from dockbed.agent.service import Agent
from dockbed.bus.broker import (
    agent_credentials,
    ensure_viewer,
    remove_agent_user,
    remove_viewer,
    setup_broker,
    stop_broker,
)
from dockbed.bus.messages import ContainerStats
from dockbed.bus.publisher import BrokerCredentials
from dockbed.bus.routing import EXCHANGE, routing_word, stats_key
from dockbed.config import Settings, get_settings

pytestmark = [pytest.mark.integration, pytest.mark.broker]
log = logging.getLogger(__name__)

TICK = 1.0
IMAGE = "dockbed/lab:bookworm"
TAG = uuid.uuid4().hex[:6]
PREFIX = f"dbagent-test-{TAG}"
ALICE, BOB = f"{PREFIX}-alice", f"{PREFIX}-bob"
MiB = 2**20
TRANSFER = 10 * MiB
RECEIVE = """
import socket
server = socket.create_server(("", 5001))
connection, _ = server.accept()
while connection.recv(1 << 16):
    pass
connection.close()
"""
#: Run with ``.format(address=..., size=...)``.
SEND = """
import socket, time
deadline = time.monotonic() + 10
while True:
    try:
        connection = socket.create_connection(("{address}", 5001), timeout=5)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
connection.sendall(bytes({size}))
connection.shutdown(socket.SHUT_WR)
connection.recv(1)
"""


# --- fixtures --------------------------------------------------------------


@pytest.fixture(scope="session")
def broker_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    base = get_settings()
    root = tmp_path_factory.mktemp("broker")
    settings = base.model_copy(
        update={
            "node_name": PREFIX,
            "state_dir": root / "state",
            "log_dir": root / "log",
            "agent": base.agent.model_copy(
                update={"interval": TICK, "metrics_port": None}
            ),
        }
    )
    setup = setup_broker(settings)
    yield settings
    for user in (ALICE, BOB, f"{PREFIX}-admin"):
        remove_viewer(settings, user)
    remove_agent_user(settings, PREFIX)
    if setup.started:
        stop_broker()


@pytest.fixture(scope="module")
def agent(broker_settings: Settings) -> Iterator[Agent]:
    agent = Agent.from_settings(broker_settings)
    thread = threading.Thread(target=agent.run, name="agent", daemon=True)
    thread.start()
    yield agent
    agent.stop()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the agent did not stop"


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=get_settings().engine_url)
    yield client
    client.close()


class Lab:
    """Containers and networks a test made, removed when it ends."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.containers: list[Any] = []
        self.networks: list[Any] = []

    def run(self, stem: str, command: list[str], **options: Any) -> Any:
        if "network" not in options:
            options.setdefault("network_mode", "none")
        container = self.client.containers.run(
            IMAGE, command, name=f"{PREFIX}-{stem}", detach=True, **options
        )
        self.containers.append(container)
        return container

    def network(self, stem: str) -> Any:
        network = self.client.networks.create(f"{PREFIX}-{stem}", driver="bridge")
        self.networks.append(network)
        return network

    def remove_all(self) -> None:
        for container in self.containers:
            container.remove(force=True)
        for network in self.networks:
            network.remove()


@pytest.fixture
def lab(engine: docker.DockerClient) -> Iterator[Lab]:
    made = Lab(engine)
    yield made
    made.remove_all()


class Subscriber:
    """An AMQP subscription to amq.topic, as a page's would be."""

    def __init__(self, credentials: BrokerCredentials, bindings: list[str]) -> None:
        self.credentials = credentials
        self.bindings = bindings
        self.connect()

    def connect(self) -> None:
        self.connection = pika.BlockingConnection(
            self.credentials.parameters("dbagent-test subscriber")
        )
        self.channel = self.connection.channel()
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        for binding in self.bindings:
            self.channel.queue_bind(self.queue, EXCHANGE, binding)

    def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float,
        *,
        kind: str = "stats",
    ) -> dict[str, Any]:
        """The first ``kind`` message that passes ``predicate`` within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, _, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                self.connection.process_data_events(time_limit=0.05)
                continue
            message: dict[str, Any] = json.loads(body)
            if message["kind"] == kind and predicate(message):
                return message
        raise AssertionError(f"no matching message within {timeout} s")

    def samples(self, name: str, count: int, timeout: float) -> list[dict[str, Any]]:
        """``count`` samples of container ``name`` that have rates."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            found.append(
                self.wait_for(
                    lambda m: (
                        m.get("name") == name and m.get("cpu_percent") is not None
                    ),
                    deadline - time.monotonic(),
                )
            )
        return found

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


@pytest.fixture
def admin_view(broker_settings: Settings, agent: Agent) -> Iterator[Subscriber]:
    viewer = ensure_viewer(broker_settings, f"{PREFIX}-admin", True)
    # This agent's node only: another agent on this engine (a developer's
    # own, a parallel session's) samples the same containers.
    node = routing_word(PREFIX)
    subscriber = Subscriber(
        viewer, [f"dockbed.stats.{node}.#", f"dockbed.events.{node}.#"]
    )
    yield subscriber
    subscriber.close()


def sleeper(lab: Lab, stem: str, **options: Any) -> Any:
    return lab.run(stem, ["sleep", "infinity"], **options)


# --- values ------------------------------------------------------------------


def test_half_a_cpu_reads_fifty_percent(lab: Lab, admin_view: Subscriber) -> None:
    # Its full share of CPU weight, so that other containers on a busy node
    # do not take its half CPU: the test is of the reading, not the scheduler.
    spinner = lab.run(
        "spin",
        ["python3", "-c", "while True: pass"],
        nano_cpus=500_000_000,
        cpu_shares=262_144,
    )
    samples = admin_view.samples(spinner.name, count=7, timeout=15 * TICK)

    cpu = statistics.median(sample["cpu_percent"] for sample in samples[1:])
    log.info("a spinner under 0.5 CPU reads %.1f %%", cpu)
    assert 40 <= cpu <= 60, [s["cpu_percent"] for s in samples]
    ContainerStats.model_validate(samples[-1])


def test_hundred_mib_of_anonymous_memory(lab: Lab, admin_view: Subscriber) -> None:
    holder = lab.run(
        "mem",
        [
            "python3",
            "-c",
            "import time; b = bytearray(b'x') * (100 * 2**20); time.sleep(3600)",
        ],
        mem_limit="256m",
    )
    sample = admin_view.wait_for(
        lambda m: (
            m.get("name") == holder.name and (m.get("memory_bytes") or 0) > 90 * MiB
        ),
        timeout=10 * TICK,
    )
    log.info("100 MiB held read %.1f MiB", sample["memory_bytes"] / MiB)
    assert 85 * MiB <= sample["memory_bytes"] <= 115 * MiB, sample["memory_bytes"]
    assert sample["memory_limit_bytes"] == 256 * MiB


def test_ten_megabytes_show_in_rx_and_tx(
    lab: Lab, admin_view: Subscriber, engine: docker.DockerClient
) -> None:
    network = lab.network("net")
    receiver = sleeper(lab, "rx", network=network.name)
    sender = sleeper(lab, "tx", network=network.name)
    receiver.reload()
    address = receiver.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]

    def counters(name: str) -> dict[str, Any]:
        sample = admin_view.wait_for(
            lambda m: m.get("name") == name and "eth0" in m["interfaces"],
            timeout=5 * TICK,
        )
        return dict(sample["interfaces"]["eth0"])

    rx_before = counters(receiver.name)["rx_bytes"]
    tx_before = counters(sender.name)["tx_bytes"]

    # Not iperf3: it may end a test with data still unsent. This sender waits
    # for the receiver to have read everything and closed.
    receiver.exec_run(["python3", "-c", RECEIVE], detach=True)
    code, output = sender.exec_run(
        ["python3", "-c", SEND.format(address=address, size=TRANSFER)]
    )
    assert code == 0, output.decode(errors="replace")

    size = TRANSFER
    rates: list[float] = []
    received = sent = 0
    deadline = time.monotonic() + 10 * TICK
    while (received < size or sent < size) and time.monotonic() < deadline:
        try:
            message = admin_view.wait_for(
                lambda m: m.get("name") in {receiver.name, sender.name},
                timeout=deadline - time.monotonic(),
            )
        except AssertionError:
            break  # the assertions below say what was seen
        eth0 = message["interfaces"]["eth0"]
        if message["name"] == receiver.name:
            received = eth0["rx_bytes"] - rx_before
            rates.append(eth0["rx_bps"] or 0.0)
        else:
            sent = eth0["tx_bytes"] - tx_before
    assert received >= size, received
    assert sent >= size, sent
    # The transfer falls into one tick, or two: one of them shows >= 5 MB/s.
    log.info(
        "10 MB transfer: rx +%d, tx +%d, peak %.1f MB/s",
        received,
        sent,
        max(rates) / 1e6,
    )
    assert max(rates) >= 5 * 2**20 / TICK, rates


def test_event_is_forwarded(lab: Lab, admin_view: Subscriber) -> None:
    container = sleeper(lab, "event")
    container.kill()
    event = admin_view.wait_for(
        lambda m: m["name"] == container.name and m["action"] == "die",
        timeout=5 * TICK,
        kind="event",
    )
    assert event["exit_code"] == 137


# --- outages -----------------------------------------------------------------


def test_samples_return_within_two_ticks_of_a_broker_restart(
    lab: Lab, admin_view: Subscriber, agent: Agent
) -> None:
    container = sleeper(lab, "restart")
    admin_view.wait_for(lambda m: m.get("name") == container.name, timeout=5 * TICK)

    rabbitmqctl("stop_app")
    deadline = time.monotonic() + 10 * TICK
    while agent.publisher.connected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not agent.publisher.connected, "the agent did not notice the outage"
    rabbitmqctl("start_app")
    back = time.monotonic()

    admin_view.connect()
    admin_view.wait_for(lambda m: m.get("name") == container.name, timeout=2 * TICK)
    log.info("samples back %.2f s after the broker", time.monotonic() - back)
    assert time.monotonic() - back <= 2 * TICK


# --- permissions -------------------------------------------------------------


def test_agent_cannot_publish_for_another_node(broker_settings: Settings) -> None:
    credentials = agent_credentials(broker_settings)
    connection = pika.BlockingConnection(credentials.parameters("dbagent-test"))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(EXCHANGE, stats_key(PREFIX, "x", "own-node"), b"{}")

        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.basic_publish(EXCHANGE, stats_key("other", "x", "y"), b"{}")
        assert refused.value.reply_code == 403

        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            connection.channel().queue_declare("", exclusive=True)
        assert refused.value.reply_code == 403, "an agent may not read"
    finally:
        connection.close()


def test_viewer_sees_only_its_own_containers(
    lab: Lab, broker_settings: Settings, agent: Agent
) -> None:
    mine = sleeper(lab, "alices", labels={"org.dockbed.owner": ALICE})
    theirs = sleeper(lab, "bobs", labels={"org.dockbed.owner": BOB})
    alice = ensure_viewer(broker_settings, ALICE, False)

    # The page's own path: Web STOMP, subscribed to the bindings it was given.
    with WebStomp(broker_settings, alice) as stomp:
        for index, binding in enumerate(alice.bindings):
            stomp.send("SUBSCRIBE", id=str(index), destination=f"/topic/{binding}")
        seen: set[str] = set()
        deadline = time.monotonic() + 4 * TICK
        while time.monotonic() < deadline:
            frame = stomp.receive(deadline - time.monotonic())
            if frame is not None and frame[0] == "MESSAGE":
                seen.add(json.loads(frame[2])["name"])
    assert mine.name in seen
    assert theirs.name not in seen
    assert all(name == mine.name for name in seen), seen

    # Asking for more is refused by the broker, not only left out by a page.
    for destination in ("dockbed.stats.#", f"dockbed.stats.*.{BOB}.*"):
        with WebStomp(broker_settings, alice) as stomp:
            stomp.send("SUBSCRIBE", id="0", destination=f"/topic/{destination}")
            frame = stomp.receive(5)
            # RabbitMQ 3.10's Web STOMP closes the socket rather than send ERROR.
            assert frame is not None and frame[0] in {"ERROR", "CLOSE"}, frame

    connection = pika.BlockingConnection(alice.parameters("dbagent-test"))
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.queue_bind(queue, EXCHANGE, f"dockbed.stats.*.{BOB}.*")
        assert refused.value.reply_code == 403
    finally:
        connection.close()

    connection = pika.BlockingConnection(alice.parameters("dbagent-test"))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.basic_publish(EXCHANGE, stats_key(PREFIX, ALICE, "x"), b"{}")
        assert refused.value.reply_code == 403, "a viewer may not publish"
    finally:
        connection.close()


# --- helpers -----------------------------------------------------------------


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


Frame = tuple[str, dict[str, str], str]


class WebStomp:
    """A STOMP 1.2 client over Web STOMP's WebSocket: the browser's path.

    Just enough of RFC 6455 for a test: masked text frames out, unmasked
    frames in, no fragmentation.
    """

    def __init__(self, settings: Settings, credentials: BrokerCredentials) -> None:
        broker = settings.broker
        self.host = broker.host
        self.port = broker.web_stomp_port
        self.path = broker.web_stomp_path
        self.credentials = credentials
        self.buffer = b""

    def __enter__(self) -> WebStomp:
        self.socket = socket.create_connection((self.host, self.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.socket.sendall(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: v12.stomp\r\n\r\n"
            ).encode()
        )
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.socket.recv(4096)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        self.send(
            "CONNECT",
            **{
                "accept-version": "1.2",
                "host": self.credentials.vhost,
                "login": self.credentials.username,
                "passcode": self.credentials.password,
            },
        )
        frame = self.receive(10)
        assert frame is not None and frame[0] == "CONNECTED", frame
        return self

    def __exit__(self, *exc: object) -> None:
        self.socket.close()

    def send(self, command: str, **headers: str) -> None:
        lines = [command, *(f"{key}:{value}" for key, value in headers.items())]
        payload = ("\n".join(lines) + "\n\n\0").encode()
        mask = os.urandom(4)
        length = len(payload)
        header = bytes([0x81])
        if length < 126:
            header += bytes([0x80 | length])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", length)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.socket.sendall(header + mask + masked)

    def receive(self, timeout: float) -> Frame | None:
        """The next STOMP frame, or ``None`` when none came in ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._frame_from_buffer()
            if frame is not None:
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.socket.settimeout(remaining)
            try:
                data = self.socket.recv(65536)
            except TimeoutError:
                return None
            if not data:
                return None
            self.buffer += data

    def _frame_from_buffer(self) -> Frame | None:
        while len(self.buffer) >= 2:
            opcode = self.buffer[0] & 0x0F
            length = self.buffer[1] & 0x7F
            start = 2
            if length == 126:
                length, start = struct.unpack("!H", self.buffer[2:4])[0], 4
            elif length == 127:
                length, start = struct.unpack("!Q", self.buffer[2:10])[0], 10
            if len(self.buffer) < start + length:
                return None
            payload = self.buffer[start : start + length]
            self.buffer = self.buffer[start + length :]
            if opcode == 0x8:
                return "CLOSE", {}, payload[2:].decode(errors="replace")
            text = payload.decode(errors="replace").strip("\n\0")
            if not text:  # a heart-beat
                continue
            head, _, body = text.partition("\n\n")
            command, *lines = head.split("\n")
            headers = dict(line.split(":", 1) for line in lines if ":" in line)
            return command, headers, body
        return None
