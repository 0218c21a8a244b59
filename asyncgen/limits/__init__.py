"""Limits: how fast requests may go, learned or configured.

The rate limiter (GCRA on requests and tokens) and its Redis-shared twin, the paces that
``concurrency="auto"`` learns from 429s, AIMD on the requests in flight, and the circuit
breaker. Above the core (errors, retry), below the client that uses them.
"""

from ._adaptive import AdaptiveConcurrency
from ._breaker import CircuitBreaker
from ._pacing import AdaptiveRate, PacingStatistics
from ._ratelimit import Booking, RateLimiter
from ._shared_limit import SharedRateLimiter

__all__ = [
    "AdaptiveConcurrency",
    "AdaptiveRate",
    "Booking",
    "CircuitBreaker",
    "PacingStatistics",
    "RateLimiter",
    "SharedRateLimiter",
]
