"""Prometheus export of a worker's metrics with prometheus_client (``asyncgen[metrics]``).

- :class:`Families`: the worker's own families on a registry: ``asyncgen_jobs_total``
  (kind, model, outcome), ``asyncgen_job_duration_seconds`` (a histogram per kind and
  model), ``asyncgen_breaker_open`` (model) and state gauges (``asyncgen_credit_paused``).
  Under ``asyncgen worker --processes N`` they live in prometheus_client's multi-process
  files (``PROMETHEUS_MULTIPROC_DIR``) and the supervisor serves their sum.
- :class:`QueueCollector`: ``asyncgen_queue_jobs`` (state, kind), read from the store
  at each scrape.
- :func:`serve_metrics`: an HTTP endpoint for both.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import structlog

from ..core._bridge import run_blocking
from ..core._errors import AsyncGenError
from ..core._logging import mask_secrets

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ._queue import JobQueue

__all__ = ["Families", "QueueCollector", "require_prometheus", "serve_metrics"]

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

_log = structlog.get_logger("asyncgen.metrics")


def require_prometheus() -> None:
    """Raise ImportError saying how to install the ``metrics`` extra when it is missing."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "Prometheus export needs the metrics extra: pip install 'asyncgen[metrics]'"
        ) from exc


class Families:
    """The worker's metric families on ``registry`` (prometheus_client objects)."""

    def __init__(self, registry: CollectorRegistry, buckets: tuple[float, ...]) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.jobs = Counter(
            "asyncgen_jobs",
            "Job runs by outcome (ok, failed: dead, retried).",
            ["kind", "model", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "asyncgen_job_duration_seconds",
            "Duration of finished job runs.",
            ["kind", "model"],
            buckets=[b for b in buckets if not math.isinf(b)],
            registry=registry,
        )
        self.breaker = Gauge(
            "asyncgen_breaker_open",
            "1 while the model's circuit is open.",
            ["model"],
            registry=registry,
            multiprocess_mode="max",
        )
        self._registry = registry
        self._states: dict[str, Any] = {}

    def state(self, name: str, value: float) -> None:
        """Set the gauge ``asyncgen_<name>`` (made on first use)."""
        from prometheus_client import Gauge

        gauge = self._states.get(name)
        if gauge is None:
            gauge = self._states[name] = Gauge(
                f"asyncgen_{name}",
                f"Worker state {name} (1: on).",
                registry=self._registry,
                multiprocess_mode="max",
            )
        gauge.set(value)


class QueueCollector:
    """``asyncgen_queue_jobs{state, kind}``: the queue's depth, read at each scrape, and
    ``asyncgen_queue_reachable`` (1, or 0 while the store cannot be read: then the depth
    is left out and the worker's own metrics are still served, never a 500)."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self._down = False  # said once per outage, not at every scrape

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        reachable = GaugeMetricFamily(
            "asyncgen_queue_reachable", "1 when the queue's store answered this scrape."
        )
        try:
            depth = run_blocking(self.queue.store.depth)
        except AsyncGenError as exc:  # Redis down, a locked database: serve what is known
            if not self._down:
                _log.warning(
                    "metrics_queue_unreachable", queue=self.queue.url, error=mask_secrets(str(exc))
                )
            self._down = True
            reachable.add_metric([], 0)
            yield reachable
            return
        self._down = False
        reachable.add_metric([], 1)
        yield reachable
        family = GaugeMetricFamily(
            "asyncgen_queue_jobs",
            "Jobs in the queue by state and kind ('*': any kind).",
            labels=["state", "kind"],
        )
        for (state, kind), count in sorted(depth.items()):
            family.add_metric([state, kind], count)
        yield family


def serve_metrics(
    port: int,
    *,
    host: str = "127.0.0.1",
    registry: CollectorRegistry | None = None,
    queue: JobQueue | None = None,
) -> Any:
    """Serve ``/metrics`` on ``host:port`` from a background thread; returns the server.

    With ``registry`` None the multi-process files (``PROMETHEUS_MULTIPROC_DIR``) are
    served: the sum over a supervisor's worker processes. ``queue`` adds its depth.
    """
    require_prometheus()
    from prometheus_client import CollectorRegistry, start_http_server

    if registry is None:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
            registry, path=os.environ[MULTIPROCESS_VARIABLE]
        )
    if queue is not None:
        registry.register(QueueCollector(queue))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
