"""The run view: a running ``asyncgen run`` (or any generate call) on a page.

A :class:`RunBoard` receives generation events (pass ``board.handle`` as ``on_event``)
and :func:`create_run_app` serves it: done of total, ok and failed, rate and ETA,
tokens and cost, a table per model, and the latest failures (secrets masked).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core._logging import mask_secrets
from ..llm import Event, JobFailed, JobRetrying, JobSucceeded
from ..llm.engine._events import ResultCounts

__all__ = ["RunBoard", "create_run_app"]

HERE = Path(__file__).parent
LATEST_FAILURES = 20


def _shown(counts: ResultCounts) -> dict[str, Any]:
    """A run's (or one model's) counts as the page shows them."""
    ok = counts.ok
    return {
        "done": counts.done,
        "ok": ok,
        "failed": counts.failed,
        "retries": counts.retries,
        "tokens": counts.tokens,
        "cost": round(counts.cost, 6),
        "mean_latency": round(counts.latency / ok, 3) if ok else None,
    }


@dataclass
class RunBoard:
    """What a run has done so far, fed by its events.

    Args:
        total: Jobs in the run.
        title: Shown on the page (e.g. the input file's name).
    """

    total: int
    title: str = "run"
    started: float = field(default_factory=time.monotonic)
    finished: bool = False
    whole: ResultCounts = field(default_factory=ResultCounts)
    models: dict[str, ResultCounts] = field(
        default_factory=lambda: collections.defaultdict(ResultCounts)
    )
    failures: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=LATEST_FAILURES)
    )

    def handle(self, event: Event) -> None:
        """Count one generation event (use as, or call from, ``on_event``)."""
        if not isinstance(event, JobRetrying | JobSucceeded | JobFailed):
            return
        self.whole.count(event)
        self.models[event.job.model].count(event)
        if isinstance(event, JobRetrying):
            return
        result = event.result
        if not result.ok:
            error = result.error
            self.failures.appendleft(
                {
                    "at": time.time(),
                    "index": result.index,
                    "model": result.job.model,
                    "error_type": type(error).__name__ if error else "",
                    "error": mask_secrets(str(error)) if error else "",
                    "attempts": result.attempts,
                }
            )

    def snapshot(self) -> dict[str, Any]:
        """The board as JSON values (what the page shows and /api/run returns)."""
        elapsed = max(1e-9, time.monotonic() - self.started)
        done = self.whole.done
        rate = done / elapsed
        left = self.total - done
        eta = left / rate if rate > 0 and left > 0 else (0.0 if left <= 0 else None)
        return {
            **_shown(self.whole),
            "title": self.title,
            "total": self.total,
            "elapsed": round(elapsed, 1),
            "rate": round(rate, 2),
            "eta": None if eta is None else round(eta, 1),
            "finished": self.finished,
            "percent": round(100 * done / self.total, 1) if self.total else 100.0,
            "models": {name: _shown(m) for name, m in sorted(self.models.items())},
            "failures": list(self.failures),
        }


def create_run_app(board: RunBoard) -> Any:
    """The run page as an ASGI app (read-only: it has no actions)."""
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
        response = templates.TemplateResponse(request, "run.html", {"b": board.snapshot()})
        response.headers["content-security-policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'"
        )
        return response

    async def api(request: Request) -> Response:
        return JSONResponse(board.snapshot())

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/run", api),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ]
    )
