"""Generate trading algorithms with several models at once (the legacy job, on asyncgen).

Each selected agent names a model; all of them (six at a time) are asked for a Python
algorithm for the ticker. An answer must define ``execute_trade``, else it fails
validation and is not retried; transient failures are retried with backoff. Algorithms
are saved as files in input order, and the legacy ``progress_callback(percent,
message)`` receives ``MODEL_OK::``, ``MODEL_FAIL::`` and ``PREVIEW::`` messages.

Configuration (environment):
    ASYNCGEN_BASE_URL   an OpenAI-compatible root (e.g. the simulator); else OpenRouter
    OPENROUTER_API_KEY  the key for OpenRouter
    ALGO_GEN_DIR        where algorithms are written (default ./generated_algorithms)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncgen

CONCURRENCY = 6
PROMPT = (
    "Write a self-contained Python trading algorithm for {ticker}. Define a function "
    "`def execute_trade(data):` that returns 'buy', 'sell' or 'hold'. Answer with code only."
)
_CODE_FENCE = re.compile(r"```(?:python)?\n(.*?)```", re.DOTALL)

Agent = str | dict[str, Any]
Progress = Callable[[float, str], object]

_client: asyncgen.ChatClient | None = None


def get_client() -> asyncgen.ChatClient:
    """The shared client: ASYNCGEN_BASE_URL if set, else OpenRouter with its key."""
    global _client
    if _client is None:
        base_url = os.environ.get("ASYNCGEN_BASE_URL")
        if base_url:
            _client = asyncgen.ChatClient(base_url, os.environ.get("ASYNCGEN_API_KEY"))
        elif os.environ.get("OPENROUTER_API_KEY"):
            _client = asyncgen.ChatClient.openrouter()
        else:
            raise RuntimeError("set OPENROUTER_API_KEY, or ASYNCGEN_BASE_URL for a local server")
    return _client


def extract_algorithm(text: str) -> str:
    """Return the code in ``text`` if it defines execute_trade.

    Raises:
        asyncgen.ValidationFailedError: No ``def execute_trade`` in the answer.
    """
    fenced = _CODE_FENCE.search(text)
    code = fenced.group(1) if fenced else text
    if "def execute_trade" not in code:
        raise asyncgen.ValidationFailedError("the answer defines no execute_trade function")
    return code.strip() + "\n"


def _model_of(agent: Agent) -> str:
    return agent if isinstance(agent, str) else str(agent["model_id"])


async def generate_algorithm_async(
    client: asyncgen.ChatClient, model_id: str, prompt_text: str, max_retries: int = 3
) -> str:
    """Ask one model for an algorithm; return its code.

    Raises:
        asyncgen.AsyncGenError: The model failed (after ``max_retries`` attempts for
            transient errors) or its answer failed validation.
    """
    policy = asyncgen.RetryPolicy(max_attempts=max_retries)
    results = await asyncgen.generate(
        [{"model": model_id, "prompt": prompt_text}],
        client=client,
        retry=policy,
        validate=extract_algorithm,
    )
    return _value(results[0])


def _value(result: asyncgen.GenerationResult) -> str:
    if result.error is not None:
        raise result.error
    return str(result.value)


def _save(results: Sequence[asyncgen.GenerationResult], ticker: str) -> list[Path]:
    folder = Path(os.environ.get("ALGO_GEN_DIR", "generated_algorithms")) / ticker
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for result in results:
        if result.ok:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", result.model)
            path = folder / f"{result.index:02d}_{name}.py"
            path.write_text(str(result.value))
            saved.append(path)
    return saved


async def _generate_algorithms_for_agents_async(
    selected_agents: Sequence[Agent], ticker: str, progress_callback: Progress | None = None
) -> bool:
    """Generate one algorithm per agent, six at once; True if at least one succeeded."""
    if not selected_agents:
        raise ValueError("select at least one agent")
    results = await asyncgen.fan_out(
        PROMPT.format(ticker=ticker),
        [_model_of(agent) for agent in selected_agents],
        client=get_client(),
        concurrency=CONCURRENCY,
        validate=extract_algorithm,
        on_event=asyncgen.legacy_progress(progress_callback) if progress_callback else None,
    )
    _save(results, ticker)
    return any(result.ok for result in results)


generate_algorithms_for_agents = asyncgen.blocking(_generate_algorithms_for_agents_async)
