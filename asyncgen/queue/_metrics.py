"""Job metrics: counters and latency histograms per task kind and model, with alerts.

Exported as JSON or in the Prometheus text exposition format (version 0.0.4).
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

__all__ = ["DEFAULT_BUCKETS", "Alert", "AlertEvent", "Metrics"]

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0, math.inf)  # fmt: skip

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

    Args:
        alerts: Alerts to evaluate after every observation.
    """

    def __init__(self, alerts: Sequence[Alert] = ()) -> None:
        self.alerts = list(alerts)
        self._series: dict[Key, _Series] = {}
        self._states: dict[str, float] = {}
        self._lock = threading.Lock()

    def set_state(self, name: str, value: float) -> None:
        """Set a gauge of the worker's state (``credit_paused``: 1 while paused)."""
        with self._lock:
            self._states[name] = value

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
        """The metrics in Prometheus text format."""
        lines = [
            "# HELP asyncgen_jobs_total Job runs by outcome.",
            "# TYPE asyncgen_jobs_total counter",
        ]
        with self._lock:
            items = sorted(self._series.items())
            for (kind, model), s in items:
                for outcome, value in (("ok", s.ok), ("failed", s.failed), ("retried", s.retried)):
                    labels = _labels(kind=kind, model=model, outcome=outcome)
                    lines.append(f"asyncgen_jobs_total{{{labels}}} {value}")
            lines += [
                "# HELP asyncgen_job_duration_seconds Duration of finished job runs.",
                "# TYPE asyncgen_job_duration_seconds histogram",
            ]
            for (kind, model), s in items:
                for bound, count in zip(DEFAULT_BUCKETS, _cumulative(s), strict=True):
                    labels = _labels(kind=kind, model=model, le=_le(bound))
                    lines.append(f"asyncgen_job_duration_seconds_bucket{{{labels}}} {count}")
                base = _labels(kind=kind, model=model)
                lines.append(f"asyncgen_job_duration_seconds_sum{{{base}}} {s.total_seconds:.6f}")
                lines.append(f"asyncgen_job_duration_seconds_count{{{base}}} {s.count}")
            for state, level in sorted(self._states.items()):
                lines += [f"# TYPE asyncgen_{state} gauge", f"asyncgen_{state} {level:g}"]
        return "\n".join(lines) + "\n"


def _cumulative(series: _Series) -> list[int]:
    total, out = 0, []
    for count in series.buckets:
        total += count
        out.append(total)
    return out


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


def _labels(**values: str) -> str:
    escaped = {k: v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               for k, v in values.items()}  # fmt: skip
    return ",".join(f'{k}="{v}"' for k, v in escaped.items())


_running_alerts: set[asyncio.Task[Any]] = set()


def _schedule(awaitable: Any) -> None:
    try:
        task = asyncio.get_running_loop().create_task(awaitable)
    except RuntimeError:  # no loop in this thread: run it to completion here
        asyncio.run(awaitable)
        return
    _running_alerts.add(task)  # keep a reference until it is done
    task.add_done_callback(_running_alerts.discard)
