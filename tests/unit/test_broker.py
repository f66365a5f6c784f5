"""dockbed.bus.broker without a broker: the rabbitmqctl calls it makes, its secrets."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from dockbed.bus import broker
from dockbed.config import Settings


class RecordedCtl:
    """Stands in for ``rabbitmqctl``: records each call, knows no user at first."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], str | None]] = []
        self.users: set[str] = set()

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        ok: tuple[int, ...] | None = (0,),
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append((args, stdin))
        code = 0
        if args[0] == "change_password" and args[1] not in self.users:
            code = broker.EXIT_NO_USER
        elif args[0] == "add_user":
            self.users.add(args[1])
        assert ok is None or code in ok
        return subprocess.CompletedProcess(args, code, "", "")

    def commands(self) -> list[str]:
        return [args[0] for args, _ in self.calls]


@pytest.fixture
def ctl(monkeypatch: pytest.MonkeyPatch) -> RecordedCtl:
    recorded = RecordedCtl()
    monkeypatch.setattr(broker, "_ctl", recorded)
    monkeypatch.setattr(broker, "_viewers_done", {})
    return recorded


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", log_dir=tmp_path / "log")


def test_viewer_is_made_once_with_a_stable_password(
    ctl: RecordedCtl, settings: Settings
) -> None:
    first = broker.ensure_viewer(settings, "alice", False)
    made = ctl.commands()
    second = broker.ensure_viewer(settings, "alice", False)

    assert made == [
        "change_password",
        "add_user",
        "set_permissions",
        "set_topic_permissions",
    ]
    assert ctl.commands() == made, "a second call costs no rabbitmqctl"
    assert first.password == second.password
    assert first.username == "dockbed-viewer-alice"
    assert first.bindings == ("dockbed.stats.*.alice.*", "dockbed.events.*.alice.*")
    assert broker.ensure_viewer(settings, "bob", False).password != first.password


def test_viewer_permissions_read_only(ctl: RecordedCtl, settings: Settings) -> None:
    broker.ensure_viewer(settings, "alice", False)
    permissions = {args[0]: args for args, _ in ctl.calls}
    _, _, _, user, configure, write, read = permissions["set_permissions"]
    assert user == "dockbed-viewer-alice"
    assert configure == broker.OWN_QUEUES
    assert "amq\\.topic" not in write, "a viewer may write to no exchange"
    assert "amq\\.topic" in read
    *_, exchange, topic_write, topic_read = permissions["set_topic_permissions"]
    assert (exchange, topic_write) == ("amq.topic", "^$")
    assert "alice" in topic_read


def test_becoming_admin_updates_the_broker_user(
    ctl: RecordedCtl, settings: Settings
) -> None:
    broker.ensure_viewer(settings, "carol", False)
    before = len(ctl.calls)
    admin = broker.ensure_viewer(settings, "carol", True)
    assert len(ctl.calls) > before
    assert admin.bindings[0] == "dockbed.stats.#"


def test_passwords_go_by_stdin_into_0600_files(
    ctl: RecordedCtl, settings: Settings
) -> None:
    credentials = broker.ensure_agent_user(settings, "node1")
    viewer = broker.ensure_viewer(settings, "alice", False)

    for args, _ in ctl.calls:
        assert credentials.password not in args
        assert viewer.password not in args
    assert (("add_user", "dockbed-agent-node1"), credentials.password) in ctl.calls
    for name in ("agent-node1.password", "viewer.secret"):
        mode = stat.S_IMODE((settings.state_dir / "broker" / name).stat().st_mode)
        assert mode == 0o600, name
    assert credentials.password not in repr(credentials)
    assert viewer.password not in repr(viewer)


def test_agent_password_is_kept_and_can_be_configured(
    ctl: RecordedCtl, settings: Settings
) -> None:
    made = broker.ensure_agent_user(settings, "node1")
    assert broker.agent_credentials(settings, "node1").password == made.password

    configured = settings.model_copy(
        update={
            "broker": settings.broker.model_copy(
                update={"agent_password": SecretStr("from-the-toml")}
            )
        }
    )
    assert broker.agent_credentials(configured, "node1").password == "from-the-toml"


def test_no_password_yet_is_a_broker_error(settings: Settings) -> None:
    with pytest.raises(broker.BrokerError, match="dockbed broker setup"):
        broker.agent_credentials(settings, "node9")
