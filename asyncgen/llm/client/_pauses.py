"""Pauses ordered by rate limits, scoped to what is limited: one model, or the whole key.

OpenAI's limits are per model, and OpenRouter's upstream 429s are per model and
provider, so a pause holds back new requests to that model only: a ``fan_out`` to six
models does not stall five healthy ones behind the limited one. One 429 is not a limit:
OpenRouter refuses a share of requests at random while an upstream provider is busy, so a
lone 429 delays only its own request (its Retry-After, by the retry policy). The model
pauses when 429s cluster (:class:`Streaks`: ``CLUSTER_429`` in a row with no answer
between, each within twice the previous one's Retry-After), or at once for a long
Retry-After (``LONG_429``), or on rate-limit headers saying the budget is spent. The
key's whole budget is taken as spent only on evidence: pauses of two or more models
within one window, or a provider header that speaks for the key (OpenRouter's
``X-RateLimit-*``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

import structlog

__all__ = ["BARE_429_PAUSE", "CLUSTER_429", "LONG_429", "Pause", "Pauses", "Streaks"]

BARE_429_PAUSE = 0.25  # seconds a model waits after a 429 that names no Retry-After
CLUSTER_429 = 4  # 429s in a row (no answer between) that make a limit, not a busy moment
LONG_429 = 5.0  # a 429 asking for this many seconds or more pauses its model at once

_log = structlog.get_logger("asyncgen.client")

Scope = Literal["model", "key"]


@dataclass(frozen=True, slots=True)
class Pause:
    """A hold on new requests: for one model or the whole key, until a monotonic time."""

    scope: Scope
    model: str | None
    until: float
    reason: str

    def left(self) -> float:
        """Seconds still to wait (0 once over)."""
        return max(0.0, self.until - time.monotonic())


class Streaks:
    """429s in a row per model: a run grows while each comes within twice the previous
    one's Retry-After (so a retry sent once the wait is over still counts) with no
    answer from the model between, and ends with an answer. (Counting only answers to
    requests sent after the run began catches a real limit sooner, but took random 429s
    for limits: 1.43 x the openai SDK's makespan instead of 1.02 x.)"""

    def __init__(self) -> None:
        self._runs: dict[str, tuple[int, float]] = {}  # model -> (429s, window ends)

    def refused(self, model: str, wait: float) -> int:
        """A 429 for ``model`` asking ``wait`` seconds; returns the run's length."""
        now = time.monotonic()
        count, ends = self._runs.get(model, (0, 0.0))
        count = count + 1 if now <= ends else 1
        self._runs[model] = (count, now + 2 * max(wait, BARE_429_PAUSE))
        return count

    def answered(self, model: str) -> None:
        """An answer from ``model``: its run of 429s is over."""
        self._runs.pop(model, None)


class Pauses:
    """The pauses of one client: per model, and key-wide."""

    def __init__(self) -> None:
        self._models: dict[str, Pause] = {}
        self._key: Pause | None = None
        self.waited = 0.0

    def current(self, model: str) -> Pause | None:
        """The pause that holds ``model`` now (the longer of its own and the key's)."""
        found = [p for p in (self._models.get(model), self._key) if p and p.left() > 0]
        return max(found, key=lambda p: p.until) if found else None

    def order(self, model: str, seconds: float, reason: str, *, scope: Scope) -> Pause | None:
        """Hold ``model`` (or, with scope "key", everything) for ``seconds``.

        A model-scoped order is widened to the key when another model is paused by a
        429 right now: two models limited within one window is the key's budget.

        Returns:
            The pause now in force, or None when an existing one already lasts longer.
        """
        until = time.monotonic() + seconds
        if scope == "model" and any(
            other != model and pause.left() > 0 for other, pause in self._models.items()
        ):
            scope, reason = "key", f"{reason}; other models limited too: the key's budget"
        held = self._key if scope == "key" else self._models.get(model)
        if held is not None and held.until >= until:
            return None
        pause = Pause(scope, None if scope == "key" else model, until, reason)
        if scope == "key":
            self._key = pause
        else:
            self._models[model] = pause
        _log.warning(
            "client_paused",
            scope=scope,
            model=pause.model,
            seconds=round(seconds, 3),
            reason=reason,
        )
        return pause

    async def wait(self, model: str) -> None:
        """Sleep until no pause holds ``model``."""
        while (pause := self.current(model)) is not None:
            left = pause.left()
            self.waited += left
            await asyncio.sleep(left)
