"""The simulator's rate limiters, one per model (and one for the key when it has a limit):
the three kinds providers run.

- ``bucket``: GCRA (a token bucket): ``burst`` seconds of traffic at once, then the
  rate. Forgiving: a short burst above the rate passes.
- ``sliding``: at most ``rpm / 60`` requests (``tpm / 60`` tokens) in any 1-second
  window, as OpenAI enforces its per-minute limits (for a rate that is not whole,
  ``ceil(rpm / 60)`` in any ``ceil(rpm / 60) / (rpm / 60)`` seconds). Exact spacing
  at the rate rides the window's edge: any jitter is a 429.
- ``fixed``: at most ``rpm`` requests (``tpm`` tokens) per clock minute, counted from
  the server's start; the counts reset at each boundary. Bursty: a fresh minute admits
  everything at once, then nothing until the next.

Each ``check`` admits a request (returning an :class:`Admitted` to correct later) or
returns the seconds until it would be admitted, which the app sends as Retry-After.
Token charges are estimated at admission (prompt at 4 characters a token plus
``max_tokens``, 256 if unset) and corrected to the reported usage afterwards, as
providers do.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from ._config import Limits

__all__ = ["Admitted", "Limiter", "estimate_charge", "make_limiter"]

MINUTE = 60.0
DEFAULT_COMPLETION_CHARGE = 256


def estimate_charge(messages: list[dict[str, Any]], request: dict[str, Any]) -> int:
    """Tokens charged at admission: prompt characters / 4 plus the completion budget."""
    chars = sum(len(str(m.get("content") or "")) + 8 for m in messages if isinstance(m, dict))
    budget = request.get("max_tokens") or request.get("max_completion_tokens")
    completion = int(budget) if isinstance(budget, int | float) else DEFAULT_COMPLETION_CHARGE
    return chars // 4 + 1 + completion


class Admitted:
    """An admitted request, as its limiter booked it (the sliding log's entry)."""

    __slots__ = ("entry",)

    def __init__(self, entry: list[float] | None = None) -> None:
        self.entry = entry


class Limiter:
    """The interface: admit or say how long to wait; correct a token charge later."""

    def check(self, profile: Limits, tokens: int, now: float) -> Admitted | float:
        """Admit a request costing ``tokens``, or return seconds until it would be."""
        raise NotImplementedError

    def correct(self, profile: Limits, admitted: Admitted, tokens: int) -> None:
        """Charge (or refund, if negative) ``tokens`` more for an admitted request."""
        raise NotImplementedError


class _Bucket(Limiter):
    def __init__(self) -> None:
        self.tat_requests = float("-inf")
        self.tat_tokens = float("-inf")

    def check(self, profile: Limits, tokens: int, now: float) -> Admitted | float:
        waits = [0.0]
        if profile.rpm is not None:
            waits.append(self.tat_requests - profile.burst - now)
        if profile.tpm is not None:
            waits.append(self.tat_tokens - profile.burst - now)
        wait = max(waits)
        if wait > 0:
            return wait
        if profile.rpm is not None:
            self.tat_requests = max(self.tat_requests, now) + MINUTE / profile.rpm
        if profile.tpm is not None:
            self.tat_tokens = max(self.tat_tokens, now) + tokens * MINUTE / profile.tpm
        return Admitted()

    def correct(self, profile: Limits, admitted: Admitted, tokens: int) -> None:
        if profile.tpm is not None:
            self.tat_tokens += tokens * MINUTE / profile.tpm


class _Sliding(Limiter):
    """A log of recent admissions, checked against two sliding windows.

    Requests: ``ceil(r)`` in any window of ``ceil(r) / r`` seconds, for ``r = rpm / 60``
    (exactly ``r`` in any second when ``r`` is whole, as 600 rpm is 10 a second).
    Tokens: ``tpm / 60`` in any second.
    """

    def __init__(self) -> None:
        self.log: deque[list[float]] = deque()  # [time, tokens] of each admitted request

    def check(self, profile: Limits, tokens: int, now: float) -> Admitted | float:
        rate = profile.rpm / MINUTE if profile.rpm else 1.0
        allowed = max(1, math.ceil(rate - 1e-9))
        window = allowed / rate
        while self.log and self.log[0][0] <= now - max(window, 1.0):
            self.log.popleft()
        waits = [0.0]
        if profile.rpm is not None:
            recent = [entry for entry in self.log if entry[0] > now - window]
            if len(recent) >= allowed:
                waits.append(recent[-allowed][0] + window - now)
        if profile.tpm is not None:
            waits.append(self._token_wait(profile.tpm / MINUTE, tokens, now))
        wait = max(waits)
        if wait > 0:
            return wait
        entry = [now, float(tokens)]
        self.log.append(entry)
        return Admitted(entry)

    def _token_wait(self, capacity: float, tokens: int, now: float) -> float:
        recent = [entry for entry in self.log if entry[0] > now - 1.0]
        used = sum(entry[1] for entry in recent)
        if not recent or used + tokens <= capacity:
            return 0.0
        for at, spent in recent:  # the oldest entries leave the window first
            used -= spent
            if used + tokens <= capacity or used <= 0:
                return at + 1.0 - now
        return 0.0

    def correct(self, profile: Limits, admitted: Admitted, tokens: int) -> None:
        if admitted.entry is not None:  # an entry already out of the window changes nothing
            admitted.entry[1] = max(0.0, admitted.entry[1] + tokens)


class _Fixed(Limiter):
    """Counts per clock minute since the server started; they reset at each boundary."""

    def __init__(self) -> None:
        self.epoch: float | None = None
        self.minute = -1
        self.requests = 0
        self.tokens = 0.0

    def check(self, profile: Limits, tokens: int, now: float) -> Admitted | float:
        if self.epoch is None:
            self.epoch = now
        width = profile.fixed_window
        share = width / MINUTE
        minute = math.floor((now - self.epoch) / width)
        if minute != self.minute:
            self.minute, self.requests, self.tokens = minute, 0, 0.0
        full = (profile.rpm is not None and self.requests + 1 > profile.rpm * share) or (
            profile.tpm is not None
            and self.tokens + tokens > profile.tpm * share
            and self.tokens > 0
        )
        if full:
            return self.epoch + (minute + 1) * width - now
        self.requests += 1
        self.tokens += tokens
        return Admitted()

    def correct(self, profile: Limits, admitted: Admitted, tokens: int) -> None:
        self.tokens = max(0.0, self.tokens + tokens)


def make_limiter(kind: str) -> Limiter:
    """A fresh limiter of ``kind``: "bucket", "sliding" or "fixed"."""
    return {"bucket": _Bucket, "sliding": _Sliding, "fixed": _Fixed}[kind]()
