"""``/api/v1/containers``, ``/batches``, ``/jobs``: lab containers and batches."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Response, status

from dockbed.errors import NotFound
from dockbed.server.api.deps import Caller, Jobs, Service
from dockbed.server.jobs import Job as JobRecord
from dockbed.server.schemas import (
    ActionResult,
    BatchPlan,
    BatchRequest,
    Container,
    CreateRequest,
    Job,
    NicAddressRequest,
    NicRequest,
    Selection,
)

router = APIRouter(tags=["containers"])

NodeQuery = Query(default=None, description="node name; default the local node")


@router.get("/containers", response_model=list[Container])
def list_containers(
    service: Service,
    caller: Caller,
    node: str | None = Query(default=None, description="one node; default all"),
    batch: str | None = None,
    include_stopped: bool = Query(
        default=True, alias="all", description="include stopped containers"
    ),
) -> list[Container]:
    """Containers you may see: ``dockbed ls``."""
    found = service.list_containers(
        caller, node=node, batch=batch, running_only=not include_stopped
    )
    return [Container.of(info) for info in found]


@router.post("/containers", response_model=Container, status_code=201)
def create_container(
    request: CreateRequest, service: Service, caller: Caller
) -> Container:
    """Create and start one container: ``dockbed create``."""
    return Container.of(service.create(caller, request))


@router.get("/containers/{name}", response_model=Container)
def get_container(
    name: str, service: Service, caller: Caller, node: str | None = NodeQuery
) -> Container:
    return Container.of(service.get_container(caller, node, name))


@router.post("/containers/{name}/start", response_model=ActionResult)
def start_container(
    name: str, service: Service, caller: Caller, node: str | None = NodeQuery
) -> ActionResult:
    """Start one stopped container, at its address: ``dockbed start NAME``."""
    return service.act(caller, "start", node=node, names=[name])


@router.post("/containers/{name}/stop", response_model=ActionResult)
def stop_container(
    name: str, service: Service, caller: Caller, node: str | None = NodeQuery
) -> ActionResult:
    """Stop one container; its address stays its own: ``dockbed stop NAME``."""
    return service.act(caller, "stop", node=node, names=[name])


@router.delete("/containers/{name}", response_model=ActionResult)
def remove_container(
    name: str, service: Service, caller: Caller, node: str | None = NodeQuery
) -> ActionResult:
    """Remove one container, running or not: ``dockbed rm NAME``."""
    return service.act(caller, "remove", node=node, names=[name])


@router.post("/actions/{action}", response_model=ActionResult)
def act_on_selection(
    action: Literal["start", "stop", "remove"],
    selection: Selection,
    service: Service,
    caller: Caller,
) -> ActionResult:
    """Start, stop or remove several containers or a whole batch at once."""
    return service.act(
        caller,
        action,
        node=selection.node,
        names=selection.names,
        batch=selection.batch,
    )


@router.post("/batches/preview", response_model=BatchPlan)
def preview_batch(request: BatchRequest, service: Service, caller: Caller) -> BatchPlan:
    """The names and addresses a batch would get; creates nothing."""
    return service.preview_batch(caller, request)


@router.post(
    "/batches",
    response_model=Job,
    status_code=202,
    responses={201: {"model": Job, "description": "finished, with wait=true"}},
)
def create_batch(
    request: BatchRequest,
    response: Response,
    service: Service,
    jobs: Jobs,
    caller: Caller,
    wait: bool = Query(default=False, description="answer only when it has finished"),
) -> Job:
    """Create and start ``PREFIX-1`` … ``PREFIX-N``: ``dockbed batch``.

    Every check runs before the answer: a bad batch is refused with 4xx and
    nothing is made. Then it runs in the background; poll ``/jobs/{id}``.
    With ``wait=true`` the answer comes when it is done (201), or the error.
    """
    prepared = service.prepare_batch(caller, request)
    job = jobs.submit(
        "batch",
        caller.name,
        len(prepared.specs),
        lambda job: service.run_batch(prepared, on_created=job.record),
        target=request.prefix,
    )
    if wait:
        job.finished.wait()
        if job.error is not None:
            raise job.error
        response.status_code = status.HTTP_201_CREATED
    return _job_view(job)


@router.get("/jobs/{job_id}", response_model=Job)
def get_job(job_id: str, jobs: Jobs, caller: Caller) -> Job:
    """How far a background batch has got."""
    job = jobs.get(job_id)
    if job is None or not (caller.is_admin or job.owner == caller.name):
        raise NotFound(f"no job {job_id!r}", field="job", job=job_id)
    return _job_view(job)


@router.post("/containers/{name}/networks", response_model=Container)
def add_interface(
    name: str,
    request: NicRequest,
    service: Service,
    caller: Caller,
    node: str | None = NodeQuery,
) -> Container:
    """Attach a second interface: ``dockbed nic add``."""
    return Container.of(service.attach(caller, node, name, request.network, request.ip))


@router.put("/containers/{name}/networks/{network}", response_model=Container)
def readdress_interface(
    name: str,
    network: str,
    request: NicAddressRequest,
    service: Service,
    caller: Caller,
    node: str | None = NodeQuery,
) -> Container:
    """Re-address the interface on ``network``: ``dockbed nic set``."""
    return Container.of(service.readdress(caller, node, name, network, request.ip))


@router.delete("/containers/{name}/networks/{network}", response_model=Container)
def remove_interface(
    name: str,
    network: str,
    service: Service,
    caller: Caller,
    node: str | None = NodeQuery,
) -> Container:
    """Detach from ``network``: ``dockbed nic rm``."""
    return Container.of(service.detach(caller, node, name, network))


def _job_view(job: JobRecord) -> Job:
    return Job(
        id=job.id,
        kind=job.kind,
        state=job.state,
        total=job.total,
        done=len(job.containers),
        containers=[Container.of(info) for info in job.containers],
        error=job.error.to_dict() if job.error else None,
    )
