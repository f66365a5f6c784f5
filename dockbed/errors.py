"""The exception family every dockbed layer raises.

::

    DockbedError
    ├── InvalidInput            the request breaks a rule; nothing was changed
    │   ├── InvalidName
    │   ├── InvalidAddress
    │   ├── PoolExhausted
    │   └── InvalidCount
    ├── Conflict                the request collides with what exists
    │   ├── AddressInUse
    │   ├── NameInUse
    │   └── AlreadyAttached
    ├── NotFound                node, image, network or container unknown
    ├── PermissionDenied / AuthenticationRequired
    ├── BatchFailed             a batch was rolled back; says which and why
    ├── EngineError             the Docker Engine refused or failed
    │   └── EngineUnavailable   the Docker Engine cannot be reached
    ├── BrokerError             RabbitMQ refused or failed
    └── HostError               the host's own set-up (packages, interfaces)
        └── UnsafeNetwork       a subnet or parent that would harm the host

Each error carries a ``code`` (stable, for scripts), a human ``message``, an
optional ``hint`` saying how to fix it, the input ``field`` it concerns and
``details`` with the facts (node, container, address, range). The server maps
classes to HTTP statuses in ``dockbed.server.api.errors``, the CLI to exit
codes in ``dockbed.cli.output``; lower-layer exceptions are mapped to these at
the boundary where they are caught.
"""

from __future__ import annotations

from typing import Any


class DockbedError(Exception):
    """Root of every error dockbed raises on purpose."""

    code = "error"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        field: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field
        self.details = details

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body the API sends and the CLI reads back."""
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "field": self.field,
            "details": {key: _plain(value) for key, value in self.details.items()},
        }


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return str(value)


class InvalidInput(DockbedError):
    code = "invalid_input"


class InvalidName(InvalidInput):
    code = "invalid_name"


class InvalidAddress(InvalidInput):
    code = "invalid_address"


class PoolExhausted(InvalidInput):
    code = "pool_exhausted"


class InvalidCount(InvalidInput):
    code = "invalid_count"


class Conflict(DockbedError):
    code = "conflict"


class AddressInUse(Conflict):
    code = "address_in_use"


class NameInUse(Conflict):
    code = "name_in_use"


class AlreadyAttached(Conflict):
    code = "already_attached"


class NotFound(DockbedError):
    code = "not_found"


class PermissionDenied(DockbedError):
    code = "permission_denied"


class AuthenticationRequired(DockbedError):
    code = "authentication_required"


class BatchFailed(DockbedError):
    code = "batch_failed"


class EngineError(DockbedError):
    code = "engine_error"


class EngineUnavailable(EngineError):
    code = "engine_unavailable"


class BrokerError(DockbedError):
    code = "broker_error"


class HostError(DockbedError):
    code = "host_error"


class UnsafeNetwork(HostError):
    code = "unsafe_network"


#: Every error class by its code, so a client can rebuild what the server raised.
ERRORS_BY_CODE: dict[str, type[DockbedError]] = {
    cls.code: cls
    for cls in (
        DockbedError,
        InvalidInput,
        InvalidName,
        InvalidAddress,
        PoolExhausted,
        InvalidCount,
        Conflict,
        AddressInUse,
        NameInUse,
        AlreadyAttached,
        NotFound,
        PermissionDenied,
        AuthenticationRequired,
        BatchFailed,
        EngineError,
        EngineUnavailable,
        BrokerError,
        HostError,
        UnsafeNetwork,
    )
}


def error_from_dict(body: dict[str, Any]) -> DockbedError:
    """Rebuild an error from the API's JSON error body."""
    cls = ERRORS_BY_CODE.get(str(body.get("code")), DockbedError)
    return cls(
        str(body.get("message", "unknown error")),
        hint=body.get("hint"),
        field=body.get("field"),
        **dict(body.get("details") or {}),
    )
