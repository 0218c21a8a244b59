"""Workers: claim jobs under a lease, keep it fresh, store results, retry or bury failures."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import structlog

from ..chat._conversation import restored
from ..core._defaults import DEFAULT_GRACE, DEFAULT_LEASE, DEFAULT_WORKER_CONCURRENCY
from ..core._errors import (
    AsyncGenError,
    InsufficientCreditsError,
    TransientError,
    WorkerCrashedError,
)
from ..core._retry import RetryPolicy
from ..llm import ChatClient
from ..llm.engine._job import JobRunner
from ._calls import JobCalls
from ._credits import DEFAULT_CREDIT_PROBE, CreditGate, CreditPause
from ._groups import GROUP_KIND
from ._leases import Leases
from ._metrics import Metrics
from ._models import JobRecord, JobState
from ._outcomes import STORE_RETRY, Outcomes
from ._queue import JobQueue
from ._redis import RedisStore
from ._tasks import GENERATE_KIND

__all__ = ["DEFAULT_LEASE", "IdleWait", "Worker", "open_worker"]

POLL = 0.05  # the longest an idle worker waits between claims on a store it polls
REPORT_EVERY = 5.0  # seconds between a worker's reports (what the dashboard shows)
RUNNING_REPORTED = 100  # running jobs listed in a report
FIRST_POLL = 0.005  # ... and the first wait after work: it doubles up to POLL
IDLE_BLOCK = 1.0  # the longest an idle worker blocks on a store that wakes it (Redis)
STOP_WAKE = 0.05  # seconds a cancelled idle wait gets to end before it is woken


class IdleWait:
    """The poll of an idle worker: FIRST_POLL after work, doubling up to POLL, then POLL
    for as long as the queue stays empty (a week of idling is the same as a second)."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = FIRST_POLL

    def next(self) -> float:
        """The wait for this empty round; the next one waits twice as long, up to POLL."""
        now, self.seconds = self.seconds, min(POLL, self.seconds * 2)
        return now

    def reset(self) -> None:
        """Work came: the next empty round waits FIRST_POLL again."""
        self.seconds = FIRST_POLL


_log = structlog.get_logger("asyncgen.worker")


class Worker:
    """Runs a queue's jobs, ``concurrency`` at a time, until stopped; then drains.

    Args:
        queue: The queue, with its tasks registered.
        concurrency: Jobs run at once.
        kinds: Only these job kinds (task names, and "generate" for GenerationJobs), or
            None for every registered task and, with a ``client``, GenerationJobs. A
            worker claims only jobs it can run: the tasks registered on ``queue``
            (checked at each claim, so tasks registered later count) and, when it has a
            ``client`` and ``kinds`` allows them, GenerationJobs. A job no worker can run
            stays pending.
        client: The ChatClient for GenerationJobs (None: this worker leaves them alone).
        lease: Seconds a claim lasts without a heartbeat; a dead worker's jobs are
            taken over this long after its last heartbeat.
        retry: Backoff between attempts of a failed job (its max_attempts is the job's).
        grace: Seconds running jobs get to finish when the worker is stopped; jobs still
            running then go back to the queue with their attempt counted (error
            ``WorkerStopped``), so a job that hangs every worker goes dead after
            ``max_attempts`` instead of circling for ever.
        name: The worker's name (default: host, pid and a random suffix).
        metrics: Where to count runs and durations (default: a new Metrics).
        credit_probe: While the key is out of credits (a generation request got 402),
            generation jobs go back to the queue without using an attempt and are not
            claimed; every this many seconds one is let through as a probe (on
            OpenRouter once ``/key`` shows credits), and claiming resumes when it gets
            an answer. Other kinds of job go on meanwhile.
        on_credit_pause: Called with a CreditPause when generation pauses and resumes.
        timeout: Seconds a run may take when neither its submit nor its task set one
            (None: no limit); a run past its limit is cancelled and counted as a
            failed attempt (JobTimeoutError).
    """

    def __init__(
        self,
        queue: JobQueue,
        *,
        concurrency: int = DEFAULT_WORKER_CONCURRENCY,
        kinds: Sequence[str] | None = None,
        client: ChatClient | None = None,
        lease: float = DEFAULT_LEASE,
        retry: RetryPolicy | None = None,
        grace: float = DEFAULT_GRACE,
        name: str | None = None,
        metrics: Metrics | None = None,
        credit_probe: float = DEFAULT_CREDIT_PROBE,
        on_credit_pause: Callable[[CreditPause], object] | None = None,
        timeout: float | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
        if not (0 < lease < math.inf) or not (0 <= grace < math.inf):
            raise ValueError(f"lease must be > 0 and grace >= 0 seconds, got {lease}, {grace}")
        if timeout is not None and not 0 < timeout < math.inf:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.queue = queue
        self.timeout = timeout
        self.concurrency = concurrency
        self.kinds = list(kinds) if kinds else None
        self.client = client
        self.lease = lease
        self.retry = retry or RetryPolicy()
        self.grace = grace
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.stopping = asyncio.Event()
        self.completed = 0
        self._freed = asyncio.Event()  # a run ended (or stop): a slot may be free
        self._running: set[asyncio.Task[None]] = set()
        self._since: dict[str, tuple[str, str | None, float]] = {}  # id -> kind, model, start
        self.started_at = time.time()
        _check_durable_wait(queue.store, lease)
        self.leases = Leases(queue.store, self.name, lease)
        self.outcomes = Outcomes(queue.store, self.name, lease=lease, retry=self.retry, grace=grace)
        self.metrics = metrics if metrics is not None else Metrics()
        # Generation jobs run one attempt each (the queue retries, with backoff between
        # claims) and every claimed job is sent, whatever an earlier one met.
        runner: JobRunner | None = None
        self._credits: CreditGate | None = None
        if client is not None:
            runner = JobRunner(client, retry=RetryPolicy.never(), stop_after_402=False)
            self._credits = CreditGate(
                client,
                worker=self.name,
                probe=credit_probe,
                on_pause=on_credit_pause,
                metrics=self.metrics,
            )
        self._call = JobCalls(
            queue.store,
            self.name,
            queue.tasks,
            timeout=timeout,
            runner=runner,
            credits=self._credits,
        )

    def __repr__(self) -> str:
        return f"Worker({self.name!r}, concurrency={self.concurrency})"

    def stop(self) -> None:
        """Take no new jobs; running ones get the grace period."""
        self.stopping.set()
        self._freed.set()

    async def run(self) -> None:
        """Work until :meth:`stop`, then drain: wait up to ``grace``, release the rest.

        Raises:
            AsyncGenError: The store cannot be used (StoreError: damaged or not a queue;
                a refused password): running jobs are drained first, then it is raised
                as the store said it (``asyncgen worker`` exits 2: a restart cannot help).
            WorkerCrashedError: The claim loop failed unexpectedly (a bug, or a store
                that broke in a way it does not translate). It is logged with its
                traceback as ``worker_crashed`` and reported to the store; running jobs
                are drained first, as on a stop. Restart the worker: ``asyncgen
                worker`` exits 1 (``--processes`` restarts it), WorkerThread restarts it.
        """
        _log.info(
            "worker_started", worker=self.name, concurrency=self.concurrency, kinds=self.serves()
        )
        beat = asyncio.create_task(self.leases.beat())
        watch = asyncio.create_task(self.leases.watch())
        reporting = asyncio.create_task(self._report_loop())
        crash: Exception | None = None
        unusable: AsyncGenError | None = None
        try:
            await self._claim_loop()
        except AsyncGenError as exc:  # the store cannot be used (damaged, refused us)
            unusable = exc
            self.stopping.set()
            _log.error("store_unusable", worker=self.name, error=str(exc))
        except Exception as exc:  # a bug or an untranslated store failure: say it loudly
            crash = exc
            self.stopping.set()
            _log.error(
                "worker_crashed",
                worker=self.name,
                error=f"{type(exc).__name__}: {exc}",
                running=len(self._running),
                exc_info=exc,
            )
        await self._drain(self._running)
        for task in (beat, watch, reporting):
            task.cancel()
        await asyncio.gather(beat, watch, reporting, return_exceptions=True)
        await self._report("crashed" if crash or unusable else "stopped", ttl=REPORT_EVERY)
        if unusable is not None:  # restarting cannot help: said as the store said it
            raise unusable
        if crash is not None:
            raise WorkerCrashedError(
                f"worker {self.name} crashed: {type(crash).__name__}: {crash} (its running "
                "jobs were drained; restart the worker)"
            ) from crash
        _log.info("worker_stopped", worker=self.name, completed=self.completed)

    async def _claim_loop(self) -> None:
        """Claim and start jobs until stopped, waiting while every slot is busy."""
        running = self._running
        outage = 0
        wait = IdleWait()
        while not self.stopping.is_set():
            if len(running) >= self.concurrency:
                self._freed.clear()
                await self._freed.wait()  # a run's end (or stop) sets it
                continue
            kinds = self.serves()
            if not kinds:  # nothing registered yet, and no client: claim nothing
                await self._pause(POLL)
                continue
            try:  # one round trip fills every free slot
                records = await self._claim([*kinds, GROUP_KIND], self.concurrency - len(running))
            except TransientError as exc:  # e.g. Redis restarting: wait, never crash
                outage = outage + 1
                _log.warning("store_unavailable", error=str(exc), failures=outage)
                await self._pause(STORE_RETRY.backoff(min(outage, 10)))
                continue
            outage = 0
            if not records:
                await self._idle(wait.next())
                continue
            wait.reset()
            for record in records:
                run = asyncio.create_task(self._execute(record))
                running.add(run)
                run.add_done_callback(self._ended)

    def _ended(self, run: asyncio.Task[None]) -> None:
        self._running.discard(run)
        self._freed.set()

    async def _claim(self, kinds: list[str], limit: int) -> list[JobRecord]:
        """Claim up to ``limit`` jobs; while out of credits, generation only as the probe."""
        store = self.queue.store
        if self._credits is None or not self._credits.paused:
            return await store.claim_many(self.name, kinds=kinds, lease=self.lease, limit=limit)
        others = [kind for kind in kinds if kind != GENERATE_KIND]
        records: list[JobRecord] = []
        if await self._credits.may_probe():
            records = await store.claim_many(
                self.name, kinds=[GENERATE_KIND], lease=self.lease, limit=1
            )
        if others and limit > len(records):
            records += await store.claim_many(
                self.name, kinds=others, lease=self.lease, limit=limit - len(records)
            )
        return records

    async def _idle(self, poll: float) -> None:
        """Wait for work: block on a store that wakes workers (Redis: a submit wakes one
        at once), else poll for ``poll`` seconds (and wake at once for a job added in this
        process). A stop ends the wait, and while out of credits the next probe's time
        does (waking later, the job whose 402 paused the queue is ready again and taken
        as the probe, again and again, while the others wait)."""
        store = self.queue.store
        within = IDLE_BLOCK if store.blocking_wait else poll
        if self._credits is not None and self._credits.paused:
            within = max(0.0, min(within, self._credits.probe_in()))
        waiting = asyncio.ensure_future(store.wait_for_work(within))
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, stop):
                task.cancel()
            await asyncio.wait({waiting}, timeout=STOP_WAKE)
            if not waiting.done():
                # redis-py can swallow a cancel that lands while it takes a connection,
                # and go on into the blocking read: end that read with a wake token.
                with contextlib.suppress(Exception):
                    await self.queue.store.wake_workers()
            await asyncio.gather(waiting, stop, return_exceptions=True)
        if waiting.done() and not waiting.cancelled() and waiting.exception() is not None:
            # The store is down (the next claim says so and backs off) or the wait broke:
            # fall back to a plain poll rather than stop working.
            _log.warning("idle_wait_failed", error=str(waiting.exception()))
            await self._pause(POLL)

    async def wait_stopped(self, within: float) -> bool:
        """Wait up to ``within`` seconds for :meth:`stop`; True if it was called."""
        await self._pause(within)
        return self.stopping.is_set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def serves(self) -> list[str]:
        """The job kinds this worker claims: its runnable tasks, and "generate" with a
        client (and, unnamed here, groups without an ``on_complete``: any worker ends
        those)."""
        wanted = self.queue.tasks if self.kinds is None else self.kinds
        kinds = [name for name in wanted if name in self.queue.tasks]
        generation = self.client is not None and (self.kinds is None or GENERATE_KIND in wanted)
        return [*kinds, GENERATE_KIND] if generation else kinds

    async def _drain(self, running: set[asyncio.Task[None]]) -> None:
        pending = {t for t in running if not t.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=self.grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _execute(self, record: JobRecord) -> None:
        job = asyncio.current_task()
        assert job is not None
        self.leases.hold(record.id, job)
        began = time.monotonic()
        model = record.payload.get("model") if record.kind == GENERATE_KIND else None
        self._since[record.id] = (record.kind, model, time.time())
        with structlog.contextvars.bound_contextvars(
            **restored(record.context),
            agent_role=record.kind,
            agent_instance=self.name,
            job_id=record.id,
            attempt=record.attempts,
        ):
            try:
                try:
                    result = await self._call(record)
                finally:
                    self.leases.release(record.id)
                    self._since.pop(record.id, None)
            except asyncio.CancelledError:
                if self.leases.lost(record.id):  # cancelled in the store, or taken over
                    self.leases.forget(record.id)
                    job.uncancel()
                    return
                await self.outcomes.given_back(record)
                raise
            except InsufficientCreditsError as exc:
                if record.kind != GENERATE_KIND or self._credits is None:
                    await self.outcomes.failed(record, exc)
                else:
                    await self.outcomes.out_of_credits(record, exc, self._credits)
            except Exception as exc:
                state = await self.outcomes.failed(record, exc)
                outcome = "retried" if state is JobState.PENDING else "failed"
                self.metrics.observe(record.kind, model, time.monotonic() - began, outcome=outcome)
            else:
                stored = await self.outcomes.completed(record.id, result)
                self.completed += stored
                self.metrics.observe(record.kind, model, time.monotonic() - began, outcome="ok")
                if not stored:
                    _log.warning("result_discarded_lease_lost", kind=record.kind)
            finally:
                self.leases.forget(record.id)
                if self.client is not None and isinstance(model, str):
                    is_open = self.client.breaker(model).state == "open"
                    self.metrics.set_breaker(model, is_open)

    def status(self) -> dict[str, Any]:
        """What this worker reports about itself (see :class:`WorkerReport`)."""
        running = [
            {"id": job_id, "kind": kind, "model": model, "since": since}
            for job_id, (kind, model, since) in list(self._since.items())
        ]
        status: dict[str, Any] = {
            "state": "stopping" if self.stopping.is_set() else "running",
            "started_at": self.started_at,
            "concurrency": self.concurrency,
            "kinds": self.serves(),
            "running_count": len(running),
            "running": running[:RUNNING_REPORTED],
            "jobs": [
                {k: v for k, v in row.items() if k != "buckets"} for row in self.metrics.snapshot()
            ],
            "states": self.metrics.states(),
        }
        if self.client is not None:
            status["client"] = self.client.statistics().to_record()
        return status

    async def _report(self, state: str | None = None, *, ttl: float = 3 * REPORT_EVERY) -> None:
        status = self.status()
        if state is not None:
            status["state"] = state
        try:
            await self.queue.store.report(self.name, status, ttl=ttl)
        except TransientError as exc:  # the next report may get through
            _log.debug("report_failed", error=str(exc))

    async def _report_loop(self) -> None:
        """Tell the store what this worker is doing, every REPORT_EVERY seconds."""
        while True:
            await self._report()
            await asyncio.sleep(REPORT_EVERY)


def _check_durable_wait(store: object, lease: float) -> None:
    """Warn when a durable store's wait for replicas can outlast a third of the lease:
    while a replica resyncs (after a failover) every result write waits that long, and
    a write that outlasts the lease loses it: the job runs again, or goes dead."""
    if not isinstance(store, RedisStore):
        return
    connection = store.connection
    if connection.durable and connection.durable_timeout * 3 > lease:
        _log.warning(
            "durable_timeout_near_lease",
            durable_timeout=connection.durable_timeout,
            lease=lease,
            action="set ?durable_timeout= under a third of the lease (or a longer --lease): "
            "a result write that waits for replicas past the lease loses it",
        )


@contextlib.asynccontextmanager
async def open_worker(queue: JobQueue, **options: Any) -> AsyncIterator[Worker]:
    """Run a Worker in the background for the duration of an ``async with`` block.

    Leaving the block stops it and drains (see Worker).
    """
    worker = Worker(queue, **options)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await task
