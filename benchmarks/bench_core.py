"""Core toolkit benchmark: scheduling, per-call overhead, memory, and the sync bridge.

Every figure is measured side by side in one run and written to
benchmarks/results/bench_core.json. Targets (issue 2):

- scheduling: gather_bounded makespan <= 1.04 x max(max latency, sum / limit);
- overhead: gather_bounded <= 1.5 x a bare asyncio.Semaphore + gather, per call;
- memory: map_bounded over 1,000,000 items grows peak RSS by < 50 MB;
- sync bridge: blocking twin >= 20 x asyncio.run with a new httpx client per call.

Run: python benchmarks/bench_core.py [--scale 0.1] [--calls 500]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent))

from _common import write_report

import asyncgen
from asyncgen.testing import sim_server

LIMIT = 6
SEED = 20261122


def latencies(scale: float, count: int = 60) -> list[float]:
    """Fixed, deterministic latencies between 0.5 and 2.0 s, times ``scale``."""
    rng = random.Random(SEED)
    return [round(0.5 + 1.5 * rng.random(), 3) * scale for _ in range(count)]


async def fixed_batches(calls: Sequence[Callable[[], Awaitable[object]]], size: int) -> None:
    for start in range(0, len(calls), size):
        await asyncio.gather(*(call() for call in calls[start : start + size]))


async def scheduling(scale: float) -> dict[str, Any]:
    lat = latencies(scale)
    calls = [functools.partial(asyncio.sleep, s) for s in lat]
    bound = max(max(lat), sum(lat) / LIMIT)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncgen.gather_bounded(calls, limit=LIMIT)
    sliding = loop.time() - began
    began = loop.time()
    await fixed_batches(calls, LIMIT)
    batches = loop.time() - began
    return {
        "calls": len(lat),
        "limit": LIMIT,
        "scale": scale,
        "lower_bound_s": round(bound, 4),
        "gather_bounded_s": round(sliding, 4),
        "fixed_batches_s": round(batches, 4),
        "gather_bounded_vs_bound": round(sliding / bound, 4),
        "fixed_batches_vs_bound": round(batches / bound, 4),
        "target_vs_bound": 1.04,
    }


async def noop() -> None:
    return None


async def bare_gather(calls: list[Callable[[], Awaitable[None]]], limit: int) -> None:
    sem = asyncio.Semaphore(limit)

    async def guarded(call: Callable[[], Awaitable[None]]) -> None:
        async with sem:
            await call()

    await asyncio.gather(*(guarded(call) for call in calls))


def best_of(repeats: int, run: Callable[[], Awaitable[object]]) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        asyncio.run(run())  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - began)
    return best


def overhead(count: int = 100_000, limit: int = 64) -> dict[str, Any]:
    calls: list[Callable[[], Awaitable[None]]] = [noop] * count
    bare = best_of(3, lambda: bare_gather(calls, limit))
    ours = best_of(3, lambda: asyncgen.gather_bounded(calls, limit=limit))
    return {
        "calls": count,
        "limit": limit,
        "bare_semaphore_gather_us_per_call": round(bare / count * 1e6, 3),
        "gather_bounded_us_per_call": round(ours / count * 1e6, 3),
        "gather_bounded_vs_bare": round(ours / bare, 3),
        "target_vs_bare": 1.5,
    }


async def echo(item: int) -> int:
    return item


async def map_million(count: int) -> int:
    seen = 0
    async for outcome in asyncgen.map_bounded(echo, range(count), limit=64):
        seen += outcome.index == seen
    return seen


def peak_rss() -> int:
    """This process's peak RSS in bytes.

    VmHWM, not ru_maxrss: on Linux ru_maxrss carries the parent's peak across fork and
    exec, which would charge this child with the parent's 100,000 tasks.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_child(count: int) -> None:
    """Run in a fresh process: print RSS before and peak RSS after, in bytes."""
    before = psutil.Process().memory_info().rss
    began = time.perf_counter()
    seen = asyncio.run(map_million(count))
    elapsed = time.perf_counter() - began
    peak = peak_rss()
    print(json.dumps({"before": before, "peak": peak, "seen": seen, "elapsed": elapsed}))


def memory(count: int = 1_000_000) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    if data["seen"] != count:
        raise RuntimeError(f"map_bounded yielded {data['seen']} in order, expected {count}")
    return {
        "items": count,
        "rss_before_mb": round(data["before"] / 2**20, 1),
        "rss_peak_mb": round(data["peak"] / 2**20, 1),
        "rss_growth_mb": round((data["peak"] - data["before"]) / 2**20, 1),
        "items_per_s": round(count / data["elapsed"]),
        "target_growth_mb": 50,
    }


_client: httpx.AsyncClient | None = None


async def reused_get(url: str) -> int:
    global _client
    if _client is None:
        _client = httpx.AsyncClient()
    return (await _client.get(url)).status_code


async def fresh_get(url: str) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.get(url)).status_code


def sync_bridge(calls: int) -> dict[str, Any]:
    twin = asyncgen.blocking(reused_get)
    # The simulator in its own process: a real loopback HTTP server, off our CPU.
    with sim_server(process=True) as sim:
        url = f"{sim.url}/sim/stats"
        twin(url)  # warm: the client and its connection are made once
        began = time.perf_counter()
        for _ in range(calls):
            twin(url)
        bridged = time.perf_counter() - began
        began = time.perf_counter()
        for _ in range(calls):
            asyncio.run(fresh_get(url))
        naive = time.perf_counter() - began
        if _client is not None:
            asyncgen.blocking(_client.aclose)()
    return {
        "calls": calls,
        "blocking_twin_calls_per_s": round(calls / bridged, 1),
        "naive_asyncio_run_calls_per_s": round(calls / naive, 1),
        "blocking_twin_ms_per_call": round(bridged / calls * 1e3, 3),
        "naive_ms_per_call": round(naive / calls * 1e3, 3),
        "speedup": round(naive / bridged, 2),
        "target_speedup": 20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="latency scale (default 1)")
    parser.add_argument("--calls", type=int, default=500, help="sync bridge calls per side")
    parser.add_argument("--items", type=int, default=1_000_000, help="map_bounded items")
    parser.add_argument("--json", type=Path, default=None, help="where to write the figures")
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    figures = {
        "scheduling": asyncio.run(scheduling(args.scale)),
        "overhead": overhead(),
        "memory": memory(args.items),
        "sync_bridge": sync_bridge(args.calls),
    }
    for section, values in figures.items():
        print(f"\n[{section}]")
        for key, value in values.items():
            print(f"  {key:40} {value}")
    path = write_report("bench_core", figures, args.json)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
