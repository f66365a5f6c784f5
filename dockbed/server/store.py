"""The server's own store: users, their API tokens and ssh keys, the audit log,
and the nodes added at run time.

Container state is never kept here (the engines hold it); this holds only
what no engine knows. SQLite under ``state_dir`` by default, any SQLAlchemy
URL through the ``database_url`` setting. Secrets never reach the tables in
the clear: passwords are argon2 hashes, API tokens sha256 digests of a
``secrets.token_urlsafe(32)`` that only its holder ever sees.

Raises, from dockbed's family: ``InvalidName`` / ``InvalidInput`` for a bad
user name, role or password, ``Conflict`` for a name taken or a change that
would leave no admin, ``NotFound`` for an unknown user or token,
``AuthenticationRequired`` for a wrong password or a disabled user.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    ForeignKey,
    String,
    Text,
    TypeDecorator,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)
from sqlalchemy.pool import StaticPool

from dockbed.config import Settings
from dockbed.errors import (
    AuthenticationRequired,
    Conflict,
    InvalidInput,
    InvalidName,
    NotFound,
)

log = logging.getLogger(__name__)

Role = Literal["admin", "user"]
ROLES: tuple[Role, ...] = ("admin", "user")
Outcome = Literal["ok", "refused", "failed"]

#: A user's name is also the owner label of their containers.
_USER_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MIN_PASSWORD_LENGTH = 8
#: ``last_used`` of a token is written at most this often, not on every call.
TOKEN_TOUCH_INTERVAL = timedelta(seconds=60)

_hasher = PasswordHasher()
#: Verified against when the user is unknown, so a wrong name takes as long
#: as a wrong password and names cannot be probed by timing.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def default_database_url(settings: Settings) -> str:
    """``database_url``, or the SQLite file under ``state_dir``."""
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{settings.state_dir / 'dockbed.db'}"


def generate_password() -> str:
    """A random password for a new user, shown to whoever made it, once."""
    return secrets.token_urlsafe(12)


def _now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A moment kept in UTC; SQLite drops the zone, this puts it back."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        return value.astimezone(UTC).replace(tzinfo=None) if value else None

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        return value.replace(tzinfo=UTC) if value else None


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    role: Mapped[str] = mapped_column(String(8))
    password_hash: Mapped[str] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    disabled: Mapped[bool] = mapped_column(default=False)
    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    keys: Mapped[list[SshKey]] = relationship(
        cascade="all, delete-orphan", order_by="SshKey.id"
    )

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def session_stamp(self) -> str:
        """Changes with the password, which ends the user's page sessions."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    last_used: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    user: Mapped[User] = relationship(back_populates="tokens")


class SshKey(Base):
    """A public key a user keeps for new containers."""

    __tablename__ = "ssh_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(Text)


class AuditEntry(Base):
    """One action that changed something, or tried to."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now, index=True)
    actor: Mapped[str] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(8))
    status: Mapped[int]
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class NodeEntry(Base):
    """A node the server drives besides those of its config: ``dockbed node add``."""

    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    engine_url: Mapped[str] = mapped_column(String(300))
    #: The server's copy of the node's CA and client certificate, if tcp://.
    tls_dir: Mapped[str | None] = mapped_column(String(500))
    #: The node's lab settings (``LabSettings`` as JSON).
    lab: Mapped[dict[str, Any]] = mapped_column(JSON)
    added_by: Mapped[str] = mapped_column(String(32))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)


@dataclass(frozen=True)
class RegisteredNode:
    """A node as the store keeps it, detached from any session."""

    name: str
    engine_url: str
    tls_dir: str | None
    lab: dict[str, Any]


def _token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Store:
    """Users, tokens, keys and the audit log, behind one SQLAlchemy engine.

    Each method is its own transaction. Rows come back detached but loaded,
    so callers may read their columns (not their relationships) freely.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        Base.metadata.create_all(self.engine)
        _protect_sqlite_file(self.engine)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(default_database_url(settings))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # Users --------------------------------------------------------------------

    def add_user(self, name: str, password: str, role: Role = "user") -> User:
        """A new user; raises InvalidName, InvalidInput or Conflict."""
        _check_user_name(name)
        _check_role(role)
        _check_password(password)
        with self._session() as session:
            if _user(session, name) is not None:
                raise Conflict(
                    f"user {name!r} already exists",
                    hint="choose another name, or reset their password",
                    field="name",
                    user=name,
                )
            user = User(name=name, role=role, password_hash=_hasher.hash(password))
            session.add(user)
        log.info("user %s added (%s)", name, role)
        return user

    def user(self, name: str) -> User | None:
        with self._session() as session:
            return _user(session, name)

    def get_user(self, name: str) -> User:
        """The user called ``name``; raises NotFound."""
        user = self.user(name)
        if user is None:
            raise NotFound(f"no user {name!r}", field="name", user=name)
        return user

    def users(self) -> list[User]:
        with self._session() as session:
            return list(session.scalars(select(User).order_by(User.name)))

    def update_user(
        self, name: str, *, role: Role | None = None, disabled: bool | None = None
    ) -> User:
        """Change a user's role or lock them out; the last admin must stay one."""
        if role is not None:
            _check_role(role)
        with self._session() as session:
            user = _existing_user(session, name)
            losing_admin = user.is_admin and (role == "user" or disabled is True)
            if losing_admin and _active_admins(session) <= 1:
                raise Conflict(
                    f"{name} is the last active admin",
                    hint="make another user an admin first",
                    field="role" if role == "user" else "disabled",
                    user=name,
                )
            if role is not None:
                user.role = role
            if disabled is not None:
                user.disabled = disabled
                if disabled:
                    user.tokens.clear()
        log.info("user %s updated: role=%s disabled=%s", name, role, disabled)
        return user

    def set_password(self, name: str, password: str) -> User:
        """A new password; ends the user's page sessions (not their tokens)."""
        _check_password(password)
        with self._session() as session:
            user = _existing_user(session, name)
            user.password_hash = _hasher.hash(password)
        log.info("password of %s changed", name)
        return user

    def remove_user(self, name: str) -> None:
        """Delete a user with their tokens and keys; their containers stay."""
        with self._session() as session:
            user = _existing_user(session, name)
            if user.is_admin and not user.disabled and _active_admins(session) <= 1:
                raise Conflict(
                    f"{name} is the last active admin",
                    hint="make another user an admin first",
                    field="name",
                    user=name,
                )
            session.delete(user)
        log.info("user %s removed", name)

    def authenticate(self, name: str, password: str) -> User:
        """The user whose password this is; raises AuthenticationRequired."""
        user = self.user(name)
        try:
            _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            user = None
        if user is None:
            raise AuthenticationRequired(
                "wrong user name or password", field="password", user=name
            )
        if user.disabled:
            raise AuthenticationRequired(
                f"user {name!r} is disabled",
                hint="an admin can enable the account again",
                field="name",
                user=name,
            )
        if _hasher.check_needs_rehash(user.password_hash):
            user = self.set_password(name, password)
        return user

    # Tokens -------------------------------------------------------------------

    def issue_token(self, user_name: str, label: str) -> tuple[str, ApiToken]:
        """A new API token for a user: the secret (shown once) and its row."""
        secret = secrets.token_urlsafe(32)
        with self._session() as session:
            user = _existing_user(session, user_name)
            token = ApiToken(digest=_token_digest(secret), name=label[:100], user=user)
            session.add(token)
        log.info("token %r issued to %s", label, user_name)
        return secret, token

    def token_holder(self, secret: str) -> tuple[User, ApiToken] | None:
        """Whose token this is, if it is one of a user not disabled."""
        with self._session() as session:
            token = session.scalars(
                select(ApiToken).where(ApiToken.digest == _token_digest(secret))
            ).first()
            if token is None or token.user.disabled:
                return None
            now = _now()
            if token.last_used is None or now - token.last_used > TOKEN_TOUCH_INTERVAL:
                token.last_used = now
            return token.user, token

    def tokens(self, user_name: str) -> list[ApiToken]:
        with self._session() as session:
            user = _existing_user(session, user_name)
            return list(user.tokens)

    def revoke_token(self, user_name: str, token_id: int) -> None:
        """Delete one of a user's tokens; raises NotFound."""
        with self._session() as session:
            token = session.get(ApiToken, token_id)
            if token is None or token.user.name != user_name:
                raise NotFound(f"{user_name} has no token {token_id}", token=token_id)
            session.delete(token)
        log.info("token %d of %s revoked", token_id, user_name)

    # Saved ssh keys -----------------------------------------------------------

    def keys_of(self, user_name: str) -> list[str]:
        """The public keys a user saved for new containers; [] for none."""
        with self._session() as session:
            user = _user(session, user_name)
            return [row.key for row in user.keys] if user else []

    def set_keys(self, user_name: str, keys: Sequence[str]) -> list[str]:
        """Replace a user's saved keys (checked by the caller)."""
        with self._session() as session:
            user = _existing_user(session, user_name)
            user.keys = [SshKey(key=key) for key in dict.fromkeys(keys)]
            return [row.key for row in user.keys]

    # Nodes ---------------------------------------------------------------------

    def node_records(self) -> list[RegisteredNode]:
        """The registered nodes, by name."""
        with self._session() as session:
            rows = session.scalars(select(NodeEntry).order_by(NodeEntry.name))
            return [
                RegisteredNode(row.name, row.engine_url, row.tls_dir, dict(row.lab))
                for row in rows
            ]

    def add_node_record(self, node: RegisteredNode, added_by: str) -> None:
        """Keep a node (checked by the registry); Conflict if its name is taken."""
        with self._session() as session:
            taken = session.scalars(
                select(NodeEntry).where(NodeEntry.name == node.name)
            ).first()
            if taken is not None:
                raise Conflict(
                    f"a node named {node.name} is registered",
                    field="name",
                    node=node.name,
                )
            session.add(
                NodeEntry(
                    name=node.name,
                    engine_url=node.engine_url,
                    tls_dir=node.tls_dir,
                    lab=node.lab,
                    added_by=added_by[:32],
                )
            )
        log.info("node %s registered by %s", node.name, added_by)

    def remove_node_record(self, name: str) -> None:
        """Forget a registered node; NotFound if there is none of that name."""
        with self._session() as session:
            row = session.scalars(
                select(NodeEntry).where(NodeEntry.name == name)
            ).first()
            if row is None:
                raise NotFound(f"no registered node {name!r}", field="name", node=name)
            session.delete(row)
        log.info("node %s removed from the registry", name)

    # Audit log ----------------------------------------------------------------

    def record(
        self,
        *,
        actor: str,
        action: str,
        outcome: Outcome,
        status: int,
        target: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry to the audit log."""
        with self._session() as session:
            session.add(
                AuditEntry(
                    actor=actor[:32],
                    action=action[:100],
                    target=target[:200] if target else None,
                    outcome=outcome,
                    status=status,
                    details=details or {},
                )
            )

    def audit(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        actor: str | None = None,
        outcome: Outcome | None = None,
        text: str | None = None,
    ) -> list[AuditEntry]:
        """The newest entries first, older than entry ``before`` if given."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if before is not None:
            query = query.where(AuditEntry.id < before)
        if actor:
            query = query.where(AuditEntry.actor == actor)
        if outcome:
            query = query.where(AuditEntry.outcome == outcome)
        if text:
            pattern = f"%{text}%"
            query = query.where(
                AuditEntry.action.ilike(pattern) | AuditEntry.target.ilike(pattern)
            )
        with self._session() as session:
            return list(session.scalars(query))


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    in_memory = url in {"sqlite://", "sqlite:///:memory:"}
    if not in_memory:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False},
        poolclass=StaticPool if in_memory else None,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if not in_memory:
            # Readers (page polls) then never wait for a writer (the audit log).
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    return engine


def _protect_sqlite_file(engine: Engine) -> None:
    """Password hashes and token digests are for the server's eyes only."""
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or database in {None, "", ":memory:"}:
        return
    for suffix in ("", "-wal", "-shm"):
        path = f"{database}{suffix}"
        if os.path.exists(path):
            os.chmod(path, 0o600)


def _user(session: Session, name: str) -> User | None:
    return session.scalars(select(User).where(User.name == name)).first()


def _existing_user(session: Session, name: str) -> User:
    user = _user(session, name)
    if user is None:
        raise NotFound(f"no user {name!r}", field="name", user=name)
    return user


def _active_admins(session: Session) -> int:
    query = select(func.count(User.id)).where(
        User.role == "admin", User.disabled.is_(False)
    )
    return int(session.scalar(query) or 0)


def _check_user_name(name: str) -> None:
    if not _USER_NAME.fullmatch(name):
        raise InvalidName(
            f"{name!r} is not a valid user name",
            hint="use 1 to 32 lower-case letters, digits, '-' or '_', starting "
            "with a letter",
            field="name",
            name=name,
        )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(
            f"role must be admin or user, not {role!r}", field="role", role=role
        )


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"a password needs at least {MIN_PASSWORD_LENGTH} characters",
            field="password",
        )


def as_role(value: str) -> Role:
    """A role read from a row, typed."""
    _check_role(value)
    return cast(Role, value)
