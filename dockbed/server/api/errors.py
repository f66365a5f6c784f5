"""Our errors as HTTP answers: the one place that picks a status for each."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from dockbed import errors

log = logging.getLogger(__name__)

API_PATH = "/api/"

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
    errors.UnsafeNetwork: 422,
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


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    """Type errors in a request body, in the same shape as our own errors."""
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0]
    # Field names and list indexes; not "body", nor a union member's tag such
    # as "literal['auto']".
    location = [
        str(part)
        for part in first.get("loc", ())
        if part != "body" and (str(part).isidentifier() or str(part).isdigit())
    ]
    field = location[0] if location else None
    value = first.get("input")
    message = f"{'.'.join(location) or 'request'}: {first.get('msg', 'invalid')}"
    if value is not None and not isinstance(value, dict):
        message += f" (got {value!r})"
    return error_response(errors.InvalidInput(message, field=field))


#: How a page (any path outside the API) shows an error: a redirect to the
#: login page, or an HTML page with the status from :func:`status_of`.
PageErrorView = Callable[[Request, errors.DockbedError], Response]


def install_error_handlers(
    app: FastAPI, page_error: PageErrorView | None = None
) -> None:
    """Our errors as JSON under ``/api``, and through ``page_error`` elsewhere."""

    async def _dockbed_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, errors.DockbedError)
        log.debug("%s %s refused: %s", request.method, request.url.path, error)
        if page_error is not None and not request.url.path.startswith(API_PATH):
            return page_error(request, error)
        return error_response(error)

    app.add_exception_handler(errors.DockbedError, _dockbed_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
