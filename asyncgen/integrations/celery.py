"""asyncgen inside Celery tasks: one event loop and one ChatClient per worker process.

Celery runs plain functions; asyncgen's work is async. :func:`run` runs a coroutine
function on asyncgen's persistent background loop (one per process, started again in
each prefork child), so the connection pools built there are reused by every task the
process runs instead of being rebuilt per task by ``asyncio.run``. :func:`shared_client`
gives that process its one ``ChatClient``. :func:`register_generation_task` adds a
ready-made task that runs one ``GenerationJob`` and returns its record, retried by Celery
on transient errors (with asyncgen's backoff and the server's Retry-After) and never on
a 402 or another permanent error::

    from celery import Celery
    from asyncgen.integrations.celery import register_generation_task, run, shared_client

    app = Celery("llm", broker="redis://...", backend="redis://...")
    generate_job = register_generation_task(app)

    @app.task
    def compare(prompt: str, models: list[str]) -> list[dict]:
        results = run(asyncgen.fan_out, prompt, models, client=shared_client())
        return [r.to_record() for r in results]

Rate limits shared by every Celery worker on every machine: give the client a
``SharedRateLimiter`` on the broker's Redis (``shared_client(rate_limit=...)``).
Needs ``pip install 'asyncgen[celery]'``. See docs/celery.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ..core._bridge import run_blocking
from ..core._errors import TransientError
from ..core._retry import RetryPolicy
from ..llm import ChatClient, GenerationJob, generate

if TYPE_CHECKING:
    from celery import Celery, Task

__all__ = ["register_generation_task", "run", "shared_client"]

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_TASK_NAME = "asyncgen.generate"
_lock = threading.Lock()
_clients: dict[tuple[int, str, tuple[tuple[str, Any], ...]], ChatClient] = {}


def run(fn: Callable[P, Coroutine[Any, Any, T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``await fn(*args, **kwargs)`` on asyncgen's loop for this process and return
    its result (or raise its error). Safe in prefork children, threads and gevent-free
    solo pools alike."""
    return run_blocking(fn, *args, **kwargs)


def shared_client(
    base_url: str | None = None, api_key: str | None = None, **options: Any
) -> ChatClient:
    """This worker process's ChatClient for ``base_url`` (made on first use, after the
    fork; reused by every task the process runs).

    Args:
        base_url: The OpenAI-compatible root (default: ``ASYNCGEN_BASE_URL``, else
            ``OPENROUTER_BASE_URL``, else OpenRouter).
        api_key: The key (default: ``ASYNCGEN_API_KEY``, else ``OPENROUTER_API_KEY``).
        **options: As for ChatClient (``max_connections``, ``rate_limit`` ...); the same
            options give the same client.
    """
    url = (
        base_url
        or os.environ.get("ASYNCGEN_BASE_URL")
        or os.environ.get("OPENROUTER_BASE_URL")
        or "https://openrouter.ai/api/v1"
    )
    key = api_key or os.environ.get("ASYNCGEN_API_KEY") or os.environ.get("OPENROUTER_API_KEY")
    ident = (os.getpid(), url, tuple(sorted((k, id(v)) for k, v in options.items())))
    with _lock:
        client = _clients.get(ident)
        if client is None:
            client = _clients[ident] = ChatClient(url, key, **options)
        return client


def register_generation_task(
    app: Celery,
    *,
    name: str = DEFAULT_TASK_NAME,
    client: Callable[[], ChatClient] = shared_client,
    retry: RetryPolicy | None = None,
    max_retries: int = 3,
) -> Task[Any, Any]:
    """Register a Celery task that runs one GenerationJob and returns its record.

    Call it with the job's fields: ``task.delay(GenerationJob(...).model_dump(mode="json"))``.
    Each Celery attempt sends one request; a transient failure (429, 5xx, timeout,
    dropped connection) is retried by Celery after asyncgen's backoff or the server's
    Retry-After, up to ``max_retries`` times; a permanent one (402: add credits, 401,
    400 ...) fails the task at once. The task acknowledges late, so a worker killed
    mid-job leaves it to another (set the broker's visibility timeout to suit).

    Args:
        app: Your Celery app.
        name: The task's name.
        client: Returns the ChatClient to use (default: :func:`shared_client`).
        retry: The backoff between Celery attempts (default: RetryPolicy()).
        max_retries: Celery retries after the first attempt.
    """
    policy = retry or RetryPolicy()

    @app.task(
        bind=True, name=name, acks_late=True, reject_on_worker_lost=True, max_retries=max_retries
    )
    def generate_job(self: Task[Any, Any], job: dict[str, Any]) -> dict[str, Any]:
        parsed = GenerationJob.model_validate(job)
        (result,) = run(generate, [parsed], client=client(), retry=RetryPolicy.never())
        error = result.error
        if error is None:
            return result.to_record()
        if isinstance(error, TransientError) and self.request.retries < max_retries:
            wait = error.retry_after or policy.backoff(self.request.retries + 1)
            raise self.retry(exc=error, countdown=wait)
        raise error

    return generate_job
