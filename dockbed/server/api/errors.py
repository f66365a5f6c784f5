"""Our errors as HTTP answers: the one place that picks a status for each."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from dockbed import errors

log = logging.getLogger(__name__)

#: The first class in an error's MRO found here gives its status.
STATUS_BY_ERROR: dict[type[errors.DockbedError], int] = {
    errors.InvalidInput: 422,
    errors.Conflict: 409,
    errors.NotFound: 404,
    errors.PermissionDenied: 403,
    errors.AuthenticationRequired: 401,
    errors.BatchFailed: 409,
    errors.EngineUnavailable: 503,
    errors.EngineError: 502,
    errors.BrokerError: 502,
    errors.HostError: 500,
}


def status_of(error: errors.DockbedError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def error_response(error: errors.DockbedError) -> JSONResponse:
    """``{"error": {...}}`` with the status for the error's class."""
    return JSONResponse({"error": error.to_dict()}, status_code=status_of(error))


async def _dockbed_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, errors.DockbedError)
    log.debug("%s %s refused: %s", request.method, request.url.path, error)
    return error_response(error)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    """Type errors in a request body, in the same shape as our own errors."""
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    field = location[-1] if location else None
    value = first.get("input")
    message = f"{'.'.join(location) or 'request'}: {first.get('msg', 'invalid')}"
    if value is not None and not isinstance(value, dict):
        message += f" (got {value!r})"
    return error_response(errors.InvalidInput(message, field=field))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.DockbedError, _dockbed_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
