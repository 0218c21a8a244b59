"""Background jobs end to end: submit, run a no-op task, store the result.

For memory://, sqlite:// and redis:// (a redis-server on a loopback port) with 1 and 4
in-process workers (concurrency 8 each):
jobs per second from the first submit to the last stored result, and p50/p99 of the
time from submit to start. Writes benchmarks/results/bench_queue.json.

Run: python benchmarks/bench_queue.py [--jobs 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from asyncgen.queue import JobQueue, Worker, open_queue, task
from asyncgen.testing import RedisServer

sys.path.insert(0, str(Path(__file__).parent))
from _common import percentile, write_report


@task(name="noop")
async def noop() -> float:
    """Return when it started (epoch seconds)."""
    return time.time()


async def measure(queue: JobQueue, jobs: int, workers: int) -> dict[str, Any]:
    queue.register(noop)
    crew = [Worker(queue, concurrency=8, lease=30) for _ in range(workers)]
    running = [asyncio.create_task(w.run()) for w in crew]
    began = time.perf_counter()
    ids = [await queue.submit(noop.call()) for _ in range(jobs)]
    while (await queue.statistics()).completed < jobs:  # noqa: ASYNC110 - polls another store
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - began
    for worker in crew:
        worker.stop()
    await asyncio.gather(*running)
    waits = []
    for job_id in ids:
        record = await queue.status(job_id)
        waits.append(float(record.result) - record.created_at)
    return {
        "jobs": jobs,
        "workers": workers,
        "jobs_per_s": round(jobs / elapsed, 1),
        "submit_to_start_p50_ms": round(statistics.median(waits) * 1000, 2),
        "submit_to_start_p99_ms": round(percentile(waits, 0.99) * 1000, 2),
    }


async def run_all(jobs: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder, RedisServer() as redis:
        for backend in ("memory", "sqlite", "redis"):
            for workers in (1, 4):
                url = {
                    "memory": "memory://",
                    "sqlite": f"sqlite:///{folder}/{workers}.db",
                    "redis": f"{redis.url}?queue=bench-{workers}",
                }[backend]
                queue = open_queue(url)
                figures[f"{backend}_{workers}_workers"] = await measure(queue, jobs, workers)
                await queue.aclose()
                print(f"{backend:7} {workers} worker(s): {figures[f'{backend}_{workers}_workers']}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    figures = asyncio.run(run_all(args.jobs))
    print(f"wrote {write_report('bench_queue', figures, args.json)}")


if __name__ == "__main__":
    main()
