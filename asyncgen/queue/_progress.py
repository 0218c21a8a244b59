"""Progress reported from inside a running task, stored on its job's record.

``report_progress(0.4, "page 4 of 10")`` is cheap to call in a loop: the value is kept in
memory and written by one background write at a time, at most every
:data:`PROGRESS_EVERY` seconds, and the last value is written before the job's outcome.
It works from async tasks and from sync tasks (their threads), and does nothing outside
a worker, so a task can be called directly in a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import structlog

from ._store import JobStore

__all__ = ["PROGRESS_EVERY", "ProgressReporter", "current_job_id", "report_progress", "reporting"]

PROGRESS_EVERY = 0.25  # seconds between two progress writes of one job, at least
MESSAGE_LIMIT = 500  # characters of a progress message kept

_log = structlog.get_logger("asyncgen.queue")


@dataclass
class ProgressReporter:
    """One run's progress: the latest value, and the single write that stores it."""

    store: JobStore
    job_id: str
    worker: str
    loop: asyncio.AbstractEventLoop
    thread: int = field(default_factory=threading.get_ident)
    latest: tuple[float, str | None] | None = None
    writer: asyncio.Task[None] | None = None
    last_write: float = -math.inf

    hurry: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def note(self, fraction: float, message: str | None) -> None:
        """Keep the value and make sure a write will store it (from any thread)."""
        if self.closed:  # the run has ended (a sync task's thread may go on): too late
            return
        self.latest = (fraction, message)
        if threading.get_ident() == self.thread:
            self._start()
            return
        with contextlib.suppress(RuntimeError):  # a sync task's thread: on the loop
            self.loop.call_soon_threadsafe(self._start)  # (unless the loop has closed)

    def _start(self) -> None:
        if not self.closed and (self.writer is None or self.writer.done()):
            self.writer = self.loop.create_task(self._write())

    async def _write(self) -> None:
        while self.latest is not None:
            wait = self.last_write + PROGRESS_EVERY - time.monotonic()
            if wait > 0 and not self.hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.hurry.wait(), wait)
            fraction, message = self.latest
            self.latest = None
            self.last_write = time.monotonic()
            try:
                await self.store.report_progress(self.job_id, self.worker, fraction, message)
            except Exception as exc:  # advisory: never the job's failure; the next retries
                _log.warning("progress_not_stored", job=self.job_id, error=str(exc))

    async def close(self) -> None:
        """Store the last value now, before the job's outcome is written; later reports
        (from a sync task's thread that runs on past its timeout) are dropped."""
        self.closed = True
        self.hurry.set()
        if self.writer is not None and not self.writer.done():
            await self.writer
        if self.latest is not None:
            await self._write()


_current: ContextVar[ProgressReporter | None] = ContextVar("asyncgen_progress", default=None)


@contextlib.contextmanager
def reporting(reporter: ProgressReporter) -> Iterator[ProgressReporter]:
    """Make ``reporter`` the current run's for the block (threads the run starts with
    ``asyncio.to_thread`` see it too: they copy the context)."""
    token = _current.set(reporter)
    try:
        yield reporter
    finally:
        _current.reset(token)


def report_progress(fraction: float, message: str | None = None) -> bool:
    """Report how far the running task has got: ``fraction`` from 0.0 to 1.0 and an
    optional message, shown by ``asyncgen jobs show`` and the dashboard.

    Call it as often as is handy: writes are coalesced (one at a time, at most every
    0.25 s; the last value is always stored before the job's outcome). A new attempt
    starts with no progress.

    Returns:
        True when it will be stored; False outside a job run by a worker (so a task can
        be called directly, in a test), where it does nothing.

    Raises:
        ValueError: ``fraction`` is not a number from 0.0 to 1.0.
        TypeError: ``message`` is not a string.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise ValueError(f"progress must be a number from 0.0 to 1.0, got {fraction!r}")
    if not 0.0 <= fraction <= 1.0:  # NaN fails this too
        raise ValueError(f"progress must be a number from 0.0 to 1.0, got {fraction!r}")
    if message is not None and not isinstance(message, str):
        raise TypeError(f"a progress message is a string, got {type(message).__name__}")
    reporter = _current.get()
    if reporter is None:
        return False
    reporter.note(float(fraction), None if message is None else message[:MESSAGE_LIMIT])
    return True


def current_job_id() -> str | None:
    """The id of the job the calling task runs as, in a worker; None elsewhere."""
    reporter = _current.get()
    return None if reporter is None else reporter.job_id
