"""The job queue: one conformance suite over every backend, and real worker processes."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import asyncgen
from asyncgen import JobQueue, JobState, QueueStatistics, RetryPolicy, open_queue, open_worker
from asyncgen.testing import SimServer
from tests import queue_tasks
from tests.processes import worker_process

FAST = RetryPolicy(base_delay=0.01, jitter=0)


# Redis behind Sentinel and Redis Cluster run the same tests, alone (pytest -m sentinel,
# pytest -m cluster: pyproject.toml).
SENTINEL = pytest.param("sentinel", marks=pytest.mark.sentinel)
CLUSTER = pytest.param("cluster", marks=pytest.mark.cluster)


def backend_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    if backend == "sentinel":
        return str(request.getfixturevalue("sentinel_url"))
    if backend == "cluster":
        return str(request.getfixturevalue("cluster_url"))
    return str(request.getfixturevalue("redis_url"))


def registered(url: str) -> JobQueue:
    """The queue at ``url`` with the test tasks registered."""
    queue = open_queue(url)
    tasks = (
        queue_tasks.add,
        queue_tasks.shout,
        queue_tasks.explode,
        queue_tasks.leak,
        queue_tasks.stamp,
    )
    for found in tasks:
        queue.register(found)
    return queue


@pytest.fixture(params=["memory", "sqlite", "redis", SENTINEL, CLUSTER])
async def queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobQueue]:
    """Each backend, with the test tasks registered."""
    opened = registered(backend_url(request, request.param, tmp_path))
    yield opened
    await opened.aclose()


class TestConformance:
    async def test_submit_run_and_result(self, queue: JobQueue) -> None:
        """A submitted task runs in a worker and its result comes back."""
        job_id = await queue.submit(queue_tasks.add.call(2, 3))
        assert (await queue.status(job_id)).state is JobState.PENDING
        async with open_worker(queue, concurrency=2):
            assert await queue.result(job_id, timeout=10) == 5
        record = await queue.status(job_id)
        assert (record.state, record.attempts) == (JobState.COMPLETED, 1)

    async def test_sync_tasks_run_too(self, queue: JobQueue) -> None:
        """A plain def task runs (in a thread)."""
        job_id = await queue.submit(queue_tasks.shout.call('hi "é" ✓ \\ /'))
        async with open_worker(queue):
            assert await queue.result(job_id, timeout=10) == 'HI "É" ✓ \\ /'

    async def test_bad_arguments_are_refused_at_submit(self, queue: JobQueue) -> None:
        """Arguments are checked when the job is made, not in the worker."""
        with pytest.raises(ValueError, match="invalid arguments"):
            queue_tasks.add.call("two", 3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="missing a required argument"):
            queue_tasks.add.call(1)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match=r"GenerationJob or task\.call"):
            await queue.submit({"kind": "add"})  # type: ignore[arg-type]
        assert (await queue.statistics()).pending == 0

    async def test_priority_then_fifo(self, queue: JobQueue) -> None:
        """Higher priority first, then submission order."""
        ids = [
            await queue.submit(queue_tasks.add.call(i, 0), priority=p)
            for i, p in enumerate([0, 5, 0, 5, 1])
        ]
        order = []
        while (record := await queue.store.claim("w", kinds=None, lease=30)) is not None:
            order.append(ids.index(record.id))
        assert order == [1, 3, 4, 0, 2]

    async def test_fifo_across_kinds_within_a_priority(self, queue: JobQueue) -> None:
        """Jobs of different kinds at one priority are claimed in submission order."""
        makers = [
            lambda i: queue_tasks.shout.call(str(i)),
            lambda i: queue_tasks.add.call(i, 1),
            lambda i: queue_tasks.explode.call(str(i)),
        ]
        # 30 quick submits: several land in the same millisecond, in different kinds
        ids = [await queue.submit(makers[i % 3](i)) for i in range(30)]
        order = []
        while (record := await queue.store.claim("w", kinds=None, lease=30)) is not None:
            order.append(ids.index(record.id))
        assert order == list(range(30))

    async def test_claim_many_fills_slots_in_order(self, queue: JobQueue) -> None:
        """claim_many takes up to its limit in claim order; the next caller gets the rest."""
        ids = [await queue.submit(queue_tasks.add.call(i, 0), priority=i % 2) for i in range(7)]
        first = await queue.store.claim_many("w1", kinds=None, lease=30, limit=4)
        rest = await queue.store.claim_many("w2", kinds=None, lease=30, limit=10)
        assert [ids.index(r.id) for r in first] == [1, 3, 5, 0]
        assert [ids.index(r.id) for r in rest] == [2, 4, 6]
        assert {r.worker for r in first} == {"w1"}
        assert await queue.store.claim_many("w3", kinds=None, lease=30, limit=5) == []
        assert (await queue.statistics()).running == 7

    async def test_submit_many(self, queue: JobQueue) -> None:
        """A batch is stored in order, claimed in order and run like single submits."""
        calls = [queue_tasks.add.call(i, 1) for i in range(600)]  # > one Redis round trip
        ids = await queue.submit_many(calls, priority=2)
        assert len(set(ids)) == 600
        first = await queue.store.claim_many("w", kinds=None, lease=30, limit=3)
        assert [r.id for r in first] == ids[:3]
        assert {(r.priority, r.payload["a"]) for r in first} == {(2, 0), (2, 1), (2, 2)}
        async with open_worker(queue, concurrency=8):
            results = [await queue.result(i, timeout=20) for i in ids[3:]]
        assert results == [i + 1 for i in range(3, 600)]

    async def test_submit_many_again_with_keys_stores_nothing_twice(self, queue: JobQueue) -> None:
        """Repeating a keyed batch (an interrupted bulk submit) returns the first ids."""
        calls = [queue_tasks.add.call(i, 0) for i in range(5)]
        keys = [f"line-{i}" for i in range(5)]
        ids = await queue.submit_many(calls[:3], idempotency_keys=keys[:3])
        again = await queue.submit_many(calls, idempotency_keys=keys)
        assert again[:3] == ids
        assert (await queue.statistics()).pending == 5

    async def test_submit_many_refuses_bad_input_whole(self, queue: JobQueue) -> None:
        """A bad element or a short key list is refused, saying which; nothing is stored."""
        calls: list[object] = [queue_tasks.add.call(1, 1), {"kind": "add"}]
        with pytest.raises(TypeError, match=r"jobs\[1\]: submit a GenerationJob"):
            await queue.submit_many(calls)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="1 idempotency keys for 2 jobs"):
            await queue.submit_many(calls[:1] * 2, idempotency_keys=["k"])  # type: ignore[arg-type]
        assert (await queue.statistics()).pending == 0

    async def test_idempotency_key(self, queue: JobQueue) -> None:
        """The same idempotency key returns the first job; nothing is stored twice."""
        first = await queue.submit(queue_tasks.add.call(1, 1), idempotency_key="k")
        again = await queue.submit(queue_tasks.add.call(9, 9), idempotency_key="k")
        assert first == again
        assert (await queue.statistics()).pending == 1

    async def test_a_job_id_given_is_the_jobs_and_stored_once(self, queue: JobQueue) -> None:
        """submit(job_id=...) stores the job under that id; again, it stores nothing."""
        assert await queue.submit(queue_tasks.add.call(1, 1), job_id="mine-1") == "mine-1"
        assert await queue.submit(queue_tasks.add.call(1, 1), job_id="mine-1") == "mine-1"
        assert (await queue.statistics()).pending == 1
        assert (await queue.status("mine-1")).payload == {"a": 1, "b": 1, "seconds": 0.0}
        for bad in ("", "x" * 201):
            with pytest.raises(ValueError, match="job_id must be"):
                await queue.submit(queue_tasks.add.call(1, 1), job_id=bad)

    async def test_a_unique_key_returns_the_unfinished_job(self, queue: JobQueue) -> None:
        """While a job with a unique key is pending (or running), a submit with the key
        is that job; once it has ended, the key is free again."""
        first = await queue.submit(queue_tasks.add.call(1, 1), unique_key="user-7")
        again = await queue.submit(queue_tasks.add.call(2, 2), unique_key="user-7")
        other = await queue.submit(queue_tasks.add.call(3, 3), unique_key="user-8")
        assert again == first
        assert other != first
        assert (await queue.status(first)).unique_key == "user-7"
        async with open_worker(queue, concurrency=2):
            assert await queue.results([first, other], timeout=10) == [2, 6]
        after = await queue.submit(queue_tasks.add.call(4, 4), unique_key="user-7")
        assert after != first
        assert (await queue.statistics()).pending == 1

    async def test_unique_for_alone_keys_on_the_call(self, queue: JobQueue) -> None:
        """unique_for without a key: the same call is not queued twice while the first
        is unfinished; another call is; the key lapses after unique_for seconds."""
        later = time.time() + 3600  # scheduled: unfinished throughout the test
        first = await queue.submit(queue_tasks.add.call(1, 1), run_at=later, unique_for=0.5)
        same = await queue.submit(queue_tasks.add.call(1, 1), run_at=later, unique_for=0.5)
        other = await queue.submit(queue_tasks.add.call(1, 2), run_at=later, unique_for=0.5)
        assert same == first
        assert other != first
        await asyncio.sleep(0.6)
        lapsed = await queue.submit(queue_tasks.add.call(1, 1), run_at=later, unique_for=0.5)
        assert lapsed not in (first, other)
        assert (await queue.statistics()).scheduled == 3

    async def test_concurrent_submitters_of_one_key_make_one_job(self, queue: JobQueue) -> None:
        """100 submits of one unique key at once: one job, and every submit its id."""
        ids = await asyncio.gather(
            *(queue.submit(queue_tasks.add.call(i, 0), unique_key="once") for i in range(100))
        )
        assert len(set(ids)) == 1
        assert (await queue.statistics()).pending == 1

    async def test_unique_mistakes_are_refused(self, queue: JobQueue) -> None:
        call = queue_tasks.add.call(1, 1)
        with pytest.raises(ValueError, match="unique_for must be > 0 seconds"):
            await queue.submit(call, unique_for=0)
        with pytest.raises(ValueError, match="unique_key must not be empty"):
            await queue.submit(call, unique_key="")
        with pytest.raises(ValueError, match="a recurring job runs once per slot already"):
            await queue.submit(call, unique_key="k", every=60)
        assert (await queue.statistics()).pending == 0

    async def test_run_at_delays_the_start(self, queue: JobQueue) -> None:
        """A job with run_at in the future is scheduled, not claimable, until then."""
        await queue.submit(queue_tasks.add.call(1, 1), run_at=time.time() + 3600)
        stats = await queue.statistics()
        assert (stats.scheduled, stats.pending) == (1, 0)
        assert await queue.store.claim("w", kinds=None, lease=30) is None

    async def test_failures_retry_then_go_dead(self, queue: JobQueue) -> None:
        """A failing task is retried with backoff, then dead with its last error."""
        job_id = await queue.submit(queue_tasks.explode.call("boom"), max_attempts=3)
        async with open_worker(queue, retry=FAST):
            with pytest.raises(asyncgen.JobFailedError, match="RuntimeError: boom"):
                await queue.result(job_id, timeout=10)
        record = await queue.status(job_id)
        assert (record.state, record.attempts) == (JobState.DEAD, 3)
        stats = await queue.statistics()
        assert (stats.dead, stats.retried) == (1, 2)

    async def test_cancel_and_purge(self, queue: JobQueue) -> None:
        """A pending job can be cancelled; finished jobs can be purged."""
        job_id = await queue.submit(queue_tasks.add.call(1, 2))
        assert await queue.cancel(job_id)
        assert not await queue.cancel(job_id)
        with pytest.raises(asyncgen.JobFailedError, match="cancelled"):
            await queue.result(job_id, timeout=1)
        assert await queue.purge(older_than=0) == 1
        with pytest.raises(KeyError):
            await queue.status(job_id)

    async def test_expired_lease_is_taken_over(self, queue: JobQueue) -> None:
        """A job whose worker stopped heartbeating is claimed again after its lease."""
        job_id = await queue.submit(queue_tasks.add.call(4, 4))
        first = await queue.store.claim("dead-worker", kinds=None, lease=0.05)
        assert first is not None
        await asyncio.sleep(0.1)
        again = await queue.store.claim("live-worker", kinds=None, lease=30)
        assert again is not None
        assert (again.id, again.attempts) == (job_id, 2)
        assert not await queue.store.complete(job_id, "dead-worker", 1)  # lease lost
        assert await queue.store.complete(job_id, "live-worker", 8)
        assert (await queue.status(job_id)).result == 8

    async def test_batch_writes_answer_per_job(self, queue: JobQueue) -> None:
        """heartbeat_many and complete_many: each job is answered for itself, and only
        the worker holding a job's lease may keep or finish it."""
        ids = [await queue.submit(queue_tasks.add.call(i, 0)) for i in range(3)]
        mine = await queue.store.claim_many("w-1", kinds=None, lease=30, limit=2)
        assert [r.id for r in mine] == ids[:2]
        beats = await queue.store.heartbeat_many([ids[0], ids[2], ids[1]], "w-1", lease=30)
        assert beats == [True, False, True]  # ids[2] was never claimed
        assert await queue.store.heartbeat_many([], "w-1", lease=30) == []
        assert await queue.store.complete_many("w-2", [(ids[0], 1)]) == [False]
        stored = await queue.store.complete_many("w-1", [(ids[1], {"b": [1]}), (ids[0], 0)])
        assert stored == [True, True]
        assert await queue.store.complete_many("w-1", [(ids[0], 5)]) == [False]  # finished
        assert [(await queue.status(i)).result for i in ids[:2]] == [0, {"b": [1]}]
        assert (await queue.status(ids[2])).state is JobState.PENDING

    async def test_each_attempt_is_kept_in_the_history(self, queue: JobQueue) -> None:
        """Who ran each attempt, from when to when, and how it ended: a retry, a lease
        taken over, then success."""
        job_id = await queue.submit(queue_tasks.add.call(1, 1), max_attempts=5)
        (first,) = await queue.store.claim_many("w-1", kinds=None, lease=30, limit=1)
        assert first.started_at is not None
        await asyncio.sleep(0.02)
        await queue.store.fail(
            job_id, "w-1", error_type="ServerError", error="HTTP 503", retry_at=time.time()
        )
        (second,) = await queue.store.claim_many("w-2", kinds=None, lease=0.05, limit=1)
        assert second.attempts == 2
        await asyncio.sleep(0.1)  # w-2 "dies": its lease runs out
        (third,) = await queue.store.claim_many("w-3", kinds=None, lease=30, limit=1)
        assert (third.id, third.attempts) == (job_id, 3)
        assert await queue.store.complete(job_id, "w-3", 2)
        history = (await queue.status(job_id)).history
        assert [(h["attempt"], h["worker"], h["outcome"], h["error_type"]) for h in history] == [
            (1, "w-1", "retried", "ServerError"),
            (2, "w-2", "lost", "WorkerLost"),
            (3, "w-3", "ok", ""),
        ]
        assert history[0]["ended"] - history[0]["started"] >= 0.015
        assert history[0]["error"] == "HTTP 503"
        assert all(h["ended"] >= h["started"] for h in history)

    async def test_worker_reports_are_kept_for_their_ttl(self, queue: JobQueue) -> None:
        await queue.store.report("w-1", {"state": "running", "n": 1}, ttl=30)
        await queue.store.report("w-2", {"state": "running"}, ttl=0.2)
        await queue.store.report("w-1", {"state": "running", "n": 2}, ttl=30)  # replaces
        reports = await queue.store.worker_reports()
        assert [(r.name, r.status.get("n")) for r in reports] == [("w-1", 2), ("w-2", None)]
        assert all(abs(r.at - time.time()) < 5 for r in reports)
        await asyncio.sleep(0.4)
        assert [r.name for r in await queue.store.worker_reports()] == ["w-1"]

    async def test_a_worker_reports_what_it_runs(self, queue: JobQueue) -> None:
        """At start and every few seconds a worker stores its report (what it runs and
        since when, its counts); on stopping, a last one says so."""
        job_id = await queue.submit(queue_tasks.add.call(1, 2, 0.5))
        async with open_worker(queue, name="reporter", concurrency=2) as worker:
            for _ in range(100):
                if (await queue.status(job_id)).state is JobState.RUNNING:
                    break
                await asyncio.sleep(0.02)
            running = worker.status()["running"]
            assert [(r["id"], r["kind"]) for r in running] == [(job_id, "add")]
            assert time.time() - running[0]["since"] < 5
            (report,) = await queue.store.worker_reports()
            assert (report.name, report.status["state"]) == ("reporter", "running")
            assert report.status["concurrency"] == 2
            assert await queue.result(job_id, timeout=10) == 3
        (last,) = await queue.store.worker_reports()
        assert last.status["state"] == "stopped"
        assert [(j["kind"], j["ok"]) for j in last.status["jobs"]] == [("add", 1)]

    async def test_many_concurrent_submits_and_results(self, queue: JobQueue) -> None:
        """300 submits at once (they share round trips where the store allows it) each
        store their own job, and a worker's results finishing together each land on
        their own job."""
        calls = [queue_tasks.add.call(i, 1) for i in range(300)]
        ids = await asyncio.gather(*(queue.submit(call) for call in calls))
        assert len(set(ids)) == 300
        async with open_worker(queue, concurrency=50):
            results = await queue.results(ids, timeout=30)
        assert results == [i + 1 for i in range(300)]

    async def test_results_are_stored_as_json(self, queue: JobQueue) -> None:
        """A pydantic model or a date comes back as its JSON form; a value JSON cannot
        hold fails its job at once (not retried) with an error that says so, and the
        worker goes on."""
        model, day, bad = [
            await queue.submit(queue_tasks.stamp.call(k), max_attempts=3)
            for k in ("model", "datetime", "object")
        ]
        async with open_worker(queue, retry=FAST):
            assert await queue.result(model, timeout=10) == {
                "at": "2026-01-02T03:04:05Z",
                "tags": ["a"],
            }
            assert await queue.result(day, timeout=10) == "2026-01-02"
            with pytest.raises(asyncgen.JobFailedError):
                await queue.result(bad, timeout=10)
        record = await queue.status(bad)
        assert (record.state, record.attempts) == (JobState.DEAD, 1)
        assert record.error_type == "ResultNotStorableError"
        assert "returned a value of type object" in str(record.error)

    async def test_kinds_filter(self, queue: JobQueue) -> None:
        """A worker limited to some kinds leaves the others alone."""
        await queue.submit(queue_tasks.shout.call("x"))
        odd = await queue.submit(asyncgen.queue.TaskCall("ns:job", {}), priority=-3)
        assert await queue.store.claim("w", kinds=["add", "ns"], lease=30) is None
        assert await queue.store.claim("w", kinds=["shout"], lease=30) is not None
        taken = await queue.store.claim("w", kinds=["ns:job"], lease=30)
        assert taken is not None
        assert taken.id == odd

    async def test_generation_jobs(self, queue: JobQueue, sim: SimServer) -> None:
        """A GenerationJob runs through the worker's ChatClient; a 402 does not kill it:
        it goes back, its attempt not used, and waits for credits (issue 13)."""
        ok_id = await queue.submit(asyncgen.GenerationJob(model="m", prompt="hi"))
        client = asyncgen.ChatClient(sim.base_url)
        async with open_worker(queue, client=client):
            record = await queue.result(ok_id, timeout=10)
        assert record["text"] == "[m] hi"
        sim.configure(
            asyncgen.sim.SimConfig(
                default=asyncgen.sim.ModelProfile(
                    faults=[asyncgen.sim.Fault(kind="status", status=402)]
                )
            )
        )
        broke_id = await queue.submit(asyncgen.GenerationJob(model="m", prompt="hi"))
        async with open_worker(queue, client=client, retry=FAST, credit_probe=60):
            for _ in range(200):
                if sim.requests() == 1:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)
        await client.aclose()
        assert sim.requests() == 1  # paused: not sent again before the probe is due
        record = await queue.status(broke_id)
        assert (record.state, record.attempts, record.error_type) == (
            JobState.PENDING,
            0,
            "InsufficientCreditsError",
        )

    async def test_drain_gives_back_unfinished_jobs(self, queue: JobQueue) -> None:
        """Stopping a worker lets short jobs finish; long ones go back, their attempt counted."""
        short = await queue.submit(queue_tasks.add.call(1, 1, 0.05))
        long = await queue.submit(queue_tasks.add.call(2, 2, 30))
        async with open_worker(queue, concurrency=2, grace=0.5):
            await asyncio.sleep(0.2)
        assert (await queue.status(short)).state is JobState.COMPLETED
        record = await queue.status(long)
        assert (record.state, record.attempts, record.error_type) == (
            JobState.PENDING,
            1,
            "WorkerStopped",
        )

    async def test_a_job_that_hangs_every_worker_retires(self, queue: JobQueue) -> None:
        """A job still running at every drain goes dead after max_attempts drains."""
        hung = await queue.submit(queue_tasks.add.call(3, 3, 30), max_attempts=2)
        for _ in range(2):
            async with open_worker(queue, grace=0.05):
                for _ in range(1000):  # until a worker has it
                    if (await queue.status(hung)).state is JobState.RUNNING:
                        break
                    await asyncio.sleep(0.01)
        record = await queue.status(hung)
        assert (record.state, record.attempts, record.error_type) == (
            JobState.DEAD,
            2,
            "WorkerStopped",
        )
        assert "grace 0.05 s" in (record.error or "")

    async def test_workers_claim_only_what_they_can_run(
        self, queue: JobQueue, sim: SimServer
    ) -> None:
        """Unregistered kinds and generation jobs without a client stay pending, untouched."""
        stranger = await queue.submit(asyncgen.queue.TaskCall("nobody-runs-this", {}))
        generation = await queue.submit(asyncgen.GenerationJob(model="m", prompt="hi"))
        ok = await queue.submit(queue_tasks.add.call(1, 2))
        async with open_worker(queue) as worker:
            assert worker.serves() == ["add", "shout", "explode", "leak", "stamp"]
            assert await queue.result(ok, timeout=10) == 3
            await asyncio.sleep(0.2)
        for job_id in (stranger, generation):
            record = await queue.status(job_id)
            assert (record.state, record.attempts) == (JobState.PENDING, 0)
        assert (await queue.statistics()).pending == 2
        client = asyncgen.ChatClient(sim.base_url)
        async with open_worker(queue, client=client, kinds=["shout"]) as worker:
            assert worker.serves() == ["shout"]  # kinds given: generation only if named
            await asyncio.sleep(0.2)
        assert (await queue.status(generation)).state is JobState.PENDING
        async with open_worker(queue, client=client, kinds=["shout", "generate"]) as worker:
            assert worker.serves() == ["shout", "generate"]
            assert (await queue.result(generation, timeout=10))["text"] == "[m] hi"
        await client.aclose()
        assert (await queue.status(stranger)).state is JobState.PENDING


@pytest.fixture(params=["sqlite", "redis", SENTINEL])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend that several processes share."""
    return backend_url(request, request.param, tmp_path)


async def wait_for(
    queue: JobQueue, predicate: Callable[[QueueStatistics], bool], within: float = 60
) -> None:
    deadline = time.monotonic() + within
    while not predicate(await queue.statistics()):
        assert time.monotonic() < deadline, await queue.statistics()
        await asyncio.sleep(0.05)


async def completed_run_ats(queue: JobQueue) -> list[float]:
    """The run_at of every completed job, in order (read from the backend's own storage)."""
    store = queue.store
    if isinstance(store, asyncgen.queue.RedisStore):
        client = await store.connection.client()
        ids = [str(i) for i in await client.zrange(f"{store.prefix}completed", 0, -1)]
        times = [await client.hget(f"{store.prefix}job:{i}", "run_at") for i in ids]
        return sorted(float(t) for t in times if t is not None)
    assert isinstance(store, asyncgen.queue.SQLiteStore)
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT run_at FROM jobs WHERE state = 'completed' ORDER BY run_at")
        return [row[0] for row in rows]


def starts(log: Path) -> collections.Counter[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    return collections.Counter(line.split()[1] for line in lines if line.startswith("start"))


class TestWorkerProcesses:
    async def test_kill_9_mid_job_then_restart(self, durable_url: str, tmp_path: Path) -> None:
        """kill -9 a worker mid-job; a new one finishes: one stored result per job."""
        url, log = durable_url, tmp_path / "tasks.log"
        queue = open_queue(url)
        ids = [await queue.submit(queue_tasks.add.call(i, 100, 0.2)) for i in range(20)]
        first = worker_process(url, log, "--concurrency", "2", "--lease", "1")
        await wait_for(queue, lambda s: s.completed >= 5)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        finished_before = {
            r.payload["a"]
            for r in [await queue.status(i) for i in ids]
            if r.state is JobState.COMPLETED
        }
        second = worker_process(url, log, "--concurrency", "4", "--lease", "1")
        await wait_for(queue, lambda s: s.completed == 20)
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
        records = [await queue.status(i) for i in ids]
        assert [r.result for r in records] == [i + 100 for i in range(20)]
        counts = starts(log)
        for a in finished_before:
            assert counts[str(a)] == 1  # a finished result is never recomputed
        assert (await queue.statistics()).dead == 0
        await queue.aclose()

    async def test_three_workers_lose_and_duplicate_nothing(
        self, durable_url: str, tmp_path: Path
    ) -> None:
        """Three worker processes on one queue run each of 60 jobs exactly once."""
        url, log = durable_url, tmp_path / "tasks.log"
        queue = open_queue(url)
        for i in range(60):
            await queue.submit(queue_tasks.add.call(i, 0, 0.01))
        workers = [worker_process(url, log, "--concurrency", "3") for _ in range(3)]
        # every worker up (a SIGTERM during its imports would kill it, not drain it)
        await wait_for(queue, lambda s: s.completed == 60 and s.workers == 3)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        assert [w.wait(20) for w in workers] == [0, 0, 0]
        assert starts(log) == collections.Counter(str(i) for i in range(60))
        await queue.aclose()

    async def test_sigterm_drains(self, durable_url: str, tmp_path: Path) -> None:
        """SIGTERM: the running job finishes within the grace period; exit 0."""
        url, log = durable_url, tmp_path / "tasks.log"
        queue = open_queue(url)
        job_id = await queue.submit(queue_tasks.add.call(7, 1, 1.0))
        worker = worker_process(url, log, "--grace", "10")
        await wait_for(queue, lambda s: s.running == 1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
        assert (await queue.status(job_id)).result == 8
        await queue.aclose()


def test_blocking_twins_and_a_worker_thread(durable_url: str) -> None:
    """Sync code submits, waits and reads stats; a worker runs in a background thread."""
    queue = open_queue(durable_url)
    queue.register(queue_tasks.shout)
    sync = queue.blocking
    ids = [sync.submit(queue_tasks.shout.call(word)) for word in ("a", "b")]
    ids += sync.submit_many([queue_tasks.shout.call("c")])
    with asyncgen.queue.WorkerThread(queue, concurrency=2):
        assert [sync.result(i, timeout=10) for i in ids] == ["A", "B", "C"]
    assert sync.statistics().completed == 3
    assert sync.status(ids[0]).state is JobState.COMPLETED
    assert sync.purge(older_than=0) == 3
    sync.close()


class TestSchedule:
    def test_next_run_on_a_fixed_clock(self) -> None:
        """Intervals add up; cron slots land on their minutes (UTC); bad input is refused."""
        from asyncgen.queue._schedule import check_cron, next_run

        assert next_run(1000.0, every=30, cron=None) == 1030.0
        noon = 1_795_000_000.0 - 1_795_000_000.0 % 86400 + 12 * 3600  # 12:00:00 UTC
        assert next_run(noon, every=None, cron="*/5 * * * *") == noon + 300
        assert next_run(noon + 1, every=None, cron="0 13 * * *") == noon + 3600
        with pytest.raises(ValueError, match="five fields"):
            check_cron("every tuesday")
        with pytest.raises(ValueError, match="exactly one"):
            next_run(0, every=None, cron=None)

    async def test_cron_job_waits_for_its_first_slot(self, queue: JobQueue) -> None:
        """A cron job is scheduled at the next matching minute."""
        job_id = await queue.submit(queue_tasks.add.call(1, 1), cron="*/5 * * * *")
        record = await queue.status(job_id)
        assert record.run_at % 300 == 0
        assert record.run_at >= time.time() - 1e-3
        assert (await queue.statistics()).scheduled + (await queue.statistics()).pending == 1
        with pytest.raises(ValueError, match="not both"):
            await queue.submit(queue_tasks.add.call(1, 1), cron="* * * * *", every=5)

    async def test_a_retried_slot_adds_its_next_slot_once(self, queue: JobQueue) -> None:
        """Each claim of a slot adds the next one, idempotently: a slot failing twice
        leaves exactly one next slot, keyed by series and time (every store)."""
        start = time.time()
        job_id = await queue.submit(
            queue_tasks.explode.call("x"), every=3600, run_at=start, max_attempts=2
        )
        async with open_worker(queue, retry=FAST):
            for _ in range(200):
                if (await queue.status(job_id)).state is JobState.DEAD:
                    break
                await asyncio.sleep(0.05)
        assert (await queue.status(job_id)).attempts == 2
        stats = await queue.statistics()
        assert (stats.pending, stats.scheduled) == (0, 1)  # the next slot, an hour out

    def test_next_slot_names_its_series_and_time(self) -> None:
        """The next slot's key is <series>@<due>, the series kept from slot to slot."""
        from asyncgen.queue._models import JobRecord
        from asyncgen.queue._schedule import next_slot

        first = JobRecord(
            kind="k", payload={}, run_at=1000.0, every=30.0, idempotency_key="a@b@1000.000"
        )
        second = next_slot(first, first_claim=True)
        assert second is not None
        # A retry moved the slot's start: its own time still comes from its key.
        retried = second.model_copy(update={"run_at": 1047.5, "attempts": 1})
        third = next_slot(retried, first_claim=False)
        assert third is not None
        assert (second.run_at, second.idempotency_key) == (1030.0, "a@b@1030.000")
        assert (third.run_at, third.idempotency_key) == (1060.0, "a@b@1060.000")
        assert third.attempts == 0
        mine = JobRecord(kind="k", payload={}, run_at=5.0, every=1.0, idempotency_key="mine")
        assert next_slot(mine, first_claim=False) is None  # retried: time unknown

    async def test_each_slot_runs_once_with_several_workers(self, durable_url: str) -> None:
        """An every=0.1 s job under 3 workers runs once per slot: no slot twice, none lost."""
        queue = open_queue(durable_url)
        queue.register(queue_tasks.add)
        start = time.time()
        await queue.submit(queue_tasks.add.call(1, 1), every=0.1, run_at=start)
        async with (
            open_worker(queue, concurrency=2),
            open_worker(queue, concurrency=2),
            open_worker(queue, concurrency=2),
        ):
            await asyncio.sleep(1.0)
        slots = await completed_run_ats(queue)
        await queue.aclose()
        assert len(slots) >= 5
        gaps = [round(b - a, 6) for a, b in itertools.pairwise(slots)]
        assert gaps == [0.1] * len(gaps)
        assert slots[0] == start


class TestMetrics:
    def test_counts_rates_and_histogram(self) -> None:
        """Observations become counts, an error rate, a mean and cumulative buckets."""
        metrics = asyncgen.queue.Metrics()
        for seconds in (0.02, 0.2, 3.0):
            metrics.observe("generate", "m", seconds, outcome="ok")
        metrics.observe("generate", "m", 1.0, outcome="failed")
        metrics.observe("generate", "m", 1.0, outcome="retried")
        [series] = metrics.snapshot()
        assert (series["ok"], series["failed"], series["retried"]) == (3, 1, 1)
        assert series["error_rate"] == 0.25
        assert series["mean_duration"] == pytest.approx((0.02 + 0.2 + 3.0 + 1.0) / 4)
        assert series["buckets"]["0.025"] == 1
        assert series["buckets"]["1"] == 3
        assert series["buckets"]["+Inf"] == 4

    def test_prometheus_text(self) -> None:
        """The Prometheus export (prometheus_client's) has typed families, labels and
        histogram lines, read back with its own parser."""
        from prometheus_client.parser import text_string_to_metric_families

        metrics = asyncgen.queue.Metrics()
        metrics.observe("add", None, 0.3, outcome="ok")
        metrics.set_state("credit_paused", 1)
        text = metrics.to_prometheus()
        assert "# TYPE asyncgen_jobs_total counter" in text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert (
            samples[("asyncgen_jobs_total", (("kind", "add"), ("model", ""), ("outcome", "ok")))]
            == 1
        )
        bucket = "asyncgen_job_duration_seconds_bucket"
        assert samples[(bucket, (("kind", "add"), ("le", "0.5"), ("model", "")))] == 1
        assert samples[(bucket, (("kind", "add"), ("le", "0.25"), ("model", "")))] == 0
        assert (
            samples[("asyncgen_job_duration_seconds_count", (("kind", "add"), ("model", "")))] == 1
        )
        assert samples[("asyncgen_credit_paused", ())] == 1
        assert json.loads(metrics.to_json())["jobs"][0]["kind"] == "add"

    def test_alert_fires_once_per_crossing(self) -> None:
        """An error-rate alert fires when crossed, not again until it recovers."""
        fired: list[asyncgen.queue.AlertEvent] = []
        alert = asyncgen.queue.Alert("errors", "error_rate", 0.5, fired.append, min_count=2)
        metrics = asyncgen.queue.Metrics([alert])
        metrics.observe("t", None, 0.1, outcome="failed")
        assert fired == []  # below min_count
        for _ in range(3):
            metrics.observe("t", None, 0.1, outcome="failed")
        assert [(e.name, e.kind, e.value) for e in fired] == [("errors", "t", 1.0)]
        for _ in range(6):
            metrics.observe("t", None, 0.1, outcome="ok")  # recovers to 0.4
        for _ in range(4):
            metrics.observe("t", None, 0.1, outcome="failed")  # 8/14 > 0.5 again
        assert len(fired) == 2

    async def test_worker_feeds_metrics(self, queue: JobQueue) -> None:
        """A worker records each run's outcome and duration."""
        ok = await queue.submit(queue_tasks.add.call(1, 2))
        bad = await queue.submit(queue_tasks.explode.call("x"), max_attempts=2)
        async with open_worker(queue, retry=FAST) as worker:
            await queue.result(ok, timeout=10)
            with pytest.raises(asyncgen.JobFailedError):
                await queue.result(bad, timeout=10)
        by_kind = {s["kind"]: s for s in worker.metrics.snapshot()}
        assert by_kind["add"]["ok"] == 1
        assert (by_kind["explode"]["retried"], by_kind["explode"]["failed"]) == (1, 1)


class TestDependencies:
    async def test_waits_for_its_dependencies(self, queue: JobQueue) -> None:
        """A dependent job is not claimable until every dependency has completed."""
        first = await queue.submit(queue_tasks.add.call(1, 1))
        second = await queue.submit(queue_tasks.add.call(2, 2))
        after = await queue.submit(
            queue_tasks.add.call(3, 3), depends_on=[first, second], priority=10
        )
        claimed = await queue.store.claim("w", kinds=None, lease=30)
        assert claimed is not None
        assert claimed.id == first  # the high-priority dependent is not ready yet
        assert await queue.store.complete(first, "w", 2)
        nxt = await queue.store.claim("w", kinds=None, lease=30)
        assert nxt is not None
        assert nxt.id == second
        assert await queue.store.claim("w", kinds=None, lease=30) is None
        assert await queue.store.complete(second, "w", 4)
        last = await queue.store.claim("w", kinds=None, lease=30)
        assert last is not None
        assert last.id == after

    async def test_failed_dependency_buries_the_dependent(self, queue: JobQueue) -> None:
        """When a dependency is cancelled (or dies), the dependent goes dead, saying why."""
        first = await queue.submit(queue_tasks.add.call(1, 1))
        after = await queue.submit(queue_tasks.add.call(2, 2), depends_on=[first])
        assert await queue.cancel(first)
        assert await queue.store.claim("w", kinds=None, lease=30) is None
        record = await queue.status(after)
        assert (record.state, record.error_type) == (JobState.DEAD, "DependencyFailed")

    async def test_depending_on_an_already_ended_job_buries_at_once(self, queue: JobQueue) -> None:
        """A job submitted after its dependency was cancelled goes dead at submit (it
        stayed pending for ever on SQLite), on every store."""
        first = await queue.submit(queue_tasks.add.call(1, 1))
        assert await queue.cancel(first)
        after = await queue.submit(queue_tasks.add.call(2, 2), depends_on=[first])
        record = await queue.status(after)
        assert (record.state, record.error_type) == (JobState.DEAD, "DependencyFailed")
        with pytest.raises(asyncgen.JobFailedError):
            await queue.result(after, timeout=5)

    async def test_burial_follows_a_chain(self, queue: JobQueue) -> None:
        """a <- b <- c: when a dies, b and c are buried at once; an unrelated job is not."""
        a = await queue.submit(queue_tasks.explode.call("x"), max_attempts=1)
        b = await queue.submit(queue_tasks.add.call(1, 1), depends_on=[a])
        c = await queue.submit(queue_tasks.add.call(2, 2), depends_on=[b])
        free = await queue.submit(queue_tasks.add.call(3, 3))
        async with open_worker(queue, retry=FAST):
            with pytest.raises(asyncgen.JobFailedError):
                await queue.result(c, timeout=10)
            assert await queue.result(free, timeout=10) == 6
        states = [(await queue.status(i)).state for i in (a, b, c)]
        assert states == [JobState.DEAD] * 3

    async def test_unknown_dependency_is_refused(self, queue: JobQueue) -> None:
        """Depending on a job that does not exist is a ValueError at submit."""
        with pytest.raises(ValueError, match="no job 'nope'"):
            await queue.submit(queue_tasks.add.call(1, 1), depends_on=["nope"])


class TestTimeLimits:
    async def test_a_run_past_its_timeout_is_retried_then_dead(self, queue: JobQueue) -> None:
        """submit(timeout=): each run is cancelled at the limit, counted as an attempt
        (JobTimeoutError, retried with backoff) and the job goes dead after max_attempts;
        a job within its limit completes."""
        late = await queue.submit(queue_tasks.add.call(1, 1, 30), timeout=0.2, max_attempts=2)
        quick = await queue.submit(queue_tasks.add.call(2, 2, 0.01), timeout=5)
        began = time.monotonic()
        async with open_worker(queue, retry=FAST):
            assert await queue.result(quick, timeout=10) == 4
            with pytest.raises(asyncgen.JobFailedError, match="JobTimeoutError"):
                await queue.result(late, timeout=10)
        assert time.monotonic() - began < 8  # not the task's 30 s
        record = await queue.status(late)
        assert (record.attempts, record.error_type, record.timeout) == (2, "JobTimeoutError", 0.2)

    async def test_task_and_worker_defaults(self, queue: JobQueue) -> None:
        """@task(timeout=) applies unless submit gives one; Worker(timeout=) applies to the
        rest."""
        queue.register(queue_tasks.slow)
        by_task = await queue.submit(queue_tasks.slow.call(5), max_attempts=1)
        overridden = await queue.submit(queue_tasks.slow.call(0.5), timeout=5)
        by_worker = await queue.submit(queue_tasks.add.call(1, 1, 30), max_attempts=1)
        async with open_worker(queue, concurrency=3, timeout=0.3):
            assert await queue.result(overridden, timeout=10) == 0.5
            for job_id in (by_task, by_worker):
                with pytest.raises(asyncgen.JobFailedError, match="JobTimeoutError"):
                    await queue.result(job_id, timeout=10)

    def test_bad_timeouts_are_refused(self) -> None:
        """A timeout that is not a positive number is refused where it is given."""
        with pytest.raises(ValueError, match="timeout must be > 0"):
            asyncgen.queue.task(name="t", timeout=0)(queue_tasks.add.fn)
        with pytest.raises(ValueError, match="timeout must be > 0"):
            asyncgen.Worker(open_queue("memory://"), timeout=-1)


async def test_an_old_queue_file_gains_the_new_columns(tmp_path: Path) -> None:
    """A SQLite queue made before time limits existed opens, keeps its jobs, and takes
    jobs with a timeout."""
    from asyncgen.queue._sqlite_schema import FIRST_COLUMNS, SCHEMA

    path = tmp_path / "old.db"
    old_schema = SCHEMA.replace(",\n    timeout REAL", "")
    assert "timeout" not in old_schema
    with sqlite3.connect(path) as db:
        db.executescript(old_schema)
        db.execute(
            f"INSERT INTO jobs ({FIRST_COLUMNS}) VALUES ('old1', 'add', '{{\"a\": 1, \"b\": 2}}',"
            " 0, 'pending', 0, 3, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, '[]')"
        )
    queue = registered(f"sqlite:///{path}")
    new = await queue.submit(queue_tasks.add.call(3, 4), timeout=5)
    async with open_worker(queue):
        assert await queue.result("old1", timeout=10) == 3
        assert await queue.result(new, timeout=10) == 7
    assert (await queue.status(new)).timeout == 5
    await queue.aclose()


class TestAbort:
    async def test_cancel_stops_a_running_job_and_the_worker_goes_on(
        self, queue: JobQueue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """cancel() on a running job: cancelled at once, stopped within a heartbeat, no
        result stored; the worker then runs the next job."""
        log = tmp_path / "tasks.log"
        monkeypatch.setenv("ASYNCGEN_TEST_TASK_LOG", str(log))
        long = await queue.submit(queue_tasks.add.call(1, 1, 30))
        async with open_worker(queue, concurrency=1, lease=0.6):
            for _ in range(200):
                if (await queue.status(long)).state is JobState.RUNNING:
                    break
                await asyncio.sleep(0.02)
            began = time.monotonic()
            assert await queue.cancel(long)
            assert (await queue.status(long)).state is JobState.CANCELLED
            after = await queue.submit(queue_tasks.add.call(2, 2))
            assert await queue.result(after, timeout=10) == 4  # the one slot came free
            assert time.monotonic() - began < 5
        record = await queue.status(long)
        assert (record.state, record.result) == (JobState.CANCELLED, None)
        assert "done 1" not in log.read_text()  # the task never got to its end
        with pytest.raises(asyncgen.JobFailedError, match="cancelled"):
            await queue.result(long, timeout=1)
        assert not await queue.cancel(long)  # finished: nothing to cancel

    async def test_abort_reaches_a_worker_process(self, durable_url: str, tmp_path: Path) -> None:
        """Across processes (SQLite) and machines (Redis): the worker process holding the
        job stops it within one heartbeat and keeps serving."""
        log = tmp_path / "tasks.log"
        queue = registered(durable_url)
        long = await queue.submit(queue_tasks.add.call(7, 7, 60))
        worker = worker_process(durable_url, log, "--concurrency", "1", "--lease", "1.5")
        try:
            await wait_for(queue, lambda s: s.running == 1, within=30)
            began = time.monotonic()
            assert await queue.cancel(long)
            after = await queue.submit(queue_tasks.add.call(3, 3))
            assert await queue.result(after, timeout=30) == 6
            assert time.monotonic() - began < 15
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        assert (await queue.status(long)).state is JobState.CANCELLED
        assert "done 7" not in log.read_text()
        await queue.aclose()

    async def test_an_abort_lands_long_before_the_heartbeat(
        self, durable_url: str, tmp_path: Path
    ) -> None:
        """The default lease (30 s: a heartbeat every 10 s): a cancelled running job in a
        worker process stops within a few seconds at most (its worker looks for aborts
        every 0.25 s; benchmarks/bench_abort.py measures the latency), five times over."""
        log = tmp_path / "tasks.log"
        queue = registered(durable_url)
        worker = worker_process(durable_url, log, "--concurrency", "2")
        lags = []
        try:
            for i in range(5):
                job = await queue.submit(queue_tasks.hold.call(f"h{i}"))
                await logged(log, f"start h{i}")
                began = time.time()
                assert await queue.cancel(job)
                stopped = await logged(log, f"stopped h{i}")
                lags.append(float(stopped.split()[2]) - began)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        assert max(lags) < 3.0, lags  # the heartbeat alone took up to 10 s
        await queue.aclose()


def log_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


async def logged(log: Path, prefix: str, within: float = 30) -> str:
    """The first line of ``log`` starting with ``prefix`` (waited for)."""
    deadline = time.monotonic() + within
    while True:
        found = [x for x in log_lines(log) if x == prefix or x.startswith(prefix + " ")]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no {prefix!r} in {log}"
        await asyncio.sleep(0.02)


class TestDeadLetters:
    async def test_requeue_runs_dead_jobs_again_with_fresh_attempts(self, queue: JobQueue) -> None:
        """A dead job requeued by id runs again from attempt 0, its id and last error kept
        until the new run; a completed or pending job is left alone."""
        dead = await queue.submit(queue_tasks.explode.call("boom"), max_attempts=2)
        ok = await queue.submit(queue_tasks.add.call(1, 2))
        async with open_worker(queue, retry=FAST):
            assert await queue.result(ok, timeout=10) == 3
            with pytest.raises(asyncgen.JobFailedError):
                await queue.result(dead, timeout=10)
        waiting = await queue.submit(queue_tasks.add.call(5, 5))
        assert await queue.requeue([dead, ok, waiting, "no-such-job"]) == [dead]
        record = await queue.status(dead)
        assert (record.state, record.attempts, record.error_type) == (
            JobState.PENDING,
            0,
            "RuntimeError",
        )
        assert record.payload == {"message": "boom"}
        async with open_worker(queue, retry=FAST):
            with pytest.raises(asyncgen.JobFailedError):
                await queue.result(dead, timeout=10)
        assert (await queue.status(dead)).attempts == 2  # ran again, twice
        assert (await queue.status(ok)).state is JobState.COMPLETED

    async def test_requeue_every_dead_job_of_a_kind(self, queue: JobQueue) -> None:
        """requeue(kind=...) takes every dead job of that kind and no other; a cancelled
        job is requeued only by id."""
        dead = [
            await queue.submit(queue_tasks.explode.call(str(i)), max_attempts=1) for i in range(3)
        ]
        other = await queue.submit(queue_tasks.leak.call("sk-x"), max_attempts=1)
        async with open_worker(queue, retry=FAST):
            for job_id in (*dead, other):
                with contextlib.suppress(asyncgen.JobFailedError):
                    await queue.result(job_id, timeout=10)
        stopped = await queue.submit(queue_tasks.add.call(1, 1), run_at=time.time() + 3600)
        assert await queue.cancel(stopped)
        assert sorted(await queue.requeue(kind="explode")) == sorted(dead)
        assert (await queue.status(other)).state is JobState.DEAD
        assert (await queue.status(stopped)).state is JobState.CANCELLED
        assert await queue.requeue([stopped]) == [stopped]
        assert (await queue.status(stopped)).state is JobState.PENDING

    async def test_a_job_whose_dependency_died_is_not_requeued(self, queue: JobQueue) -> None:
        """Requeueing a buried dependent alone would leave it waiting on a dead job."""
        first = await queue.submit(queue_tasks.add.call(1, 1))
        after = await queue.submit(queue_tasks.add.call(2, 2), depends_on=[first])
        assert await queue.cancel(first)
        assert (await queue.status(after)).state is JobState.DEAD
        assert await queue.requeue([after]) == []
        assert await queue.requeue([first]) == [first]
        assert await queue.requeue([after]) == [after]
        async with open_worker(queue):
            assert await queue.result(after, timeout=10) == 4

    async def test_jobs_lists_by_state_and_kind(self, queue: JobQueue) -> None:
        """jobs() filters by state and kind, newest first, and honours the limit."""
        done = await queue.submit(queue_tasks.add.call(1, 1))
        async with open_worker(queue):
            await queue.result(done, timeout=10)
        later = [
            await queue.submit(queue_tasks.add.call(i, i), run_at=time.time() + 3600)
            for i in range(3)
        ]
        shout = await queue.submit(queue_tasks.shout.call("hi"), run_at=time.time() + 3600)
        pending = await queue.jobs(state="pending", kind="add")
        assert {r.id for r in pending} == set(later)
        assert [r.id for r in await queue.jobs(state=JobState.COMPLETED)] == [done]
        assert len(await queue.jobs(limit=2)) == 2
        assert {r.id for r in await queue.jobs()} == {done, shout, *later}
        with pytest.raises(ValueError, match="unknown state 'lost'"):
            await queue.jobs(state="lost")


async def test_delays_and_leases_on_a_fake_clock(durable_url: str, tmp_path: Path) -> None:
    """With the store's clock injected, run_at and lease expiry are exact, not slept."""
    now = [1_000_000.0]
    store: asyncgen.queue.JobStore
    if durable_url.startswith("redis"):
        store = asyncgen.queue.RedisStore(durable_url, clock=lambda: now[0])
    else:
        store = asyncgen.queue.SQLiteStore(tmp_path / "jobs.db", clock=lambda: now[0])
    queue = JobQueue(store, "fake-clock")
    job_id = await queue.submit(queue_tasks.add.call(1, 1), run_at=now[0] + 100)
    assert await store.claim("w1", kinds=None, lease=30) is None
    now[0] += 99.999
    assert await store.claim("w1", kinds=None, lease=30) is None
    now[0] += 0.001
    claimed = await store.claim("w1", kinds=None, lease=30)
    assert claimed is not None
    assert claimed.id == job_id
    now[0] += 29.9
    assert await store.claim("w2", kinds=None, lease=30) is None  # lease still held
    now[0] += 0.2
    taken = await store.claim("w2", kinds=None, lease=30)
    assert taken is not None
    assert (taken.worker, taken.attempts) == ("w2", 2)
    assert (await queue.statistics()).workers == 2
    await queue.aclose()


async def test_failed_counts_jobs_waiting_for_a_retry(durable_url: str) -> None:
    """After a failed run with a retry ahead, statistics count it as failed and scheduled."""
    queue = open_queue(durable_url)
    queue.register(queue_tasks.explode)
    await queue.submit(queue_tasks.explode.call("x"), max_attempts=3)
    async with open_worker(queue, retry=RetryPolicy(base_delay=100)):
        await wait_for(queue, lambda s: s.failed == 1)
    stats = await queue.statistics()
    assert (stats.failed, stats.scheduled, stats.dead, stats.retried) == (1, 1, 0, 1)
    await queue.aclose()


class TestClearErrors:
    async def test_a_secret_in_a_task_error_is_never_stored(self, queue: JobQueue) -> None:
        """A task error carrying a key is masked in the store and in JobFailedError."""
        secret = "sk-or-v1-stored-secret-0123456789"
        job_id = await queue.submit(queue_tasks.leak.call(secret), max_attempts=1)
        async with open_worker(queue):
            with pytest.raises(asyncgen.JobFailedError) as failed:
                await queue.result(job_id, timeout=10)
        assert secret not in str(failed.value)
        assert "Bearer ***" in str(failed.value)
        record = await queue.status(job_id)
        assert secret not in (record.error or "")

    async def test_result_timeout_says_what_happened(self, queue: JobQueue) -> None:
        """queue.result(timeout=) raises a TimeoutError naming the job, its state, what to do."""
        job_id = await queue.submit(queue_tasks.add.call(1, 2))
        with pytest.raises(
            TimeoutError, match=r"did not finish within 0\.1 s \(it is pending\)"
        ) as no:
            await queue.result(job_id, timeout=0.1)
        assert "is a worker serving add running? start one (asyncgen worker" in str(no.value)
        assert "__main__ cannot be served" in str(no.value)

    def test_an_unknown_keyword_is_named(self) -> None:
        """A misspelt argument is reported as unknown, with the task's real arguments."""
        with pytest.raises(ValueError, match="unknown argument\\(s\\) bb; it takes a, b, seconds"):
            queue_tasks.add.call(a=1, bb=2)  # type: ignore[call-arg]


class TestHostileSQLiteFiles:
    def test_a_file_that_is_not_a_database(self, tmp_path: Path) -> None:
        """Text where a database should be: a StoreError that says to give another file."""
        path = tmp_path / "notes.db"
        path.write_text("shopping list\n" * 200)
        with pytest.raises(asyncgen.StoreError, match="is not a usable SQLite database"):
            open_queue(f"sqlite:///{path}")

    def test_a_database_of_another_schema(self, tmp_path: Path) -> None:
        """Another application's 'jobs' table is named as such, before any query fails."""
        path = tmp_path / "other.db"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE jobs (name TEXT, started TEXT)")
        db.close()
        with pytest.raises(asyncgen.StoreError, match="'jobs' table of another shape"):
            open_queue(f"sqlite:///{path}")

    def test_a_directory_and_an_unwritable_place(self, tmp_path: Path) -> None:
        """A folder as the path, and a place no file can be made, are StoreErrors."""
        with pytest.raises(asyncgen.StoreError, match="is a directory"):
            open_queue(f"sqlite:///{tmp_path}")
        # /proc takes no new files, even for root (which ignores permission bits).
        with pytest.raises(asyncgen.StoreError, match="cannot write the queue database"):
            open_queue("sqlite:////proc/asyncgen-jobs.db")

    async def test_priority_out_of_range(self, tmp_path: Path) -> None:
        """A priority SQLite cannot store is refused at submit with the allowed range."""
        queue = registered(f"sqlite:///{tmp_path}/jobs.db")
        with pytest.raises(ValueError, match="priority must be a whole number from"):
            await queue.submit(queue_tasks.add.call(1, 2), priority=10**30)
        await queue.aclose()
