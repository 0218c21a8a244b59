"""Adaptive pacing: learn a server's admission rate from its 429s and pace starts at it.

AIMD on the number of requests in flight (``_adaptive.py``) cannot bound the *rate*:
when a server answers in a few milliseconds, even two requests in flight make hundreds
a second. So ``concurrency="auto"`` also paces request starts with GCRA (see
``_ratelimit.py``; no burst) at a rate it learns:

- Slow start, as TCP's: until the first 429 the pace starts at 8 a second and doubles
  every quarter second (1,000 a second within 2 s), so the first refusal comes with
  one or two requests in flight rather than a whole window of them.
- At a 429 the rate is measured over the episode that just ended, from the first start
  after the previous resume to the moment the server will admit again (now plus its
  Retry-After): ``(successes + still in flight) / duration`` (requests in flight when
  the 429 arrives were admitted too, mostly: a server answering in 0.5 s would
  otherwise look half as fast over a short episode). That reads a sliding window (10 a second), a
  token bucket (its refill rate, after the first burst is spent) and a fixed window
  (600 a minute: 600 successes, then a Retry-After to the minute's end) alike. It paces
  at 97 % of that.
- A ceiling remembers where the server said no. After a paced episode it is that
  measure: the server refused even the paced rate. After an unpaced one (the first, or
  a cut that left nothing to measure) it is the larger of the measure and the most
  successes that started within one second lately, since a first episode still ramping
  up underestimates a sliding window's capacity. Below 97 % of the ceiling the rate
  climbs 10 % a second; the ceiling itself rises 2 % per ``probe_after`` seconds
  without a 429, so a limit that was raised is found again, slowly.
- A provider's ``x-ratelimit-limit-requests`` (per minute) sets the rate outright.

One 429 counts once per round trip: a refusal of a request that started before the last
cut is the same overload, already paid for. A cut voids the turns booked at the old rate
that have not started: those requests book again at the new rate (sent at the old one,
a whole reservation queue is refused, one after another).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["EVIDENCE_FADES", "AdaptiveRate", "PacingStatistics"]

MARGIN = 0.97
CLIMB_EVERY = 1.0  # the longest gap between successes that counts towards a climb
CLIMB_STEP = 1.10  # the climb towards the ceiling, per second
PROBE_AFTER = 10.0  # seconds without a 429 before the ceiling rises a step
PROBE_STEP = 1.02
STEP_DOWN = 0.8  # the most one cut may lower the ceiling
MEASURABLE = 3  # requests admitted in an episode for its rate to mean something
INITIAL_RATE = 8.0  # requests a second at the start of the slow start
DOUBLING = 0.25  # seconds per doubling of the slow start
MAX_RATE = 1e5  # where the slow start stops counting: effectively unpaced
MIN_RATE = 0.05  # requests a second: never slower than one every 20 s
RECENT = 1.0  # seconds of successes that bound the ceiling from below
EVIDENCE_FADES = 60.0  # seconds without a key's 429 before a key-wide pace stops binding


@dataclass(frozen=True, slots=True)
class PacingStatistics:
    """A snapshot: the learned rate (None: not yet limited), cuts and probes made."""

    rate: float | None
    cuts: int
    probes: int


def _densest(starts: list[float], width: float) -> int:
    """The most of the sorted ``starts`` in any window of ``width`` seconds."""
    best, first = 0, 0
    for last, at in enumerate(starts):
        while starts[first] <= at - width:
            first += 1
        best = max(best, last - first + 1)
    return best


class AdaptiveRate:
    """Paces request starts at a rate learned from the server's refusals.

    Args:
        clock: Returns now in seconds (monotonic); a seam for tests.
        probe_after: Seconds without a 429 before the rate rises a step.
        burst: Starts that go at once before the slow start paces (until the first 429).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        probe_after: float = PROBE_AFTER,
        burst: int = 0,
    ) -> None:
        self._burst = burst
        self.rate: float | None = None
        self.ceiling: float | None = None
        self._recent: deque[float] = deque()
        self._clock = clock
        self._probe_after = probe_after
        self._tat = float("-inf")
        self._began: float | None = None
        self._episode_start: float | None = None
        self._episode_paced = False
        self._successes = 0
        self._in_flight: list[float] = []  # start times of requests not yet answered
        self._last_cut = float("-inf")
        self._last_change = float("-inf")
        self._last_climb = float("-inf")
        self._last_probe = float("-inf")
        self._cuts = 0
        self._probes = 0

    def __repr__(self) -> str:
        return f"AdaptiveRate(rate={self.rate})"

    def reserve(self) -> float:
        """Book the next start and return its time on the clock (now, or later)."""
        now = self._clock()
        if self._began is None:
            self._began = now
        rate = self.rate if self.rate is not None else self._slow_start(now)
        start = max(now, self._tat)
        if self._burst and self.rate is None:  # the first ``burst`` starts go at once
            self._burst -= 1
            start = now
        self._tat = start + 1.0 / rate
        if self._episode_start is None:
            self._episode_start = start
        return start

    def _slow_start(self, now: float) -> float:
        doublings = (0.0 if self._began is None else now - self._began) / DOUBLING
        return INITIAL_RATE * 2.0 ** min(doublings, 20.0) if doublings < 14 else MAX_RATE

    async def acquire(self) -> float:
        """Wait for this request's turn; return its start time (pass it back later).

        A cut while it waits voids its turn (booked at the old, refused rate): it books
        again at the new one, after the server's resume.
        """
        while True:
            cuts = self._cuts
            start = self.reserve()
            delay = start - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._cuts == cuts:
                break
        self._in_flight.append(start)
        return start

    @property
    def in_flight(self) -> int:
        """Requests that took a turn and have no verdict yet."""
        return len(self._in_flight)

    def _answered(self, started: float) -> None:
        if started in self._in_flight:
            self._in_flight.remove(started)

    def abandoned(self, started: float) -> None:
        """A paced request ended without a verdict (a timeout, a 5xx, a cancellation)."""
        self._answered(started)

    def succeeded(self, started: float) -> None:
        """A request that started at ``started`` was admitted and answered."""
        self._answered(started)
        if self._episode_start is not None and started >= self._episode_start:
            self._successes += 1
        now = self._clock()
        self._recent.append(started)
        while self._recent and self._recent[0] < now - 4 * RECENT:
            self._recent.popleft()
        if self.rate is None or self.ceiling is None:
            return
        if now - max(self._last_change, self._last_probe) >= self._probe_after:
            self.ceiling *= PROBE_STEP  # no 429 for a while: the limit may have risen
            self._last_probe = now
            self._probes += 1
        if self.rate < self.ceiling * MARGIN:  # climb, continuously, towards the ceiling
            step = CLIMB_STEP ** min(now - self._last_climb, CLIMB_EVERY)
            self.rate = min(self.rate * step, self.ceiling * MARGIN)
        self._last_climb = now

    def busy(self) -> bool:
        """Whether enough requests were answered lately (the last ``MEASURABLE`` answers
        started within ``RECENT`` second) for a 429 to be about this pace's own limit."""
        recent = self._recent
        return len(recent) >= MEASURABLE and recent[-MEASURABLE] >= self._clock() - RECENT

    def rejected(self, started: float, pause: float) -> bool:
        """A request that started at ``started`` got a 429; admission resumes in ``pause`` s.

        Returns:
            True when the rate was (re)measured.
        """
        self._answered(started)
        if started <= self._last_cut:
            return False
        now = self._clock()
        resume = now + pause
        recent = _densest(sorted(self._recent), RECENT) / RECENT
        # One noisy episode (a refusal right after a resume) must not drag the ceiling
        # down more than a step; a real drop in the limit still shows within a few.
        before = self.ceiling * STEP_DOWN if self.ceiling is not None else 0.0
        pace = self.rate if self.rate is not None else self._slow_start(now)
        episode = self._episode_start if self._episode_start is not None else now
        admitted = self._successes + sum(1 for t in self._in_flight if t >= episode)
        measured = admitted / max(resume - episode, 1e-3)
        if not self._episode_paced and max(admitted, recent) >= MEASURABLE:
            self.ceiling = max(measured, recent)  # the slow start undershoots the limit
        elif self._episode_paced and admitted >= MEASURABLE:  # refused while paced
            self.ceiling = measured
        else:  # too short to measure (a first request refused: the key is busy elsewhere,
            # or limited across models): back off a step, measure this and the next one
            self.ceiling = min(self.ceiling or pace, pace)
            self.rate = max(min(pace, self.ceiling) * STEP_DOWN, MIN_RATE)
            self._cut(now, resume, new_episode=False)
            return True
        self.ceiling = max(self.ceiling, before, MIN_RATE)
        self.rate = max(min(measured, self.ceiling) * MARGIN, MIN_RATE)
        self._cut(now, resume, new_episode=True)
        return True

    def _cut(self, now: float, resume: float, *, new_episode: bool) -> None:
        self._last_cut = now
        self._last_change = now
        if new_episode:
            self._episode_start = resume
            self._episode_paced = True
            self._successes = 0
        self._tat = resume  # the turns booked at the old rate are void: they book again
        self._cuts += 1

    def advertised(self, per_minute: float) -> None:
        """The provider says its limit (``x-ratelimit-limit-requests``): pace just under it."""
        rate = max(per_minute / 60.0 * MARGIN, MIN_RATE)
        if per_minute > 0 and rate != self.rate:
            self.rate, self.ceiling = rate, per_minute / 60.0
            self._last_change = self._clock()

    def statistics(self) -> PacingStatistics:
        """The learned rate and how often it was cut or raised."""
        rate = round(self.rate, 4) if self.rate is not None else None
        return PacingStatistics(rate, self._cuts, self._probes)
