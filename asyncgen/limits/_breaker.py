"""Circuit breaker: stop sending to a model that keeps failing, probe again later.

closed --K consecutive transient failures--> open --cool-down--> half-open
half-open --probe succeeds--> closed;  half-open --probe fails--> open
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from ..core._errors import CircuitOpenError

__all__ = ["DEFAULT_COOL_DOWN", "DEFAULT_FAILURE_THRESHOLD", "CircuitBreaker"]

DEFAULT_FAILURE_THRESHOLD = 5
DEFAULT_COOL_DOWN = 30.0

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Fails calls fast while a dependency is down, letting one probe through per cool-down.

    Args:
        failure_threshold: Consecutive failures that open the circuit.
        cool_down: Seconds the circuit stays open before one probe is allowed.
        name: What the breaker guards (a model id), for error messages.
        clock: Returns now in seconds (monotonic); for tests.

    Raises:
        ValueError: A threshold below 1 or a negative cool-down.
    """

    def __init__(
        self,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        cool_down: float = DEFAULT_COOL_DOWN,
        *,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or cool_down < 0:
            raise ValueError("failure_threshold must be >= 1 and cool_down >= 0")
        self.failure_threshold = failure_threshold
        self.cool_down = cool_down
        self.name = name
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self.state!r})"

    @property
    def state(self) -> State:
        """closed (normal), open (failing fast) or half-open (a probe may go)."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cool_down:
            return "half-open"
        return "open"

    def before_call(self) -> None:
        """Admit a call, or raise CircuitOpenError while open or while a probe runs.

        Raises:
            CircuitOpenError: The circuit is open.
        """
        state = self.state
        if state == "closed":
            return
        if state == "half-open" and not self._probing:
            self._probing = True
            return
        assert self._opened_at is not None
        wait = max(0.0, self.cool_down - (self._clock() - self._opened_at))
        raise CircuitOpenError(
            f"{self.name}: circuit open after {self._failures} consecutive failures; "
            f"next probe in {wait:.1f} s"
        )

    def record_success(self) -> None:
        """A call succeeded: close the circuit."""
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        """A call failed in a way that counts (transient): maybe open the circuit."""
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._probing = False

    def record_neutral(self) -> None:
        """A call ended in a way that says nothing about health (e.g. a 400)."""
        self._probing = False
