"""asyncgen inside Celery, for real: prefork worker processes on a real redis-server
broker and result backend, generation against the simulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from redis import Redis

from asyncgen import GenerationJob
from asyncgen.sim import Fault, ModelProfile, SimConfig
from asyncgen.testing import RedisServer, SimServer
from examples.celery_app.app import make_app

ROOT = Path(__file__).parent.parent
MODELS = [f"model-{i}" for i in range(6)]


class Workers:
    """``celery worker`` processes (each in its own process group, so kill -9 takes its
    prefork children with it)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *, concurrency: int = 2) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "examples.celery_app.app",
                    "worker",
                    "--pool",
                    "prefork",
                    "--concurrency",
                    str(concurrency),
                    "--loglevel",
                    "INFO",
                    "--hostname",
                    f"{name}@test",
                    "--without-gossip",
                    "--without-mingle",
                ],
                cwd=ROOT,
                env={**os.environ, **self.env, "PYTHONPATH": str(ROOT)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(process)
        return process

    def wait_ready(self, app: Celery, name: str) -> None:
        deadline = time.monotonic() + 60
        while not any(f"{name}@test" in reply for reply in app.control.ping(timeout=0.5) or []):
            assert time.monotonic() < deadline, (self.logs / f"{name}.log").read_text()

    def kill_9(self, process: subprocess.Popen[bytes]) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.fixture
def celery_env(
    redis_server: RedisServer, sim: SimServer, tmp_path: Path
) -> Iterator[tuple[Celery, Workers]]:
    root = redis_server.url.rsplit("/", 1)[0]  # redis://127.0.0.1:PORT
    broker, backend = f"{root}/5", f"{root}/6"
    for url in (broker, backend):
        Redis.from_url(url).flushdb()
    env = {
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": backend,
        "ASYNCGEN_BASE_URL": sim.base_url,
        "ASYNCGEN_FANOUT_CONCURRENCY": "3",
        "CELERY_VISIBILITY_TIMEOUT": "3",
    }
    app = make_app(broker, backend, visibility_timeout=3)
    workers = Workers(env, tmp_path)
    try:
        yield app, workers
    finally:
        workers.stop_all()
        app.close()


def test_fifty_fan_outs_on_a_prefork_worker(
    celery_env: tuple[Celery, Workers], sim: SimServer
) -> None:
    """50 tasks, each fanning out to 6 models: every answer right, and never more than
    the configured 3 requests in flight per worker process (2 processes: at most 6)."""
    app, workers = celery_env
    sim.configure(SimConfig(default=ModelProfile(latency=0.05)))
    workers.start("w1")
    workers.wait_ready(app, "w1")
    pending = [app.send_task("compare", args=[f"q{i}", MODELS]) for i in range(50)]
    results: list[Any] = [task.get(timeout=120) for task in pending]
    for i, records in enumerate(results):
        assert [r["text"] for r in records] == [f"[{m}] q{i}" for m in MODELS]
    stats = sim.stats()
    assert stats["statuses"] == {"200": 300}
    assert 3 < stats["max_in_flight"] <= 2 * 3  # both processes at once, each bounded


def test_a_killed_worker_task_is_run_by_another_and_stored_once(
    celery_env: tuple[Celery, Workers], sim: SimServer
) -> None:
    """kill -9 mid-job (acks_late): after the visibility timeout another worker runs
    the job; one result is stored for it."""
    app, workers = celery_env
    sim.configure(SimConfig(models={"slow": ModelProfile(latency=2.0)}))
    first = workers.start("w1", concurrency=1)
    workers.wait_ready(app, "w1")
    job = GenerationJob(model="slow", prompt="survive").model_dump(mode="json")
    task = app.send_task("asyncgen.generate", args=[job])
    deadline = time.monotonic() + 30
    while sim.stats()["in_flight"] < 1:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)
    workers.kill_9(first)
    workers.start("w2", concurrency=1)
    record = task.get(timeout=90)
    assert record["text"] == "[slow] survive"
    assert sim.stats()["requests"]["slow"] == 2  # the killed attempt, then the re-run
    keys = Redis.from_url(app.conf.result_backend).keys(f"celery-task-meta-{task.id}")
    assert len(keys) == 1


def test_a_402_is_not_retried(celery_env: tuple[Celery, Workers], sim: SimServer) -> None:
    """Out of credits fails the task at once (Celery does not retry it); a 503 is
    retried by Celery and then succeeds."""
    app, workers = celery_env
    sim.configure(
        SimConfig(
            models={
                "broke": ModelProfile(faults=[Fault(kind="status", status=402)]),
                "flaky": ModelProfile(
                    faults=[Fault(kind="status", status=503, first=1, retry_after=0.1)]
                ),
            }
        )
    )
    workers.start("w1")
    workers.wait_ready(app, "w1")
    broke = app.send_task("asyncgen.generate", args=[{"model": "broke", "prompt": "x"}])
    flaky = app.send_task("asyncgen.generate", args=[{"model": "flaky", "prompt": "y"}])
    with pytest.raises(Exception, match=r"402|credits") as failed:
        broke.get(timeout=60)
    assert type(failed.value).__name__ == "InsufficientCreditsError"
    assert flaky.get(timeout=60)["text"] == "[flaky] y"
    time.sleep(1.0)  # room for a retry that must not come
    requests = sim.stats()["requests"]
    assert requests["broke"] == 1
    assert requests["flaky"] == 2
    assert broke.state == "FAILURE"
