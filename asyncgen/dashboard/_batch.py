"""The batch view: a running ``asyncgen run`` (or any generate call) on a page.

A :class:`BatchBoard` receives generation events (pass ``board.handle`` as ``on_event``)
and :func:`create_batch_app` serves it: done of total, ok and failed, rate and ETA,
tokens and cost, a table per model, and the latest failures (secrets masked).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._logging import mask_secrets
from ..llm import Event, GenerationResult, JobFailed, JobRetrying, JobSucceeded

__all__ = ["BatchBoard", "create_batch_app"]

HERE = Path(__file__).parent
LATEST_FAILURES = 20


@dataclass
class _Counts:
    """Finished jobs of a batch, or of one model in it."""

    done: int = 0
    ok: int = 0
    failed: int = 0
    retries: int = 0
    tokens: int = 0
    cost: float = 0.0
    latency: float = 0.0  # summed over ok jobs

    def count(self, result: GenerationResult) -> None:
        self.done += 1
        if result.completion is not None:
            self.tokens += result.completion.usage.total_tokens
            self.cost += result.completion.usage.cost or 0.0
        if result.ok:
            self.ok += 1
            self.latency += result.latency
        else:
            self.failed += 1

    def shown(self) -> dict[str, Any]:
        return {"done": self.done, "ok": self.ok, "failed": self.failed,
                "retries": self.retries, "tokens": self.tokens, "cost": round(self.cost, 6),
                "mean_latency": round(self.latency / self.ok, 3) if self.ok else None}  # fmt: skip


@dataclass
class BatchBoard:
    """What a batch has done so far, fed by its events.

    Args:
        total: Jobs in the batch.
        title: Shown on the page (e.g. the input file's name).
    """

    total: int
    title: str = "batch"
    started: float = field(default_factory=time.monotonic)
    finished: bool = False
    whole: _Counts = field(default_factory=_Counts)
    models: dict[str, _Counts] = field(default_factory=lambda: collections.defaultdict(_Counts))
    failures: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=LATEST_FAILURES)
    )

    def handle(self, event: Event) -> None:
        """Count one generation event (use as, or call from, ``on_event``)."""
        if isinstance(event, JobRetrying):
            self.whole.retries += 1
            self.models[event.job.model].retries += 1
            return
        if not isinstance(event, JobSucceeded | JobFailed):
            return
        result = event.result
        self.whole.count(result)
        self.models[result.job.model].count(result)
        if not result.ok:
            error = result.error
            self.failures.appendleft({
                "at": time.time(), "index": result.index, "model": result.job.model,
                "error_type": type(error).__name__ if error else "",
                "error": mask_secrets(str(error)) if error else "",
                "attempts": result.attempts,
            })  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        """The board as JSON values (what the page shows and /api/batch returns)."""
        elapsed = max(1e-9, time.monotonic() - self.started)
        done = self.whole.done
        rate = done / elapsed
        left = self.total - done
        eta = left / rate if rate > 0 and left > 0 else (0.0 if left <= 0 else None)
        return {
            **self.whole.shown(), "title": self.title, "total": self.total,
            "elapsed": round(elapsed, 1), "rate": round(rate, 2),
            "eta": None if eta is None else round(eta, 1), "finished": self.finished,
            "percent": round(100 * done / self.total, 1) if self.total else 100.0,
            "models": {name: m.shown() for name, m in sorted(self.models.items())},
            "failures": list(self.failures),
        }  # fmt: skip


def create_batch_app(board: BatchBoard) -> Any:
    """The batch page as an ASGI app (read-only: it has no actions)."""
    from ._app import _require

    _require()
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
    from starlette.templating import Jinja2Templates

    templates = Jinja2Templates(directory=str(HERE / "templates"))

    async def page(request: Request) -> Response:
        response = templates.TemplateResponse(request, "batch.html", {"b": board.snapshot()})
        response.headers["content-security-policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'"
        )
        return response

    async def api(request: Request) -> Response:
        return JSONResponse(board.snapshot())

    return Starlette(routes=[
        Route("/", page), Route("/api/batch", api),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ])  # fmt: skip
