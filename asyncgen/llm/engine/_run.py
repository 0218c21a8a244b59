"""The online engine under generate, generate_iter and generate_stream.

A :class:`OnlineRun` runs each job with one :class:`JobRunner` and accounts for it as it
finishes: its result, JobSucceeded/JobFailed and RunProgress events, and one log line
per failure (of the jobs never sent for one reason, only the first). Two drivers run
it: :meth:`OnlineRun.run_all` over a known list (results in input order, a deadline), and
:meth:`OnlineRun.stream` over any iterable or async stream (results as they finish, memory
bounded by the concurrency).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ValidationError

from ...core._context import deadline_after
from ...core._errors import (
    BudgetExceededError,
    DeadlineExceededError,
    InsufficientCreditsError,
    InvalidKeyError,
)
from ...core._gather import gather_bounded, map_bounded
from ...core._logging import mask_secrets
from ...core._outcome import Outcome
from ..client._client import ChatClient
from ._events import Event, JobFailed, JobSucceeded, OnEvent, ResultCounts, RunProgress, emit
from ._job import JobRun, JobRunner
from ._jobs import GenerationJob, GenerationResult

__all__ = ["JobLike", "OnlineRun", "coerce_job", "coerce_jobs", "concurrency_limit"]

JobLike = GenerationJob | Mapping[str, Any]

_log = structlog.get_logger("asyncgen.generate")


def coerce_job(
    index: int, job: JobLike, response_model: type[BaseModel] | None = None
) -> GenerationJob:
    """A GenerationJob from a job or a dict with its fields, with ``response_model`` if
    it names none.

    Raises:
        TypeError: Neither. ValueError: An invalid dict (which job and why).
    """
    if isinstance(job, Mapping):
        try:
            job = GenerationJob.model_validate(job)
        except ValidationError as exc:
            raise ValueError(f"job {index} is invalid: {exc}") from exc
    elif not isinstance(job, GenerationJob):
        raise TypeError(f"job {index}: expected a GenerationJob or a dict, got {job!r}")
    if response_model is not None and job.response_model is None:
        job = job.model_copy(update={"response_model": response_model})
    return job


def coerce_jobs(
    jobs: Iterable[JobLike], response_model: type[BaseModel] | None = None
) -> list[GenerationJob]:
    """Every job checked up front (see :func:`coerce_job`)."""
    return [coerce_job(index, job, response_model) for index, job in enumerate(jobs)]


async def concurrency_limit(client: ChatClient, concurrency: int | Literal["auto"]) -> int:
    """The jobs a run runs at once: ``concurrency``, or AIMD's ceiling for "auto"."""
    if concurrency != "auto":
        return concurrency
    adaptive = client.adaptive_concurrency()
    await client.seed_concurrency()
    return adaptive.maximum


class OnlineRun:
    """One run of jobs: its runner, and the accounting of each job as it finishes."""

    def __init__(
        self,
        runner: JobRunner,
        on_event: OnEvent | None,
        *,
        total: int | None,
        response_model: type[BaseModel] | None = None,
    ) -> None:
        self.runner = runner
        self.response_model = response_model  # for jobs pulled that name none
        self.on_event = on_event
        self.total = total
        self.counts = ResultCounts()  # fed by the run's own JobSucceeded/JobFailed events
        self.quiet: set[str] = set()  # reasons already logged for jobs never sent

    async def finish(self, run: JobRun, outcome: Outcome[Any]) -> GenerationResult:
        """Account for a finished job and return its result."""
        result = self.runner.result(run, outcome.error, outcome.elapsed)
        if result.error is not None:
            self._log_failure(result)
        event: Event = (JobSucceeded if result.error is None else JobFailed)(
            result.index, result.job, result
        )
        counts = self.counts
        counts.count(event)
        if self.on_event is not None:
            await emit(self.on_event, event)
            if self.total is not None:
                progress = RunProgress(counts.done, self.total, counts.ok, counts.failed)
                await emit(self.on_event, progress)
        return result

    def _log_failure(self, result: GenerationResult) -> None:
        kind = type(result.error).__name__
        unsent = result.attempts == 0 and isinstance(
            result.error, BudgetExceededError | InsufficientCreditsError | InvalidKeyError
        )
        if unsent and kind in self.quiet:
            return
        extra = {"later_unsent": "not logged one by one"} if unsent else {}
        if unsent:
            self.quiet.add(kind)
        _log.warning(
            "job_failed",
            job_id=result.job.id,
            model=result.model,
            error_type=kind,
            error=mask_secrets(str(result.error)),
            **extra,
        )

    async def run_all(
        self, jobs: list[GenerationJob], *, limit: int, deadline: float | None
    ) -> list[GenerationResult]:
        """Run a known list of jobs; one result per job, in input order."""
        runs = [JobRun(index, job) for index, job in enumerate(jobs)]
        results: list[GenerationResult | None] = [None] * len(runs)

        async def finished(outcome: Outcome[Any]) -> None:
            results[outcome.index] = await self.finish(runs[outcome.index], outcome)

        calls = [functools.partial(self.runner.run, run) for run in runs]
        outcomes = await gather_bounded(calls, limit=limit, deadline=deadline, on_done=finished)
        for outcome in outcomes:
            if results[outcome.index] is None:  # cut off by the deadline
                results[outcome.index] = await self.finish(runs[outcome.index], outcome)
        return results  # type: ignore[return-value]

    async def stream(
        self,
        jobs: Iterable[JobLike] | AsyncIterable[JobLike],
        *,
        limit: int,
        deadline: float | None = None,
    ) -> AsyncGenerator[GenerationResult, None]:
        """Run jobs as they are pulled from ``jobs``; yield each result as it finishes.

        Jobs are checked as they are pulled: a bad one ends the stream with its error,
        after cancelling the jobs still running. With a ``deadline`` (seconds), the jobs
        unfinished then, started or not, are yielded with DeadlineExceededError.
        """
        running: dict[int, JobRun] = {}
        began: dict[int, float] = {}
        source = _items(jobs)
        loop = asyncio.get_running_loop()

        async def pulled() -> AsyncIterator[JobRun]:
            # map_bounded pulls a job only when it has a slot for it: pulled is started.
            async for job in source:
                index = len(began)
                job = coerce_job(index, job, self.response_model)
                run = running[index] = JobRun(index, job)
                began[index] = loop.time()
                yield run

        mapped = map_bounded(self.runner.run, pulled(), limit=limit, ordered=False)
        expiry = None if deadline is None else loop.time() + deadline
        async with contextlib.aclosing(mapped) as outcomes:
            while True:
                try:
                    # The deadline is set only around the wait (the tasks map_bounded
                    # starts inherit it), never across a yield to the consumer.
                    async with asyncio.timeout_at(expiry):
                        with _deadline_at(expiry, loop):
                            outcome = await anext(outcomes, None)
                except TimeoutError:
                    break
                if outcome is None:
                    return
                yield await self.finish(running.pop(outcome.index), outcome)
        _log.warning("deadline_exceeded", deadline=deadline)
        now = loop.time()
        for index in sorted(running):
            error = DeadlineExceededError(
                f"deadline of {deadline:g} s passed; the call was still running"
            )
            outcome = Outcome(index=index, error=error, elapsed=now - began[index])
            yield await self.finish(running.pop(index), outcome)
        async for job in source:  # never pulled (the rest of a list)
            index = len(began)
            began[index] = now
            error = DeadlineExceededError(
                f"deadline of {deadline:g} s passed; the call had not started"
            )
            run = JobRun(index, coerce_job(index, job, self.response_model))
            yield await self.finish(run, Outcome(index=index, error=error))


def _deadline_at(
    expiry: float | None, loop: asyncio.AbstractEventLoop
) -> contextlib.AbstractContextManager[Any]:
    if expiry is None:
        return contextlib.nullcontext()
    return deadline_after(max(0.0, expiry - loop.time()))


async def _items(items: Iterable[JobLike] | AsyncIterable[JobLike]) -> AsyncIterator[JobLike]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
