"""A FastAPI app: fan a prompt out to several models, and run generation as background jobs.

    ASYNCGEN_BASE_URL=http://127.0.0.1:8000/v1 ASYNCGEN_QUEUE_URL=sqlite:///jobs.db \\
        uvicorn examples.fastapi_app.app:app --port 8080
    asyncgen worker sqlite:///jobs.db --base-url http://127.0.0.1:8000/v1   # runs the jobs

POST /fan-out   {"prompt": "...", "models": ["a", "b"]}  -> every model's answer, at once
POST /jobs      {"model": "a", "prompt": "..."}          -> {"id": ...} (202, at once)
GET  /jobs/{id}                                          -> state, result or error

The lifespan opens one ChatClient and one queue for the process (settings from
``ASYNCGEN_*`` variables and asyncgen.toml / asyncgen.yaml) and closes both at shutdown,
so no connection outlives the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

import asyncgen
from asyncgen import ChatClient, GenerationJob, JobState, Settings
from asyncgen.queue import JobQueue, open_queue


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = Settings.load()
    key = settings.api_key.get_secret_value() if settings.api_key else None
    # max_connections: requests in flight at once from this process, sized for concurrent
    # API calls times models per call (the default, 10, suits a script).
    client = ChatClient(
        settings.base_url or "https://openrouter.ai/api/v1", key, max_connections=100
    )
    queue = open_queue(settings.queue_url)
    app.state.client, app.state.queue = client, queue
    try:
        yield
    finally:
        await queue.aclose()
        await client.aclose()


app = FastAPI(title="asyncgen example", lifespan=lifespan)


def get_client(request: Request) -> ChatClient:
    client: ChatClient = request.app.state.client
    return client


def get_queue(request: Request) -> JobQueue:
    queue: JobQueue = request.app.state.queue
    return queue


class FanOut(BaseModel):
    prompt: str = Field(min_length=1)
    models: list[str] = Field(min_length=1, max_length=20)


class JobRequest(BaseModel):
    model: str
    prompt: str = Field(min_length=1)


@app.post("/fan-out")
async def fan_out(
    body: FanOut, client: Annotated[ChatClient, Depends(get_client)]
) -> dict[str, Any]:
    """Every model at once; each answer or error in the order asked."""
    results = await asyncgen.fan_out(body.prompt, body.models, client=client)
    return {"results": [r.to_record() for r in results], "ok": sum(r.ok for r in results)}


@app.post("/jobs", status_code=202)
async def submit(
    body: JobRequest, queue: Annotated[JobQueue, Depends(get_queue)]
) -> dict[str, str]:
    """Store a generation job and return its id at once; a worker runs it."""
    job_id = await queue.submit(GenerationJob(model=body.model, prompt=body.prompt))
    return {"id": job_id}


@app.get("/jobs/{job_id}")
async def status(job_id: str, queue: Annotated[JobQueue, Depends(get_queue)]) -> dict[str, Any]:
    """The job's state, and its result or error once it has one."""
    try:
        record = await queue.status(job_id)
    except KeyError:
        raise HTTPException(404, f"no job {job_id}") from None
    done = record.state is JobState.COMPLETED
    return {
        "id": record.id,
        "state": record.state.value,
        "attempts": record.attempts,
        "result": record.result if done else None,
        "error": record.error,
    }
