"""``dockbed broker setup`` and ``dockbed agent``: the monitoring services.

Like ``node setup``, these act on the local machine, not through the server.
Mounted in ``dockbed.cli.main`` with::

    app.add_typer(broker_app, name="broker")
    app.command("agent")(agent_command)
"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Annotated

import typer

from dockbed.agent.service import Agent
from dockbed.bus.broker import setup_broker
from dockbed.cli.output import console, fail
from dockbed.config import get_settings
from dockbed.errors import DockbedError

broker_app = typer.Typer(
    help="The RabbitMQ broker that carries live stats.", no_args_is_help=True
)


# A callback keeps the app a group with its one command (``broker setup``).
@broker_app.callback()
def broker_group() -> None:
    """The RabbitMQ broker that carries live stats."""


@broker_app.command("setup")
def broker_setup(
    node: Annotated[
        list[str] | None,
        typer.Option(
            "--node",
            "-n",
            help="make an agent user for this node (repeatable); default this node",
        ),
    ] = None,
) -> None:
    """Install and start RabbitMQ with Web STOMP; create the agents' users."""
    settings = get_settings()
    try:
        result = setup_broker(settings, nodes=node)
    except DockbedError as error:
        raise fail(error) from error
    state = "started" if result.started else "already running"
    console.print(f"broker: {state}, on {settings.broker.host}:{settings.broker.port}")
    for user in result.users:
        console.print(f"  user {user}")
    console.print(
        f"  passwords in {settings.state_dir / 'broker'} (mode 0600)", highlight=False
    )


def agent_command(
    interval: Annotated[
        float | None,
        typer.Option(help="seconds between samples; default agent.interval", min=0.1),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="log look-ups too (debug)")
    ] = False,
) -> None:
    """Run this node's agent: publish its containers' stats until stopped."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # pika logs each failed connection attempt as an error, once a tick
        # while the broker is away; the publisher says it once instead.
        logging.getLogger("pika").setLevel(logging.CRITICAL)
    settings = get_settings()
    if interval is not None:
        settings = settings.model_copy(
            update={"agent": settings.agent.model_copy(update={"interval": interval})}
        )
    try:
        agent = Agent.from_settings(settings)
    except DockbedError as error:
        raise fail(error) from error

    def stop(signum: int, frame: FrameType | None) -> None:
        agent.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.run()
