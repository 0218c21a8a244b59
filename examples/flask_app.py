"""A Flask app that fans a prompt out to several models, from a sync and an async route.

    ASYNCGEN_BASE_URL=http://127.0.0.1:8000/v1 flask --app examples.flask_app run

GET /sync?prompt=...&models=a,b  -> asyncgen.sync.fan_out (blocking twin, pooled)
GET /async?prompt=...&models=a,b -> await asyncgen.fan_out (Flask async view)
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

import asyncgen

app = Flask(__name__)
# One client for the app: the sync route's pool lives on asyncgen's background loop and
# is reused by every request; async views get a pool for their own loop.
client = asyncgen.ChatClient(
    os.environ.get("ASYNCGEN_BASE_URL", "https://openrouter.ai/api/v1"),
    os.environ.get("ASYNCGEN_API_KEY") or os.environ.get("OPENROUTER_API_KEY"),
)


def _arguments() -> tuple[str, list[str]]:
    prompt = request.args.get("prompt", "Say hello")
    models = [m for m in request.args.get("models", "").split(",") if m]
    return prompt, models


def _payload(results: list[asyncgen.GenerationResult]) -> dict[str, Any]:
    return {"results": [r.to_record() for r in results], "ok": sum(r.ok for r in results)}


@app.get("/sync")
def fan_out_sync() -> ResponseReturnValue:
    """Blocking route: the sync twin, safe from the threaded server's many threads."""
    prompt, models = _arguments()
    if not models:
        return jsonify(error="give models=a,b,..."), 400
    return jsonify(_payload(asyncgen.sync.fan_out(prompt, models, client=client)))


@app.get("/async")
async def fan_out_async() -> ResponseReturnValue:
    """Async route: awaits fan_out on the request's own event loop."""
    prompt, models = _arguments()
    if not models:
        return jsonify(error="give models=a,b,..."), 400
    try:
        results = await asyncgen.fan_out(prompt, models, client=client)
    finally:
        await client.aclose()  # this loop ends with the request: close its pool
    return jsonify(_payload(results))
