"""The Redis store: what only a queue shared over the network must do.

The conformance suite and the worker-process tests in test_queue.py run on Redis too;
these are the Redis-only behaviours, against real redis-server processes.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import subprocess
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import structlog
import trustme
from redis.asyncio import Redis

import asyncgen
from asyncgen import JobQueue, JobState, open_queue, open_worker
from asyncgen.queue import RedisStore
from asyncgen.queue._redis_records import has_xackdel
from asyncgen.testing import RedisServer
from tests import queue_tasks
from tests.processes import asyncgen_argv, worker_process
from tests.test_queue import registered, starts, wait_for

SECRET = "pw-9f1c2e7d-never-shown"


@pytest.fixture
async def queues() -> AsyncIterator[Callable[[str], JobQueue]]:
    """Opens queues (with the test tasks); closes them all after, even when a test fails."""
    made: list[JobQueue] = []

    def make(url: str) -> JobQueue:
        made.append(registered(url))
        return made[-1]

    yield make
    for queue in made:
        await queue.aclose()


@pytest.fixture
def queue(queues: Callable[[str], JobQueue], redis_url: str) -> JobQueue:
    """A queue of its own on the shared server."""
    return queues(redis_url)


@pytest.fixture
def task_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file the test tasks log their starts to (tests.queue_tasks)."""
    log = tmp_path / "tasks.log"
    monkeypatch.setenv("ASYNCGEN_TEST_TASK_LOG", str(log))
    return log


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain redis-py client, to look at what the store wrote."""
    client = Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


def store_of(queue: JobQueue) -> RedisStore:
    assert isinstance(queue.store, RedisStore)
    return queue.store


class TestStreams:
    async def test_finished_entries_are_acked_and_deleted(
        self, queue: JobQueue, raw: Redis
    ) -> None:
        """Every entry a job used is acknowledged and deleted: streams end empty, untrimmed."""
        ids = [await queue.submit(queue_tasks.add.call(i, 1), priority=i % 2) for i in range(20)]
        async with open_worker(queue, concurrency=4):
            assert [await queue.result(i, timeout=10) for i in ids] == [i + 1 for i in range(20)]
        prefix = store_of(queue).prefix
        lanes = [str(lane) for lane in await raw.zrange(f"{prefix}lanes", 0, -1)]
        assert sorted(lanes) == [f"{prefix}lane:0:add", f"{prefix}lane:1:add"]
        for lane in lanes:
            assert await raw.xlen(lane) == 0
            assert (await raw.xpending(lane, "workers"))["pending"] == 0
            assert (await raw.xinfo_stream(lane))["entries-added"] == 10

    async def test_a_running_job_is_a_pending_entry_kept_fresh(
        self, queue: JobQueue, raw: Redis
    ) -> None:
        """A claim is an entry in the worker's PEL; a heartbeat resets its idle time."""
        job_id = await queue.submit(queue_tasks.add.call(1, 1))
        store = store_of(queue)
        assert await store.claim("w-1", kinds=None, lease=30) is not None
        lane = f"{store.prefix}lane:0:add"
        await asyncio.sleep(0.3)
        [entry] = await raw.xpending_range(lane, "workers", "-", "+", 10)
        assert (entry["consumer"], entry["times_delivered"]) == ("w-1", 1)
        assert int(entry["time_since_delivered"]) >= 250
        assert await store.heartbeat(job_id, "w-1", lease=30)
        [entry] = await raw.xpending_range(lane, "workers", "-", "+", 10)
        assert int(entry["time_since_delivered"]) < 250
        assert not await store.heartbeat(job_id, "w-2", lease=30)

    async def test_purge_forgets_workers_that_are_gone(self, queue: JobQueue, raw: Redis) -> None:
        """Consumers and names of departed workers that hold nothing are cleaned up."""
        store = store_of(queue)
        for i in range(3):
            await queue.submit(queue_tasks.add.call(i, 0))
        held = await store.claim("alive", kinds=None, lease=30)
        assert held is not None
        gone = await store.claim("gone", kinds=None, lease=30)
        assert gone is not None
        assert await store.complete(gone.id, "gone", 1)
        await raw.delete(f"{store.prefix}worker:gone")  # its heartbeat key expired
        lane = f"{store.prefix}lane:0:add"
        assert {c["name"] for c in await raw.xinfo_consumers(lane, "workers")} == {"alive", "gone"}
        assert (await queue.statistics()).workers == 1
        assert await raw.smembers(f"{store.prefix}workers") == {"alive"}
        await queue.purge(older_than=3600)
        assert {c["name"] for c in await raw.xinfo_consumers(lane, "workers")} == {"alive"}


class TestLeases:
    async def test_two_reclaimers_never_take_the_same_job(
        self, redis_url: str, queues: Callable[[str], JobQueue]
    ) -> None:
        """Two stores racing to take over 30 expired jobs split them: none twice, none left."""
        queue = queues(redis_url)
        ghost, first, second = (store_of(q) for q in (queue, queues(redis_url), queues(redis_url)))
        for i in range(30):
            await queue.submit(queue_tasks.add.call(i, 0))
        # one call, so no lease can run out while the ghost is still claiming
        assert len(await ghost.claim_many("ghost", kinds=None, lease=0.05, limit=30)) == 30
        await asyncio.sleep(0.1)

        async def take_all(store: RedisStore, name: str) -> list[str]:
            taken = []
            while (record := await store.claim(name, kinds=None, lease=30)) is not None:
                assert record.attempts == 2
                taken.append(record.id)
                await asyncio.sleep(0)
            return taken

        a, b = await asyncio.gather(take_all(first, "a"), take_all(second, "b"))
        assert len(a) + len(b) == 30
        assert len(set(a) | set(b)) == 30
        for job_id in a:
            assert not await ghost.complete(job_id, "ghost", -1)  # its lease is gone
            assert not await second.complete(job_id, "b", -1)
            assert await first.complete(job_id, "a", 1)

    async def test_a_taken_over_job_runs_to_one_result(
        self, queues: Callable[[str], JobQueue], redis_url: str, task_log: Path
    ) -> None:
        """Two workers find a dead worker's job: it runs once more, one result is stored."""
        one, two = queues(redis_url), queues(redis_url)
        job_id = await one.submit(queue_tasks.add.call(5, 5, 0.3))
        assert await one.store.claim("dead-worker", kinds=None, lease=0.05) is not None
        await asyncio.sleep(0.1)
        async with open_worker(one, concurrency=2), open_worker(two, concurrency=2):
            assert await one.result(job_id, timeout=10) == 10
            await asyncio.sleep(0.3)  # time for a second run to show, if there were one
        assert starts(task_log) == collections.Counter({"5": 1})
        record = await one.status(job_id)
        assert (record.state, record.attempts) == (JobState.COMPLETED, 2)

    async def test_a_live_long_job_is_never_taken_over(
        self, queues: Callable[[str], JobQueue], redis_url: str, task_log: Path
    ) -> None:
        """Heartbeats keep a 2 s job under a 0.6 s lease: another worker waits, not steals."""
        one, two = queues(redis_url), queues(redis_url)
        job_id = await one.submit(queue_tasks.add.call(1, 2, 2.0))
        async with open_worker(one, lease=0.6):
            await wait_for(one, lambda s: s.running == 1, within=10)
            async with open_worker(two, lease=0.6):
                assert await one.result(job_id, timeout=10) == 3
        assert starts(task_log) == collections.Counter({"1": 1})
        assert (await one.status(job_id)).attempts == 1

    async def test_a_poison_job_goes_to_the_dead_letter_stream(self, queue: JobQueue) -> None:
        """A job whose worker dies on every attempt goes dead, and into the dead letters."""
        job_id = await queue.submit(queue_tasks.add.call(1, 1), max_attempts=2)
        store = store_of(queue)
        for ghost in ("ghost-1", "ghost-2"):
            assert await store.claim(ghost, kinds=None, lease=0.05) is not None
            await asyncio.sleep(0.1)
        assert await store.claim("w", kinds=None, lease=30) is None
        record = await queue.status(job_id)
        assert (record.state, record.error_type) == (JobState.DEAD, "WorkerLost")
        assert "ghost-2" in (record.error or "")
        [letter] = await store.dead_letters()
        assert (letter["id"], letter["error_type"]) == (job_id, "WorkerLost")
        assert (await queue.statistics()).dead == 1
        assert await queue.purge(older_than=0) == 1
        assert await store.dead_letters() == []


class TestDurability:
    async def test_queued_jobs_survive_a_redis_restart(
        self, tmp_path: Path, queues: Callable[[str], JobQueue]
    ) -> None:
        """kill -9 Redis (AOF on) and start it again: queued jobs, keys and order are there."""
        with RedisServer(appendonly=True, directory=tmp_path) as server:
            queue = queues(server.url)
            ids = [
                await queue.submit(queue_tasks.add.call(i, 0), priority=i % 3) for i in range(30)
            ]
            keyed = await queue.submit(queue_tasks.add.call(99, 0), idempotency_key="once")
            later = await queue.submit(queue_tasks.add.call(98, 0), run_at=time.time() + 3600)
            before = await queue.statistics()
            await queue.aclose()
            server.restart(kill=True)
            queue = queues(server.url)
            assert await queue.statistics() == before
            assert (await queue.statistics()).pending == 31
            assert await queue.submit(queue_tasks.add.call(0, 0), idempotency_key="once") == keyed
            first = await queue.store.claim("w", kinds=None, lease=30)
            assert first is not None
            assert first.payload["a"] == 2  # the oldest job of the highest priority
            assert await queue.store.complete(first.id, "w", 2)
            async with open_worker(queue, concurrency=4):
                results = [await queue.result(i, timeout=20) for i in ids]
            assert results == list(range(30))
            assert (await queue.status(later)).state is JobState.PENDING

    async def test_a_worker_rides_out_a_redis_restart(
        self, tmp_path: Path, queues: Callable[[str], JobQueue]
    ) -> None:
        """A worker process keeps going across a Redis kill -9 and restart; nothing is lost."""
        log = tmp_path / "tasks.log"
        with RedisServer(appendonly=True, directory=tmp_path) as server:
            queue = queues(server.url)
            ids = [await queue.submit(queue_tasks.add.call(i, 0, 0.05)) for i in range(40)]
            worker = worker_process(server.url, log, "--concurrency", "2", "--lease", "5")
            await wait_for(queue, lambda s: s.completed >= 5)
            await queue.aclose()
            server.restart(kill=True)
            queue = queues(server.url)
            await wait_for(queue, lambda s: s.completed == 40)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0
            assert [(await queue.status(i)).result for i in ids] == list(range(40))
            assert set(starts(log)) == {str(i) for i in range(40)}
            assert (await queue.statistics()).dead == 0

    async def test_a_worker_started_before_redis_waits_for_it(
        self, tmp_path: Path, queues: Callable[[str], JobQueue]
    ) -> None:
        """Redis not up yet (a compose file's order, a failover): the worker says it is
        waiting, keeps waiting, and serves once Redis answers; a stop while it waits
        ends it cleanly (exit 0)."""
        log = tmp_path / "tasks.log"
        output = tmp_path / "worker.log"
        with RedisServer(directory=tmp_path) as server:
            server.stop()
            worker = worker_process(server.url, log, "--lease", "5", output=output)
            deadline = time.monotonic() + 20
            while "waiting for it" not in output.read_text():
                assert worker.poll() is None, output.read_text()
                assert time.monotonic() < deadline, output.read_text()
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            assert worker.poll() is None, output.read_text()  # still waiting, not exited
            server.start()
            queue = queues(server.url)
            job = await queue.submit(queue_tasks.add.call(2, 3))
            assert await queue.result(job, timeout=30) == 5
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0
            server.stop()
            idle = worker_process(server.url, log, output=tmp_path / "idle.log")
            while "waiting for it" not in (tmp_path / "idle.log").read_text():
                assert idle.poll() is None
                await asyncio.sleep(0.05)
            idle.send_signal(signal.SIGTERM)
            assert idle.wait(20) == 0


async def test_four_worker_processes_run_2000_jobs_once_each(
    redis_url: str, tmp_path: Path, queues: Callable[[str], JobQueue]
) -> None:
    """4 worker processes x 2,000 jobs: 2,000 results, none lost, none run twice."""
    log = tmp_path / "tasks.log"
    queue = queues(redis_url)
    ids: list[str] = []
    for chunk in range(0, 2000, 200):
        calls = [queue.submit(queue_tasks.add.call(i, 1)) for i in range(chunk, chunk + 200)]
        ids += await asyncio.gather(*calls)
    workers = [worker_process(redis_url, log, "--concurrency", "8") for _ in range(4)]
    await wait_for(queue, lambda s: s.completed == 2000 and s.workers == 4, within=240)
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    assert [w.wait(20) for w in workers] == [0, 0, 0, 0]
    assert starts(log) == collections.Counter(str(i) for i in range(2000))
    records = await asyncio.gather(*(queue.status(i) for i in ids))
    assert [r.result for r in records] == [i + 1 for i in range(2000)]
    stats = await queue.statistics()
    assert (stats.pending, stats.running, stats.dead, stats.retried) == (0, 0, 0, 0)


class TestSecurity:
    async def test_the_password_is_never_shown(
        self, tmp_path: Path, queues: Callable[[str], JobQueue]
    ) -> None:
        """Reprs, URLs, logs and a worker process's output never carry the password."""
        with RedisServer(password=SECRET) as server:
            queue = queues(server.url)
            job_id = await queue.submit(queue_tasks.add.call(1, 1))
            with structlog.testing.capture_logs() as logs:
                async with open_worker(queue):
                    assert await queue.result(job_id, timeout=10) == 2
            shown = [repr(queue), queue.url, repr(queue.store), repr(logs)]
            output = tmp_path / "worker.out"
            process = worker_process(server.url, tmp_path / "tasks.log", output=output)
            second = await queue.submit(queue_tasks.add.call(2, 2))
            assert await queue.result(second, timeout=20) == 4
            process.send_signal(signal.SIGTERM)
            assert process.wait(20) == 0
            shown.append(output.read_text())
            assert "worker_started" in shown[-1]
            for text in shown:
                assert SECRET not in text

    async def test_a_wrong_or_missing_password_says_so(
        self, queues: Callable[[str], JobQueue]
    ) -> None:
        """Refused credentials are an AuthenticationError that names neither password."""
        with RedisServer(password=SECRET) as server:
            wrong = queues(f"redis://:not-{SECRET}@127.0.0.1:{server.port}/0")
            with pytest.raises(asyncgen.AuthenticationError) as refused:
                await wrong.statistics()
            assert SECRET not in str(refused.value)
            missing = queues(f"redis://127.0.0.1:{server.port}/0")
            with pytest.raises(asyncgen.AuthenticationError, match="needs a password"):
                await missing.submit(queue_tasks.add.call(1, 1))

    def test_a_worker_with_a_wrong_password_exits_saying_so(self, tmp_path: Path) -> None:
        """`asyncgen worker` with refused credentials exits 2 with a sentence, no secret."""
        with RedisServer(password=SECRET) as server:
            wrong = f"redis://:{SECRET}-old@127.0.0.1:{server.port}/0"
            env = {**os.environ, "ASYNCGEN_QUEUE_URL": wrong}
            done = subprocess.run(
                asyncgen_argv("worker", "--tasks", "tests.queue_tasks"),
                env={**env, "PYTHONPATH": os.getcwd()},
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        assert done.returncode == 2
        assert "refused the user or password" in done.stderr
        assert "Traceback" not in done.stderr
        assert SECRET not in done.stdout + done.stderr
        assert SECRET not in repr(asyncgen.Settings(queue_url=wrong))

    async def test_a_full_redis_is_a_transient_error_saying_what_to_do(
        self, queues: Callable[[str], JobQueue]
    ) -> None:
        """maxmemory with noeviction: submits fail with a ServerError, nothing is evicted."""
        flags = ["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"]
        with RedisServer(options=flags) as server:
            queue = queues(server.url)
            stored: list[str] = []

            async def fill() -> None:
                for i in range(2000):
                    stored.append(await queue.submit(queue_tasks.shout.call(f"{i}" + "x" * 5000)))

            with pytest.raises(asyncgen.ServerError, match="out of memory") as full:
                await fill()
            assert isinstance(full.value, asyncgen.TransientError)
            assert 0 < len(stored) < 2000
            assert (await queue.statistics()).pending == len(stored)  # none evicted

    async def test_an_unreachable_server_is_a_transient_connection_error(
        self, queues: Callable[[str], JobQueue]
    ) -> None:
        """Nobody listening: ConnectionFailedError (transient, a ConnectionError), fast."""
        with RedisServer() as server:
            port = server.port
        queue = queues(f"redis://:{SECRET}@127.0.0.1:{port}/0")
        with pytest.raises(asyncgen.ConnectionFailedError, match=f"127.0.0.1:{port}") as failed:
            await queue.statistics()
        assert isinstance(failed.value, asyncgen.TransientError | ConnectionError)
        assert SECRET not in str(failed.value)

    async def test_tls(self, tmp_path: Path, queues: Callable[[str], JobQueue]) -> None:
        """rediss:// to a TLS-only server, trusting its CA through ssl_ca_certs."""
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        files = [tmp_path / name for name in ("cert.pem", "key.pem", "ca.pem")]
        cert.cert_chain_pems[0].write_to_path(str(files[0]))
        cert.private_key_pem.write_to_path(str(files[1]))
        ca.cert_pem.write_to_path(str(files[2]))
        tls = (str(files[0]), str(files[1]), str(files[2]))
        with RedisServer(tls=tls) as server:
            queue = queues(f"{server.url}?ssl_ca_certs={files[2]}&queue=tls")
            job_id = await queue.submit(queue_tasks.shout.call("secure"))
            async with open_worker(queue):
                assert await queue.result(job_id, timeout=10) == "SECURE"
            plain = queues(f"redis://127.0.0.1:{server.port}/0")
            with pytest.raises(asyncgen.ConnectionFailedError):
                await plain.statistics()


class TestOptions:
    async def test_results_expire_after_result_ttl(
        self, redis_url: str, queues: Callable[[str], JobQueue]
    ) -> None:
        """With result_ttl=1 a completed record is gone 1 s after it finished."""
        queue = queues(f"{redis_url}&result_ttl=1")
        job_id = await queue.submit(queue_tasks.add.call(1, 1), idempotency_key="k")
        async with open_worker(queue):
            assert await queue.result(job_id, timeout=10) == 2
        assert (await queue.statistics()).completed == 1
        await asyncio.sleep(1.5)
        with pytest.raises(KeyError):
            await queue.status(job_id)
        assert (await queue.statistics()).completed == 0
        assert await queue.submit(queue_tasks.add.call(1, 1), idempotency_key="k") != job_id

    async def test_a_burst_waits_for_a_connection(self, queues: Callable[[str], JobQueue]) -> None:
        """200 concurrent calls through 2 connections all succeed: they queue, not fail."""
        with RedisServer() as server:  # its own, so every connection on it is this queue's
            queue = queues(f"{server.url}?max_connections=2")
            calls = (queue.submit(queue_tasks.add.call(i, 0)) for i in range(200))
            ids = await asyncio.gather(*calls)  # these share round trips (pipelines)
            assert len(set(ids)) == 200
            # Reads do not: 200 at once through two connections.
            states = await asyncio.gather(*(queue.status(job_id) for job_id in ids))
            assert {state.state for state in states} == {JobState.PENDING}
            raw = Redis.from_url(server.url, decode_responses=True)
            clients = await raw.client_list()
            assert len(clients) == 3  # the queue's two and this one
            await raw.aclose()

    async def test_queues_in_one_database_are_separate(
        self, redis_server: RedisServer, queues: Callable[[str], JobQueue]
    ) -> None:
        """?queue= names keep two queues apart on one server."""
        a = queues(f"{redis_server.url}?queue=iso-a")
        b = queues(f"{redis_server.url}?queue=iso-b")
        job_id = await a.submit(queue_tasks.add.call(1, 1))
        assert await b.store.claim("w", kinds=None, lease=30) is None
        with pytest.raises(KeyError):
            await b.status(job_id)
        claimed = await a.store.claim("w", kinds=None, lease=30)
        assert claimed is not None
        assert claimed.id == job_id

    def test_bad_options_are_refused(self) -> None:
        """Bad URLs and option values are ValueErrors that say what to write."""
        with pytest.raises(ValueError, match="result_ttl must be a number of seconds"):
            open_queue("redis://127.0.0.1/0?result_ttl=soon")
        with pytest.raises(ValueError, match=">= 0"):
            open_queue("redis://127.0.0.1/0?result_ttl=-1")
        with pytest.raises(ValueError, match="max_connections must be a whole number >= 1"):
            open_queue("redis://127.0.0.1/0?max_connections=0")
        with pytest.raises(
            ValueError,
            match=re.escape("redis://, rediss://, redis+sentinel:// or redis+cluster://"),
        ):
            RedisStore("http://127.0.0.1:6379")
        with pytest.raises(ValueError, match=r"redis://host:6379/0") as unsupported:
            open_queue(f"postgres://user:{SECRET}@db/jobs")
        assert SECRET not in str(unsupported.value)

    @pytest.mark.parametrize(
        ("url", "said"),
        [
            ("redis://127.0.0.1/0?queu=llm", "unknown option ?queu= in the Redis URL"),
            ("redis://127.0.0.1/zero", "the database in a Redis URL is a number"),
            ("redis://127.0.0.1/0?socket_timeout=soon", "?socket_timeout= in the Redis URL"),
            ("redis://127.0.0.1/0?ssl_ca_certs=/ca.pem", "is a TLS option: use a rediss:// URL"),
            (f"redis://:{SECRET[:6]}@{SECRET[6:]}@127.0.0.1:6379/0", "percent-encode"),
            (f"redis://:{SECRET[:6]}/{SECRET[6:]}@127.0.0.1:6379/0", "percent-encode"),
            (f"redis://:{SECRET[:6]}#{SECRET[6:]}@127.0.0.1:6379/0", "percent-encode"),
        ],
    )
    def test_url_mistakes_are_refused_up_front(self, url: str, said: str) -> None:
        """Typos, a non-numeric database and unencoded passwords fail at open, not on first use."""
        with pytest.raises(ValueError, match=re.escape(said)) as refused:
            open_queue(url)
        assert SECRET[6:] not in str(refused.value)

    def test_a_percent_encoded_password_with_an_at_sign_works(self) -> None:
        """The fix the message suggests: quote the password, and the server accepts it."""
        password = "p@ss/w#rd?" + SECRET
        with RedisServer(password=password) as server:
            quoted = urllib.parse.quote(password, safe="")
            queue = open_queue(f"redis://:{quoted}@127.0.0.1:{server.port}/0")
            assert queue.blocking.statistics().pending == 0
            asyncgen.blocking(queue.aclose)()

    def test_xackdel_is_used_only_where_the_server_has_it(self) -> None:
        """XACKDEL on Redis 8.2+ and Valkey 9.2+; XACK + XDEL on older servers."""
        assert has_xackdel({"redis_version": "8.2.0"})
        assert has_xackdel({"redis_version": "10.0.1"})
        assert not has_xackdel({"redis_version": "8.0.3"})
        assert not has_xackdel({"redis_version": "7.0.15"})
        assert has_xackdel({"redis_version": "7.2.4", "valkey_version": "9.2.0"})
        assert not has_xackdel({"redis_version": "7.2.4", "valkey_version": "8.1.1"})


async def test_a_server_older_than_6_2_is_refused(queues: Callable[[str], JobQueue]) -> None:
    """A server that says it is Redis 6.0 gets UnsupportedServerError, saying to upgrade."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A minimal RESP peer: +OK to everything, INFO says version 6.0.9.
        while line := await reader.readline():
            if not line.startswith(b"*"):
                continue
            words = []
            for _ in range(int(line[1:])):
                await reader.readline()  # $length
                words.append((await reader.readline()).strip().upper())
            if words[0] == b"INFO":
                body = b"# Server\r\nredis_version:6.0.9\r\n"
                writer.write(b"$%d\r\n%s\r\n" % (len(body), body))
            else:
                writer.write(b"+OK\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    queue = queues(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(asyncgen.UnsupportedServerError, match=r"6\.0\.9.*6\.2 or newer"):
        await queue.submit(queue_tasks.add.call(1, 1))
    server.close()
    await server.wait_closed()


def test_a_worker_warns_when_a_durable_wait_can_outlast_its_lease(redis_url: str) -> None:
    """?durable=1 waits up to durable_timeout for a replica on each result write: with a
    3 s lease and the default 5 s, the worker says so when it is made (a Sentinel
    failover test lost jobs this way); with 1 s it says nothing."""
    for timeout, warned in (("", True), ("&durable_timeout=1", False)):
        queue = open_queue(f"{redis_url}&durable=1{timeout}")
        with structlog.testing.capture_logs() as logs:
            asyncgen.queue.Worker(queue, lease=3)
        found = [log for log in logs if log["event"] == "durable_timeout_near_lease"]
        assert bool(found) is warned, logs
