"""dockbed.engine.daemon: the TLS keys of dockerd's settings file, merged into
an admin's own on a temporary path."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from dockbed.engine.daemon import (
    read_daemon_config,
    tls_daemon_config,
    update_daemon_config,
)
from dockbed.engine.tls import TlsFiles
from dockbed.errors import HostError

SERVER = TlsFiles(Path("/var/lib/dockbed/tls/servers/node1"))
HOSTS = ["unix:///var/run/docker.sock", "tcp://10.0.0.5:2376"]


def test_the_tls_keys_verify_clients_on_every_host() -> None:
    config = tls_daemon_config(SERVER, HOSTS)

    assert config == {
        "hosts": HOSTS,
        "tlsverify": True,
        "tlscacert": "/var/lib/dockbed/tls/servers/node1/ca.pem",
        "tlscert": "/var/lib/dockbed/tls/servers/node1/cert.pem",
        "tlskey": "/var/lib/dockbed/tls/servers/node1/key.pem",
    }


def test_the_admin_s_own_keys_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"log-level": "warn", "hosts": ["unix:///x.sock"]}))

    changed = update_daemon_config(tls_daemon_config(SERVER, HOSTS), path)

    written = json.loads(path.read_text())
    assert changed
    assert written["log-level"] == "warn"
    assert written["hosts"] == HOSTS
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_the_same_keys_again_change_nothing(tmp_path: Path) -> None:
    path = tmp_path / "docker" / "daemon.json"
    update_daemon_config(tls_daemon_config(SERVER, HOSTS), path)

    assert not update_daemon_config(tls_daemon_config(SERVER, HOSTS), path)
    assert read_daemon_config(path)["tlsverify"] is True


def test_a_broken_settings_file_is_reported_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text("{not json")

    with pytest.raises(HostError, match="cannot read"):
        update_daemon_config({"tlsverify": True}, path)
    assert path.read_text() == "{not json"
