"""generate, generate_iter, generate_stream and fan_out: many chat requests at once."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from ...core._defaults import DEFAULT_CONCURRENCY, DEFAULT_DEADLINE
from ...core._retry import RetryPolicy
from ...limits._ratelimit import RateLimiter
from ..client._client import ChatClient
from ._events import OnEvent
from ._job import Budget, JobRunner, Validate
from ._jobs import GenerationResult
from ._run import JobLike, OnlineRun, coerce_jobs, concurrency_limit

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_DEADLINE",
    "fan_out",
    "generate",
    "generate_iter",
    "generate_stream",
]


def _online_run(
    client: ChatClient,
    *,
    retry: RetryPolicy | None,
    validate: Validate | None,
    on_event: OnEvent | None,
    rate_limit: RateLimiter | None,
    max_cost: float | None,
    max_tokens: int | None,
    total: int | None,
    response_model: type[BaseModel] | None = None,
) -> OnlineRun:
    budget = None
    if max_cost is not None or max_tokens is not None:
        budget = Budget(max_cost, max_tokens)  # checks they are > 0
    runner = JobRunner(
        client,
        retry=retry,
        validate=validate,
        on_event=on_event,
        rate_limit=rate_limit,
        budget=budget,
    )
    client.clear_out_of_credits()  # a new run tries again: credits may have been added
    client.clear_key_refused()  # ... and the key may have been fixed
    return OnlineRun(runner, on_event, total=total, response_model=response_model)


async def generate(
    jobs: Iterable[JobLike],
    *,
    client: ChatClient,
    concurrency: int | Literal["auto"] = DEFAULT_CONCURRENCY,
    retry: RetryPolicy | None = None,
    deadline: float | None = DEFAULT_DEADLINE,
    validate: Validate | None = None,
    on_event: OnEvent | None = None,
    rate_limit: RateLimiter | None = None,
    max_cost: float | None = None,
    max_tokens: int | None = None,
    response_model: type[BaseModel] | None = None,
) -> list[GenerationResult]:
    """Run generation jobs concurrently; return one result per job, in input order.

    Failures are results, never exceptions: check ``result.ok``. A 402 (no credits) stops
    every job on the client that has not started (no request is sent for them), lets the
    running ones finish, and warns once.

    Args:
        jobs: GenerationJobs, or dicts with the same fields.
        client: The ChatClient to send through.
        concurrency: The most requests in flight at once, or "auto": request starts
            paced per model at a rate learned from the server's 429s (slow start, then
            just under what it admits; see ``asyncgen.limits._pacing``), with AIMD on the
            requests in flight shared by the client as a second bound (starts at 4,
            +1 per window of successes, at most 64; seeded from OpenRouter's key info).
        retry: The retry policy; None means ``RetryPolicy()`` (3 attempts).
        deadline: Seconds for the whole run (None: no deadline); unfinished jobs get
            DeadlineExceededError and finished ones are kept.
        validate: Called with each answer's text, sync or async; its return value is
            kept as ``result.value``. Returning ``False`` or raising (any error) fails
            the job with ValidationFailedError, which is not retried unless the policy
            says so; other values, falsy ones included (None, 0, ``[]``), pass.
        on_event: Receives JobStarted, JobRetrying, ClientPaused, JobSucceeded,
            JobFailed and RunProgress events, sync or async.
        rate_limit: A RateLimiter for this run's requests; default: the client's own.
        max_cost: Once the reported cost of the run reaches this many dollars, no new
            job or retry starts; those left fail with BudgetExceededError.
        max_tokens: The same for the run's reported total tokens (not the per-request
            ``max_tokens`` parameter, which goes in a job's params).
        response_model: A pydantic model for every job that names none (see
            GenerationJob.response_model): ``result.parsed`` holds the answer as one.

    Raises:
        ValueError: A job is invalid (which one and why), or concurrency < 1.
        TypeError: A job is neither a GenerationJob nor a dict.
    """
    coerced = coerce_jobs(jobs, response_model)
    online = _online_run(
        client,
        retry=retry,
        validate=validate,
        on_event=on_event,
        rate_limit=rate_limit,
        max_cost=max_cost,
        max_tokens=max_tokens,
        total=len(coerced),
    )
    limit = await concurrency_limit(client, concurrency)
    return await online.run_all(coerced, limit=limit, deadline=deadline)


async def fan_out(
    prompt: str | Sequence[Mapping[str, Any]],
    models: Sequence[str],
    *,
    client: ChatClient,
    params: Mapping[str, Any] | None = None,
    **options: Any,
) -> list[GenerationResult]:
    """Send one prompt (or message list) to several models at once.

    Args:
        prompt: The user prompt, or a list of chat messages.
        models: Model ids; results come back in this order.
        client: The ChatClient to send through.
        params: Request fields for every model (temperature, max_tokens, ...).
        **options: As for :func:`generate` (concurrency, retry, deadline, validate,
            on_event, response_model, max_cost ...).

    Raises:
        ValueError: No models, or an invalid prompt.
    """
    if isinstance(models, str) or not models:
        raise ValueError("models must be a non-empty list of model ids")
    field = "prompt" if isinstance(prompt, str) else "messages"
    content: Any = prompt if isinstance(prompt, str) else [dict(m) for m in prompt]
    jobs = [{"model": model, field: content, "params": dict(params or {})} for model in models]
    return await generate(jobs, client=client, **options)


async def generate_iter(
    jobs: Iterable[JobLike],
    *,
    client: ChatClient,
    concurrency: int | Literal["auto"] = DEFAULT_CONCURRENCY,
    retry: RetryPolicy | None = None,
    deadline: float | None = DEFAULT_DEADLINE,
    validate: Validate | None = None,
    on_event: OnEvent | None = None,
    rate_limit: RateLimiter | None = None,
    max_cost: float | None = None,
    max_tokens: int | None = None,
    response_model: type[BaseModel] | None = None,
) -> AsyncGenerator[GenerationResult, None]:
    """Like :func:`generate`, but yield each result as soon as its job finishes.

    Every job is checked before any is sent (as :func:`generate` does); the stream is
    :func:`generate_stream`'s, with the run's total known (RunProgress events) and a
    deadline: the jobs unfinished when it passes come last, with DeadlineExceededError.
    Leaving the loop early cancels the jobs still running.

    Raises:
        ValueError, TypeError: As for :func:`generate`, at the first iteration.
    """
    coerced = coerce_jobs(jobs, response_model)
    online = _online_run(
        client,
        retry=retry,
        validate=validate,
        on_event=on_event,
        rate_limit=rate_limit,
        max_cost=max_cost,
        max_tokens=max_tokens,
        total=len(coerced),
    )
    limit = await concurrency_limit(client, concurrency)
    async with contextlib.aclosing(online.stream(coerced, limit=limit, deadline=deadline)) as run:
        async for result in run:
            yield result


async def generate_stream(
    jobs: Iterable[JobLike] | AsyncIterable[JobLike],
    *,
    client: ChatClient,
    concurrency: int | Literal["auto"] = DEFAULT_CONCURRENCY,
    retry: RetryPolicy | None = None,
    deadline: float | None = None,
    validate: Validate | None = None,
    on_event: OnEvent | None = None,
    rate_limit: RateLimiter | None = None,
    max_cost: float | None = None,
    max_tokens: int | None = None,
    response_model: type[BaseModel] | None = None,
) -> AsyncGenerator[GenerationResult, None]:
    """Run jobs from a stream of any length, yielding each result as it finishes.

    Memory stays bounded by the concurrency, not by the input (a million-line file is
    fine): jobs are pulled only as slots free up and forgotten once yielded. Options
    are those of :func:`generate` (no RunProgress events, as the total is unknown),
    but the deadline is off by default: when one is given and passes, the jobs running
    come next with DeadlineExceededError, then every job left in the stream, pulled and
    yielded with it too (nothing is dropped; a stream that never ends wants
    ``asyncio.timeout`` around the loop instead). ``result.index`` is the job's
    position in the stream.

    Raises:
        ValueError: When a job pulled from the stream is invalid (which one and why);
            jobs already running are cancelled.
    """
    online = _online_run(
        client,
        retry=retry,
        validate=validate,
        on_event=on_event,
        rate_limit=rate_limit,
        max_cost=max_cost,
        max_tokens=max_tokens,
        total=None,
        response_model=response_model,
    )
    limit = await concurrency_limit(client, concurrency)
    async with contextlib.aclosing(online.stream(jobs, limit=limit, deadline=deadline)) as run:
        async for result in run:
            yield result
