"""AdaptiveRate on a fake clock: slow start, measuring at a 429, climbing, probing."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from asyncgen.limits._pacing import INITIAL_RATE, MARGIN, AdaptiveRate
from tests.test_ratelimit import FakeClock


def run(pacer: AdaptiveRate, clock: FakeClock, seconds: float, *, limit: float) -> int:
    """Send as the pacer allows to a server admitting ``limit`` a second (a sliding
    window); a refusal waits out its Retry-After. Returns the 429s."""
    refused, admitted = 0, list[float]()
    end = clock.now + seconds
    while clock.now < end:
        start = pacer.reserve()
        clock.now = max(clock.now, start)
        pacer._in_flight.append(start)
        window = [t for t in admitted if t > clock.now - 1.0]
        if len(window) >= limit:
            refused += 1
            pacer.rejected(start, window[-int(limit)] + 1.0 - clock.now)
        else:
            admitted.append(clock.now)
            pacer.succeeded(start)
    return refused


class TestAdaptiveRate:
    def test_slow_start_doubles_every_quarter_second(self) -> None:
        """Unlimited, the pace starts at 8 a second and doubles each 0.25 s."""
        clock = FakeClock()
        pacer = AdaptiveRate(clock=clock)
        first, second = pacer.reserve(), pacer.reserve()
        assert second - first == pytest.approx(1 / INITIAL_RATE)
        clock.now = 1.0
        a, b = pacer.reserve(), pacer.reserve()
        assert b - a == pytest.approx(1 / (INITIAL_RATE * 16), rel=0.01)

    def test_learns_a_sliding_window_and_stays_under_it(self) -> None:
        """Against 10 a second, it settles just under 10 with few refusals."""
        clock = FakeClock()
        pacer = AdaptiveRate(clock=clock)
        early = run(pacer, clock, 10.0, limit=10)
        later = run(pacer, clock, 30.0, limit=10)
        assert early <= 6
        assert later <= 3  # probing may cost one or two
        assert pacer.rate is not None
        assert 8.5 <= pacer.rate <= 10.0

    def test_a_refusal_before_the_last_cut_counts_once(self) -> None:
        """429s for requests that started before the cut change nothing more."""
        clock = FakeClock()
        pacer = AdaptiveRate(clock=clock)
        starts = [pacer.reserve() for _ in range(5)]
        for s in starts[:3]:
            pacer.succeeded(s)
        clock.now = 0.5
        assert pacer.rejected(starts[3], 0.5)
        assert not pacer.rejected(starts[4], 0.5)
        assert pacer.statistics().cuts == 1

    def test_an_advertised_limit_sets_the_pace(self) -> None:
        """x-ratelimit-limit-requests: 600 paces at 97 % of 10 a second."""
        pacer = AdaptiveRate(clock=FakeClock())
        pacer.advertised(600)
        assert pacer.rate == pytest.approx(10 * MARGIN)

    def test_the_ceiling_rises_once_per_probe_period(self) -> None:
        """Without a 429, the ceiling rises 2 % per probe period, not on every success."""
        clock = FakeClock()
        pacer = AdaptiveRate(clock=clock, probe_after=10.0)
        run(pacer, clock, 5.0, limit=10)  # learn the limit
        assert pacer.ceiling is not None
        before = pacer.ceiling
        for _ in range(300):  # 30 s of successes, 10 a second, no 429
            clock.now += 0.1
            pacer.succeeded(clock.now)
        assert before < pacer.ceiling <= before * 1.02**3 * 1.0001

    async def test_a_cut_voids_the_turns_booked_at_the_old_rate(self) -> None:
        """Requests waiting for turns booked before a 429 book again after the server's
        resume, at the new rate, instead of going at the refused one (a queue of
        reservations would otherwise be refused one after another)."""
        clock = FakeClock()  # stands still: each waiter sleeps its booked delay for real
        pacer = AdaptiveRate(clock=clock)
        pacer.advertised(600)  # 9.7 a second: turns at 0, 0.103, 0.206, 0.309
        first = await pacer.acquire()
        waiting = [asyncio.create_task(pacer.acquire()) for _ in range(3)]
        await asyncio.sleep(0.01)
        assert pacer.rejected(first, pause=0.3)
        pacer.advertised(1200)  # the new rate (what the cut measured does not matter here)
        starts = await asyncio.gather(*waiting)
        assert min(starts) >= 0.3  # none went before the resume
        gaps = [b - a for a, b in itertools.pairwise(sorted(starts))]
        assert gaps == pytest.approx([1 / (1200 / 60 * MARGIN)] * 2)  # at the new rate


class TestFirstRefusals:
    def test_a_first_request_refused_backs_off_a_step_not_to_a_crawl(self) -> None:
        """A 429 for the very first request (the key busy elsewhere, or limited across
        models) measures nothing: the pace backs off one step from the slow start
        instead of taking 0 admitted as the server's rate (one request in 20 s)."""
        clock = FakeClock()
        pacer = AdaptiveRate(clock=clock)
        started = pacer.reserve()
        assert pacer.rejected(started, 0.1)
        assert pacer.rate is not None
        assert pacer.rate >= INITIAL_RATE * 0.5

    def test_a_burst_goes_at_once_then_the_slow_start_paces(self) -> None:
        """``burst`` starts go together; the next waits for the slow start's turn."""
        clock = FakeClock()
        pacer = AdaptiveRate(clock=clock, burst=3)
        starts = [pacer.reserve() for _ in range(5)]
        assert starts[:3] == [0.0, 0.0, 0.0]
        assert starts[3] > 0.0
        assert starts[4] - starts[3] == pytest.approx(1 / INITIAL_RATE)
