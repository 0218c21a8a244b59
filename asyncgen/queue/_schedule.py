"""When a recurring job's next slot falls: fixed intervals or cron expressions (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter

__all__ = ["check_cron", "next_run"]


def check_cron(expression: str) -> None:
    """Raise ValueError, saying why, for an expression croniter cannot use."""
    if not croniter.is_valid(expression):
        raise ValueError(
            f"invalid cron expression {expression!r}: use five fields, "
            "minute hour day-of-month month day-of-week, e.g. '*/5 * * * *'"
        )


def next_run(after: float, *, every: float | None, cron: str | None) -> float:
    """The first slot strictly after ``after`` (epoch seconds).

    Raises:
        ValueError: Neither or both of ``every`` and ``cron``.
    """
    if (every is None) == (cron is None):
        raise ValueError("a recurring job needs exactly one of every= or cron=")
    if every is not None:
        return after + every
    assert cron is not None
    start = datetime.fromtimestamp(after, UTC)
    return float(croniter(cron, start).get_next(float))
