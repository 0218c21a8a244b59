"""The protocol every job store implements (SQLite, memory and Redis)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Protocol

from ._models import JobRecord, JobState, QueueStatistics, WorkerReport

__all__ = ["JobStore", "SingleCalls"]


class JobStore(Protocol):
    """Durable job records with atomic claims under leases.

    Implementations must make ``claim`` atomic across processes, accept ``complete`` /
    ``fail`` / ``heartbeat`` only from the worker holding the lease, and
    honour idempotency keys, priorities (FIFO within one), ``run_at``, ``depends_on``,
    recurring slots (each slot once) and groups (a group's own record, the one with
    ``members``, is claimable once every member has ended, whatever the outcome).
    ``tests/test_queue.py`` is the conformance suite.
    """

    async def add(self, record: JobRecord) -> str: ...

    async def add_many(self, records: Sequence[JobRecord]) -> list[str]: ...

    async def claim(
        self, worker: str, *, kinds: Sequence[str] | None, lease: float
    ) -> JobRecord | None: ...

    async def claim_many(
        self, worker: str, *, kinds: Sequence[str] | None, lease: float, limit: int
    ) -> list[JobRecord]: ...

    async def heartbeat(self, job_id: str, worker: str, *, lease: float) -> bool: ...

    async def heartbeat_many(
        self, job_ids: Sequence[str], worker: str, *, lease: float
    ) -> list[bool]: ...

    async def held(self, job_ids: Sequence[str], worker: str) -> list[bool]: ...

    async def complete(self, job_id: str, worker: str, result: Any) -> bool: ...

    async def complete_many(
        self, worker: str, results: Sequence[tuple[str, Any]]
    ) -> list[bool]: ...

    async def fail(
        self, job_id: str, worker: str, *, error_type: str, error: str, retry_at: float | None
    ) -> JobState | None: ...

    async def postpone(
        self, job_id: str, worker: str, *, run_at: float, error_type: str, error: str
    ) -> bool: ...

    async def cancel(self, job_id: str) -> bool: ...

    async def requeue(self, job_ids: Sequence[str]) -> list[str]: ...

    async def find(
        self, *, state: JobState | None = None, kind: str | None = None, limit: int = 100
    ) -> list[JobRecord]: ...

    async def purge(self, older_than: float) -> int: ...

    async def report_progress(
        self, job_id: str, worker: str, fraction: float, message: str | None
    ) -> bool: ...

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]: ...

    async def states(
        self, job_ids: Sequence[str]
    ) -> list[tuple[JobState, float | None] | None]: ...

    async def groups(self, limit: int) -> list[JobRecord]: ...

    async def statistics(self) -> QueueStatistics: ...

    async def depth(self) -> dict[tuple[str, str], int]: ...

    async def report(self, worker: str, status: dict[str, Any], *, ttl: float) -> None: ...

    async def worker_reports(self) -> list[WorkerReport]: ...

    # True when wait_for_work blocks on the server (Redis); False: it is woken only from
    # this process, so a worker also polls (SQLite, memory).
    blocking_wait: bool

    async def wait_for_work(self, within: float) -> None: ...

    async def wake_workers(self) -> None: ...

    async def wait_finished(self, job_ids: Sequence[str], within: float) -> list[str] | None: ...

    async def finished(self, job_ids: Sequence[str]) -> list[JobRecord]: ...

    async def close(self) -> None: ...


class SingleCalls(abc.ABC):
    """``claim``, ``heartbeat`` and ``complete`` for a store that implements their
    batch forms: a batch of one."""

    @abc.abstractmethod
    async def claim_many(
        self, worker: str, *, kinds: Sequence[str] | None, lease: float, limit: int
    ) -> list[JobRecord]:
        """Take up to ``limit`` ready jobs at once, in claim order."""

    async def claim(
        self, worker: str, *, kinds: Sequence[str] | None, lease: float
    ) -> JobRecord | None:
        """Take the next ready job (highest priority, oldest first) for ``lease`` seconds.

        Ready means pending with ``run_at`` passed, or running with an expired lease (its
        worker died). A taken-over job that has used all its attempts goes dead instead.
        """
        records = await self.claim_many(worker, kinds=kinds, lease=lease, limit=1)
        return records[0] if records else None

    @abc.abstractmethod
    async def heartbeat_many(
        self, job_ids: Sequence[str], worker: str, *, lease: float
    ) -> list[bool]:
        """Extend the leases of running jobs at once; per job, False if ``worker`` no
        longer holds it."""

    async def heartbeat(self, job_id: str, worker: str, *, lease: float) -> bool:
        """Extend a running job's lease; False if the worker no longer holds it."""
        return (await self.heartbeat_many([job_id], worker, lease=lease))[0]

    @abc.abstractmethod
    async def complete_many(self, worker: str, results: Sequence[tuple[str, Any]]) -> list[bool]:
        """Store the results of ``(job_id, result)`` pairs at once (results are JSON
        values); per job, False (and nothing stored) if the lease was lost meanwhile."""

    async def complete(self, job_id: str, worker: str, result: Any) -> bool:
        """Store the result; False (and nothing stored) if the lease was lost meanwhile."""
        return (await self.complete_many(worker, [(job_id, result)]))[0]
