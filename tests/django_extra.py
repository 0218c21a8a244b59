"""A Django task that takes its context, for tests/test_django.py (the worker imports
it by its path, as it does the example's tasks)."""

from __future__ import annotations

from typing import Any

try:
    from django.tasks import TaskContext, task
except ImportError:
    from django_tasks import TaskContext, task  # type: ignore[no-redef,assignment]


@task(takes_context=True)
def where_am_i(context: TaskContext[Any, Any], label: str) -> dict[str, Any]:
    """Returns what its context says: the attempt, its own result id and worker."""
    return {
        "label": label,
        "attempt": context.attempt,
        "id": context.task_result.id,
        "status": str(context.task_result.status),
        "workers": len(context.task_result.worker_ids),
    }
