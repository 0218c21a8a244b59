"""A Celery app whose tasks fan out to several models with asyncgen.

    export CELERY_BROKER_URL=redis://127.0.0.1:6379/0 CELERY_RESULT_BACKEND=redis://127.0.0.1:6379/1
    export ASYNCGEN_BASE_URL=http://127.0.0.1:8000/v1          # or OPENROUTER_API_KEY=...
    celery -A examples.celery_app.app worker --pool prefork --concurrency 2
    celery -A examples.celery_app.app beat                      # the schedule below

Each prefork child keeps one event loop and one ChatClient (asyncgen.integrations.celery),
so a task reuses the connections of the tasks before it.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.schedules import crontab

import asyncgen
from asyncgen.integrations.celery import register_generation_task, run, shared_client

# Requests at once within one task's fan-out (per worker process: a prefork child runs
# one task at a time, so a process never has more than this many in flight).
FAN_OUT_CONCURRENCY = int(os.environ.get("ASYNCGEN_FANOUT_CONCURRENCY", "3"))


def make_app(broker: str, backend: str, *, visibility_timeout: float = 3600) -> Celery:
    """The Celery app: JSON only, late acknowledgement (a killed worker's task runs
    again elsewhere after ``visibility_timeout`` seconds), one task prefetched."""
    app = Celery("asyncgen_example", broker=broker, backend=backend)
    # kombu looks for expired unacknowledged messages every interval x throttle seconds
    # (100 s by default); with a short visibility timeout, look every second.
    sweep = 1 if visibility_timeout < 60 else 10
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": sweep,
            "unacked_restore_throttle": sweep,
        },
        result_expires=7 * 86_400,
        beat_schedule={
            "morning-comparison": {
                "task": "compare",
                "schedule": crontab(hour=6, minute=0),
                "args": (
                    "Summarise today's top story in one line.",
                    ["openai/gpt-4o-mini", "anthropic/claude-3.5-haiku"],
                ),
            },
        },
    )
    return app


app = make_app(
    os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
    os.environ.get("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/1"),
    visibility_timeout=float(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600")),
)
generate_job = register_generation_task(app)  # "asyncgen.generate": one GenerationJob


@app.task(name="compare")
def compare(prompt: str, models: list[str]) -> list[dict[str, Any]]:
    """One prompt to several models at once; every answer (or error) in order."""
    results = run(
        asyncgen.fan_out, prompt, models, client=shared_client(), concurrency=FAN_OUT_CONCURRENCY
    )
    return [result.to_record() for result in results]
