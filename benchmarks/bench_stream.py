"""Streaming overhead: CPU per streamed token in asyncgen's client.stream() vs the openai
SDK's streaming, against the simulator in a child process (so only the client's CPU is
counted). Target: asyncgen <= 1.0 x the SDK's CPU per token. Writes
benchmarks/results/bench_stream.json.

Run: python benchmarks/bench_stream.py [--streams 30] [--words 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from asyncgen import ChatClient
from asyncgen.sim import ModelProfile, SimConfig, SimServer

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import write_report  # noqa: E402

HI = [{"role": "user", "content": "stream"}]


async def with_asyncgen(url: str, streams: int, backend: str) -> tuple[float, int]:
    client = ChatClient(url, backend=backend)  # type: ignore[arg-type]
    tokens = 0
    began = time.process_time()
    for _ in range(streams):
        async for _delta in client.stream("m", HI):
            tokens += 1
    spent = time.process_time() - began
    await client.aclose()
    return spent, tokens


async def with_openai(url: str, streams: int) -> tuple[float, int]:
    client = AsyncOpenAI(base_url=url, api_key="sim", max_retries=0)
    tokens = 0
    began = time.process_time()
    for _ in range(streams):
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "stream"}], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                tokens += 1
    spent = time.process_time() - began
    await client.close()
    return spent, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=30)
    parser.add_argument("--words", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config = SimConfig(default=ModelProfile(reply="word " * args.words))
    per_token: dict[str, list[float]] = {"asyncgen_httpx": [], "asyncgen_aiohttp": [], "openai": []}
    with SimServer(config, process=True) as sim:
        for _ in range(args.rounds):
            for name in per_token:
                run: Coroutine[Any, Any, tuple[float, int]] = (
                    with_openai(sim.base_url, args.streams)
                    if name == "openai"
                    else with_asyncgen(sim.base_url, args.streams, name.split("_")[1])
                )
                spent, tokens = asyncio.run(run)
                per_token[name].append(1e6 * spent / tokens)
    figures: dict[str, Any] = {"streams": args.streams, "words": args.words}
    for name, values in per_token.items():
        figures[f"{name}_cpu_us_per_token"] = round(statistics.median(values), 2)
        print(f"{name:18} {figures[f'{name}_cpu_us_per_token']:7.2f} us CPU per token (median)")
    for name in ("asyncgen_httpx", "asyncgen_aiohttp"):
        ratio = figures[f"{name}_cpu_us_per_token"] / figures["openai_cpu_us_per_token"]
        figures[f"ratio_{name}_vs_openai"] = round(ratio, 2)
        print(f"{name} / openai SDK = {ratio:.2f} x (target <= 1.0 x)")
    print(f"wrote {write_report('bench_stream', figures)}")


if __name__ == "__main__":
    main()
