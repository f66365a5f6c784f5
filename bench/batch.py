"""How long a batch takes to come up, against the obvious ways of doing it by hand.

Three ways of bringing N containers up on the lab network, run one after the
other in the same run, with the same image, limits and addresses:

- dockbed: one batch through the REST API (in-process app, all of the server's
  checks), timed until every container's sshd accepts a TCP connection;
- sequential: a shell loop of ``docker run -d``, timed until the loop ends;
- parallel CLI: ``xargs -P8 docker run -d``, timed until xargs ends.

The two CLI ways are not made to wait for sshd, which favours them; their
time to sshd is printed too. Then the memory of each idle dockbed container
(cgroup usage without inactive file cache) once they have settled.

The last line is ``name=value`` pairs; ``vs_*`` are dockbed's time divided by
the other's (below 1: dockbed is faster).

Usage: ``.venv/bin/python bench/batch.py [--count 50]`` on a node that is set
up (``make up`` or ``dockbed node setup``). It removes every container it made.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from ipaddress import IPv4Address
from pathlib import Path

import docker
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dockbed.agent.cgroups import find_cgroup, read_memory_usage
from dockbed.config import get_settings
from dockbed.server.api.deps import get_principal
from dockbed.server.app import create_app
from dockbed.server.readiness import wait_for_ssh
from dockbed.server.service import Principal

PREFIX = "benchb"
CLI_CONCURRENCY = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds before memory"
    )
    args = parser.parse_args()

    settings = get_settings()
    client = docker.DockerClient(base_url=settings.engine_url)
    docker_cli = shutil.which("docker") or "docker"
    app = create_app(settings)
    app.dependency_overrides[get_principal] = lambda: Principal("bench", is_admin=True)
    api = TestClient(app)

    report = api.get(f"/api/v1/nodes/{settings.node_name}/addresses").json()
    plan = api.post(
        "/api/v1/batches/preview", json={"prefix": PREFIX, "count": args.count}
    )
    plan.raise_for_status()
    addresses = [IPv4Address(item["ip"]) for item in plan.json()["containers"]]
    names = [item["name"] for item in plan.json()["containers"]]
    print(
        f"{args.count} containers at {addresses[0]}-{addresses[-1]} "
        f"({report['free']} free in the pool)"
    )

    limits = settings.limits
    run_args = [
        "--network",
        settings.lab.network,
        "--cpus",
        str(limits.cpus),
        "--memory",
        limits.memory,
        "--pids-limit",
        str(limits.pids),
    ]

    with removed_afterwards(client, names):
        started = time.perf_counter()
        response = api.post(
            "/api/v1/batches",
            params={"wait": True},
            json={
                "prefix": PREFIX,
                "count": args.count,
                "base_ip": str(addresses[0]),
                "wait_ready": True,
            },
        )
        dockbed_s = time.perf_counter() - started
        if response.status_code != 201:
            sys.exit(f"dockbed batch failed: {response.text}")
        time.sleep(args.settle)
        memory = idle_memory(client, names)
    print(f"dockbed:      {dockbed_s:6.2f} s to sshd")

    lines = [
        f"{name} {address}" for name, address in zip(names, addresses, strict=True)
    ]
    image = settings.image
    sequential_script = (
        "while read name ip; do "
        f"{docker_cli} run -d --name $name --hostname $name --ip $ip "
        f"{' '.join(run_args)} {image} >/dev/null || exit 1; done"
    )
    with removed_afterwards(client, names):
        sequential_s, sequential_ssh_s = timed_shell(
            sequential_script, lines, addresses
        )
    print(f"sequential:   {sequential_s:6.2f} s ({sequential_ssh_s:.2f} s to sshd)")

    parallel_script = (
        f"xargs -P{CLI_CONCURRENCY} -L1 sh -c '"
        f"{docker_cli} run -d --name $0 --hostname $0 --ip $1 "
        f"{' '.join(run_args)} {image} >/dev/null'"
    )
    with removed_afterwards(client, names):
        parallel_s, parallel_ssh_s = timed_shell(parallel_script, lines, addresses)
    print(f"parallel CLI: {parallel_s:6.2f} s ({parallel_ssh_s:.2f} s to sshd)")

    mean_mib = statistics.mean(memory) / 2**20
    print(
        f"idle memory per container: mean {mean_mib:.1f} MiB, "
        f"max {max(memory) / 2**20:.1f} MiB over {len(memory)}"
    )
    print(
        f"count={args.count} dockbed_s={dockbed_s:.2f} sequential_s={sequential_s:.2f} "
        f"parallel_cli_s={parallel_s:.2f} "
        f"sequential_to_ssh_s={sequential_ssh_s:.2f} "
        f"parallel_cli_to_ssh_s={parallel_ssh_s:.2f} "
        f"idle_memory_mib={mean_mib:.2f} "
        f"vs_sequential={dockbed_s / sequential_s:.3f} "
        f"vs_parallel_cli={dockbed_s / parallel_s:.3f}"
    )


def timed_shell(
    script: str, lines: list[str], addresses: list[IPv4Address]
) -> tuple[float, float]:
    """Seconds until ``script`` (fed ``lines``) ends, and until sshd answers."""
    started = time.perf_counter()
    subprocess.run(
        ["sh", "-c", script], input="\n".join(lines) + "\n", text=True, check=True
    )
    done = time.perf_counter() - started
    wait_for_ssh(addresses)
    return done, time.perf_counter() - started


def idle_memory(client: docker.DockerClient, names: list[str]) -> list[int]:
    """Each container's memory use as ``docker stats`` counts it, in bytes."""
    usages = []
    for name in names:
        pid = client.api.inspect_container(name)["State"]["Pid"]
        usage = read_memory_usage(find_cgroup(pid))
        if usage is not None:
            usages.append(usage)
    return usages


@contextmanager
def removed_afterwards(client: docker.DockerClient, names: list[str]) -> Iterator[None]:
    """Remove the named containers when the block ends, however it ends."""
    try:
        yield
    finally:
        for name in names:
            with suppress(docker.errors.NotFound):
                client.api.remove_container(name, force=True)


if __name__ == "__main__":
    main()
