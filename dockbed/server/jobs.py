"""Batches that run in the background while the caller watches their progress."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from dockbed.engine.containers import ContainerInfo
from dockbed.errors import DockbedError

log = logging.getLogger(__name__)

#: Finished jobs kept for late pollers; the oldest go first.
KEEP_FINISHED = 200

JobState = Literal["running", "succeeded", "failed"]


@dataclass
class Job:
    """One background batch: how far it got, and how it ended."""

    id: str
    kind: str
    owner: str
    total: int
    #: What the job makes, for people: a batch's prefix.
    target: str | None = None
    state: JobState = "running"
    containers: list[ContainerInfo] = field(default_factory=list)
    error: DockbedError | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def record(self, info: ContainerInfo) -> None:
        self.containers.append(info)


class JobBoard:
    """Runs jobs on their own threads and keeps them for polling.

    ``on_finished`` is called on the job's thread once it has ended (the
    audit log's entry for it); its failures are logged, not raised.
    """

    def __init__(self, on_finished: Callable[[Job], None] | None = None) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._on_finished = on_finished

    def submit(
        self,
        kind: str,
        owner: str,
        total: int,
        work: Callable[[Job], list[ContainerInfo]],
        *,
        target: str | None = None,
    ) -> Job:
        """Start ``work`` on a thread; it reports each container via ``job.record``."""
        job = Job(
            id=uuid.uuid4().hex[:12],
            kind=kind,
            owner=owner,
            total=total,
            target=target,
        )
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        threading.Thread(
            target=self._run, args=(job, work), name=f"job-{job.id}", daemon=True
        ).start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: Job, work: Callable[[Job], list[ContainerInfo]]) -> None:
        try:
            job.containers = work(job)
            job.state = "succeeded"
        except DockbedError as error:
            job.error = error
            job.state = "failed"
        except Exception as error:  # the thread must record every ending
            log.exception("job %s crashed", job.id)
            job.error = DockbedError(f"internal error: {error}")
            job.state = "failed"
        finally:
            self._report(job)
            job.finished.set()

    def _report(self, job: Job) -> None:
        if self._on_finished is None:
            return
        try:
            self._on_finished(job)
        except Exception:
            log.exception("reporting the end of job %s failed", job.id)

    def _forget_old(self) -> None:
        finished = [key for key, job in self._jobs.items() if job.finished.is_set()]
        for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[key]
