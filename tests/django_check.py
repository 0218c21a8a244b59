"""Drives the Django example's task views and QueueBackend from a process of its own
(Django's settings are one per process), while an ``asyncgen worker --django`` process
runs the tasks. Prints one JSON report; tests/test_django.py asserts on it.

Run: python -m tests.django_check  (with ASYNCGEN_QUEUE_URL, DJANGO_DB, ASYNCGEN_BASE_URL)
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")

import django

django.setup()

from django.db import transaction  # noqa: E402
from django.test import Client  # noqa: E402

from asyncgen.integrations.django import QueueBackend  # noqa: E402
from examples.django_app.tasks import count_words  # noqa: E402
from tests.django_extra import where_am_i  # noqa: E402


def finished(http: Client, result_id: str, within: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        reply = http.get(f"/tasks/{result_id}").json()
        if reply.get("status") in ("SUCCESSFUL", "FAILED") or time.monotonic() > deadline:
            return dict(reply)
        time.sleep(0.05)


class Rollback(Exception):
    pass


def main() -> None:
    report: dict[str, Any] = {"django": django.get_version()}
    http = Client()
    posted = http.post("/tasks/count", {"text": "one two three"}, content_type="application/json")
    report["count_posted"] = posted.status_code
    report["count"] = finished(http, posted.json()["id"])

    bad = http.post("/tasks/count", {"text": 42}, content_type="application/json")
    report["failing"] = finished(http, bad.json()["id"])

    compared = http.post(
        "/tasks/compare", {"prompt": "hi", "models": ["a", "b"]}, content_type="application/json"
    )
    report["compare"] = finished(http, compared.json()["id"])
    report["missing"] = http.get("/tasks/no-such-task").status_code

    backend = count_words.get_backend()
    assert isinstance(backend, QueueBackend)
    try:
        with transaction.atomic():
            rolled = count_words.enqueue("never stored")
            raise Rollback
    except Rollback:
        pass
    try:
        backend.get_result(rolled.id)
        report["rolled_back"] = "found"
    except Exception as exc:
        report["rolled_back"] = type(exc).__name__
    with transaction.atomic():
        committed = count_words.enqueue("stored at commit")
        try:
            backend.get_result(committed.id)
            report["inside_transaction"] = "found"
        except Exception as exc:
            report["inside_transaction"] = type(exc).__name__
    report["committed"] = finished(http, committed.id)

    later = count_words.using(
        run_after=datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=3),
        priority=-5,
    ).enqueue("later on")
    report["deferred_status"] = str(backend.get_result(later.id).status)
    report["deferred"] = finished(http, later.id)
    record = backend.queue.blocking.status(later.id)
    report["deferred_waited"] = record.started_at is not None and record.started_at >= record.run_at
    report["deferred_priority"] = record.priority

    doomed = count_words.using(
        run_after=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    ).enqueue("never run")
    backend.queue.blocking.cancel(doomed.id)
    cancelled = backend.get_result(doomed.id)
    report["cancelled"] = {
        "status": str(cancelled.status),
        "types": [e.exception_class.__name__ for e in cancelled.errors],
    }
    failed = backend.get_result(report["failing"]["id"])
    report["failing_class"] = failed.errors[0].exception_class.__name__

    context = where_am_i.enqueue("ctx")
    report["context"] = finished(http, context.id)

    async def from_async() -> dict[str, Any]:
        result = await count_words.aenqueue("async enqueue works")
        for _ in range(1200):
            fetched = await count_words.aget_result(result.id)
            if fetched.is_finished:
                return {"status": str(fetched.status), "value": fetched.return_value}
            await asyncio.sleep(0.05)
        return {"status": "timeout"}

    report["async"] = asyncio.run(from_async())
    try:
        count_words.enqueue(object())  # type: ignore[arg-type]
    except TypeError as exc:
        report["not_json"] = str(exc)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
