"""Traffic controls end to end: pauses, rate limits, AIMD, breakers, spend guard, stats."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import respx
import structlog.testing

import asyncgen
from asyncgen import ChatClient, RateLimiter, RetryPolicy
from asyncgen.llm.client._hints import parse_duration, pause_from_headers
from asyncgen.llm.client._tokens import estimate_tokens
from asyncgen.testing import Fault, ModelProfile, SimConfig, SimServer

HI = [{"role": "user", "content": "hi"}]


def jobs(n: int, model: str = "m") -> list[dict[str, object]]:
    return [{"model": model, "prompt": f"p{i}"} for i in range(n)]


class TestHints:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("1s", 1.0),
            ("6m0s", 360.0),
            ("20ms", 0.02),
            ("1h2m3.5s", 3723.5),
            ("2.5", 2.5),
            ("soon", None),
            ("5x", None),
            ("", None),
        ],
    )
    def test_parse_duration(self, text: str, seconds: float | None) -> None:
        """OpenAI's reset durations become seconds; anything else is None."""
        assert parse_duration(text) == seconds

    def test_pause_from_openai_and_openrouter_headers(self) -> None:
        """A spent budget with a reset time means pause; budget left means none."""
        openai = httpx.Headers(
            {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"}
        )
        assert pause_from_headers(openai) == (1.5, "model")
        openrouter = httpx.Headers({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "12000"})
        assert pause_from_headers(openrouter, now=10.0) == pytest.approx((2.0, "key"))
        plenty = httpx.Headers(
            {"x-ratelimit-remaining-requests": "9", "x-ratelimit-reset-requests": "1s"}
        )
        assert pause_from_headers(plenty) is None

    def test_token_estimate_counts_prompt_and_completion_budget(self) -> None:
        """The estimate is prompt characters / 4 plus max_tokens (256 when unset)."""
        assert estimate_tokens([{"content": "x" * 400}], {"max_tokens": 50}) == 153
        assert estimate_tokens([{"content": ""}], {}) == 259

    async def test_budget_spent_headers_pause_the_client(self) -> None:
        """After a response saying the budget is spent, the next request waits the reset."""
        body = {"choices": [{"message": {"content": "ok"}}], "usage": {}}
        headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "400ms"}
        arrived: list[float] = []

        def answer(request: httpx.Request) -> httpx.Response:
            arrived.append(time.monotonic())
            return httpx.Response(200, json=body, headers=headers)

        async with respx.mock() as mock, ChatClient("https://x.test/v1") as client:
            mock.post("https://x.test/v1/chat/completions").mock(side_effect=answer)
            await client.chat("m", HI)
            await client.chat("m", HI)
        assert arrived[1] - arrived[0] >= 0.35  # the pause began after the first answer
        # what was left of the 0.4 s when the second request came (the first answer's
        # handling takes part of it, more in a cold process)
        assert 0.2 <= client.statistics().paused_seconds <= 0.4


class TestPauseAndLimits:
    async def test_a_lone_429_delays_only_its_own_request(self, sim: SimServer) -> None:
        """One 429 (as OpenRouter sends while an upstream is busy) pauses nothing: the
        next request to the same model goes at once."""
        limited = Fault(kind="status", status=429, retry_after=0.5, first=1)
        sim.configure(SimConfig(models={"a": ModelProfile(faults=[limited])}))
        async with ChatClient(sim.base_url) as client:
            with pytest.raises(asyncgen.RateLimitedError):
                await client.chat("a", HI)
            assert client.paused("a") is None
            loop = asyncio.get_running_loop()
            began = loop.time()
            await client.chat("a", HI)
            assert loop.time() - began < 0.25
        stats = client.statistics()
        assert (stats.requests, stats.rate_limited, stats.succeeded) == (2, 1, 1)

    async def test_429s_in_a_row_pause_only_their_model(self, sim: SimServer) -> None:
        """Four 429s in a row with no answer between are a limit: they hold their
        model for its Retry-After; another model goes at once."""
        limited = Fault(kind="status", status=429, retry_after=0.5, first=4)
        sim.configure(SimConfig(models={"a": ModelProfile(faults=[limited])}))
        async with ChatClient(sim.base_url) as client:
            for _ in range(4):
                with pytest.raises(asyncgen.RateLimitedError):
                    await client.chat("a", HI)
            loop = asyncio.get_running_loop()
            began = loop.time()
            await client.chat("b", HI)
            other = loop.time() - began
            began = loop.time()
            await client.chat("a", HI)
            same = loop.time() - began
        assert same >= 0.4  # the limited model waited out its Retry-After
        assert other < same / 4  # the other did not
        stats = client.statistics()
        assert (stats.requests, stats.rate_limited, stats.succeeded) == (6, 4, 2)

    async def test_a_long_retry_after_pauses_at_once(self, sim: SimServer) -> None:
        """A single 429 asking for 5 s or more is a real limit: its model pauses."""
        limited = Fault(kind="status", status=429, retry_after=6, first=1)
        sim.configure(SimConfig(models={"a": ModelProfile(faults=[limited])}))
        async with ChatClient(sim.base_url) as client:
            with pytest.raises(asyncgen.RateLimitedError):
                await client.chat("a", HI)
            pause = client.paused("a")
        assert pause is not None
        assert 5 < pause.left() <= 6

    async def test_two_models_limited_at_once_pause_the_key(self, sim: SimServer) -> None:
        """Limits on two models within one Retry-After window hold every model."""
        limited = Fault(kind="status", status=429, retry_after=0.5, first=4)
        sim.configure(SimConfig(models={m: ModelProfile(faults=[limited]) for m in "ab"}))
        with structlog.testing.capture_logs() as logs:
            async with ChatClient(sim.base_url) as client:
                for model in "aaabbbab":
                    with pytest.raises(asyncgen.RateLimitedError):
                        await client.chat(model, HI)
                loop = asyncio.get_running_loop()
                began = loop.time()
                await client.chat("c", HI)
                waited = loop.time() - began
        assert waited >= 0.4
        scopes = [e["scope"] for e in logs if e["event"] == "client_paused"]
        assert scopes[:2] == ["model", "key"]

    async def test_the_event_says_the_scope(self, sim: SimServer) -> None:
        """A job held by its model's pause (four 429s in a row) emits ClientPaused
        naming the model's scope and the wait."""
        limited = Fault(kind="status", status=429, retry_after=0.3, first=4)
        sim.configure(SimConfig(models={"a": ModelProfile(faults=[limited])}))
        events: list[asyncgen.Event] = []
        retry = RetryPolicy(max_attempts=5, base_delay=0.005, jitter=0.0)
        async with ChatClient(sim.base_url) as client:
            results = await asyncgen.fan_out(
                "x", ["a"], client=client, retry=retry, on_event=events.append
            )
        assert results[0].ok
        paused = [e for e in events if isinstance(e, asyncgen.ClientPaused)]
        assert len(paused) == 1
        assert (paused[0].scope, paused[0].job.model) == ("model", "a")
        assert 0.2 < paused[0].seconds <= 0.3

    async def test_limiter_at_the_exact_limit_of_a_sliding_window(self, sim: SimServer) -> None:
        """RateLimiter(rpm) equal to a sliding-window server's rpm: 120 jobs, no 429."""
        sim.configure(SimConfig(default=ModelProfile(rpm=3000, limiter="sliding")))
        async with ChatClient(sim.base_url, max_connections=64) as client:
            results = await asyncgen.generate(
                jobs(120), client=client, concurrency=32, rate_limit=RateLimiter(3000)
            )
        assert all(r.ok for r in results)
        assert sim.stats()["statuses"].get("429", 0) == 0

    async def test_headroom_for_a_blocked_event_loop(self, sim: SimServer) -> None:
        """The event loop is blocked for 60 ms every 0.3 s (a CPU-bound callback), so
        requests go out late and can crowd the next second at a 10-a-second sliding
        window; a headroom of 10 % (100 ms a second) covers it, as documented."""
        sim.configure(SimConfig(default=ModelProfile(rpm=600, limiter="sliding")))

        async def hog() -> None:
            while True:
                await asyncio.sleep(0.3)
                time.sleep(0.06)  # noqa: ASYNC251 (the point: it blocks the loop, not the sim)

        hogging = asyncio.create_task(hog())
        limiter = RateLimiter(600, headroom=0.1)
        async with ChatClient(sim.base_url, max_connections=64) as client:
            results = await asyncgen.generate(
                jobs(40), client=client, concurrency=20, rate_limit=limiter
            )
        hogging.cancel()
        assert all(r.ok for r in results)
        assert sim.stats()["statuses"].get("429", 0) == 0

    async def test_fan_out_is_not_held_by_one_limited_model(self, sim: SimServer) -> None:
        """Six models, one answering 429 with Retry-After 5 s: the other five finish at once."""
        limited = Fault(kind="status", status=429, retry_after=5, first=1)
        sim.configure(
            SimConfig(
                default=ModelProfile(latency=0.05), models={"slow": ModelProfile(faults=[limited])}
            )
        )
        models = ["slow", "a", "b", "c", "d", "e"]
        finished: dict[str, float] = {}
        async with ChatClient(sim.base_url) as client:
            loop = asyncio.get_running_loop()
            began = loop.time()

            def mark(event: asyncgen.Event) -> None:
                if isinstance(event, asyncgen.JobSucceeded):
                    finished[event.job.model] = loop.time() - began

            results = await asyncgen.fan_out("x", models, client=client, on_event=mark)
        assert all(r.ok for r in results)
        assert finished["slow"] >= 4.5  # it waited out its 5 s
        assert max(finished[m] for m in models[1:]) < finished["slow"] / 10

    async def test_rate_limiter_keeps_under_the_servers_limit(self, sim: SimServer) -> None:
        """With a RateLimiter matching the server's, 20 requests at once see no 429."""
        sim.configure(SimConfig(default=ModelProfile(rpm=600, burst=0.3)))
        async with ChatClient(sim.base_url) as client:
            results = await asyncgen.generate(
                jobs(20), client=client, concurrency=20, rate_limit=RateLimiter(600, burst=0.2)
            )
        assert all(r.ok for r in results)
        assert sim.stats()["statuses"].get("429", 0) <= 1

    async def test_without_a_limiter_the_server_refuses(self, sim: SimServer) -> None:
        """The same burst with no limiter is refused in part: the limiter is what helps."""
        sim.configure(SimConfig(default=ModelProfile(rpm=600, burst=0.3)))
        async with ChatClient(sim.base_url) as client:
            await asyncgen.generate(
                jobs(20), client=client, concurrency=20, retry=RetryPolicy.never()
            )
        assert sim.stats()["statuses"].get("429", 0) >= 10


class TestAdaptive:
    async def test_auto_against_a_concurrency_limited_server(self, sim: SimServer) -> None:
        """concurrency="auto" against a server taking 8 at once: few 429s, every job done."""
        sim.configure(SimConfig(default=ModelProfile(latency=0.02, max_concurrency=8)))
        client = ChatClient(sim.base_url, max_connections=64)
        results = await asyncgen.generate(
            jobs(300),
            client=client,
            concurrency="auto",
            retry=RetryPolicy(max_attempts=10, base_delay=0.01),
        )
        await client.aclose()
        assert all(r.ok for r in results)
        stats = client.statistics()
        assert stats.concurrency_limit is not None
        assert stats.rate_limited <= 0.05 * stats.requests
        assert sim.stats()["max_in_flight"] >= 6  # it did grow past the start of 4

    async def test_auto_against_a_zero_latency_sliding_window(self, sim: SimServer) -> None:
        """auto, nothing configured, 50 a second in any 1-s window, instant answers:
        the pace is learned, so 429s stay a small share and no job is lost."""
        sim.configure(SimConfig(default=ModelProfile(rpm=3000, limiter="sliding")))
        async with ChatClient(sim.base_url, max_connections=64) as client:
            results = await asyncgen.generate(jobs(250), client=client, concurrency="auto")
            pacing = client.pacing("m")
        assert all(r.ok for r in results)
        refused = sim.stats()["statuses"].get("429", 0)
        assert refused <= 0.06 * 250  # AIMD alone refused ~2.4 per job on such a server
        assert pacing is not None
        assert pacing.rate is not None
        assert pacing.rate <= 50  # never paced above the server's limit

    async def test_seeded_from_openrouter_key_info(self, sim: SimServer) -> None:
        """On an OpenRouter client, auto concurrency starts from the key's rate limit."""
        sim.configure(SimConfig(default=ModelProfile(rpm=600)))
        client = ChatClient(sim.base_url, provider="openrouter")
        info = await client.key_info()
        assert info.rate_limit is not None
        assert (info.rate_limit.requests, info.rate_limit.interval) == (600, "1m")
        await asyncgen.generate(jobs(1), client=client, concurrency="auto")
        await client.aclose()
        assert client.statistics().concurrency_limit == 10  # 600 per minute = 10 per s


class TestBreakerEndToEnd:
    async def test_open_circuit_stops_requests_for_that_model_only(self, sim: SimServer) -> None:
        """After K failures a model's jobs fail fast; another model is unaffected."""
        sim.configure(
            SimConfig(models={"down": ModelProfile(faults=[Fault(kind="status", status=503)])})
        )
        client = ChatClient(sim.base_url, breaker_failures=3, breaker_cool_down=0.3)
        batch = jobs(4, "down") + jobs(2, "up")
        results = await asyncgen.generate(
            batch, client=client, concurrency=1, retry=RetryPolicy(base_delay=0.001)
        )
        assert isinstance(results[0].error, asyncgen.ServerError)
        assert all(isinstance(r.error, asyncgen.CircuitOpenError) for r in results[1:4])
        assert [r.ok for r in results[4:]] == [True, True]
        assert sim.stats()["requests"] == {"down": 3, "up": 2}
        assert client.statistics().open_circuits == ("down",)
        sim.configure(SimConfig())  # the model recovers
        await asyncio.sleep(0.35)
        assert client.breaker("down").state == "half-open"
        recovered = await asyncgen.generate(jobs(2, "down"), client=client, concurrency=1)
        await client.aclose()
        assert [r.ok for r in recovered] == [True, True]
        assert client.breaker("down").state == "closed"


class TestSpendGuard:
    async def test_max_cost_stops_new_jobs(self, sim: SimServer) -> None:
        """Once reported cost crosses max_cost, no more requests; the rest get an error."""
        sim.configure(SimConfig(default=ModelProfile(price_per_token=1e-4)))
        async with ChatClient(sim.base_url) as client:
            results = await asyncgen.generate(
                jobs(10), client=client, concurrency=1, max_cost=0.002
            )
        cost_each = results[0].completion.usage.cost if results[0].completion else None
        assert cost_each is not None
        sent = sum(r.ok for r in results)
        assert sent == -(-0.002 // cost_each)  # just enough to cross the limit
        assert sim.requests() == sent
        assert all(isinstance(r.error, asyncgen.BudgetExceededError) for r in results[sent:])
        assert "max_cost" in str(results[-1].error)

    async def test_max_tokens_stops_new_jobs(self, sim: SimServer) -> None:
        """max_tokens guards the batch's reported total tokens the same way."""
        async with ChatClient(sim.base_url) as client:
            results = await asyncgen.generate(jobs(10), client=client, concurrency=1, max_tokens=10)
        assert 1 <= sim.requests() < 10
        assert isinstance(results[-1].error, asyncgen.BudgetExceededError)

    async def test_nonsense_limits_are_refused(self, sim: SimServer) -> None:
        """A zero or negative spend limit is a ValueError."""
        async with ChatClient(sim.base_url) as client:
            with pytest.raises(ValueError, match="max_cost"):
                await asyncgen.generate(jobs(1), client=client, max_cost=0)


async def test_statistics_snapshot(sim: SimServer) -> None:
    """statistics() counts requests, retries, failures, tokens and cost, frozen."""
    sim.configure(
        SimConfig(
            models={"flaky": ModelProfile(faults=[Fault(kind="status", status=502, first=1)])}
        )
    )
    async with ChatClient(sim.base_url) as client:
        await asyncgen.generate(
            jobs(2, "flaky") + jobs(1),
            client=client,
            concurrency=1,
            retry=RetryPolicy(base_delay=0.001),
        )
        stats = client.statistics()
    assert (stats.requests, stats.succeeded, stats.failed, stats.retries) == (4, 3, 1, 1)
    assert stats.total_tokens == stats.prompt_tokens + stats.completion_tokens > 0
    assert stats.cost > 0
    with pytest.raises(AttributeError):
        stats.requests = 0  # type: ignore[misc]
