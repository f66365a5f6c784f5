"""What every API route depends on: the service, the job board, the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from dockbed.server.jobs import JobBoard
from dockbed.server.service import LabService, Principal

#: Who acts while dockbed has no logins: the server listens on loopback only,
#: so whoever reaches it is on this machine and administers it.
LOCAL_ADMIN = Principal("admin", is_admin=True)


def get_service(request: Request) -> LabService:
    service: LabService = request.app.state.service
    return service


def get_jobs(request: Request) -> JobBoard:
    jobs: JobBoard = request.app.state.jobs
    return jobs


def get_principal(request: Request) -> Principal:
    return LOCAL_ADMIN


Service = Annotated[LabService, Depends(get_service)]
Jobs = Annotated[JobBoard, Depends(get_jobs)]
Caller = Annotated[Principal, Depends(get_principal)]
