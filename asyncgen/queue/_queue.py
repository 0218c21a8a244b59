"""JobQueue: submit jobs as data, look them up, wait for results; tasks by name."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, overload

from ..chat._conversation import conversation_context
from ..core._bridge import run_blocking
from ..core._errors import JobFailedError, TransientError
from ..core._logging import mask_secrets
from ..core._tracing import carrier, span
from ..llm import GenerationJob
from ._groups import GROUP_KIND, GroupOutcome, GroupStatus, group_status_of
from ._models import JobRecord, JobState, QueueStatistics
from ._store import JobStore
from ._submission import check_options, job_record
from ._tasks import GENERATE_KIND, Task, TaskCall, task

__all__ = ["BlockingJobQueue", "JobQueue", "safe_url"]

P = ParamSpec("P")
RESULT_WAIT = 1.0  # the longest a result waiter waits before it looks again
STORE_BLIP = 0.2  # seconds a result waiter waits after the store failed a read
WAIT_KEYS = 256  # jobs one blocking wait watches at most (the oldest unfinished ones)
REQUEUE_PAGE = 500


class JobQueue:
    """A durable queue of jobs: GenerationJobs or calls of registered tasks.

    Open one with :func:`open_queue`. Every method is a coroutine; ``queue.blocking``
    has blocking twins for sync code.
    """

    def __init__(self, store: JobStore, url: str) -> None:
        self.store = store
        self.url = safe_url(url)  # never the password of redis://:secret@host
        self.tasks: dict[str, Task[Any]] = {}

    def __repr__(self) -> str:
        return f"JobQueue({self.url!r})"

    @overload
    def task(self, fn: Callable[Concatenate[GroupOutcome, P], Any]) -> Task[P]: ...

    @overload
    def task(self, fn: Callable[P, Any]) -> Task[P]: ...

    def task(self, fn: Callable[..., Any]) -> Task[Any]:
        """Register a function as a task named after it (``@queue.task``).

        Its arguments must be JSON-serialisable; their types are checked at submit time.
        A first parameter annotated ``GroupOutcome`` makes it a group's ``on_complete``
        (see :meth:`submit_group`). Use ``queue.register(task(name=...)(fn))`` for
        another name.
        """
        return self.register(task()(fn))

    def register(self, found: Task[P]) -> Task[P]:
        """Make a task (from :func:`asyncgen.queue.task`) runnable by this queue's workers."""
        self.tasks[found.name] = found
        return found

    async def submit(
        self,
        job: GenerationJob | TaskCall,
        *,
        priority: int = 0,
        run_at: float | None = None,
        max_attempts: int = 3,
        idempotency_key: str | None = None,
        every: float | None = None,
        cron: str | None = None,
        depends_on: Sequence[str] = (),
        timeout: float | None = None,  # noqa: ASYNC109 - the job's, not this call's
        unique_key: str | None = None,
        unique_for: float | None = None,
        job_id: str | None = None,
    ) -> str:
        """Store a job and return its id at once.

        Args:
            job: A GenerationJob, or ``task.call(...)`` of a registered task.
            priority: Higher runs first; FIFO within a priority.
            run_at: Epoch seconds before which it must not start (None: now).
            max_attempts: Runs allowed before the job goes dead.
            idempotency_key: Submitting again with the same key returns the first job's id.
            every: Make it recurring: a new slot every this many seconds after run_at.
            cron: Make it recurring on a cron expression (UTC), first slot at or after
                run_at. Each slot runs once however many workers there are.
            depends_on: Ids of jobs that must complete before this one starts; if one
                of them ends dead or cancelled, this job goes dead as well.
            timeout: Seconds each run may take (default: the task's ``timeout``, else
                the worker's): a run past it is cancelled and counted as a failed
                attempt (JobTimeoutError), retried with backoff, dead after
                ``max_attempts``. A sync task's thread cannot be stopped: it runs on.
            unique_key: While a job submitted with this key is pending or running,
                submitting another returns that job's id and stores nothing (debounce:
                race-free between submitters, on every store).
            unique_for: Seconds the unique key holds at most (the job may still be
                pending after them). Without ``unique_key``, the key is the job's kind
                and arguments: the same call is not queued twice while one is unfinished.
            job_id: The id to store it under (default: a new one), for a caller that
                hands the id out before the job is stored (Django's backend, which stores
                it when a transaction commits). Submitting it again stores nothing.

        Raises:
            TypeError: ``job`` is neither a GenerationJob nor a TaskCall.
            ValueError: ``max_attempts`` < 1; a bad ``unique_for``, or a unique job
                that recurs.
        """
        check_options(max_attempts, priority)
        kind = job.kind if isinstance(job, TaskCall) else GENERATE_KIND
        with span(f"send {kind}", _sending(kind), kind="PRODUCER") as sending:
            record = job_record(
                job,
                start=run_at if run_at is not None else time.time(),
                priority=priority,
                max_attempts=max_attempts,
                context=_carried(),
                idempotency_key=idempotency_key,
                every=every,
                cron=cron,
                depends_on=depends_on,
                timeout=timeout,
                unique_key=unique_key,
                unique_for=unique_for,
            )
            if job_id is not None:
                if not isinstance(job_id, str) or not job_id or len(job_id) > 200:
                    raise ValueError(f"job_id must be a string of 1 to 200 characters: {job_id!r}")
                record = record.model_copy(update={"id": job_id})
            for dependency in depends_on:
                if await self.store.get(dependency) is None:
                    raise ValueError(f"depends_on: no job {dependency!r} in this queue")
            job_id = await self.store.add(record)
            if sending is not None:
                sending.set_attribute("messaging.message.id", job_id)
            return job_id

    async def submit_many(
        self,
        jobs: Iterable[GenerationJob | TaskCall],
        *,
        priority: int = 0,
        run_at: float | None = None,
        max_attempts: int = 3,
        idempotency_keys: Sequence[str | None] | None = None,
    ) -> list[str]:
        """Store many jobs at once (one transaction, or one Redis round trip per 500).

        For large batches (a file of prompts) this is several times faster than a
        ``submit`` per job. Jobs start in the order given, within their priority.

        Args:
            jobs: GenerationJobs and ``task.call(...)`` results, in any mix.
            priority: The priority of every job.
            run_at: Epoch seconds before which none starts (None: now).
            max_attempts: Runs allowed per job before it goes dead.
            idempotency_keys: One key (or None) per job: submitting the batch again
                returns the first ids and stores nothing twice, so an interrupted bulk
                submission can simply be repeated.

        Returns:
            The job ids, in the order of ``jobs``.

        Raises:
            TypeError: An element is neither a GenerationJob nor a TaskCall (its index is
                named); nothing is stored.
            ValueError: ``max_attempts`` < 1, or not one idempotency key per job.
        """
        items = list(jobs)
        keys: list[str | None] = (
            list(idempotency_keys) if idempotency_keys is not None else [None] * len(items)
        )
        if len(keys) != len(items):
            raise ValueError(f"{len(keys)} idempotency keys for {len(items)} jobs: give one each")
        check_options(max_attempts, priority)
        start = run_at if run_at is not None else time.time()
        with span("send", _sending(None, len(items)), kind="PRODUCER"):
            return await self._add_many(items, keys, start, priority, max_attempts)

    async def _add_many(
        self,
        items: list[GenerationJob | TaskCall],
        keys: list[str | None],
        start: float,
        priority: int,
        max_attempts: int,
    ) -> list[str]:
        context = _carried()
        records = []
        for index, (job, key) in enumerate(zip(items, keys, strict=True)):
            try:
                records.append(
                    job_record(
                        job,
                        start=start,
                        priority=priority,
                        max_attempts=max_attempts,
                        context=context,
                        idempotency_key=key,
                    )
                )
            except TypeError as exc:
                raise TypeError(f"jobs[{index}]: {exc}") from None
        return await self.store.add_many(records)

    async def submit_group(
        self,
        jobs: Iterable[GenerationJob | TaskCall],
        *,
        on_complete: TaskCall | None = None,
        priority: int = 0,
        run_at: float | None = None,
        max_attempts: int = 3,
        idempotency_key: str | None = None,
    ) -> str:
        """Store jobs as one group and return the group's id.

        The members run like any jobs. Once every member has ended (completed, dead or
        cancelled), ``on_complete`` runs once: a task taking a ``GroupOutcome``
        parameter gets every member's outcome, in the order given. Follow the group with
        :meth:`group_status`, :meth:`group_results` and :meth:`group_as_completed`;
        ``result(group_id)`` waits for ``on_complete`` and returns what it returned
        (without one: the members counted by how they ended).

        Everything is stored at once (one transaction on SQLite, and on Redis in order,
        the group's own record last). Like every job, ``on_complete`` runs at least once:
        again only if its worker dies while running it, never twice because two members
        ended together.

        Args:
            jobs: The members: GenerationJobs and ``task.call(...)`` results, in any mix.
            on_complete: ``task.call(...)`` of the task to run when every member has
                ended; it is retried up to ``max_attempts`` like any job.
            priority: The members' and ``on_complete``'s priority.
            run_at: Epoch seconds before which no member starts (None: now).
            max_attempts: Runs allowed per member (and for ``on_complete``).
            idempotency_key: Submitting again with the same key returns the first
                group's id and stores nothing (each member is keyed ``KEY:INDEX``).

        Raises:
            ValueError: No jobs; ``max_attempts`` < 1; a bad priority.
            TypeError: A member that is neither a GenerationJob nor a TaskCall (its index
                is named), or an ``on_complete`` that is not a TaskCall; nothing is stored.
        """
        items = list(jobs)
        if not items:
            raise ValueError("a group needs at least one job")
        if on_complete is not None and not isinstance(on_complete, TaskCall):
            raise TypeError(
                "on_complete must be task.call(...) of a registered task, not "
                + type(on_complete).__name__
            )
        check_options(max_attempts, priority)
        start = run_at if run_at is not None else time.time()
        kind = on_complete.kind if on_complete is not None else GROUP_KIND
        with span("send", _sending(kind, len(items)), kind="PRODUCER"):
            context = _carried()
            group = job_record(
                on_complete if on_complete is not None else TaskCall(GROUP_KIND, {}),
                start=start,
                priority=priority,
                max_attempts=max_attempts,
                context=context,
                idempotency_key=idempotency_key,
            )
            members = []
            for index, job in enumerate(items):
                try:
                    record = job_record(
                        job,
                        start=start,
                        priority=priority,
                        max_attempts=max_attempts,
                        context=context,
                        idempotency_key=(
                            None if idempotency_key is None else f"{idempotency_key}:{index}"
                        ),
                    )
                except TypeError as exc:
                    raise TypeError(f"jobs[{index}]: {exc}") from None
                members.append(record.model_copy(update={"group": group.id}))
            group = group.model_copy(update={"members": [m.id for m in members]})
            ids = await self.store.add_many([*members, group])
            return ids[-1]

    async def fan_out(
        self,
        prompt: str | Sequence[Mapping[str, Any]] | GenerationJob,
        models: Sequence[str],
        *,
        params: Mapping[str, Any] | None = None,
        on_complete: TaskCall | None = None,
        **options: Any,
    ) -> str:
        """Send one prompt to several models as a group; return the group's id.

        The queued twin of :func:`asyncgen.fan_out`: one member per model, in the order
        of ``models``, so ``group_results`` gives the answers model by model. A
        GenerationJob is sent as it is with its model replaced (member ids
        ``"<job id>:<model>"``, its fallbacks dropped: each member is one model's answer).

        Args:
            prompt: The user prompt, a list of chat messages, or a GenerationJob.
            models: Model ids.
            params: Request fields for every model (temperature, max_tokens, ...), for a
                prompt or messages.
            on_complete: As for :meth:`submit_group`, with the other ``options``.

        Raises:
            ValueError: No models, a model named twice, or params with a GenerationJob.
        """
        names = [models] if isinstance(models, str) else list(models)
        if isinstance(models, str) or not names:
            raise ValueError("models must be a non-empty list of model ids")
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"fan_out: model(s) named twice: {', '.join(twice)}")
        if isinstance(prompt, GenerationJob):
            if params is not None:
                raise ValueError("give params in the GenerationJob, not beside it")
            members = [
                prompt.model_copy(
                    update={"model": name, "id": f"{prompt.id}:{name}", "fallbacks": []}
                )
                for name in names
            ]
        else:
            field = "prompt" if isinstance(prompt, str) else "messages"
            content: Any = prompt if isinstance(prompt, str) else [dict(m) for m in prompt]
            members = [
                GenerationJob.model_validate(
                    {"model": name, "id": name, field: content, "params": dict(params or {})}
                )
                for name in names
            ]
        return await self.submit_group(members, on_complete=on_complete, **options)

    async def group_status(self, group_id: str) -> GroupStatus:
        """Where the group is: its members by state, its progress and an ETA.

        Raises:
            KeyError: No such group.
        """
        group = await self._group(group_id)
        return group_status_of(group, await self.store.states(group.members), time.time())

    async def group_results(
        self,
        group_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Wait for every member and return their results in the order submitted.

        Args:
            timeout: Seconds to wait at most.
            return_exceptions: Put a failed member's JobFailedError in its place instead
                of raising the first.

        Raises:
            KeyError: No such group, or a member whose record was purged.
            JobFailedError: The first member (in order) that went dead or was cancelled
                (unless ``return_exceptions``).
            TimeoutError: Not every member ended within ``timeout``.
        """
        group = await self._group(group_id)
        records = await self.store.get_many(group.members)
        gone = [m for m, record in zip(group.members, records, strict=True) if record is None]
        if gone:
            raise KeyError(
                f"group {group_id}: {len(gone)} member(s) purged or expired (first: {gone[0]})"
            )
        if not return_exceptions:
            return await self.results(group.members, timeout=timeout)
        done: dict[str, Any] = {}
        async with asyncio.timeout(timeout):
            async for job_id, outcome in self.as_completed(group.members):
                done[job_id] = outcome
        return [done[job_id] for job_id in group.members]

    async def group_as_completed(self, group_id: str) -> AsyncIterator[tuple[str, Any]]:
        """Yield ``(member_id, result)`` as each member ends (a failed one yields its
        JobFailedError): :meth:`as_completed` over the group's members.

        Raises:
            KeyError: No such group.
        """
        group = await self._group(group_id)
        async for item in self.as_completed(group.members):
            yield item

    async def cancel_group(self, group_id: str) -> list[str]:
        """Cancel every member that has not ended (running ones are stopped, as by
        :meth:`cancel`) and the group's ``on_complete``; return the ids cancelled.

        Raises:
            KeyError: No such group.
        """
        group = await self._group(group_id)
        cancelled = [m for m in group.members if await self.store.cancel(m)]
        if await self.store.cancel(group.id):
            cancelled.append(group.id)
        return cancelled

    async def groups(self, *, limit: int = 20) -> list[GroupStatus]:
        """The newest groups' statuses, newest first (their members read in bulk)."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        found = await self.store.groups(limit)
        members = await self.store.states([m for group in found for m in group.members])
        now, statuses, at = time.time(), [], 0
        for group in found:
            size = len(group.members)
            statuses.append(group_status_of(group, members[at : at + size], now))
            at += size
        return statuses

    async def _group(self, group_id: str) -> JobRecord:
        record = await self.store.get(group_id)
        if record is None:
            raise KeyError(f"no group {group_id!r} in {self.url}")
        if not record.members:
            raise KeyError(
                f"job {group_id!r} in {self.url} is not a group (submit_group makes one)"
            )
        return record

    async def status(self, job_id: str) -> JobRecord:
        """The job's current record.

        Raises:
            KeyError: No such job.
        """
        record = await self.store.get(job_id)
        if record is None:
            raise KeyError(f"no job {job_id!r} in {self.url}")
        return record

    async def result(self, job_id: str, *, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Wait for the job to complete and return its result. A read the store fails
        meanwhile (Redis restarting, or failing over) is made again until ``timeout``.

        Raises:
            JobFailedError: The job went dead (its last error is in the message).
            TimeoutError: Not finished within ``timeout`` seconds.
            KeyError: No such job.
        """
        limit = asyncio.timeout(timeout)
        try:
            async with limit:
                return await self._wait_result(job_id)
        except TimeoutError:
            if not limit.expired():
                raise
            record = await self.store.get(job_id)
            state = record.state.value if record is not None else "unknown"
            kind = record.kind if record is not None else "its kind"
            hint = (
                f"start one (asyncgen worker {self.url} --tasks MODULE, where MODULE defines "
                "the task: a task defined in __main__ cannot be served by another process; "
                "or open_worker(queue) in this one)"
                if state == "pending"
                else "wait longer"
            )
            raise TimeoutError(
                f"job {job_id} did not finish within {timeout:g} s (it is {state}): is a "
                f"worker serving {kind} running? {hint}"
            ) from None

    async def _wait_result(self, job_id: str) -> Any:
        while True:
            try:
                record = await self.status(job_id)
                if record.state is JobState.COMPLETED:
                    return record.result
                if record.state in (JobState.DEAD, JobState.CANCELLED):
                    raise _failed(record)
                # Woken when the job finishes (Redis: by the finishing script; SQLite: in
                # this process), else after a short wait: then look again.
                await self.store.wait_finished([job_id], RESULT_WAIT)
            except TransientError:  # the store restarts or fails over: a read, look again
                await asyncio.sleep(STORE_BLIP)

    async def results(
        self,
        job_ids: Iterable[str],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[Any]:
        """Wait for every job and return their results, in the order given.

        One wait covers all of them (on Redis one blocking read for many jobs), so a
        producer reading a batch back pays no round trip per job per poll.

        Raises:
            JobFailedError: The first job (in the order given) that went dead or was
                cancelled; TimeoutError: not all finished within ``timeout`` s (an id
                that is not in the queue never finishes).
        """
        wanted = list(job_ids)
        done: dict[str, Any] = {}
        async with asyncio.timeout(timeout):
            async for job_id, outcome in self.as_completed(wanted):
                done[job_id] = outcome
        for job_id in wanted:
            if isinstance(done[job_id], JobFailedError):
                raise done[job_id]
        return [done[job_id] for job_id in wanted]

    async def as_completed(self, job_ids: Iterable[str]) -> AsyncIterator[tuple[str, Any]]:
        """Yield ``(job_id, result)`` as each job finishes; a job that went dead or was
        cancelled yields its JobFailedError as the result (it is not raised).

        Finished jobs are read in bulk, and the wait in between is one blocking read for
        many jobs on Redis (an id that is not in the queue never finishes: bound the
        loop with ``asyncio.timeout``). A read the store fails (Redis restarting, or
        failing over) is made again.
        """
        left = dict.fromkeys(job_ids)
        look: list[str] | None = None  # which jobs to look at: None, all of them
        while left:
            ids = list(left) if look is None else [i for i in look if i in left]
            try:
                finished = await self.store.finished(ids)
            except TransientError:  # the store restarts or fails over: a read, look again
                await asyncio.sleep(STORE_BLIP)
                continue
            for record in finished:
                if record.id in left:
                    del left[record.id]
                    done = record.state is JobState.COMPLETED
                    yield record.id, record.result if done else _failed(record)
            if left:
                # Wait on the oldest jobs (they finish first: FIFO); when one of them
                # finishes look at them all (one bulk read), else (a quiet wait: some may
                # have finished in another process, or beyond them) look at every job.
                watched = list(left)[:WAIT_KEYS]
                try:
                    hint = await self.store.wait_finished(watched, RESULT_WAIT)
                except TransientError:
                    await asyncio.sleep(STORE_BLIP)
                    hint = None
                look = watched if hint else None

    async def cancel(self, job_id: str) -> bool:
        """Cancel a pending job, or abort a running one: its state becomes cancelled at
        once, no result is stored, and the worker running it stops it within one
        heartbeat (a third of its lease) and moves on. False when the job is finished
        or unknown."""
        return await self.store.cancel(job_id)

    async def statistics(self) -> QueueStatistics:
        """Counts of jobs by state, retries and live workers."""
        return await self.store.statistics()

    async def purge(self, *, older_than: float) -> int:
        """Delete finished jobs older than ``older_than`` seconds; return how many."""
        return await self.store.purge(older_than)

    async def requeue(
        self, job_ids: Iterable[str] | None = None, *, kind: str | None = None
    ) -> list[str]:
        """Run dead (or cancelled) jobs again, with fresh attempts and the same payload.

        Their ids stay, and the last error stays on the record until the next run
        replaces it. A job whose dependency ended dead or cancelled is left as it is.

        Args:
            job_ids: The jobs to requeue (dead or cancelled ones; others are left alone).
                None: every dead job (of ``kind``, when given).
            kind: Only jobs of this task name ("generate" for GenerationJobs).

        Returns:
            The ids requeued.
        """
        if job_ids is not None:
            wanted = list(job_ids)
            if kind is not None:
                records = [await self.store.get(job_id) for job_id in wanted]
                wanted = [r.id for r in records if r is not None and r.kind == kind]
            return await self.store.requeue(wanted)
        requeued: list[str] = []
        while True:  # a page at a time: each page leaves the dead set as it is requeued
            page = await self.store.find(state=JobState.DEAD, kind=kind, limit=REQUEUE_PAGE)
            done = await self.store.requeue([record.id for record in page])
            requeued += done
            if len(page) < REQUEUE_PAGE or not done:
                return requeued

    async def jobs(
        self, *, state: JobState | str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[JobRecord]:
        """Jobs in a state (pending, running, completed, dead, cancelled; None: any) and
        of a kind (None: any), newest first, at most ``limit``.

        Raises:
            ValueError: An unknown state, or ``limit`` < 1.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        try:
            wanted = JobState(state) if state is not None else None
        except ValueError:
            names = ", ".join(s.value for s in JobState)
            raise ValueError(f"unknown state {state!r}: use one of {names}") from None
        return await self.store.find(state=wanted, kind=kind, limit=limit)

    @property
    def blocking(self) -> BlockingJobQueue:
        """This queue's blocking twins (submit, status, result, ...) for sync code."""
        return BlockingJobQueue(self)

    async def aclose(self) -> None:
        """Close the store."""
        await self.store.close()


def _failed(record: JobRecord) -> JobFailedError:
    return JobFailedError(
        f"job {record.id} is {record.state.value} after {record.attempts} attempt(s): "
        f"{record.error_type}: {mask_secrets(record.error or '')}"
    )


def safe_url(url: str) -> str:
    # A URL may carry a password (redis://:secret@host): never show it.
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


class BlockingJobQueue:
    """The JobQueue API for Flask views, scripts and Celery-style code: every call blocks.

    Args:
        queue: The queue to wrap (its coroutines run on asyncgen's background loop).
    """

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def __repr__(self) -> str:
        return f"BlockingJobQueue({self.queue!r})"

    def submit(self, job: GenerationJob | TaskCall, **options: Any) -> str:
        """Blocking :meth:`JobQueue.submit`."""
        return run_blocking(self.queue.submit, job, **options)

    def submit_many(self, jobs: Iterable[GenerationJob | TaskCall], **options: Any) -> list[str]:
        """Blocking :meth:`JobQueue.submit_many`."""
        return run_blocking(self.queue.submit_many, jobs, **options)

    def submit_group(self, jobs: Iterable[GenerationJob | TaskCall], **options: Any) -> str:
        """Blocking :meth:`JobQueue.submit_group`."""
        return run_blocking(self.queue.submit_group, jobs, **options)

    def fan_out(
        self,
        prompt: str | Sequence[Mapping[str, Any]] | GenerationJob,
        models: Sequence[str],
        **options: Any,
    ) -> str:
        """Blocking :meth:`JobQueue.fan_out`."""
        return run_blocking(self.queue.fan_out, prompt, models, **options)

    def group_status(self, group_id: str) -> GroupStatus:
        """Blocking :meth:`JobQueue.group_status`."""
        return run_blocking(self.queue.group_status, group_id)

    def group_results(
        self, group_id: str, *, timeout: float | None = None, return_exceptions: bool = False
    ) -> list[Any]:
        """Blocking :meth:`JobQueue.group_results`."""
        return run_blocking(
            self.queue.group_results,
            group_id,
            timeout=timeout,
            return_exceptions=return_exceptions,
        )

    def cancel_group(self, group_id: str) -> list[str]:
        """Blocking :meth:`JobQueue.cancel_group`."""
        return run_blocking(self.queue.cancel_group, group_id)

    def groups(self, *, limit: int = 20) -> list[GroupStatus]:
        """Blocking :meth:`JobQueue.groups`."""
        return run_blocking(self.queue.groups, limit=limit)

    def status(self, job_id: str) -> JobRecord:
        """Blocking :meth:`JobQueue.status`."""
        return run_blocking(self.queue.status, job_id)

    def result(self, job_id: str, *, timeout: float | None = None) -> Any:
        """Blocking :meth:`JobQueue.result`."""
        return run_blocking(self.queue.result, job_id, timeout=timeout)

    def results(self, job_ids: Iterable[str], *, timeout: float | None = None) -> list[Any]:
        """Blocking :meth:`JobQueue.results`."""
        return run_blocking(self.queue.results, job_ids, timeout=timeout)

    def cancel(self, job_id: str) -> bool:
        """Blocking :meth:`JobQueue.cancel`."""
        return run_blocking(self.queue.cancel, job_id)

    def statistics(self) -> QueueStatistics:
        """Blocking :meth:`JobQueue.statistics`."""
        return run_blocking(self.queue.statistics)

    def purge(self, *, older_than: float) -> int:
        """Blocking :meth:`JobQueue.purge`."""
        return run_blocking(self.queue.purge, older_than=older_than)

    def requeue(
        self, job_ids: Iterable[str] | None = None, *, kind: str | None = None
    ) -> list[str]:
        """Blocking :meth:`JobQueue.requeue`."""
        return run_blocking(self.queue.requeue, job_ids, kind=kind)

    def jobs(
        self, *, state: JobState | str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[JobRecord]:
        """Blocking :meth:`JobQueue.jobs`."""
        return run_blocking(self.queue.jobs, state=state, kind=kind, limit=limit)

    def close(self) -> None:
        """Close the connections the blocking twins opened (they close at exit anyway)."""
        run_blocking(self.queue.aclose)


def _sending(kind: str | None, count: int | None = None) -> dict[str, Any]:
    """A submit span's attributes (OpenTelemetry's messaging conventions)."""
    return {
        "messaging.system": "asyncgen",
        "messaging.operation.type": "send",
        "asyncgen.job.kind": kind,
        "messaging.batch.message_count": count,
    }


def _carried() -> dict[str, str]:
    """What a job's record carries to its worker: the conversation's ids (bound to the
    run's log lines) and the trace (continued by the run's span)."""
    return {**conversation_context(), **carrier()}
