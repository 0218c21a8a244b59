"""Job groups (submit_group, fan_out, on_complete once) and progress reports, over every
backend, with real worker processes for the exactly-once claim."""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import asyncgen
from asyncgen import JobFailedError, JobQueue, JobState, open_queue, open_worker
from asyncgen.queue import GroupOutcome, report_progress, task
from asyncgen.queue._progress import PROGRESS_EVERY
from asyncgen.testing import SimServer
from tests import queue_tasks
from tests.processes import worker_process
from tests.test_queue import CLUSTER, SENTINEL, backend_url, registered

EXTRA = (queue_tasks.tally, queue_tasks.crawl, queue_tasks.crawl_sync)


@pytest.fixture(params=["memory", "sqlite", "redis", SENTINEL, CLUSTER])
async def queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobQueue]:
    """Each backend, with the test tasks registered."""
    opened = registered(backend_url(request, request.param, tmp_path))
    for found in EXTRA:
        opened.register(found)
    yield opened
    await opened.aclose()


async def claim_all(queue: JobQueue) -> list[str]:
    """Claim every ready job by hand (no worker): their ids, in claim order."""
    taken = []
    while (record := await queue.store.claim("w", kinds=None, lease=30)) is not None:
        taken.append(record.id)
    return taken


class TestGroups:
    async def test_on_complete_gets_every_outcome_in_order(self, queue: JobQueue) -> None:
        """Members that complete and one that dies: on_complete runs once they have all
        ended, with their outcomes in the order submitted; result(group) is its value."""
        jobs = [
            queue_tasks.add.call(1, 1),
            queue_tasks.explode.call("no"),
            queue_tasks.shout.call("hi"),
        ]
        group = await queue.submit_group(
            jobs, on_complete=queue_tasks.tally.call(label="L"), max_attempts=1
        )
        status = await queue.group_status(group)
        assert (status.size, status.pending, status.state) == (3, 3, JobState.PENDING)
        assert (status.on_complete, status.progress, status.eta) == ("tally", 0.0, None)
        async with open_worker(queue, concurrency=3):
            summary = await queue.result(group, timeout=20)
        assert summary == {
            "label": "L",
            "results": [2, None, "HI"],
            "ended": {"completed": 2, "dead": 1},
        }
        status = await queue.group_status(group)
        assert (status.completed, status.dead, status.pending, status.running) == (2, 1, 0, 0)
        assert (status.progress, status.state, status.done) == (1.0, JobState.COMPLETED, True)
        record = await queue.status(group)
        assert record.attempts == 1
        members = [await queue.status(m) for m in record.members]
        assert all(m.group == group for m in members)

    async def test_a_group_without_on_complete_counts_its_members(self, queue: JobQueue) -> None:
        """Without on_complete any worker ends the group: its result counts the members
        by how they ended."""
        group = await queue.submit_group([queue_tasks.add.call(i, 0) for i in range(4)])
        async with open_worker(queue, concurrency=2):
            assert await queue.result(group, timeout=20) == {"completed": 4}
            assert await queue.group_results(group, timeout=20) == [0, 1, 2, 3]

    async def test_the_group_waits_for_every_member(self, queue: JobQueue) -> None:
        """The group's own record is claimed only once no member is pending or running,
        whatever the outcome (completed, dead, cancelled); then once, and only once."""
        group = await queue.submit_group([queue_tasks.add.call(i, 0) for i in range(4)])
        members = (await queue.status(group)).members
        assert sorted(await claim_all(queue)) == sorted(members[:4])  # not the group
        assert await queue.store.complete(members[0], "w", 0)
        assert (
            await queue.store.fail(members[1], "w", error_type="E", error="e", retry_at=None)
            is JobState.DEAD
        )
        assert await queue.cancel(members[2])
        assert await claim_all(queue) == []  # one member still running
        status = await queue.group_status(group)
        assert (status.completed, status.dead, status.cancelled, status.running) == (1, 1, 1, 1)
        assert status.progress == 0.75
        assert status.eta is not None
        assert await queue.store.complete(members[3], "w", 3)
        assert await claim_all(queue) == [group]
        assert await claim_all(queue) == []

    async def test_the_last_two_members_ending_together_ready_it_once(
        self, queue: JobQueue
    ) -> None:
        """Two workers complete the last two members at the same moment: the group is
        claimable once (the store decides, not the workers)."""
        for _ in range(5):
            group = await queue.submit_group([queue_tasks.add.call(i, 0) for i in range(2)])
            first, second = (await queue.status(group)).members
            assert await queue.store.claim("a", kinds=None, lease=30) is not None
            assert await queue.store.claim("b", kinds=None, lease=30) is not None
            holders = {(await queue.status(m)).worker: m for m in (first, second)}
            done = await asyncio.gather(
                queue.store.complete(holders["a"], "a", 1),
                queue.store.complete(holders["b"], "b", 2),
            )
            assert list(done) == [True, True]
            assert await claim_all(queue) == [group]

    async def test_a_requeued_member_holds_the_group_back(self, queue: JobQueue) -> None:
        """A member that died and is requeued while the group waits: the group waits for
        its new run too."""
        group = await queue.submit_group(
            [queue_tasks.explode.call("x"), queue_tasks.add.call(1, 1)], max_attempts=1
        )
        dying, other = (await queue.status(group)).members
        await claim_all(queue)
        assert (
            await queue.store.fail(dying, "w", error_type="E", error="e", retry_at=None)
            is JobState.DEAD
        )
        assert await queue.requeue([dying]) == [dying]
        assert await queue.store.complete(other, "w", 2)
        assert await claim_all(queue) == [dying]  # the group waits for it
        assert await queue.store.complete(dying, "w", None)
        assert await claim_all(queue) == [group]

    async def test_a_member_requeued_once_the_group_is_ready_runs_it_once(
        self, queue: JobQueue
    ) -> None:
        """Every member ended (the group ready), then one is requeued and ends again:
        the group is still claimed once in all."""
        group = await queue.submit_group(
            [queue_tasks.explode.call("x"), queue_tasks.add.call(1, 1)], max_attempts=1
        )
        dying, other = (await queue.status(group)).members
        await claim_all(queue)
        assert await queue.store.complete(other, "w", 2)
        assert (
            await queue.store.fail(dying, "w", error_type="E", error="e", retry_at=None)
            is JobState.DEAD
        )
        assert await queue.requeue([dying]) == [dying]
        again = await queue.store.claim("w", kinds=["explode"], lease=30)  # not the group
        assert again is not None
        assert again.id == dying
        assert await queue.store.complete(dying, "w", None)
        claimed = await claim_all(queue)
        assert claimed == [group], claimed

    async def test_group_results_in_order_and_as_completed(self, queue: JobQueue) -> None:
        """group_results keeps the submitted order (a failed member raises, or takes its
        place with return_exceptions); group_as_completed yields every member once."""
        jobs = [queue_tasks.add.call(i, 0, 0.05 * (3 - i)) for i in range(3)]
        group = await queue.submit_group([*jobs, queue_tasks.explode.call("x")], max_attempts=1)
        members = (await queue.status(group)).members
        async with open_worker(queue, concurrency=4):
            seen = {job_id: value async for job_id, value in queue.group_as_completed(group)}
            with pytest.raises(JobFailedError, match="RuntimeError: x"):
                await queue.group_results(group, timeout=20)
            values = await queue.group_results(group, timeout=20, return_exceptions=True)
        assert set(seen) == set(members)
        assert values[:3] == [0, 1, 2]
        assert isinstance(values[3], JobFailedError)

    async def test_submitting_again_with_a_key_stores_nothing(self, queue: JobQueue) -> None:
        """The same idempotency key returns the first group, members and all."""
        jobs = [queue_tasks.add.call(i, 0) for i in range(3)]
        first = await queue.submit_group(jobs, idempotency_key="g-1")
        again = await queue.submit_group(jobs, idempotency_key="g-1")
        assert again == first
        assert (await queue.statistics()).pending == 4  # three members and the group

    async def test_bad_groups_are_refused_whole(self, queue: JobQueue) -> None:
        """No jobs, a member that is not a job, an on_complete that is not a task call:
        a clear error, nothing stored."""
        with pytest.raises(ValueError, match="at least one job"):
            await queue.submit_group([])
        with pytest.raises(TypeError, match=r"jobs\[1\]"):
            await queue.submit_group([queue_tasks.add.call(1, 1), "add"])  # type: ignore[list-item]
        with pytest.raises(TypeError, match=r"on_complete must be task\.call"):
            await queue.submit_group(
                [queue_tasks.add.call(1, 1)],
                on_complete=queue_tasks.tally,  # type: ignore[arg-type]
            )
        with pytest.raises(KeyError, match="no group"):
            await queue.group_status("nope")
        job = await queue.submit(queue_tasks.add.call(1, 1))
        with pytest.raises(KeyError, match="not a group"):
            await queue.group_status(job)
        assert (await queue.statistics()).pending == 1

    async def test_cancel_group_cancels_what_has_not_ended(self, queue: JobQueue) -> None:
        """cancel_group cancels the pending and running members and on_complete; an
        ended member stays as it is."""
        group = await queue.submit_group(
            [queue_tasks.add.call(i, 0) for i in range(3)],
            on_complete=queue_tasks.tally.call(label="never"),
        )
        first, second, third = (await queue.status(group)).members
        await claim_all(queue)
        assert await queue.store.complete(first, "w", 0)
        assert sorted(await queue.cancel_group(group)) == sorted([second, third, group])
        status = await queue.group_status(group)
        assert (status.completed, status.cancelled, status.state) == (
            1,
            2,
            JobState.CANCELLED,
        )
        assert await queue.cancel_group(group) == []
        assert await claim_all(queue) == []

    async def test_groups_lists_the_newest_first(self, queue: JobQueue) -> None:
        """groups() gives the newest groups' statuses first."""
        first = await queue.submit_group([queue_tasks.add.call(1, 1)])
        await asyncio.sleep(0.01)
        second = await queue.submit_group([queue_tasks.add.call(2, 2)] * 2)
        listed = await queue.groups(limit=5)
        assert [(g.id, g.size) for g in listed] == [(second, 2), (first, 1)]
        assert [g.id for g in await queue.groups(limit=1)] == [second]


class TestTasksTakingTheOutcome:
    def test_call_leaves_the_group_parameter_out(self) -> None:
        """call() binds everything but the GroupOutcome parameter, which the worker fills."""
        assert queue_tasks.tally.call(label="x").arguments == {"label": "x"}
        assert queue_tasks.tally.call("x").arguments == {"label": "x"}
        with pytest.raises(ValueError, match="unknown argument"):
            queue_tasks.tally.call(label="x", group=1)  # type: ignore[call-arg]

    def test_two_outcome_parameters_are_refused(self) -> None:
        def both(a: GroupOutcome, b: GroupOutcome) -> None: ...

        def second(label: str, group: GroupOutcome) -> None: ...

        for wrong in (both, second):
            with pytest.raises(TypeError, match="must be the first, and only one"):
                task(name="wrong")(wrong)
        with pytest.raises(ValueError, match="reserved"):
            task(name="asyncgen.group")(lambda: None)

    async def test_such_a_task_submitted_alone_goes_dead_saying_why(self, queue: JobQueue) -> None:
        job = await queue.submit(queue_tasks.tally.call(label="alone"))
        async with open_worker(queue):
            with pytest.raises(JobFailedError, match="takes a GroupOutcome"):
                await queue.result(job, timeout=20)
        assert (await queue.status(job)).attempts == 1  # permanent: not retried


class TestFanOut:
    async def test_one_prompt_to_three_models(self, tmp_path: Path, sim: SimServer) -> None:
        """fan_out sends a job, or a prompt, to each model as a group; results come back
        model by model."""
        queue = open_queue(f"sqlite:///{tmp_path}/jobs.db")
        queue.register(queue_tasks.tally)
        job = asyncgen.GenerationJob(model="x", prompt="hi", id="q1")
        group = await queue.fan_out(
            job, ["a", "b", "c"], on_complete=queue_tasks.tally.call(label="models")
        )
        members = (await queue.status(group)).members
        assert [(await queue.status(m)).payload["id"] for m in members] == ["q1:a", "q1:b", "q1:c"]
        client = asyncgen.ChatClient(sim.base_url)
        async with open_worker(queue, client=client, concurrency=3):
            answers = await queue.group_results(group, timeout=20)
            summary = await queue.result(group, timeout=20)
        assert [a["text"] for a in answers] == ["[a] hi", "[b] hi", "[c] hi"]
        assert summary["ended"] == {"completed": 3}
        plain = await queue.fan_out("hello", ["d", "e"], params={"temperature": 0})
        async with open_worker(queue, client=client, concurrency=2):
            answers = await queue.group_results(plain, timeout=20)
        assert [(a["id"], a["text"]) for a in answers] == [("d", "[d] hello"), ("e", "[e] hello")]
        with pytest.raises(ValueError, match="named twice"):
            await queue.fan_out(job, ["a", "a"])
        nothing: list[list[str] | str] = [[], "a"]
        for none in nothing:
            with pytest.raises(ValueError, match="non-empty list"):
                await queue.fan_out(job, none)
        with pytest.raises(ValueError, match="in the GenerationJob"):
            await queue.fan_out(job, ["a"], params={"temperature": 0})
        await client.aclose()
        await queue.aclose()


class TestProgress:
    @pytest.mark.parametrize("kind", ["crawl", "crawl_sync"])
    async def test_a_running_task_reports_its_progress(
        self, queue: JobQueue, tmp_path: Path, kind: str
    ) -> None:
        """Async and sync tasks report progress; the last report is on the record while
        the job runs and after it completes."""
        hold = tmp_path / "hold"
        hold.touch()
        made = queue_tasks.crawl if kind == "crawl" else queue_tasks.crawl_sync
        job = await queue.submit(made.call(steps=40, hold=str(hold)))
        async with open_worker(queue):
            deadline = time.monotonic() + 20
            while (record := await queue.status(job)).progress != 1.0:
                assert time.monotonic() < deadline, record
                await asyncio.sleep(0.02)
            assert (record.state, record.progress_message) == (
                JobState.RUNNING,
                "step 40 of 40",
            )
            hold.unlink()
            assert await queue.result(job, timeout=20) == 40
        record = await queue.status(job)
        assert (record.progress, record.progress_message) == (1.0, "step 40 of 40")

    async def test_writes_are_coalesced(self, queue: JobQueue) -> None:
        """Hundreds of reports in a quick loop make a handful of writes (a reader polling
        every 5 ms sees about one value per 0.25 s, not one per report), and the last
        value is the one stored."""
        job = await queue.submit(queue_tasks.crawl.call(steps=400, seconds=0.001))
        seen: set[float] = set()
        async with open_worker(queue):
            began = time.monotonic()
            while (record := await queue.status(job)).state is not JobState.COMPLETED:
                if record.progress is not None:
                    seen.add(record.progress)
                assert time.monotonic() - began < 30
                await asyncio.sleep(0.005)
            took = time.monotonic() - began
        assert len(seen) <= took / PROGRESS_EVERY + 3, (len(seen), took)
        record = await queue.status(job)
        assert (record.progress, record.progress_message) == (1.0, "step 400 of 400")

    async def test_progress_is_the_lease_holders_and_a_new_attempt_starts_clear(
        self, queue: JobQueue
    ) -> None:
        """Only the worker holding the job stores its progress; a retry starts with none."""
        job = await queue.submit(queue_tasks.add.call(1, 1))
        assert await queue.store.claim("w", kinds=None, lease=30) is not None
        assert await queue.store.report_progress(job, "w", 0.5, "half")
        assert not await queue.store.report_progress(job, "other", 0.9, None)
        record = await queue.status(job)
        assert (record.progress, record.progress_message) == (0.5, "half")
        await queue.store.fail(job, "w", error_type="E", error="e", retry_at=time.time())
        assert await queue.store.claim("w", kinds=None, lease=30) is not None
        record = await queue.status(job)
        assert (record.progress, record.progress_message, record.attempts) == (None, None, 2)

    def test_outside_a_worker_it_does_nothing_and_bad_values_are_refused(self) -> None:
        assert report_progress(0.5) is False
        for bad in (-0.1, 1.5, float("nan"), True, "half"):
            with pytest.raises(ValueError, match=r"from 0\.0 to 1\.0"):
                report_progress(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="a string"):
            report_progress(0.5, 3)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "redis"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, request.param, tmp_path)


async def test_worker_processes_run_each_on_complete_once(shared_url: str, tmp_path: Path) -> None:
    """60 groups of 6 quick members, three worker processes: every on_complete runs
    once (counted in the tasks' side file), with its members' results in order."""
    log = tmp_path / "tasks.log"
    queue = open_queue(shared_url)
    groups = await tallied_groups(queue, 60, seconds=0.002)
    workers = [worker_process(shared_url, log, "--concurrency", "4") for _ in range(3)]
    try:
        summaries = await queue.results(groups, timeout=90)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        assert [w.wait(20) for w in workers] == [0, 0, 0]
    assert tally_runs(log) == collections.Counter(groups)
    assert_in_order(summaries)
    await queue.aclose()


async def test_groups_survive_workers_killed_mid_run(shared_url: str, tmp_path: Path) -> None:
    """A soak with kills: 40 groups of 6 members (50 ms each), two worker processes,
    one SIGKILLed three times over and started again. Every group ends with its
    on_complete run and its members' results in order; a callback runs again only if
    the worker running it was killed (at most one per kill and slot)."""
    log = tmp_path / "tasks.log"
    queue = open_queue(shared_url)
    groups = await tallied_groups(queue, 40, seconds=0.05)
    steady = worker_process(shared_url, log, "--concurrency", "4", "--lease", "1")
    kills = 0
    try:
        for _ in range(3):
            victim = worker_process(shared_url, log, "--concurrency", "4", "--lease", "1")
            done = sum(1 for line in _lines(log) if line.startswith("done"))
            deadline = time.monotonic() + 60
            while sum(1 for line in _lines(log) if line.startswith("done")) < done + 20:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            kills += 1
        summaries = await queue.results(groups, timeout=120)
    finally:
        steady.send_signal(signal.SIGTERM)
        assert steady.wait(30) == 0
    runs = tally_runs(log)
    assert set(runs) == set(groups)  # every callback ran
    assert sum(runs.values()) - len(groups) <= kills * 4
    assert_in_order(summaries)
    assert (await queue.statistics()).dead == 0
    await queue.aclose()


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


async def tallied_groups(queue: JobQueue, count: int, *, seconds: float) -> list[str]:
    """``count`` groups of 6 ``add`` members (``seconds`` each) whose on_complete is
    ``tally``; member ``i`` of group ``g`` returns ``g * 10 + i``."""
    return [
        await queue.submit_group(
            [queue_tasks.add.call(g * 10 + i, 0, seconds) for i in range(6)],
            on_complete=queue_tasks.tally.call(label=str(g)),
        )
        for g in range(count)
    ]


def tally_runs(log: Path) -> collections.Counter[str]:
    """How many times each group's tally ran, from the tasks' side file."""
    return collections.Counter(line.split()[1] for line in _lines(log) if line.startswith("tally"))


def assert_in_order(summaries: list[dict[str, Any]]) -> None:
    for g, summary in enumerate(summaries):
        assert summary["results"] == [g * 10 + i for i in range(6)]
