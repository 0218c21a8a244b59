"""One generation job on one client: the path every generation takes.

``generate``, ``generate_iter``, ``generate_stream`` and the queue worker all run a job
through :class:`JobRunner`: the run's spend guard and 402 stop, the retry policy, the
client's traffic controls (breaker, pauses, rate limiter, pacing) and request, the
answer's validation, and the job's events.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from ...core._errors import (
    BudgetExceededError,
    CircuitOpenError,
    InsufficientCreditsError,
    InvalidKeyError,
    InvalidResponseError,
    RateLimitedError,
    StreamInterruptedError,
    TransientError,
    ValidationFailedError,
)
from ...core._logging import mask_secrets
from ...core._retry import RetryCaller, RetryPolicy
from ...core._tracing import add_event, span, tracer
from ...limits._ratelimit import RateLimiter
from ..client._client import ChatClient
from ..client._models import Completion, Spend
from ..client._request import schema_params
from ..client._stream import DEFAULT_STALL_TIMEOUT
from ..client._structured import parse_with_reasks
from ._events import ClientPaused, JobFellBack, JobRetrying, JobStarted, JobToken, OnEvent, emit
from ._jobs import GenerationJob, GenerationResult

__all__ = ["Budget", "JobRun", "JobRunner", "Validate"]

_log = structlog.get_logger("asyncgen.generate")


Validate = Callable[[str], Any]

_bind = structlog.contextvars.bind_contextvars
_reset = structlog.contextvars.reset_contextvars


@dataclass
class Budget:
    """A run's spend guard: no job or retry starts once reported usage crossed a limit.

    Every answer counts as it comes (re-asks, retries and fallbacks too), in ``spent``;
    answers from the response cache cost nothing.
    """

    max_cost: float | None = None
    max_tokens: int | None = None
    spent: Spend = field(default_factory=Spend)

    def __post_init__(self) -> None:
        for name in ("max_cost", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")

    def spend(self, completion: Completion) -> None:
        """Count one answer."""
        if completion.cached:  # answered from the response cache: nothing was spent
            return
        unknown = completion.usage.cost is None
        if unknown and self.max_cost is not None and not self.spent.unpriced:
            _log.warning(
                "cost_unknown",
                model=completion.model,
                action="max_cost cannot count this model's answers: install "
                "asyncgen[prices], or use max_tokens",
            )
        self.spent.add(completion.usage)

    def check(self, job: GenerationJob) -> None:
        """Raise BudgetExceededError once reported usage has crossed a limit."""
        cost, tokens = self.spent.cost, self.spent.tokens
        if self.max_cost is not None and cost >= self.max_cost:
            spent = f"max_cost=${self.max_cost:g} (spent ${cost:.6f})"
        elif self.max_tokens is not None and tokens >= self.max_tokens:
            spent = f"max_tokens={self.max_tokens} (spent {tokens})"
        else:
            return
        raise BudgetExceededError(f"{job.model}: not sent: the run reached {spent}")


@dataclass(slots=True)
class JobRun:
    """One job while it runs: its place in the run, requests sent, what came back."""

    index: int
    job: GenerationJob
    sent: int = 0
    completion: Completion | None = None
    value: Any = None
    parsed: Any = None
    target: GenerationJob | None = None  # the job as sent now: its model, or a fallback
    may_move: bool = False  # a fallback is left: a long pause moves the job on
    fell_back: list[dict[str, str]] = field(default_factory=list)


class JobRunner:
    """Runs generation jobs on one client with one run's settings.

    Args:
        client: The ChatClient to send through.
        retry: The retry policy (the queue worker passes ``RetryPolicy.never()``: it
            retries at the queue, with backoff between claims).
        validate: Called with each answer's text, sync or async (see ``generate``).
        on_event: Receives JobStarted, JobRetrying and ClientPaused.
        rate_limit: The RateLimiter for these requests; None: the client's own.
        budget: The run's spend guard, or None.
        stop_after_402: Refuse to send once the client has seen a 402 or a 401 (a
            run); the queue worker sends every job it claims.
    """

    __slots__ = (
        "budget",
        "client",
        "on_event",
        "policy",
        "rate_limit",
        "stop_after_402",
        "validate",
    )

    def __init__(
        self,
        client: ChatClient,
        *,
        retry: RetryPolicy | None = None,
        validate: Validate | None = None,
        on_event: OnEvent | None = None,
        rate_limit: RateLimiter | None = None,
        budget: Budget | None = None,
        stop_after_402: bool = True,
    ) -> None:
        self.client = client
        self.policy = retry or RetryPolicy()
        self.validate = validate
        self.on_event = on_event
        self.rate_limit = rate_limit or client.rate_limit
        self.budget = budget
        self.stop_after_402 = stop_after_402

    async def run(self, run: JobRun) -> Any:
        """Run the job, retrying per the policy; return what ``validate`` returned.

        The completion and the number of requests sent are kept on ``run``.

        Raises:
            AsyncGenError: What the last attempt failed with (or why none was sent).
        """
        self._check_start(run.job)
        if self.on_event is not None:
            await emit(self.on_event, JobStarted(run.index, run.job))
        on_retry = None if self.policy.max_attempts == 1 else _Retrying(self, run)
        job = run.job
        models = [job.model, *(job.fallbacks or self.client.fallbacks.get(job.model, []))]
        tokens = _bind(job_id=job.id, model=job.model)
        try:
            if tracer() is None:  # the hot path pays one check when nothing traces
                return await self._run_models(run, models, on_retry)
            attributes = {"asyncgen.job.id": job.id, "gen_ai.request.model": job.model}
            with span(f"generate {job.model}", attributes):  # each attempt a span within
                return await self._run_models(run, models, on_retry)
        finally:
            _reset(**tokens)

    async def _run_models(self, run: JobRun, models: list[str], on_retry: _Retrying | None) -> Any:
        """Each model in turn (the job's, then its fallbacks), each with its retries."""
        job = run.job
        for position, model in enumerate(models):
            last = position == len(models) - 1
            run.target = (
                job if position == 0 else job.model_copy(update={"model": model, "fallbacks": []})
            )
            try:
                run.may_move = not last
                return await RetryCaller(self.policy, on_retry=on_retry)(self._attempt, run)
            except _MoveOn as exc:
                error_type, reason = "Paused", str(exc)
            except (TransientError, CircuitOpenError) as exc:
                if last:
                    raise
                error_type, reason = type(exc).__name__, mask_secrets(str(exc))
            await self._fall_back(run, model, models[position + 1], error_type, reason)
        raise AssertionError("unreachable: the last model returns or raises")

    async def _fall_back(
        self, run: JobRun, model: str, following: str, error_type: str, reason: str
    ) -> None:
        run.fell_back.append({"model": model, "error_type": error_type, "reason": reason})
        add_event(
            "fallback", {"gen_ai.request.model": model, "to": following, "error.type": error_type}
        )
        _log.warning("fallback", model=model, to=following, error_type=error_type, reason=reason)
        if self.on_event is not None:
            event = JobFellBack(run.index, run.job, model, following, f"{error_type}: {reason}")
            await emit(self.on_event, event)

    async def _attempt(self, run: JobRun) -> Any:
        job = run.target or run.job
        self._check_start(job)
        if run.may_move:  # a long pause on this model: go on with the next one instead
            pause = self.client.paused(job.model)
            if pause is not None and pause.left() > self.client.fallback_after:
                raise _MoveOn(
                    f"{job.model} is paused for {pause.left():.0f} s "
                    f"({pause.reason}), over fallback_after"
                )
        params = schema_params(job.response_model, job.params)
        messages = job.to_messages()
        completion = await self._send(run, messages, params)
        if job.response_model is not None:
            run.parsed = await self._parsed(run, messages, params, completion)
        if self.validate is None:
            return None
        assert run.completion is not None
        run.value = await self._check(job, run.completion.text)
        return run.value

    async def _send(
        self, run: JobRun, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> Completion:
        """One request; its usage is counted by the budget and added to the run's."""
        run.sent += 1
        job = run.target or run.job
        try:
            if job.stream:
                completion = await self._streamed(run, job, messages, params)
            else:
                completion = await self.client.chat_limited(
                    job.model,
                    messages,
                    params,
                    rate_limit=self.rate_limit,
                    max_pause=self.policy.max_retry_after,
                )
        except RateLimitedError as exc:
            add_event("rate_limited", {"retry_after_s": exc.retry_after})
            await self._paused(run)
            wait = exc.retry_after or 0.0
            if run.may_move and wait > self.client.fallback_after:
                raise _MoveOn(
                    f"{(run.target or run.job).model} asked for a wait of {wait:.0f} s "
                    "(429), over fallback_after"
                ) from exc
            raise
        if self.budget is not None:
            self.budget.spend(completion)
        before = run.completion  # usage adds up over re-asks (and answered retries)
        if before is None:
            run.completion = completion
        else:
            run.completion = completion.model_copy(
                update={"usage": before.usage + completion.usage}
            )
        return completion

    async def _streamed(
        self,
        run: JobRun,
        job: GenerationJob,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
    ) -> Completion:
        """Stream the answer, handing each piece of text to ``on_event``; a break after
        some text is StreamInterruptedError (not retried: the text is out already)."""
        stall = job.stall_timeout if job.stall_timeout is not None else DEFAULT_STALL_TIMEOUT
        stream = self.client.stream(
            job.model,
            messages,
            rate_limit=self.rate_limit,
            max_pause=self.policy.max_retry_after,
            stall_timeout=stall,
            **params,
        )
        delivered = 0
        try:
            async for text in stream:
                delivered += 1
                if self.on_event is not None:
                    await emit(self.on_event, JobToken(run.index, run.job, text))
        except (TransientError, InvalidResponseError) as exc:
            if not delivered:
                raise
            raise StreamInterruptedError(
                f"{job.model}: the stream broke after {delivered} piece(s) of text: {exc}"
            ) from exc
        assert stream.completion is not None
        return stream.completion

    async def _parsed(
        self,
        run: JobRun,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        completion: Completion,
    ) -> Any:
        """The answer as the job's response_model; an answer that does not fit is re-asked
        with what was wrong, at most ``max_reasks`` times (each counted by the budget)."""
        job = run.target or run.job
        assert job.response_model is not None
        return await parse_with_reasks(
            job.response_model,
            job.model,
            job.max_reasks,
            messages,
            completion,
            ask=lambda again: self._send(run, again, params),
            before_reask=lambda: self._check_start(job),  # the budget may be spent by now
        )

    def _check_start(self, job: GenerationJob) -> None:
        if self.stop_after_402 and self.client.out_of_credits is not None:
            raise InsufficientCreditsError(
                f"{job.model}: not sent: an earlier request on this key got HTTP 402 -- "
                "add credits to your provider account, then run again",
                status=402,
            )
        if self.stop_after_402 and self.client.key_refused is not None:
            raise InvalidKeyError(
                f"{job.model}: not sent: an earlier request on this key got HTTP 401 -- check "
                "the API key, then run again",
                status=401,
            )
        if self.budget is not None:
            self.budget.check(job)

    async def _paused(self, run: JobRun) -> None:
        pause = self.client.paused(run.job.model)
        if pause is not None and self.on_event is not None:
            seconds = round(pause.left(), 3)
            event = ClientPaused(run.index, run.job, pause.scope, seconds, pause.reason)
            await emit(self.on_event, event)

    async def _check(self, job: GenerationJob, text: str) -> Any:
        assert self.validate is not None
        try:
            value = self.validate(text)
            if inspect.isawaitable(value):
                value = await value
        except ValidationFailedError:
            raise
        except Exception as exc:  # a validator's own error means the answer failed it
            raise ValidationFailedError(f"{job.model}: {type(exc).__name__}: {exc}") from exc
        # False (the bool) is a verdict: `lambda t: len(t) > 10`. Other falsy values are
        # values: json.loads("[]") is a valid answer, None is "checked, nothing to keep".
        if value is False:
            raise ValidationFailedError(f"{job.model}: the answer failed validation (False)")
        return value

    @staticmethod
    def result(run: JobRun, error: BaseException | None, elapsed: float) -> GenerationResult:
        """The job's result: its answer and value, or ``error`` (with the last answer, if
        one came back, e.g. the one that failed validation)."""
        completion = run.completion
        return GenerationResult(
            index=run.index,
            job=run.job,
            text=completion.text if completion is not None else None,
            completion=completion,
            error=error,
            attempts=run.sent,
            latency=elapsed,
            value=run.value if error is None else None,
            parsed=run.parsed if error is None else None,
            answered_by=(run.target or run.job).model if error is None else None,
            fell_back=list(run.fell_back),
        )


class _MoveOn(Exception):
    """The job's current model is unusable for long: go on with its next fallback."""


class _Retrying:
    """The retry hook: count the retry on the client and tell the run's handler."""

    __slots__ = ("run", "runner")

    def __init__(self, runner: JobRunner, run: JobRun) -> None:
        self.runner = runner
        self.run = run

    async def __call__(self, attempt: int, delay: float, error: BaseException) -> None:
        self.runner.client.count_retry()
        add_event(
            "retry", {"attempt": attempt, "delay_s": delay, "error.type": type(error).__name__}
        )
        if self.runner.on_event is not None:
            event = JobRetrying(self.run.index, self.run.job, attempt, delay, error)
            await emit(self.runner.on_event, event)
