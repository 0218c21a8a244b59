"""The spans asyncgen makes, captured in memory for a test (``asyncgen.testing``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..core._tracing import use_provider

__all__ = ["SpanCapture", "capture_spans"]


@dataclass(frozen=True)
class SpanCapture:
    """What :func:`capture_spans` yields.

    Attributes:
        provider: The OpenTelemetry SDK TracerProvider asyncgen traces through.
        exporter: Its in-memory exporter.
    """

    provider: Any
    exporter: Any

    def spans(self) -> tuple[Any, ...]:
        """The spans ended so far (``ReadableSpan``), oldest first."""
        found: tuple[Any, ...] = self.exporter.get_finished_spans()
        return found

    def tracer(self, name: str) -> Any:
        """A tracer of the same provider, for the test's own spans (a web handler's)."""
        return self.provider.get_tracer(name)


@contextlib.contextmanager
def capture_spans() -> Iterator[SpanCapture]:
    """asyncgen traces into memory inside the block, whatever the process's global
    TracerProvider is (it is left alone: a process sets it once and for good).

    Raises:
        RuntimeError: opentelemetry-sdk is not installed (says how to install it).
    """
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
    except ImportError as exc:
        raise RuntimeError(
            "capture_spans needs the OpenTelemetry SDK: pip install opentelemetry-sdk"
        ) from exc
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        with use_provider(provider):
            yield SpanCapture(provider, exporter)
    finally:
        provider.shutdown()
