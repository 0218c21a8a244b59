"""What a worker writes when a run ends: its result, its failure, or the job given back."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from ..core._context import deadline_after
from ..core._errors import InsufficientCreditsError, PermanentError, TransientError
from ..core._logging import mask_secrets
from ..core._retry import RetryCaller, RetryPolicy
from ._coalesce import Coalesced
from ._credits import CreditGate
from ._models import JobRecord, JobState
from ._store import JobStore

__all__ = ["STORE_RETRY", "Outcomes"]

# While the store is unreachable: claims back off on this, writes retry under it until
# their lease would be over (the attempt cap is never the limit; the deadline is).
STORE_RETRY = RetryPolicy(max_attempts=1_000, base_delay=0.1, max_delay=5.0)

T = TypeVar("T")

_log = structlog.get_logger("asyncgen.worker")


class Outcomes:
    """One worker's writes of how its runs ended, each retried through a store outage for
    up to one lease (after that another worker may hold the job, and the store discards
    what this one would have written anyway).

    Args:
        store: The queue's store.
        worker: The worker's name (its claims are in that name).
        lease: Seconds a claim lasts: how long a write keeps trying.
        retry: Backoff between attempts of a failed job.
        grace: Seconds running jobs get at a stop (said in a given-back job's error).
    """

    def __init__(
        self, store: JobStore, worker: str, *, lease: float, retry: RetryPolicy, grace: float
    ) -> None:
        self.store = store
        self.worker = worker
        self.lease = lease
        self.retry = retry
        self.grace = grace
        # Results finishing together are stored together (one round trip under load).
        self._complete = Coalesced(self._complete_many)

    async def completed(self, job_id: str, result: Any) -> bool:
        """Store a run's result; False when the lease was lost (the result is discarded),
        or the store could not be reached before it ran out."""
        return await self._persist(lambda: self._complete((job_id, result)), False)

    async def failed(self, record: JobRecord, error: Exception) -> JobState | None:
        """Count a failed attempt: retried after the policy's backoff, or dead (a
        PermanentError, or the job's last attempt). Returns the job's state (None: the
        lease was lost)."""
        permanent = isinstance(error, PermanentError)
        if isinstance(error, InsufficientCreditsError):
            _log.warning("insufficient_credits", action="add credits; the job is not retried")
        delay = None if permanent else self.retry.backoff(record.attempts)
        message = mask_secrets(str(error))  # stored and shown: never a key a task let slip
        state = await self._persist(
            lambda: self.store.fail(
                record.id,
                self.worker,
                error_type=error_type(error),
                error=message,
                retry_at=None if delay is None else time.time() + delay,
            ),
            None,
        )
        _log.warning(
            "job_failed",
            kind=record.kind,
            error_type=error_type(error),
            error=message,
            state=state.value if state else "lease lost",
        )
        return state

    async def out_of_credits(
        self, record: JobRecord, error: InsufficientCreditsError, credits: CreditGate
    ) -> None:
        """A 402: the job goes back without using an attempt, and generation pauses;
        unless the 402 is the job's own (too dear for the key, or again after the key
        showed credits): then the job fails, and nothing pauses."""
        if error.scope == "request" or credits.unaffordable(record.id):
            _log.warning(
                "job_unaffordable",
                kind=record.kind,
                error=mask_secrets(str(error)),
                action="lower the job's max_tokens or add credits",
            )
            await self.failed(record, error)  # permanent: dead, with the provider's words
            return
        message = mask_secrets(str(error))
        await credits.ran_out(message, job_id=record.id)  # paused before it is back
        back = time.time() + 2 * credits.probe  # the next probe is another job
        await self._persist(
            lambda: self.store.postpone(
                record.id,
                self.worker,
                run_at=back,
                error_type=error_type(error),
                error=message,
            ),
            False,
        )

    async def given_back(self, record: JobRecord) -> None:
        """Return a job still running when the grace ran out; its attempt counts.

        Counting it is what lets a job that hangs every worker reach ``max_attempts``
        (it then goes dead) instead of being handed from worker to worker for ever.
        """
        error = f"still running when worker {self.worker} stopped (grace {self.grace:g} s)"
        with contextlib.suppress(TransientError):  # store down: the lease returns it
            state = await self.store.fail(
                record.id,
                self.worker,
                error_type="WorkerStopped",
                error=error,
                retry_at=time.time(),
            )
            _log.warning("job_released", kind=record.kind, state=state.value if state else None)

    async def _complete_many(self, results: list[tuple[str, Any]]) -> list[bool]:
        return await self.store.complete_many(self.worker, results)

    async def _persist(self, call: Callable[[], Awaitable[T]], lost: T) -> T:
        """``call``, retried through a store outage for up to one lease; ``lost`` when
        the store is still unreachable then (the lease is over: the job runs again)."""
        try:
            with deadline_after(self.lease):
                return await RetryCaller(STORE_RETRY)(call)
        except TransientError as exc:
            _log.warning(
                "outcome_not_written",
                error=str(exc),
                action="the store was unreachable for a whole lease: the job runs again",
            )
            return lost


def error_type(error: BaseException) -> str:
    """The type a failed run stores: the error's ``stored_type`` when it names one (a
    wrapper that speaks for another exception, as the Django runner's does), else its
    class name."""
    stored = getattr(error, "stored_type", None)
    return stored if isinstance(stored, str) and stored else type(error).__name__
