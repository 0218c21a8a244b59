"""Streaming against the simulator over real sockets: deltas arrive as they are made, the
whole answer and usage come after, a reset or a stall mid-stream is a typed error."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable

import pytest

import asyncgen
from asyncgen import (
    ChatClient,
    ConnectionFailedError,
    GenerationJob,
    JobToken,
    RequestTimeoutError,
    RetryPolicy,
    ServerError,
    StreamInterruptedError,
    generate,
)
from asyncgen.sim import Fault, ModelProfile, SimConfig
from asyncgen.testing import SimServer

TEXT = "one two three four five six seven eight nine ten"
HI = [{"role": "user", "content": "count"}]
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, jitter=0)


def streaming(sim: SimServer, *faults: Fault, rate: float = 20.0, latency: float = 0.0) -> None:
    profile = ModelProfile(reply=TEXT, tokens_per_second=rate, latency=latency, faults=list(faults))
    sim.configure(SimConfig(default=profile))


async def drain(stream: AsyncIterable[str], into: list[str] | None = None) -> None:
    """Read a stream to its end, keeping the deltas in ``into``."""
    async for delta in stream:
        if into is not None:
            into.append(delta)


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_deltas_arrive_as_they_are_generated(sim: SimServer, backend: str) -> None:
    """Ten words at 20 a second: the first arrives long before the last is made."""
    streaming(sim, latency=0.1)
    client = ChatClient(sim.base_url, backend=backend)  # type: ignore[arg-type]
    stream = client.stream("m", HI)
    began = time.monotonic()
    arrivals: list[tuple[float, str]] = []
    async for delta in stream:
        arrivals.append((time.monotonic() - began, delta))
    await client.aclose()
    assert "".join(d for _, d in arrivals) == TEXT
    assert len(arrivals) == 10
    first, last = arrivals[0][0], arrivals[-1][0]
    assert last - first > 0.3  # nine gaps of 50 ms: spread out, not one lump
    assert first < last / 2
    completion = stream.completion
    assert completion is not None
    assert completion.text == TEXT
    assert completion.finish_reason == "stop"
    assert completion.usage.total_tokens > 0  # the usage chunk
    assert completion.first_token is not None
    assert 0.08 < completion.first_token < completion.latency
    stats = client.statistics()
    assert (stats.succeeded, stats.mean_first_token is not None) == (1, True)


async def test_a_reset_mid_stream_is_a_connection_error(sim: SimServer) -> None:
    streaming(sim, Fault(kind="stream_reset"))
    client = ChatClient(sim.base_url)
    stream = client.stream("m", HI)
    got: list[str] = []
    with pytest.raises(ConnectionFailedError):
        await drain(stream, got)
    await client.aclose()
    assert 0 < len(got) < 10  # part of the answer came before the break
    assert stream.completion is None
    assert client.statistics().failed == 1


async def test_a_stall_mid_stream_times_out(sim: SimServer) -> None:
    streaming(sim, Fault(kind="stream_stall", stall_seconds=30))
    client = ChatClient(sim.base_url)
    began = time.monotonic()
    with pytest.raises(RequestTimeoutError, match=r"went silent for 0\.5 s"):
        await drain(client.stream("m", HI, stall_timeout=0.5))
    await client.aclose()
    assert time.monotonic() - began < 10


async def test_an_error_status_before_the_stream_is_typed(sim: SimServer) -> None:
    streaming(sim, Fault(kind="status", status=503))
    client = ChatClient(sim.base_url)
    with pytest.raises(ServerError, match="HTTP 503"):
        await drain(client.stream("m", HI))
    await client.aclose()


async def test_a_stream_is_iterated_once(sim: SimServer) -> None:
    streaming(sim, rate=0)
    client = ChatClient(sim.base_url)
    stream = client.stream("m", HI)
    assert [d async for d in stream]
    with pytest.raises(RuntimeError, match="iterated once"):
        await drain(stream)
    await client.aclose()


def test_sync_code_streams_too(sim: SimServer) -> None:
    """The blocking twin yields each delta as it comes; breaking early closes it."""
    streaming(sim, rate=50)
    client = ChatClient(sim.base_url)
    assert "".join(asyncgen.sync.stream(client, "m", HI)) == TEXT
    first_two = []
    for delta in asyncgen.sync.stream(client, "m", HI):
        first_two.append(delta)
        if len(first_two) == 2:
            break
    assert first_two == ["one ", "two "]
    client.close()


async def test_a_streamed_job_hands_its_text_to_on_event(sim: SimServer) -> None:
    """generate with stream=True: JobToken events in order, before the job ends; the
    result has the whole text and the time to first token."""
    streaming(sim, rate=50)
    client = ChatClient(sim.base_url)
    events: list[object] = []
    job = GenerationJob(model="m", prompt="count", stream=True)
    (result,) = await generate([job], client=client, on_event=events.append)
    await client.aclose()
    tokens = [e.text for e in events if isinstance(e, JobToken)]
    assert "".join(tokens) == TEXT == result.text
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("JobToken") < kinds.index("JobSucceeded")
    assert result.completion is not None
    assert result.completion.first_token is not None


async def test_a_stream_broken_before_any_text_is_retried(sim: SimServer) -> None:
    streaming(sim, Fault(kind="status", status=503, first=1), rate=0)
    client = ChatClient(sim.base_url)
    job = GenerationJob(model="m", prompt="count", stream=True)
    (result,) = await generate([job], client=client, retry=FAST)
    await client.aclose()
    assert (result.ok, result.attempts) == (True, 2)


async def test_a_stream_broken_after_some_text_is_not_retried(sim: SimServer) -> None:
    streaming(sim, Fault(kind="stream_reset"), rate=0)
    client = ChatClient(sim.base_url)
    tokens: list[str] = []
    job = GenerationJob(model="m", prompt="count", stream=True)
    (result,) = await generate(
        [job],
        client=client,
        retry=FAST,
        on_event=lambda e: tokens.append(e.text) if isinstance(e, JobToken) else None,
    )
    await client.aclose()
    assert isinstance(result.error, StreamInterruptedError)
    assert result.attempts == 1
    assert 0 < len(tokens) < 10


async def test_a_streamed_job_has_its_own_stall_timeout(sim: SimServer) -> None:
    """GenerationJob(stall_timeout=0.3): a stream silent for 30 s ends the job within
    seconds (the default would wait 30 s), as a typed error."""
    streaming(sim, Fault(kind="stream_stall", stall_seconds=30))
    client = ChatClient(sim.base_url)
    job = GenerationJob(model="m", prompt="count", stream=True, stall_timeout=0.3)
    began = time.monotonic()
    (result,) = await generate([job], client=client, retry=FAST)
    await client.aclose()
    assert time.monotonic() - began < 10
    assert isinstance(result.error, RequestTimeoutError | StreamInterruptedError)
    assert "0.3 s" in str(result.error)
    with pytest.raises(ValueError, match="stall_timeout"):
        GenerationJob(model="m", prompt="x", stream=True, stall_timeout=0)


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_a_stream_cut_short_is_never_an_answer(sim: SimServer, backend: str) -> None:
    """The response ends cleanly half-way, with no finish reason and no [DONE]: after
    some text that is StreamInterruptedError and no completion, on both backends."""
    streaming(sim, Fault(kind="stream_truncate"))
    client = ChatClient(sim.base_url, backend=backend)  # type: ignore[arg-type]
    got: list[str] = []
    stream = client.stream("m", HI)
    with pytest.raises(StreamInterruptedError, match="no finish reason and no \\[DONE\\]"):
        await drain(stream, got)
    await client.aclose()
    assert got
    assert "".join(got) != TEXT
    assert stream.completion is None


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_an_undecodable_event_raises(sim: SimServer, backend: str) -> None:
    """An event that is not UTF-8 JSON raises InvalidResponseError: never skipped."""
    streaming(sim, Fault(kind="stream_garbage"))
    client = ChatClient(sim.base_url, backend=backend)  # type: ignore[arg-type]
    with pytest.raises(asyncgen.InvalidResponseError, match="not UTF-8"):
        await drain(client.stream("m", HI))
    await client.aclose()


async def test_a_job_cut_before_any_text_is_retried(sim: SimServer) -> None:
    """A streamed job whose first stream closes before any text is sent again (nothing
    was handed out), and the second, whole answer is the result."""
    streaming(sim, Fault(kind="stream_truncate", after_words=0, first=1))
    client = ChatClient(sim.base_url)
    job = GenerationJob(model="m", prompt="count", stream=True)
    (result,) = await generate([job], client=client, retry=FAST)
    await client.aclose()
    assert result.ok, result.error
    assert (result.text, result.attempts) == (TEXT, 2)


async def test_no_truncated_stream_is_counted_as_done(sim: SimServer) -> None:
    """200 streamed jobs, a tenth of their streams cut short half-way: every answer
    counted as done is whole; the cut ones fail as StreamInterruptedError."""
    streaming(sim, Fault(kind="stream_truncate", rate=0.1), rate=0)
    client = ChatClient(sim.base_url)
    jobs = [GenerationJob(model="m", prompt="count", stream=True) for _ in range(200)]
    results = await generate(jobs, client=client, concurrency=16, retry=FAST)
    await client.aclose()
    done = [r for r in results if r.ok]
    cut = [r for r in results if not r.ok]
    assert all(r.text == TEXT for r in done)
    assert all(isinstance(r.error, StreamInterruptedError) for r in cut)
    assert 5 <= len(cut) <= 45  # about a tenth
    assert len(done) + len(cut) == 200
