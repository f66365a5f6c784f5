"""What the agent's sampling costs a node, against polling Docker's stats API.

For each size (default 50, then 200 sleeping containers, ``--network none``,
16 MiB limit, from the base image), in the same run and on the same
containers:

- agent: ``Agent.tick()`` (the cgroup and net/dev files of each container,
  one message per container plus the node summary over a real broker
  connection, and the one container list a ``RESYNC_SECONDS`` that a running
  agent makes) run ``--ticks`` times after a warm-up tick, in ``--rounds``
  windows, the cheapest counted;
- stats API one-shot: ``GET /containers/{id}/stats?stream=false&one-shot=true``
  for each container, ``--rounds`` times, the cheapest round counted
  (dockerd and containerd serve other clients too);
- stats API plain: ``stream=false`` without one-shot, which makes the engine
  wait for a second sample (1-2 s a call), once.

Both are called from 50 threads at a time, as a poller would have to: a 20.10
engine answers even a one-shot call at its next one-second collection.

CPU is counted on the whole node, not only in this process: this process's
CPU time, plus the CPU time of dockerd, of its containerd and of the
containerd shims of the measured containers (the stats API reads cgroups in
the shims), from ``/proc/<pid>/stat``. The broker's CPU (beam.smp) is printed
apart: it is the price of delivering samples, which the stats API does not
do at all. The agent's ticks run back to back; its cost is per container per
sample, so ``agent_core_percent_N`` is that cost times N over a 3 s tick.

Bytes on the wire are measured: the broker's ``recv_oct`` of the agent's
connection over the ticks (AMQP framing and the summaries included), divided
by containers times ticks; the JSON body alone is printed beside it.

The last line is ``name=value`` pairs. ``vs_stats_api`` is the agent's CPU
per container and sample over the stats API's, whichever of its two ways was
cheaper, at the largest size: 0.02 is 50 times less. (Plain calls made in
parallel tend to be the cheaper: the engine reads all of them in one pass a
second, where each one-shot call goes through containerd to a shim alone.)

Usage: ``.venv/bin/python bench/stats.py [--count 50] [--ticks 10]`` as root
on a node with its engine and the base image; it sets the broker up if need
be (and stops it again if it started it) and removes every container and
broker user it made, also when interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dockbed.agent.collector import RESYNC_SECONDS, Collector
from dockbed.agent.service import Agent
from dockbed.bus.broker import (
    agent_credentials,
    remove_agent_user,
    setup_broker,
    stop_broker,
)
from dockbed.bus.publisher import Publisher
from dockbed.config import Settings, get_settings

TICK_SECONDS = 3.0
CREATE_CONCURRENCY = 8
POLL_CONCURRENCY = 50
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LABEL = "org.dockbed.bench"
log = logging.getLogger("bench.stats")


@dataclass
class Cost:
    """CPU seconds spent on ``samples`` container samples, by whom."""

    samples: int
    own: float
    engine: float
    broker: float = 0.0

    @property
    def node(self) -> float:
        return self.own + self.engine

    @property
    def per_sample_us(self) -> float:
        return self.node / self.samples * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--count",
        type=int,
        action="append",
        help="containers (repeatable); default 50 and 200",
    )
    parser.add_argument(
        "--ticks",
        type=int,
        default=round(RESYNC_SECONDS / TICK_SECONDS),
        help="agent ticks a size; default one resync's worth",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of each; the cheapest counts"
    )
    args = parser.parse_args()
    counts = sorted(set(args.count or [50, 200]))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("pika", "dockbed", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    tag = uuid.uuid4().hex[:6]
    base = get_settings()
    state = Path(tempfile.mkdtemp(prefix="dockbed-bench-"))
    settings = base.model_copy(
        update={
            "node_name": f"dbagent-bench-{tag}",
            "state_dir": state / "state",
            "log_dir": state / "log",
        }
    )
    client = docker.DockerClient(
        base_url=settings.engine_url, max_pool_size=POLL_CONCURRENCY + 4
    )
    made: list[Any] = []
    signal.signal(signal.SIGTERM, _interrupt)
    setup = setup_broker(settings)
    try:
        results = run(settings, client, made, tag, counts, args.ticks, args.rounds)
    finally:
        log.info("removing %d containers", len(made))
        _parallel(lambda c: c.remove(force=True), made)
        remove_agent_user(settings, settings.node_name)
        if setup.started:
            stop_broker()
        shutil.rmtree(state, ignore_errors=True)
    print(" ".join(f"{key}={value}" for key, value in results.items()))


def run(
    settings: Settings,
    client: docker.DockerClient,
    made: list[Any],
    tag: str,
    counts: list[int],
    ticks: int,
    rounds: int,
) -> dict[str, str]:
    credentials = agent_credentials(settings)
    publisher = Publisher(credentials, connection_name=f"bench {tag}")
    collector = Collector(
        client, node=settings.node_name, filters={"label": f"{LABEL}={tag}"}
    )
    agent = Agent(settings, client=client, publisher=publisher, collector=collector)
    dockerd = _dockerd_pid()
    results: dict[str, str] = {"containers": ",".join(map(str, counts))}

    for count in counts:
        _grow(client, made, tag, count, settings.image)
        engine_pids = [dockerd, *_children(dockerd, "containerd")]
        engine_pids += [_parent(_main_pid(c)) for c in made]

        warm_up = time.perf_counter()
        first = agent.tick()
        warm_up = time.perf_counter() - warm_up
        assert len(first) == count, f"sampled {len(first)} of {count}"

        wire_before = _received_octets(credentials.username)
        # Like the stats API's, the least costly of --rounds windows counts;
        # each has the one resync of the list a running agent makes in it.
        agent_cost = min(
            (
                _measure(engine_pids, partial(_ticks, agent, ticks), count * ticks)
                for _ in range(rounds)
            ),
            key=lambda cost: cost.node,
        )
        wire = (_received_octets(credentials.username) - wire_before) / (
            count * ticks * rounds
        )
        assert publisher.connected and publisher.dropped == 0, "publishing failed"
        body = statistics.mean(
            len(sample.model_dump_json()) for sample in agent.collector.collect()
        )
        # The stats API's turn takes a while: no connection to keep alive meanwhile.
        publisher.close()

        ids = [container.id for container in made]
        # The engine serves other clients too: the least costly round counts.
        one_shot = min(
            (
                _measure(
                    engine_pids,
                    partial(_poll_one_shot, client, ids),
                    count,
                    broker=False,
                )
                for _ in range(rounds)
            ),
            key=lambda cost: cost.node,
        )
        plain = _measure(
            engine_pids, partial(_poll_plain, client, ids), count, broker=False
        )

        core = agent_cost.per_sample_us * count / (TICK_SECONDS * 1e6) * 100
        broker_core = agent_cost.broker / ticks / TICK_SECONDS * 100
        log.info(
            "%d containers: agent %.1f µs/sample (own %.1f, engine %.1f), "
            "%.3f %% of a core at a 3 s tick, first tick %.2f s; broker %.3f %%; "
            "stats API one-shot %.0f µs/sample, plain %.0f µs/sample; "
            "%.0f B on the wire per sample (%.0f B body)",
            count,
            agent_cost.per_sample_us,
            agent_cost.own / agent_cost.samples * 1e6,
            agent_cost.engine / agent_cost.samples * 1e6,
            core,
            warm_up,
            broker_core,
            one_shot.per_sample_us,
            plain.per_sample_us,
            wire,
            body,
        )
        results.update(
            {
                f"agent_us_per_sample_{count}": f"{agent_cost.per_sample_us:.1f}",
                f"agent_core_percent_{count}": f"{core:.3f}",
                f"broker_core_percent_{count}": f"{broker_core:.3f}",
                f"one_shot_us_per_sample_{count}": f"{one_shot.per_sample_us:.0f}",
                f"plain_us_per_sample_{count}": f"{plain.per_sample_us:.0f}",
                f"vs_one_shot_{count}": _ratio(agent_cost, one_shot),
                f"vs_plain_{count}": _ratio(agent_cost, plain),
                f"wire_bytes_per_sample_{count}": f"{wire:.0f}",
                f"body_bytes_per_sample_{count}": f"{body:.0f}",
            }
        )
        cheaper = min(one_shot, plain, key=lambda cost: cost.per_sample_us)
        vs_stats_api = _ratio(agent_cost, cheaper)
    publisher.close()
    # The headline figures last, at the largest size.
    headline = f"agent_core_percent_{counts[-1]}"
    results[headline] = results.pop(headline)
    results["vs_stats_api"] = vs_stats_api
    return results


def _measure(
    engine_pids: list[int],
    action: Callable[[], object],
    samples: int,
    *,
    broker: bool = True,
) -> Cost:
    """Run ``action``; the node's CPU it took, this process's and the engine's."""
    brokers = _pids_named("beam.smp") if broker else []
    own, engine, beam = time.process_time(), _cpu(engine_pids), _cpu(brokers)
    action()
    return Cost(
        samples=samples,
        own=time.process_time() - own,
        engine=_cpu(engine_pids) - engine,
        broker=_cpu(brokers) - beam,
    )


def _ticks(agent: Agent, ticks: int) -> None:
    agent.collector.resync()  # as every RESYNC_SECONDS when running
    for _ in range(ticks):
        agent.tick()


def _poll_one_shot(client: docker.DockerClient, ids: list[str]) -> None:
    _parallel(
        lambda container_id: client.api.stats(
            container_id, stream=False, one_shot=True
        ),
        ids,
        POLL_CONCURRENCY,
    )


def _poll_plain(client: docker.DockerClient, ids: list[str]) -> None:
    _parallel(
        lambda container_id: client.api.stats(container_id, stream=False),
        ids,
        POLL_CONCURRENCY,
    )


def _ratio(agent: Cost, other: Cost) -> str:
    return f"{agent.per_sample_us / other.per_sample_us:.4f}"


def _grow(
    client: docker.DockerClient, made: list[Any], tag: str, count: int, image: str
) -> None:
    start = time.perf_counter()
    new = range(len(made) + 1, count + 1)

    def create(index: int) -> Any:
        return client.containers.run(
            image,
            ["sleep", "infinity"],
            name=f"dbagent-bench-{tag}-{index}",
            detach=True,
            network_mode="none",
            mem_limit="16m",
            labels={LABEL: tag},
        )

    with ThreadPoolExecutor(CREATE_CONCURRENCY) as pool:
        futures = [pool.submit(create, index) for index in new]
        for future in futures:
            made.append(future.result())
    log.info("%d containers running (%.1f s)", len(made), time.perf_counter() - start)


def _parallel(
    action: Callable[[Any], object], items: Iterable[Any], workers: int = 8
) -> None:
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(action, items):
            pass


def _cpu(pids: Iterable[int]) -> float:
    """CPU seconds (user + system) the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def _dockerd_pid() -> int:
    return int(Path("/var/run/docker.pid").read_text())


def _main_pid(container: Any) -> int:
    container.reload()
    return int(container.attrs["State"]["Pid"])


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def _children(pid: int, name: str) -> list[int]:
    return [child for child in _pids_named(name) if _parent(child) == pid]


def _pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _received_octets(user: str) -> int:
    """Bytes the broker has read from ``user``'s connections."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "user", "recv_oct"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return sum(
        int(line.split()[1])
        for line in listed.splitlines()
        if line.split() and line.split()[0] == user
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
