"""Redis Cluster, with real servers on 127.0.0.1: three masters with a replica each
(``redis-server --cluster-enabled yes``). The queue, the shared rate limiter and the
response cache take a ``redis+cluster://`` URL; each queue's keys share one slot, queues
spread over the shards; workers go on when a shard's master is killed and its replica
takes over."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import asyncgen
from asyncgen import ReplicationError, open_queue
from asyncgen.core._redis import parse_redis_url
from asyncgen.limits import SharedRateLimiter
from asyncgen.llm.client._cache import open_cache
from asyncgen.llm.client._models import Completion
from asyncgen.queue import open_worker
from asyncgen.testing import ClusterGroup, RedisServer, SimServer
from tests import queue_tasks
from tests.failover import DurableProducer, limited_runs
from tests.processes import asyncgen_argv, worker_process

pytestmark = pytest.mark.cluster  # run alone (pytest -m cluster): see pyproject.toml

SECRET = "s3cr3t-cluster-pw"


def spread(group: ClusterGroup, count: int) -> list[str]:
    """Queue names whose slots are served by ``count`` different masters."""
    names: dict[int, str] = {}
    number = 0
    while len(names) < count:
        number += 1
        name = f"spread-{number}"
        names.setdefault(group.master_of(f"asyncgen:{{{name}}}:").port, name)
    return list(names.values())


class TestUrls:
    def test_a_cluster_url_names_nodes_to_start_from(self) -> None:
        target, own = parse_redis_url(
            f"redis+cluster://:{SECRET}@10.0.0.1,10.0.0.2:7001,[::1]:7002"
            "?queue=llm&socket_timeout=2",
            own=("queue",),
        )
        assert (target.cluster, target.sentinel, target.tls) == (True, False, False)
        assert target.hosts == (("10.0.0.1", 6379), ("10.0.0.2", 7001), ("::1", 7002))
        assert (target.db, target.password, target.options) == (0, SECRET, {"socket_timeout": 2.0})
        assert own == {"queue": "llm"}
        assert SECRET not in repr(target)
        assert target.where == "redis+cluster://10.0.0.1:6379,10.0.0.2:7001,::1:7002"
        assert parse_redis_url("rediss+cluster://h:7000/0")[0].tls

    @pytest.mark.parametrize(
        ("url", "said"),
        [
            ("redis+cluster://h:7000/2", "a Redis Cluster has database 0 only: drop /2"),
            ("redis+cluster://h:7000?timeout=3", "?timeout= (a wait for a free pooled"),
            (f"redis+cluster://:{SECRET}@h:7000?queu=x", "unknown option ?queu="),
            ("redis+cluster://h:70000", "port is a number from 1 to 65535"),
        ],
    )
    def test_mistakes_are_refused_when_the_url_is_given(self, url: str, said: str) -> None:
        for open_one in (open_queue, open_cache, lambda u: SharedRateLimiter(u, name="k")):
            with pytest.raises(ValueError, match=re.escape(said)) as refused:
                open_one(url)
            assert SECRET not in str(refused.value)

    def test_a_node_of_a_cluster_keeps_its_credentials_and_options(self) -> None:
        target, _ = parse_redis_url(
            f"rediss+cluster://u%40x:{SECRET}%2F@h1:7000?socket_timeout=2&ssl_cert_reqs=none"
        )
        node = target.node("::1", 7003)
        assert (node.cluster, node.tls, node.hosts) == (False, True, (("::1", 7003),))
        assert (node.username, node.password) == ("u@x", f"{SECRET}/")
        again, _ = parse_redis_url(node.url)
        assert (again.hosts, again.username, again.password) == (
            (("::1", 7003),),
            "u@x",
            f"{SECRET}/",
        )
        assert again.options == {"socket_timeout": 2.0, "ssl_cert_reqs": "none"}


@pytest.fixture(scope="module")
def group(cluster_group: ClusterGroup) -> ClusterGroup:
    return cluster_group


async def test_queues_spread_over_the_shards_each_in_one_slot(group: ClusterGroup) -> None:
    """Three queues whose names hash to three masters: each runs its jobs, and every key
    of a queue is on its own master (none on the others)."""
    names = spread(group, 3)
    for offset, name in enumerate(names):
        queue = open_queue(f"{group.url}?queue={name}")
        queue.register(queue_tasks.add)
        try:
            ids = await queue.submit_many([queue_tasks.add.call(i, offset) for i in range(20)])
            async with open_worker(queue, concurrency=4):
                assert await queue.results(ids, timeout=20) == [i + offset for i in range(20)]
            assert (await queue.statistics()).completed == 20
        finally:
            await queue.aclose()
    masters = {name: group.master_of(f"asyncgen:{{{name}}}:").port for name in names}
    assert len(set(masters.values())) == 3
    for server in group.servers[: group.masters]:
        redis = _plain(server)
        for name, port in masters.items():
            keys = redis.keys(f"asyncgen:{{{name}}}:*")
            assert bool(keys) == (server.port == port), (name, server.port, keys[:3])
        redis.close()


async def test_a_durable_write_that_no_replica_confirms_is_a_replication_error(
    group: ClusterGroup,
) -> None:
    """Each shard has one replica: durable=1 is confirmed, durable=2 cannot be and says so
    (the write is on the shard's master)."""
    queue = open_queue(f"{group.url}?queue=durable-one&durable=1")
    queue.register(queue_tasks.add)
    try:
        ids = await queue.submit_many([queue_tasks.add.call(i, 1) for i in range(10)])
        async with open_worker(queue, concurrency=4):
            assert await queue.results(ids, timeout=20) == [i + 1 for i in range(10)]
    finally:
        await queue.aclose()
    queue = open_queue(f"{group.url}?queue=durable-two&durable=2&durable_timeout=0.2")
    queue.register(queue_tasks.add)
    try:
        with pytest.raises(ReplicationError, match="confirmed by 1 of the 2 replica"):
            await queue.submit(queue_tasks.add.call(1, 1))
    finally:
        await queue.aclose()


async def test_the_limiter_and_the_cache_take_a_cluster_url(group: ClusterGroup) -> None:
    limiter = SharedRateLimiter(group.url, name="cluster-key", requests_per_minute=6_000)
    other = SharedRateLimiter(group.url, name="cluster-key", requests_per_minute=6_000)
    try:
        for _ in range(5):
            await limiter.acquire()
            await other.acquire()
        assert not limiter.falling_back
        assert not other.falling_back
    finally:
        await limiter.aclose()
        await other.aclose()
    serving = group.master_of("asyncgen:ratelimit:{cluster-key}")
    assert len(_plain(serving).keys("asyncgen:ratelimit:{cluster-key}*")) >= 2  # one slot
    cache = open_cache(group.url)
    answers = [Completion(text=f"kept {i}", model="m", latency=0.1) for i in range(20)]
    for i, answer in enumerate(answers):  # keys in slots of every shard
        await cache.put(f"k{i}", answer)
    assert [await cache.get(f"k{i}") for i in range(20)] == answers
    await cache.aclose()


def test_the_cli_reads_a_queue_on_a_cluster(group: ClusterGroup) -> None:
    url = f"{group.url}?queue=cli-look"
    queue = open_queue(url)
    queue.register(queue_tasks.add)
    queue.blocking.submit_many([queue_tasks.add.call(i, 0) for i in range(3)])
    queue.blocking.close()
    shown = subprocess.run(
        asyncgen_argv("jobs", "stats", "--queue", url, "--json"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["pending"] == 3


QUEUES, JOBS, BATCH, CONCURRENCY = 3, 600, 25, 8


@pytest.mark.timeout(240)
def test_workers_go_on_when_a_shards_master_fails_over(tmp_path: Path) -> None:
    """Three queues on three shards, a worker process on each and a producer (600 jobs a
    queue, batches of 25 with idempotency keys, each sent again until acknowledged). The
    master of the first queue's shard is killed (SIGKILL) a third of the way in; its
    replica takes over. Every job of every queue completes, each result stored once, and
    the runs done twice are counted and bounded by what was in flight."""
    log = tmp_path / "tasks.log"
    with ClusterGroup(masters=3, replicas=1) as group:
        names = spread(group, QUEUES)
        urls = [f"{group.url}?queue={name}" for name in names]
        queues = [open_queue(url) for url in urls]
        outputs = [tmp_path / f"worker-{name}.log" for name in names]
        workers = [
            worker_process(
                url, log, "--concurrency", str(CONCURRENCY), "--lease", "3", output=output
            )
            for url, output in zip(urls, outputs, strict=True)
        ]
        ids: list[list[str]] = [[] for _ in names]
        resent = [0]

        def produce() -> None:
            for start in range(0, JOBS, BATCH):
                for q, queue in enumerate(queues):
                    numbers = range(q * JOBS + start, q * JOBS + start + BATCH)
                    jobs = [queue_tasks.add.call(i, 1000, seconds=0.01) for i in numbers]
                    keys = [f"job-{i}" for i in numbers]
                    while True:
                        try:
                            ids[q].extend(queue.blocking.submit_many(jobs, idempotency_keys=keys))
                            break
                        except asyncgen.TransientError:  # the switch: the same batch again
                            resent[0] += 1
                            time.sleep(0.1)
                time.sleep(0.1)  # about 2.4 s of submitting: the failover falls inside

        producer = threading.Thread(target=produce)
        producer.start()
        deadline = time.monotonic() + 60
        while len(ids[0]) < JOBS // 3:
            assert time.monotonic() < deadline, len(ids[0])
            time.sleep(0.02)
        prefix = f"asyncgen:{{{names[0]}}}:"
        old = group.kill_master_of(prefix).port
        killed, at_kill = time.monotonic(), len(ids[0])
        assert group.wait_for_failover(prefix, old) != old
        producer.join(120)
        assert at_kill < JOBS - 2 * BATCH  # submits went on to the shard after its master went
        for q, queue in enumerate(queues):
            assert len(ids[q]) == JOBS
            assert len(set(ids[q])) == JOBS  # a batch sent again made no second job
            results = queue.blocking.results(ids[q], timeout=120)
            assert results == [q * JOBS + i + 1000 for i in range(JOBS)]
            assert queue.blocking.statistics().completed == JOBS
        after = time.monotonic() - killed
        for worker, output in zip(workers, outputs, strict=True):
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0, output.read_text()[-3000:]
        for queue in queues:
            queue.blocking.close()
    runs = Counter(
        line.split()[1] for line in log.read_text().splitlines() if line.startswith("done")
    )
    assert set(runs) == {str(i) for i in range(QUEUES * JOBS)}
    twice = sum(n - 1 for n in runs.values())
    # At-least-once: runs in flight on the killed shard when it went (their results went
    # with it, or could not be written within their lease) run again; 8 at most in flight
    # a queue. A bug that reran finished jobs would not fit.
    assert twice <= 3 * CONCURRENCY, runs.most_common(5)
    assert after < 90, after
    for output in outputs:
        text = output.read_text()
        assert "Traceback" not in text, text[-3000:]


def _plain(server: RedisServer) -> Any:
    """A plain client of one node (to look at the keys it holds)."""
    from redis import Redis

    return Redis(port=server.port, decode_responses=True)


@pytest.mark.timeout(180)
def test_the_shared_limit_holds_when_its_shard_fails_over(tmp_path: Path, sim: SimServer) -> None:
    """Four `asyncgen run` processes share --rpm 1200 through a cluster, and the master
    that serves the limit's slot is killed mid-run: each falls back to its share until a
    replica takes over. The server (a 20-a-second sliding window) refuses (almost)
    nothing, and every job is answered."""
    with ClusterGroup(masters=3, replicas=1) as group:

        def fail_over(name: str) -> None:
            key = f"asyncgen:ratelimit:{{{name}}}"
            group.wait_for_failover(key, group.kill_master_of(key).port)

        lines = limited_runs(tmp_path, sim, group.url, fail_over)
    assert len(lines) == 200
    assert all(line["ok"] for line in lines)
    # Unshared, each process would send the whole 20 a second: ~3/4 refused.
    assert sim.stats()["statuses"].get("429", 0) <= 4  # 2 % of 200


@pytest.mark.timeout(120)
def test_no_acknowledged_durable_submit_is_lost_when_a_shard_fails_over() -> None:
    """A producer submits as fast as it can with ?durable=1 while its shard's master is
    killed (two replicas a master, so one is left to confirm writes after the switch):
    every submit that returned an id is on the promoted replica."""
    with ClusterGroup(masters=3, replicas=2) as group:
        with DurableProducer(f"{group.url}?queue=producer&durable=1") as producer:
            time.sleep(1.0)
            before = len(producer.acknowledged)
            prefix = "asyncgen:{producer}:"
            group.wait_for_failover(prefix, group.kill_master_of(prefix).port)
            time.sleep(1.0)
        acknowledged = len(producer.acknowledged)
        assert before > 20, before  # submits went on before the kill ...
        assert acknowledged > before, (before, acknowledged)  # ... and after it
        assert producer.stored() == acknowledged, producer.refused[:3]
