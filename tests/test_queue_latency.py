"""Queue latency: idle workers and result waiters are woken, not left polling."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import asyncgen
from asyncgen import JobState, open_worker
from asyncgen.queue import JobQueue
from asyncgen.queue._queue import RESULT_WAIT
from asyncgen.queue._worker import POLL
from tests import queue_tasks
from tests.test_queue import backend_url, registered


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobQueue]:
    opened = registered(backend_url(request, request.param, tmp_path))
    yield opened
    await opened.aclose()


async def test_an_idle_worker_picks_up_and_the_waiter_hears_at_once(queue: JobQueue) -> None:
    """After the worker has idled long enough to be at its slowest poll, a job goes from
    submit to result in well under one poll interval (submit wakes the worker; the
    completion wakes the waiter)."""
    async with open_worker(queue):
        await asyncio.sleep(0.3)  # idle: a polling worker would now wait POLL between claims
        took = []
        for i in range(7):
            began = time.perf_counter()
            job_id = await queue.submit(queue_tasks.add.call(i, i))
            assert await queue.result(job_id, timeout=10) == 2 * i
            took.append(time.perf_counter() - began)
            await asyncio.sleep(0.12)  # idle again
    # Polling, the pickup alone would average POLL / 2 and the result check as much again.
    assert statistics.median(took) < 0.6 * POLL


@pytest.mark.parametrize("ending", ["cancel", "dead", "completed"])
async def test_a_result_waiter_is_woken_by_each_ending(queue: JobQueue, ending: str) -> None:
    """result() returns within a fraction of its wait when the job is cancelled, goes
    dead or completes (not at the end of a RESULT_WAIT timeout)."""
    if ending == "cancel":
        job_id = await queue.submit(queue_tasks.add.call(1, 1), run_at=time.time() + 3600)
    elif ending == "dead":
        job_id = await queue.submit(queue_tasks.explode.call("x"), max_attempts=1)
    else:
        job_id = await queue.submit(queue_tasks.add.call(1, 1, 0.3))
    waiter = asyncio.create_task(queue.result(job_id, timeout=10))
    await asyncio.sleep(0.1)  # the waiter is waiting
    async with open_worker(queue):
        if ending == "cancel":
            assert await queue.cancel(job_id)
        for _ in range(500):
            if (await queue.status(job_id)).state not in (JobState.PENDING, JobState.RUNNING):
                break
            await asyncio.sleep(0.005)
        ended = time.perf_counter()
        if ending == "completed":
            assert await waiter == 2
        else:
            with pytest.raises(asyncgen.JobFailedError):
                await waiter
        assert time.perf_counter() - ended < RESULT_WAIT / 4


async def test_many_waiters_on_the_same_jobs_all_wake(queue: JobQueue) -> None:
    """Forty waiters on ten jobs (four each), results(ids) and as_completed: every one
    returns, none left behind by a wake-up that landed between its check and its wait."""
    ids = [await queue.submit(queue_tasks.add.call(i, 1, 0.02 * (i % 3))) for i in range(10)]
    waiters = [
        asyncio.create_task(queue.result(job_id, timeout=20)) for job_id in ids for _ in range(4)
    ]
    began = time.perf_counter()
    async with open_worker(queue, concurrency=4):
        assert await queue.results(ids, timeout=20) == [i + 1 for i in range(10)]
        answers = await asyncio.gather(*waiters)
        seen = [job_id async for job_id, _ in queue.as_completed(ids)]
    assert answers == [i + 1 for i in range(10) for _ in range(4)]
    assert sorted(seen) == sorted(ids)
    assert time.perf_counter() - began < 10 * RESULT_WAIT  # no waiter left to time out


async def test_as_completed_yields_failures_as_values(queue: JobQueue) -> None:
    """A dead job comes out of as_completed with its JobFailedError; results() raises it."""
    good = await queue.submit(queue_tasks.add.call(2, 2))
    bad = await queue.submit(queue_tasks.explode.call("boom"), max_attempts=1)
    async with open_worker(queue):
        got = {job_id: value async for job_id, value in queue.as_completed([bad, good])}
        with pytest.raises(asyncgen.JobFailedError, match="boom"):
            await queue.results([good, bad], timeout=10)
    assert got[good] == 4
    assert isinstance(got[bad], asyncgen.JobFailedError)
