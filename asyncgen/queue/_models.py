"""What a queue stores: job records, their states, and queue statistics."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["JobRecord", "JobState", "QueueStatistics", "WorkerReport"]


class JobState(StrEnum):
    """Where a job is in its life.

    pending -> running -> completed; running -> pending (retry, lease expiry, or a
    stopping worker whose grace ran out); running -> dead (attempts exhausted, or a
    permanent error); pending -> cancelled.
    ``scheduled`` is pending with a ``run_at`` in the future.
    """

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    DEAD = "dead"
    CANCELLED = "cancelled"


def _new_id() -> str:
    return uuid.uuid4().hex


class JobRecord(BaseModel):
    """One job as stored: what to run, its state, its attempts and its outcome.

    Attributes:
        id: The job id (returned by ``submit``).
        kind: The registered task name, or ``"generate"`` for a GenerationJob.
        payload: The task's keyword arguments, or the GenerationJob's fields (JSON).
        priority: Higher runs first; FIFO within a priority.
        state: See JobState.
        attempts: Runs started so far.
        max_attempts: Runs allowed before the job goes dead.
        run_at: Epoch seconds before which the job does not start.
        lease_until: While running: epoch seconds after which another worker may take it.
        worker: The worker holding the lease.
        result: The task's return value (JSON), once completed.
        error_type: The last error's class name.
        error: The last error's message.
        idempotency_key: Submits with the same key return the same job.
        created_at: Epoch seconds of submission.
        finished_at: Epoch seconds of completion, death or cancellation.
        every: For a recurring job: seconds between slots.
        cron: For a recurring job: a cron expression (UTC) for its slots.
        depends_on: Ids of jobs that must complete first; if one ends dead or
            cancelled, this job goes dead too.
        timeout: Seconds a run may take before it is cancelled and counted as a failed
            attempt (JobTimeoutError, retried); None: the worker's default, if any.
        context: The log context it was submitted in (the :func:`asyncgen.conversation`
            ids), bound again to the worker's log lines while it runs.
        started_at: Epoch seconds the current (or last) attempt started.
        unique_key: While this job is pending or running (and before ``unique_until``),
            a submit with the same unique key returns this job instead of a new one.
        unique_until: Epoch seconds after which the unique key no longer holds (None:
            as long as the job is pending or running).
        group: The id of the group this job is a member of (see ``submit_group``).
        members: For a group's own record: its members' ids, in the order submitted. It
            runs (its ``on_complete`` task, or nothing) once every member has ended.
        progress: What the task last reported of its run (0.0 to 1.0; see
            :func:`asyncgen.queue.report_progress`); cleared when a new attempt starts.
        progress_message: The message reported with it.
        history: The last 20 attempts that ended, oldest first: ``attempt``, ``worker``,
            ``started``, ``ended``, ``outcome`` (ok, retried, dead, postponed, lost,
            cancelled), ``error_type``, ``error``.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=_new_id)
    kind: str
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: int = 0
    state: JobState = JobState.PENDING
    attempts: int = 0
    max_attempts: int = Field(default=3, ge=1)
    run_at: float = Field(default_factory=time.time)
    lease_until: float | None = None
    worker: str | None = None
    result: Any = None
    error_type: str | None = None
    error: str | None = None
    idempotency_key: str | None = None
    created_at: float = Field(default_factory=time.time)
    finished_at: float | None = None
    every: float | None = Field(default=None, gt=0)
    cron: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    timeout: float | None = Field(default=None, gt=0)
    context: dict[str, str] = Field(default_factory=dict)
    started_at: float | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    unique_key: str | None = None
    unique_until: float | None = None
    group: str | None = None
    members: list[str] = Field(default_factory=list)
    progress: float | None = Field(default=None, ge=0, le=1)
    progress_message: str | None = None


@dataclass(frozen=True, slots=True)
class QueueStatistics:
    """Counts of jobs by state, plus retries made and workers seen alive.

    ``failed`` counts jobs whose last run failed and that wait for a retry (they are
    also in ``pending`` or ``scheduled``); ``dead`` those that will not run again.
    """

    pending: int
    scheduled: int
    running: int
    completed: int
    failed: int
    dead: int
    cancelled: int
    retried: int
    workers: int


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """What a live worker last said about itself (every few seconds; see Worker).

    Attributes:
        name: The worker's name.
        at: Epoch seconds of the report.
        status: Its figures: ``started_at``, ``concurrency``, ``kinds``, ``running``
            (id, kind, model, since), ``jobs`` (per kind and model: ok, failed,
            retried, seconds), ``states`` (``credit_paused``), ``client`` (requests,
            429s, tokens, cost, open circuits) and ``state`` ("running", "stopping",
            "stopped", or "crashed" when its loop failed).
    """

    name: str
    at: float
    status: dict[str, Any]
