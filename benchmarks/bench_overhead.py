"""Client overhead: requests per second and CPU per request at concurrency 64.

The simulator answers at once (zero latency) from a child process, so what is measured
is the client's own cost. Side by side, in one run, on the same protocol (HTTP/1.1):

- raw httpx.AsyncClient + asyncio.Semaphore (no retries, no events);
- raw aiohttp.ClientSession + asyncio.Semaphore (HTTP/1.1 only; the floor of the fast
  backend's transport);
- openai.AsyncOpenAI(max_retries=0) + asyncio.Semaphore;
- asyncgen.generate with the default retry policy and an event handler (httpx backend);
- asyncgen.generate with backend="aiohttp" (the ``fast`` extra).

Each runs twice: plain HTTP/1.1 (uvicorn), and TLS where the server offers HTTP/2
(hypercorn, ALPN), each client on its default protocol (the simulator counts which).

Targets (issue 3): asyncgen >= 0.9 x raw httpx; >= 1.5 x the openai SDK; the aiohttp
backend <= 1.5 ms CPU per request, i.e. >= 4 x the openai SDK's throughput.
Target (issue 12): the aiohttp backend >= 0.6 x raw aiohttp's throughput.

Run: python benchmarks/bench_overhead.py [--requests 2000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import time
import types
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai

import asyncgen
from asyncgen.testing import SimServer, sim_server

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_report

_sdk_http: types.ModuleType
try:
    import httpx2 as _sdk_http
except ImportError:  # an openai SDK before 3.0
    _sdk_http = httpx

MESSAGES = [{"role": "user", "content": "Say something short."}]


async def bounded(n: int, concurrency: int, one: Callable[[int], Awaitable[object]]) -> int:
    """Run ``one(i)`` for i < n, ``concurrency`` at a time; return how many failed."""
    sem = asyncio.Semaphore(concurrency)

    async def guarded(i: int) -> None:
        async with sem:
            await one(i)

    outcomes = await asyncio.gather(*(guarded(i) for i in range(n)), return_exceptions=True)
    return sum(isinstance(o, BaseException) for o in outcomes)


@dataclass(frozen=True)
class Target:
    """Where to send: the simulator's API root, how to verify TLS, whether h2 is offered."""

    base_url: str
    sim: SimServer
    http2: bool = False

    @property
    def verify(self) -> ssl.SSLContext | bool:
        # A fresh context per client: httpx sets ALPN (h2) on the context it is given,
        # which would make a later HTTP/1.1-only client sharing it negotiate h2.
        return self.sim.verify


# A contender: sends n requests at the given concurrency; returns how many failed.
Run = Callable[[Target, int, int], Coroutine[Any, Any, int]]


async def run_raw_httpx(target: Target, n: int, concurrency: int) -> int:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        limits=limits, timeout=60, http2=target.http2, verify=target.verify
    ) as client:

        async def one(i: int) -> None:
            response = await client.post(
                f"{target.base_url}/chat/completions", json={"model": "m", "messages": MESSAGES}
            )
            response.raise_for_status()
            response.json()

        return await bounded(n, concurrency, one)


async def run_raw_aiohttp(target: Target, n: int, concurrency: int) -> int:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, ssl=target.verify)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            async with session.post(
                f"{target.base_url}/chat/completions", json={"model": "m", "messages": MESSAGES}
            ) as response:
                response.raise_for_status()
                await response.json()

        return await bounded(n, concurrency, one)


async def run_openai(target: Target, n: int, concurrency: int) -> int:
    # The SDK 3.x runs on httpx2, httpx's successor, which has its own Limits type;
    # older SDKs run on httpx.
    limits = _sdk_http.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    http_client = openai.DefaultAsyncHttpxClient(limits=limits, verify=target.verify)
    client = openai.AsyncOpenAI(
        base_url=target.base_url, api_key="sim", max_retries=0, http_client=http_client
    )

    async def one(i: int) -> None:
        await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]

    failed = await bounded(n, concurrency, one)
    await client.close()
    return failed


def run_asyncgen(backend: str) -> Run:
    async def run(target: Target, n: int, concurrency: int) -> int:
        events = 0

        def count(event: asyncgen.Event) -> None:
            nonlocal events
            events += 1

        client = asyncgen.ChatClient(
            target.base_url,
            verify=target.verify,
            max_connections=concurrency,
            max_keepalive=concurrency,
            backend=backend,  # type: ignore[arg-type]
        )
        jobs = [asyncgen.GenerationJob(model="m", messages=MESSAGES) for _ in range(n)]
        results = await asyncgen.generate(
            jobs, client=client, concurrency=concurrency, deadline=None, on_event=count
        )
        await client.aclose()
        return sum(not r.ok for r in results)

    return run


CONTENDERS: dict[str, Run] = {
    "raw_httpx": run_raw_httpx,
    "raw_aiohttp": run_raw_aiohttp,
    "openai_sdk": run_openai,
    "asyncgen_httpx": run_asyncgen("httpx"),
    "asyncgen_aiohttp": run_asyncgen("aiohttp"),
}


def measure(run: Run, target: Target, sim: SimServer, n: int, concurrency: int) -> dict[str, Any]:
    asyncio.run(run(target, min(200, n), concurrency))  # warm up imports and caches
    sim.reset()
    wall, cpu = time.perf_counter(), time.process_time()
    failed = asyncio.run(run(target, n, concurrency))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "failed": failed,
        "requests_per_s": round(n / wall, 1),
        "cpu_ms_per_request": round(cpu / n * 1e3, 3),
        "wall_s": round(wall, 3),
        "http_versions": sim.stats()["http_versions"],
    }


def section(http2: bool, n: int, concurrency: int) -> dict[str, Any]:
    """Every contender against one simulator: plain HTTP/1.1, or TLS offering h2."""
    figures: dict[str, Any] = {}
    with sim_server(process=True, http2=http2) as sim:
        target = Target(sim.base_url, sim, http2)
        for name, run in CONTENDERS.items():
            figures[name] = measure(run, target, sim, n, concurrency)
            print(f"  {name:18} {figures[name]}")
    rps = {name: figures[name]["requests_per_s"] for name in CONTENDERS}
    figures["ratios"] = {
        "asyncgen_httpx_vs_raw_httpx": round(rps["asyncgen_httpx"] / rps["raw_httpx"], 3),
        "asyncgen_httpx_vs_openai": round(rps["asyncgen_httpx"] / rps["openai_sdk"], 3),
        "asyncgen_aiohttp_vs_openai": round(rps["asyncgen_aiohttp"] / rps["openai_sdk"], 3),
        "asyncgen_aiohttp_vs_raw_aiohttp": round(rps["asyncgen_aiohttp"] / rps["raw_aiohttp"], 3),
    }
    print(f"  ratios {figures['ratios']}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None, help="where to write the figures")
    parser.add_argument("--no-tls", action="store_true", help="skip the TLS/h2 section")
    args = parser.parse_args()
    figures: dict[str, Any] = {"requests": args.requests, "concurrency": args.concurrency}
    print("[http/1.1, plain]")
    figures["http1"] = section(False, args.requests, args.concurrency)
    if not args.no_tls:
        print("[tls, server offers h2 (ALPN); each client's default protocol]")
        figures["tls_h2"] = section(True, args.requests, args.concurrency)
    figures["targets"] = {
        "asyncgen_vs_raw_httpx": 0.9,
        "asyncgen_vs_openai": 1.5,
        "aiohttp_vs_openai": 4.0,
        "aiohttp_cpu_ms_per_request": 1.5,
        "asyncgen_aiohttp_vs_raw_aiohttp": 0.6,
    }
    print(f"wrote {write_report('bench_overhead', figures, args.json)}")


if __name__ == "__main__":
    main()
