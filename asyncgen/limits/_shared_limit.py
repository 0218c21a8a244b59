"""A rate limiter shared by every process and machine, through one Redis key.

``SharedRateLimiter("redis://...", name="openai-key-1", requests_per_minute=...)``
keeps the GCRA state of ``_ratelimit.py`` (requests and tokens, the pace lowered by
429s) in a Redis hash, changed only by Lua scripts that read the server's own ``TIME``:
every booking is one atomic round trip, and client clocks do not matter. Token
settlement after a response and a 429's step down are scripts too, so what one process
learns slows them all.

If Redis cannot be reached the limiter must not open the floodgates: it falls back to a
local RateLimiter at this process's share of the limits (the limits divided by the
number of processes seen using the key in the last 30 s, or by ``fallback_share``
before any was seen, less one request a second for the streams being out of step),
warns once, and tries Redis again every few seconds. Back on Redis (the server
restarted, or a replica took over), it keeps to its share too for a while: Redis knows
nothing of the starts made locally, and the other processes may still be on theirs
(each tries Redis again within ``RETRY_REDIS``). It also marks the key, so that every
process keeps to its own share meanwhile, those that never lost Redis included (they
could otherwise take the whole budget beside the others' local starts). A failover that
sent every process to its share and back measured 13-22 refusals out of 200 requests
before the first, 0-5 before the second (one run in three over the bound of 4), 0 after.

With no request limit configured, the limiter carries the key's pace that
``concurrency="auto"`` learns instead (see ``llm/_key_pace.py``): when a client judges
a 429 to be the key's, the measure and the cut happen in Redis over every process's
requests, and every process's bookings are spaced at the learned rate while it is in
force. N workers on one key learn its rate once, and a worker that starts later begins
at it (see ``_shared_scripts.py``).

Per-second token precision: across processes the token meter is GCRA alone (no log of
the last second), so one request's tokens may spill over a second's share; the
``headroom`` covers estimates, not that spill.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
import weakref
from typing import TYPE_CHECKING, Any

import structlog

from ..core._redis import close_redis, open_redis, parse_redis_url, unreachable_errors
from ._ratelimit import (
    DEFAULT_BURST,
    FLOOR,
    LOOKAHEAD,
    STEP_DOWN,
    WINDOW,
    Booking,
    RateLimiter,
)
from ._shared_scripts import BOOK, KEY_REFUSED, REJECT, SETTLE

if TYPE_CHECKING:  # redis-py is imported where used: only shared limiters pay for it
    from ..core._redis import RedisClient

__all__ = ["DEFAULT_FALLBACK_SHARE", "DEFAULT_SHARED_HEADROOM", "SharedRateLimiter"]

DEFAULT_FALLBACK_SHARE = 0.25  # of the limits, before any other process was seen
# Processes on a busy machine start late by a few milliseconds now and then, and one
# late start can land in the next 1-second window: more headroom than one process needs.
DEFAULT_SHARED_HEADROOM = 0.05
RETRY_REDIS = 5.0  # seconds between attempts to reach Redis again while falling back
# Seconds after Redis answers again that a process still keeps to its local share (as
# well as to Redis): until every other process has tried Redis again, plus the window
# in which the starts Redis never saw still count.
PROBATION = RETRY_REDIS + WINDOW

_log = structlog.get_logger("asyncgen.ratelimit")


class SharedRateLimiter(RateLimiter):
    """A RateLimiter whose state lives in Redis, shared by every process using ``name``.

    Close it with ``await limiter.aclose()`` when done. Its bookings are async (one Redis round
    trip); ``settle`` and ``note_rejected`` send their update in the background.

    Args:
        url: ``redis://[:password@]host:port/db``, ``rediss://``, or
            ``redis+sentinel://host:26379,.../service/db`` (the master Sentinel names),
            or ``redis+cluster://host:7000,...`` (the limit's keys share one slot).
        name: The limit's name: every process giving the same name shares one budget
            (e.g. one per API key).
        requests_per_minute: As for RateLimiter.
        tokens_per_minute: As for RateLimiter.
        burst: As for RateLimiter.
        headroom: As for RateLimiter, but 5 % by default (see DEFAULT_SHARED_HEADROOM).
        fallback_share: The share of the limits this process keeps if Redis is down
            before any other process was seen (default a quarter).

    Raises:
        ValueError: As RateLimiter, or an empty name.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        burst: float = DEFAULT_BURST,
        headroom: float = DEFAULT_SHARED_HEADROOM,
        fallback_share: float = DEFAULT_FALLBACK_SHARE,
    ) -> None:
        super().__init__(requests_per_minute, tokens_per_minute, burst=burst, headroom=headroom)
        if not name:
            raise ValueError("a shared limiter needs a name (e.g. one per API key)")
        if not 0 < fallback_share <= 1:
            raise ValueError(f"fallback_share must be in (0, 1], got {fallback_share}")
        self.name = name
        self._target, _ = parse_redis_url(url)  # a bad URL fails here, said plainly
        self._key = f"asyncgen:ratelimit:{{{name}}}"
        self._id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._burst = burst
        self._share = fallback_share
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[RedisClient, dict[str, Any]]
        ] = weakref.WeakKeyDictionary()
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._fallback: RateLimiter | None = None
        self._down_since: float | None = None
        self._probation_until = float("-inf")  # (monotonic) the local share still holds
        self._horizon = float("-inf")  # (monotonic) where all bookings in Redis end
        self._background: set[asyncio.Task[Any]] = set()
        self.learned_rate: float | None = None  # the key's learned pace, while in force
        self.learned_until = float("-inf")  # (monotonic) when it stops binding

    def __repr__(self) -> str:
        return (
            f"SharedRateLimiter(name={self.name!r}, requests_per_minute="
            f"{self.requests_per_minute}, tokens_per_minute={self.tokens_per_minute})"
        )

    @property
    def falling_back(self) -> bool:
        """True while Redis is unreachable and the local share is in force."""
        return self._down_since is not None

    @property
    def learns(self) -> bool:
        """Whether this limiter carries the key's pace that ``concurrency="auto"`` learns
        (no request limit configured) and can reach Redis to share it."""
        return self.requests_per_minute is None and self._down_since is None

    def _script(self, name: str, source: str) -> Any:
        """This event loop's client's handle on a Lua script (EVALSHA, loaded on need)."""
        loop = asyncio.get_running_loop()
        found = self._clients.get(loop)
        if found is None:
            client = open_redis(self._target, socket_timeout=2.0, socket_connect_timeout=2.0)
            found = self._clients[loop] = (client, {})
        client, scripts = found
        if name not in scripts:
            scripts[name] = client.register_script(source)
        return scripts[name]

    def book(self, tokens: int = 0, *, now: float | None = None) -> Booking:
        """Not available: a shared booking is a Redis round trip (use :meth:`acquire`).

        Raises:
            TypeError: Always.
        """
        raise TypeError("a shared limiter books through Redis: await limiter.acquire(tokens)")

    async def acquire(self, tokens: int = 0) -> Booking:
        """Book through Redis (or the local share while it is down) and wait.

        A start is booked only when it is near (``LOOKAHEAD``): so the requests before a
        token-costed one have settled at their real usage by then, and should Redis go,
        the bookings left reach at most that far ahead of what the other processes know
        (their local shares begin after them). Callers without a token cost book one at
        a time per process (the others wait their turn here, not by polling Redis).
        """
        # Token-costed callers each watch for the opening settled usage makes (one at a
        # time, a caller would sleep through it on an estimate): 1.11 x the ideal
        # makespan queued, 1.02 x not. Request-only callers queue: one asks Redis.
        costed = bool(tokens and self.tokens_per_minute)
        async with contextlib.nullcontext() if costed else self._queue():
            while True:
                booked = await self._book_remote(tokens, None, LOOKAHEAD)
                if isinstance(booked, Booking):
                    break
                await asyncio.sleep(max(0.0, booked - LOOKAHEAD / 2))
        if booked.delay > 0:
            await asyncio.sleep(booked.delay)
        return booked

    def _queue(self) -> asyncio.Lock:
        """This event loop's queue for booking: one caller at a time asks Redis."""
        loop = asyncio.get_running_loop()
        lock = self._queues.get(loop)
        if lock is None:
            lock = self._queues[loop] = asyncio.Lock()
        return lock

    async def book_shared(self, tokens: int = 0, *, now: float | None = None) -> Booking:
        """Book the next start in the shared state; ``now`` overrides Redis TIME (tests)."""
        booked = await self._book_remote(tokens, now, None)
        assert isinstance(booked, Booking)  # nothing is too far without a horizon
        return booked

    async def _book_remote(
        self, tokens: int, now: float | None, within: float | None
    ) -> Booking | float:
        """Book, unless the start is more than ``within`` s away: then return the wait."""

        if self._down_since is not None and time.monotonic() - self._down_since < RETRY_REDIS:
            return self._local().book(tokens)  # the local share, until the retry is due
        args = [
            self.requests_per_minute or 0,
            self.tokens_per_minute or 0,
            tokens,
            self.headroom,
            self._burst,
            self._id,
            "" if now is None else repr(now),
            "" if within is None else repr(within),
            "1" if self.requests_per_minute is None else "0",
            "" if self._down_since is None else repr(PROBATION),  # back: tell everyone
        ]
        try:
            reply = await self._script("book", BOOK)(keys=[self._key], args=args)
            start, delay, who, _pace, ref, booked, ahead, learned, in_force, probation = reply
        except unreachable_errors() as exc:  # a cluster's CLUSTERDOWN / TRYAGAIN too
            return self._fall_back(exc).book(tokens)
        self._recovered(int(who))
        if float(probation) > 0:  # a process is back from its share: this one keeps to
            # its own as well (it may never have left Redis, its budget then the whole)
            self._probation_until = max(self._probation_until, time.monotonic() + float(probation))
            if self._fallback is None:
                self._fallback = self._share_of_limits(after=time.monotonic())
        # Should Redis go, every booking made so far still starts: a local share
        # begins after the last of them, not beside them.
        self._horizon = max(self._horizon, time.monotonic() + float(ahead))
        self.learned_rate = float(learned) or None
        self.learned_until = (
            time.monotonic() + float(in_force) if self.learned_rate else float("-inf")
        )
        if not int(booked):
            return float(delay)
        wait = max(0.0, float(delay))
        if self._fallback is not None:  # just back on Redis: the local share holds too
            if time.monotonic() < self._probation_until:
                wait = max(wait, self._fallback.book(tokens).delay)
            else:
                self._fallback = None
        booking = Booking(float(start), wait, tokens, None, _text(ref) or None)
        with self._lock:
            self._admitted += 1
            self._spent_tokens += tokens
            self._waited += booking.delay
        return booking

    def _local(self) -> RateLimiter:
        if self._fallback is None:
            # Every start Redis booked (for any process) still goes: begin after them.
            self._fallback = self._share_of_limits(after=self._horizon)
        return self._fallback

    def _share_of_limits(self, *, after: float) -> RateLimiter:
        """This process's part of the limits while each process paces on its own.

        Streams that are each evenly spaced but out of step can put one more start
        each into a 1-second window than their rates say, so each process gives up one
        request a second (at most half its share) to keep the sum under the limit.

        It begins after ``after`` (where the bookings in Redis end), plus one to two of
        its own intervals: the second before ``after`` is full at the shared rate, and
        every process's first local start would otherwise land on that same instant.
        Tokens have no interval to wait: a local token meter begins a second later.
        """
        share, rpm, tpm = self._share, None, None
        offset = WINDOW
        if self.requests_per_minute:
            per_second = self.requests_per_minute / 60.0 * share
            rpm = max(per_second - 1.0, per_second / 2) * 60.0
            offset = 60.0 / rpm * (1 + self.headroom) * (1 + random.random())
        if self.tokens_per_minute:
            tpm = self.tokens_per_minute * share * 0.9
            offset = max(offset, WINDOW)
        local = RateLimiter(rpm, tpm, burst=0.0, headroom=self.headroom)
        local.start_after(after + offset)
        return local

    def _fall_back(self, exc: BaseException) -> RateLimiter:
        if self._down_since is None:
            _log.warning(
                "shared_limiter_unreachable",
                name=self.name,
                share=round(self._share, 4),
                error=f"{type(exc).__name__}: {exc}",
                action="limiting this process to its share until Redis answers again",
            )
            self._fallback = None
        self._down_since = time.monotonic()
        return self._local()

    def _recovered(self, participants: int) -> None:
        self._share = 1.0 / max(1, participants)  # this process's share, if Redis goes
        if self._down_since is not None:
            _log.warning("shared_limiter_reachable_again", name=self.name)
            self._down_since = None
            self._probation_until = time.monotonic() + PROBATION

    def settle(self, booking: Booking, actual: int) -> None:
        """Correct the shared token meter (in the background) once usage is known."""
        if not self.tokens_per_minute or not booking.tokens or actual == booking.tokens:
            return
        change, booking.tokens = actual - booking.tokens, actual
        args = [self.tokens_per_minute, change, self.headroom, booking.ref or ""]
        self._spawn(self._script("settle", SETTLE)(keys=[self._key], args=args))

    def note_rejected(self, booking: Booking | None = None) -> bool:
        """Lower the shared pace a step (in the background): every process slows down.
        A limiter that learns the key's pace counts the refusal for its next measure."""
        if self._down_since is not None:
            return self._local().note_rejected(booking)
        if booking is None:
            return False
        configured = self.requests_per_minute or self.tokens_per_minute
        learns = "1" if self.requests_per_minute is None else "0"
        args = [repr(booking.start), STEP_DOWN, FLOOR, self._id, learns, "1" if configured else "0"]
        self._spawn(self._script("reject", REJECT)(keys=[self._key], args=args))
        return bool(configured)

    def key_refused(self, booking: Booking, wait: float) -> None:
        """One of the key's 429s (a client's KeyPace judged it so), for a request booked
        by ``booking``; the server admits again in ``wait`` seconds. Measures the key's
        rate over every process's requests and cuts the learned pace (in the background);
        use it instead of :meth:`note_rejected` for that 429.

        Raises:
            ValueError: The limiter has a request limit configured (it learns none).
        """
        if self.requests_per_minute is not None:
            raise ValueError("a limiter with requests_per_minute set does not learn a pace")
        if self._down_since is not None:
            return
        booked_at = booking.start - booking.delay
        args = [repr(booking.start), repr(max(0.0, wait)), repr(booked_at), self._id]
        self._spawn(self._script("key_refused", KEY_REFUSED)(keys=[self._key], args=args))

    def _spawn(self, call: Any) -> None:
        from redis import exceptions as redis_errors

        async def quietly() -> None:
            try:
                await call
            except (redis_errors.RedisError, OSError) as exc:
                self._fall_back(exc)

        task = asyncio.get_running_loop().create_task(quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settled(self) -> None:
        """Wait until the updates sent in the background (settlements, 429s) are done."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def aclose(self) -> None:
        """Close this event loop's Redis connection."""
        await self.settled()
        found = self._clients.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await close_redis(found[0])


def _text(value: Any) -> str:
    """A Redis reply as text (bytes unless the client decodes)."""
    return value.decode() if isinstance(value, bytes) else str(value or "")
