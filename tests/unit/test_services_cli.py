"""``dockbed broker setup`` and ``dockbed agent`` in-process, with Typer's runner."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from dockbed.bus.broker import BrokerSetup
from dockbed.cli import services
from dockbed.config import Settings
from dockbed.errors import BrokerError

runner = CliRunner()


def test_broker_setup_reports_its_users(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str] | None] = []

    def setup(settings: Settings, *, nodes: list[str] | None = None) -> BrokerSetup:
        asked.append(nodes)
        return BrokerSetup(started=True, users=["dockbed-agent-n1", "dockbed-agent-n2"])

    monkeypatch.setattr(services, "setup_broker", setup)
    result = runner.invoke(services.broker_app, ["setup", "-n", "n1", "-n", "n2"])

    assert result.exit_code == 0, result.output
    assert asked == [["n1", "n2"]]
    assert "started" in result.output
    assert "dockbed-agent-n2" in result.output


def test_agent_without_a_broker_password_exits_with_the_broker_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(settings: Settings) -> None:
        raise BrokerError("no broker password", hint="run `dockbed broker setup`")

    monkeypatch.setattr(services.Agent, "from_settings", staticmethod(refuse))
    app = typer.Typer()
    app.command()(services.agent_command)
    result = runner.invoke(app, ["--interval", "1"])

    assert result.exit_code == 6
    assert "dockbed broker setup" in result.output
