"""auto's pace for the whole key, for when the limit is the key's and not a model's.

``concurrency="auto"`` learns a pace per model (:class:`~asyncgen.limits.AdaptiveRate`).
When one limit covers the whole key (OpenRouter's free tier, a self-hosted gateway, an
Azure deployment serving several model names), a pace per model cannot find it: a model
with one job never sees a 429 of its own, and each model's slow start climbs past the
key's rate by itself. So a client keeps one more pace, for the key:

- Until it has learned a rate, it slow-starts the first request of each new model name,
  as a model's pace slow-starts its requests (8 a second, doubling every 0.25 s: unpaced
  within 3.5 s), so a cold batch over many model names does not open with a burst. The
  first ``SLOW_START_AFTER`` go at once (a ``fan_out`` to a few models is not held back);
  a model's later requests are its own pace's. (Slow-starting every request across the
  key instead held each of two or six busy models to a share of one ramp, and their own
  paces measured too little: 25 to 45 % longer runs at per-model limits.)
- It learns from the key's 429s only. A 429 is its model's when that model was busy
  enough to be at a limit of its own (three or more of its requests answered in the
  last second). The key is taken as limited when ``KEY_CLUSTER`` 429s of quiet models
  come in a row, from two or more models, with no answer between (at a key-wide limit
  every model is refused while the key is full, however little it sent), or when
  rate-limit headers that speak for the key (OpenRouter's ``X-RateLimit-*``) say its
  budget is spent. Once it is, a quiet model's 429 is the key's when it follows another
  with no answer between (``RENEW_CLUSTER``): the key's pace probing past the limit
  draws a few, while a provider refusing a share of requests at random (OpenRouter while
  an upstream is busy) rarely refuses several in a row. Each of the key's 429s measures
  the key's rate, as a model's 429 measures the model's, and holds every start until
  the server's resume. (Two 429s from two models within a second, then any quiet 429,
  were taken for the key's at first: 0.5 % 429s at 1,000 model names instead of 4 %,
  but random refusals of 15 % over 50 models then made the key "limited" and cut its
  pace at every refusal: 300 jobs took over five minutes. With this rule they take 12 s,
  or 28 s when three random refusals do come in a row and the key is taken as limited
  for a while.)
- From the first of the key's 429s, every start of a model that is not busy waits for
  the key's turn, then its model's. That lasts until ``EVIDENCE_FADES`` seconds pass
  without one of the key's 429s: then the models' paces alone rule again; the rate
  learned is kept for the next time.

With a SharedRateLimiter that has no request limit (``ChatClient(rate_limit=...)``), the
key's pace is the limiter's, in Redis: each of the key's 429s is measured there over
every process's requests, every booking is spaced at the rate while it is in force, and
this pace only slow-starts new model names until some process has learned a rate (see
``limits/_shared_scripts.py``). N workers on one key learn it once.

Every 429 feeds its model's pace too, so under a key-wide limit a model's pace learns at
most its share of the key. Two busy models meeting their own limits at the same moment
(side by side in their slow starts) are not taken for the key. A key-wide limit met by a
few busy models is learned by their own paces, each its share, as before there was a
key's pace; it is the many models with a few requests each that need it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from ...limits._pacing import EVIDENCE_FADES, AdaptiveRate

__all__ = ["EVIDENCE_FADES", "KEY_CLUSTER", "RENEW_CLUSTER", "SLOW_START_AFTER", "KeyPace"]

KEY_CLUSTER = 3  # quiet 429s in a row, from two or more models, that make the key limited
RENEW_CLUSTER = 2  # quiet 429s in a row that are the key's once it is limited
SLOW_START_AFTER = 8  # models whose first requests go at once (a fan_out is not held)

_log = structlog.get_logger("asyncgen.client")


class KeyPace:
    """The pace of one client's whole key; see the module.

    Args:
        clock: Returns now in seconds (monotonic); a seam for tests.
        fades: Seconds without one of the key's 429s before its limit is forgotten.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, fades: float = EVIDENCE_FADES
    ) -> None:
        self.pacer = AdaptiveRate(clock=clock, burst=SLOW_START_AFTER)
        self._clock = clock
        self._fades = fades
        self._streak = 0  # quiet 429s since the last answer
        self._streak_models: set[str] = set()  # ... and their models
        self._limited_until = float("-inf")
        self._seen: set[str] = set()  # models that sent a request, until a rate is learned
        self._shared = False  # a rate learned by a process sharing the key (see adopt)

    def __repr__(self) -> str:
        return f"KeyPace(limited={self.limited}, rate={self.pacer.rate})"

    @property
    def limited(self) -> bool:
        """Whether the key's pace binds every start now (the key's 429s, lately)."""
        return self._clock() < self._limited_until

    @property
    def knows_rate(self) -> bool:
        """Whether a rate was learned for the key (here, or by any process sharing it)."""
        return self.pacer.rate is not None or self._shared

    def paces(self, model: str, *, busy: bool, shared: bool = False) -> bool:
        """Whether a request to ``model`` waits for the key's turn: while the key is
        limited, unless its model is busy enough to have a pace of its own; and, until
        the key has learned a rate, a model's first request (the slow start). With
        ``shared`` the limiter in Redis paces the key (see ``adopt``): only the slow start
        is this pace's."""
        if not self.knows_rate and model not in self._seen:
            self._seen.add(model)
            return True
        return self.limited and not busy and not shared

    def adopt(self, rate: float | None, until: float) -> None:
        """The key's pace as a SharedRateLimiter carries it for every process: ``rate``
        (None: none in force) binds until ``until`` (on this pace's clock)."""
        if rate is None:
            return
        self._shared = True
        self._seen.clear()
        if until > self._limited_until:
            self._limited_until = until

    def refused(self, model: str, wait: float, started: float, *, busy: bool) -> bool:
        """A 429 for ``model``'s request, asking ``wait`` seconds; it started at
        ``started`` on the key's pace (or its model's, when the key did not pace it).
        ``busy``: the model was busy enough to be at a limit of its own.

        Returns:
            True when the 429 is the key's (the key's rate was measured from it).
        """
        if busy:
            self.pacer.abandoned(started)
            return False
        self._streak += 1
        self._streak_models.add(model)
        if self.limited:
            if self._streak < RENEW_CLUSTER:
                self.pacer.abandoned(started)
                return False
        elif self._streak < KEY_CLUSTER or len(self._streak_models) < 2:
            self.pacer.abandoned(started)
            return False
        else:
            _log.warning(
                "key_limited",
                evidence=f"{self._streak} 429s in a row from {len(self._streak_models)} "
                "models, no answer between",
            )
        self._limited_until = self._clock() + self._fades
        self.pacer.rejected(started, wait)
        return True

    def answered(self, started: float | None) -> None:
        """A paced request was answered (``started``: when it took the key's turn)."""
        self._streak = 0
        self._streak_models.clear()
        if started is not None:
            self.pacer.succeeded(started)

    def abandoned(self, started: float | None) -> None:
        """A request that took the key's turn at ``started`` ended without a verdict."""
        if started is not None:
            self.pacer.abandoned(started)

    def key_headers(self) -> None:
        """A provider's rate-limit headers that speak for the key said its budget is spent."""
        if not self.limited:
            _log.warning("key_limited", evidence="the provider's key-wide rate-limit headers")
        self._limited_until = self._clock() + self._fades
