"""``asyncgen demo``: one prompt, six models, one after another and then all at once."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from ..core._logging import configure_logging
from ..llm import ChatClient, GenerationResult, fan_out
from ..sim import DEFAULT_MODELS, ModelProfile, SimConfig, SimServer
from ._args import number, provider_client
from ._interrupts import run

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
SIM_MODELS = list(DEFAULT_MODELS)  # the models the simulator lists


def add_demo_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``asyncgen demo``."""
    demo = commands.add_parser(
        "demo",
        help="fan one prompt out to 6 models: sequential vs concurrent",
        description="Send one prompt to six models one after another, then all at once, "
        "and print both times and the speedup. Uses OpenRouter when OPENROUTER_API_KEY is "
        "set, otherwise the built-in simulator (and says so). Exits 1 when no model "
        "answered, saying why.",
    )
    demo.add_argument("--prompt", default=PROMPT)
    where = demo.add_mutually_exclusive_group()
    where.add_argument("--sim", action="store_true", help="use the simulator even with a key")
    where.add_argument("--base-url", help="any OpenAI-compatible root (key: $ASYNCGEN_API_KEY)")
    demo.add_argument("--models", help="comma-separated model ids (default: six on OpenRouter)")
    demo.add_argument(
        "--latency", type=number("seconds", zero=True), default=1.0, help="simulated latency scale"
    )
    demo.set_defaults(handler=demo_command)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def _timed(
    make_client: Callable[[], ChatClient], models: list[str], prompt: str, *, one_by_one: bool
) -> tuple[float, list[GenerationResult]]:
    """One phase on a client of its own, so its breakers cannot colour the other phase."""
    async with make_client() as client:
        began = time.perf_counter()
        if one_by_one:
            results = [(await fan_out(prompt, [m], client=client))[0] for m in models]
        else:
            results = await fan_out(prompt, models, client=client)
        return time.perf_counter() - began, results


async def _compare(make_client: Callable[[], ChatClient], models: list[str], prompt: str) -> int:
    sequential, first = await _timed(make_client, models, prompt, one_by_one=True)
    concurrent, results = await _timed(make_client, models, prompt, one_by_one=False)
    for result in results:
        answer = (result.text or "").replace("\n", " ")[:70] if result.ok else repr(result.error)
        _out(f"  {result.model:42} {result.latency:6.2f} s  {answer}")
    ok_first, ok = sum(r.ok for r in first), sum(r.ok for r in results)
    if ok_first + ok == 0:
        causes = sorted({f"{type(r.error).__name__}: {r.error}" for r in first + results})
        _out("no model answered, so there is no speedup to show. Why:")
        for cause in causes[:5]:
            _out(f"  {cause}")
        return 1
    _out(
        f"sequential: {sequential:.2f} s (ok {ok_first}/{len(models)})   concurrent: "
        f"{concurrent:.2f} s (ok {ok}/{len(models)})   speedup: {sequential / concurrent:.1f}x"
    )
    return 0


def demo_command(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code (1 when no model answered)."""
    configure_logging(level="ERROR", stream=sys.stderr)  # the summary says why jobs failed
    models = [m for m in (args.models or "").split(",") if m]
    if args.base_url or (os.environ.get("OPENROUTER_API_KEY", "").strip() and not args.sim):
        where = args.base_url or "OpenRouter (this spends a little credit)"
        models = models or LIVE_MODELS
        _out(f"asyncgen demo: {len(models)} models on {where}")
        provider_client(None, args.base_url)  # a malformed key is refused before anything
        return run(_compare(lambda: provider_client(None, args.base_url), models, args.prompt))
    models = models or SIM_MODELS
    latencies = [(0.5 + 0.2 * i) * args.latency for i in range(len(models))]
    _out(
        "asyncgen demo: no OPENROUTER_API_KEY set, so this runs against the built-in "
        f"simulator (latencies {latencies[0]:g}-{latencies[-1]:g} s); set the key to try "
        "real models"
    )
    config = SimConfig(
        models={
            m: ModelProfile(latency=latency) for m, latency in zip(models, latencies, strict=True)
        }
    )
    with SimServer(config, process=True) as sim:
        return run(_compare(lambda: ChatClient(sim.base_url), models, args.prompt))
