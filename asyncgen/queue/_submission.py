"""What a submit stores: a job (a GenerationJob or a task's call) checked and made a record."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from typing import Any

from ..llm import GenerationJob
from ._models import JobRecord
from ._schedule import check_cron, next_run, slot_key
from ._tasks import GENERATE_KIND, TaskCall

__all__ = ["MAX_PRIORITY", "MIN_PRIORITY", "check_options", "job_record"]

MAX_PRIORITY = 2**31 - 1  # stored exactly by SQLite and as Redis scores alike
MIN_PRIORITY = -(2**31)


def job_record(
    job: object,
    *,
    start: float,
    priority: int,
    max_attempts: int,
    context: dict[str, Any],
    idempotency_key: str | None = None,
    every: float | None = None,
    cron: str | None = None,
    depends_on: Sequence[str] = (),
    timeout: float | None = None,
    unique_key: str | None = None,
    unique_for: float | None = None,
) -> JobRecord:
    """The record a submit stores for ``job``, due at ``start`` (epoch seconds).

    A recurring job (``every`` or ``cron``) without an idempotency key gets one made of
    its id and its first slot's time, so each slot runs once (see ``_schedule``).

    ``unique_for`` without ``unique_key`` makes the key of the job's kind and arguments:
    the same call submitted again while the first is unfinished is the first.

    Raises:
        TypeError: ``job`` is neither a GenerationJob nor a TaskCall, or a GenerationJob
            with a response_model (a class is not data).
        ValueError: A bad timeout, every, or cron expression; both every and cron; a
            unique job that recurs; unique_for not > 0; an empty unique_key.
    """
    kind, payload = _kind_and_payload(job)
    if unique_for is not None and not 0 < unique_for < math.inf:
        raise ValueError(f"unique_for must be > 0 seconds, got {unique_for}")
    if unique_key is not None and not unique_key:
        raise ValueError("unique_key must not be empty")
    if (unique_key or unique_for) and (every is not None or cron is not None):
        raise ValueError("a recurring job runs once per slot already: drop unique_key/unique_for")
    if unique_for is not None and unique_key is None:
        canonical = json.dumps([kind, payload], sort_keys=True, separators=(",", ":"))
        unique_key = f"{kind}:{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"
    if every is not None and cron is not None:
        raise ValueError("give every= or cron=, not both")
    if timeout is not None and not 0 < timeout < math.inf:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    if every is not None and every <= 0:
        raise ValueError(f"every must be > 0 seconds, got {every}")
    if cron is not None:
        check_cron(cron)
        start = next_run(start - 1e-3, every=None, cron=cron)
    record = JobRecord(
        kind=kind,
        payload=payload,
        priority=priority,
        max_attempts=max_attempts,
        run_at=start,
        idempotency_key=idempotency_key,
        every=every,
        cron=cron,
        depends_on=list(depends_on),
        timeout=timeout,
        context=context,
        unique_key=unique_key,
        unique_until=time.time() + unique_for if unique_for is not None else None,
    )
    if (every is not None or cron is not None) and idempotency_key is None:
        record = record.model_copy(update={"idempotency_key": slot_key(record.id, record.run_at)})
    return record


def check_options(max_attempts: int, priority: int) -> None:
    """Check the options every job of a submit shares.

    Raises:
        ValueError: ``max_attempts`` not a whole number >= 1, or ``priority`` not a whole
            number from MIN_PRIORITY to MAX_PRIORITY.
    """
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be a whole number >= 1, got {max_attempts!r}")
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not MIN_PRIORITY <= priority <= MAX_PRIORITY
    ):
        raise ValueError(
            f"priority must be a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}, "
            f"got {priority!r}"
        )


def _kind_and_payload(job: object) -> tuple[str, dict[str, Any]]:
    if isinstance(job, GenerationJob):
        if job.response_model is not None:
            raise TypeError(
                "a GenerationJob with a response_model cannot be queued (a class is not "
                "data): queue a @task that calls generate([job]) with the model instead"
            )
        return GENERATE_KIND, job.model_dump(mode="json")
    if isinstance(job, TaskCall):
        return job.kind, job.arguments
    raise TypeError("submit a GenerationJob or task.call(...), not " + type(job).__name__)
