"""RateLimiter (GCRA), AdaptiveConcurrency (AIMD) and CircuitBreaker, on fake clocks."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncgen import AdaptiveConcurrency, CircuitBreaker, CircuitOpenError, RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestRateLimiter:
    def test_requests_are_spaced_without_burst(self) -> None:
        """At 60 rpm and no burst, bookings made together start 1 s apart."""
        limiter = RateLimiter(60, headroom=0, clock=FakeClock())
        assert [limiter.reserve() for _ in range(4)] == [0.0, 1.0, 2.0, 3.0]

    def test_burst_lets_a_second_of_traffic_through(self) -> None:
        """At 600 rpm with 1 s of burst, 11 start at once, then one every 0.1 s."""
        limiter = RateLimiter(600, burst=1.0, headroom=0, clock=FakeClock())
        delays = [limiter.reserve() for _ in range(14)]
        assert delays[:11] == [0.0] * 11
        assert delays[11:] == pytest.approx([0.1, 0.2, 0.3])

    def test_time_passing_frees_capacity(self) -> None:
        """After waiting out the interval, the next request goes at once."""
        clock = FakeClock()
        limiter = RateLimiter(60, headroom=0, clock=clock)
        limiter.reserve()
        clock.now = 1.0
        assert limiter.reserve() == 0.0

    def test_tokens_per_minute(self) -> None:
        """Token costs space requests: 100 tokens at 6,000 tpm hold the next for 1 s."""
        limiter = RateLimiter(tokens_per_minute=6000, headroom=0, clock=FakeClock())
        assert limiter.reserve(100) == 0.0
        assert limiter.reserve(100) == pytest.approx(1.0)

    def test_settle_refunds_an_overestimate(self) -> None:
        """Reporting fewer tokens than estimated brings the next start forward."""
        limiter = RateLimiter(tokens_per_minute=6000, headroom=0, clock=FakeClock())
        limiter.settle(limiter.book(100), 40)
        assert limiter.reserve(10) == pytest.approx(0.4)
        assert limiter.statistics().tokens == 50

    def test_both_limits_apply(self) -> None:
        """The later of the two meters decides."""
        limiter = RateLimiter(60, 60_000, headroom=0, clock=FakeClock())
        limiter.reserve(2000)  # 2 s worth of tokens, 1 s worth of requests
        assert limiter.reserve(1) == pytest.approx(2.0)

    @pytest.mark.parametrize(
        "kwargs", [{"requests_per_minute": 0}, {"tokens_per_minute": -5}, {"burst": -1}]
    )
    def test_bad_settings(self, kwargs: dict[str, float]) -> None:
        """Non-positive limits and negative bursts are refused."""
        with pytest.raises(ValueError, match="must be"):
            RateLimiter(**kwargs)  # type: ignore[arg-type]

    @given(
        rpm=st.integers(1, 1200),
        burst=st.floats(0, 5),
        gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
    )
    def test_never_more_than_rate_plus_burst_in_any_minute(
        self, rpm: int, burst: float, gaps: list[float]
    ) -> None:
        """Whatever the arrival pattern, starts in any 60 s window <= rpm + burst share."""
        clock = FakeClock()
        limiter = RateLimiter(rpm, burst=burst, headroom=0, clock=clock)
        starts = []
        for gap in gaps:
            clock.now += gap
            starts.append(clock.now + limiter.reserve())
        allowed = rpm + burst * rpm / 60 + 1
        for i, first in enumerate(starts):
            in_window = sum(first <= s < first + 60 for s in starts[i:])
            assert in_window <= allowed + 1e-9

    @settings(max_examples=80, deadline=None)
    @given(
        rpm=st.integers(60, 3000),
        costs=st.lists(st.tuples(st.floats(0, 0.3), st.integers(1, 400)), min_size=1, max_size=150),
    )
    def test_default_never_exceeds_the_limit_in_any_second(
        self, rpm: int, costs: list[tuple[float, int]]
    ) -> None:
        """With defaults, no window holds more than rpm/60 a second, nor tpm/60 tokens a second."""
        clock, tpm = FakeClock(), 60_000
        limiter = RateLimiter(rpm, tpm, clock=clock)
        starts: list[tuple[float, int]] = []
        for gap, tokens in costs:
            clock.now += gap
            starts.append((limiter.book(tokens).start, tokens))  # exact, not now + delay
        allowed = math.ceil(rpm / 60)  # a rate that is not whole: ceil(r) per ceil(r)/r s
        span = allowed / (rpm / 60)
        for first, _ in starts:
            assert sum(1 for s, _ in starts if first <= s < first + span) <= allowed
            assert sum(t for s, t in starts if first <= s < first + 1.0) <= tpm / 60 + 1e-9

    def test_a_429_lowers_the_pace_once_per_round_trip_then_it_recovers(self) -> None:
        """A step of 5 % per round trip, never under half, back by 1 % per 5 s."""
        clock = FakeClock()
        limiter = RateLimiter(600, headroom=0, clock=clock)
        early = limiter.book()
        assert limiter.note_rejected(early)
        assert limiter.pace() == pytest.approx(0.95)
        assert not limiter.note_rejected(early)  # started before the cut: same overload
        clock.now = 0.5
        assert limiter.note_rejected(limiter.book())
        assert limiter.pace() == pytest.approx((0.95 + 0.5 * 0.002) * 0.95)  # 0.5 s recovered
        for _ in range(30):
            clock.now += 0.01
            limiter.note_rejected(limiter.book())
        assert limiter.pace() == pytest.approx(0.5)  # the floor
        clock.now += 100.0
        assert limiter.pace() == pytest.approx(0.7)  # 0.2 back in 100 s
        assert limiter.statistics().rejections == 32
        spaced = RateLimiter(600, headroom=0, clock=FakeClock())
        spaced.note_rejected()
        assert spaced.reserve() == 0.0
        assert spaced.reserve() == pytest.approx(0.1 / 0.95)  # the interval at 95 %

    async def test_acquire_waits_on_the_injected_sleep(self) -> None:
        """acquire() sleeps the booked delay through the injected sleep."""
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        limiter = RateLimiter(120, headroom=0, clock=FakeClock(), sleep=sleep)
        await limiter.acquire()
        await limiter.acquire()
        assert slept == [0.5]


class TestAdaptiveConcurrency:
    async def test_grows_by_one_per_window_of_successes(self) -> None:
        """After ``limit`` successes the limit grows by one."""
        aimd = AdaptiveConcurrency(initial=2, maximum=10)
        for _ in range(2):
            aimd.release(await aimd.acquire())
        assert aimd.limit == 3
        for _ in range(3):
            aimd.release(await aimd.acquire())
        assert aimd.limit == 4

    async def test_halves_once_per_round_trip(self) -> None:
        """Several 429s for requests started before the cut halve the limit only once."""
        aimd = AdaptiveConcurrency(initial=8, maximum=10)
        starts = [await aimd.acquire() for _ in range(4)]
        for started in starts:
            aimd.release(started, overloaded=True, ok=False)
        assert aimd.limit == 4
        aimd.release(await aimd.acquire(), overloaded=True, ok=False)
        assert aimd.limit == 2
        assert aimd.statistics().decreases == 2

    async def test_bounds(self) -> None:
        """The limit stays within [1, maximum]; seeds are clamped."""
        aimd = AdaptiveConcurrency(initial=1, maximum=3)
        aimd.release(await aimd.acquire(), overloaded=True, ok=False)
        assert aimd.limit == 1
        aimd.seed(100)
        assert aimd.limit == 3
        with pytest.raises(ValueError, match="initial"):
            AdaptiveConcurrency(initial=5, maximum=3)

    async def test_acquire_blocks_at_the_limit(self) -> None:
        """A caller waits while the limit is in use and goes once a slot frees."""
        aimd = AdaptiveConcurrency(initial=1, maximum=1)
        first = await aimd.acquire()
        waiting = asyncio.create_task(aimd.acquire())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        aimd.release(first)
        await asyncio.wait_for(waiting, 1)
        assert aimd.statistics().in_use == 1


def state(breaker: CircuitBreaker) -> str:
    """The breaker's state read afresh (keeps type checkers from pinning a property)."""
    return breaker.state


class TestCircuitBreaker:
    def test_opens_after_consecutive_failures(self) -> None:
        """K consecutive failures open the circuit; calls then fail fast."""
        breaker = CircuitBreaker(3, 10, name="m", clock=FakeClock())
        for _ in range(3):
            breaker.before_call()
            breaker.record_failure()
        assert state(breaker) == "open"
        with pytest.raises(CircuitOpenError, match="m: circuit open"):
            breaker.before_call()

    def test_success_resets_the_count(self) -> None:
        """Failures must be consecutive."""
        breaker = CircuitBreaker(2, 10, clock=FakeClock())
        breaker.record_failure()
        breaker.record_success()
        breaker.record_failure()
        assert state(breaker) == "closed"

    def test_half_open_lets_one_probe_through(self) -> None:
        """After the cool-down one probe goes; others still fail fast until it ends."""
        clock = FakeClock()
        breaker = CircuitBreaker(1, 5, clock=clock)
        breaker.record_failure()
        clock.now = 5.0
        assert state(breaker) == "half-open"
        breaker.before_call()
        with pytest.raises(CircuitOpenError):
            breaker.before_call()
        breaker.record_success()
        assert state(breaker) == "closed"

    def test_failed_probe_reopens(self) -> None:
        """A failing probe opens the circuit for another cool-down."""
        clock = FakeClock()
        breaker = CircuitBreaker(1, 5, clock=clock)
        breaker.record_failure()
        clock.now = 6.0
        breaker.before_call()
        breaker.record_failure()
        assert state(breaker) == "open"
        clock.now = 10.9
        assert state(breaker) == "open"
        clock.now = 11.0
        assert state(breaker) == "half-open"
