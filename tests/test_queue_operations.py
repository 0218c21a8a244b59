"""Running queues in production: out of credits pauses generation, it does not kill it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import time
from pathlib import Path

import pytest

from asyncgen import ChatClient, GenerationJob, JobState, open_queue, open_worker
from asyncgen.queue import CreditPause, JobQueue
from asyncgen.testing import Fault, ModelProfile, RedisServer, SimConfig, SimServer
from tests import queue_tasks
from tests.processes import asyncgen_argv, worker_process
from tests.test_queue import CLUSTER, SENTINEL, backend_url


@pytest.fixture(params=["sqlite", "redis", SENTINEL, CLUSTER])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, request.param, tmp_path)


async def states(queue: JobQueue, ids: list[str]) -> list[JobState]:
    return [(await queue.status(job_id)).state for job_id in ids]


async def test_a_worker_sends_as_many_requests_at_once_as_it_runs_jobs(
    tmp_path: Path, sim: SimServer
) -> None:
    """`asyncgen worker --concurrency 24` has a connection for each of its jobs: the
    simulator sees more than the client's default pool of 10 requests at once (it saw
    10 when the worker's client kept the default)."""
    sim.configure(SimConfig(default=ModelProfile(latency=0.5)))
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    queue = open_queue(url)
    ids = await queue.submit_many(GenerationJob(model="m", prompt=f"q{i}") for i in range(48))
    worker = worker_process(
        url, tmp_path / "tasks.log", "--base-url", sim.base_url, "--concurrency", "24"
    )
    try:
        await queue.results(ids, timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        await queue.aclose()
    assert sim.stats()["max_in_flight"] > 16


async def test_credits_off_then_on_with_two_worker_processes(
    durable_url: str, tmp_path: Path, sim: SimServer
) -> None:
    """With the account empty, no generation job dies or is lost: each 402 goes back
    without using an attempt, the workers pause and probe; credits back, every job is
    done once."""
    sim.configure(SimConfig(credits=0))
    queue = open_queue(durable_url)
    jobs = [GenerationJob(model="m", prompt=f"job {i}") for i in range(20)]
    ids = await queue.submit_many(jobs)
    outputs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = [
        worker_process(
            durable_url,
            tmp_path / "tasks.log",
            "--base-url",
            sim.base_url,
            "--concurrency",
            "4",
            "--credit-probe",
            "0.3",
            output=out,
        )
        for out in outputs
    ]
    try:
        await asyncio.sleep(2.5)  # both up, several probes each, all refused
        refused = sim.stats()["statuses"].get("402", 0)
        assert refused >= 2
        assert refused < 40  # probes, not every job again and again
        # Between probes every job is pending with no attempt used (a probe may be in
        # flight at any one moment: look again, briefly, for a moment between probes).
        for _ in range(40):
            seen = {((r := await queue.status(i)).state, r.attempts) for i in ids}
            if seen == {(JobState.PENDING, 0)}:
                break
            await asyncio.sleep(0.05)
        assert seen == {(JobState.PENDING, 0)}
        sim.configure(SimConfig(credits=100))
        results = [await queue.result(job_id, timeout=30) for job_id in ids]
        assert [r["text"] for r in results] == [f"[m] job {i}" for i in range(20)]
        assert {(await queue.status(i)).attempts for i in ids} == {1}
        assert sim.stats()["statuses"] == {"200": 20}  # each job answered once
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [worker.wait(30) for worker in workers]
        await queue.aclose()
    assert codes == [0, 0]
    logs = "".join(out.read_text() for out in outputs)
    assert logs.count("credits_exhausted") >= 1
    assert "credits_restored" in logs


DEAR = (
    "This request requires more credits, or fewer max_tokens. You requested up to 4096 "
    "tokens, but can only afford 1000."
)  # OpenRouter's words


def always_402(message: str) -> SimConfig:
    """Model "dear" always answers 402 with ``message``; the others answer."""
    fault = Fault(kind="status", status=402, code="402", message=message)
    return SimConfig(models={"dear": ModelProfile(faults=[fault])})


@pytest.mark.parametrize("message", [DEAR, "Insufficient credits"])
async def test_one_unaffordable_job_never_holds_the_queue(
    durable_url: str, sim: SimServer, message: str
) -> None:
    """One job that gets 402 every time among 50 that are answered: the 50 complete
    within about a probe interval, and the one is dead with the provider's words within
    two: at once when the 402 says the request is too dear, else on its second 402 after
    other answers showed the key has credits. It never circles as the probe."""
    sim.configure(always_402(message))
    queue = open_queue(durable_url)
    client = ChatClient(sim.base_url)
    probe = 0.5
    dear = await queue.submit(GenerationJob(model="dear", prompt="a long essay"), priority=5)
    others = [await queue.submit(GenerationJob(model="m", prompt=f"q{i}")) for i in range(50)]
    events: list[CreditPause] = []
    began = time.monotonic()
    async with open_worker(
        queue, client=client, credit_probe=probe, concurrency=4, on_credit_pause=events.append
    ):
        answers = await queue.results(others, timeout=30)
        answered_in = time.monotonic() - began
        for _ in range(200):
            if (await queue.status(dear)).state is JobState.DEAD:
                break
            await asyncio.sleep(0.05)
        dead_in = time.monotonic() - began
    await client.aclose()
    record = await queue.status(dear)
    await queue.aclose()
    assert [a["text"] for a in answers] == [f"[m] q{i}" for i in range(50)]
    assert record.state is JobState.DEAD
    assert record.error_type == "InsufficientCreditsError"
    assert message in (record.error or "")
    assert answered_in < 1 * probe + 5  # no more than one probe interval added
    assert dead_in < 2 * probe + 5
    assert sim.requests("dear") <= 2
    if message == DEAR:
        assert events == []  # the request's own 402 pauses nothing
        assert "lower its max_tokens" in (record.error or "")


async def test_the_probe_is_not_the_job_that_paused_the_queue(
    durable_url: str, sim: SimServer
) -> None:
    """One job at a time: the job whose 402 paused generation is ready again after two
    probe intervals, and the probe (after one) takes another job, which is answered and
    resumes the queue. An idle worker on Redis blocked a second past the probe's time,
    woke when the paused job was ready again and took it as the probe, again and again:
    the other jobs never ran."""
    sim.configure(always_402("Insufficient credits"))
    queue = open_queue(durable_url)
    client = ChatClient(sim.base_url)
    dear = await queue.submit(GenerationJob(model="dear", prompt="a long essay"), priority=5)
    others = [await queue.submit(GenerationJob(model="m", prompt=f"q{i}")) for i in range(5)]
    async with open_worker(queue, client=client, credit_probe=0.5, concurrency=1):
        answers = await queue.results(others, timeout=15)
    await client.aclose()
    await queue.aclose()
    assert len(answers) == 5
    assert sim.requests("dear") <= 2, dear


async def test_other_kinds_go_on_while_generation_waits(durable_url: str, sim: SimServer) -> None:
    """During a credit pause task jobs still run; the pause and the resume are told to
    the callback and shown in the metrics."""
    sim.configure(SimConfig(credits=0))
    queue = open_queue(durable_url)
    queue.register(queue_tasks.add)
    events: list[CreditPause] = []
    client = ChatClient(sim.base_url)
    generation = await queue.submit(GenerationJob(model="m", prompt="hi"))
    async with open_worker(
        queue, client=client, credit_probe=0.2, on_credit_pause=events.append
    ) as worker:
        for _ in range(100):
            if events:
                break
            await asyncio.sleep(0.05)
        assert worker.metrics.states() == {"credit_paused": 1}
        task = await queue.submit(queue_tasks.add.call(2, 3))
        assert await queue.result(task, timeout=10) == 5
        assert (await queue.status(generation)).state is JobState.PENDING
        sim.configure(SimConfig(credits=100))
        began = time.monotonic()
        assert (await queue.result(generation, timeout=10))["text"] == "[m] hi"
        assert time.monotonic() - began < 5
        assert worker.metrics.states() == {"credit_paused": 0}
    await client.aclose()
    await queue.aclose()
    assert [e.paused for e in events] == [True, False]
    assert "asyncgen_credit_paused 0" in worker.metrics.to_prometheus()


async def test_processes_supervisor_restarts_a_killed_child_and_drains(
    durable_url: str, tmp_path: Path
) -> None:
    """--processes 2: two worker processes; kill -9 of one is noticed and it is replaced;
    jobs keep running; SIGTERM drains both and the supervisor exits 0."""
    import psutil

    queue = open_queue(durable_url)
    queue.register(queue_tasks.add)
    output = tmp_path / "supervisor.log"
    supervisor = worker_process(
        durable_url,
        tmp_path / "tasks.log",
        "--processes",
        "2",
        "--concurrency",
        "2",
        "--lease",
        "2",
        output=output,
    )
    try:
        parent = psutil.Process(supervisor.pid)
        for _ in range(300):
            children = parent.children()
            if len(children) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(children) == 2
        first = [await queue.submit(queue_tasks.add.call(i, i)) for i in range(10)]
        assert [await queue.result(j, timeout=30) for j in first] == [2 * i for i in range(10)]
        victim = children[0].pid
        children[0].kill()
        for _ in range(300):
            now = {child.pid for child in parent.children()}
            if len(now) == 2 and victim not in now:
                break
            await asyncio.sleep(0.05)
        assert len(now) == 2
        assert victim not in now
        second = [await queue.submit(queue_tasks.add.call(i, 1)) for i in range(10)]
        assert [await queue.result(j, timeout=30) for j in second] == [i + 1 for i in range(10)]
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(60)
        await queue.aclose()
    assert code == 0
    text = output.read_text()
    assert "killed by SIGKILL" in text
    assert "restarting in 1 s" in text
    alive = [
        pid
        for pid in now
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == []  # both children drained and exited


def test_a_usage_error_stops_the_supervisor(tmp_path: Path) -> None:
    """A bad flag is refused before any process starts: exit 2, one line."""
    import subprocess

    done = subprocess.run(
        asyncgen_argv(
            "worker",
            f"sqlite:///{tmp_path}/q.db",
            "--processes",
            "2",
            "--kinds",
            "nope",
            "--tasks",
            "tests.queue_tasks",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--kinds names nope" in done.stderr


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def scrape(
    port: int, within: float = 30
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics (retrying until the endpoint is up) and parse it."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + within
    while True:
        try:
            async with httpx.AsyncClient() as http:
                reply = await http.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the metrics endpoint never answered"
            await asyncio.sleep(0.1)
    assert reply.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_metrics_endpoint_over_http(
    durable_url: str, tmp_path: Path, sim: SimServer, processes: str
) -> None:
    """--metrics-port serves prometheus_client's exposition: job counters by kind and
    outcome (summed over the processes under --processes), queue depth by state and
    kind, the credit-pause state and the breakers."""
    queue = open_queue(durable_url)
    queue.register(queue_tasks.add)
    queue.register(queue_tasks.explode)
    port = free_port()
    worker = worker_process(
        durable_url,
        tmp_path / "tasks.log",
        "--base-url",
        sim.base_url,
        "--metrics-port",
        str(port),
        "--processes",
        processes,
        output=tmp_path / "out.log",
    )
    try:
        ok = [await queue.submit(queue_tasks.add.call(i, i)) for i in range(6)]
        bad = await queue.submit(queue_tasks.explode.call("x"), max_attempts=1)
        text = await queue.submit(GenerationJob(model="m", prompt="hi"))
        await queue.submit(queue_tasks.add.call(0, 0), run_at=time.time() + 3600)  # scheduled
        for job_id in (*ok, text):
            await queue.result(job_id, timeout=30)
        for _ in range(200):
            if (await queue.status(bad)).state is JobState.DEAD:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        samples = await scrape(port)
        jobs = "asyncgen_jobs_total"
        assert samples[(jobs, (("kind", "add"), ("model", ""), ("outcome", "ok")))] == 6
        assert samples[(jobs, (("kind", "explode"), ("model", ""), ("outcome", "failed")))] == 1
        assert samples[(jobs, (("kind", "generate"), ("model", "m"), ("outcome", "ok")))] == 1
        depth = {k[1]: v for k, v in samples.items() if k[0] == "asyncgen_queue_jobs"}
        scheduled_kind = "add" if durable_url.startswith("sqlite") else "*"
        assert depth[(("kind", scheduled_kind), ("state", "scheduled"))] == 1
        assert sum(v for labels, v in depth.items() if ("state", "completed") in labels) == 7
        assert samples[("asyncgen_credit_paused", ())] == 0
        assert samples[("asyncgen_breaker_open", (("model", "m"),))] == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(60)
        await queue.aclose()
    assert code == 0


async def test_metrics_are_served_while_redis_is_down(tmp_path: Path) -> None:
    """Redis stopped: /metrics still answers 200 with the worker's own counters and
    asyncgen_queue_reachable 0 (no depth, no 500, no traceback); back to 1 after."""
    with RedisServer() as redis_server:
        url = f"{redis_server.url}?queue=metrics-down"
        queue = open_queue(url)
        queue.register(queue_tasks.add)
        port = free_port()
        output = tmp_path / "out.log"
        worker = worker_process(
            url, tmp_path / "tasks.log", "--metrics-port", str(port), output=output
        )
        try:
            job = await queue.submit(queue_tasks.add.call(1, 1))
            assert await queue.result(job, timeout=30) == 2
            up = await scrape(port)
            assert up[("asyncgen_queue_reachable", ())] == 1
            await queue.aclose()
            redis_server.stop(kill=True)
            down = await scrape(port)
            assert down[("asyncgen_queue_reachable", ())] == 0
            assert not any(name == "asyncgen_queue_jobs" for name, _ in down)
            ok = (("kind", "add"), ("model", ""), ("outcome", "ok"))
            assert down[("asyncgen_jobs_total", ok)] == 1
            redis_server.restart()
            back = await scrape(port)
            assert back[("asyncgen_queue_reachable", ())] == 1
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
    assert "Traceback" not in output.read_text()


def test_submitters_on_their_own_connections_make_one_unique_job(durable_url: str) -> None:
    """Four threads, each with its own queue (its own connection to the store), submit
    25 jobs of one unique key at once: one job, and every submit returns its id."""

    def submit_25() -> list[str]:
        async def run() -> list[str]:
            queue = open_queue(durable_url)
            queue.register(queue_tasks.add)
            try:
                return list(
                    await asyncio.gather(
                        *(
                            queue.submit(queue_tasks.add.call(i, 0), unique_key="one")
                            for i in range(25)
                        )
                    )
                )
            finally:
                await queue.aclose()

        return asyncio.run(run())

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ids = [job_id for found in pool.map(lambda _: submit_25(), range(4)) for job_id in found]
    assert len(ids) == 100
    assert len(set(ids)) == 1
    queue = open_queue(durable_url)
    assert queue.blocking.statistics().pending == 1
    queue.blocking.close()


async def test_a_sqlite_claim_does_not_slow_with_the_queues_depth(tmp_path: Path) -> None:
    """A claim walks the index in claim order and stops at the first ready job: with
    10,000 jobs pending it takes about as long as with 100 (a query that sorted every
    pending row took 4.8 ms against 0.02 ms at 7,000). Medians of 100 claims; a ratio
    with a wide margin, not a time."""

    async def median_claim(depth: int) -> float:
        queue = open_queue(f"sqlite:///{tmp_path}/depth-{depth}.db")
        await queue.submit_many([queue_tasks.add.call(i, 0) for i in range(depth)])
        took = []
        for _ in range(100):
            began = time.perf_counter()
            assert await queue.store.claim("w", kinds=["add"], lease=30) is not None
            took.append(time.perf_counter() - began)
        await queue.aclose()
        return sorted(took)[len(took) // 2]

    shallow, deep = await median_claim(100), await median_claim(10_000)
    assert deep < 4 * shallow, (shallow, deep)
