"""A Worker on asyncgen's background loop, restarted when it crashes: for sync apps."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

import structlog

from ..core._bridge import call_soon, start
from ..core._errors import WorkerCrashedError
from ._queue import JobQueue
from ._worker import Worker

__all__ = ["WorkerThread"]

# A crashed worker restarts after RESTART_FIRST s, doubling to RESTART_MAX; a worker that
# lived RESTART_STEADY s starts from RESTART_FIRST again.
RESTART_FIRST = 1.0
RESTART_MAX = 30.0
RESTART_STEADY = 60.0

_log = structlog.get_logger("asyncgen.worker")


class WorkerThread:
    """A Worker running on asyncgen's background loop, for a Flask app or a script.

    ``start()`` returns at once; ``stop()`` drains like SIGTERM and waits for it. A worker
    whose loop crashes (:class:`WorkerCrashedError`, logged as ``worker_crashed`` with its
    traceback) is restarted after a backoff (1 s doubling to 30 s; 1 s again once a worker
    has lived a minute), as ``asyncgen worker --processes`` restarts a process, and
    ``on_crash`` is told each time. ``crashes`` counts them, ``last_crash`` is the newest.

    Args:
        queue: The queue.
        restart: Restart a crashed worker (True), or let the thread end with the error,
            which ``stop()`` then raises (False).
        on_crash: Called on the background loop's thread with each WorkerCrashedError
            (its ``__cause__`` is the original exception); exceptions it raises are logged.
        **options: As for :class:`Worker` (concurrency, kinds, client, lease, ...).
    """

    def __init__(
        self,
        queue: JobQueue,
        *,
        restart: bool = True,
        on_crash: Callable[[WorkerCrashedError], object] | None = None,
        **options: Any,
    ) -> None:
        self.queue = queue
        self.options = options
        self.restart = restart
        self.on_crash = on_crash
        self.worker: Worker | None = None
        self.crashes = 0
        self.last_crash: WorkerCrashedError | None = None
        self._future: concurrent.futures.Future[None] | None = None
        self._stopped = False

    def __repr__(self) -> str:
        return f"WorkerThread({self.queue!r}, alive={self.alive}, crashes={self.crashes})"

    @property
    def alive(self) -> bool:
        """True from start() until the worker has stopped (or crashed without restart)."""
        return self._future is not None and not self._future.done()

    def start(self) -> WorkerThread:
        """Start working in the background."""
        self.worker = Worker(self.queue, **self.options)  # bad options raise here, at once
        self._stopped = False
        self._future = start(self._supervise(self.worker))
        return self

    async def _supervise(self, worker: Worker) -> None:
        backoff = RESTART_FIRST
        while True:
            began = time.monotonic()
            try:
                await worker.run()
                return
            except WorkerCrashedError as crash:
                self.crashes += 1
                self.last_crash = crash
                self._tell(crash)
                if not self.restart or self._stopped:
                    raise
            lived = time.monotonic() - began
            backoff = RESTART_FIRST if lived >= RESTART_STEADY else backoff
            _log.warning(
                "worker_restarting", worker=worker.name, crashes=self.crashes, after=backoff
            )
            worker = Worker(self.queue, **self.options)
            self.worker = worker
            if await worker.wait_stopped(backoff):  # stopped during the backoff
                return
            backoff = min(RESTART_MAX, backoff * 2)

    def _tell(self, crash: WorkerCrashedError) -> None:
        if self.on_crash is None:
            return
        try:
            self.on_crash(crash)
        except Exception as exc:  # the owner's callback must not stop the restarts
            _log.error("on_crash_failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)

    def stop(self, timeout: float | None = None) -> None:
        """Drain (no new jobs, grace for running ones) and wait until the worker ends.

        Raises:
            WorkerCrashedError: The worker crashed and ``restart`` was False.
        """
        if self._future is None or self.worker is None:
            return
        self._stopped = True

        def stop_current() -> None:
            assert self.worker is not None
            self.worker.stop()

        call_soon(stop_current)
        self._future.result(timeout)

    def __enter__(self) -> WorkerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
