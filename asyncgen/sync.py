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

from .core._bridge import blocking, blocking_iter, iterate_blocking
from .core._gather import gather_bounded as _gather_bounded
from .llm import ChatClient
from .llm import fan_out as _fan_out
from .llm import generate as _generate
from .llm import generate_iter as _generate_iter
from .llm import generate_stream as _generate_stream

__all__ = ["fan_out", "gather_bounded", "generate", "generate_iter", "generate_stream", "stream"]

fan_out = blocking(_fan_out)
generate = blocking(_generate)
generate_iter = blocking_iter(_generate_iter)
generate_stream = blocking_iter(_generate_stream)
gather_bounded = blocking(_gather_bounded)


def stream(
    client: ChatClient, model: str, messages: list[dict[str, Any]], **options: Any
) -> Iterator[str]:
    """``client.stream(model, messages, **options)`` from sync code: yields the text
    deltas as they arrive (each taken from asyncgen's loop). Leaving the loop early
    closes the stream."""
    return iterate_blocking(aiter(client.stream(model, messages, **options)))
