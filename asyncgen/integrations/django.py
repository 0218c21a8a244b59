"""asyncgen as the backend of Django's task framework: ``django.tasks`` (Django 6), or
the ``django-tasks`` package that it came from (Django 4.2-5.x).

Django ships the task API (``@task``, ``.enqueue()``, results, priorities, ``run_after``)
but no backend that stores tasks and runs them elsewhere. This one puts them on an
asyncgen queue (SQLite on one machine, Redis for many), and ``asyncgen worker --django
SETTINGS`` runs them::

    TASKS = {
        "default": {
            "BACKEND": "asyncgen.integrations.django.QueueBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"queue": "redis://localhost:6379/0", "enqueue_on_commit": True},
        }
    }

- A task is a job of kind ``django:<queue name>`` (so ``--kinds django:emails`` serves one
  Django queue); its priority (-100..100) is the job's, ``run_after`` its ``run_at``.
- ``get_result`` reads the job: READY (pending), RUNNING, SUCCESSFUL (its return value)
  or FAILED (its errors: the exception's class path and traceback, per failed attempt).
- ``enqueue_on_commit``: inside ``transaction.atomic()`` the job is stored when the
  transaction commits, and never if it rolls back; the result (READY) comes back at once.
- Options: ``queue`` (the URL; required), ``max_attempts`` (1: Django's tasks are not
  retried unless you say so), ``enqueue_on_commit`` (False), ``database`` (the
  connection whose transactions count, "default").

Needs ``pip install 'asyncgen[django]'`` (Django; and django-tasks before Django 6).
See docs/django.md.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime
import json
import threading
import traceback
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core._bridge import run_blocking
from ..queue import JobQueue, JobRecord, JobState, TaskCall, current_job_id, open_queue
from ..queue import task as asyncgen_task

if TYPE_CHECKING:
    from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import TaskResultDoesNotExist
else:  # Django 6's own, else the package it came from
    try:
        from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus, task_backends
        from django.tasks.backends.base import BaseTaskBackend
        from django.tasks.base import TaskError
        from django.tasks.exceptions import TaskResultDoesNotExist
    except ImportError:
        try:
            from django_tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
            from django_tasks.backends.base import BaseTaskBackend
            from django_tasks.base import Task, TaskError
            from django_tasks.exceptions import TaskResultDoesNotExist
        except ImportError:
            raise ImportError(
                "asyncgen's Django task backend needs Django 6 (django.tasks), or Django "
                "4.2+ with the django-tasks package: pip install 'asyncgen[django]'"
            ) from None

__all__ = [
    "KIND_PREFIX",
    "QueueBackend",
    "TaskFailed",
    "TaskResultDoesNotExist",  # Django's own, from django.tasks or django_tasks
    "backend_named",
    "run_task",
    "serve",
]

KIND_PREFIX = "django:"  # a Django task's job kind: "django:<queue name>"

_STATUS = {
    JobState.PENDING: "READY",
    JobState.RUNNING: "RUNNING",
    JobState.COMPLETED: "SUCCESSFUL",
    JobState.DEAD: "FAILED",
    JobState.CANCELLED: "FAILED",
}

_queues_lock = threading.Lock()
_queues: dict[str, JobQueue] = {}


def _queue(url: str) -> JobQueue:
    """One queue per URL per process (Django makes a backend per thread)."""
    with _queues_lock:
        if url not in _queues:
            _queues[url] = open_queue(url)
        return _queues[url]


class TaskFailed(Exception):
    """A Django task raised: stored with the exception's class path as its type and the
    formatted exception (with its traceback) as its message, which is what Django's
    ``TaskResult.errors`` gives back."""

    def __init__(self, error: BaseException) -> None:
        cls = type(error)
        self.stored_type = f"{cls.__module__}.{cls.__qualname__}"
        # From the task's own frame down: the frame that caught it (ours) is left out.
        frames = error.__traceback__.tb_next if error.__traceback__ is not None else None
        text = "".join(traceback.format_exception(cls, error, frames))
        super().__init__(text.rstrip())


class QueueBackend(BaseTaskBackend):
    """Django tasks on an asyncgen queue; ``asyncgen worker --django SETTINGS`` runs them.

    Raises:
        django.core.exceptions.ImproperlyConfigured: No ``queue`` URL in OPTIONS, or a
            bad ``max_attempts``.
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        from django.core.exceptions import ImproperlyConfigured

        super().__init__(alias, params)
        url = self.options.get("queue")
        if not isinstance(url, str) or not url:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']['queue'] must be the queue's URL "
                "(sqlite:///path/jobs.db, or redis://host:6379/0)"
            )
        attempts = self.options.get("max_attempts", 1)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']['max_attempts'] must be a whole number >= 1, "
                f"got {attempts!r}"
            )
        self.url = url
        self.max_attempts = attempts
        self.enqueue_on_commit = bool(self.options.get("enqueue_on_commit", False))
        self.database = str(self.options.get("database", "default"))

    @property
    def queue(self) -> JobQueue:
        """The asyncgen queue the tasks go to (opened once per process)."""
        return _queue(self.url)

    def enqueue(
        self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> TaskResult[Any, Any]:
        """Store the task as a job (at commit, with ``enqueue_on_commit`` inside a
        transaction) and return its result, READY.

        Raises:
            django.tasks.exceptions.InvalidTask: What Django's checks refuse (a task not
                at module level, a queue name not in QUEUES, a naive ``run_after``...).
            TypeError: Arguments that are not JSON.
        """
        from django.db import transaction
        from django.utils import timezone

        self.validate_task(task)
        _check_json(args, kwargs, task)
        arguments, keywords = list(args), dict(kwargs)
        payload = {
            "task": task.module_path,
            "args": arguments,
            "kwargs": keywords,
            "backend": self.alias,
            "queue": task.queue_name,
            "takes_context": task.takes_context,
        }
        job_id = uuid.uuid4().hex  # the result's id, handed out before the job is stored
        run_at = task.run_after.timestamp() if task.run_after is not None else None
        call = TaskCall(f"{KIND_PREFIX}{task.queue_name}", payload)
        queue = self.queue

        def submit() -> None:
            run_blocking(
                queue.submit,
                call,
                priority=task.priority,
                run_at=run_at,
                max_attempts=self.max_attempts,
                job_id=job_id,
            )

        if self.enqueue_on_commit and transaction.get_connection(self.database).in_atomic_block:
            transaction.on_commit(submit, using=self.database)
        else:
            submit()
        return TaskResult(
            task=task,
            id=job_id,
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=arguments,
            kwargs=keywords,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )

    def get_result(self, result_id: str) -> TaskResult[Any, Any]:
        """The task's result as the queue has it now.

        Raises:
            TaskResultDoesNotExist: No such job (never stored, rolled back, purged), or
                one that is not a Django task of this backend.
        """
        record = run_blocking(self.queue.store.get, result_id)
        if (
            record is None
            or not record.kind.startswith(KIND_PREFIX)
            or record.payload.get("backend") != self.alias
        ):
            raise TaskResultDoesNotExist(result_id)
        from django.utils.module_loading import import_string

        path = str(record.payload["task"])
        try:
            task = import_string(path)
        except ImportError as exc:
            raise ImportError(
                f"task result {result_id}: its task {path} cannot be imported in this "
                f"process ({exc}); read it where the task's module is importable"
            ) from exc
        return _result(task, record, self.alias)

    async def aget_result(self, result_id: str) -> TaskResult[Any, Any]:
        """:meth:`get_result`, without holding the event loop."""
        return await asyncio.to_thread(self.get_result, result_id)


def _check_json(args: Any, kwargs: Any, task: Task[Any, Any]) -> None:
    """Refuse arguments the queue cannot store (checked once here: the store writes them)."""
    try:
        json.dumps([args, kwargs])
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"task {task.module_path}: its arguments must be JSON (str, int, float, bool, "
            f"None, lists and dicts of them): {exc}"
        ) from None


def _when(epoch: float | None) -> datetime.datetime | None:
    if epoch is None:
        return None
    from django.conf import settings
    from django.utils import timezone

    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment if settings.USE_TZ else timezone.make_naive(moment)


def _result(task: Task[Any, Any], record: JobRecord, alias: str) -> TaskResult[Any, Any]:
    """A Django TaskResult of a job's record."""
    attempts = record.history
    workers = [str(a.get("worker", "")) for a in attempts]
    if record.state is JobState.RUNNING and record.worker:
        workers.append(record.worker)
    errors = [
        TaskError(
            exception_class_path=_class_path(str(a["error_type"])),
            traceback=str(a.get("error", "")),
        )
        for a in attempts
        if a.get("error_type") and a.get("outcome") in ("retried", "dead", "lost")
    ]
    if errors and record.state is JobState.DEAD and record.error:  # the last one, whole
        errors[-1] = TaskError(
            exception_class_path=errors[-1].exception_class_path, traceback=record.error
        )
    if record.state is JobState.DEAD and not errors:  # e.g. its dependency went dead
        errors.append(
            TaskError(
                exception_class_path=_class_path(record.error_type), traceback=record.error or ""
            )
        )
    if record.state is JobState.CANCELLED:  # FAILED in Django's words: say why
        errors.append(
            TaskError(
                exception_class_path="asyncio.CancelledError",
                traceback=f"job {record.id} was cancelled (asyncgen jobs cancel, or the queue)",
            )
        )
    first_start = attempts[0].get("started") if attempts else record.started_at
    result: TaskResult[Any, Any] = TaskResult(
        task=task,
        id=record.id,
        status=TaskResultStatus(_STATUS[record.state]),
        enqueued_at=_when(record.created_at),
        started_at=_when(first_start),
        finished_at=_when(record.finished_at),
        last_attempted_at=_when(record.started_at),
        args=list(record.payload.get("args", [])),
        kwargs=dict(record.payload.get("kwargs", {})),
        backend=alias,
        errors=errors,
        worker_ids=workers,
    )
    if record.state is JobState.COMPLETED:
        object.__setattr__(result, "_return_value", record.result)
    return result


def _class_path(error_type: str | None) -> str:
    """A stored error type as a class path Django's ``TaskError.exception_class`` can
    import: a path as stored by the runner; a built-in or asyncgen error by its name
    (a timeout, a permanent error); else (a worker lost mid-run) ``builtins.Exception``."""
    if error_type and "." in error_type:
        return error_type
    if error_type and isinstance(getattr(builtins, error_type, None), type):
        return f"builtins.{error_type}"
    import asyncgen

    if error_type and isinstance(getattr(asyncgen, error_type, None), type):
        return f"asyncgen.{error_type}"
    return "builtins.Exception"


async def run_task(
    task: str,
    args: list[Any],
    kwargs: dict[str, Any],
    backend: str,
    queue: str,
    takes_context: bool = False,
) -> Any:
    """Run one Django task in an asyncgen worker (registered by :func:`serve`)."""
    from django.db import close_old_connections
    from django.utils.module_loading import import_string

    found = import_string(task)
    call_args: list[Any] = list(args)
    if takes_context:
        job_id = current_job_id()
        if job_id is None:
            raise RuntimeError("a Django task that takes its context runs in a worker only")
        record = await _backend(backend).queue.status(job_id)
        call_args.insert(0, TaskContext(task_result=_result(found, record, backend)))
    if asyncio.iscoroutinefunction(found.func):
        try:
            return await found.func(*call_args, **kwargs)
        except Exception as exc:
            raise TaskFailed(exc) from exc

    def call() -> Any:
        close_old_connections()  # a thread's connection may have gone stale
        try:
            return found.func(*call_args, **kwargs)
        except Exception as exc:
            raise TaskFailed(exc) from exc
        finally:
            close_old_connections()

    return await asyncio.to_thread(call)


def backend_named(alias: str) -> object:
    """The task backend Django has under ``alias`` (whatever its class).

    Raises:
        django.tasks.exceptions.InvalidTaskBackend: No such alias in TASKS.
    """
    return task_backends[alias]


def _backend(alias: str) -> QueueBackend:
    found = backend_named(alias)
    if not isinstance(found, QueueBackend):
        raise TypeError(f"TASKS[{alias!r}] is {type(found).__name__}, not asyncgen's QueueBackend")
    return found


def serve(queue: JobQueue, alias: str = "default") -> list[str]:
    """Register on ``queue`` a task that runs the Django tasks of backend ``alias``, one
    per Django queue name (kind ``django:<name>``); returns the kinds.

    Django must be set up (``django.setup()``; ``asyncgen worker --django`` does it).

    Raises:
        TypeError: The backend ``alias`` is not a QueueBackend.
    """
    backend = _backend(alias)
    kinds = []
    for name in sorted(backend.queues):
        runner: Callable[..., Any] = run_task
        queue.register(asyncgen_task(name=f"{KIND_PREFIX}{name}")(runner))
        kinds.append(f"{KIND_PREFIX}{name}")
    return kinds
