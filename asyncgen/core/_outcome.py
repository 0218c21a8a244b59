"""Outcome: one result per input, success or failure, never a lost slot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Outcome"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome(Generic[T]):
    """The result of one call in a batch: its value or its error, never both.

    Attributes:
        index: The position of the call in the input, counting from 0.
        value: What the call returned, or None when it failed.
        error: The exception the call raised, or None when it succeeded.
        attempts: How many times the call was tried (retries included).
        elapsed: Seconds from the call's start to its end (all attempts).
    """

    index: int
    value: T | None = None
    error: BaseException | None = None
    attempts: int = 1
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the call succeeded."""
        return self.error is None

    def unwrap(self) -> T:
        """Return the value, or raise the error the call failed with.

        Raises:
            BaseException: The call's own error, unchanged.
        """
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]

    def __repr__(self) -> str:
        body = f"value={self.value!r}" if self.error is None else f"error={self.error!r}"
        return (
            f"Outcome(index={self.index}, {body}, attempts={self.attempts}, "
            f"elapsed={self.elapsed:.3f})"
        )
