"""RetryPolicy, RetryCaller, retry and retrying: schedules, Retry-After, deadlines, logs."""

from __future__ import annotations

import io
import json

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncgen import (
    BadRequestError,
    RateLimitedError,
    RetryCaller,
    RetryPolicy,
    ServerError,
    configure_logging,
    retry,
    retrying,
)


def no_jitter() -> float:
    return 0.0


class Sleeps:
    """An injected sleep that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class Flaky:
    """Fails with the given errors in turn, then returns "done"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


class TestPolicy:
    def test_default_delays(self) -> None:
        """Defaults: 3 attempts, so two delays of 0.5 s and 1 s before jitter."""
        assert list(RetryPolicy().delays(rng=no_jitter)) == [0.5, 1.0]

    def test_delays_are_capped_then_jittered(self) -> None:
        """The cap applies before jitter, which adds at most ``jitter`` of the delay."""
        policy = RetryPolicy(max_attempts=12, max_delay=60.0, jitter=0.1)
        plain = list(policy.delays(rng=no_jitter))
        assert plain == [0.5, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
        top = list(policy.delays(rng=lambda: 0.999999))
        assert all(d * 1.0999 <= t <= d * 1.1 for d, t in zip(plain, top, strict=True))

    @given(
        attempts=st.integers(1, 15),
        base=st.floats(0, 10),
        multiplier=st.floats(1, 4),
        jitter=st.floats(0, 1),
    )
    def test_every_delay_lies_within_jitter_of_its_plan(
        self, attempts: int, base: float, multiplier: float, jitter: float
    ) -> None:
        """Each jittered delay d' satisfies d <= d' <= d * (1 + jitter)."""
        policy = RetryPolicy(
            max_attempts=attempts, base_delay=base, multiplier=multiplier, jitter=jitter
        )
        delays = list(policy.delays())
        assert len(delays) == attempts - 1
        for n, delay in enumerate(delays, start=1):
            planned = min(base * multiplier ** (n - 1), policy.max_delay)
            assert planned <= delay <= planned * (1 + jitter) + 1e-9

    @pytest.mark.parametrize(
        ("field", "value", "error"),
        [
            ("max_attempts", 0, ValueError),
            ("max_attempts", 2.5, TypeError),
            ("base_delay", -1, ValueError),
            ("jitter", -0.1, ValueError),
            ("multiplier", 0.5, ValueError),
            ("max_retry_after", -3, ValueError),
        ],
    )
    def test_bad_values_are_refused(self, field: str, value: object, error: type) -> None:
        """Nonsense settings fail at construction with the field's name."""
        with pytest.raises(error, match=field):
            RetryPolicy(**{field: value})  # type: ignore[arg-type]

    def test_never_tries_once(self) -> None:
        """RetryPolicy.never() plans no delays."""
        assert list(RetryPolicy.never().delays()) == []

    def test_retry_on_accepts_classes_tuples_and_predicates(self) -> None:
        """retry_on may be a class, a tuple of classes or a predicate."""
        assert RetryPolicy().should_retry(ServerError())
        assert not RetryPolicy().should_retry(BadRequestError())
        assert RetryPolicy(retry_on=(KeyError, ValueError)).should_retry(KeyError())
        assert RetryPolicy(retry_on=lambda e: "again" in str(e)).should_retry(OSError("again"))


class TestRetryCaller:
    async def test_succeeds_after_transient_failures(self) -> None:
        """Transient failures are retried with the planned delays until success."""
        sleeps, fn = Sleeps(), Flaky(ServerError(status=502), ServerError(status=503))
        result = await RetryCaller(sleep=sleeps, rng=no_jitter)(fn)
        assert (result, fn.calls, sleeps.delays) == ("done", 3, [0.5, 1.0])

    async def test_gives_up_with_the_last_error(self) -> None:
        """After max_attempts the last error is raised with its own type."""
        sleeps = Sleeps()
        fn = Flaky(*(ServerError(f"fail {i}", status=500) for i in range(5)))
        with pytest.raises(ServerError, match="fail 2"):
            await RetryCaller(sleep=sleeps, rng=no_jitter)(fn)
        assert fn.calls == 3

    async def test_permanent_errors_are_not_retried(self) -> None:
        """A permanent error is raised after one attempt, without sleeping."""
        sleeps, fn = Sleeps(), Flaky(BadRequestError("bad", status=400))
        with pytest.raises(BadRequestError):
            await RetryCaller(sleep=sleeps)(fn)
        assert (fn.calls, sleeps.delays) == (1, [])

    async def test_retry_after_wins_over_backoff(self) -> None:
        """The server's Retry-After replaces the computed delay."""
        sleeps, fn = Sleeps(), Flaky(RateLimitedError(retry_after=7.0))
        await RetryCaller(sleep=sleeps, rng=no_jitter)(fn)
        assert sleeps.delays == [7.0]

    async def test_retry_after_is_ignored_when_told(self) -> None:
        """respect_retry_after=False keeps the computed delay."""
        sleeps, fn = Sleeps(), Flaky(RateLimitedError(retry_after=7.0))
        policy = RetryPolicy(respect_retry_after=False)
        await RetryCaller(policy, sleep=sleeps, rng=no_jitter)(fn)
        assert sleeps.delays == [0.5]

    async def test_too_long_retry_after_fails_at_once(self) -> None:
        """A Retry-After beyond max_retry_after fails now instead of waiting."""
        sleeps, fn = Sleeps(), Flaky(RateLimitedError(retry_after=3600.0))
        with pytest.raises(RateLimitedError):
            await RetryCaller(RetryPolicy(max_retry_after=60), sleep=sleeps)(fn)
        assert (fn.calls, sleeps.delays) == (1, [])

    async def test_stops_before_sleeping_past_an_anyio_deadline(self) -> None:
        """Inside anyio.fail_after, a wait that would end too late is not started."""
        sleeps, fn = Sleeps(), Flaky(ServerError(), ServerError())
        with anyio.fail_after(5):
            with pytest.raises(ServerError):
                await RetryCaller(RetryPolicy(base_delay=10), sleep=sleeps)(fn)
        assert (fn.calls, sleeps.delays) == (1, [])

    async def test_on_retry_is_told_each_retry(self) -> None:
        """on_retry receives the failed attempt's number, the delay and the error."""
        seen: list[tuple[int, float, str]] = []

        async def note(attempt: int, delay: float, error: BaseException) -> None:
            seen.append((attempt, delay, type(error).__name__))

        fn = Flaky(ServerError(), RateLimitedError(retry_after=2.0))
        await RetryCaller(sleep=Sleeps(), rng=no_jitter, on_retry=note)(fn)
        assert seen == [(1, 0.5, "ServerError"), (2, 2.0, "RateLimitedError")]

    async def test_each_retry_is_logged_with_its_attempt(self) -> None:
        """A 'retrying' line is written per retry, bound to the attempt number."""
        out = io.StringIO()
        configure_logging(json=True, stream=out)
        fn = Flaky(ServerError("boom", status=503), ServerError("boom", status=503))
        await RetryCaller(sleep=Sleeps(), rng=no_jitter)(fn)
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        retries = [line for line in lines if line["event"] == "retrying"]
        assert [(r["attempt"], r["delay"], r["error_type"]) for r in retries] == [
            (1, 0.5, "ServerError"),
            (2, 1.0, "ServerError"),
        ]
        assert all(r["level"] == "warning" for r in retries)


class TestHelpers:
    async def test_retry_passes_arguments_and_policy(self) -> None:
        """retry() forwards args and kwargs to fn and takes ``policy`` for itself."""
        calls: list[tuple[int, str]] = []

        async def fn(a: int, *, b: str) -> str:
            calls.append((a, b))
            if len(calls) < 2:
                raise ServerError()
            return f"{a}{b}"

        policy = RetryPolicy(base_delay=0.0)
        assert await retry(fn, 1, b="x", policy=policy) == "1x"
        assert calls == [(1, "x"), (1, "x")]

    async def test_retry_refuses_a_wrong_policy(self) -> None:
        """A policy that is not a RetryPolicy is a TypeError."""
        with pytest.raises(TypeError, match="RetryPolicy"):
            await retry(Flaky(), policy=3)  # type: ignore[arg-type]

    async def test_retrying_decorator_keeps_name_and_doc(self) -> None:
        """The decorated function keeps its metadata and retries each call."""
        sleeps, flaky = Sleeps(), Flaky(ServerError())

        @retrying(RetryPolicy(max_attempts=2), sleep=sleeps, rng=no_jitter)
        async def fetch(x: int) -> str:
            """Fetch x."""
            return f"{x}:{await flaky()}"

        assert (fetch.__name__, fetch.__doc__) == ("fetch", "Fetch x.")
        assert await fetch(4) == "4:done"
        assert sleeps.delays == [0.5]

    def test_bare_decorator_use_is_explained(self) -> None:
        """@retrying without parentheses fails with a message saying how to use it."""

        async def fn() -> None:
            return None

        with pytest.raises(TypeError, match="parentheses"):
            retrying(fn)  # type: ignore[arg-type]
