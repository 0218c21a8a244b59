"""Background jobs on Redis: asyncgen's Redis store vs taskiq-redis and Dramatiq, on one
redis-server.

Both run the same no-op task (it returns the time) in worker processes started before
the clock starts; one producer then submits every job (100 in flight; "asyncgen_bulk":
one submit_many call, which taskiq has no equivalent of) and the clock
stops when the last result is back: asyncgen reads every result back with
queue.results(ids) (as users do); taskiq's are counted in Redis every 20 ms (kinder to it
than its own wait_result polling). Then: enqueue-to-start latency of an idle worker
(jobs submitted one at a time, 30 ms apart). Figures: jobs per
second end to end, and how fast the producer submitted. Each system gets the same
per-process concurrency. Writes benchmarks/results/bench_redis.json.

Then the same on a primary with a replica behind three sentinels (plain, and with
?durable=1), as a ratio to the single server (issue 29: within 10 %). Then on a Redis
Cluster of three masters: one queue (one shard serves it) as a ratio to the single
server (target: within 15 %), and three queues on three shards at once (a worker process
and a producer each); with the Redis CPU each job cost, read from the servers' INFO.

Run: python benchmarks/bench_redis.py [--jobs 5000] [--concurrency 32] [--no-sentinel]
[--no-cluster]
(needs redis-server, and the bench extra for the peers: taskiq, taskiq-redis, dramatiq).
Dramatiq is sent to and read back from a thread pool (its client is sync), with
``get_result(block=True)`` per job.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from asyncgen.queue import open_queue, task
from asyncgen.testing import ClusterGroup, RedisServer, SentinelGroup

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import asyncgen_argv, spawn, stop, write_report  # noqa: E402

IN_FLIGHT = 100


@task(name="noop")
async def noop() -> float:
    """Return when it started (epoch seconds)."""
    return time.time()


async def submit_all(
    jobs: int, submit: Callable[[], Awaitable[object]]
) -> tuple[float, list[object]]:
    """Submit ``jobs`` jobs, IN_FLIGHT at a time; return the seconds it took and what each
    submit returned."""
    began = time.perf_counter()
    handles: list[object] = []
    for start in range(0, jobs, IN_FLIGHT):
        handles += await asyncio.gather(*(submit() for _ in range(min(IN_FLIGHT, jobs - start))))
    return time.perf_counter() - began, handles


async def wait_count(count: Callable[[], Awaitable[int]], target: int, what: str) -> None:
    deadline = time.monotonic() + 600
    while (done := await count()) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: only {done} of {target} finished in 600 s")
        await asyncio.sleep(0.02)


async def run_asyncgen_bulk(url: str, jobs: int, workers: int, concurrency: int) -> dict[str, Any]:
    """asyncgen with the producer using submit_many (one round trip per 500 jobs)."""
    return await run_asyncgen(url, jobs, workers, concurrency, bulk=True)


async def run_asyncgen(
    url: str, jobs: int, workers: int, concurrency: int, *, bulk: bool = False, name: str = "bench"
) -> dict[str, Any]:
    queue_url = f"{url}{'&' if '?' in url else '?'}queue={name}"
    queue = open_queue(queue_url)
    queue.register(noop)
    command = asyncgen_argv(
        "worker", queue_url, "--tasks", "bench_redis", "--concurrency", str(concurrency)
    )
    crew = [spawn(command, {"PYTHONPATH": str(HERE)}) for _ in range(workers)]
    try:
        await wait_count(lambda: _workers(queue), workers, "asyncgen workers starting")
        began = time.perf_counter()
        if bulk:
            submitted = time.perf_counter()
            ids = await queue.submit_many(noop.call() for _ in range(jobs))
            submit_s = time.perf_counter() - submitted
        else:
            submit_s, handles = await submit_all(jobs, lambda: queue.submit(noop.call()))
            ids = [str(handle) for handle in handles]
        await queue.results(ids, timeout=600)  # every result read back, as users do
        elapsed = time.perf_counter() - began
    finally:
        stop(crew)
    await queue.aclose()
    return _figures(jobs, elapsed, submit_s)


async def pickup_latency(url: str, jobs: int = 60, gap: float = 0.03) -> dict[str, Any]:
    """Enqueue-to-start for an idle asyncgen worker process: jobs submitted one at a time,
    ``gap`` apart; each no-op returns when it started."""
    queue_url = f"{url}?queue=pickup"
    queue = open_queue(queue_url)
    queue.register(noop)
    command = asyncgen_argv("worker", queue_url, "--tasks", "bench_redis", "--concurrency", "4")
    crew = [spawn(command, {"PYTHONPATH": str(HERE)})]
    delays: list[float] = []
    try:
        await wait_count(lambda: _workers(queue), 1, "asyncgen worker starting")
        await asyncio.sleep(1.0)  # idle
        for _ in range(jobs):
            submitted = time.time()
            job_id = await queue.submit(noop.call())
            started = await queue.result(job_id, timeout=30)
            delays.append(started - submitted)
            await asyncio.sleep(gap)
    finally:
        stop(crew)
    await queue.aclose()
    delays.sort()
    return {
        "jobs": jobs,
        "p50_ms": round(1e3 * delays[len(delays) // 2], 2),
        "p99_ms": round(1e3 * delays[min(len(delays) - 1, int(len(delays) * 0.99))], 2),
    }


async def _workers(queue: Any) -> int:
    return int((await queue.statistics()).workers)


async def run_taskiq(url: str, jobs: int, workers: int, concurrency: int) -> dict[str, Any]:
    os.environ["BENCH_REDIS_URL"] = url
    from _taskiq_app import broker
    from _taskiq_app import noop as taskiq_noop

    raw = Redis.from_url(url, decode_responses=True)
    command = [
        sys.executable,
        "-m",
        "taskiq",
        "worker",
        "_taskiq_app:broker",
        "--workers",
        "1",
        "--max-async-tasks",
        str(concurrency),
        "--no-configure-logging",
    ]
    crew = [
        spawn(command, {"BENCH_REDIS_URL": url, "PYTHONPATH": str(HERE)}) for _ in range(workers)
    ]
    try:
        await wait_count(lambda: _consumers(raw), workers, "taskiq workers starting")
        await broker.startup()
        began = time.perf_counter()
        submit_s, _ = await submit_all(jobs, taskiq_noop.kiq)
        await wait_count(lambda: _results(raw), jobs, "taskiq")
        elapsed = time.perf_counter() - began
        await broker.shutdown()
    finally:
        stop(crew)
    await raw.aclose()
    return _figures(jobs, elapsed, submit_s)


async def run_dramatiq(url: str, jobs: int, workers: int, concurrency: int) -> dict[str, Any]:
    """Dramatiq 2: its Redis broker, results read back with get_result (blocking reads),
    from a thread pool as a sync client would; worker threads = the same concurrency."""
    os.environ["BENCH_REDIS_URL"] = url
    from _dramatiq_app import noop as dramatiq_noop

    command = [
        sys.executable,
        "-m",
        "dramatiq",
        "_dramatiq_app",
        "--processes",
        "1",
        "--threads",
        str(concurrency),
    ]
    crew = [
        spawn(command, {"BENCH_REDIS_URL": url, "PYTHONPATH": str(HERE)}) for _ in range(workers)
    ]
    pool = concurrent.futures.ThreadPoolExecutor(IN_FLIGHT)
    loop = asyncio.get_running_loop()
    try:
        for _ in range(workers):  # every process up: each answers one warm-up job
            warm = await loop.run_in_executor(pool, dramatiq_noop.send)
            await loop.run_in_executor(pool, functools.partial(_dramatiq_result, warm, 60))
        began = time.perf_counter()
        submit_s, messages = await submit_all(
            jobs, lambda: loop.run_in_executor(pool, dramatiq_noop.send)
        )
        await asyncio.gather(
            *(
                loop.run_in_executor(pool, functools.partial(_dramatiq_result, m, 600))
                for m in messages
            )
        )
        elapsed = time.perf_counter() - began
    finally:
        stop(crew)
        pool.shutdown()
    return _figures(jobs, elapsed, submit_s)


def _dramatiq_result(message: Any, seconds: int) -> Any:
    return message.get_result(block=True, timeout=seconds * 1000)


async def _consumers(raw: Redis) -> int:
    """Connections waiting in XREADGROUP: one per taskiq worker process that is ready."""
    return sum(1 for client in await raw.client_list() if client.get("cmd") == "xreadgroup")


async def _results(raw: Redis) -> int:
    return int(await raw.dbsize()) - 1  # every key but the stream is one task's result


def _figures(jobs: int, elapsed: float, submit_s: float) -> dict[str, Any]:
    return {
        "jobs": jobs,
        "seconds": round(elapsed, 3),
        "jobs_per_s": round(jobs / elapsed, 1),
        "submits_per_s": round(jobs / submit_s, 1),
    }


async def run_sentinel(figures: dict[str, Any], jobs: int, concurrency: int) -> None:
    """The same workload on a primary with one replica behind three sentinels: plain,
    and with ?durable=1 (each submit and result confirmed by the replica). Ratios are
    to the single server's figures above."""
    with SentinelGroup(replicas=1, appendonly=False) as group:
        primary = f"redis://127.0.0.1:{group.master_port()}/0"
        raw = Redis.from_url(primary)
        for label, url in (
            ("sentinel", group.url),
            ("sentinel_durable", f"{group.url}?durable=1"),
        ):
            for workers in (1, 4):
                for name, run in (("asyncgen", run_asyncgen), ("asyncgen_bulk", run_asyncgen_bulk)):
                    await raw.flushall()
                    result = await run(url, jobs, workers, concurrency)
                    single = figures[f"{name}_{workers}_workers"]["jobs_per_s"]
                    result["vs_single_server"] = round(result["jobs_per_s"] / single, 3)
                    figures[f"{label}_{name}_{workers}_workers"] = result
                    print(f"{label} {name:8} {workers} worker process(es): {result}", flush=True)
        await raw.aclose()


async def redis_cpu(ports: list[int]) -> float:
    """CPU seconds (user + system) the servers on these ports have used so far."""
    used = 0.0
    for port in ports:
        raw = Redis(port=port)
        info = await raw.info("cpu")
        used += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        await raw.aclose()
    return used


async def run_cluster(figures: dict[str, Any], jobs: int, concurrency: int) -> None:
    """The same workload on a Redis Cluster of three masters (no replicas): one queue
    (its keys in one slot: one shard does the work), then three queues whose slots are on
    the three shards, each with its own worker process and producer, at once."""
    with ClusterGroup(masters=3, replicas=0) as group:
        ports = [server.port for server in group.servers]
        for workers in (1, 4):
            for name, run in (("asyncgen", run_asyncgen), ("asyncgen_bulk", run_asyncgen_bulk)):
                await _flush(ports)
                cpu = await redis_cpu(ports)
                result = await run(group.url, jobs, workers, concurrency)
                result["redis_cpu_ms_per_job"] = round(
                    1e3 * (await redis_cpu(ports) - cpu) / jobs, 4
                )
                single = figures[f"{name}_{workers}_workers"]
                result["vs_single_server"] = round(result["jobs_per_s"] / single["jobs_per_s"], 3)
                figures[f"cluster_one_queue_{name}_{workers}_workers"] = result
                print(
                    f"cluster, one queue: {name:8} {workers} worker process(es): {result}",
                    flush=True,
                )
        names: dict[int, str] = {}
        number = 0
        while len(names) < 3:  # a queue name per shard
            number += 1
            serving = group.master_of(f"asyncgen:{{bench-{number}}}:").port
            names.setdefault(serving, f"bench-{number}")
        await _flush(ports)
        cpu = await redis_cpu(ports)
        began = time.perf_counter()
        shards = await asyncio.gather(
            *(run_asyncgen(group.url, jobs, 1, concurrency, name=name) for name in names.values())
        )
        elapsed = time.perf_counter() - began
        used = await redis_cpu(ports) - cpu
        result = {
            "queues": 3,
            "jobs": 3 * jobs,
            "jobs_per_s": round(3 * jobs / elapsed, 1),
            "per_shard_jobs_per_s": [shard["jobs_per_s"] for shard in shards],
            "redis_cpu_ms_per_job": round(1e3 * used / (3 * jobs), 4),
        }
        figures["cluster_three_queues_1_worker_each"] = result
        print(f"cluster, three queues on three shards: {result}", flush=True)


async def _flush(ports: list[int]) -> None:
    for port in ports:
        raw = Redis(port=port)
        await raw.flushall()
        await raw.aclose()


async def run_all(
    jobs: int, concurrency: int, peer: bool, sentinel: bool, cluster: bool
) -> dict[str, Any]:
    figures: dict[str, Any] = {"concurrency_per_process": concurrency}
    with RedisServer() as server:
        raw = Redis.from_url(server.url)
        contenders = [("asyncgen", run_asyncgen), ("asyncgen_bulk", run_asyncgen_bulk)]
        contenders += [("taskiq", run_taskiq), ("dramatiq", run_dramatiq)] if peer else []
        figures["idle_pickup"] = await pickup_latency(server.url)
        print(f"idle worker pickup (enqueue to start): {figures['idle_pickup']}", flush=True)
        for workers in (1, 4):
            for name, run in contenders:
                await raw.flushall()
                cpu = await redis_cpu([server.port])
                result = await run(server.url, jobs, workers, concurrency)
                used = await redis_cpu([server.port]) - cpu
                result["redis_cpu_ms_per_job"] = round(1e3 * used / jobs, 4)
                figures[f"{name}_{workers}_workers"] = result
                print(f"{name:8} {workers} worker process(es): {result}", flush=True)
        await raw.aclose()
    if sentinel:
        await run_sentinel(figures, jobs, concurrency)
    if cluster:
        await run_cluster(figures, jobs, concurrency)
    for workers in (1, 4):
        ours = figures[f"asyncgen_{workers}_workers"]["jobs_per_s"]
        bulk = figures[f"asyncgen_bulk_{workers}_workers"]["jobs_per_s"]
        for peer_name in ("taskiq", "dramatiq"):
            theirs = figures.get(f"{peer_name}_{workers}_workers")
            if not theirs:
                continue
            ratio, bulk_ratio = ours / theirs["jobs_per_s"], bulk / theirs["jobs_per_s"]
            figures[f"ratio_{peer_name}_{workers}_workers"] = round(ratio, 2)
            figures[f"ratio_bulk_{peer_name}_{workers}_workers"] = round(bulk_ratio, 2)
            print(
                f"{workers} worker process(es): asyncgen / {peer_name} = {ratio:.2f} x "
                f"(with submit_many: {bulk_ratio:.2f} x)"
            )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-peer", action="store_true", help="asyncgen only")
    parser.add_argument("--no-sentinel", action="store_true", help="one server only")
    parser.add_argument("--no-cluster", action="store_true", help="no Redis Cluster rows")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    figures = asyncio.run(
        run_all(
            args.jobs, args.concurrency, not args.no_peer, not args.no_sentinel, not args.no_cluster
        )
    )
    print(f"wrote {write_report('bench_redis', figures, args.json)}")


if __name__ == "__main__":
    main()
