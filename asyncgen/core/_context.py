"""Per-task state shared between layers: the enclosing deadline and the attempt count.

Both live in context variables, so a task inherits them from whoever started it and a
retry deep inside a call can see the deadline of the batch that runs it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import anyio

__all__ = ["attempt_counter", "current_deadline", "deadline_after", "note_attempt"]

# Absolute deadline on the running loop's clock (loop.time()); inf when there is none.
_deadline: ContextVar[float] = ContextVar("asyncgen_deadline", default=math.inf)
# A one-element list per running call; retry writes the attempt number into it.
_attempts: ContextVar[list[int] | None] = ContextVar("asyncgen_attempts", default=None)


def current_deadline() -> float:
    """Return the nearest enclosing deadline on the loop clock, or inf when none applies.

    Sees deadlines set by asyncgen (``gather_bounded(deadline=...)``) and anyio cancel
    scopes (``anyio.fail_after``, ``anyio.move_on_after``).
    """
    ours = _deadline.get()
    try:
        theirs = anyio.current_effective_deadline()
    except Exception:
        theirs = math.inf
    return min(ours, theirs)


@contextmanager
def deadline_after(seconds: float) -> Iterator[float]:
    """Set the deadline ``seconds`` from now (never later than an enclosing one).

    Yields:
        The absolute deadline on the loop clock.
    """
    when = min(_deadline.get(), asyncio.get_running_loop().time() + seconds)
    token = _deadline.set(when)
    try:
        yield when
    finally:
        _deadline.reset(token)


def attempt_counter() -> list[int]:
    """Install a fresh attempt counter in the current context and return it."""
    cell = [1]
    _attempts.set(cell)
    return cell


def note_attempt(number: int) -> None:
    """Record that attempt ``number`` of the current call is starting."""
    cell = _attempts.get()
    if cell is not None:
        cell[0] = number
