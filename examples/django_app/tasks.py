"""Django tasks (``@task``), run by ``asyncgen worker --django examples.django_app.settings``.

They are enqueued from views.py with ``.enqueue()``, stored on the asyncgen queue that
settings.TASKS names, and their results read back with ``.get_result(id)``.
"""

from __future__ import annotations

from typing import Any

try:
    from django.tasks import task  # Django 6
except ImportError:  # Django 4.2-5.x: the django-tasks package
    from django_tasks import task  # type: ignore[no-redef]

import asyncgen

from .apps import services


@task()
def count_words(text: str) -> int:
    """A sync task: runs in a worker thread (Django's ORM is safe there)."""
    return len(text.split())


@task(queue_name="llm", priority=10)
async def compare(prompt: str, models: list[str]) -> list[dict[str, Any]]:
    """An async task: the prompt to each model at once, through the worker process's
    ChatClient (made once in apps.py, like the web process's)."""
    results = await asyncgen.fan_out(prompt, models, client=services().client)
    return [result.to_record() for result in results]
