"""Client-side rate limiting: requests and tokens per minute, shared by every job on a key.

The promise: set to a provider's published limit, never exceed it in any 1-second window
(OpenAI enforces a per-minute limit as ``rpm / 60`` in any second), so a sliding-window,
fixed-window or token-bucket server all admit everything it sends.

- Requests use GCRA, the Generic Cell Rate Algorithm (ATM Forum; the "leaky bucket as a
  meter"): a theoretical arrival time (TAT) advances ``60 / rpm`` seconds per admitted
  request, and a request may go once the clock is within ``burst`` seconds of the TAT.
  With the default burst of 0, starts are evenly spaced, so no 1-second window holds
  more than ``rpm / 60`` of them.
- Tokens use GCRA for the per-minute average and, because costs vary, a log of the last
  second's bookings as well: spacing alone would let one whole request's tokens over
  the per-second share (the window's first request is never paid for by a gap).
- ``headroom`` (2 %) paces a little under the limit, so that network jitter cannot push
  two starts into one window at the server.
- An unexpected 429 (:meth:`RateLimiter.note_rejected`) lowers the pace a step (5 %,
  at most once per round trip, never under half) and it recovers slowly (1 % of the
  limit per 5 s without a 429): a provider's real limit is often a little under the
  published one, and a stray 429 (a late start) should cost little.

Admission is by reservation: each caller is given the instant it may start and sleeps
until then, so waiters are served in order and never wake together. Token costs are
estimated before a request and corrected with the reported usage after it
(:meth:`RateLimiter.settle`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_HEADROOM",
    "Booking",
    "RateLimiter",
    "RateLimiterStatistics",
]

DEFAULT_BURST = 0.0
DEFAULT_HEADROOM = 0.02
STEP_DOWN = 0.95  # the pace after an unexpected 429, as a share of the pace before it
FLOOR = 0.5  # never slower than half the configured limit
RECOVERY = 0.002  # share of the configured limit regained per second without a 429
WINDOW = 1.0
LOOKAHEAD = 0.2  # seconds ahead a token-costed request may book its start


@dataclass(frozen=True, slots=True)
class RateLimiterStatistics:
    """A snapshot of a RateLimiter: what it admitted, how long callers waited, its pace.

    ``pace`` is the share of the configured limits it currently allows (1.0 until a 429
    lowers it); ``rejections`` counts the 429s that lowered it.
    """

    requests: int
    tokens: int
    waited: float
    pace: float = 1.0
    rejections: int = 0


@dataclass(slots=True)
class Booking:
    """One admitted request: when it may start, and what it was charged.

    Pass it back to :meth:`RateLimiter.settle` with the tokens really used, and to
    :meth:`RateLimiter.note_rejected` if the server refused it anyway.
    """

    start: float  # on the limiter's clock
    delay: float  # seconds from booking to start
    tokens: int
    entry: list[float] | None = None  # its place in the last second's log
    ref: str | None = None  # its entry in a shared limiter's last-second log


class _Gcra:
    """One GCRA meter: a TAT that advances ``cost x interval`` per admission."""

    __slots__ = ("burst", "tat")

    def __init__(self, burst: float) -> None:
        self.burst = burst
        self.tat = float("-inf")

    def earliest(self, now: float) -> float:
        return max(now, self.tat - self.burst)

    def commit(self, start: float, cost: float, interval: float) -> None:
        self.tat = max(self.tat, start) + cost * interval

    def adjust(self, cost: float, interval: float) -> None:
        self.tat += cost * interval


class _SecondLog:
    """The tokens booked to start in the last second, oldest first (starts only grow)."""

    __slots__ = ("entries", "last")

    def __init__(self) -> None:
        self.entries: deque[list[float]] = deque()  # [start, tokens]
        self.last = float("-inf")

    def earliest(self, now: float, cost: float, capacity: float) -> float:
        start = max(now, self.last)
        while self.entries and self.entries[0][0] <= start - WINDOW:
            self.entries.popleft()
        used = sum(entry[1] for entry in self.entries)
        for at, spent in self.entries:  # wait for the oldest to leave until it fits
            if used + cost <= capacity:
                break
            start, used = at + WINDOW, used - spent
        return start

    def commit(self, start: float, cost: float) -> list[float]:
        entry = [start, cost]
        self.entries.append(entry)
        self.last = start
        return entry


class RateLimiter:
    """Limits requests and tokens per minute for everything sent through it.

    Share one instance per API key (give it to the ChatClient), and set it to the
    provider's published limits: it stays under them in every 1-second window.

    Args:
        requests_per_minute: The most requests per minute, or None for no limit.
        tokens_per_minute: The most tokens (prompt + completion) per minute, or None.
        burst: Seconds of requests that may start at once before spacing applies (0:
            evenly spaced). A burst above 0 can exceed ``rpm / 60`` in one second: only
            for a provider known to allow it.
        headroom: The share under the limits to pace at (0.02: 2 %), against jitter.
        clock: Returns now in seconds; default: ``time.monotonic`` (the event loop's
            clock too), so one limiter serves several loops and threads.
        sleep: Waits a number of seconds; default: ``asyncio.sleep``.

    Raises:
        ValueError: A limit that is not positive, a negative burst, or a headroom
            outside 0..0.5.
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        burst: float = DEFAULT_BURST,
        headroom: float = DEFAULT_HEADROOM,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        for name, value in (
            ("requests_per_minute", requests_per_minute),
            ("tokens_per_minute", tokens_per_minute),
        ):
            if value is not None and not 0 < value < float("inf"):
                raise ValueError(f"{name} must be > 0 (or None for no limit), got {value}")
        if not 0 <= burst < float("inf"):
            raise ValueError(f"burst must be >= 0 seconds, got {burst}")
        if not 0 <= headroom <= 0.5:
            raise ValueError(f"headroom must be from 0 to 0.5, got {headroom}")
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.headroom = headroom
        self._requests = _Gcra(burst) if requests_per_minute else None
        self._tokens = _Gcra(0.0) if tokens_per_minute else None
        self._second = _SecondLog()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()  # reservations are arithmetic: safe across loops
        self._admitted = 0
        self._spent_tokens = 0
        self._waited = 0.0
        self._cut_pace = 1.0  # the pace set by the last cut, before recovery
        self._cut_at = float("-inf")
        self._rejections = 0

    async def aclose(self) -> None:
        """Release what the limiter holds (nothing, for a local one)."""

    def __repr__(self) -> str:
        return (
            f"RateLimiter(requests_per_minute={self.requests_per_minute}, "
            f"tokens_per_minute={self.tokens_per_minute})"
        )

    def now(self) -> float:
        """The limiter's clock (monotonic seconds unless a clock was given)."""
        return self._clock() if self._clock else time.monotonic()

    def pace(self, now: float | None = None) -> float:
        """The share of the configured limits allowed now (1.0 unless a 429 lowered it)."""
        current = self.now() if now is None else now
        return min(1.0, self._cut_pace + RECOVERY * max(0.0, current - self._cut_at))

    def _intervals(self, now: float) -> tuple[float, float]:
        """Seconds per request and per token at the current pace, headroom included."""
        share = self.pace(now) / (1 + self.headroom)
        per_request = 60.0 / (self.requests_per_minute * share) if self.requests_per_minute else 0
        per_token = 60.0 / (self.tokens_per_minute * share) if self.tokens_per_minute else 0
        return per_request, per_token

    def book(self, tokens: int = 0, *, now: float | None = None) -> Booking:
        """Book the next start for a request costing ``tokens``.

        The booking is made at once: call :meth:`acquire` unless you do the waiting.
        """
        booked = self._book(tokens, now=now, within=float("inf"))
        assert isinstance(booked, Booking)  # nothing is too far with an infinite horizon
        return booked

    def _book(self, tokens: int, *, now: float | None, within: float) -> Booking | float:
        """Book unless the start is more than ``within`` seconds away; then return the wait."""
        current = self.now() if now is None else now
        with self._lock:
            per_request, per_token = self._intervals(current)
            start, entry = current, None
            if self._requests is not None:
                start = max(start, self._requests.earliest(current))
            if self._tokens is not None and tokens:
                start = max(start, self._tokens.earliest(current))
                start = max(start, self._second.earliest(start, tokens, WINDOW / per_token))
            if start - current > within:
                return start - current
            if self._requests is not None:
                self._requests.commit(start, 1, per_request)
            if self._tokens is not None and tokens:
                self._tokens.commit(start, tokens, per_token)
                entry = self._second.commit(start, tokens)
            self._admitted += 1
            self._spent_tokens += tokens
            self._waited += start - current
        return Booking(start, start - current, tokens, entry)

    def reserve(self, tokens: int = 0, *, now: float | None = None) -> float:
        """Book like :meth:`book` and return only the seconds to wait."""
        return self.book(tokens, now=now).delay

    async def acquire(self, tokens: int = 0) -> Booking:
        """Wait until a request costing ``tokens`` may start; return its booking.

        A request with a token cost books only when its start is near (``LOOKAHEAD``):
        booked far ahead at its estimate, it would keep the estimate's spacing even after
        the requests before it settled at their (usually smaller) real usage.
        """
        horizon = LOOKAHEAD if tokens and self._tokens is not None else float("inf")
        while not isinstance(booked := self._book(tokens, now=None, within=horizon), Booking):
            await self._sleep(booked - horizon / 2)
        booking = booked
        if booking.delay > 0:
            await self._sleep(booking.delay)
        return booking

    def settle(self, booking: Booking, actual: int) -> None:
        """Correct a booked request's token cost once its usage is known."""
        if self._tokens is None or not booking.tokens or actual == booking.tokens:
            return
        with self._lock:
            change = actual - booking.tokens
            self._tokens.adjust(change, self._intervals(self.now())[1])
            if booking.entry is not None:  # out of the last second already: no matter
                booking.entry[1] = max(0.0, booking.entry[1] + change)
            self._spent_tokens += change
            booking.tokens = actual

    def start_after(self, moment: float) -> None:
        """Book nothing to start before ``moment`` (on this limiter's clock)."""
        with self._lock:
            for meter in (self._requests, self._tokens):
                if meter is not None:
                    meter.tat = max(meter.tat, moment + meter.burst)
            self._second.last = max(self._second.last, moment)

    def note_rejected(self, booking: Booking | None = None) -> bool:
        """A request this limiter admitted got a 429: lower the pace a step.

        Args:
            booking: The refused request's booking; a 429 for a request that started
                before the last cut is the same overload, already paid for, and changes
                nothing.

        Returns:
            True when the pace was lowered.
        """
        with self._lock:
            now = self.now()
            if booking is not None and booking.start <= self._cut_at:
                return False
            self._cut_pace = max(FLOOR, self.pace(now) * STEP_DOWN)
            self._cut_at = now
            self._rejections += 1
            return True

    def statistics(self) -> RateLimiterStatistics:
        """Requests admitted, tokens booked, seconds callers were told to wait, the pace."""
        with self._lock:
            return RateLimiterStatistics(
                self._admitted,
                self._spent_tokens,
                self._waited,
                round(self.pace(), 4),
                self._rejections,
            )
