"""Retrying with exponential backoff, jitter, Retry-After and deadline awareness."""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import structlog

from ._context import current_deadline, note_attempt
from ._defaults import DEFAULT_MAX_ATTEMPTS
from ._errors import TransientError

__all__ = [
    "DEFAULT_BASE_DELAY",
    "DEFAULT_JITTER",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_MAX_RETRY_AFTER",
    "DEFAULT_MULTIPLIER",
    "RetryCaller",
    "RetryPolicy",
    "retry",
    "retrying",
]

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_BASE_DELAY = 0.5
DEFAULT_MULTIPLIER = 2.0
DEFAULT_MAX_DELAY = 60.0
DEFAULT_JITTER = 0.1
DEFAULT_MAX_RETRY_AFTER = 300.0

RetryOn = Callable[[BaseException], bool] | type[BaseException] | tuple[type[BaseException], ...]
OnRetry = Callable[[int, float, BaseException], object]

_bind = structlog.contextvars.bind_contextvars
_reset = structlog.contextvars.reset_contextvars
_log = structlog.get_logger("asyncgen.retry")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently to retry a failing call.

    The delay before retry n (1-based) is ``min(base_delay * multiplier ** (n - 1),
    max_delay)``, then stretched by a random factor in ``[1, 1 + jitter)`` so that many
    clients failing together do not come back together.

    Attributes:
        max_attempts: Attempts in all, the first included; 1 means never retry.
        base_delay: Seconds before the first retry.
        multiplier: Growth of the delay from one retry to the next.
        max_delay: Cap on the computed delay, before jitter.
        jitter: Largest extra fraction added to each delay (0.1 means up to 10 %).
        respect_retry_after: Wait what the server asked (Retry-After) instead of the
            computed delay, when it said.
        max_retry_after: The longest server-asked wait we accept; a longer one fails the
            call at once with its error.
        retry_on: Which errors to retry: a predicate, an exception class or a tuple of
            classes. Default: every :class:`~asyncgen.TransientError` (429, 5xx, 408,
            409, timeouts, dropped connections), never a PermanentError (other 4xx, 402,
            a 2xx that is not JSON, a failed validation). To retry more, name them too:
            ``retry_on=(TransientError, InvalidResponseError)``.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_delay: float = DEFAULT_BASE_DELAY
    multiplier: float = DEFAULT_MULTIPLIER
    max_delay: float = DEFAULT_MAX_DELAY
    jitter: float = DEFAULT_JITTER
    respect_retry_after: bool = True
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    retry_on: RetryOn = TransientError

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError(f"max_attempts must be an int, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 (1 = no retry), got {self.max_attempts}")
        for name in ("base_delay", "max_delay", "jitter", "max_retry_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that tries once and never retries."""
        return cls(max_attempts=1)

    def should_retry(self, error: BaseException) -> bool:
        """Return True if ``error`` is one this policy retries."""
        if isinstance(self.retry_on, type | tuple):
            return isinstance(error, self.retry_on)
        return bool(self.retry_on(error))

    def backoff(self, retry_number: int, *, rng: Callable[[], float] = random.random) -> float:
        """Return the computed delay before retry ``retry_number`` (1-based), with jitter."""
        delay = min(self.base_delay * self.multiplier ** (retry_number - 1), self.max_delay)
        return delay * (1.0 + rng() * self.jitter)

    def delays(self, *, rng: Callable[[], float] = random.random) -> Iterator[float]:
        """Yield the planned delays, one per retry (``max_attempts - 1`` of them)."""
        for number in range(1, self.max_attempts):
            yield self.backoff(number, rng=rng)

    def delay_for(
        self, retry_number: int, error: BaseException, *, rng: Callable[[], float] = random.random
    ) -> float | None:
        """Return the delay before retry ``retry_number`` after ``error``.

        Returns:
            Seconds to wait, or None when the server asked for a wait longer than
            ``max_retry_after`` and the call should fail now.
        """
        asked = getattr(error, "retry_after", None) if self.respect_retry_after else None
        if asked is None:
            return self.backoff(retry_number, rng=rng)
        if asked > self.max_retry_after:
            return None
        # Jitter only lengthens the wait, so the server's wish is still honoured.
        return float(asked) * (1.0 + rng() * self.jitter)


class RetryCaller:
    """Calls an async function under a :class:`RetryPolicy`.

    The seams (``sleep``, ``clock``, ``rng``) let tests run the schedule without waiting.

    Args:
        policy: The policy; None means ``RetryPolicy()``.
        sleep: Coroutine function that waits a number of seconds.
        clock: Returns now on the same clock as deadlines (the loop's ``time()``).
        rng: Returns a float in [0, 1) for jitter.
        on_retry: Called as ``on_retry(attempt, delay, error)`` before each wait, where
            ``attempt`` is the number of the attempt that failed; may be async.
    """

    __slots__ = ("_clock", "_on_retry", "_rng", "_sleep", "policy")

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
        rng: Callable[[], float] = random.random,
        on_retry: OnRetry | None = None,
    ) -> None:
        self.policy = policy if policy is not None else RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._on_retry = on_retry

    def __repr__(self) -> str:
        return f"RetryCaller({self.policy!r})"

    async def __call__(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Call ``fn(*args, **kwargs)``, retrying per the policy; return its result.

        Raises:
            BaseException: The last error, when the policy gives up, the error is not
                retryable, the server asks for too long a wait, or the next wait would
                end past the enclosing deadline.
        """
        attempt = 1
        while True:
            note_attempt(attempt)
            tokens = _bind(attempt=attempt)
            try:
                return await fn(*args, **kwargs)
            except Exception as error:
                delay = self._plan(attempt, error)
                if delay is None:
                    raise
                await self._announce(attempt, delay, error)
            finally:
                _reset(**tokens)
            await self._sleep(delay)
            attempt += 1

    def _plan(self, attempt: int, error: Exception) -> float | None:
        policy = self.policy
        if attempt >= policy.max_attempts or not policy.should_retry(error):
            return None
        delay = policy.delay_for(attempt, error, rng=self._rng)
        if delay is None:
            _log.warning(
                "retry_after_too_long",
                error_type=type(error).__name__,
                retry_after=getattr(error, "retry_after", None),
                max_retry_after=policy.max_retry_after,
            )
            return None
        now = self._clock() if self._clock else asyncio.get_running_loop().time()
        if now + delay > current_deadline():
            _log.warning(
                "retry_abandoned_deadline", error_type=type(error).__name__, delay=round(delay, 3)
            )
            return None
        return delay

    async def _announce(self, attempt: int, delay: float, error: Exception) -> None:
        _log.warning(
            "retrying",
            max_attempts=self.policy.max_attempts,
            delay=round(delay, 3),
            error_type=type(error).__name__,
            error=str(error),
        )
        if self._on_retry is not None:
            result = self._on_retry(attempt, delay, error)
            if inspect.isawaitable(result):
                await result


async def retry(
    fn: Callable[..., Awaitable[T]],
    /,
    *args: Any,
    policy: RetryPolicy | None = None,
    **kwargs: Any,
) -> T:
    """Call ``await fn(*args, **kwargs)``, retrying under ``policy``; return its result.

    ``policy`` is the one keyword kept for retry itself; use :class:`RetryCaller` (fully
    typed with ParamSpec) when ``fn`` takes a keyword of that name.

    Args:
        fn: The async function to call.
        *args: Positional arguments for ``fn``.
        policy: The policy; None means ``RetryPolicy()``.
        **kwargs: Keyword arguments for ``fn``.

    Raises:
        TypeError: ``policy`` is not a RetryPolicy.
        BaseException: The call's last error when retrying stops.
    """
    if policy is not None and not isinstance(policy, RetryPolicy):
        raise TypeError(f"policy must be a RetryPolicy, got {type(policy).__name__}")
    return await RetryCaller(policy)(fn, *args, **kwargs)


def retrying(
    policy: RetryPolicy | None = None, **seams: Any
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Decorate an async function so each call retries under ``policy``.

    Args:
        policy: The policy; None means ``RetryPolicy()``.
        **seams: Passed to :class:`RetryCaller` (``sleep``, ``clock``, ``rng``, ``on_retry``).

    Raises:
        TypeError: When used bare (``@retrying`` instead of ``@retrying()``).
    """
    if policy is not None and not isinstance(policy, RetryPolicy):
        raise TypeError("use @retrying() or @retrying(RetryPolicy(...)), with parentheses")
    caller = RetryCaller(policy, **seams)

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await caller(fn, *args, **kwargs)

        return wrapper

    return decorate
