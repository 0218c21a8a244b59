"""Redis behind Sentinel, with real servers on 127.0.0.1: a master, a replica and three
sentinels (``redis-server --sentinel``). The queue, the shared rate limiter and the
response cache take a ``redis+sentinel://`` URL; workers follow the master across a
failover; with ``?durable=1`` no acknowledged submit is lost to one."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import asyncgen
from asyncgen import ReplicationError, open_queue
from asyncgen.core._redis import parse_redis_url
from asyncgen.limits import SharedRateLimiter
from asyncgen.llm.client._cache import open_cache
from asyncgen.llm.client._models import Completion
from asyncgen.queue import open_worker
from asyncgen.testing import SentinelGroup, SimServer
from tests import queue_tasks
from tests.failover import DurableProducer, limited_runs
from tests.processes import worker_process

pytestmark = pytest.mark.sentinel  # run alone (pytest -m sentinel): see pyproject.toml

SECRET = "s3cr3t-sentinel-pw"


class TestUrls:
    def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database(self) -> None:
        target, own = parse_redis_url(
            f"redis+sentinel://:{SECRET}@10.0.0.1,10.0.0.2:26380,[::1]:26381/jobs-master/3"
            "?queue=llm&socket_timeout=2&sentinel_password=sp",
            own=("queue",),
        )
        assert target.sentinel
        assert not target.tls
        assert target.hosts == (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("::1", 26381))
        assert (target.service, target.db, target.password) == ("jobs-master", 3, SECRET)
        assert target.options == {"socket_timeout": 2.0, "sentinel_password": "sp"}
        assert own == {"queue": "llm"}
        assert SECRET not in repr(target)
        assert SECRET not in target.where
        assert (
            target.where == "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,::1:26381/jobs-master"
        )

    def test_one_server_keeps_its_url_for_redis_py(self) -> None:
        target, own = parse_redis_url(
            "rediss://u:p@cache.internal/2?result_ttl=60&ssl_cert_reqs=none", own=("result_ttl",)
        )
        assert (target.hosts, target.db, target.tls, target.sentinel) == (
            (("cache.internal", 6379),),
            2,
            True,
            False,
        )
        assert target.url == "rediss://u:p@cache.internal/2?ssl_cert_reqs=none"
        assert own == {"result_ttl": "60"}

    @pytest.mark.parametrize(
        ("url", "said"),
        [
            ("redis+sentinel://127.0.0.1:26379", "names the master's service after the sentinels"),
            ("redis+sentinel://127.0.0.1:26379/m/zero", "the database in a Redis URL is a number"),
            ("redis+sentinel://127.0.0.1:port/m", "port is a number from 1 to 65535"),
            ("redis+sentinel://h/m?ssl_ca_certs=/ca.pem", "is a TLS option: use a rediss:// URL"),
            ("redis://h/0?sentinel_password=x", "unknown option ?sentinel_password="),
            (f"redis+sentinel://:{SECRET[:6]}@{SECRET[6:]}@h/m", "percent-encode"),
        ],
    )
    def test_mistakes_are_refused_when_the_url_is_given(self, url: str, said: str) -> None:
        for open_one in (open_queue, open_cache, lambda u: SharedRateLimiter(u, name="k")):
            with pytest.raises(ValueError, match=re.escape(said)) as refused:
                open_one(url)
            assert SECRET[6:] not in str(refused.value)

    def test_another_scheme_is_not_a_redis_url(self) -> None:
        said = "not a Redis URL: use redis://, rediss://, redis+sentinel:// or redis+cluster://"
        with pytest.raises(ValueError, match=re.escape(said)):
            SharedRateLimiter("http://127.0.0.1:6379", name="k")

    def test_durable_asks_for_a_number_of_replicas(self) -> None:
        with pytest.raises(ValueError, match=r"durable= is the number of replicas"):
            open_queue("redis://127.0.0.1/0?durable=yes")
        with pytest.raises(ValueError, match=r"durable= is the number of replicas"):
            open_queue("redis://127.0.0.1/0?durable=0")


@pytest.fixture(scope="module")
def group() -> Iterator[SentinelGroup]:
    """A master, a replica and three sentinels, shared by the tests that fail nothing over."""
    with SentinelGroup() as running:
        yield running


async def test_the_queue_runs_on_the_master_sentinel_names(group: SentinelGroup) -> None:
    queue = open_queue(f"{group.url}?queue=plain&durable=1")
    queue.register(queue_tasks.add)
    try:
        ids = [await queue.submit(queue_tasks.add.call(i, 1)) for i in range(10)]
        async with open_worker(queue, concurrency=4):
            assert await queue.results(ids, timeout=20) == [i + 1 for i in range(10)]
        assert repr(queue.store).startswith("RedisStore('redis+sentinel://127.0.0.1:")
    finally:
        await queue.aclose()


async def test_the_limiter_and_the_cache_take_a_sentinel_url(group: SentinelGroup) -> None:
    limiter = SharedRateLimiter(group.url, name="sentinel-key", requests_per_minute=6_000)
    try:
        for _ in range(5):
            await limiter.acquire()
        assert not limiter.falling_back
    finally:
        await limiter.aclose()
    cache = open_cache(group.url)
    answer = Completion(text="kept", model="m", latency=0.1)
    await cache.put("k1", answer)
    assert await cache.get("k1") == answer
    await cache.aclose()


async def test_a_durable_write_that_no_replica_confirms_is_a_replication_error(
    group: SentinelGroup,
) -> None:
    """Asking for more replicas than the group has: the submit is on the master, but not
    confirmed, and says so (within its durable_timeout)."""
    queue = open_queue(f"{group.url}?queue=two&durable=2&durable_timeout=0.2")
    queue.register(queue_tasks.add)
    try:
        began = time.monotonic()
        with pytest.raises(ReplicationError, match="confirmed by 1 of the 2 replica"):
            await queue.submit(queue_tasks.add.call(1, 1))
        assert time.monotonic() - began < 5
    finally:
        await queue.aclose()


JOBS, WORKERS, CONCURRENCY = 2_000, 4, 8


@pytest.mark.timeout(240)
def test_workers_and_a_producer_go_on_across_a_failover(tmp_path: Path) -> None:
    """Four worker processes and a producer (2,000 jobs, submitted in batches of 50 with
    idempotency keys, each batch sent again until it is acknowledged) run while the
    master is killed (SIGKILL). After the promotion every job completes, each result
    stored once; the runs done twice (those in flight at the kill, taken over when their
    3 s lease ran out) are counted, and no worker says more than a warning about it."""
    log = tmp_path / "tasks.log"
    with SentinelGroup(replicas=2) as group:  # one replica is left to confirm writes
        # WAIT (durable_timeout) well inside the 3 s lease: a result write that waits
        # for a replica still resyncing must not outlast its lease (docs/deployment.md)
        url = f"{group.url}?queue=failover&durable=1&durable_timeout=1"
        queue = open_queue(url)
        queue.register(queue_tasks.add)
        outputs = [tmp_path / f"worker-{i}.log" for i in range(WORKERS)]
        workers = [
            worker_process(
                url, log, "--concurrency", str(CONCURRENCY), "--lease", "3", output=output
            )
            for output in outputs
        ]
        ids: list[str] = []
        resent = [0]

        def produce() -> None:
            for start in range(0, JOBS, 50):
                numbers = range(start, start + 50)
                jobs = [queue_tasks.add.call(i, 1000, seconds=0.01) for i in numbers]
                keys = [f"job-{i}" for i in numbers]
                while True:
                    try:
                        ids.extend(queue.blocking.submit_many(jobs, idempotency_keys=keys))
                        break
                    except asyncgen.TransientError:  # the switch: the same batch again
                        resent[0] += 1
                        time.sleep(0.1)
                time.sleep(0.05)

        producer = threading.Thread(target=produce)
        producer.start()
        deadline = time.monotonic() + 60
        while len(ids) < JOBS // 3:
            assert time.monotonic() < deadline, len(ids)
            time.sleep(0.02)
        old = group.kill_master().port
        killed = time.monotonic()
        assert group.wait_for_failover(old) != old
        producer.join(120)
        assert len(ids) == JOBS
        assert len(set(ids)) == JOBS  # a batch sent again made no second job
        results = queue.blocking.results(ids, timeout=120)
        assert results == [i + 1000 for i in range(JOBS)]
        after = time.monotonic() - killed
        assert queue.blocking.statistics().completed == JOBS
        for worker, output in zip(workers, outputs, strict=True):
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0, output.read_text()[-3000:]
        queue.blocking.close()
    runs = Counter(
        line.split()[1] for line in log.read_text().splitlines() if line.startswith("done")
    )
    assert set(runs) == {str(i) for i in range(JOBS)}
    twice = sum(n - 1 for n in runs.values())
    # Run again: those in flight at the kill (their results went with the old master, or
    # could not be written within their lease), and those whose result no replica could
    # confirm while the replica left resynced with the new master. At-least-once: 0-40
    # in the runs here (32 in flight at most); a bug that reran finished jobs would not fit.
    assert twice <= 3 * WORKERS * CONCURRENCY, runs.most_common(5)
    assert after < 90, after
    for output in outputs:
        text = output.read_text()
        assert "Traceback" not in text, text[-3000:]


@pytest.mark.timeout(120)
def test_no_acknowledged_durable_submit_is_lost_to_a_failover() -> None:
    """A producer submits as fast as it can with ?durable=1 while the master is killed:
    every submit that returned an id is on the new master."""
    with SentinelGroup(replicas=2) as group:
        with DurableProducer(f"{group.url}?queue=producer&durable=1") as producer:
            time.sleep(1.0)
            before = len(producer.acknowledged)
            old = group.kill_master().port
            group.wait_for_failover(old)
            time.sleep(1.0)
        acknowledged = len(producer.acknowledged)
        assert before > 20, before  # submits went on before the kill ...
        assert acknowledged > before, (before, acknowledged)  # ... and after it
        assert producer.stored() == acknowledged, producer.refused[:3]


@pytest.mark.timeout(180)
def test_the_shared_limit_holds_across_a_failover(tmp_path: Path, sim: SimServer) -> None:
    """Four `asyncgen run` processes share --rpm 1200 through Sentinel, and the primary is
    killed mid-run: each falls back to its share while no primary answers, then books
    through the new one. The server (a 20-a-second sliding window) refuses (almost)
    nothing, and every job is answered."""
    with SentinelGroup(replicas=2) as group:

        def fail_over(_name: str) -> None:
            group.wait_for_failover(group.kill_master().port)

        lines = limited_runs(tmp_path, sim, group.url, fail_over)
    assert len(lines) == 200
    assert all(line["ok"] for line in lines)
    # Unshared, each process would send the whole 20 a second: ~3/4 refused.
    assert sim.stats()["statuses"].get("429", 0) <= 4  # 2 % of 200
