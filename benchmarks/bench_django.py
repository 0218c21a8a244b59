"""Django's ``task.enqueue()`` through asyncgen's QueueBackend against a plain blocking
``queue.submit`` of the same job, on SQLite and Redis (a redis-server on loopback).

Both are sync calls from the same thread, as a Django view makes them; rounds of each
alternate so the machine's noise falls on both. The target: the backend's enqueue costs
no more than 20 % over a plain submit. Writes benchmarks/results/bench_django.json.

Run: python benchmarks/bench_django.py [--jobs 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import django
from django.conf import settings

from asyncgen.queue import open_queue
from asyncgen.queue import task as asyncgen_task
from asyncgen.testing import RedisServer

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_report


def noop(number: int) -> int:
    """The job both ways: a task taking one number."""
    return number


def measure(url: str, jobs: int, rounds: int) -> dict[str, Any]:
    """In a process of its own (Django's settings are one per process)."""
    settings.configure(
        TASKS={
            "default": {
                "BACKEND": "asyncgen.integrations.django.QueueBackend",
                "OPTIONS": {"queue": url},
            }
        },
        USE_TZ=True,
    )
    django.setup()
    try:
        from django.tasks import task  # Django 6
    except ImportError:
        from django_tasks import task  # type: ignore[no-redef]  # Django 4.2-5.x
    django_noop = task()(noop)
    plain_task = asyncgen_task(name="noop")(noop)
    queue = open_queue(url).blocking
    per_job: dict[str, list[float]] = {"enqueue": [], "submit": []}
    for _ in range(rounds):
        began = time.perf_counter()
        for i in range(jobs):
            django_noop.enqueue(i)
        per_job["enqueue"].append((time.perf_counter() - began) / jobs)
        began = time.perf_counter()
        for i in range(jobs):
            queue.submit(plain_task.call(i))
        per_job["submit"].append((time.perf_counter() - began) / jobs)
    enqueue, submit = statistics.median(per_job["enqueue"]), statistics.median(per_job["submit"])
    return {
        "django": django.get_version(),
        "jobs_per_round": jobs,
        "rounds": rounds,
        "enqueue_us": round(enqueue * 1e6, 1),
        "submit_us": round(submit * 1e6, 1),
        "overhead": round(enqueue / submit - 1, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child: measure this URL
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.jobs, args.rounds)))
        return
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder, RedisServer() as redis:
        for backend, url in (
            ("sqlite", f"sqlite:///{folder}/jobs.db"),
            ("redis", f"{redis.url}?queue=bench-django"),
        ):
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    url,
                    "--jobs",
                    str(args.jobs),
                    "--rounds",
                    str(args.rounds),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            figures[backend] = json.loads(child.stdout.splitlines()[-1])
            print(f"{backend}: {figures[backend]}")
    print(f"wrote {write_report('bench_django', figures, args.json)}")


if __name__ == "__main__":
    main()
