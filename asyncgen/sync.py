"""Blocking twins of asyncgen's coroutines, for Flask, Django, scripts and Celery.

Each has the same signature as its async original and runs it on asyncgen's one
persistent background loop, so a ChatClient used here keeps its connection pool from
one call to the next::

    client = asyncgen.ChatClient.openrouter()
    results = asyncgen.sync.fan_out("Hello", ["model-a", "model-b"], client=client)
"""

from ._bridge import blocking
from ._gather import gather_bounded as _gather_bounded
from .llm import fan_out as _fan_out
from .llm import generate as _generate

__all__ = ["fan_out", "gather_bounded", "generate"]

fan_out = blocking(_fan_out)
generate = blocking(_generate)
gather_bounded = blocking(_gather_bounded)
