"""generate_stream: generation over inputs of any length in bounded memory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from typing import Any, Literal

from .._gather import map_bounded
from .._outcome import Outcome
from .._ratelimit import RateLimiter
from .._retry import RetryPolicy
from ._client import ChatClient
from ._events import OnEvent
from ._generate import (
    DEFAULT_CONCURRENCY,
    JobLike,
    Validate,
    _Batch,
    _Budget,
    _coerce_one,
    _limit_for,
)
from ._models import Completion, GenerationResult

__all__ = ["generate_stream"]


async def generate_stream(
    jobs: Iterable[JobLike] | AsyncIterable[JobLike],
    *,
    client: ChatClient,
    concurrency: int | Literal["auto"] = DEFAULT_CONCURRENCY,
    retry: RetryPolicy | None = None,
    validate: Validate | None = None,
    on_event: OnEvent | None = None,
    rate_limit: RateLimiter | None = None,
    max_cost: float | None = None,
    max_tokens: int | None = None,
) -> AsyncGenerator[GenerationResult, None]:
    """Run jobs from a stream of any length, yielding each result as it finishes.

    Memory stays bounded by the concurrency, not by the input (a million-line file is
    fine): jobs are pulled only as slots free up and forgotten once yielded. Options
    are those of :func:`generate` (no deadline: wrap the loop in ``asyncio.timeout``;
    no BatchProgress events, as the total is unknown). ``result.index`` is the job's
    position in the stream.

    Raises:
        ValueError: When a job pulled from the stream is invalid (which one and why);
            jobs already running are cancelled.
    """
    budget = _Budget(rate_limit or client.rate_limit, max_cost, max_tokens)
    batch = _Batch(client, retry or RetryPolicy(), validate, on_event, budget, total=None)
    client.clear_out_of_credits()
    limit = await _limit_for(client, concurrency)
    clock = asyncio.get_running_loop().time

    async def one(item: tuple[int, JobLike]) -> GenerationResult:
        index, job = item
        batch.jobs[index] = _coerce_one(index, job)
        began = clock()
        try:
            value = await batch.run(index)
        except Exception as exc:
            outcome: Outcome[tuple[Completion, Any]] = Outcome(
                index=index, error=exc, elapsed=clock() - began
            )
        else:
            outcome = Outcome(index=index, value=value, elapsed=clock() - began)
        await batch.finished(outcome)
        return batch.take(index)

    async with contextlib.aclosing(
        map_bounded(one, _enumerate(jobs), limit=limit, ordered=False)
    ) as outcomes:
        async for outcome in outcomes:
            yield outcome.unwrap()


async def _enumerate(
    items: Iterable[JobLike] | AsyncIterable[JobLike],
) -> AsyncIterator[tuple[int, JobLike]]:
    index = 0
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield index, item
            index += 1
    else:
        for item in items:
            yield index, item
            index += 1
