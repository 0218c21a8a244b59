"""Sporadic failures: 200 requests at concurrency 16 against a simulator that refuses a
share of them at random, as OpenRouter does while an upstream provider is busy. asyncgen
(its default retry policy) side by side with the official openai SDK (its default two
retries) in one run: makespan and answers. Targets: asyncgen's makespan <= 1.2 x the
SDK's, at least as many answers. Writes benchmarks/results/bench_sporadic.json.

Scenarios: 15 % 429 with Retry-After 1 s; and mixed faults (5 % each of 429 with
Retry-After 1 s, 500, 503 and 400).

Run: python benchmarks/bench_sporadic.py [--jobs 200] [--concurrency 16] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import openai
from openai import AsyncOpenAI

from asyncgen import ChatClient, generate
from asyncgen.sim import Fault, ModelProfile, SimConfig, SimServer

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import write_report  # noqa: E402

SCENARIOS: dict[str, list[Fault]] = {
    "429_15pct": [Fault(kind="status", status=429, retry_after=1, rate=0.15)],
    "mixed": [
        Fault(kind="status", status=429, retry_after=1, rate=0.05),
        Fault(kind="status", status=500, rate=0.05 / 0.95),
        Fault(kind="status", status=503, rate=0.05 / 0.90),
        Fault(kind="status", status=400, rate=0.05 / 0.85),
    ],
}


async def with_asyncgen(url: str, jobs: int, concurrency: int) -> tuple[float, int]:
    prompts = [{"model": "m", "prompt": f"q{i}"} for i in range(jobs)]
    began = time.perf_counter()
    async with ChatClient(url, max_connections=concurrency) as client:
        results = await generate(prompts, client=client, concurrency=concurrency)
    return time.perf_counter() - began, sum(r.ok for r in results)


async def with_sdk(url: str, jobs: int, concurrency: int) -> tuple[float, int]:
    gate = asyncio.Semaphore(concurrency)
    answered = 0

    async def one(sdk: AsyncOpenAI, i: int) -> None:
        nonlocal answered
        async with gate:
            try:
                await sdk.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": f"q{i}"}]
                )
            except openai.APIError:
                return
            answered += 1

    began = time.perf_counter()
    async with AsyncOpenAI(base_url=url, api_key="sk-sim") as sdk:
        await asyncio.gather(*(one(sdk, i) for i in range(jobs)))
    return time.perf_counter() - began, answered


def run(jobs: int, concurrency: int, latency: float) -> dict[str, Any]:
    figures: dict[str, Any] = {"jobs": jobs, "concurrency": concurrency, "latency": latency}
    for name, faults in SCENARIOS.items():
        row: dict[str, Any] = {}
        for who, measure in (("asyncgen", with_asyncgen), ("openai_sdk", with_sdk)):
            config = SimConfig(default=ModelProfile(latency=latency, faults=faults), seed=7)
            with SimServer(config, process=True) as sim:
                took, answered = asyncio.run(measure(sim.base_url, jobs, concurrency))
            row[who] = {"seconds": round(took, 2), "answered": answered}
        row["makespan_ratio"] = round(row["asyncgen"]["seconds"] / row["openai_sdk"]["seconds"], 2)
        figures[name] = row
        print(
            f"{name:10} asyncgen {row['asyncgen']} | openai SDK {row['openai_sdk']} | "
            f"{row['makespan_ratio']} x (target <= 1.2 x)"
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    figures = run(args.jobs, args.concurrency, args.latency)
    print(f"wrote {write_report('bench_sporadic', figures, args.json)}")


if __name__ == "__main__":
    main()
