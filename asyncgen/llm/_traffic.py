"""A client's traffic controls: rate limit, pauses, adaptive concurrency, breakers, counters.

Every request on a ChatClient is admitted here first and reported back when it ends, so
whatever one job learns (a 429, a provider's "budget spent" header, a failing model)
holds back every other job on the same key.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from .._adaptive import AdaptiveConcurrency
from .._breaker import DEFAULT_COOL_DOWN, DEFAULT_FAILURE_THRESHOLD, CircuitBreaker
from .._errors import RateLimitedError, TransientError
from .._ratelimit import RateLimiter
from .._retry import DEFAULT_MAX_RETRY_AFTER
from ._hints import estimate_tokens, pause_from_headers
from ._models import Completion

__all__ = ["ClientStatistics", "Traffic"]

_log = structlog.get_logger("asyncgen.client")


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    """A snapshot of a ChatClient's traffic since it was made."""

    requests: int
    succeeded: int
    failed: int
    rate_limited: int
    retries: int
    in_flight: int
    concurrency_limit: int | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float
    paused_seconds: float
    open_circuits: tuple[str, ...]


@dataclass(slots=True)
class Ticket:
    """One admitted request: what to report back when it ends."""

    model: str
    estimate: int
    limiter: RateLimiter | None
    slot: float | None
    max_pause: float = DEFAULT_MAX_RETRY_AFTER


class Traffic:
    """The shared state behind one ChatClient's requests."""

    def __init__(
        self,
        *,
        rate_limit: RateLimiter | None = None,
        breaker_failures: int = DEFAULT_FAILURE_THRESHOLD,
        breaker_cool_down: float = DEFAULT_COOL_DOWN,
    ) -> None:
        self.rate_limit = rate_limit
        self.adaptive: AdaptiveConcurrency | None = None
        self._breaker_settings = (breaker_failures, breaker_cool_down)
        self._breakers: dict[str, CircuitBreaker] = {}
        self._paused_until = 0.0
        self._counts = dict.fromkeys(
            (
                "requests",
                "succeeded",
                "failed",
                "rate_limited",
                "retries",
                "in_flight",
                "prompt",
                "completion",
            ),
            0,
        )
        self._cost = 0.0
        self._paused = 0.0

    def breaker(self, model: str) -> CircuitBreaker:
        """The circuit breaker for ``model`` (made on first use)."""
        found = self._breakers.get(model)
        if found is None:
            failures, cool_down = self._breaker_settings
            found = self._breakers[model] = CircuitBreaker(failures, cool_down, name=model)
        return found

    def pause(self, seconds: float, reason: str, *, limit: float = DEFAULT_MAX_RETRY_AFTER) -> None:
        """Hold every new request on this client for ``seconds``, at most ``limit``.

        The limit is the batch's ``max_retry_after``: a server asking for a longer wait
        fails the job that got it at once, and must not freeze the other jobs longer
        than the policy would ever wait.
        """
        seconds = min(seconds, limit)
        until = time.monotonic() + seconds
        if until > self._paused_until:
            self._paused_until = until
            _log.warning("client_paused", seconds=round(seconds, 3), reason=reason)

    async def _wait_pause(self) -> None:
        while (left := self._paused_until - time.monotonic()) > 0:
            self._paused += left
            await asyncio.sleep(left)

    async def admit(
        self,
        model: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        limiter: RateLimiter | None,
        *,
        max_pause: float = DEFAULT_MAX_RETRY_AFTER,
    ) -> Ticket:
        """Wait until a request may go (breaker, pause, rate limit, concurrency).

        Raises:
            CircuitOpenError: The model's circuit is open.
        """
        breaker = self.breaker(model)
        breaker.before_call()
        try:
            await self._wait_pause()
            estimate = 0
            if limiter is not None:
                if limiter.tokens_per_minute:
                    estimate = estimate_tokens(messages, params)
                await limiter.acquire(estimate)
                await self._wait_pause()  # a 429 may have arrived while we waited
            slot = await self.adaptive.acquire() if self.adaptive is not None else None
        except BaseException:
            breaker.record_neutral()
            raise
        self._counts["requests"] += 1
        self._counts["in_flight"] += 1
        return Ticket(model, estimate, limiter, slot, max_pause)

    def note_headers(self, headers: httpx.Headers, *, max_pause: float) -> None:
        """Pause when a provider's rate-limit headers say the budget is spent."""
        wait = pause_from_headers(headers)
        if wait:
            self.pause(wait, "provider rate-limit headers: budget spent", limit=max_pause)

    def finish(
        self, ticket: Ticket, *, completion: Completion | None, error: BaseException | None
    ) -> None:
        """Report how an admitted request ended."""
        self._counts["in_flight"] -= 1
        breaker = self.breaker(ticket.model)
        overloaded = isinstance(error, RateLimitedError)
        if completion is not None:
            breaker.record_success()
            self._account(ticket, completion)
        elif isinstance(error, TransientError) and not overloaded:
            breaker.record_failure()
        else:
            breaker.record_neutral()
        if error is not None:
            self._counts["failed"] += 1
        if overloaded:
            self._counts["rate_limited"] += 1
            retry_after = getattr(error, "retry_after", None)
            if retry_after:
                self.pause(retry_after, "429 with Retry-After", limit=ticket.max_pause)
        if self.adaptive is not None and ticket.slot is not None:
            self.adaptive.release(ticket.slot, overloaded=overloaded, ok=completion is not None)

    def _account(self, ticket: Ticket, completion: Completion) -> None:
        usage = completion.usage
        self._counts["succeeded"] += 1
        self._counts["prompt"] += usage.prompt_tokens
        self._counts["completion"] += usage.completion_tokens
        self._cost += usage.cost or 0.0
        if ticket.limiter is not None and ticket.estimate:
            ticket.limiter.settle(ticket.estimate, usage.total_tokens or ticket.estimate)

    def count_retry(self) -> None:
        """A job on this client is about to retry."""
        self._counts["retries"] += 1

    def statistics(self) -> ClientStatistics:
        """A frozen snapshot of the counters."""
        c = self._counts
        return ClientStatistics(
            requests=c["requests"],
            succeeded=c["succeeded"],
            failed=c["failed"],
            rate_limited=c["rate_limited"],
            retries=c["retries"],
            in_flight=c["in_flight"],
            concurrency_limit=self.adaptive.limit if self.adaptive is not None else None,
            prompt_tokens=c["prompt"],
            completion_tokens=c["completion"],
            total_tokens=c["prompt"] + c["completion"],
            cost=round(self._cost, 10),
            paused_seconds=round(self._paused, 3),
            open_circuits=tuple(m for m, b in self._breakers.items() if b.state != "closed"),
        )
