"""Set up the RabbitMQ broker and the users each role connects as.

Roles and what the broker lets them do (``amq.topic`` is the only exchange
used; the topic patterns come from :mod:`dockbed.bus.routing`):

==========================  =================================================
``dockbed-agent-<node>``    write ``amq.topic`` only, and of it only the keys
                            of its own node; configure and read nothing
``dockbed-viewer-<user>``   declare, bind and read only its own subscription
                            queues (``stomp-subscription-*``, ``amq.gen-*``),
                            read ``amq.topic`` with topic read permission for
                            its own containers' keys (an administrator: all);
                            write nothing, so it can never publish
``guest``                   left as RabbitMQ ships it: loopback only
==========================  =================================================

A viewer's password is an HMAC of its user name under a secret kept in
``state_dir/broker/viewer.secret``: random to anyone without the file, the
same on every call, so every page of one user shares it. An agent's password
is random, kept in ``state_dir/broker/agent-<node>.password`` (or set as
``broker.agent_password``). Both files are 0600; no password is logged or put
on a command line (``rabbitmqctl`` reads them from its standard input).

Every failure here is a BrokerError (HostError for the package install),
raised from the cause.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import pwd
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dockbed.bus.publisher import BrokerCredentials
from dockbed.bus.routing import (
    EXCHANGE,
    agent_write_pattern,
    routing_word,
    viewer_bindings,
    viewer_read_pattern,
)
from dockbed.config import Settings
from dockbed.errors import BrokerError, HostError
from dockbed.processes import spawn_detached

log = logging.getLogger(__name__)

RABBITMQ_USER = "rabbitmq"
RABBITMQ_HOME = Path("/var/lib/rabbitmq")
#: The CLI behind Debian's wrapper, which would pass our arguments through a
#: shell (mangling ``$`` and ``\\`` in permission patterns).
RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
ENABLED_PLUGINS = Path("/etc/rabbitmq/enabled_plugins")
PLUGIN = "rabbitmq_web_stomp"
#: ``rabbitmqctl``'s exit status for "no such user" (EX_NOUSER).
EXIT_NO_USER = 67
#: Never matches a name: RabbitMQ's own spelling of "nothing".
NOTHING = "^$"
#: The queues a subscriber may own: Web STOMP's and server-named ones.
OWN_QUEUES = r"^(stomp-subscription-|amq\.gen-)"


@dataclass(frozen=True, repr=False)
class ViewerCredentials(BrokerCredentials):
    """What a page needs to subscribe as one dockbed user over Web STOMP."""

    #: The binding keys it may subscribe with: STOMP ``/topic/<key>``.
    bindings: tuple[str, ...] = ()
    web_stomp_port: int = 15674
    web_stomp_path: str = "/ws"


@dataclass(frozen=True)
class BrokerSetup:
    """What :func:`setup_broker` did."""

    started: bool
    users: list[str] = field(default_factory=list)


def setup_broker(settings: Settings, *, nodes: list[str] | None = None) -> BrokerSetup:
    """Install, start and provision the broker; every step is idempotent.

    Installs ``rabbitmq-server`` if missing, enables Web STOMP, starts the
    broker in the background if it does not answer (its output goes to
    ``log_dir/rabbitmq.log``), waits for it up to ``broker.startup_timeout``
    and creates an agent user for each of ``nodes`` (default: this node).
    Raises HostError if the package cannot be installed, BrokerError if the
    broker does not come up or refuses a change.
    """
    _install_if_missing()
    running = is_broker_running()
    # A node that answers but whose app does not is being started or restarted
    # by someone else: wait for it rather than start a second one.
    node_up = running or _node_answers()
    _enable_web_stomp(online=node_up)
    started = False
    if not running:
        _wait_until_running(settings, None if node_up else _start_broker(settings))
        started = not node_up

    if settings.broker.vhost != "/":
        _ensure_vhost(settings.broker.vhost)
    users = [
        ensure_agent_user(settings, node).username
        for node in (nodes or [settings.node_name])
    ]
    _viewer_secret(settings)
    _check_guest_is_local()
    return BrokerSetup(started=started, users=users)


def agent_username(node: str) -> str:
    return f"dockbed-agent-{routing_word(node)}"


def viewer_username(username: str) -> str:
    return f"dockbed-viewer-{routing_word(username)}"


def agent_credentials(settings: Settings, node: str | None = None) -> BrokerCredentials:
    """How ``node``'s agent connects: its user and the stored password.

    Raises BrokerError when there is no password yet (no ``broker setup``).
    """
    node = node or settings.node_name
    broker = settings.broker
    if broker.agent_password is not None:
        password = broker.agent_password.get_secret_value()
    else:
        path = _agent_password_path(settings, node)
        try:
            password = path.read_text().strip()
        except OSError as error:
            raise BrokerError(
                f"no broker password for the agent of node {node!r} at {path}",
                hint="run `dockbed broker setup` on the broker's host, or set "
                "broker.agent_password",
                node=node,
                path=str(path),
            ) from error
    return BrokerCredentials(
        username=agent_username(node),
        password=password,
        host=broker.host,
        port=broker.port,
        vhost=broker.vhost,
    )


def ensure_agent_user(settings: Settings, node: str) -> BrokerCredentials:
    """Create or update ``node``'s agent user; its password is made once."""
    if settings.broker.agent_password is None:
        _ensure_secret_file(_agent_password_path(settings, node))
    credentials = agent_credentials(settings, node)
    vhost = settings.broker.vhost
    _set_user(credentials.username, credentials.password)
    _ctl(
        "set_permissions",
        "-p",
        vhost,
        credentials.username,
        NOTHING,
        rf"^{_escape(EXCHANGE)}$",
        NOTHING,
    )
    _ctl(
        "set_topic_permissions",
        "-p",
        vhost,
        credentials.username,
        EXCHANGE,
        agent_write_pattern(node),
        NOTHING,
    )
    log.info("broker user %s may publish node %s's stats", credentials.username, node)
    return credentials


_viewers_lock = threading.Lock()
#: Viewers already set up by this process: broker user -> (is_admin, password).
_viewers_done: dict[str, tuple[bool, str]] = {}


def ensure_viewer(
    settings: Settings, username: str, is_admin: bool
) -> ViewerCredentials:
    """Broker credentials that let ``username``'s pages read what they may see.

    A non-administrator may read the stats and events of containers whose
    ``org.dockbed.owner`` is ``username``; an administrator, everything. The
    first call in a process creates or updates the broker user (about two
    seconds of ``rabbitmqctl``); later calls with the same answer are free.
    Raises BrokerError when the broker refuses.
    """
    broker_user = viewer_username(username)
    password = _viewer_password(settings, username)
    vhost = settings.broker.vhost
    with _viewers_lock:
        if _viewers_done.get(broker_user) != (is_admin, password):
            _set_user(broker_user, password)
            _ctl(
                "set_permissions",
                "-p",
                vhost,
                broker_user,
                OWN_QUEUES,
                OWN_QUEUES,
                rf"{OWN_QUEUES}|^{_escape(EXCHANGE)}$",
            )
            _ctl(
                "set_topic_permissions",
                "-p",
                vhost,
                broker_user,
                EXCHANGE,
                NOTHING,
                viewer_read_pattern(username, is_admin=is_admin),
            )
            _viewers_done[broker_user] = (is_admin, password)
            log.info(
                "broker user %s reads %s",
                broker_user,
                "every node's stats" if is_admin else f"{username}'s stats",
            )
    broker = settings.broker
    return ViewerCredentials(
        username=broker_user,
        password=password,
        host=broker.host,
        port=broker.port,
        vhost=vhost,
        bindings=tuple(viewer_bindings(username, is_admin=is_admin)),
        web_stomp_port=broker.web_stomp_port,
        web_stomp_path=broker.web_stomp_path,
    )


def remove_viewer(settings: Settings, username: str) -> None:
    """Delete ``username``'s broker user, if any: for a dockbed user removed."""
    broker_user = viewer_username(username)
    with _viewers_lock:
        _viewers_done.pop(broker_user, None)
        _delete_user(broker_user)


def remove_agent_user(settings: Settings, node: str) -> None:
    """Delete ``node``'s agent user, if any, and its stored password."""
    _delete_user(agent_username(node))
    _agent_password_path(settings, node).unlink(missing_ok=True)


def _delete_user(username: str) -> None:
    if _ctl("delete_user", username, ok=(0, EXIT_NO_USER)).returncode == 0:
        log.info("broker user %s deleted", username)


def is_broker_running() -> bool:
    """Whether the local broker answers ``rabbitmqctl status``."""
    try:
        return _ctl("status", ok=None, timeout=30).returncode == 0
    except BrokerError:
        return False


def stop_broker() -> None:
    """Stop the local broker (``rabbitmqctl stop``), as tests that started it do."""
    _ctl("stop", timeout=120)
    log.info("broker stopped")


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    """Run ``rabbitmqctl -q ARGS`` as the broker's own user; its output.

    For inspection (``list_connections``, ``list_channels``) and tests; raises
    BrokerError when it fails. Never pass a password here: use stdin.
    """
    return _ctl(*args, timeout=timeout).stdout


def _install_if_missing() -> None:
    if RABBITMQCTL.exists() or shutil.which("rabbitmqctl"):
        return
    log.info("installing rabbitmq-server")
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "rabbitmq-server"],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as error:
        output = getattr(error, "stderr", None) or ""
        raise HostError(
            f"cannot install rabbitmq-server: {error}",
            hint=output.strip()[-500:] or "check apt's sources",
            package="rabbitmq-server",
        ) from error


def _enable_web_stomp(*, online: bool) -> None:
    try:
        if PLUGIN in ENABLED_PLUGINS.read_text():
            return
    except OSError:
        pass
    command = ["rabbitmq-plugins", "enable", PLUGIN]
    if not online:
        command.insert(2, "--offline")
    log.info("enabling %s", PLUGIN)
    _run(command, what=f"enable {PLUGIN}")


def _start_broker(settings: Settings) -> subprocess.Popen[bytes]:
    log_path = settings.log_dir / "rabbitmq.log"
    log.info("starting rabbitmq-server, its log in %s", log_path)
    try:
        return spawn_detached(["rabbitmq-server"], log_path)
    except OSError as error:
        raise BrokerError(f"cannot start rabbitmq-server: {error}") from error


def _wait_until_running(
    settings: Settings, process: subprocess.Popen[bytes] | None
) -> None:
    """Poll ``rabbitmqctl status`` until it answers or the deadline passes."""
    log_path = settings.log_dir / "rabbitmq.log"
    deadline = time.monotonic() + settings.broker.startup_timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            if _node_answers():
                # Another broker came up first (ours found its ports taken):
                # that one is as good, so wait for it instead.
                process = None
                continue
            raise BrokerError(
                f"rabbitmq-server exited with status {process.returncode}",
                hint=f"see {log_path}",
                log=str(log_path),
            )
        if is_broker_running():
            log.info("rabbitmq-server answers")
            return
        time.sleep(0.5)
    raise BrokerError(
        f"rabbitmq-server did not answer within {settings.broker.startup_timeout:g} s",
        hint=f"see {log_path}",
        log=str(log_path),
    )


def _node_answers() -> bool:
    """Whether the broker's Erlang node runs, whatever its app is doing."""
    try:
        return _ctl("ping", ok=None, timeout=30).returncode == 0
    except BrokerError:
        return False


def _ensure_vhost(vhost: str) -> None:
    listed = _ctl("list_vhosts", "--silent").stdout.split()
    if vhost not in listed:
        _ctl("add_vhost", vhost)
        log.info("broker vhost %s created", vhost)


def _check_guest_is_local() -> None:
    answer = _ctl("eval", "application:get_env(rabbit, loopback_users).").stdout
    if "guest" not in answer:
        log.warning(
            "the broker lets guest log in from other hosts (loopback_users is %s); "
            "remove that setting from rabbitmq.conf",
            answer.strip(),
        )


def _set_user(username: str, password: str) -> None:
    """Give ``username`` this password, creating the user if need be."""
    changed = _ctl("change_password", username, stdin=password, ok=(0, EXIT_NO_USER))
    if changed.returncode == EXIT_NO_USER:
        _ctl("add_user", username, stdin=password)
        log.info("broker user %s created", username)


def _viewer_password(settings: Settings, username: str) -> str:
    secret = _viewer_secret(settings)
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def _viewer_secret(settings: Settings) -> str:
    path = settings.state_dir / "broker" / "viewer.secret"
    _ensure_secret_file(path)
    return path.read_text().strip()


def _agent_password_path(settings: Settings, node: str) -> Path:
    return settings.state_dir / "broker" / f"agent-{routing_word(node)}.password"


def _ensure_secret_file(path: Path) -> None:
    """Write a random secret to ``path`` (mode 0600) unless it exists."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_urlsafe(32) + "\n")
    log.info("new broker secret in %s", path)


def _escape(name: str) -> str:
    return name.replace(".", r"\.")


def _ctl(
    *args: str,
    stdin: str | None = None,
    ok: tuple[int, ...] | None = (0,),
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``rabbitmqctl ARGS`` without a shell; ``ok=None`` accepts any status.

    As root it runs the CLI as the ``rabbitmq`` user with that user's Erlang
    cookie, as Debian's wrapper would. Raises BrokerError when it cannot run
    or exits with a status not in ``ok``.
    """
    what = f"rabbitmqctl {args[0]}"
    if os.geteuid() == 0 and RABBITMQCTL.exists() and _has_user(RABBITMQ_USER):
        return _run(
            [str(RABBITMQCTL), "-q", *args],
            what=what,
            stdin=stdin,
            timeout=timeout,
            ok=ok,
            user=RABBITMQ_USER,
            cwd=RABBITMQ_HOME,
            env={**os.environ, "HOME": str(RABBITMQ_HOME)},
        )
    return _run(
        ["rabbitmqctl", "-q", *args], what=what, stdin=stdin, timeout=timeout, ok=ok
    )


def _run(
    command: list[str],
    *,
    what: str,
    stdin: str | None = None,
    timeout: float = 120,
    ok: tuple[int, ...] | None = (0,),
    user: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    log.debug("running %s", what)
    try:
        result = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=user,
            cwd=cwd,
            env=env,
        )
    except FileNotFoundError as error:
        raise BrokerError(
            f"{what}: {command[0]} is not installed",
            hint="run `dockbed broker setup`, which installs rabbitmq-server",
        ) from error
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BrokerError(f"{what}: {error}") from error
    if ok is not None and result.returncode not in ok:
        message = (result.stderr or result.stdout).strip()
        raise BrokerError(
            f"{what} failed (status {result.returncode}): {message[-500:]}",
            command=what,
        )
    return result


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
