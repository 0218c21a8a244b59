"""generate, fan_out, generate_iter, events and the sync twins, against the simulator."""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import structlog.testing
from pydantic import BaseModel

import asyncgen
from asyncgen import (
    ChatClient,
    Event,
    GenerationJob,
    JobFailed,
    JobRetrying,
    JobStarted,
    JobSucceeded,
    RetryPolicy,
    RunProgress,
)
from asyncgen.testing import Fault, ModelProfile, SimConfig, SimServer

MODELS = ["a", "b", "c", "d", "e", "f"]


def profiles(**by_model: ModelProfile) -> SimConfig:
    return SimConfig(models=by_model)


class TestJobs:
    def test_exactly_one_of_prompt_or_messages(self) -> None:
        """A job needs a prompt or messages, not both, not neither."""
        with pytest.raises(ValueError, match="exactly one"):
            GenerationJob(model="m")
        with pytest.raises(ValueError, match="exactly one"):
            GenerationJob(model="m", prompt="x", messages=[{"role": "user", "content": "x"}])

    def test_messages_need_roles_and_params_cannot_clash(self) -> None:
        """Malformed messages and params that override the job are refused."""
        with pytest.raises(ValueError, match="role"):
            GenerationJob(model="m", messages=[{"content": "x"}])
        with pytest.raises(ValueError, match="model"):
            GenerationJob(model="m", prompt="x", params={"model": "other"})

    def test_ids_are_unique_by_default(self) -> None:
        """Jobs get distinct ids unless given one."""
        assert GenerationJob(model="m", prompt="x").id != GenerationJob(model="m", prompt="x").id
        assert GenerationJob(model="m", prompt="x", id="mine").id == "mine"

    async def test_invalid_job_names_its_index(self, sim: SimServer) -> None:
        """generate() refuses a bad job before sending anything, naming which."""
        client = ChatClient(sim.base_url)
        with pytest.raises(ValueError, match="job 1 is invalid"):
            await asyncgen.generate([{"model": "a", "prompt": "x"}, {"model": "a"}], client=client)
        assert sim.requests() == 0


class TestGenerate:
    async def test_fan_out_in_model_order(self, sim: SimServer) -> None:
        """fan_out returns one result per model, in the order given, despite latencies."""
        sim.configure(
            profiles(**{m: ModelProfile(latency=0.1 * (6 - i)) for i, m in enumerate(MODELS)})
        )
        async with ChatClient(sim.base_url) as client:
            results = await asyncgen.fan_out("Write a haiku", MODELS, client=client)
        assert [r.model for r in results] == MODELS
        assert [r.text for r in results] == [f"[{m}] Write a haiku" for m in MODELS]
        assert all(r.ok and r.attempts == 1 and r.completion for r in results)
        assert sim.stats()["max_in_flight"] == 6

    async def test_concurrency_bounds_requests_in_flight(self, sim: SimServer) -> None:
        """No more than ``concurrency`` requests are in flight at the server."""
        sim.configure(SimConfig(default=ModelProfile(latency=0.05)))
        async with ChatClient(sim.base_url) as client:
            jobs = [{"model": "m", "prompt": str(i)} for i in range(20)]
            results = await asyncgen.generate(jobs, client=client, concurrency=3)
        assert [r.text for r in results] == [f"[m] {i}" for i in range(20)]
        assert sim.stats()["max_in_flight"] == 3

    async def test_request_counts_per_failure(
        self, sim: SimServer, fast_retry: RetryPolicy
    ) -> None:
        """A 503 is sent three times, a 400 once, a recovering model until it succeeds."""
        sim.configure(
            profiles(
                down=ModelProfile(faults=[Fault(kind="status", status=503)]),
                bad=ModelProfile(faults=[Fault(kind="status", status=400)]),
                flaky=ModelProfile(faults=[Fault(kind="status", status=502, first=1)]),
                fine=ModelProfile(),
            )
        )
        async with ChatClient(sim.base_url) as client:
            results = await asyncgen.fan_out(
                "x", ["down", "bad", "flaky", "fine"], client=client, retry=fast_retry
            )
        assert [r.ok for r in results] == [False, False, True, True]
        assert [r.attempts for r in results] == [3, 1, 2, 1]
        assert sim.stats()["requests"] == {"down": 3, "bad": 1, "flaky": 2, "fine": 1}
        assert isinstance(results[0].error, asyncgen.ServerError)
        assert isinstance(results[1].error, asyncgen.BadRequestError)

    async def test_a_body_that_is_not_json_is_not_retried_unless_asked(
        self, sim: SimServer, fast_retry: RetryPolicy
    ) -> None:
        """A 200 that is not JSON fails at once; retry_on can name it to retry it too."""
        sim.configure(profiles(garbled=ModelProfile(faults=[Fault(kind="malformed", first=1)])))
        async with ChatClient(sim.base_url) as client:
            [plain] = await asyncgen.fan_out("x", ["garbled"], client=client, retry=fast_retry)
            assert isinstance(plain.error, asyncgen.InvalidResponseError)
            assert plain.attempts == 1
            sim.reset()
            sim.configure(profiles(garbled=ModelProfile(faults=[Fault(kind="malformed", first=1)])))
            opted = RetryPolicy(
                base_delay=0.01, retry_on=(asyncgen.TransientError, asyncgen.InvalidResponseError)
            )
            [retried] = await asyncgen.fan_out("x", ["garbled"], client=client, retry=opted)
        assert retried.ok
        assert retried.attempts == 2

    async def test_402_stops_unstarted_jobs(self, sim: SimServer, fast_retry: RetryPolicy) -> None:
        """After a 402 no further request is sent; every later job fails for credits."""
        sim.configure(SimConfig(default=ModelProfile(faults=[Fault(kind="status", status=402)])))
        async with ChatClient(sim.base_url) as client:
            jobs = [{"model": "m", "prompt": str(i)} for i in range(10)]
            results = await asyncgen.generate(jobs, client=client, concurrency=1, retry=fast_retry)
        assert sim.requests() == 1
        assert all(isinstance(r.error, asyncgen.InsufficientCreditsError) for r in results)
        assert [r.attempts for r in results] == [1] + [0] * 9
        assert "add credits" in str(results[5].error)

    async def test_402_lets_in_flight_jobs_finish(self, sim: SimServer) -> None:
        """Jobs already running when a 402 arrives finish with their answers."""
        sim.configure(
            profiles(
                broke=ModelProfile(faults=[Fault(kind="status", status=402)]),
                slow=ModelProfile(latency=0.3),
            )
        )
        async with ChatClient(sim.base_url) as client:
            results = await asyncgen.fan_out(
                "x", ["slow", "broke", "slow", "slow"], client=client, concurrency=2
            )
        assert [r.ok for r in results] == [True, False, False, False]
        assert sim.requests("slow") == 1

    async def test_a_request_too_dear_for_the_key_stops_only_itself(self, sim: SimServer) -> None:
        """A 402 saying this request needs fewer max_tokens fails that job (scope
        "request", what to do said) and the rest of the batch is answered."""
        dear = Fault(
            kind="status",
            status=402,
            message="This request requires more "
            "credits, or fewer max_tokens. You requested up to 4096 tokens, but "
            "can only afford 1000.",
        )
        sim.configure(profiles(dear=ModelProfile(faults=[dear])))
        async with ChatClient(sim.base_url) as client:
            results = await asyncgen.fan_out(
                "x", ["dear", "m", "n", "o"], client=client, concurrency=1
            )
            assert client.out_of_credits is None
        assert [r.ok for r in results] == [False, True, True, True]
        error = results[0].error
        assert isinstance(error, asyncgen.InsufficientCreditsError)
        assert error.scope == "request"
        assert "lower its max_tokens" in str(error)

    async def test_validate_keeps_value_and_is_not_retried(self, sim: SimServer) -> None:
        """A validator's return value is kept; its failure fails the job without retry."""
        sim.configure(profiles(good=ModelProfile(reply='{"n": 7}'), bad=ModelProfile(reply="no")))
        async with ChatClient(sim.base_url) as client:
            results = await asyncgen.fan_out(
                "x", ["good", "bad"], client=client, validate=json.loads
            )
        assert results[0].value == {"n": 7}
        assert isinstance(results[1].error, asyncgen.ValidationFailedError)
        assert results[1].text == "no"  # the failing answer is kept for inspection
        assert sim.stats()["requests"] == {"good": 1, "bad": 1}

    async def test_deadline_keeps_finished_results(self, sim: SimServer) -> None:
        """Jobs finished before the deadline keep answers; the rest are deadline-exceeded."""
        sim.configure(profiles(fast=ModelProfile(), slow=ModelProfile(latency=30)))
        events: list[Event] = []
        async with ChatClient(sim.base_url) as client:
            results = await asyncgen.fan_out(
                "x",
                ["fast", "slow", "fast"],
                client=client,
                deadline=0.5,
                on_event=events.append,
            )
        assert [r.ok for r in results] == [True, False, True]
        assert isinstance(results[1].error, asyncgen.DeadlineExceededError)
        assert [e for e in events if isinstance(e, RunProgress)][-1].done == 3


class TestEvents:
    async def test_event_sequence(self, sim: SimServer, fast_retry: RetryPolicy) -> None:
        """Started, retrying, succeeded/failed and progress events arrive in order."""
        sim.configure(
            profiles(
                ok=ModelProfile(),
                flaky=ModelProfile(faults=[Fault(kind="status", status=503, first=1)]),
                bad=ModelProfile(faults=[Fault(kind="status", status=400)]),
            )
        )
        events: list[Event] = []

        async def record(event: Event) -> None:
            events.append(event)

        async with ChatClient(sim.base_url) as client:
            await asyncgen.fan_out(
                "x",
                ["ok", "flaky", "bad"],
                client=client,
                retry=fast_retry,
                on_event=record,
                concurrency=1,
            )
        kinds = [type(e).__name__ for e in events]
        assert kinds == [
            "JobStarted",
            "JobSucceeded",
            "RunProgress",
            "JobStarted",
            "JobRetrying",
            "JobSucceeded",
            "RunProgress",
            "JobStarted",
            "JobFailed",
            "RunProgress",
        ]
        retrying = next(e for e in events if isinstance(e, JobRetrying))
        assert (retrying.attempt, retrying.job.model) == (1, "flaky")
        assert isinstance(retrying.error, asyncgen.ServerError)
        last = events[-1]
        assert isinstance(last, RunProgress)
        assert (last.done, last.total, last.ok, last.failed, last.percent) == (3, 3, 2, 1, 100.0)
        assert isinstance(events[0], JobStarted)
        assert isinstance(events[1], JobSucceeded)
        assert events[1].result.text == "[ok] x"
        assert isinstance(events[8], JobFailed)

    async def test_legacy_progress_messages(self, sim: SimServer) -> None:
        """legacy_progress speaks MODEL_OK / PREVIEW / MODEL_FAIL with percentages."""
        sim.configure(profiles(bad=ModelProfile(faults=[Fault(kind="status", status=400)])))
        messages: list[tuple[float, str]] = []
        handler = asyncgen.legacy_progress(lambda p, m: messages.append((p, m)))
        async with ChatClient(sim.base_url) as client:
            await asyncgen.fan_out(
                "hello", ["good", "bad"], client=client, on_event=handler, concurrency=1
            )
        assert messages[0] == (50.0, "MODEL_OK::good::ok")
        assert messages[1] == (50.0, "PREVIEW::good::[good] hello")
        assert messages[2][0] == 100.0
        assert messages[2][1].startswith("MODEL_FAIL::bad::BadRequestError: bad: HTTP 400")

    async def test_broken_handler_does_not_break_the_batch(self, sim: SimServer) -> None:
        """An exception in on_event is logged; the results are all there."""

        def broken(event: Event) -> None:
            raise RuntimeError("ui bug")

        async with ChatClient(sim.base_url) as client:
            results = await asyncgen.fan_out("x", ["a", "b"], client=client, on_event=broken)
        assert all(r.ok for r in results)

    async def test_generate_iter_yields_as_jobs_finish(self, sim: SimServer) -> None:
        """generate_iter yields the fast job first, then the slow one."""
        sim.configure(profiles(slow=ModelProfile(latency=0.3), fast=ModelProfile()))
        async with ChatClient(sim.base_url) as client:
            jobs = [{"model": "slow", "prompt": "x"}, {"model": "fast", "prompt": "x"}]
            order = [r.model async for r in asyncgen.generate_iter(jobs, client=client)]
        assert order == ["fast", "slow"]

    async def test_generate_iter_keeps_the_deadline_and_the_progress(self, sim: SimServer) -> None:
        """Past the deadline the unfinished jobs come last, each with DeadlineExceededError;
        RunProgress counts to the total."""
        sim.configure(profiles(slow=ModelProfile(latency=5.0), fast=ModelProfile()))
        progress: list[RunProgress] = []
        jobs = [{"model": m, "prompt": "x"} for m in ("slow", "fast", "slow", "fast", "slow")]
        async with ChatClient(sim.base_url) as client:
            results = [
                r
                async for r in asyncgen.generate_iter(
                    jobs,
                    client=client,
                    concurrency=3,
                    deadline=0.5,
                    on_event=lambda e: progress.append(e) if isinstance(e, RunProgress) else None,
                )
            ]
        assert sorted(r.index for r in results) == [0, 1, 2, 3, 4]
        assert [r.ok for r in results[:2]] == [True, True]  # the fast ones, first
        late = results[2:]
        assert all(isinstance(r.error, asyncgen.DeadlineExceededError) for r in late)
        assert sum("still running" in str(r.error) for r in late) == 3
        assert [p.done for p in progress] == [1, 2, 3, 4, 5]
        assert progress[-1].ok == 2
        assert progress[-1].total == 5

    async def test_generate_iter_checks_every_job_first(self, sim: SimServer) -> None:
        """A bad job anywhere in the list is refused before any request is sent."""
        jobs = [{"model": "m", "prompt": "ok"}, {"model": "m"}]
        async with ChatClient(sim.base_url) as client:
            with pytest.raises(ValueError, match="job 1 is invalid"):
                async for _ in asyncgen.generate_iter(jobs, client=client):
                    pass
        assert sim.requests() == 0


class TestSyncTwins:
    def test_sync_fan_out_reuses_connections(self, sim: SimServer) -> None:
        """Sequential sync calls go through one pooled client: same loop, few connections."""
        client = ChatClient(sim.base_url, max_connections=2)
        for _ in range(5):
            results = asyncgen.sync.fan_out("x", ["a", "b"], client=client)
            assert [r.ok for r in results] == [True, True]
        assert sim.requests() == 10
        client.close()

    def test_sync_generate_from_sixteen_threads(self, sim: SimServer) -> None:
        """16 threads calling the blocking twin at once each get their own answers."""
        sim.configure(SimConfig(default=ModelProfile(latency=0.05)))
        client = ChatClient(sim.base_url)

        def one(i: int) -> list[Any]:
            results = asyncgen.sync.generate([{"model": "m", "prompt": f"t{i}"}], client=client)
            return [r.text for r in results]

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(one, range(16)))
        client.close()
        assert answers == [[f"[m] t{i}"] for i in range(16)]

    def test_twins_share_the_signature(self) -> None:
        """The blocking twins carry the async originals' names and docs."""
        assert asyncgen.sync.generate.__doc__ == asyncgen.generate.__doc__
        assert asyncgen.sync.fan_out.__name__ == "fan_out"
        assert asyncgen.sync.generate_stream.__name__ == "generate_stream"

    def test_the_generate_family_takes_one_set_of_keywords(self) -> None:
        """generate, generate_iter, generate_stream and their blocking twins take the same
        keywords with the same defaults and types, but a stream's deadline (off by
        default: a stream may be endless). They had drifted: generate_stream took neither
        deadline nor response_model, generate_iter no response_model."""
        family = [
            asyncgen.generate_iter,
            asyncgen.generate_stream,
            asyncgen.sync.generate,
            asyncgen.sync.generate_iter,
            asyncgen.sync.generate_stream,
        ]

        def keywords(fn: Any) -> dict[str, tuple[object, object]]:
            found = inspect.signature(fn).parameters.items()
            return {n: (p.default, p.annotation) for n, p in found if p.kind is p.KEYWORD_ONLY}

        expected = keywords(asyncgen.generate)
        assert {"client", "deadline", "response_model", "max_cost"} <= expected.keys()
        for fn in family:
            found = keywords(fn)
            if fn.__name__ == "generate_stream":
                assert found.pop("deadline")[0] is None
                found["deadline"] = expected["deadline"]
            assert found == expected, fn

    def test_blocking_generate_iter_yields_as_jobs_finish(self, sim: SimServer) -> None:
        """The quick job's result comes first; leaving early cancels the rest."""
        sim.configure(SimConfig(models={"slow": ModelProfile(latency=0.5)}))
        client = ChatClient(sim.base_url)
        jobs = [{"model": "slow", "prompt": "a"}, {"model": "quick", "prompt": "b"}]
        results = asyncgen.sync.generate_iter(jobs, client=client)
        first = next(results)
        assert first.model == "quick"
        results.close()  # type: ignore[attr-defined]
        client.close()


class TestGenerateStream:
    async def test_streams_every_job_once(self, sim: SimServer) -> None:
        """Every job of a generator yields exactly one result, indices intact."""
        sim.configure(SimConfig(default=ModelProfile(latency=0.01)))

        def source() -> Iterator[dict[str, str]]:
            for i in range(50):
                yield {"model": "m", "prompt": str(i)}

        async with ChatClient(sim.base_url) as client:
            results = [r async for r in asyncgen.generate_stream(source(), client=client)]
        assert sorted(r.index for r in results) == list(range(50))
        assert all(r.text == f"[m] {r.index}" for r in results)
        assert sim.requests() == 50

    async def test_pulls_lazily_from_an_endless_source(self, sim: SimServer) -> None:
        """An endless source is read only as far as the window needs."""
        pulled = 0

        def endless() -> Iterator[dict[str, str]]:
            nonlocal pulled
            for i in itertools.count():
                pulled += 1
                yield {"model": "m", "prompt": str(i)}

        async with ChatClient(sim.base_url) as client:
            stream = asyncgen.generate_stream(endless(), client=client, concurrency=4)
            async with contextlib.aclosing(stream) as results:
                async for result in results:
                    if result.index >= 20:
                        break
        assert pulled <= 21 + 2 * 4 + 1

    async def test_402_stops_the_rest_of_the_stream(
        self, sim: SimServer, fast_retry: RetryPolicy
    ) -> None:
        """A 402 stops every later job of the stream without a request."""
        sim.configure(SimConfig(default=ModelProfile(faults=[Fault(kind="status", status=402)])))
        jobs = ({"model": "m", "prompt": str(i)} for i in range(8))
        async with ChatClient(sim.base_url) as client:
            results = [
                r
                async for r in asyncgen.generate_stream(
                    jobs, client=client, concurrency=1, retry=fast_retry
                )
            ]
        assert sim.requests() == 1
        assert all(isinstance(r.error, asyncgen.InsufficientCreditsError) for r in results)

    async def test_a_deadline_yields_every_job_left(self, sim: SimServer) -> None:
        """With a deadline, the job still running and the jobs never pulled all come back
        with DeadlineExceededError: none is dropped."""
        sim.configure(SimConfig(default=ModelProfile(latency=5.0)))
        jobs = ({"model": "m", "prompt": str(i)} for i in range(5))
        async with ChatClient(sim.base_url) as client:
            stream = asyncgen.generate_stream(jobs, client=client, concurrency=1, deadline=0.2)
            results = [r async for r in stream]
        assert sorted(r.index for r in results) == list(range(5))
        assert all(isinstance(r.error, asyncgen.DeadlineExceededError) for r in results)

    async def test_response_model_for_jobs_that_name_none(self, sim: SimServer) -> None:
        """The stream's response_model applies to jobs pulled that name none."""

        class City(BaseModel):
            name: str

        sim.configure(SimConfig(default=ModelProfile(replies=['{"name": "Lyon"}'])))
        jobs = iter([{"model": "m", "prompt": "where?"}])
        async with ChatClient(sim.base_url) as client:
            stream = asyncgen.generate_stream(jobs, client=client, response_model=City)
            results = [r async for r in stream]
        assert results[0].parsed == City(name="Lyon")

    async def test_invalid_job_in_the_stream_raises(self, sim: SimServer) -> None:
        """A bad job pulled from the stream ends it with a ValueError naming the job."""
        jobs = [{"model": "m", "prompt": "ok"}, {"model": "m"}]
        async with ChatClient(sim.base_url) as client:
            with pytest.raises(ValueError, match="job 1 is invalid"):
                async for _ in asyncgen.generate_stream(jobs, client=client, concurrency=1):
                    pass


class TestHardening:
    async def test_an_over_long_retry_after_pauses_no_longer_than_max_retry_after(
        self, sim: SimServer
    ) -> None:
        """A 429 asking for 1,000 s fails its job at once and holds the others at most the cap."""
        limited = Fault(kind="status", status=429, retry_after=1000, first=1)
        sim.configure(profiles(limited=ModelProfile(faults=[limited])))
        jobs = [{"model": "limited", "prompt": "x"}, {"model": "fine", "prompt": "y"}]
        policy = RetryPolicy(max_retry_after=0.2)
        async with ChatClient(sim.base_url) as client:
            results = await asyncgen.generate(
                jobs, client=client, concurrency=1, retry=policy, deadline=20
            )
            paused = client.statistics().paused_seconds
        assert isinstance(results[0].error, asyncgen.RateLimitedError)
        assert results[1].ok
        assert paused <= 0.2 + 0.05  # the cap, not the 1,000 s asked

    async def test_validate_returning_false_fails_the_job(self, sim: SimServer) -> None:
        """False (the bool) is a failed check; falsy values such as [] are kept as values."""
        async with ChatClient(sim.base_url) as client:
            short = await asyncgen.fan_out(
                "x", ["m"], client=client, validate=lambda t: len(t) > 99
            )
            empty = await asyncgen.fan_out("x", ["m"], client=client, validate=lambda t: [])
        assert isinstance(short[0].error, asyncgen.ValidationFailedError)
        assert short[0].text == "[m] x"  # the answer is kept for inspection
        assert (empty[0].ok, empty[0].value) == (True, [])

    async def test_jobs_not_sent_for_one_reason_are_logged_once(self, sim: SimServer) -> None:
        """max_cost stopping 11 jobs logs one warning for them, not 11."""
        sim.configure(SimConfig(default=ModelProfile(price_per_token=1.0)))
        with structlog.testing.capture_logs() as logs:
            async with ChatClient(sim.base_url) as client:
                results = await asyncgen.generate(
                    [{"model": "m", "prompt": "x"}] * 12,
                    client=client,
                    concurrency=1,
                    max_cost=0.5,
                )
        stopped = [r for r in results if isinstance(r.error, asyncgen.BudgetExceededError)]
        assert len(stopped) == 11
        warned = [e for e in logs if e["event"] == "job_failed"]
        assert len(warned) == 1
        assert warned[0]["later_unsent"] == "not logged one by one"

    def test_result_has_the_job_id_and_a_lone_surrogate_is_refused(self) -> None:
        """GenerationResult.id is the job's id; text that cannot be UTF-8 is refused early."""
        job = GenerationJob(model="m", prompt="hi", id="mine")
        assert asyncgen.GenerationResult(index=0, job=job).id == "mine"
        with pytest.raises(ValueError, match=r"lone surrogate \(U\+D800\)"):
            GenerationJob(model="m", messages=[{"role": "user", "content": "a\ud800"}])
