"""Client-side rate limiting: requests and tokens per minute, shared by every job on a key.

Both limits use GCRA, the Generic Cell Rate Algorithm (ATM Forum, as in the "leaky
bucket as a meter"): each limit keeps a theoretical arrival time (TAT) that advances by
``cost x 60 / per_minute`` seconds per admitted request, and a request may go once the
clock is within ``burst`` seconds of the TAT. Admission here is by reservation: each
caller is given the instant it may start and sleeps until then, so waiters are served in
order and never wake together. Token costs are estimated before a request and corrected
with the reported usage after it (:meth:`RateLimiter.settle`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_BURST", "RateLimiter", "RateLimiterStatistics"]

DEFAULT_BURST = 1.0


@dataclass(frozen=True, slots=True)
class RateLimiterStatistics:
    """A snapshot of a RateLimiter: what it admitted and how long callers waited."""

    requests: int
    tokens: int
    waited: float


class _Gcra:
    """One GCRA meter: ``per_minute`` units, ``burst`` seconds of tolerance."""

    __slots__ = ("burst", "interval", "tat")

    def __init__(self, per_minute: float, burst: float) -> None:
        self.interval = 60.0 / per_minute
        self.burst = burst
        self.tat = float("-inf")

    def earliest(self, now: float) -> float:
        return max(now, self.tat - self.burst)

    def commit(self, start: float, cost: float) -> None:
        self.tat = max(self.tat, start) + cost * self.interval

    def adjust(self, cost: float) -> None:
        self.tat += cost * self.interval


class RateLimiter:
    """Limits requests and tokens per minute for everything sent through it.

    Share one instance per API key (give it to the ChatClient). A server's own limits
    are usually a little stricter than advertised: set this a few percent under them.

    Args:
        requests_per_minute: The most requests per minute, or None for no limit.
        tokens_per_minute: The most tokens (prompt + completion) per minute, or None.
        burst: Seconds of traffic that may go at once before spacing applies (1.0 lets
            ``rpm / 60`` requests start together).
        clock: Returns now in seconds; default: the running loop's clock.
        sleep: Waits a number of seconds; default: ``asyncio.sleep``.

    Raises:
        ValueError: A limit that is not positive, or a negative burst.
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        burst: float = DEFAULT_BURST,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        for name, value in (
            ("requests_per_minute", requests_per_minute),
            ("tokens_per_minute", tokens_per_minute),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 (or None for no limit), got {value}")
        if burst < 0:
            raise ValueError(f"burst must be >= 0 seconds, got {burst}")
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._requests = _Gcra(requests_per_minute, burst) if requests_per_minute else None
        self._tokens = _Gcra(tokens_per_minute, burst) if tokens_per_minute else None
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()  # reservations are arithmetic: safe across loops
        self._admitted = 0
        self._spent_tokens = 0
        self._waited = 0.0

    def __repr__(self) -> str:
        return (
            f"RateLimiter(requests_per_minute={self.requests_per_minute}, "
            f"tokens_per_minute={self.tokens_per_minute})"
        )

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    def reserve(self, tokens: int = 0, *, now: float | None = None) -> float:
        """Book the next start for a request costing ``tokens``; return seconds to wait.

        The booking is made at once: call :meth:`acquire` unless you do the waiting.
        """
        current = self._now() if now is None else now
        with self._lock:
            start = current
            if self._requests is not None:
                start = max(start, self._requests.earliest(current))
            if self._tokens is not None and tokens:
                start = max(start, self._tokens.earliest(current))
            if self._requests is not None:
                self._requests.commit(start, 1)
            if self._tokens is not None and tokens:
                self._tokens.commit(start, tokens)
            self._admitted += 1
            self._spent_tokens += tokens
            self._waited += start - current
        return start - current

    async def acquire(self, tokens: int = 0) -> float:
        """Wait until a request costing ``tokens`` may start; return the seconds waited."""
        delay = self.reserve(tokens)
        if delay > 0:
            await self._sleep(delay)
        return delay

    def settle(self, estimated: int, actual: int) -> None:
        """Correct a request's token cost once its usage is known."""
        if self._tokens is None or actual == estimated:
            return
        with self._lock:
            self._tokens.adjust(actual - estimated)
            self._spent_tokens += actual - estimated

    def statistics(self) -> RateLimiterStatistics:
        """Requests admitted, tokens booked and total seconds callers were told to wait."""
        with self._lock:
            return RateLimiterStatistics(self._admitted, self._spent_tokens, self._waited)
