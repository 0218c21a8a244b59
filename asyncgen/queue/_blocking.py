"""Blocking twins of the queue API, and a worker in a background thread, for sync code."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable
from typing import Any

from .._bridge import call_soon, run_blocking, start
from ..llm import GenerationJob
from ._models import JobRecord, QueueStatistics
from ._queue import JobQueue, TaskCall
from ._worker import Worker

__all__ = ["BlockingJobQueue", "WorkerThread"]


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

    def status(self, job_id: str) -> JobRecord:
        """Blocking :meth:`JobQueue.status`."""
        return run_blocking(self.queue.status, job_id)

    def result(self, job_id: str, *, timeout: float | None = None) -> Any:
        """Blocking :meth:`JobQueue.result`."""
        return run_blocking(self.queue.result, job_id, timeout=timeout)

    def cancel(self, job_id: str) -> bool:
        """Blocking :meth:`JobQueue.cancel`."""
        return run_blocking(self.queue.cancel, job_id)

    def statistics(self) -> QueueStatistics:
        """Blocking :meth:`JobQueue.statistics`."""
        return run_blocking(self.queue.statistics)

    def purge(self, *, older_than: float) -> int:
        """Blocking :meth:`JobQueue.purge`."""
        return run_blocking(self.queue.purge, older_than=older_than)

    def close(self) -> None:
        """Close the connections the blocking twins opened (they close at exit anyway)."""
        run_blocking(self.queue.aclose)


class WorkerThread:
    """A Worker running on asyncgen's background loop, for a Flask app or a script.

    ``start()`` returns at once; ``stop()`` drains like SIGTERM and waits for it.

    Args:
        queue: The queue.
        **options: As for :class:`Worker` (concurrency, kinds, client, lease, ...).
    """

    def __init__(self, queue: JobQueue, **options: Any) -> None:
        self.queue = queue
        self.options = options
        self.worker: Worker | None = None
        self._future: concurrent.futures.Future[None] | None = None

    def start(self) -> WorkerThread:
        """Start working in the background."""

        self.worker = Worker(self.queue, **self.options)
        self._future = start(self.worker.run())
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Drain (no new jobs, grace for running ones) and wait until the worker ends."""
        if self._future is None or self.worker is None:
            return
        call_soon(self.worker.stop)
        self._future.result(timeout)

    def __enter__(self) -> WorkerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
