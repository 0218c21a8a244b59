"""Fallbacks against the simulator over real sockets: after retries, on an open breaker,
on a long 429 pause; never after a 402 or a validation failure."""

from __future__ import annotations

import time
from typing import Any

from asyncgen import (
    BudgetExceededError,
    ChatClient,
    Event,
    GenerationJob,
    InsufficientCreditsError,
    JobFellBack,
    RetryPolicy,
    ValidationFailedError,
    generate,
)
from asyncgen.sim import Fault, ModelProfile, SimConfig
from asyncgen.testing import SimServer

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, jitter=0)


def down(*faults: Fault) -> ModelProfile:
    return ModelProfile(faults=list(faults))


async def run_one(
    client: ChatClient, job: GenerationJob, **options: Any
) -> tuple[Any, list[Event]]:
    events: list[Event] = []
    (result,) = await generate([job], client=client, on_event=events.append, **options)
    return result, events


async def test_a_failing_model_falls_back_after_its_retries(sim: SimServer) -> None:
    sim.configure(SimConfig(models={"a": down(Fault(kind="status", status=503))}))
    client = ChatClient(sim.base_url)
    job = GenerationJob(model="a", prompt="hi", fallbacks=["b", "c"])
    result, events = await run_one(client, job, retry=FAST)
    await client.aclose()
    assert result.ok
    assert (result.text, result.answered_by) == ("[b] hi", "b")
    assert [(f["model"], f["error_type"]) for f in result.fell_back] == [("a", "ServerError")]
    assert sim.stats()["requests"] == {"a": 3, "b": 1}  # a's three attempts, then b
    moved = [e for e in events if isinstance(e, JobFellBack)]
    assert [(e.from_model, e.to_model) for e in moved] == [("a", "b")]
    record = result.to_record()
    assert (record["answered_by"], record["fell_back"][0]["model"]) == ("b", "a")


async def test_an_open_breaker_moves_on_without_a_request(sim: SimServer) -> None:
    """Two failures open a's circuit; the next job skips a at once."""
    sim.configure(SimConfig(models={"a": down(Fault(kind="status", status=503))}))
    client = ChatClient(sim.base_url, breaker_failures=2)
    for _ in range(2):  # no fallback yet: each fails on a
        await run_one(client, GenerationJob(model="a", prompt="x"), retry=RetryPolicy.never())
    assert client.breaker("a").state == "open"
    before = sim.stats()["requests"]["a"]
    job = GenerationJob(model="a", prompt="hi", fallbacks=["b"])
    result, _ = await run_one(client, job, retry=RetryPolicy.never())
    await client.aclose()
    assert result.answered_by == "b"
    assert result.fell_back[0]["error_type"] == "CircuitOpenError"
    assert sim.stats()["requests"]["a"] == before  # no request to the open circuit


async def test_a_long_pause_moves_on_at_once(sim: SimServer) -> None:
    """A 429 asking for 60 s, with fallback_after=5: the job goes to b without waiting
    (the client's default fallbacks)."""
    sim.configure(SimConfig(models={"a": down(Fault(kind="status", status=429, retry_after=60))}))
    client = ChatClient(sim.base_url, fallback_after=5, fallbacks={"a": ["b"]})
    began = time.monotonic()
    result, _ = await run_one(client, GenerationJob(model="a", prompt="hi"), retry=FAST)
    took = time.monotonic() - began
    assert result.answered_by == "b"
    assert result.fell_back[0]["error_type"] == "Paused"
    assert took < 5  # far less than the 60 s asked for
    # A second job on a: a is still paused, so it moves on before any request.
    second, _ = await run_one(client, GenerationJob(model="a", prompt="again"), retry=FAST)
    await client.aclose()
    assert second.answered_by == "b"
    assert sim.stats()["requests"] == {"a": 1, "b": 2}


async def test_never_after_a_402_or_a_failed_validation(sim: SimServer) -> None:
    sim.configure(SimConfig(models={"broke": down(Fault(kind="status", status=402))}))
    client = ChatClient(sim.base_url)
    broke, _ = await run_one(client, GenerationJob(model="broke", prompt="x", fallbacks=["b"]))
    assert isinstance(broke.error, InsufficientCreditsError)
    invalid, _ = await run_one(
        client, GenerationJob(model="a", prompt="x", fallbacks=["b"]), validate=lambda text: False
    )
    await client.aclose()
    assert isinstance(invalid.error, ValidationFailedError)
    assert "b" not in sim.stats()["requests"]
    assert broke.fell_back == invalid.fell_back == []


async def test_the_last_fallback_s_error_is_the_job_s(sim: SimServer) -> None:
    sim.configure(SimConfig(default=down(Fault(kind="status", status=503))))
    client = ChatClient(sim.base_url)
    result, _ = await run_one(
        client, GenerationJob(model="a", prompt="x", fallbacks=["b"]), retry=RetryPolicy.never()
    )
    await client.aclose()
    assert not result.ok
    assert [f["model"] for f in result.fell_back] == ["a"]
    assert "b:" in str(result.error)


async def test_fallbacks_count_against_max_cost(sim: SimServer) -> None:
    """A pricier fallback spends the batch's budget like any answer: once it is spent,
    no job (or fallback) starts."""
    sim.configure(
        SimConfig(
            models={
                "a": down(Fault(kind="status", status=503)),
                "b": ModelProfile(price_per_token=0.001),
            }
        )
    )
    client = ChatClient(sim.base_url)
    jobs = [GenerationJob(model="a", prompt=f"job {i}", fallbacks=["b"]) for i in range(5)]
    results = await generate(
        jobs, client=client, concurrency=1, max_cost=0.001, retry=RetryPolicy.never()
    )
    await client.aclose()
    assert results[0].answered_by == "b"
    assert sim.stats()["requests"]["b"] == 1  # the budget was spent by the first fallback
    assert all(isinstance(r.error, BudgetExceededError) for r in results[1:])
