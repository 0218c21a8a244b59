"""A worker's credit pause: out of credits, generation waits; it does not die.

When a generation job's request gets HTTP 402 the job goes back to the queue without
using an attempt (ready again after two probe periods, so the probe is another job),
and the worker stops claiming generation jobs (other kinds go on). A 402 that is the
request's own (it costs more than the key can afford), or that repeats for a job after
the key has shown credits since, fails that job instead: no pause, no loop.
Every ``probe`` seconds one generation job is let through as a real request (on
OpenRouter, only once its ``/key`` endpoint shows credits again); when it gets an
answer, claiming resumes. One warning, one ``on_pause`` call and one metrics state per
pause and per resume.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ..core._errors import AsyncGenError
from ..llm import ChatClient
from ._metrics import Metrics

__all__ = ["DEFAULT_CREDIT_PROBE", "CreditGate", "CreditPause"]

DEFAULT_CREDIT_PROBE = 30.0
MAX_STRUCK = 10_000  # jobs whose last 402 is remembered

_log = structlog.get_logger("asyncgen.worker")


@dataclass(frozen=True, slots=True)
class CreditPause:
    """A worker stopped (``paused``) or resumed taking generation jobs: the key's
    credits ran out, or came back."""

    paused: bool
    worker: str
    reason: str


class CreditGate:
    """Whether a worker may claim generation jobs, and when it probes for credits.

    Args:
        client: The worker's ChatClient (its ``key_info`` is read on OpenRouter).
        worker: The worker's name, for events and logs.
        probe: Seconds between probes while paused.
        on_pause: Called with a CreditPause on each pause and resume (sync or async;
            its errors are logged, never raised).
        metrics: Where the ``credit_paused`` state is shown (1 while paused).
        clock: Monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        client: ChatClient,
        *,
        worker: str,
        probe: float = DEFAULT_CREDIT_PROBE,
        on_pause: Callable[[CreditPause], object] | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not probe > 0:
            raise ValueError(f"credit_probe must be > 0 seconds, got {probe}")
        self.client = client
        self.worker = worker
        self.probe = probe
        self.on_pause = on_pause
        self.metrics = metrics
        self._clock = clock
        self.paused = False
        self._next_probe = 0.0
        self._funded_at = -math.inf  # when the key last showed credits (an answer, /key)
        self._struck: dict[str, float] = {}  # job id -> when it last got a 402
        if metrics is not None:
            metrics.set_state("credit_paused", 0)

    async def may_probe(self) -> bool:
        """While paused: True when one generation job may go now as the probe."""
        if not self.paused or self._clock() < self._next_probe:
            return False
        self._next_probe = self._clock() + self.probe  # one probe per period
        if self.client.provider == "openrouter":
            try:
                info = await self.client.key_info()
            except AsyncGenError as exc:  # cannot tell: let a real request find out
                _log.warning("key_info_unavailable", error=str(exc))
                return True
            if info.limit_remaining is not None and info.limit_remaining <= 0:
                return False
            self._funded_at = self._clock()  # /key shows credit left
        return True

    def probe_in(self) -> float:
        """Seconds until the next probe may go (while paused; 0 when it may go now)."""
        return max(0.0, self._next_probe - self._clock())

    def unaffordable(self, job_id: str) -> bool:
        """True when this job got a 402 before and the key has shown credits since (an
        answer, or credit left on OpenRouter's ``/key``): the job, not the key, is what
        cannot be paid for."""
        at = self._struck.get(job_id)
        return at is not None and self._funded_at > at

    async def ran_out(self, reason: str, *, job_id: str | None = None) -> None:
        """A generation request got 402: pause (once) and probe after ``probe`` s."""
        self._next_probe = self._clock() + self.probe
        if job_id is not None:
            if len(self._struck) >= MAX_STRUCK:  # forget the oldest
                self._struck.pop(next(iter(self._struck)))
            self._struck[job_id] = self._clock()
        if self.paused:
            return
        self.paused = True
        _log.warning(
            "credits_exhausted",
            worker=self.worker,
            reason=reason,
            action=f"add credits; generation jobs wait (probing every {self.probe:g} s), "
            "other jobs go on",
        )
        await self._tell(CreditPause(True, self.worker, reason))

    async def answered(self) -> None:
        """A generation request got an answer: resume if paused."""
        self._funded_at = self._clock()
        if not self.paused:
            return
        self.paused = False
        self.client.clear_out_of_credits()
        _log.warning("credits_restored", worker=self.worker, action="generation jobs resume")
        await self._tell(CreditPause(False, self.worker, "a request was answered"))

    async def _tell(self, event: CreditPause) -> None:
        if self.metrics is not None:
            self.metrics.set_state("credit_paused", 1 if event.paused else 0)
        if self.on_pause is None:
            return
        try:
            result = self.on_pause(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            _log.exception("on_credit_pause_failed", worker=self.worker)
