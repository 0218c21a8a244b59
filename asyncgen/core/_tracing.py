"""OpenTelemetry spans, when the application traces: nothing at all when it does not.

asyncgen never configures OpenTelemetry: the application does (a TracerProvider with its
exporter, ``opentelemetry.trace.set_tracer_provider``). Until one is set, or when
``opentelemetry-api`` is not installed (the ``otel`` extra), every call here returns at
once: no span object is made, nothing is imported past the first check.

Spans follow OpenTelemetry's GenAI semantic conventions for the requests
(``chat {model}``, ``gen_ai.*`` attributes, ``error.type``) and its messaging
conventions' shape for the queue (``send {kind}`` when a job is submitted, ``process
{kind}`` for each run of it). A submitted job carries the submitter's trace context in
its record (``traceparent``), so the worker's run continues the submitter's trace.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = ["add_event", "begin", "carrier", "current", "end", "span", "tracer", "use_provider"]

_NAME = "asyncgen"
TRACE_KEYS = ("traceparent", "tracestate")  # what a job record carries of a trace


@functools.cache
def _api() -> Any:
    """The ``opentelemetry.trace`` module, or None when it is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace


@functools.cache
def _placeholders(trace: Any) -> tuple[type, ...]:
    """The providers that stand in until the application sets one (a tuple, made once:
    ``A | B`` would build a union object on every call)."""
    return (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


_FOUND: list[Tracer] = []  # asyncgen's tracer, once a provider is set (it stays set)
_USING: list[Tracer] = []  # a provider's tracer given for a while (use_provider)


@contextlib.contextmanager
def use_provider(provider: Any) -> Iterator[None]:
    """Trace through ``provider`` inside the block instead of the global one (which a
    process sets once and for good): for tests, and for code that keeps its own."""
    _USING.append(provider.get_tracer(_NAME))
    try:
        yield
    finally:
        _USING.pop()


def tracer() -> Tracer | None:
    """asyncgen's tracer, or None while no TracerProvider is set (or OTel is absent).

    Called on every request: once a provider is set (OpenTelemetry sets one once per
    process) its tracer is kept; until then, one call to the API's getter.
    """
    if _USING:
        return _USING[-1]
    if _FOUND:
        return _FOUND[0]
    trace = _api()
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, _placeholders(trace)):
        return None
    found: Tracer = provider.get_tracer(_NAME)
    _FOUND.append(found)
    return found


@contextlib.contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: str = "INTERNAL",
    parent: Mapping[str, str] | None = None,
) -> Iterator[Span | None]:
    """A span around the block (the current one inside it), or None when not tracing.

    Args:
        name: The span's name (``chat gpt-4o-mini``, ``process add``).
        attributes: Its attributes at the start (None values are left out).
        kind: ``INTERNAL``, ``CLIENT``, ``PRODUCER`` or ``CONSUMER``.
        parent: A carrier (``traceparent``...) to continue a trace begun elsewhere;
            None: the current span is the parent.

    An exception that leaves the block is recorded on the span, with ``error.type``.
    """
    found = tracer()
    if found is None:
        yield None
        return
    from opentelemetry import propagate, trace

    context = propagate.extract(dict(parent)) if parent else None
    with found.start_as_current_span(
        name,
        context=context,
        kind=getattr(trace.SpanKind, kind),
        attributes={k: v for k, v in (attributes or {}).items() if v is not None},
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_attribute("error.type", type(exc).__name__)
            current.record_exception(exc)
            current.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)[:500]))
            raise


def add_event(name: str, attributes: Mapping[str, Any] | None = None) -> None:
    """An event on the current span (a retry, a 429's pause), if tracing."""
    if tracer() is None:
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    if current.is_recording():
        current.add_event(name, {k: v for k, v in (attributes or {}).items() if v is not None})


def carrier() -> dict[str, str]:
    """The current trace context as ``traceparent`` (and ``tracestate``): what a job
    record carries so its runs continue this trace. Empty when not tracing."""
    if tracer() is None:
        return {}
    from opentelemetry import propagate

    found: dict[str, str] = {}
    propagate.inject(found)
    return {key: value for key, value in found.items() if key in TRACE_KEYS}


def current() -> Any:
    """The current OpenTelemetry context (to start a span under it later), or None when
    not tracing."""
    if tracer() is None:
        return None
    from opentelemetry import context

    return context.get_current()


def begin(
    name: str, attributes: Mapping[str, Any], *, kind: str = "CLIENT", parent: Any = None
) -> Span | None:
    """A span that outlives the block that starts it (a streamed answer is read after
    the call returns): a child of ``parent`` (a context from :func:`current`; None: the
    current span); None when not tracing. Close it with :func:`end`."""
    found = tracer()
    if found is None:
        return None
    from opentelemetry import trace

    return found.start_span(
        name,
        context=parent,
        kind=getattr(trace.SpanKind, kind),
        attributes={k: v for k, v in attributes.items() if v is not None},
        record_exception=False,
        set_status_on_exception=False,
    )


def end(started: Span | None, attributes: Mapping[str, Any], error: BaseException | None) -> None:
    """End a span from :func:`begin` with what was learned, and the error if any."""
    if started is None:
        return
    from opentelemetry import trace

    started.set_attributes({k: v for k, v in attributes.items() if v is not None})
    if error is not None:
        started.set_attribute("error.type", type(error).__name__)
        started.record_exception(error)
        started.set_status(trace.Status(trace.StatusCode.ERROR, str(error)[:500]))
    started.end()
