"""The audit log's writer: one entry for every request that changes something.

:class:`AuditMiddleware` wraps the whole app, so every POST, PUT, PATCH and
DELETE, under ``/api/v1`` and from the pages' forms alike, is recorded once,
after its answer, whatever route served it and however it ended: who (the
authenticated user, or ``-``), what (the route's name and the request line),
on which target, and the outcome (``ok`` below 400, ``failed`` for 5xx and a
batch rolled back, ``refused`` for any other 4xx) with its status. The
request body goes into the details with passwords, tokens and ssh keys
replaced by ``[redacted]``. Background batches add one more entry when they
end (:func:`record_job_end`), since their outcome comes after the answer.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockbed.server.api.errors import status_of
from dockbed.server.store import Outcome, Store

if TYPE_CHECKING:
    from dockbed.server.jobs import Job

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
#: Body fields never written to the log, at any depth.
SECRET_FIELDS = frozenset(
    {
        "password",
        "current_password",
        "new_password",
        "token",
        "csrf_token",
        "secret",
        "ssh_keys",
        "keys",
        # A node's TLS private key (dockbed node add).
        "key",
    }
)
#: Body fields that say what a request acts on, in the order they are named.
TARGET_FIELDS = ("name", "prefix", "names", "batch", "network")
#: Names of routes that take a body but change nothing (the live batch
#: preview, sent as the user types).
READ_ONLY_ROUTES = frozenset({"preview_batch"})
UNCHANGING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Bytes of a request (or error) body kept for the details; the rest is cut.
BODY_LIMIT = 64 * 1024
ANONYMOUS = "-"


def note_actor(connection: HTTPConnection, name: str) -> None:
    """Name who sent this request, for its audit entry."""
    connection.state.audit_actor = name


def outcome_of(status: int, error_code: str | None = None) -> Outcome:
    if status >= 500 or error_code == "batch_failed":
        return "failed"
    return "refused" if status >= 400 else "ok"


class AuditMiddleware:
    """Pure ASGI middleware: watches the request and the answer, then records.

    It copies the body as the app reads it (never reading ahead), and the
    body of an error answer, to name the error; a response is never held up.
    """

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in UNCHANGING_METHODS:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        request_body = bytearray()
        answer = _Answer()

        async def copying_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(request_body) < BODY_LIMIT:
                request_body.extend(message.get("body", b""))
            return message

        async def watching_send(message: Message) -> None:
            answer.see(message)
            await send(message)

        try:
            await self.app(scope, copying_receive, watching_send)
        except Exception:
            answer.status = 500
            raise
        finally:
            await self._record(scope, bytes(request_body), answer)

    async def _record(self, scope: Scope, body: bytes, answer: _Answer) -> None:
        route = scope.get("route")
        method = str(scope["method"])
        action = str(getattr(route, "name", None) or f"{method} {scope['path']}")
        if action in READ_ONLY_ROUTES:
            return
        fields = _redact(_parse_body(body, _header(scope, b"content-type")))
        error = answer.error()
        details: dict[str, Any] = {"request": f"{method} {scope['path']}"}
        if scope.get("query_string"):
            details["query"] = dict(parse_qsl(scope["query_string"].decode()))
        if fields is not None:
            details["body"] = fields
        if error is not None:
            details["error"] = error
        path_params: dict[str, Any] = scope.get("path_params") or {}
        actor = str(scope["state"].get("audit_actor") or ANONYMOUS)
        record = functools.partial(
            self.store.record,
            actor=actor,
            action=action,
            target=_target(path_params, fields),
            outcome=outcome_of(answer.status, (error or {}).get("code")),
            status=answer.status,
            details=details,
        )
        try:
            await run_in_threadpool(record)
        except Exception:  # the answer is sent; losing the entry must show
            log.exception("could not write the audit entry of %s", details["request"])


class _Answer:
    """What the app answered: its status and, for an error, the start of its body."""

    def __init__(self) -> None:
        self.status = 500
        self._error_body = bytearray()

    def see(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        elif (
            message["type"] == "http.response.body"
            and self.status >= 400
            and len(self._error_body) < BODY_LIMIT
        ):
            self._error_body.extend(message.get("body", b""))

    def error(self) -> dict[str, Any] | None:
        """``code`` and ``message`` of our JSON error body, if it was one."""
        if self.status < 400:
            return None
        try:
            body = json.loads(self._error_body)["error"]
            return {"code": body["code"], "message": body["message"]}
        except (ValueError, KeyError, TypeError):
            return {"code": None, "message": None}


def record_job_end(store: Store, job: Job) -> None:
    """The entry for a background batch that has ended, well or not.

    Its status is the one its error would have had as an answer (409 for a
    batch rolled back), or 200.
    """
    details: dict[str, Any] = {
        "job": job.id,
        "created": [info.name for info in job.containers],
    }
    status = 200
    if job.error is not None:
        details["error"] = {"code": job.error.code, "message": job.error.message}
        status = status_of(job.error)
    store.record(
        actor=job.owner,
        action=f"{job.kind}_finished",
        target=job.target,
        outcome="failed" if job.error is not None else "ok",
        status=status,
        details=details,
    )


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def _parse_body(body: bytes, content_type: str) -> Any:
    if not body:
        return None
    if content_type.startswith("application/json"):
        try:
            return json.loads(body)
        except ValueError:
            return {"unparsed": len(body)}
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(body.decode("utf-8", "replace")))
    return {"bytes": len(body)}


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if key in SECRET_FIELDS else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


def _target(path_params: dict[str, Any], fields: Any) -> str | None:
    """What the request acts on: its path's parameters, then its body's names."""
    parts = [str(value) for value in path_params.values()]
    if isinstance(fields, dict):
        for key in TARGET_FIELDS:
            value = fields.get(key)
            if isinstance(value, list) and value:
                parts.append(", ".join(str(item) for item in value))
            elif isinstance(value, str | int) and value != "":
                parts.append(f"batch {value}" if key == "batch" else str(value))
    return " ".join(dict.fromkeys(parts)) or None
