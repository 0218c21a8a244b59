"""Adaptive concurrency: AIMD, as TCP congestion control does it.

The limit grows by one after a full window of successes (one success per slot in use)
and halves when the server says "too many" (a 429), at most once per round trip: a 429
for a request that started before the last cut is the same congestion, already paid for.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

__all__ = [
    "DEFAULT_INITIAL_CONCURRENCY",
    "DEFAULT_MAX_CONCURRENCY",
    "AdaptiveConcurrency",
    "ConcurrencyStatistics",
]

DEFAULT_INITIAL_CONCURRENCY = 4
DEFAULT_MAX_CONCURRENCY = 64


@dataclass(frozen=True, slots=True)
class ConcurrencyStatistics:
    """A snapshot: the current limit, slots in use, and how often the limit moved."""

    limit: int
    in_use: int
    increases: int
    decreases: int


class AdaptiveConcurrency:
    """A semaphore whose size follows AIMD between 1 and ``maximum``.

    Args:
        initial: The starting limit.
        maximum: The most it may grow to.

    Raises:
        ValueError: Unless 1 <= initial <= maximum.
    """

    def __init__(
        self,
        initial: int = DEFAULT_INITIAL_CONCURRENCY,
        maximum: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        if not 1 <= initial <= maximum:
            raise ValueError(f"need 1 <= initial ({initial}) <= maximum ({maximum})")
        self.limit = initial
        self.maximum = maximum
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._successes = 0
        self._last_cut = float("-inf")
        self._increases = 0
        self._decreases = 0

    def __repr__(self) -> str:
        return f"AdaptiveConcurrency(limit={self.limit}, maximum={self.maximum})"

    def seed(self, limit: int) -> None:
        """Set the limit (e.g. from a provider's advertised rate limit), within bounds."""
        self.limit = max(1, min(self.maximum, limit))
        self._wake()

    async def acquire(self) -> float:
        """Wait for a slot; return the start time to pass to :meth:`release`."""
        while self._in_use >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                self._wake()
                raise
        self._in_use += 1
        return time.monotonic()

    def release(self, started: float, *, overloaded: bool = False, ok: bool = True) -> None:
        """Give the slot back, saying whether the request was refused as too many (429)."""
        self._in_use -= 1
        if overloaded:
            if started > self._last_cut:  # once per round trip
                self.limit = max(1, self.limit // 2)
                self._last_cut = time.monotonic()
                self._successes = 0
                self._decreases += 1
        elif ok:
            self._successes += 1
            if self._successes >= self.limit and self.limit < self.maximum:
                self.limit += 1
                self._successes = 0
                self._increases += 1
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self._in_use
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def statistics(self) -> ConcurrencyStatistics:
        """The current limit, slots in use, and the number of increases and cuts."""
        return ConcurrencyStatistics(self.limit, self._in_use, self._increases, self._decreases)
