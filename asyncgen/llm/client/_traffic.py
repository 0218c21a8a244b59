"""A client's traffic controls: rate limit, pauses, adaptive concurrency, breakers, counters.

Every request on a ChatClient is admitted here first and reported back when it ends, so
whatever one job learns (a 429, a provider's "budget spent" header, a failing model)
holds back every other job on the same key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...core._errors import InvalidResponseError, RateLimitedError, TransientError
from ...core._retry import DEFAULT_MAX_RETRY_AFTER
from ...limits._adaptive import (
    DEFAULT_INITIAL_CONCURRENCY,
    DEFAULT_MAX_CONCURRENCY,
    AdaptiveConcurrency,
)
from ...limits._breaker import DEFAULT_COOL_DOWN, DEFAULT_FAILURE_THRESHOLD, CircuitBreaker
from ...limits._pacing import AdaptiveRate
from ...limits._ratelimit import Booking, RateLimiter
from ...limits._shared_limit import SharedRateLimiter
from ._hints import pause_from_headers
from ._key_pace import KeyPace
from ._models import Completion, Spend
from ._pauses import BARE_429_PAUSE, CLUSTER_429, LONG_429, Pause, Pauses, Scope, Streaks
from ._tokens import estimate_tokens

__all__ = ["ClientStatistics", "Traffic"]


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    """A snapshot of a ChatClient's traffic since it was made."""

    requests: int
    succeeded: int
    failed: int
    rate_limited: int
    retries: int
    in_flight: int
    concurrency_limit: int | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float
    paused_seconds: float
    open_circuits: tuple[str, ...]
    unpriced: int = 0  # answers whose cost is unknown (not in ``cost``)
    mean_first_token: float | None = None  # streamed answers: mean seconds to first text
    cache_hits: int = 0  # answered from the response cache: not sent, not in the counts above
    cache_misses: int = 0  # looked up, not found: sent
    cache_saved: float = 0.0  # what the hits cost when they were generated

    def to_record(self) -> dict[str, Any]:
        """Every figure as JSON values (what a worker reports about its client)."""
        record = dataclasses.asdict(self)
        record["open_circuits"] = list(self.open_circuits)
        record["cost"] = round(self.cost, 6)
        return record


@dataclass(slots=True)
class Ticket:
    """One admitted request: what to report back when it ends."""

    model: str
    limiter: RateLimiter | None
    booking: Booking | None
    slot: float | None
    max_pause: float = DEFAULT_MAX_RETRY_AFTER
    paced: float | None = None  # when the model's adaptive pacer let it start
    key_paced: float | None = None  # when the key's pacer let it start (see _key_pace)


class Traffic:
    """The shared state behind one ChatClient's requests."""

    def __init__(
        self,
        *,
        rate_limit: RateLimiter | None = None,
        breaker_failures: int = DEFAULT_FAILURE_THRESHOLD,
        breaker_cool_down: float = DEFAULT_COOL_DOWN,
    ) -> None:
        self.rate_limit = rate_limit
        self.adaptive: AdaptiveConcurrency | None = None
        self._breaker_settings = (breaker_failures, breaker_cool_down)
        self._breakers: dict[str, CircuitBreaker] = {}
        self.pauses = Pauses()
        self.streaks = Streaks()
        self.pacers: dict[str, AdaptiveRate] = {}  # per model, with concurrency="auto"
        self.key = KeyPace()  # the whole key's pace, with concurrency="auto"
        self._counts = dict.fromkeys(
            (
                "requests",
                "succeeded",
                "streams",
                "failed",
                "rate_limited",
                "retries",
                "in_flight",
                "prompt",
                "completion",
                "cache_hits",
                "cache_misses",
            ),
            0,
        )
        self._spent = Spend()  # the answers' tokens and cost
        self._cache_saved = 0.0
        self._first_token = 0.0  # seconds to first token, summed over streams

    def adapt(self, maximum: int = DEFAULT_MAX_CONCURRENCY) -> AdaptiveConcurrency:
        """Turn on AIMD concurrency (once: ``maximum`` counts the first time) and return it."""
        if self.adaptive is None:
            self.adaptive = AdaptiveConcurrency(min(DEFAULT_INITIAL_CONCURRENCY, maximum), maximum)
        return self.adaptive

    def breaker(self, model: str) -> CircuitBreaker:
        """The circuit breaker for ``model`` (made on first use)."""
        found = self._breakers.get(model)
        if found is None:
            failures, cool_down = self._breaker_settings
            found = self._breakers[model] = CircuitBreaker(failures, cool_down, name=model)
        return found

    def pause(
        self, model: str, seconds: float, reason: str, *, limit: float, scope: Scope = "model"
    ) -> Pause | None:
        """Hold new requests to ``model`` (or, with scope "key", all) for ``seconds``.

        At most ``limit``: the batch's ``max_retry_after``. A server asking for a longer
        wait fails the job that got it at once, and must not freeze the other jobs
        longer than the policy would ever wait.
        """
        return self.pauses.order(model, min(seconds, limit), reason, scope=scope)

    async def admit(
        self,
        model: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        limiter: RateLimiter | None,
        *,
        max_pause: float = DEFAULT_MAX_RETRY_AFTER,
    ) -> Ticket:
        """Wait until a request may go (breaker, pause, rate limit, concurrency).

        Raises:
            CircuitOpenError: The model's circuit is open.
        """
        breaker = self.breaker(model)
        breaker.before_call()
        shared = None  # a shared limiter that carries the key's pace (see _paced)
        if self.adaptive is not None and isinstance(limiter, SharedRateLimiter) and limiter.learns:
            shared = limiter
        try:
            await self.pauses.wait(model)
            booking = None
            estimate = 0
            if limiter is not None and limiter.tokens_per_minute:
                estimate = estimate_tokens(messages, params)
            if limiter is not None and shared is None:
                booking = await limiter.acquire(estimate)
                await self.pauses.wait(model)  # a 429 may have arrived while we waited
            slot = paced = key_paced = None
            if self.adaptive is not None:
                slot = await self.adaptive.acquire()
                paced, key_paced, shared_booking = await self._paced(model, shared, estimate)
                booking = shared_booking or booking
        except BaseException:
            breaker.record_neutral()
            raise
        self._counts["requests"] += 1
        self._counts["in_flight"] += 1
        return Ticket(model, limiter, booking, slot, max_pause, paced, key_paced)

    async def _paced(
        self, model: str, shared: SharedRateLimiter | None, estimate: int
    ) -> tuple[float, float | None, Booking | None]:
        """Wait for the key's turn (while it paces: see _key_pace), then the model's (the
        model's pace measures real starts: the key's wait is behind them); a pause that
        began meanwhile voids both: book again. Returns both starts.

        With ``shared`` (a SharedRateLimiter with no request limit) the key's pace is
        the one every process sharing it learned: its booking is the key's turn (taken
        here, just before the request goes, as its measure counts bookings as starts),
        returned third; this pace's own turn is then only the slow start.
        """
        while True:
            await self.pauses.wait(model)
            key_paced = booking = None
            busy = model in self.pacers and self.pacer(model).busy()
            if shared is not None:
                self.key.adopt(shared.learned_rate, shared.learned_until)
            if self.key.paces(model, busy=busy, shared=shared is not None):
                key_paced = await self.key.pacer.acquire()
            try:
                if shared is not None:
                    booking = await shared.acquire(estimate)
                    self.key.adopt(shared.learned_rate, shared.learned_until)
                paced = await self.pacer(model).acquire()
            except BaseException:  # cancelled while it waited: the key's turn is not used
                self.key.abandoned(key_paced)
                raise
            if self.pauses.current(model) is None:
                return paced, key_paced, booking
            self.pacer(model).abandoned(paced)
            self.key.abandoned(key_paced)

    def pacer(self, model: str) -> AdaptiveRate:
        """The adaptive pacer of ``model`` (made on first use)."""
        found = self.pacers.get(model)
        if found is None:
            found = self.pacers[model] = AdaptiveRate()
        return found

    def note_headers(self, model: str, headers: Mapping[str, str], *, max_pause: float) -> None:
        """Pause when a provider's rate-limit headers say the budget is spent."""
        advertised = headers.get("x-ratelimit-limit-requests")
        if self.adaptive is not None and advertised and advertised.isdigit():
            self.pacer(model).advertised(float(advertised))
        found = pause_from_headers(headers)
        if found and found[0] > 0:
            wait, scope = found
            if scope == "key" and self.adaptive is not None:
                self.key.key_headers()
            reason = "provider rate-limit headers: budget spent"
            self.pause(model, wait, reason, limit=max_pause, scope=scope)

    def finish(
        self,
        ticket: Ticket,
        *,
        completion: Completion | None,
        error: BaseException | None,
        headers: Mapping[str, str] | None = None,
        first_token: float | None = None,
    ) -> None:
        """Report how an admitted request ended: its answer's rate-limit ``headers`` when
        it got one (a stream's are noted as it opens), its answer or error, a stream's
        time to first token."""
        if headers is not None:
            self.note_headers(ticket.model, headers, max_pause=ticket.max_pause)
        self._counts["in_flight"] -= 1
        if first_token is not None:
            self._counts["streams"] += 1
            self._first_token += first_token
        breaker = self.breaker(ticket.model)
        overloaded = isinstance(error, RateLimitedError)
        if completion is not None:
            breaker.record_success()
            self.streaks.answered(ticket.model)
            self._account(ticket, completion)
        elif isinstance(error, TransientError | InvalidResponseError) and not overloaded:
            breaker.record_failure()
        else:
            breaker.record_neutral()
        if error is not None:
            self._counts["failed"] += 1
        if overloaded:
            self._overloaded(ticket, getattr(error, "retry_after", None))
        elif completion is not None:
            if ticket.paced is not None:
                self.pacer(ticket.model).succeeded(ticket.paced)
                self.key.answered(ticket.key_paced)
        elif ticket.paced is not None:
            self.pacer(ticket.model).abandoned(ticket.paced)
            self.key.abandoned(ticket.key_paced)
        if self.adaptive is not None and ticket.slot is not None:
            # Once the pacer knows the rate it owns rate control; the window only bounds
            # what is in flight, and halving it too would starve a slow server.
            paced = self.pacer(ticket.model).rate is not None or (
                self.key.limited and self.key.knows_rate
            )
            cut = overloaded and not (paced and getattr(error, "retry_after", None))
            self.adaptive.release(ticket.slot, overloaded=cut, ok=completion is not None)

    def _overloaded(self, ticket: Ticket, retry_after: float | None) -> None:
        """A 429: slow the pacer and the limiter; pause the model (Retry-After, or a short
        default) when 429s cluster or the wait asked is long. A lone one delays only its
        own request (the retry policy waits its Retry-After)."""
        self._counts["rate_limited"] += 1
        wait = min(retry_after or BARE_429_PAUSE, ticket.max_pause)
        streak = self.streaks.refused(ticket.model, wait)
        if streak >= CLUSTER_429 or (retry_after or 0.0) >= LONG_429:
            reason = (
                f"{streak} 429s in a row"
                if streak >= CLUSTER_429
                else "429 with a long Retry-After"
            )
            self.pause(ticket.model, wait, reason, limit=ticket.max_pause)
        keys = ticket.paced is not None and self._rejected(ticket, wait)
        limiter, booking = ticket.limiter, ticket.booking
        if limiter is None or booking is None:
            return
        if keys and isinstance(limiter, SharedRateLimiter) and limiter.learns:
            limiter.key_refused(booking, wait)  # measured and cut for every process
        else:
            limiter.note_rejected(booking)  # the real limit is lower

    def _rejected(self, ticket: Ticket, wait: float) -> bool:
        """Feed a paced request's 429 to its model's pace and to the key's (which takes
        what is the key's: see _key_pace). Returns whether it was the key's."""
        assert ticket.paced is not None
        pacer = self.pacer(ticket.model)
        busy = pacer.busy()  # busy enough to be at a limit of its own
        pacer.rejected(ticket.paced, wait)
        started = ticket.key_paced if ticket.key_paced is not None else ticket.paced
        return self.key.refused(ticket.model, wait, started, busy=busy)

    def _account(self, ticket: Ticket, completion: Completion) -> None:
        usage = completion.usage
        self._counts["succeeded"] += 1
        self._counts["prompt"] += usage.prompt_tokens
        self._counts["completion"] += usage.completion_tokens
        self._spent.add(usage)
        if ticket.limiter is not None and ticket.booking is not None:
            booking = ticket.booking
            ticket.limiter.settle(booking, usage.total_tokens or booking.tokens)

    def count_retry(self) -> None:
        """A job on this client is about to retry."""
        self._counts["retries"] += 1

    def statistics(self) -> ClientStatistics:
        """A frozen snapshot of the counters."""
        c = self._counts
        return ClientStatistics(
            requests=c["requests"],
            succeeded=c["succeeded"],
            failed=c["failed"],
            rate_limited=c["rate_limited"],
            retries=c["retries"],
            in_flight=c["in_flight"],
            concurrency_limit=self.adaptive.limit if self.adaptive is not None else None,
            prompt_tokens=c["prompt"],
            completion_tokens=c["completion"],
            total_tokens=c["prompt"] + c["completion"],
            cost=round(self._spent.cost, 10),
            paused_seconds=round(self.pauses.waited, 3),
            open_circuits=tuple(m for m, b in self._breakers.items() if b.state != "closed"),
            unpriced=self._spent.unpriced,
            mean_first_token=(round(self._first_token / c["streams"], 4) if c["streams"] else None),
            cache_hits=c["cache_hits"],
            cache_misses=c["cache_misses"],
            cache_saved=round(self._cache_saved, 10),
        )

    def note_cache(self, found: Completion | None) -> None:
        """Count a response cache lookup: ``found`` is the stored answer, or None."""
        if found is None:
            self._counts["cache_misses"] += 1
            return
        self._counts["cache_hits"] += 1
        self._cache_saved += found.usage.cost or 0.0
