"""The dashboard's pages with a big queue: 100,000 jobs (1,000 of them dead) in SQLite and
in Redis; each page fetched 5 times, the median and the slowest printed (target: under
300 ms). Writes benchmarks/results/bench_dashboard.json.

Run: python benchmarks/bench_dashboard.py [--jobs 100000]
(needs redis-server and asyncgen[dashboard]).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from asyncgen.dashboard import create_app
from asyncgen.queue import open_queue, task
from asyncgen.testing import RedisServer

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import write_report  # noqa: E402

PAGES = ("/", "/api/overview", "/jobs", "/jobs?state=pending&page=3", "/jobs?kind=work", "/dead")
DEAD = 1_000


@task(name="work")
async def work(n: int) -> int:
    return n


@task(name="doomed")
async def doomed(n: int) -> None:
    raise RuntimeError(f"doomed {n}")


async def fill(url: str, jobs: int) -> None:
    queue = open_queue(url)
    await queue.submit_many([doomed.call(i) for i in range(DEAD)], max_attempts=1)
    for _ in range(DEAD // 100):
        for record in await queue.store.claim_many("bench", kinds=["doomed"], lease=60, limit=100):
            await queue.store.fail(
                record.id, "bench", error_type="RuntimeError", error="doomed", retry_at=None
            )
    left = jobs - DEAD
    for start in range(0, left, 10_000):
        await queue.submit_many([work.call(i) for i in range(start, min(left, start + 10_000))])
    await queue.aclose()


def measure(url: str) -> dict[str, Any]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(url), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    figures: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=60) as http:
        for page in PAGES:
            times = []
            for _ in range(5):
                began = time.perf_counter()
                http.get(page).raise_for_status()
                times.append(1000 * (time.perf_counter() - began))
            figures[page] = {
                "median_ms": round(statistics.median(times), 1),
                "max_ms": round(max(times), 1),
            }
            print(
                f"  {page:32} median {figures[page]['median_ms']:7.1f} ms, "
                f"max {figures[page]['max_ms']:7.1f} ms",
                flush=True,
            )
    server.should_exit = True
    thread.join(30)
    sock.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    figures: dict[str, Any] = {"jobs": args.jobs, "dead": DEAD}
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/big.db"
        asyncio.run(fill(url, args.jobs))
        print(f"SQLite, {args.jobs} jobs:")
        figures["sqlite"] = measure(url)
    with RedisServer() as server:
        url = f"{server.url}?queue=big"
        began = time.perf_counter()
        asyncio.run(fill(url, args.jobs))
        print(f"Redis, {args.jobs} jobs (filled in {time.perf_counter() - began:.1f} s):")
        figures["redis"] = measure(url)
    print(f"wrote {write_report('bench_dashboard', figures)}")


if __name__ == "__main__":
    main()
