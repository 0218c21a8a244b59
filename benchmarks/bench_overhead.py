"""Client overhead: requests per second and CPU per request at concurrency 64.

The simulator answers at once (zero latency) from a child process, so what is measured
is the client's own cost. Side by side, in one run, on the same protocol (HTTP/1.1):

- raw httpx.AsyncClient + asyncio.Semaphore (no retries, no events);
- openai.AsyncOpenAI(max_retries=0) + asyncio.Semaphore;
- asyncgen.generate with the default retry policy and an event handler (httpx backend);
- asyncgen.generate with backend="aiohttp" (the ``fast`` extra).

Targets (issue 3): asyncgen >= 0.9 x raw httpx; >= 1.5 x the openai SDK; the aiohttp
backend <= 1.5 ms CPU per request, i.e. >= 4 x the openai SDK's throughput.

Run: python benchmarks/bench_overhead.py [--requests 2000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import types
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import openai

import asyncgen
from asyncgen.testing import sim_server

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_report

_sdk_http: types.ModuleType
try:
    import httpx2 as _sdk_http
except ImportError:  # an openai SDK before 3.0
    _sdk_http = httpx

MESSAGES = [{"role": "user", "content": "Say something short."}]


async def bounded(n: int, concurrency: int, one: Callable[[int], Awaitable[object]]) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def guarded(i: int) -> None:
        async with sem:
            await one(i)

    await asyncio.gather(*(guarded(i) for i in range(n)))


async def run_raw_httpx(base_url: str, n: int, concurrency: int) -> int:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one(i: int) -> None:
            response = await client.post(
                f"{base_url}/chat/completions", json={"model": "m", "messages": MESSAGES}
            )
            response.raise_for_status()
            response.json()

        await bounded(n, concurrency, one)
    return n


async def run_openai(base_url: str, n: int, concurrency: int) -> int:
    # The SDK 3.x runs on httpx2, httpx's successor, which has its own Limits type;
    # older SDKs run on httpx.
    limits = _sdk_http.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    http_client = openai.DefaultAsyncHttpxClient(limits=limits)
    client = openai.AsyncOpenAI(
        base_url=base_url, api_key="sim", max_retries=0, http_client=http_client
    )

    async def one(i: int) -> None:
        await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]

    await bounded(n, concurrency, one)
    await client.close()
    return n


def run_asyncgen(backend: str) -> Callable[[str, int, int], Coroutine[Any, Any, int]]:
    async def run(base_url: str, n: int, concurrency: int) -> int:
        events = 0

        def count(event: asyncgen.Event) -> None:
            nonlocal events
            events += 1

        client = asyncgen.ChatClient(
            base_url,
            max_connections=concurrency,
            max_keepalive=concurrency,
            backend=backend,  # type: ignore[arg-type]
        )
        jobs = [asyncgen.GenerationJob(model="m", messages=MESSAGES) for _ in range(n)]
        results = await asyncgen.generate(
            jobs, client=client, concurrency=concurrency, deadline=None, on_event=count
        )
        await client.aclose()
        failed = sum(not r.ok for r in results)
        if failed:
            raise RuntimeError(f"{failed} requests failed: {results[0].error!r}")
        return n

    return run


CONTENDERS: dict[str, Callable[[str, int, int], Coroutine[Any, Any, int]]] = {
    "raw_httpx": run_raw_httpx,
    "openai_sdk": run_openai,
    "asyncgen_httpx": run_asyncgen("httpx"),
    "asyncgen_aiohttp": run_asyncgen("aiohttp"),
}


def measure(name: str, base_url: str, n: int, concurrency: int) -> dict[str, float]:
    run = CONTENDERS[name]
    asyncio.run(run(base_url, min(200, n), concurrency))  # warm up imports and caches
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(run(base_url, n, concurrency))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "requests_per_s": round(n / wall, 1),
        "cpu_ms_per_request": round(cpu / n * 1e3, 3),
        "wall_s": round(wall, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None, help="where to write the figures")
    args = parser.parse_args()
    figures: dict[str, Any] = {"requests": args.requests, "concurrency": args.concurrency}
    with sim_server(process=True) as sim:
        for name in CONTENDERS:
            figures[name] = measure(name, sim.base_url, args.requests, args.concurrency)
            print(f"{name:18} {figures[name]}")
    rps = {name: figures[name]["requests_per_s"] for name in CONTENDERS}
    figures["ratios"] = {
        "asyncgen_httpx_vs_raw_httpx": round(rps["asyncgen_httpx"] / rps["raw_httpx"], 3),
        "asyncgen_httpx_vs_openai": round(rps["asyncgen_httpx"] / rps["openai_sdk"], 3),
        "asyncgen_aiohttp_vs_openai": round(rps["asyncgen_aiohttp"] / rps["openai_sdk"], 3),
        "targets": {
            "vs_raw_httpx": 0.9,
            "vs_openai": 1.5,
            "aiohttp_vs_openai": 4.0,
            "aiohttp_cpu_ms": 1.5,
        },
    }
    print("ratios", figures["ratios"])
    path = write_report("bench_overhead", figures, args.json)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
