"""Typed events of a generation run, and the legacy progress adapter."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from ...core._logging import mask_secrets
from ..client._models import Completion, Spend
from ._jobs import GenerationJob, GenerationResult

__all__ = [
    "ClientPaused",
    "Event",
    "JobFailed",
    "JobFellBack",
    "JobRetrying",
    "JobStarted",
    "JobSucceeded",
    "JobToken",
    "ResultCounts",
    "RunProgress",
    "legacy_progress",
]

_log = structlog.get_logger("asyncgen.events")
PREVIEW_CHARS = 200


@dataclass(frozen=True, slots=True)
class JobStarted:
    """A job got a slot and its first request is about to be sent."""

    index: int
    job: GenerationJob


@dataclass(frozen=True, slots=True)
class JobRetrying:
    """Attempt ``attempt`` of a job failed; the next starts after ``delay`` seconds."""

    index: int
    job: GenerationJob
    attempt: int
    delay: float
    error: BaseException


@dataclass(frozen=True, slots=True)
class ClientPaused:
    """A 429 (or a provider's rate-limit headers) paused new requests on the client.

    ``scope`` is "model" (only ``job.model`` waits) or "key" (every model on the key:
    429s from two or more models in one window, or a key-wide header).
    """

    index: int
    job: GenerationJob
    scope: str
    seconds: float
    reason: str


@dataclass(frozen=True, slots=True)
class JobToken:
    """Text of a streamed job (``stream=True``) as it arrives."""

    index: int
    job: GenerationJob
    text: str


@dataclass(frozen=True, slots=True)
class JobFellBack:
    """A job gave up on ``from_model`` (``reason``) and goes on with ``to_model``."""

    index: int
    job: GenerationJob
    from_model: str
    to_model: str
    reason: str


@dataclass(frozen=True, slots=True)
class JobSucceeded:
    """A job finished with an answer."""

    index: int
    job: GenerationJob
    result: GenerationResult


@dataclass(frozen=True, slots=True)
class JobFailed:
    """A job finished without an answer; ``result.error`` says why."""

    index: int
    job: GenerationJob
    result: GenerationResult


@dataclass(frozen=True, slots=True)
class RunProgress:
    """``done`` of ``total`` jobs are finished, ``ok`` of them with an answer."""

    done: int
    total: int
    ok: int
    failed: int

    @property
    def percent(self) -> float:
        """Share of the run finished, 0 to 100."""
        return 100.0 * self.done / self.total if self.total else 100.0


Event = (
    JobStarted
    | JobRetrying
    | ClientPaused
    | JobFellBack
    | JobToken
    | JobSucceeded
    | JobFailed
    | RunProgress
)
OnEvent = Callable[[Event], object]


@dataclass
class ResultCounts(Spend):
    """Finished jobs counted from their events: what a progress bar or a page shows.

    Their usage (``tokens``, ``cost``, ``unpriced``) adds up as a :class:`Spend`.
    """

    done: int = 0
    ok: int = 0
    failed: int = 0
    retries: int = 0
    latency: float = 0.0  # seconds, summed over ok jobs

    def count(self, event: Event) -> bool:
        """Count a JobRetrying, JobSucceeded or JobFailed; False for any other event."""
        if isinstance(event, JobRetrying):
            self.retries += 1
            return True
        if not isinstance(event, JobSucceeded | JobFailed):
            return False
        result = event.result
        self.finished(result.ok, result.completion, result.latency)
        return True

    def finished(self, ok: bool, completion: Completion | None, latency: float = 0.0) -> None:
        """Count one finished job (from an event, or a Batch API answer as it is read)."""
        self.done += 1
        if completion is not None:
            self.add(completion.usage)
        if ok:
            self.ok += 1
            self.latency += latency
        else:
            self.failed += 1


async def emit(on_event: OnEvent | None, event: Event) -> None:
    """Deliver ``event``; a failing handler is logged and never breaks the run."""
    if on_event is None:
        return
    try:
        result = on_event(event)
        if inspect.isawaitable(result):
            await result
    except Exception:
        _log.exception("on_event_handler_failed", event_type=type(event).__name__)


def legacy_progress(callback: Callable[[float, str], object]) -> Callable[[Event], Awaitable[None]]:
    """Adapt events to the legacy ``progress_callback(percent, message)`` protocol.

    For each finished job it sends ``MODEL_OK::<model>::ok`` and
    ``PREVIEW::<model>::<first 200 characters>``, or ``MODEL_FAIL::<model>::<error>``, with
    the run's percent done. ``callback`` may be sync or async.

    Returns:
        A handler to pass as ``on_event``.
    """
    finished: list[GenerationResult] = []

    async def send(percent: float, message: str) -> None:
        result = callback(percent, message)
        if inspect.isawaitable(result):
            await result

    async def handler(event: Event) -> None:
        if isinstance(event, JobSucceeded | JobFailed):
            finished.append(event.result)
            return
        if not isinstance(event, RunProgress):
            return
        percent = round(event.percent, 1)
        for result in finished:
            if result.ok:
                await send(percent, f"MODEL_OK::{result.model}::ok")
                preview = (result.text or "")[:PREVIEW_CHARS].replace("\n", " ")
                await send(percent, f"PREVIEW::{result.model}::{preview}")
            else:
                reason = f"{type(result.error).__name__}: {mask_secrets(str(result.error))}"
                await send(percent, f"MODEL_FAIL::{result.model}::{reason}")
        finished.clear()

    return handler
