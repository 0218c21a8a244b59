"""generate_stream: generation over inputs of any length in bounded memory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from typing import Literal

from .._gather import map_bounded
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
from ._models import GenerationResult

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

    async def registered() -> AsyncIterator[int]:
        # Jobs are checked as they are pulled: a bad one ends the stream (map_bounded
        # raises what its source raises), after cancelling the jobs still running.
        index = 0
        async for job in _items(jobs):
            batch.jobs[index] = _coerce_one(index, job)
            yield index
            index += 1

    # map_bounded times each run and turns its error into the Outcome the batch needs.
    async with contextlib.aclosing(
        map_bounded(batch.run, registered(), limit=limit, ordered=False)
    ) as outcomes:
        async for outcome in outcomes:
            await batch.finished(outcome)
            yield batch.take(outcome.index)


async def _items(items: Iterable[JobLike] | AsyncIterable[JobLike]) -> AsyncIterator[JobLike]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
