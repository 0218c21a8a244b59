"""Blocking twins of asyncgen's coroutines, for Flask, Django, scripts and Celery.

Each has the same signature as its async original and runs it on asyncgen's one
persistent background loop, so a ChatClient used here keeps its connection pool from
one call to the next::

    client = asyncgen.ChatClient.openrouter()
    results = asyncgen.sync.fan_out("Hello", ["model-a", "model-b"], client=client)
    for delta in asyncgen.sync.stream(client, "model-a", [{"role": "user", "content": "Hi"}]):
        print(delta, end="", flush=True)
"""

from collections.abc import Iterator
from typing import Any

from ._bridge import blocking, run_blocking
from ._gather import gather_bounded as _gather_bounded
from .llm import ChatClient
from .llm import fan_out as _fan_out
from .llm import generate as _generate

__all__ = ["fan_out", "gather_bounded", "generate", "stream"]

fan_out = blocking(_fan_out)
generate = blocking(_generate)
gather_bounded = blocking(_gather_bounded)


def stream(
    client: ChatClient, model: str, messages: list[dict[str, Any]], **options: Any
) -> Iterator[str]:
    """``client.stream(model, messages, **options)`` from sync code: yields the text
    deltas as they arrive (each taken from asyncgen's loop). Leaving the loop early
    closes the stream."""
    deltas = aiter(client.stream(model, messages, **options))

    async def following() -> str | None:
        try:
            return await anext(deltas)
        except StopAsyncIteration:
            return None

    async def close() -> None:
        await deltas.aclose()  # type: ignore[attr-defined]

    try:
        while (delta := run_blocking(following)) is not None:
            yield delta
    finally:
        run_blocking(close)
