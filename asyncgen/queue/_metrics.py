"""Job metrics: counters and latency histograms per task kind and model, with alerts.

Exported as JSON, or for Prometheus through prometheus_client (``asyncgen[metrics]``;
see ``_exporter``): ``to_prometheus()`` and ``asyncgen worker --metrics-port``.
"""

from __future__ import annotations

import asyncio
import bisect
import inspect
import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from ._exporter import Families, require_prometheus

__all__ = ["DEFAULT_BUCKETS", "Alert", "AlertEvent", "Metrics"]

DEFAULT_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    math.inf,
)

_log = structlog.get_logger("asyncgen.metrics")

Key = tuple[str, str]  # (kind, model); model is "" for plain tasks


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert crossing its threshold for one (kind, model)."""

    name: str
    kind: str
    model: str
    value: float
    threshold: float


@dataclass(slots=True)
class Alert:
    """Call ``callback`` when ``metric`` for a (kind, model) rises above ``threshold``.

    Fires once on the way up and again only after the value has fallen back below.

    Attributes:
        name: What to call it in the event.
        metric: "error_rate" (failed / finished) or "mean_duration" (seconds).
        threshold: The value that must be exceeded.
        callback: Called with an AlertEvent; may be async (then scheduled on the loop).
        min_count: Finished jobs needed before the alert is judged.
    """

    name: str
    metric: Literal["error_rate", "mean_duration"]
    threshold: float
    callback: Callable[[AlertEvent], object]
    min_count: int = 10
    _firing: set[Key] = field(default_factory=set)

    def judge(self, key: Key, count: int, value: float) -> AlertEvent | None:
        """The event to send when ``value`` (of ``count`` finished jobs of ``key``) has
        just crossed the threshold; None otherwise (below it, or already firing)."""
        if count < self.min_count:
            return None
        if value <= self.threshold:
            self._firing.discard(key)
            return None
        if key in self._firing:
            return None
        self._firing.add(key)
        return AlertEvent(self.name, key[0], key[1], value, self.threshold)


@dataclass(slots=True)
class _Series:
    ok: int = 0
    failed: int = 0
    retried: int = 0
    total_seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(DEFAULT_BUCKETS))

    @property
    def count(self) -> int:
        return self.ok + self.failed

    @property
    def error_rate(self) -> float:
        return self.failed / self.count if self.count else 0.0

    @property
    def mean_duration(self) -> float:
        return self.total_seconds / self.count if self.count else 0.0


class Metrics:
    """Collects one observation per finished job run (thread-safe).

    With prometheus_client installed (``asyncgen[metrics]``) the same figures are kept in
    its families on ``registry`` too, for :meth:`to_prometheus` and the worker's
    ``/metrics`` endpoint.

    Args:
        alerts: Alerts to evaluate after every observation.
        registry: The prometheus_client CollectorRegistry to register on (default: a
            new one per Metrics).
    """

    def __init__(self, alerts: Sequence[Alert] = (), *, registry: Any = None) -> None:
        self.alerts = list(alerts)
        self._series: dict[Key, _Series] = {}
        self._states: dict[str, float] = {}
        self._lock = threading.Lock()
        self.registry: Any = None
        self._families: Families | None = None
        try:
            from prometheus_client import CollectorRegistry
        except ImportError:
            return
        self.registry = registry if registry is not None else CollectorRegistry()
        self._families = Families(self.registry, DEFAULT_BUCKETS)

    def set_state(self, name: str, value: float) -> None:
        """Set a gauge of the worker's state (``credit_paused``: 1 while paused)."""
        with self._lock:
            self._states[name] = value
        if self._families is not None:
            self._families.state(name, value)

    def set_breaker(self, model: str, is_open: bool) -> None:
        """Show whether ``model``'s circuit breaker is open (``asyncgen_breaker_open``)."""
        if self._families is not None:
            self._families.breaker.labels(model=model).set(1 if is_open else 0)

    def states(self) -> dict[str, float]:
        """The gauges set with :meth:`set_state`."""
        with self._lock:
            return dict(self._states)

    def observe(self, kind: str, model: str | None, seconds: float, *, outcome: str) -> None:
        """Record one run: ``outcome`` is "ok", "failed" (dead) or "retried"."""
        key = (kind, model or "")
        with self._lock:
            series = self._series.setdefault(key, _Series())
            if outcome == "ok":
                series.ok += 1
            elif outcome == "retried":
                series.retried += 1
            else:
                series.failed += 1
            if outcome != "retried":
                series.total_seconds += seconds
                series.buckets[bisect.bisect_left(DEFAULT_BUCKETS, seconds)] += 1
        if self._families is not None:
            self._families.jobs.labels(kind=kind, model=key[1], outcome=outcome).inc()
            if outcome != "retried":
                self._families.duration.labels(kind=kind, model=key[1]).observe(seconds)
        self._judge(key, series)

    def _judge(self, key: Key, series: _Series) -> None:
        for alert in self.alerts:
            event = alert.judge(key, series.count, getattr(series, alert.metric))
            if event is None:
                continue
            _log.warning("alert", **{k: getattr(event, k) for k in event.__slots__})
            result = alert.callback(event)
            if inspect.isawaitable(result):
                _schedule(result)

    def snapshot(self) -> list[dict[str, Any]]:
        """Per (kind, model): counts, error rate, mean duration, histogram buckets."""
        with self._lock:
            return [
                {
                    "kind": kind,
                    "model": model or None,
                    "ok": s.ok,
                    "failed": s.failed,
                    "retried": s.retried,
                    "error_rate": round(s.error_rate, 6),
                    "mean_duration": round(s.mean_duration, 6),
                    "seconds": round(s.total_seconds, 6),
                    "buckets": {
                        _le(b): n for b, n in zip(DEFAULT_BUCKETS, _cumulative(s), strict=True)
                    },
                }
                for (kind, model), s in sorted(self._series.items())
            ]

    def to_json(self) -> str:
        """The snapshot as JSON."""
        return json.dumps({"jobs": self.snapshot(), "states": self.states()})

    def to_prometheus(self) -> str:
        """The metrics in the Prometheus text format (prometheus_client's exposition).

        Raises:
            ImportError: prometheus_client is not installed (``asyncgen[metrics]``).
        """
        require_prometheus()
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()


def _cumulative(series: _Series) -> list[int]:
    total, out = 0, []
    for count in series.buckets:
        total += count
        out.append(total)
    return out


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


_running_alerts: set[asyncio.Task[Any]] = set()


def _schedule(awaitable: Any) -> None:
    try:
        task = asyncio.get_running_loop().create_task(awaitable)
    except RuntimeError:  # no loop in this thread: run it to completion here
        asyncio.run(awaitable)
        return
    _running_alerts.add(task)  # keep a reference until it is done
    task.add_done_callback(_running_alerts.discard)
