"""A live dashboard for a queue: ``asyncgen dashboard QUEUE_URL``.

Pages (server-rendered, readable with JavaScript off; with it, counts and the throughput
chart update live): the overview (jobs by state and kind, running jobs by worker,
throughput), the jobs list (state, kind, model, id; paged), a job (payload with secrets
masked, attempts, error, result), and the dead letters (grouped by error type; requeue
or cancel, one job or a selection).

Safe by default: it binds 127.0.0.1, every value is HTML-escaped, no secret is rendered,
and it is read-only unless started with a token; actions then need a session opened with
that token (a cookie, SameSite=Strict) and a per-session form token (CSRF).

Needs ``pip install 'asyncgen[dashboard]'`` (Starlette and Jinja2).
"""

from ._app import create_app, serve
from ._run_board import RunBoard, create_run_app

__all__ = ["RunBoard", "create_app", "create_run_app", "serve"]
