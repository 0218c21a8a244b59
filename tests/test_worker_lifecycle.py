"""A worker over long stretches: idle for minutes of poll rounds, and a loop that crashes."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

import looptime
import pytest
import structlog

import asyncgen
from asyncgen import JobQueue, WorkerCrashedError, open_queue, open_worker
from asyncgen.queue import Worker, WorkerThread
from asyncgen.queue._store import JobStore
from asyncgen.queue._worker import FIRST_POLL, POLL, IdleWait
from tests import idle_worker, queue_tasks

T = TypeVar("T")
IDLE_FOR = 65.0  # seconds: the reported worker died after ~53 idle seconds


def sqlite_queue(tmp_path: Path) -> JobQueue:
    queue = open_queue(f"sqlite:///{tmp_path}/jobs.db")
    queue.register(queue_tasks.add)
    return queue


class ClaimsThatBreak:
    """A real SQLite store whose first ``failures`` claims raise what a bug would raise.

    Everything else goes to the store; the worker sees an exception the store does not
    translate (not a TransientError), as it saw OverflowError from its own idle wait.
    """

    def __init__(self, store: JobStore, failures: int, error: Exception | None = None) -> None:
        self.store = store
        self.failures = failures
        self.error = error or OverflowError("int too large to convert to float")
        self.claimed = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def claim_many(self, *args: Any, **kwargs: Any) -> Any:
        self.claimed.set()
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        return await self.store.claim_many(*args, **kwargs)


def breaking_queue(
    tmp_path: Path, failures: int, error: Exception | None = None
) -> tuple[JobQueue, ClaimsThatBreak]:
    real = open_queue(f"sqlite:///{tmp_path}/jobs.db")
    broken = ClaimsThatBreak(real.store, failures, error)
    queue = JobQueue(cast(JobStore, broken), real.url)
    queue.register(queue_tasks.add)
    return queue, broken


class TestIdleWait:
    def test_doubles_from_the_first_poll_to_the_cap(self) -> None:
        """An idle worker polls after 5 ms, then 10, 20, 40, then every 50 ms."""
        wait = IdleWait()
        assert [wait.next() for _ in range(6)] == [FIRST_POLL, 0.01, 0.02, 0.04, POLL, POLL]

    def test_a_million_empty_rounds_stay_at_the_cap(self) -> None:
        """A million empty rounds (14 hours at 50 ms; the old wait overflowed at 1,024)
        never overflow or drift."""
        wait = IdleWait()
        for _ in range(1_000_000):
            seconds = wait.next()
        assert seconds == POLL
        wait.reset()
        assert wait.next() == FIRST_POLL


def on_fake_clock(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main`` on an event loop whose clock jumps to its next timer (looptime):
    sleeps, timeouts and polls take no real time; threads and sockets still run for real."""
    with asyncio.Runner(loop_factory=looptime.new_event_loop) as runner:
        return runner.run(main())


class TestIdleWorker:
    def test_an_idle_sqlite_worker_still_runs_a_job_after_ten_minutes(self, tmp_path: Path) -> None:
        """Ten minutes of empty polls (12,000 rounds, on a fake clock), then a job runs."""

        async def main() -> float:
            queue = sqlite_queue(tmp_path)
            loop = asyncio.get_running_loop()
            async with open_worker(queue) as worker:
                began = loop.time()
                await asyncio.sleep(600)
                job_id = await queue.submit(queue_tasks.add.call(2, 3))
                assert await queue.result(job_id, timeout=5) == 5
                assert not worker.stopping.is_set()
                idled = loop.time() - began
            await queue.aclose()
            return idled

        assert on_fake_clock(main) >= 600


@pytest.mark.timeout(180)
def test_worker_processes_idle_past_a_minute_still_run_jobs() -> None:
    """``asyncgen worker --processes 2`` on an empty SQLite queue (started when the session
    began) is still up after 65 s with no child restarted, runs jobs, and drains on SIGTERM."""
    idle = idle_worker.started()
    time.sleep(max(0.0, IDLE_FOR - idle.idled()))
    assert idle.process.poll() is None, idle.output.read_text()
    queue = open_queue(idle.url)
    queue.register(queue_tasks.add)
    jobs = [queue.blocking.submit(queue_tasks.add.call(i, 1)) for i in range(4)]
    assert [queue.blocking.result(job, timeout=30) for job in jobs] == [1, 2, 3, 4]
    queue.blocking.close()
    idle.process.send_signal(signal.SIGTERM)
    assert idle.process.wait(60) == 0
    output = idle.output.read_text()
    assert "restarting" not in output, output
    assert "Traceback" not in output, output


class TestCrash:
    async def test_a_crashed_loop_is_logged_drained_and_raised(self, tmp_path: Path) -> None:
        """A claim loop that fails raises WorkerCrashedError (cause kept), logged with its
        traceback as worker_crashed, after its running jobs were given their grace."""
        queue, broken = breaking_queue(tmp_path, failures=0)
        slow = await queue.submit(queue_tasks.add.call(1, 1, seconds=0.3))
        worker = Worker(queue, concurrency=1, grace=5)
        run = asyncio.create_task(worker.run())
        await asyncio.wait_for(broken.claimed.wait(), 10)
        broken.failures = 1  # the next claim (when the slow job ends) fails
        with structlog.testing.capture_logs() as logs, pytest.raises(WorkerCrashedError) as info:
            await asyncio.wait_for(run, 10)
        assert isinstance(info.value.__cause__, OverflowError)
        assert "restart the worker" in str(info.value)
        crashed = [line for line in logs if line["event"] == "worker_crashed"]
        assert len(crashed) == 1
        assert crashed[0]["log_level"] == "error"
        assert isinstance(crashed[0]["exc_info"], OverflowError)
        assert await queue.result(slow, timeout=1) == 2  # drained, not abandoned
        reports = await queue.store.worker_reports()
        assert [report.status["state"] for report in reports] == ["crashed"]
        await queue.aclose()

    async def test_an_unusable_store_is_raised_as_it_is(self, tmp_path: Path) -> None:
        """A StoreError from a claim (a damaged database) is not a crash: it is raised as
        the store said it (the command exits 2 on it; a restart cannot help)."""
        damaged = asyncgen.StoreError("jobs.db is not a usable SQLite database")
        queue, _ = breaking_queue(tmp_path, failures=1, error=damaged)
        with pytest.raises(asyncgen.StoreError, match="not a usable SQLite database"):
            await asyncio.wait_for(Worker(queue).run(), 10)
        await queue.aclose()

    def test_a_worker_thread_restarts_and_tells_its_owner(self, tmp_path: Path) -> None:
        """A WorkerThread whose loop crashes calls on_crash and restarts; jobs submitted
        after the crash still run."""
        queue, _ = breaking_queue(tmp_path, failures=1)
        told: list[WorkerCrashedError] = []
        crashed = threading.Event()

        def on_crash(error: WorkerCrashedError) -> None:
            told.append(error)
            crashed.set()

        thread = WorkerThread(queue, on_crash=on_crash).start()
        try:
            assert crashed.wait(10)
            job_id = queue.blocking.submit(queue_tasks.add.call(4, 5))
            assert queue.blocking.result(job_id, timeout=20) == 9
            assert thread.alive
            assert (thread.crashes, len(told)) == (1, 1)
            assert isinstance(told[0].__cause__, OverflowError)
        finally:
            thread.stop(timeout=20)
        assert not thread.alive
        queue.blocking.close()

    def test_without_restart_stop_raises_the_crash(self, tmp_path: Path) -> None:
        """restart=False: the thread ends with the crash, and stop() raises it."""
        queue, _ = breaking_queue(tmp_path, failures=1)
        thread = WorkerThread(queue, restart=False).start()
        for _ in range(200):
            if not thread.alive:
                break
            threading.Event().wait(0.05)
        assert not thread.alive
        with pytest.raises(WorkerCrashedError, match="OverflowError"):
            thread.stop(timeout=10)
        queue.blocking.close()
