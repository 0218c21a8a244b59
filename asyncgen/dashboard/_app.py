"""The dashboard's ASGI app (Starlette, Jinja2 templates with autoescaping)."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog

from ..core._errors import AsyncGenError
from ..core._logging import mask_secrets, redact_secrets
from ..queue import GroupStatus, JobQueue, JobRecord, JobState, WorkerReport, open_queue
from ._auth import SESSION_COOKIE, SESSION_LIFETIME, Auth

__all__ = ["create_app", "serve"]

_log = structlog.get_logger("asyncgen.dashboard")

HERE = Path(__file__).parent
PAGE = 50  # jobs per page
MAX_OFFSET = 5_000  # deepest page offered: later jobs are found by id, state or kind
RUNNING_SHOWN = 200
GROUPS_SHOWN = 10  # newest groups on the overview (each read with its members)
MEMBERS_SHOWN = 200  # members listed on a group's page
DEAD_SCANNED = 1_000  # dead jobs read for the grouping by error type
RETRY_UNREACHABLE = 5  # seconds before a page the queue could not fill loads again
MAX_FORM = 256 * 1024  # bytes of a posted form
STATES = ("pending", "scheduled", "running", "completed", "dead", "cancelled")


def _require() -> None:
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
    except ImportError:
        raise ImportError(
            "the dashboard needs Starlette and Jinja2: pip install 'asyncgen[dashboard]'"
        ) from None


def _masked(value: Any) -> str:
    """A payload or result as indented JSON, secrets masked (by key and in text)."""
    if isinstance(value, dict):
        value = dict(redact_secrets(None, "", dict(value)))
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return str(redact_secrets(None, "", {"text": text})["text"])


def _model(record: JobRecord) -> str:
    model = record.payload.get("model") if isinstance(record.payload, dict) else None
    return str(model) if model else ""


def _ago(epoch: float | None) -> str:
    if epoch is None:
        return ""
    seconds = max(0.0, time.time() - epoch)
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


async def overview_data(queue: JobQueue) -> dict[str, Any]:
    """What the overview shows (and /api/overview returns): counts by state, by state and
    kind, and running jobs by worker. Counts come from the store's statistics (no scan
    of finished jobs)."""
    stats = await queue.statistics()
    depth = await queue.store.depth()
    kinds: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for (state, kind), count in depth.items():
        kinds[kind][state] = count
    running = await queue.store.find(state=JobState.RUNNING, limit=RUNNING_SHOWN)
    by_worker: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for record in running:
        by_worker[record.worker or "?"].append(
            {
                "id": record.id,
                "kind": record.kind,
                "model": _model(record),
                "attempt": record.attempts,
                "lease_left": round((record.lease_until or time.time()) - time.time(), 1),
                "progress": record.progress,
                "progress_message": mask_secrets(record.progress_message or ""),
            }
        )
    reports = await queue.store.worker_reports()
    groups = [_group_row(status) for status in await queue.groups(limit=GROUPS_SHOWN)]
    return {
        "at": time.time(),
        "counts": {state: getattr(stats, state) for state in STATES},
        "failed": stats.failed,
        "retried": stats.retried,
        "workers": stats.workers,
        "kinds": {kind: kinds[kind] for kind in sorted(kinds)},
        "running": {worker: by_worker[worker] for worker in sorted(by_worker)},
        "groups": groups,
        **_from_reports(reports),
    }


def _group_row(status: GroupStatus) -> dict[str, Any]:
    """A group as the overview shows it (and /api/overview returns it)."""
    row = dataclasses.asdict(status)
    row["state"] = status.state.value
    row["progress"] = round(status.progress, 4)
    row["eta"] = None if status.eta is None else round(status.eta, 1)
    return row


# What the overview sums over the workers' clients: reported name -> shown name.
_SUMMED = {
    "requests": "requests",
    "rate_limited": "rate_limited",
    "total_tokens": "tokens",
    "cost": "cost",
}


def _from_reports(reports: list[WorkerReport]) -> dict[str, Any]:
    """The workers' own figures, summed: per (kind, model) runs and run time, the
    generation clients' requests, 429s, tokens and spend; and each worker's state."""
    models: dict[str, dict[str, Any]] = {}
    client: dict[str, Any] = {"requests": 0, "rate_limited": 0, "tokens": 0, "cost": 0.0}
    workers = []
    for report in reports:
        status = report.status
        for row in status.get("jobs", []):
            key = f"{row.get('kind')}/{row.get('model') or '-'}"
            blank = {
                "kind": row.get("kind"),
                "model": row.get("model"),
                "ok": 0,
                "failed": 0,
                "retried": 0,
                "seconds": 0.0,
            }
            into = models.setdefault(key, blank)
            for name in ("ok", "failed", "retried", "seconds"):
                into[name] += row.get(name, 0) or 0
        reported = status.get("client") or {}  # ClientStatistics.to_record()
        for name, shown in _SUMMED.items():
            client[shown] += reported.get(name, 0) or 0
        workers.append(
            {
                "name": report.name,
                "seen": round(time.time() - report.at, 1),
                "state": status.get("state", "running"),
                "started_at": status.get("started_at"),
                "concurrency": status.get("concurrency"),
                "kinds": status.get("kinds", []),
                "running_count": status.get("running_count", 0),
                "running": status.get("running", []),
                "credit_paused": bool((status.get("states") or {}).get("credit_paused")),
                "open_circuits": reported.get("open_circuits", []),
            }
        )
    for row in models.values():
        finished = row["ok"] + row["failed"]
        row["error_rate"] = round(row["failed"] / finished, 4) if finished else None
        row["mean_seconds"] = round(row["seconds"] / finished, 4) if finished else None
        row["seconds"] = round(row["seconds"], 4)
    requests = client["requests"]
    client["share_429"] = round(client["rate_limited"] / requests, 4) if requests else None
    client["cost"] = round(float(client["cost"]), 6)
    return {"models": dict(sorted(models.items())), "client": client, "reports": workers}


async def _form(request: Any) -> dict[str, list[str]]:
    """An urlencoded form body (at most MAX_FORM bytes; a bigger one reads as empty)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return {}
    return urllib.parse.parse_qs(body.decode("utf-8", "replace"))


def create_app(queue: JobQueue | str, *, token: str | None = None) -> Any:
    """The dashboard as an ASGI app (Starlette) for ``queue`` (a JobQueue or its URL).

    Args:
        queue: The queue to show.
        token: Allows actions (requeue, cancel) to whoever signs in with it; None: the
            dashboard is read-only. Default: ``ASYNCGEN_DASHBOARD_TOKEN``, if set.
    """
    _require()
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
    from starlette.templating import Jinja2Templates

    opened = open_queue(queue) if isinstance(queue, str) else queue
    auth = Auth(token if token is not None else os.environ.get("ASYNCGEN_DASHBOARD_TOKEN"))
    templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescapes .html
    templates.env.filters["ago"] = _ago

    def render(request: Request, name: str, **context: Any) -> Response:
        form_token = auth.form_token(request.cookies.get(SESSION_COOKIE))
        signed_in = auth.enabled and form_token is not None
        context |= {
            "queue_url": opened.url,
            "actions": auth.enabled,
            "signed_in": signed_in,
            "form_token": form_token or "",
        }
        response = templates.TemplateResponse(request, name, context)
        response.headers["content-security-policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; form-action 'self'"
        )
        response.headers["x-content-type-options"] = "nosniff"
        return response

    async def overview(request: Request) -> Response:
        return render(request, "overview.html", data=await overview_data(opened), states=STATES)

    async def overview_api(request: Request) -> Response:
        return JSONResponse(await overview_data(opened))

    async def jobs(request: Request) -> Response:
        query = request.query_params
        state_name = query.get("state") or None
        kind = query.get("kind") or None
        model = query.get("model") or None
        wanted = query.get("id", "").strip()
        try:
            page = max(0, int(query.get("page", "0")))
            state = JobState(state_name) if state_name else None
        except ValueError:
            return PlainTextResponse("bad state or page", status_code=400)
        if wanted:
            record = await opened.store.get(wanted)
            shown, more = ([record] if record else []), False
        else:
            offset = min(page * PAGE, MAX_OFFSET)
            window = await opened.store.find(state=state, kind=kind, limit=offset + PAGE + 1)
            if model:
                window = [r for r in window if _model(r) == model]
            shown = window[offset : offset + PAGE]
            more = len(window) > offset + PAGE and offset + PAGE < MAX_OFFSET
        return render(
            request,
            "jobs.html",
            records=shown,
            model_of=_model,
            page=page,
            more=more,
            state=state_name or "",
            kind=kind or "",
            model=model or "",
            wanted=wanted,
            states=[s.value for s in JobState],
        )

    async def job(request: Request) -> Response:
        record = await opened.store.get(request.path_params["job_id"])
        if record is None:
            missing = render(request, "missing.html", job_id=request.path_params["job_id"])
            missing.status_code = 404
            return missing
        group, members = None, []
        if record.members:
            group = await opened.group_status(record.id)
            found = await opened.store.get_many(record.members[:MEMBERS_SHOWN])
            members = list(zip(record.members, found, strict=True))
        return render(
            request,
            "job.html",
            record=record,
            model=_model(record),
            payload=_masked(record.payload),
            result=None if record.result is None else _masked(record.result),
            progress_message=mask_secrets(record.progress_message or ""),
            group=group,
            members=members,
            members_left=max(0, len(record.members) - MEMBERS_SHOWN),
            model_of=_model,
        )

    async def dead(request: Request) -> Response:
        records = await opened.store.find(state=JobState.DEAD, limit=DEAD_SCANNED)
        groups: dict[str, list[JobRecord]] = collections.defaultdict(list)
        for record in records:
            groups[record.error_type or "unknown"].append(record)
        ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
        return render(
            request,
            "dead.html",
            groups=ordered,
            scanned=DEAD_SCANNED,
            total=len(records),
            model_of=_model,
            done=request.query_params.get("done", ""),
        )

    async def act(request: Request) -> Response:
        """POST /actions/requeue or /actions/cancel with ids; needs the session and the
        form token (a cross-site form has neither)."""
        if not auth.enabled:
            return PlainTextResponse(
                "read-only dashboard: start it with --token (or ASYNCGEN_DASHBOARD_TOKEN) "
                "to requeue or cancel",
                status_code=403,
            )
        form = await _form(request)
        field = form.get("form_token", [None])[-1]
        if not auth.form_ok(request.cookies.get(SESSION_COOKIE), field):
            return PlainTextResponse(
                "sign in first (/login): this action needs the token", status_code=403
            )
        ids = [value for value in form.get("ids", []) if value][:DEAD_SCANNED]
        if not ids:
            return RedirectResponse("/dead?done=nothing+selected", status_code=303)
        action = request.path_params["action"]
        if action == "requeue":
            changed = await opened.requeue(ids)
            message = f"requeued {len(changed)} of {len(ids)}"
        elif action == "cancel":
            results = [await opened.cancel(job_id) for job_id in ids]
            message = f"cancelled {sum(results)} of {len(ids)}"
        else:
            return PlainTextResponse("unknown action", status_code=404)
        back = f"/jobs/{ids[0]}" if form.get("back") == ["job"] else "/dead"
        return RedirectResponse(f"{back}?done={message.replace(' ', '+')}", status_code=303)

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return render(request, "login.html", failed=False, wait=0)
        client = request.client.host if request.client else "?"
        wait = auth.wait_before_trying(client)
        if wait > 0:
            response = render(request, "login.html", failed=False, wait=int(wait) + 1)
            response.status_code = 429
            response.headers["retry-after"] = str(int(wait) + 1)
            return response
        given = (await _form(request)).get("token", [""])[-1]
        if not auth.check_token(given):
            auth.failed(client)
            response = render(request, "login.html", failed=True, wait=0)
            response.status_code = 403
            return response
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            auth.start(),
            httponly=True,
            samesite="strict",
            max_age=int(SESSION_LIFETIME),
        )
        return response

    async def logout(request: Request) -> Response:
        auth.end(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    said_at = [-float("inf")]  # when the last unreachable warning was logged

    async def unreachable(request: Request, exc: Exception) -> Response:
        """The store could not be read (Redis down, a locked database): say so and retry,
        never a bare 500 with a traceback (logged at most once a minute)."""
        detail = mask_secrets(str(exc))
        if time.monotonic() - said_at[0] >= 60:
            said_at[0] = time.monotonic()
            _log.warning("dashboard_queue_unreachable", queue=opened.url, error=detail)
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"error": "queue unreachable", "detail": detail},
                status_code=503,
                headers={"retry-after": "5"},
            )
        response = render(request, "unreachable.html", detail=detail, retry=RETRY_UNREACHABLE)
        response.status_code = 503
        response.headers["retry-after"] = str(RETRY_UNREACHABLE)
        return response

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if isinstance(queue, str):  # opened here: closed here
                await opened.aclose()

    routes = [
        Route("/", overview),
        Route("/api/overview", overview_api),
        Route("/jobs", jobs),
        Route("/jobs/{job_id}", job),
        Route("/dead", dead),
        Route("/actions/{action}", act, methods=["POST"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={AsyncGenError: unreachable}
    )


def serve(
    queue_url: str, *, host: str = "127.0.0.1", port: int = 8700, token: str | None = None
) -> None:
    """Serve the dashboard with uvicorn until interrupted (blocks)."""
    import uvicorn

    uvicorn.run(
        create_app(queue_url, token=token),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )
