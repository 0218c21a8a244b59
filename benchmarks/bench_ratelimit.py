"""Saturating a provider's rate limit without a 429 storm, in one run.

The simulator (a child process) enforces 600 requests per minute (1 s of burst) on one
model answering in 0.5 s; 300 jobs, so the ideal makespan is jobs / rate = 30 s. Then a
tokens-per-minute variant (60,000 tpm; each job ~100 prompt tokens + max_tokens 100).
Side by side: asyncgen with a configured RateLimiter, asyncgen with concurrency="auto"
and nothing configured, a plain bounded gather with retries (asyncgen at concurrency 32,
no limiter), and openai.AsyncOpenAI with its default retries at concurrency 32.

Targets (issue 4): RateLimiter makespan <= 1.05 x ideal with 429s <= 1 %; auto
<= 1.25 x ideal with 429s <= 5 %.

Run: python benchmarks/bench_ratelimit.py [--jobs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Literal

import openai

import asyncgen
from asyncgen.testing import ModelProfile, SimConfig, SimServer, sim_server

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_report

CONCURRENCY = 32
LATENCY = 0.5
PROMPT = "Summarise this in one line: " + "lorem ipsum " * 30  # ~100 tokens
PARAMS = {"max_tokens": 100}

Run = Callable[[str, int, dict[str, Any]], Coroutine[Any, Any, int]]


async def run_limiter(base_url: str, n: int, limits: dict[str, Any]) -> int:
    limiter = asyncgen.RateLimiter(limits.get("rpm"), limits.get("tpm"))
    async with asyncgen.ChatClient(base_url, max_connections=64, rate_limit=limiter) as client:
        return await failures(client, n, CONCURRENCY)


async def run_auto(base_url: str, n: int, limits: dict[str, Any]) -> int:
    async with asyncgen.ChatClient(base_url, max_connections=64) as client:
        return await failures(client, n, "auto")


async def run_plain(base_url: str, n: int, limits: dict[str, Any]) -> int:
    async with asyncgen.ChatClient(base_url, max_connections=64) as client:
        return await failures(client, n, CONCURRENCY)


async def failures(client: asyncgen.ChatClient, n: int, concurrency: int | Literal["auto"]) -> int:
    jobs = [asyncgen.GenerationJob(model="m", prompt=PROMPT, params=PARAMS) for _ in range(n)]
    results = await asyncgen.generate(
        jobs,
        client=client,
        concurrency=concurrency,
        deadline=None,
    )
    return sum(not r.ok for r in results)


async def run_openai(base_url: str, n: int, limits: dict[str, Any]) -> int:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sim")  # default: 2 retries
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with sem:
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": PROMPT}], max_tokens=100
            )

    outcomes = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    await client.close()
    return sum(isinstance(o, BaseException) for o in outcomes)


CONTENDERS: dict[str, Run] = {
    "asyncgen_rate_limiter": run_limiter,
    "asyncgen_auto": run_auto,
    "plain_gather_with_retries": run_plain,
    "openai_sdk_default_retries": run_openai,
}


def measure(
    run: Run, sim: SimServer, n: int, limits: dict[str, Any], ideal: float
) -> dict[str, Any]:
    sim.reset()
    began = time.perf_counter()
    failed = asyncio.run(run(sim.base_url, n, limits))
    makespan = time.perf_counter() - began
    stats = sim.stats()
    refused = stats["statuses"].get("429", 0)
    return {
        "makespan_s": round(makespan, 2),
        "vs_ideal": round(makespan / ideal, 3),
        "requests": stats["total"],
        "http_429": refused,
        "http_429_share": round(refused / max(1, stats["total"]), 4),
        "failed_jobs": failed,
    }


def scenario(name: str, n: int, limits: dict[str, Any], ideal: float) -> dict[str, Any]:
    profile = ModelProfile(latency=LATENCY, rpm=limits.get("rpm"), tpm=limits.get("tpm"))
    figures: dict[str, Any] = {"limits": limits, "jobs": n, "ideal_s": round(ideal, 2)}
    print(f"[{name}] ideal {ideal:.1f} s")
    with sim_server(SimConfig(default=profile), process=True) as sim:
        for contender, run in CONTENDERS.items():
            figures[contender] = measure(run, sim, n, limits, ideal)
            print(f"  {contender:28} {figures[contender]}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    n = args.jobs
    # The sim charges an estimate at admission and corrects it to the reported usage:
    # prompt at 4 characters a token, and its echo reply "[m] <first 120 characters>".
    tokens_per_job = -(-len(PROMPT) // 4) + -(-len(f"[m] {PROMPT[:120]}") // 4)
    figures = {
        "rpm": scenario("600 rpm", n, {"rpm": 600}, n / 10),
        "tpm": scenario("60,000 tpm", n, {"tpm": 60_000}, n * tokens_per_job / 1000),
        "tokens_per_job": tokens_per_job,
        "targets": {
            "rate_limiter": {"vs_ideal": 1.05, "http_429_share": 0.01},
            "auto": {"vs_ideal": 1.25, "http_429_share": 0.05},
        },
    }
    print(f"wrote {write_report('bench_ratelimit', figures, args.json)}")


if __name__ == "__main__":
    main()
