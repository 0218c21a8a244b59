"""``asyncgen demo``: one prompt, six models, one after another and then all at once."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from ..llm import ChatClient, fan_out
from ..sim import ModelProfile, SimConfig, SimServer

__all__ = ["add_demo_parser", "demo_command"]

PROMPT = "In one sentence: why run LLM requests concurrently?"
LIVE_MODELS = [
    "openai/gpt-4o-mini",
    "anthropic/claude-3.5-haiku",
    "google/gemini-2.0-flash-001",
    "meta-llama/llama-3.3-70b-instruct",
    "mistralai/mistral-small-3.1-24b-instruct",
    "deepseek/deepseek-chat",
]
SIM_MODELS = [f"sim/model-{i}" for i in range(6)]


def add_demo_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``asyncgen demo``."""
    demo = commands.add_parser(
        "demo",
        help="fan one prompt out to 6 models: sequential vs concurrent",
        description="Send one prompt to six models one after another, then all at once, "
        "and print both times and the speedup. Uses OpenRouter when OPENROUTER_API_KEY is "
        "set, otherwise the built-in simulator (and says so).",
    )
    demo.add_argument("--prompt", default=PROMPT)
    demo.add_argument("--sim", action="store_true", help="use the simulator even with a key")
    demo.add_argument("--latency", type=float, default=1.0, help="simulated latency scale")
    demo.set_defaults(handler=demo_command)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def _compare(client: ChatClient, models: list[str], prompt: str) -> None:
    async with client:
        began = time.perf_counter()
        for model in models:
            await fan_out(prompt, [model], client=client)
        sequential = time.perf_counter() - began
        began = time.perf_counter()
        results = await fan_out(prompt, models, client=client)
        concurrent = time.perf_counter() - began
    for result in results:
        answer = (result.text or "").replace("\n", " ")[:70] if result.ok else repr(result.error)
        _out(f"  {result.model:42} {result.latency:6.2f} s  {answer}")
    _out(
        f"sequential: {sequential:.2f} s   concurrent: {concurrent:.2f} s   "
        f"speedup: {sequential / concurrent:.1f}x   ok: {sum(r.ok for r in results)}/6"
    )


def demo_command(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    if os.environ.get("OPENROUTER_API_KEY") and not args.sim:
        _out("asyncgen demo: 6 models on OpenRouter (this spends a little credit)")
        asyncio.run(_compare(ChatClient.openrouter(), LIVE_MODELS, args.prompt))
        return 0
    _out(
        "asyncgen demo: no OPENROUTER_API_KEY set, so this runs against the built-in "
        "simulator (latencies 0.5-1.5 s); set the key to try real models"
    )
    scale = max(0.0, args.latency)
    config = SimConfig(models={
        m: ModelProfile(latency=(0.5 + 0.2 * i) * scale) for i, m in enumerate(SIM_MODELS)
    })  # fmt: skip
    with SimServer(config, process=True) as sim:
        asyncio.run(_compare(ChatClient(sim.base_url), SIM_MODELS, args.prompt))
    return 0
