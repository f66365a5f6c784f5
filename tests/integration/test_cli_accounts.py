"""Account commands end to end: ``admin init``, ``user``, ``login``, ``whoami``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from dockbed.cli.client import TOKEN_VARIABLE

pytestmark = pytest.mark.integration

DOCKBED = str(Path(sys.executable).with_name("dockbed"))


def dockbed(
    *args: str, env: dict[str, str], stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [DOCKBED, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_admin_init_makes_the_admin_once(tmp_path: Path) -> None:
    env = {"DOCKBED_STATE_DIR": str(tmp_path)}

    first = json.loads(dockbed("admin", "init", "--json", env=env).stdout)
    assert first["created"] is True and len(first["password"]) >= 12
    assert (tmp_path / "dockbed.db").stat().st_mode & 0o077 == 0

    again = dockbed("admin", "init", env=env).stdout
    assert "exists" in again and first["password"] not in again

    reset = json.loads(dockbed("admin", "init", "--reset", "--json", env=env).stdout)
    assert reset["created"] is False
    assert reset["password"] not in {None, first["password"]}


def test_user_add_login_whoami_logout(server_url: str, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    as_admin = {"DOCKBED_SERVER_URL": server_url}
    added = json.loads(dockbed("user", "add", name, "--json", env=as_admin).stdout)
    assert added["role"] == "user" and added["password"]
    listed = json.loads(dockbed("user", "ls", "--json", env=as_admin).stdout)
    assert name in {row["name"] for row in listed}

    # From here on the user's own saved login, not the admin's token.
    env = {
        TOKEN_VARIABLE: "",
        "DOCKBED_TOKEN_FILE": str(tmp_path / "token"),
        "DOCKBED_SERVER_URL": server_url,
    }
    login = dockbed(
        "login",
        "--server",
        server_url,
        "--user",
        name,
        "--password-stdin",
        env=env,
        stdin=added["password"] + "\n",
    )
    assert f"as {name} (user)" in login.stdout
    assert (tmp_path / "token").stat().st_mode & 0o077 == 0

    me = json.loads(dockbed("whoami", "--json", env=env).stdout)
    assert (me["name"], me["role"], me["via"]) == (name, "user", "token")
    refused = dockbed("user", "ls", env=env, check=False)
    assert refused.returncode == 5 and "only an admin" in refused.stderr

    assert "logged out" in dockbed("logout", env=env).stdout
    assert not (tmp_path / "token").exists()
    assert dockbed("whoami", env=env, check=False).returncode == 5

    dockbed("user", "rm", name, env=as_admin)
