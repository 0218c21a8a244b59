"""How a worker runs one claimed job: its task or a generation, within its time limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from pydantic_core import PydanticSerializationError, to_jsonable_python

from ..core._errors import JobTimeoutError, PermanentError, ResultNotStorableError
from ..core._tracing import span
from ..llm import GenerationJob
from ..llm.engine._job import JobRun, JobRunner
from ._credits import CreditGate
from ._groups import GROUP_KIND, outcome_of
from ._models import JobRecord
from ._progress import ProgressReporter, reporting
from ._store import JobStore
from ._tasks import GENERATE_KIND, Task

__all__ = ["JobCalls"]


class JobCalls:
    """Runs a claimed job and returns its value as JSON values, ready to store.

    Args:
        store: The queue's store: a group's members are read from it, and a task's
            progress written to it.
        worker: The name of the worker holding the leases.
        tasks: The queue's registered tasks, by name (read at each call, so tasks
            registered later count).
        timeout: Seconds a run may take when neither its submit nor its task set one.
        runner: Runs generation jobs (None: this worker has no client for them).
        credits: Told when a generation got an answer (the key has credits again).
    """

    def __init__(
        self,
        store: JobStore,
        worker: str,
        tasks: Mapping[str, Task[Any]],
        *,
        timeout: float | None,
        runner: JobRunner | None,
        credits: CreditGate | None,
    ) -> None:
        self.store = store
        self.worker = worker
        self.tasks = tasks
        self.timeout = timeout
        self.runner = runner
        self.credits = credits

    async def __call__(self, record: JobRecord) -> Any:
        """Run the job within its time limit (the submit's, the task's, or the worker's).

        Raises:
            JobTimeoutError: The run went past its limit (and was cancelled).
            ResultNotStorableError: It returned what JSON cannot hold.
            Exception: Whatever the task or the generation request raised.
        """
        attributes = {
            "messaging.system": "asyncgen",
            "messaging.operation.type": "process",
            "messaging.message.id": record.id,
            "asyncgen.job.kind": record.kind,
            "asyncgen.job.attempt": record.attempts,
        }
        # The run continues the submitter's trace: its record carries the traceparent.
        reporter = ProgressReporter(self.store, record.id, self.worker, asyncio.get_running_loop())
        try:
            with (
                reporting(reporter),
                span(f"process {record.kind}", attributes, kind="CONSUMER", parent=record.context),
            ):
                return await self._call(record)
        finally:
            await reporter.close()  # the last progress is stored before the outcome

    async def _call(self, record: JobRecord) -> Any:
        task = self.tasks.get(record.kind)
        limit = record.timeout or (task.timeout if task is not None else None) or self.timeout
        if limit is None:
            return storable(record.kind, await self._run(record))
        scope = asyncio.timeout(limit)
        try:
            async with scope:
                value = await self._run(record)
        except TimeoutError as exc:
            if not scope.expired():
                raise  # the job's own TimeoutError (e.g. a request that timed out)
            raise JobTimeoutError(f"{record.kind}: ran past its timeout of {limit:g} s") from exc
        return storable(record.kind, value)

    async def _run(self, record: JobRecord) -> Any:
        if record.members:  # a group's own record: every member has ended
            outcome = outcome_of(record, await self.store.get_many(record.members))
            if record.kind == GROUP_KIND:
                return outcome.summary()
            return await self.tasks[record.kind].run(record.payload, group=outcome)
        if record.kind == GENERATE_KIND:
            return await self._generate(GenerationJob.model_validate(record.payload))
        return await self.tasks[record.kind].run(record.payload)

    async def _generate(self, job: GenerationJob) -> Any:
        if self.runner is None:  # a worker claims generation jobs only with a client
            raise PermanentError("this worker has no ChatClient for generation jobs")
        run = JobRun(0, job)
        began = time.monotonic()
        await self.runner.run(run)  # raises what the attempt failed with
        if self.credits is not None:
            await self.credits.answered()
        return JobRunner.result(run, None, time.monotonic() - began).to_record()


def storable(kind: str, value: Any) -> Any:
    """A run's return value as JSON values (pydantic models, dataclasses, datetimes,
    UUIDs and sets converted); what JSON cannot hold fails the job, not the worker."""
    try:
        return to_jsonable_python(value)
    except PydanticSerializationError as exc:
        raise ResultNotStorableError(
            f"task {kind} returned a value of type {type(value).__name__}, which cannot be "
            "stored as JSON: "
            "return dicts, lists, strings, numbers, or a pydantic model"
        ) from exc
