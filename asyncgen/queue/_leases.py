"""The leases of a worker's running jobs: kept fresh, and runs that lost theirs stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from ..core._errors import TransientError
from ._models import JobState
from ._store import JobStore

__all__ = ["WATCH_EVERY", "Leases"]

WATCH_EVERY = 0.25  # seconds between looks for aborted running jobs (one read, no write)

_log = structlog.get_logger("asyncgen.worker")


class Leases:
    """The running jobs one worker holds, and the two loops that keep them honest.

    ``beat`` renews every held lease in one store call a third of a lease apart;
    ``watch`` looks every WATCH_EVERY seconds (one read, leases untouched) for jobs no
    longer ours: cancelled (``queue.cancel``, ``asyncgen jobs cancel``, the dashboard) or
    taken over after a stall. A run that lost its job is cancelled (its result would be
    thrown away) and remembered as lost, so its end is not taken for a stop's.
    """

    def __init__(self, store: JobStore, worker: str, lease: float) -> None:
        self.store = store
        self.worker = worker
        self.lease = lease
        self._held: dict[str, asyncio.Task[None]] = {}  # job id -> its run
        self._lost: set[str] = set()  # running jobs whose lease is gone: stopped

    def hold(self, job_id: str, run: asyncio.Task[None]) -> None:
        """``run`` works on ``job_id`` now: beat for it."""
        self._held[job_id] = run

    def release(self, job_id: str) -> None:
        """The run ended: no more beats (a lost lease now shows in the write)."""
        self._held.pop(job_id, None)

    def lost(self, job_id: str) -> bool:
        """Whether ``job_id``'s run was stopped because the job is no longer ours."""
        return job_id in self._lost

    def forget(self, job_id: str) -> None:
        """The job's run is over, whatever happened to it."""
        self._lost.discard(job_id)

    async def beat(self) -> None:
        """Keep the leases of every running job fresh, until cancelled."""

        async def renew(ids: list[str]) -> list[bool]:
            return await self.store.heartbeat_many(ids, self.worker, lease=self.lease)

        await self._keep_checking(self.lease / 3, renew, failed="heartbeat_failed")

    async def watch(self) -> None:
        """Stop aborted runs within a second, not at the next heartbeat, until cancelled."""

        async def look(ids: list[str]) -> list[bool]:
            return await self.store.held(ids, self.worker)

        await self._keep_checking(WATCH_EVERY, look, failed=None)

    async def _keep_checking(
        self,
        every: float,
        still_ours: Callable[[list[str]], Awaitable[list[bool]]],
        *,
        failed: str | None,
    ) -> None:
        """Every ``every`` seconds while jobs run, ask the store (one call) which running
        jobs are still ours, and stop the others. A store that does not answer is asked
        again next time (logged as ``failed`` when given)."""
        while True:
            await asyncio.sleep(every)
            held = dict(self._held)
            if not held:
                continue
            try:
                kept = await still_ours(list(held))
            except TransientError as exc:  # the next call may get through, within the lease
                if failed is not None:
                    _log.warning(failed, jobs=len(held), error=str(exc))
                continue
            for (job_id, run), ok in zip(held.items(), kept, strict=True):
                if not ok and self._held.get(job_id) is run and job_id not in self._lost:
                    await self._stop(job_id, run)

    async def _stop(self, job_id: str, run: asyncio.Task[None]) -> None:
        try:
            record = await self.store.get(job_id)
        except TransientError:
            record = None
        aborted = record is not None and record.state is JobState.CANCELLED
        _log.warning("job_aborted" if aborted else "lease_lost", job_id=job_id)
        self._lost.add(job_id)
        run.cancel()
