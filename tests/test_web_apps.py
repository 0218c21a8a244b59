"""The FastAPI and Django examples, served for real by uvicorn on 127.0.0.1 (and the
Django test client for the sync views)."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asyncgen import ChatClient, open_queue, open_worker
from asyncgen.queue import WorkerThread
from asyncgen.sim import ModelProfile, SimConfig
from asyncgen.testing import SimServer, sim_server
from tests.servers import InThread

ROOT = Path(__file__).parent.parent
LATENCY = 0.5
MODELS = [f"model-{i}" for i in range(6)]


@pytest.fixture
def models_sim(sim: SimServer) -> SimServer:
    sim.configure(SimConfig(default=ModelProfile(latency=LATENCY)))
    return sim


@pytest.fixture
def fastapi_app(
    models_sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[InThread, str]]:
    from examples.fastapi_app.app import app

    queue_url = f"sqlite:///{tmp_path}/jobs.db"
    monkeypatch.setenv("ASYNCGEN_BASE_URL", models_sim.base_url)
    monkeypatch.setenv("ASYNCGEN_QUEUE_URL", queue_url)
    served = InThread(app)
    try:
        yield served, queue_url
    finally:
        if served.thread.is_alive():
            served.stop()
        served.loop.close()


class TestFastAPI:
    async def test_fan_out_jobs_and_a_clean_shutdown(
        self, fastapi_app: tuple[InThread, str], models_sim: SimServer
    ) -> None:
        served, queue_url = fastapi_app
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
            began = time.monotonic()
            reply = await http.post("/fan-out", json={"prompt": "hi", "models": MODELS})
            took = time.monotonic() - began
            assert reply.status_code == 200
            body = reply.json()
            assert body["ok"] == 6
            assert [r["text"] for r in body["results"]] == [f"[{m}] hi" for m in MODELS]
            assert took < 2.5 * LATENCY  # at once, not six latencies in a row

            bad = await http.post("/fan-out", json={"prompt": "hi", "models": []})
            assert bad.status_code == 422

            submitted = await http.post("/jobs", json={"model": "m", "prompt": "later"})
            assert submitted.status_code == 202
            job_id = submitted.json()["id"]
            assert (await http.get(f"/jobs/{job_id}")).json()["state"] == "pending"
            assert (await http.get("/jobs/nope")).status_code == 404
            queue = open_queue(queue_url)
            client = ChatClient(models_sim.base_url)
            async with open_worker(queue, client=client):
                await queue.result(job_id, timeout=30)
            await client.aclose()
            await queue.aclose()
            done = (await http.get(f"/jobs/{job_id}")).json()
            assert done["state"] == "completed"
            assert done["result"]["text"] == "[m] later"
        app_client: ChatClient = served.server.config.loaded_app.app.state.client
        assert app_client.open_pools == 1  # the requests' pool, on the server's loop
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            served.stop()  # the lifespan's exit closes the client and the queue
            gc.collect()
        assert app_client.open_pools == 0
        assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


@pytest.fixture(scope="module")
def django_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimServer, str]]:
    """Django set up once for this module, on a simulator and a queue of its own (the
    app config makes its client and queue once per process, as in production)."""
    import django

    folder = tmp_path_factory.mktemp("django")
    queue_url = f"sqlite:///{folder}/jobs.db"
    config = SimConfig(default=ModelProfile(latency=LATENCY))
    with sim_server(config) as server, pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")
        patch.setenv("ASYNCGEN_BASE_URL", server.base_url)
        patch.setenv("ASYNCGEN_QUEUE_URL", queue_url)
        django.setup()
        yield server, queue_url


class TestDjango:
    def test_sync_views_with_the_test_client(self, django_env: tuple[SimServer, str]) -> None:
        from django.test import Client

        server, queue_url = django_env
        http = Client()
        reply = http.get("/sync/fan-out", {"prompt": "hi", "models": ",".join(MODELS)})
        assert reply.status_code == 200
        assert [r["text"] for r in reply.json()["results"]] == [f"[{m}] hi" for m in MODELS]
        assert http.get("/sync/fan-out", {"prompt": "hi"}).status_code == 400
        too_many = ",".join(f"m{i}" for i in range(11))
        assert http.get("/sync/fan-out", {"prompt": "hi", "models": too_many}).status_code == 400

        submitted = http.post(
            "/jobs", {"model": "m", "prompt": "later"}, content_type="application/json"
        )
        assert submitted.status_code == 202
        job_id = submitted.json()["id"]
        assert http.get(f"/jobs/{job_id}").json()["state"] == "pending"
        assert http.get(f"/jobs/{job_id}/result", {"timeout": "0.1"}).status_code == 202
        for bad in ("abc", "-1", "nan", "inf"):
            refused = http.get(f"/jobs/{job_id}/result", {"timeout": bad})
            assert refused.status_code == 400, bad
            assert "timeout must be a number" in refused.json()["error"]
        assert http.get("/jobs/nope").status_code == 404
        assert http.post("/jobs", "{}", content_type="application/json").status_code == 400
        client = ChatClient(server.base_url)
        with WorkerThread(open_queue(queue_url), client=client):
            done = http.get(f"/jobs/{job_id}/result", {"timeout": "30"})
        client.close()
        assert done.status_code == 200
        assert done.json()["result"]["text"] == "[m] later"

    async def test_eight_async_requests_take_one_llm_latency(
        self, django_env: tuple[SimServer, str]
    ) -> None:
        """The async view under uvicorn: 8 requests at once, each fanning out to two
        models, finish in about one model latency, not eight (or sixteen)."""
        from examples.django_app.asgi import application

        served = InThread(application, lifespan="off")  # Django's ASGI has no lifespan
        try:
            async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
                began = time.monotonic()
                replies = await asyncio.gather(
                    *(
                        http.get("/async/fan-out", params={"prompt": f"q{i}", "models": "a,b"})
                        for i in range(8)
                    )
                )
                took = time.monotonic() - began
                sync_reply = await http.get("/sync/fan-out", params={"prompt": "s", "models": "a"})
        finally:
            served.stop()
            served.loop.close()
        assert [r.status_code for r in replies] == [200] * 8
        for i, reply in enumerate(replies):
            assert [r["text"] for r in reply.json()["results"]] == [f"[a] q{i}", f"[b] q{i}"]
        assert took < 2 * LATENCY  # about one latency: all 16 requests were in flight at once
        assert sync_reply.json()["results"][0]["text"] == "[a] s"  # sync views under ASGI too
