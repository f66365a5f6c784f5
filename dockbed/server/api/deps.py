"""What every API route depends on: the service, the job board, the store, the caller.

``Caller`` is whoever sent the request (see ``dockbed.server.auth``); a route
that takes ``Admin`` instead answers 403 to everyone but admins.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from dockbed.server.auth import get_principal, get_store, require_admin
from dockbed.server.jobs import JobBoard
from dockbed.server.service import LabService, Principal
from dockbed.server.store import Store

__all__ = ["Admin", "Caller", "Jobs", "Service", "StoreDep", "get_principal"]


def get_service(request: Request) -> LabService:
    service: LabService = request.app.state.service
    return service


def get_jobs(request: Request) -> JobBoard:
    jobs: JobBoard = request.app.state.jobs
    return jobs


Service = Annotated[LabService, Depends(get_service)]
Jobs = Annotated[JobBoard, Depends(get_jobs)]
StoreDep = Annotated[Store, Depends(get_store)]
Caller = Annotated[Principal, Depends(get_principal)]
Admin = Annotated[Principal, Depends(require_admin)]
