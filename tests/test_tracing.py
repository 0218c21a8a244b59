"""OpenTelemetry: one trace from a web request through the queue, its runs and retries,
to the answer; GenAI attributes on each request; nothing made when no tracer is set.

The spans are captured in memory with ``asyncgen.testing.capture_spans``: asyncgen traces
through its own SDK provider for the test, and the process's global provider is left
alone (a process sets it once and for good, so no later test pays for these spans)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

import asyncgen
from asyncgen import RetryPolicy, open_queue, open_worker
from asyncgen.sim import Fault, ModelProfile, SimConfig
from asyncgen.testing import SimServer, SpanCapture, capture_spans

FAST = RetryPolicy(base_delay=0.01, jitter=0)


@pytest.fixture
def spans() -> Iterator[SpanCapture]:
    with capture_spans() as captured:
        yield captured


def named(found: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    chosen = [span for span in found if span.name.startswith(prefix)]
    return sorted(chosen, key=lambda span: span.start_time or 0)


def fail_first(count: int, status: int = 503, retry_after: float | None = None) -> SimConfig:
    fault = Fault(kind="status", status=status, first=count, retry_after=retry_after)
    return SimConfig(default=ModelProfile(faults=[fault]))


async def test_one_trace_from_a_web_request_through_the_queue_to_two_retries_and_an_answer(
    spans: SpanCapture, sim: SimServer, tmp_path: Path
) -> None:
    """A web handler's span submits a generation job; the worker runs it three times
    (two 503s, then the answer). Every span is in the handler's trace: the submit under
    the handler, each run under the submit (its record carried the traceparent), a
    request span under each run, and the last request says what it used."""
    sim.configure(fail_first(2))
    queue = open_queue(f"sqlite:///{tmp_path}/jobs.db")
    tracer = spans.tracer("a web framework's instrumentation")
    with tracer.start_as_current_span("GET /ask", kind=trace.SpanKind.SERVER) as web:
        job_id = await queue.submit(asyncgen.GenerationJob(model="m", prompt="hi"))
    client = asyncgen.ChatClient(sim.base_url)
    async with open_worker(queue, client=client, retry=FAST):
        record = await queue.result(job_id, timeout=20)
    await client.aclose()
    await queue.aclose()
    assert record["text"] == "[m] hi"

    found = spans.spans()
    trace_id = web.get_span_context().trace_id
    assert {span.context.trace_id for span in found if span.context} == {trace_id}
    (sent,) = named(found, "send generate")
    assert sent.kind is trace.SpanKind.PRODUCER
    assert sent.parent is not None
    assert sent.parent.span_id == web.get_span_context().span_id
    assert sent.attributes is not None
    assert sent.attributes["messaging.message.id"] == job_id
    runs = named(found, "process generate")
    assert [run.kind for run in runs] == [trace.SpanKind.CONSUMER] * 3
    assert sent.context is not None
    assert all(run.parent and run.parent.span_id == sent.context.span_id for run in runs)
    assert [run.status.status_code for run in runs] == [
        trace.StatusCode.ERROR,
        trace.StatusCode.ERROR,
        trace.StatusCode.UNSET,
    ]
    requests = named(found, "chat m")
    assert len(requests) == 3
    for run, request in zip(runs, requests, strict=True):
        (job_span,) = [
            s
            for s in found
            if s.name == "generate m" and s.parent and run.context
            if s.parent.span_id == run.context.span_id
        ]
        assert job_span.context is not None
        assert request.parent is not None
        assert request.parent.span_id == job_span.context.span_id
        assert request.kind is trace.SpanKind.CLIENT
    first, _, last = (dict(request.attributes or {}) for request in requests)
    assert first["error.type"] == "ServerError"
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.request.model"] == "m"
    assert first["server.address"] == "127.0.0.1"
    assert last["gen_ai.response.model"] == "m"
    assert isinstance(last["gen_ai.usage.input_tokens"], int)
    assert isinstance(last["gen_ai.usage.output_tokens"], int)
    assert last["gen_ai.usage.input_tokens"] > 0
    assert last["gen_ai.usage.output_tokens"] > 0
    assert "error.type" not in last


async def test_retries_and_a_429s_pause_are_events_on_the_job_span(
    spans: SpanCapture, sim: SimServer
) -> None:
    """generate() retrying in process: one job span, a request span per attempt under
    it, and the retries (and the 429's wait) as events on the job span."""
    sim.configure(fail_first(2, status=429, retry_after=0.05))
    client = asyncgen.ChatClient(sim.base_url)
    (result,) = await asyncgen.generate(
        [asyncgen.GenerationJob(model="m", prompt="hi")], client=client, retry=FAST
    )
    await client.aclose()
    assert result.ok
    found = spans.spans()
    (job_span,) = named(found, "generate m")
    requests = named(found, "chat m")
    assert len(requests) == 3
    assert job_span.context is not None
    assert all(r.parent and r.parent.span_id == job_span.context.span_id for r in requests)
    events = [event.name for event in job_span.events]
    assert events.count("retry") == 2
    assert events.count("rate_limited") == 2
    (retry, _) = [event for event in job_span.events if event.name == "retry"]
    assert retry.attributes is not None
    assert retry.attributes["error.type"] == "RateLimitedError"
    assert retry.attributes["attempt"] == 1


def test_nothing_is_made_when_no_tracer_is_set() -> None:
    """With opentelemetry-api installed but no TracerProvider set, asyncgen makes no
    span (its tracer is None, its spans yield None) and a job's record carries no
    trace; asyncgen never sets a provider itself."""
    code = textwrap.dedent(
        """
        import asyncio
        from opentelemetry import trace
        import asyncgen
        from asyncgen.core import _tracing
        from asyncgen.testing import sim_server

        async def main():
            with sim_server() as sim:
                client = asyncgen.ChatClient(sim.base_url)
                await client.chat("m", [{"role": "user", "content": "hi"}])
                await client.aclose()
            queue = asyncgen.open_queue("memory://")
            job_id = await queue.submit(asyncgen.GenerationJob(model="m", prompt="hi"))
            print((await queue.status(job_id)).context)
            await queue.aclose()

        assert _tracing.tracer() is None
        with _tracing.span("x") as made:
            assert made is None
        asyncio.run(main())
        assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["{}", "ok"]


async def test_a_streamed_request_is_a_span_until_its_answer_is_read(
    spans: SpanCapture, sim: SimServer
) -> None:
    """A stream's span starts when the request is sent and ends when the answer has
    been read (after the call returned), under the span the stream was made in; a
    stream cut short ends its span with the error."""
    client = asyncgen.ChatClient(sim.base_url)
    tracer = spans.tracer("the application")
    with tracer.start_as_current_span("handler") as handler:
        stream = client.stream("m", [{"role": "user", "content": "tell me more"}])
    text = "".join([delta async for delta in stream])
    assert text == "[m] tell me more"
    sim.configure(SimConfig(default=ModelProfile(faults=[Fault(kind="stream_truncate")])))
    with pytest.raises(asyncgen.AsyncGenError):
        async for _ in client.stream("m", [{"role": "user", "content": "tell me more"}]):
            pass
    await client.aclose()
    good, cut = named(spans.spans(), "chat m")
    assert good.kind is trace.SpanKind.CLIENT
    assert good.parent is not None
    assert good.parent.span_id == handler.get_span_context().span_id
    attributes = dict(good.attributes or {})
    assert isinstance(attributes["gen_ai.usage.output_tokens"], int)
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert "error.type" not in attributes
    assert cut.status.status_code is trace.StatusCode.ERROR
    assert dict(cut.attributes or {})["error.type"]


def test_a_capture_leaves_the_process_untraced() -> None:
    """Inside capture_spans asyncgen traces; after it, nothing traces again (no global
    provider was set, so the tests after this module pay nothing for it)."""
    from asyncgen.core._tracing import tracer

    with capture_spans():
        assert tracer() is not None
    assert tracer() is None
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
