"""The legacy report: six models one after another vs all at once.

Against the simulator (a child process), model i answers after 10 + i seconds (times
--scale). Prints time to first and last completion, the estimated sequential time (the
sum of the concurrent latencies), the measured sequential time, the speedup and the
p50/p95 latencies; writes benchmarks/results/bench_generate.json.

--live runs the same against OpenRouter when OPENROUTER_API_KEY is set (costs money).

Run: python benchmarks/bench_generate.py [--scale 0.1] [--live]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncgen
from asyncgen.cli._demo import LIVE_MODELS
from asyncgen.testing import ModelProfile, SimConfig, sim_server

sys.path.insert(0, str(Path(__file__).parent))
from _common import percentile, write_report

SIM_MODELS = [f"sim/model-{i}" for i in range(6)]
PROMPT = "Write a Python function execute_trade(data) for a simple moving-average strategy."


async def concurrent(client: asyncgen.ChatClient, models: list[str]) -> dict[str, Any]:
    finished: list[float] = []
    began = time.perf_counter()

    def note(event: asyncgen.Event) -> None:
        if isinstance(event, asyncgen.JobSucceeded | asyncgen.JobFailed):
            finished.append(time.perf_counter() - began)

    results = await asyncgen.fan_out(PROMPT, models, client=client, on_event=note)
    latencies = [r.latency for r in results if r.ok]
    return {
        "wall_s": round(time.perf_counter() - began, 3),
        "first_completion_s": round(min(finished), 3),
        "last_completion_s": round(max(finished), 3),
        "ok": sum(r.ok for r in results),
        "latencies_s": [round(r.latency, 3) for r in results],
        "estimated_sequential_s": round(sum(latencies), 3),
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
    }


async def sequential(client: asyncgen.ChatClient, models: list[str]) -> float:
    began = time.perf_counter()
    for model in models:
        await asyncgen.fan_out(PROMPT, [model], client=client)
    return time.perf_counter() - began


async def report(client: asyncgen.ChatClient, models: list[str]) -> dict[str, Any]:
    async with client:
        together = await concurrent(client, models)
        one_by_one = await sequential(client, models)
    together["measured_sequential_s"] = round(one_by_one, 3)
    together["speedup"] = round(one_by_one / together["wall_s"], 2)
    return together


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="latency scale (default 1)")
    parser.add_argument("--live", action="store_true", help="use OpenRouter (needs a key)")
    parser.add_argument("--json", type=Path, default=None, help="where to write the figures")
    args = parser.parse_args()
    if args.live:
        if not os.environ.get("OPENROUTER_API_KEY"):
            parser.error("--live needs OPENROUTER_API_KEY in the environment")
        figures = asyncio.run(report(asyncgen.ChatClient.openrouter(), LIVE_MODELS))
        figures["target"] = "openrouter"
    else:
        config = SimConfig(
            models={
                m: ModelProfile(latency=(10 + i) * args.scale) for i, m in enumerate(SIM_MODELS)
            }
        )
        with sim_server(config, process=True) as sim:
            figures = asyncio.run(report(asyncgen.ChatClient(sim.base_url), SIM_MODELS))
        figures["target"] = f"simulator, latencies 10-15 s x {args.scale}"
    for key, value in figures.items():
        print(f"  {key:24} {value}")
    print(f"wrote {write_report('bench_generate', figures, args.json)}")


if __name__ == "__main__":
    main()
