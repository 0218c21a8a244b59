"""Views: sync ones (any WSGI or ASGI server) and an async one (ASGI).

GET  /sync/fan-out?prompt=...&models=a,b    asyncgen.sync.fan_out (blocking twin)
GET  /async/fan-out?prompt=...&models=a,b   await asyncgen.fan_out
POST /jobs   {"model": "a", "prompt": "..."}  queue.blocking.submit -> {"id"} (202)
GET  /jobs/<id>                                queue.blocking.status
GET  /jobs/<id>/result?timeout=10              queue.blocking.result (waits)
POST /tasks/count  {"text": "..."}               Django task count_words.enqueue -> {"id"}
POST /tasks/compare {"prompt": "...", "models": ["a", "b"]}   compare.enqueue -> {"id"}
GET  /tasks/<id>                               Django's get_result: status, value, errors
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

import asyncgen
from asyncgen import GenerationJob, GenerationResult, JobFailedError
from asyncgen.integrations.django import TaskResultDoesNotExist

from .apps import services
from .tasks import compare, count_words


def _ask(request: HttpRequest) -> tuple[str, list[str]] | JsonResponse:
    prompt = request.GET.get("prompt", "").strip()
    models = [m for m in request.GET.get("models", "").split(",") if m]
    if not prompt or not models:
        return JsonResponse({"error": "give prompt=... and models=a,b"}, status=400)
    if len(models) > services().max_models:
        return JsonResponse({"error": f"at most {services().max_models} models"}, status=400)
    return prompt, models


def _payload(results: list[GenerationResult]) -> dict[str, Any]:
    return {"results": [r.to_record() for r in results], "ok": sum(r.ok for r in results)}


@require_GET
def fan_out_sync(request: HttpRequest) -> HttpResponse:
    asked = _ask(request)
    if isinstance(asked, JsonResponse):
        return asked
    prompt, models = asked
    return JsonResponse(_payload(asyncgen.sync.fan_out(prompt, models, client=services().client)))


@require_GET
async def fan_out_async(request: HttpRequest) -> HttpResponse:
    asked = _ask(request)
    if isinstance(asked, JsonResponse):
        return asked
    prompt, models = asked
    return JsonResponse(_payload(await asyncgen.fan_out(prompt, models, client=services().client)))


@csrf_exempt  # an API endpoint; put your own authentication in front of it
@require_POST
def submit_job(request: HttpRequest) -> HttpResponse:
    try:
        body = json.loads(request.body)
        job = GenerationJob(model=body["model"], prompt=body["prompt"])
    except (ValueError, KeyError, TypeError) as exc:
        return JsonResponse({"error": f"give model and prompt: {exc}"}, status=400)
    return JsonResponse({"id": services().queue.blocking.submit(job)}, status=202)


@require_GET
def job_status(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        record = services().queue.blocking.status(job_id)
    except KeyError:
        return JsonResponse({"error": f"no job {job_id}"}, status=404)
    return JsonResponse(
        {
            "id": record.id,
            "state": record.state.value,
            "attempts": record.attempts,
            "error": record.error,
        }
    )


@require_GET
def job_result(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        wait = float(request.GET.get("timeout", "10"))
    except ValueError:
        wait = -1.0
    if not 0 <= wait < float("inf"):
        return JsonResponse({"error": "timeout must be a number of seconds >= 0"}, status=400)
    wait = min(wait, 60.0)
    try:
        result = services().queue.blocking.result(job_id, timeout=wait)
    except KeyError:
        return JsonResponse({"error": f"no job {job_id}"}, status=404)
    except TimeoutError:
        return JsonResponse({"id": job_id, "state": "not finished yet"}, status=202)
    except JobFailedError as exc:
        return JsonResponse({"id": job_id, "error": str(exc)}, status=502)
    return JsonResponse({"id": job_id, "result": result})


@csrf_exempt
@require_POST
def enqueue_count(request: HttpRequest) -> HttpResponse:
    try:
        text = json.loads(request.body)["text"]
    except (ValueError, KeyError, TypeError) as exc:
        return JsonResponse({"error": f"give text: {exc}"}, status=400)
    return JsonResponse({"id": count_words.enqueue(text).id}, status=202)


@csrf_exempt
@require_POST
def enqueue_compare(request: HttpRequest) -> HttpResponse:
    try:
        body = json.loads(request.body)
        prompt, models = str(body["prompt"]), [str(m) for m in body["models"]]
    except (ValueError, KeyError, TypeError) as exc:
        return JsonResponse({"error": f"give prompt and models: {exc}"}, status=400)
    if not models or len(models) > services().max_models:
        return JsonResponse({"error": f"1 to {services().max_models} models"}, status=400)
    return JsonResponse({"id": compare.enqueue(prompt, models).id}, status=202)


@require_GET
def task_result(request: HttpRequest, result_id: str) -> HttpResponse:
    try:
        result = count_words.get_backend().get_result(result_id)
    except TaskResultDoesNotExist:  # Django's, whichever package this Django has
        return JsonResponse({"error": f"no task {result_id}"}, status=404)
    reply: dict[str, Any] = {
        "id": result.id,
        "task": result.task.name,
        "status": str(result.status),
        "attempts": result.attempts,
        "errors": [
            {"type": e.exception_class_path, "traceback": e.traceback} for e in result.errors
        ],
    }
    if result.status == "SUCCESSFUL":
        reply["return_value"] = result.return_value
    return JsonResponse(reply)
