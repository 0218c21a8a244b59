"""Abort latency: from ``queue.cancel(id)`` of a running job to the moment its run stops,
in a real ``asyncgen worker`` process with the default lease (30 s, a heartbeat every
10 s), on SQLite and on Redis (a redis-server on a loopback port). Target: p99 <= 1 s.
Writes benchmarks/results/bench_abort.json.

Run: python benchmarks/bench_abort.py [--aborts 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from asyncgen.queue import JobQueue, open_queue, task
from asyncgen.testing import RedisServer

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import asyncgen_argv, percentile, write_report  # noqa: E402

LOG_VARIABLE = "ASYNCGEN_BENCH_ABORT_LOG"


@task(name="bench_hold")
async def hold(label: str) -> str:
    """Wait for two minutes; when stopped, log "stopped LABEL <epoch seconds>"."""
    note(f"start {label}")
    try:
        await asyncio.sleep(120)
    except asyncio.CancelledError:
        note(f"stopped {label} {time.time()!r}")
        raise
    return label


def note(line: str) -> None:
    with Path(os.environ[LOG_VARIABLE]).open("a") as log:
        log.write(line + "\n")


def start_worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, LOG_VARIABLE: str(log), "PYTHONPATH": str(HERE)}
    return subprocess.Popen(
        asyncgen_argv("worker", url, "--tasks", "bench_abort", "--concurrency", "4"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def logged(log: Path, prefix: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = log.read_text().splitlines() if log.exists() else []
        for line in lines:
            if line == prefix or line.startswith(prefix + " "):
                return line
        time.sleep(0.005)
    raise RuntimeError(f"no {prefix!r} in {log}")


async def measure(queue: JobQueue, url: str, log: Path, aborts: int) -> dict[str, Any]:
    worker = start_worker(url, log)
    lags = []
    try:
        for i in range(aborts):
            job = await queue.submit(hold.call(f"a{i}"))
            await asyncio.to_thread(logged, log, f"start a{i}")
            await asyncio.sleep(0.05 * (i % 7))  # land at different points of the watch
            began = time.time()
            await queue.cancel(job)
            line = await asyncio.to_thread(logged, log, f"stopped a{i}")
            lags.append(float(line.split()[2]) - began)
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 60)
    return {
        "aborts": aborts,
        "stop_p50_ms": round(statistics.median(lags) * 1000, 1),
        "stop_p99_ms": round(percentile(lags, 0.99) * 1000, 1),
        "stop_max_ms": round(max(lags) * 1000, 1),
    }


async def run_all(aborts: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder, RedisServer() as redis:
        for backend in ("sqlite", "redis"):
            url = f"sqlite:///{folder}/abort.db" if backend == "sqlite" else redis.url
            queue = open_queue(url)
            figures[backend] = await measure(queue, url, Path(folder) / f"{backend}.log", aborts)
            await queue.aclose()
            print(f"{backend:6}: {figures[backend]} (target p99 <= 1000 ms)")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aborts", type=int, default=50)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    figures = asyncio.run(run_all(args.aborts))
    print(f"wrote {write_report('bench_abort', figures, args.json)}")


if __name__ == "__main__":
    main()
