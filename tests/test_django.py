"""Django's task framework on asyncgen's queue: the example project's task views and
the QueueBackend, driven from a Django process of their own, with a real ``asyncgen
worker --django`` process running the tasks, on SQLite and Redis queues.

The main suite runs it on the Django that the dev extra installs here (Django 5.2 and the
django-tasks package on Python 3.11), and again on Django 6 (its own ``django.tasks``,
Python 3.12+) in the interpreter ``.ci/django6`` makes (or ``ASYNCGEN_DJANGO6_PYTHON``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asyncgen.testing import SimServer

ROOT = Path(__file__).resolve().parent.parent
MADE = ROOT / ".venv-django6" / "bin" / "python"  # by .ci/django6
DJANGO6 = os.environ.get("ASYNCGEN_DJANGO6_PYTHON") or (str(MADE) if MADE.exists() else "")


def run_check(python: str, url: str, tmp_path: Path, sim: SimServer) -> dict[str, Any]:
    """Start a worker (``--django``), run tests/django_check.py, stop the worker."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ASYNCGEN_QUEUE_URL": url,
        "DJANGO_DB": str(tmp_path / "django.sqlite3"),
        "ASYNCGEN_BASE_URL": sim.base_url,
        "ASYNCGEN_API_KEY": "sk-test-not-a-secret",
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [
            python,
            "-m",
            "asyncgen",
            "worker",
            "--django",
            "examples.django_app.settings",
            "--concurrency",
            "4",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        done = subprocess.run(
            [python, "-m", "tests.django_check"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        log.close()
    output = (tmp_path / "worker.log").read_text()
    assert done.returncode == 0, done.stderr[-3000:] + "\nworker:\n" + output[-3000:]
    assert worker.returncode == 0, output[-3000:]
    crashes = [
        line for line in output.splitlines() if "Traceback" in line and "job_failed" not in line
    ]
    assert not crashes, output[-3000:]  # a failing task's traceback is its error, not a crash
    report: dict[str, Any] = json.loads(done.stdout)
    report["worker_log"] = output
    return report


def check(report: dict[str, Any]) -> None:
    """What every Django version must show."""
    assert report["count_posted"] == 202
    assert report["count"]["status"] == "SUCCESSFUL"
    assert report["count"]["return_value"] == 3
    assert report["count"]["task"] == "count_words"
    assert report["count"]["attempts"] == 1

    failing = report["failing"]  # count_words(42): 42 has no split()
    assert failing["status"] == "FAILED"
    assert "return_value" not in failing
    [error] = failing["errors"]
    assert error["type"] == "builtins.AttributeError"
    assert "AttributeError: 'int' object has no attribute 'split'" in error["traceback"]
    assert report["failing_class"] == "AttributeError"  # Django imports the class back
    assert report["cancelled"] == {"status": "FAILED", "types": ["CancelledError"]}
    assert 'tasks.py", line' in error["traceback"]  # the task's own frames
    assert "integrations/django.py" not in error["traceback"]  # and none of the worker's

    compared = report["compare"]  # async, queue "llm", through the worker's ChatClient
    assert compared["status"] == "SUCCESSFUL"
    assert [r["text"] for r in compared["return_value"]] == ["[a] hi", "[b] hi"]
    assert report["missing"] == 404

    assert report["rolled_back"] == "TaskResultDoesNotExist"  # nothing enqueued
    assert report["inside_transaction"] == "TaskResultDoesNotExist"  # not before commit
    assert report["committed"]["status"] == "SUCCESSFUL"
    assert report["committed"]["return_value"] == 3

    assert report["deferred_status"] == "READY"
    assert report["deferred"]["return_value"] == 2
    assert report["deferred_waited"] is True
    assert report["deferred_priority"] == -5

    context = report["context"]["return_value"]
    assert context["label"] == "ctx"
    assert context["attempt"] == 1
    assert context["status"] == "RUNNING"
    assert context["workers"] == 1
    assert report["async"] == {"status": "SUCCESSFUL", "value": 3}
    assert "must be JSON" in report["not_json"]


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    return str(request.getfixturevalue("redis_url"))


def test_the_example_projects_tasks_on_a_real_worker(
    queue_url: str, tmp_path: Path, sim: SimServer
) -> None:
    """Enqueued from views, run by `asyncgen worker --django`, read back through Django's
    result API; a failing task's error and traceback; enqueue_on_commit in a transaction
    rolled back (nothing) and committed (stored at commit); run_after and priority; a
    task that takes its context; aenqueue and aget_result."""
    report = run_check(sys.executable, queue_url, tmp_path, sim)
    check(report)
    assert "serves django:default, django:llm" in report["worker_log"]


def test_on_django_6(queue_url: str, tmp_path: Path, sim: SimServer) -> None:
    """The same on Django 6's own django.tasks (Python 3.12+)."""
    assert DJANGO6, (
        "no Python with Django 6: run `bash .ci/django6` (it makes .venv-django6), or set "
        "ASYNCGEN_DJANGO6_PYTHON to a Python 3.12+ with Django 6 and this package"
    )
    report = run_check(DJANGO6, queue_url, tmp_path, sim)
    assert report["django"].startswith("6.")
    check(report)
