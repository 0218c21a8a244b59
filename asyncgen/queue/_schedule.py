"""Recurring jobs: when the next slot falls (fixed intervals or cron, UTC), and the job
record of that slot, shared by every store.

The policy every store follows (pinned by the conformance suite): each claim of a slot,
retries and take-overs included, adds the next slot, computed from the slot's own
scheduled time (never from a retry's later start); the next slot's idempotency key
(``<series>@<due>``) makes all but the first of those adds do nothing. So a worker that
dies between claiming and adding leaves it to whoever takes the job over, and no slot is
added twice. A series' first slot carries ``<job id>@<run_at>`` as its key unless the
submitter gave one; a first slot with the submitter's key adds the next slot on its
first claim only (its scheduled time is not kept past a retry).
"""

from __future__ import annotations

from datetime import UTC, datetime

from ._models import JobRecord

__all__ = ["check_cron", "next_run", "next_slot", "slot_key"]


def check_cron(expression: str) -> None:
    """Raise ValueError, saying why, for an expression croniter cannot use."""
    from croniter import croniter  # only recurring jobs need it

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
    from croniter import croniter

    start = datetime.fromtimestamp(after, UTC)
    return float(croniter(cron, start).get_next(float))


def slot_key(series: str, due: float) -> str:
    """The idempotency key of the slot of ``series`` due at ``due``."""
    return f"{series}@{due:.3f}"


def next_slot(record: JobRecord, *, first_claim: bool) -> JobRecord | None:
    """The job of the slot after ``record``'s (same work, fresh attempts, a key naming
    series and slot), or None when ``record``'s scheduled time is no longer known.

    Args:
        record: A recurring job being claimed.
        first_claim: This is the slot's first claim (its ``run_at`` is its own time).
    """
    key = record.idempotency_key or record.id
    series, at, stamp = key.rpartition("@")
    try:
        scheduled = float(stamp) if at else None
    except ValueError:
        scheduled = None
    if scheduled is None:
        series = key
    if first_claim:
        scheduled = record.run_at
    if scheduled is None:
        return None
    due = next_run(scheduled, every=record.every, cron=record.cron)
    return JobRecord(
        kind=record.kind,
        payload=record.payload,
        priority=record.priority,
        max_attempts=record.max_attempts,
        run_at=due,
        idempotency_key=slot_key(series, due),
        every=record.every,
        cron=record.cron,
    )
