"""generate_batch: jobs through the provider's Batch API in one call, results in input
order (a temporary folder holds the run's state)."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from ...core._errors import InsufficientCreditsError
from ..client._batches import MAX_BATCH_REQUESTS
from ..client._client import ChatClient
from ..engine._jobs import GenerationJob, GenerationResult
from ._run import BatchApiProgress, BatchOutcome, BatchRun

__all__ = ["generate_batch"]


async def generate_batch(
    jobs: Iterable[GenerationJob],
    *,
    client: ChatClient,
    poll_interval: float = 1.0,
    max_poll_interval: float = 60.0,
    max_requests: int = MAX_BATCH_REQUESTS,
    resubmit: Literal["batch", "online"] = "batch",
    folder: Path | None = None,
    on_progress: Callable[[BatchApiProgress], None] | None = None,
) -> list[GenerationResult]:
    """Run ``jobs`` through the provider's Batch API; results in input order.

    About half the online price, answered within the provider's window (24 h). Give a
    ``folder`` to make it resumable (call again with the same folder after a crash: the
    batches in flight are picked up); by default a temporary one is used. The first poll
    comes ``poll_interval`` seconds after the batches are created (1 s: a quick batch, or
    the simulator's, is read at once) and the wait grows 1.5 x per quiet poll up to
    ``max_poll_interval``.

    Raises:
        ValueError: Bad settings, or two jobs with one id.
    """
    todo = list(jobs)
    if len({job.id for job in todo}) != len(todo):
        raise ValueError("every job needs its own id: the Batch API matches answers by id")
    schemas = {job.response_model for job in todo}
    if len(schemas) > 1:
        raise ValueError(
            "the jobs of one batch run share one response_model (or none): "
            "run the others in another call"
        )
    response_model = next(iter(schemas), None)
    ended: dict[str, BatchOutcome] = {}
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        where = folder or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="asyncgen-batch-"))
        )
        run = BatchRun(
            client,
            where,
            on_outcome=lambda o: ended.__setitem__(o.id, o),
            on_progress=on_progress,
            max_requests=max_requests,
            poll_interval=poll_interval,
            max_poll_interval=max(max_poll_interval, poll_interval),
            resubmit=resubmit,
            response_model=response_model,
        )
        await run.submit(todo)
        await run.wait()
    latency = time.monotonic() - began
    results = []
    for index, job in enumerate(todo):
        outcome = ended.get(job.id)
        if outcome is None:
            error: BaseException = run.stopped or InsufficientCreditsError(
                f"{job.model}: not submitted", status=402
            )
            results.append(GenerationResult(index=index, job=job, error=error, attempts=0))
            continue
        completion = outcome.completion
        results.append(
            GenerationResult(
                index=index,
                job=job,
                text=completion.text if completion else None,
                completion=completion,
                error=outcome.error,
                attempts=outcome.attempts,
                latency=latency,
                answered_by=outcome.model if completion else None,
                parsed=outcome.parsed,
            )
        )
    return results
