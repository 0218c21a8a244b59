"""SharedRateLimiter against a real redis-server: one budget for many limiters and processes."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import structlog.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import asyncgen
from asyncgen import SharedRateLimiter
from asyncgen.testing import KeyLimit, ModelProfile, RedisServer, SimConfig, SimServer
from tests.processes import asyncgen_argv


def fresh_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def shared(url: str, name: str, **limits: float) -> SharedRateLimiter:
    return SharedRateLimiter(url, name=name, headroom=0, **limits)


async def close_all(*limiters: SharedRateLimiter) -> None:
    for limiter in limiters:
        await limiter.aclose()


class TestSharedBudget:
    async def test_two_limiters_with_one_name_share_one_budget(
        self, redis_server: RedisServer
    ) -> None:
        """Bookings through two limiters are spaced as if through one (60 rpm: 1 s)."""
        name = fresh_name()
        a, b = (shared(redis_server.url, name, requests_per_minute=60) for _ in range(2))
        starts = [(await x.book_shared(now=100.0)).start for x in (a, b, a, b)]
        await close_all(a, b)
        assert starts == pytest.approx([100.0, 101.0, 102.0, 103.0])

    @settings(max_examples=25, deadline=None)
    @given(
        arrivals=st.lists(st.tuples(st.floats(0, 0.2), st.integers(0, 2)), min_size=1, max_size=60),
    )
    def test_never_more_than_the_rate_in_any_second(
        self, redis_server: RedisServer, arrivals: list[tuple[float, int]]
    ) -> None:
        """Three limiters, any arrival pattern (on a fake clock): <= rpm/60 in any 1 s."""

        async def run() -> list[float]:
            name = fresh_name()
            limiters = [shared(redis_server.url, name, requests_per_minute=600) for _ in range(3)]
            now, starts = 1000.0, []
            for gap, which in arrivals:
                now += gap
                starts.append((await limiters[which].book_shared(now=now)).start)
            await close_all(*limiters)
            return starts

        starts = asyncio.run(run())
        for first in starts:
            assert sum(1 for s in starts if first <= s < first + 1.0) <= 10

    @settings(max_examples=25, deadline=None)
    @given(
        arrivals=st.lists(
            st.tuples(st.floats(0, 0.3), st.integers(0, 2), st.integers(1, 100)),
            min_size=1,
            max_size=40,
        ),
    )
    def test_never_more_tokens_than_the_rate_in_any_second(
        self, redis_server: RedisServer, arrivals: list[tuple[float, int, int]]
    ) -> None:
        """Three limiters booking varied token costs (fake clock): <= tpm/60 tokens start
        in any 1 s, as the server counts them (the window's first request included)."""

        async def run() -> list[tuple[float, int]]:
            name = fresh_name()
            limiters = [shared(redis_server.url, name, tokens_per_minute=6000) for _ in range(3)]
            now, booked = 1000.0, []
            for gap, which, tokens in arrivals:
                now += gap
                booking = await limiters[which].book_shared(tokens, now=now)
                booked.append((booking.start, tokens))
            await close_all(*limiters)
            return booked

        booked = asyncio.run(run())
        for first, _ in booked:
            window = sum(t for s, t in booked if first <= s < first + 1.0 - 1e-6)
            assert window <= 100

    async def test_a_429_through_one_slows_every_one(self, redis_server: RedisServer) -> None:
        """note_rejected lowers the shared pace: the other limiter's next gap widens."""
        name = fresh_name()
        a, b = (shared(redis_server.url, name, requests_per_minute=600) for _ in range(2))
        refused = await a.acquire()
        assert a.note_rejected(refused)
        await asyncio.sleep(0.05)  # the update goes in the background
        first, second = await b.acquire(), await b.acquire()
        await close_all(a, b)
        assert second.start - first.start == pytest.approx(0.1 / 0.95, rel=0.03)

    async def test_settle_corrects_the_shared_token_meter(self, redis_server: RedisServer) -> None:
        """Reporting fewer tokens than booked brings the other limiter's start forward."""
        name = fresh_name()
        a, b = (shared(redis_server.url, name, tokens_per_minute=6000) for _ in range(2))
        booked = await a.book_shared(100, now=50.0)
        a.settle(booked, 40)
        await asyncio.sleep(0.05)
        later = await b.book_shared(10, now=50.0)
        await close_all(a, b)
        assert later.start == pytest.approx(50.4)

    async def test_a_far_start_is_booked_only_when_near(self, redis_server: RedisServer) -> None:
        """A token-costed acquire whose start is more than LOOKAHEAD away does not book
        yet (so the settles that come meanwhile can bring it forward): the shared meter
        does not move until it does."""
        name = fresh_name()
        a, b, c = (shared(redis_server.url, name, tokens_per_minute=6000) for _ in range(3))
        first = await a.acquire(50)  # 100 tokens/s: the next may start 0.5 s later
        waiter = asyncio.create_task(b.acquire(50))
        await asyncio.sleep(0.05)
        probe = await c.book_shared(10)  # booked at once: 0.5 s after the first
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        await close_all(a, b, c)
        assert probe.start - first.start == pytest.approx(0.5, abs=0.05)  # 1.0 had b booked


class TestFallback:
    async def test_unreachable_redis_falls_back_to_a_share_and_warns_once(self) -> None:
        """No Redis: bookings go on at a quarter of the limit, with one warning."""
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        limiter = shared(f"redis://127.0.0.1:{port}/0", fresh_name(), requests_per_minute=600)
        with structlog.testing.capture_logs() as logs:
            bookings = [await limiter.book_shared() for _ in range(3)]
        await limiter.aclose()
        assert limiter.falling_back
        assert bookings[2].start - bookings[1].start == pytest.approx(1 / 1.5)  # 10/4 - 1 a s
        warned = [e for e in logs if e["event"] == "shared_limiter_unreachable"]
        assert len(warned) == 1

    async def test_redis_killed_while_two_share_keeps_the_total(self) -> None:
        """Two limiters seen by Redis, then Redis dies: each keeps half, not the whole."""
        with RedisServer() as server:
            name = fresh_name()
            a, b = (shared(server.url, name, requests_per_minute=600) for _ in range(2))
            await a.acquire()
            await b.acquire()
            await a.acquire()  # now a has seen two participants
            await b.acquire()
            server.stop(kill=True)
            spaced = []
            for limiter in (a, b):
                first, second = await limiter.acquire(), await limiter.acquire()
                spaced.append(second.start - first.start)
            await close_all(a, b)
        assert a.falling_back
        assert b.falling_back
        assert spaced == pytest.approx([0.25, 0.25])  # half of 10 a second, less one each

    def test_a_shared_limiter_has_no_sync_booking(self) -> None:
        """reserve()/book() would bypass Redis: they refuse, saying what to call."""
        limiter = shared("redis://127.0.0.1:1/0", fresh_name(), requests_per_minute=60)
        with pytest.raises(TypeError, match=r"await limiter\.acquire"):
            limiter.reserve()
        assert isinstance(limiter, asyncgen.RateLimiter)


def start_runs(
    tmp_path: Path, sim: SimServer, redis_url: str, name: str, processes: int, jobs: int
) -> list[tuple[subprocess.Popen[str], Path]]:
    """``asyncgen run`` processes, each with its own file, sharing --rpm through Redis."""
    started = []
    for p in range(processes):
        source = tmp_path / f"in{p}.jsonl"
        source.write_text(
            "".join(
                json.dumps({"id": f"{p}-{i}", "model": "m", "prompt": "x"}) + "\n"
                for i in range(jobs)
            )
        )
        out = tmp_path / f"out{p}.jsonl"
        # --retries 5: a late start now and then (five busy processes on two cores) is
        # refused and retried; what the tests bound is how many 429s there are in all.
        limits = ("--rpm", "1200", "--rate-limit-url", redis_url, "--rate-limit-name", name)
        flags = ("--base-url", sim.base_url, "--concurrency", "16", "--retries", "5", *limits)
        command = asyncgen_argv("run", str(source), "-o", str(out), *flags)
        child = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        started.append((child, out))
    return started


def finish(started: list[tuple[subprocess.Popen[str], Path]]) -> list[dict[str, object]]:
    lines = []
    for child, out in started:
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr
        lines += [json.loads(line) for line in out.read_text().splitlines()]
    return lines


class TestProcesses:
    def test_three_runs_share_one_limit(
        self, tmp_path: Path, sim: SimServer, redis_server: RedisServer
    ) -> None:
        """Three processes at --rpm 1200 each, one shared budget: a 20-a-second sliding
        window server refuses (almost) nothing, and every job is answered."""
        sim.configure(SimConfig(default=ModelProfile(rpm=1200, limiter="sliding")))
        lines = finish(start_runs(tmp_path, sim, redis_server.url, fresh_name(), 3, 40))
        assert len(lines) == 120
        assert all(line["ok"] for line in lines)
        # Unshared, each process would send the whole 20 a second: ~2/3 refused.
        assert sim.stats()["statuses"].get("429", 0) <= 6  # a generous 5 % of 120

    def test_workers_with_concurrency_auto_share_the_pace_they_learn(
        self, sim: SimServer, redis_server: RedisServer
    ) -> None:
        """`asyncgen worker --concurrency auto` on a Redis queue, no --rpm: the workers
        learn one key-wide pace in the queue's Redis (the URL's ?queue= is the queue's,
        not the limiter's), at or under the key's 20 a second, and every job is answered."""
        sim.configure(SimConfig(key_limit=KeyLimit(rpm=1200, limiter="sliding")))
        url = f"{redis_server.url}?queue={fresh_name()}"
        command = asyncgen_argv("worker", url, "--base-url", sim.base_url, "--concurrency", "auto")
        workers = [
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for _ in range(3)
        ]

        async def submit_and_wait() -> asyncgen.QueueStatistics:
            queue = asyncgen.open_queue(url)
            try:
                deadline = time.monotonic() + 60
                for _ in range(1200):  # up to a minute for the workers to start
                    if (await queue.statistics()).workers >= 3:
                        break
                    await asyncio.sleep(0.05)
                jobs = [asyncgen.GenerationJob(model=f"m{i}", prompt="hi") for i in range(90)]
                await queue.submit_many(jobs)
                while time.monotonic() < deadline:
                    stats = await queue.statistics()
                    if stats.completed + stats.dead >= 90:
                        break
                    await asyncio.sleep(0.05)
                return stats
            finally:
                await queue.aclose()

        try:
            stats = asyncio.run(submit_and_wait())
        finally:
            for worker in workers:
                worker.terminate()
            errors = [worker.communicate(timeout=30)[1] for worker in workers]
        assert stats.completed == 90, errors
        import redis

        with redis.Redis.from_url(redis_server.url) as client:
            learned = client.hget(f"asyncgen:ratelimit:{{{sim.base_url}}}", "lrate")
        assert learned is not None, "no key's 429 was shared"
        assert 0 < float(learned) <= 20 * 1.3

    def test_redis_killed_while_four_share_keeps_the_total(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """Redis dies mid-run: each of four processes falls back to a quarter, the server
        still refuses (almost) nothing, and every job is answered."""
        sim.configure(SimConfig(default=ModelProfile(rpm=1200, limiter="sliding")))
        with RedisServer() as server:
            started = start_runs(tmp_path, sim, server.url, fresh_name(), 4, 50)
            deadline = time.monotonic() + 60
            while sim.requests() < 60 and time.monotonic() < deadline:
                time.sleep(0.02)
            server.stop(kill=True)
            lines = finish(started)
        assert len(lines) == 200
        assert all(line["ok"] for line in lines)
        # Unshared, each process would send the whole 20 a second: ~3/4 refused. The
        # margin is generous: six busy processes on two cores start late now and then.
        assert sim.stats()["statuses"].get("429", 0) <= 4  # 2 % of 200 (0 in five runs here)


class TestLearnedKeyPace:
    """With no request limit configured, the limiter carries the key's pace that
    concurrency="auto" learns: measured and cut in Redis over every process's requests."""

    async def test_what_one_limiter_learns_paces_another(self, redis_server: RedisServer) -> None:
        """20 unpaced bookings through one limiter, then one of the key's 429s: another
        limiter of the same name books after the server's resume, spaced at the rate
        measured (20 admitted over the episode to the resume)."""
        name = fresh_name()
        a, b = shared(redis_server.url, name), shared(redis_server.url, name)
        bookings = [await a.book_shared() for _ in range(21)]
        assert b.learned_rate is None
        refused = bookings[-1]
        a.key_refused(refused, 0.5)
        await a.settled()
        first, second = await b.book_shared(), await b.book_shared()
        await close_all(a, b)
        rate = b.learned_rate
        assert rate is not None
        # 20 admitted from the first booking to the resume (a little over 0.5 s): the
        # measure is at most 20 / 0.5, and the recent second's 20 at least.
        assert 20 * 0.97 * 0.99 <= rate <= 40 * 0.97
        assert first.start >= refused.start + 0.49  # the turns begin at the resume
        assert second.start - first.start == pytest.approx(1 / rate, rel=0.01)
        assert time.monotonic() < b.learned_until <= time.monotonic() + 60

    async def test_a_refusal_booked_before_the_cut_is_the_same_overload(
        self, redis_server: RedisServer
    ) -> None:
        """Requests booked at the old pace, to start after the cut, and refused then do
        not cut again (they are the overload already paid for): the pace and the turns
        stay. (Judged by their start instead, each cut the pace a step: 25 to 3 a second
        in a tenth of a second, four processes at a key-wide limit.)"""
        name = fresh_name()
        a, b = shared(redis_server.url, name), shared(redis_server.url, name)
        bookings = [await a.book_shared() for _ in range(11)]
        a.key_refused(bookings[-1], 0.3)
        await a.settled()
        ahead = [await a.book_shared() for _ in range(5)]  # at the pace, after the resume
        a.key_refused(ahead[0], 0.3)  # booked after the first cut: a second one
        await a.settled()
        before = await b.book_shared()
        rate = b.learned_rate
        for late in ahead[1:]:  # booked before the second cut, starting after it
            assert late.start > time.time()
            a.key_refused(late, 0.3)
        await a.settled()
        after = await b.book_shared()
        await close_all(a, b)
        assert rate is not None
        assert b.learned_rate == pytest.approx(rate, rel=0.02)  # climbing, not cut
        assert after.start - before.start == pytest.approx(1 / rate, rel=0.02)

    async def test_a_configured_limit_learns_nothing(self, redis_server: RedisServer) -> None:
        limiter = shared(redis_server.url, fresh_name(), requests_per_minute=600)
        assert not limiter.learns
        booking = await limiter.book_shared()
        with pytest.raises(ValueError, match="does not learn"):
            limiter.key_refused(booking, 1.0)
        await limiter.aclose()

    async def test_redis_down_the_client_learns_alone(self) -> None:
        """Unreachable, the limiter does not carry the key's pace (the client's own
        KeyPace paces, as without a shared limiter)."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        limiter = SharedRateLimiter(f"redis://127.0.0.1:{port}/0", name=fresh_name())
        assert limiter.learns
        await limiter.acquire()
        assert limiter.falling_back
        assert not limiter.learns
        await limiter.aclose()

    async def test_a_client_that_starts_later_begins_at_the_learned_pace(
        self, sim: SimServer, redis_server: RedisServer
    ) -> None:
        """One key-wide limit (20 in any second, 80 model names per client): a client
        that joins 2 s after another, each with its own limiter of one name, starts at the
        pace the first learned: the two together take about what the key's rate allows
        (8 s here). Learning alone, the second slow-starts into a full key and both
        are refused and cut: 12-15 s (four runs)."""
        sim.configure(SimConfig(key_limit=KeyLimit(rpm=1200, limiter="sliding")))
        name = fresh_name()

        async def client(index: int) -> int:
            await asyncio.sleep(2.0 * index)
            limiter = SharedRateLimiter(redis_server.url, name=name)
            async with asyncgen.ChatClient(sim.base_url, rate_limit=limiter) as chat:
                jobs = [{"model": f"m{index}-{i}", "prompt": "hi"} for i in range(80)]
                results = await asyncgen.generate(jobs, client=chat, concurrency="auto")
            await limiter.aclose()
            return sum(r.ok for r in results)

        began = time.monotonic()
        answered = await asyncio.gather(client(0), client(1))
        took = time.monotonic() - began
        assert list(answered) == [80, 80]
        assert took <= 1.25 * 160 / 20  # 8.3-8.9 s in four runs here
