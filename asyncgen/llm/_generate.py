"""generate and fan_out: many chat requests at once, each retried, all accounted for."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import (
    AsyncGenerator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from pydantic import ValidationError

from .._errors import (
    BudgetExceededError,
    InsufficientCreditsError,
    RateLimitedError,
    ValidationFailedError,
)
from .._gather import gather_bounded
from .._logging import mask_secrets
from .._outcome import Outcome
from .._ratelimit import RateLimiter
from .._retry import RetryCaller, RetryPolicy
from ._client import ChatClient
from ._events import (
    BatchProgress,
    ClientPaused,
    Event,
    JobFailed,
    JobRetrying,
    JobStarted,
    JobSucceeded,
    OnEvent,
    emit,
)
from ._models import Completion, GenerationJob, GenerationResult

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_DEADLINE",
    "fan_out",
    "generate",
    "generate_iter",
]

DEFAULT_CONCURRENCY = 6
DEFAULT_DEADLINE = 400.0

JobLike = GenerationJob | Mapping[str, Any]
Validate = Callable[[str], Any]

_log = structlog.get_logger("asyncgen.generate")


def _coerce_one(index: int, job: JobLike) -> GenerationJob:
    if isinstance(job, GenerationJob):
        return job
    if not isinstance(job, Mapping):
        raise TypeError(f"job {index}: expected a GenerationJob or a dict, got {job!r}")
    try:
        return GenerationJob.model_validate(job)
    except ValidationError as exc:
        raise ValueError(f"job {index} is invalid: {exc}") from exc


def _coerce(jobs: Iterable[JobLike]) -> list[GenerationJob]:
    return [_coerce_one(index, job) for index, job in enumerate(jobs)]


@dataclass
class _Budget:
    """A batch's rate limit and spend guard."""

    rate_limit: RateLimiter | None = None
    max_cost: float | None = None
    max_tokens: int | None = None
    cost: float = 0.0
    tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("max_cost", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")

    def spend(self, completion: Completion) -> None:
        self.cost += completion.usage.cost or 0.0
        self.tokens += completion.usage.total_tokens

    def check(self, job: GenerationJob) -> None:
        """Raise BudgetExceededError once reported usage has crossed a limit."""
        if self.max_cost is not None and self.cost >= self.max_cost:
            spent = f"max_cost=${self.max_cost:g} (spent ${self.cost:.6f})"
        elif self.max_tokens is not None and self.tokens >= self.max_tokens:
            spent = f"max_tokens={self.max_tokens} (spent {self.tokens})"
        else:
            return
        raise BudgetExceededError(f"{job.model}: not sent: the batch reached {spent}")


class _Batch:
    """The state of one batch: shared settings, and per-job state while jobs run."""

    def __init__(
        self,
        client: ChatClient,
        policy: RetryPolicy,
        validate: Validate | None,
        on_event: OnEvent | None,
        budget: _Budget,
        *,
        total: int | None,
    ) -> None:
        self.client = client
        self.policy = policy
        self.validate = validate
        self.on_event = on_event
        self.budget = budget
        self.total = total
        self.jobs: dict[int, GenerationJob] = {}
        self.sent: dict[int, int] = {}
        self.completions: dict[int, Completion] = {}
        self.results: dict[int, GenerationResult] = {}
        self.done = 0
        self.ok = 0
        self.quiet: set[str] = set()  # reasons already logged for jobs never sent

    def _check_start(self, job: GenerationJob) -> None:
        if self.client.out_of_credits is not None:
            raise self._not_sent(job)
        self.budget.check(job)

    def _not_sent(self, job: GenerationJob) -> InsufficientCreditsError:
        return InsufficientCreditsError(
            f"{job.model}: not sent: an earlier request on this key got HTTP 402 -- "
            "add credits to your provider account, then run again",
            status=402,
        )

    async def run(self, index: int) -> tuple[Completion, Any]:
        job = self.jobs[index]
        self._check_start(job)
        await emit(self.on_event, JobStarted(index, job))
        caller = RetryCaller(self.policy, on_retry=functools.partial(self._retrying, index))
        with structlog.contextvars.bound_contextvars(job_id=job.id, model=job.model):
            return await caller(self._attempt, index)

    async def _retrying(self, index: int, attempt: int, delay: float, error: BaseException) -> None:
        job = self.jobs[index]
        self.client.count_retry()
        await emit(self.on_event, JobRetrying(index, job, attempt, delay, error))

    async def _attempt(self, index: int) -> tuple[Completion, Any]:
        job = self.jobs[index]
        self._check_start(job)
        self.sent[index] = self.sent.get(index, 0) + 1
        try:
            completion = await self.client.request(
                job.model, job.to_messages(), job.params, rate_limit=self.budget.rate_limit,
                max_pause=self.policy.max_retry_after,
            )  # fmt: skip
        except RateLimitedError:
            pause = self.client.paused(job.model)
            if pause is not None:
                event = ClientPaused(index, job, pause.scope, round(pause.left(), 3), pause.reason)
                await emit(self.on_event, event)
            raise
        self.completions[index] = completion
        self.budget.spend(completion)
        return completion, await self._check(job, completion.text)

    async def _check(self, job: GenerationJob, text: str) -> Any:
        if self.validate is None:
            return None
        try:
            value = self.validate(text)
            value = await value if inspect.isawaitable(value) else value
        except ValidationFailedError:
            raise
        except Exception as exc:  # a validator's own error means the answer failed it
            raise ValidationFailedError(f"{job.model}: {type(exc).__name__}: {exc}") from exc
        # False (the bool) is a verdict: `lambda t: len(t) > 10`. Other falsy values are
        # values: json.loads("[]") is a valid answer, None is "checked, nothing to keep".
        if value is False:
            raise ValidationFailedError(f"{job.model}: the answer failed validation (False)")
        return value

    def result_of(self, outcome: Outcome[tuple[Completion, Any]]) -> GenerationResult:
        index = outcome.index
        completion = self.completions.get(index)
        value = outcome.value[1] if outcome.value is not None else None
        return GenerationResult(
            index=index,
            job=self.jobs[index],
            text=completion.text if completion is not None else None,
            completion=completion,
            error=outcome.error,
            attempts=self.sent.get(index, 0),
            latency=outcome.elapsed,
            value=value,
        )

    async def finished(self, outcome: Outcome[tuple[Completion, Any]]) -> None:
        result = self.results[outcome.index] = self.result_of(outcome)
        self.done += 1
        event: Event
        if result.ok:
            self.ok += 1
            event = JobSucceeded(result.index, result.job, result)
        else:
            self._log_failure(result)
            event = JobFailed(result.index, result.job, result)
        await emit(self.on_event, event)
        if self.total is not None:
            progress = BatchProgress(self.done, self.total, self.ok, self.done - self.ok)
            await emit(self.on_event, progress)

    def _log_failure(self, result: GenerationResult) -> None:
        """Log a failed job; of the jobs never sent for one reason, only the first."""
        kind = type(result.error).__name__
        unsent = result.attempts == 0 and isinstance(
            result.error, BudgetExceededError | InsufficientCreditsError
        )
        if unsent and kind in self.quiet:
            return
        extra = {"later_unsent": "not logged one by one"} if unsent else {}
        if unsent:
            self.quiet.add(kind)
        _log.warning("job_failed", job_id=result.job.id, model=result.model, error_type=kind,
                     error=mask_secrets(str(result.error)), **extra)  # fmt: skip

    def take(self, index: int) -> GenerationResult:
        """Hand over a finished job's result and forget the job (streaming)."""
        for table in (self.jobs, self.sent, self.completions):
            table.pop(index, None)
        return self.results.pop(index)


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
            just under what it admits; see ``asyncgen._pacing``), with AIMD on the
            requests in flight shared by the client as a second bound (starts at 4,
            +1 per window of successes, at most 64; seeded from OpenRouter's key info).
        retry: The retry policy; None means ``RetryPolicy()`` (3 attempts).
        deadline: Seconds for the whole batch (None: no deadline); unfinished jobs get
            DeadlineExceededError and finished ones are kept.
        validate: Called with each answer's text, sync or async; its return value is
            kept as ``result.value``. Returning ``False`` or raising (any error) fails
            the job with ValidationFailedError, which is not retried unless the policy
            says so; other values, falsy ones included (None, 0, ``[]``), pass.
        on_event: Receives JobStarted, JobRetrying, ClientPaused, JobSucceeded,
            JobFailed and BatchProgress events, sync or async.
        rate_limit: A RateLimiter for this batch's requests; default: the client's own.
        max_cost: Once the reported cost of the batch reaches this many dollars, no new
            job or retry starts; those left fail with BudgetExceededError.
        max_tokens: The same for the batch's reported total tokens (not the per-request
            ``max_tokens`` parameter, which goes in a job's params).

    Raises:
        ValueError: A job is invalid (which one and why), or concurrency < 1.
        TypeError: A job is neither a GenerationJob nor a dict.
    """
    coerced = _coerce(jobs)
    budget = _Budget(rate_limit or client.rate_limit, max_cost, max_tokens)
    batch = _Batch(client, retry or RetryPolicy(), validate, on_event, budget, total=len(coerced))
    batch.jobs = dict(enumerate(coerced))
    client.clear_out_of_credits()  # a new batch tries again: credits may have been added
    limit = await _limit_for(client, concurrency)
    calls = [functools.partial(batch.run, index) for index in range(len(coerced))]
    outcomes = await gather_bounded(calls, limit=limit, deadline=deadline, on_done=batch.finished)
    for outcome in outcomes:
        if outcome.index not in batch.results:  # cut off by the deadline
            await batch.finished(outcome)
    return [batch.results[index] for index in range(len(coerced))]


async def _limit_for(client: ChatClient, concurrency: int | Literal["auto"]) -> int:
    if concurrency != "auto":
        return concurrency
    adaptive = client.adaptive_concurrency()
    await client.seed_concurrency()
    return adaptive.maximum


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
            on_event).

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
    jobs: Iterable[JobLike], *, client: ChatClient, **options: Any
) -> AsyncGenerator[GenerationResult, None]:
    """Like :func:`generate`, but yield each result as soon as its job finishes.

    Leaving the loop early cancels the jobs still running.

    Args:
        jobs: As for :func:`generate`.
        client: The ChatClient to send through.
        **options: As for :func:`generate`, ``on_event`` included.
    """
    queue: asyncio.Queue[GenerationResult | None] = asyncio.Queue()
    user_handler: OnEvent | None = options.pop("on_event", None)

    async def forward(event: Event) -> None:
        await emit(user_handler, event)
        if isinstance(event, JobSucceeded | JobFailed):
            queue.put_nowait(event.result)

    async def run() -> None:
        try:
            await generate(jobs, client=client, on_event=forward, **options)
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(run())
    try:
        while (result := await queue.get()) is not None:
            yield result
        await task  # re-raise an input error from generate
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
