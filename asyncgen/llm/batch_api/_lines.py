"""The Batch API's files, line by line: a job as a request line and back, an output or
error file's record as an answer or an error."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ...core._errors import AsyncGenError, BadRequestError, ServerError
from ..client._batches import ENDPOINT
from ..client._mapping import error_for_status
from ..client._models import Completion, Usage
from ..client._request import request_fingerprint, schema_params
from ..engine._jobs import GenerationJob

__all__ = [
    "RETRY_CODES",
    "batch_error",
    "completion_of",
    "item_error",
    "line_fingerprint",
    "line_job",
    "may_pass",
    "request_line",
]

RETRY_CODES = frozenset({"batch_expired", "token_limit_exceeded", "rate_limit_exceeded"})


def request_line(job: GenerationJob) -> dict[str, Any]:
    """A job as one line of a batch request file."""
    params = schema_params(job.response_model, job.params)
    body = {"model": job.model, "messages": job.to_messages(), **params}
    return {"custom_id": job.id, "method": "POST", "url": ENDPOINT, "body": body}


def line_job(line: dict[str, Any], response_model: type[BaseModel] | None = None) -> GenerationJob:
    """A request line back as a job (to send it online); with ``response_model`` the
    schema in its params is the model's again (so the online path re-asks)."""
    body = dict(line["body"])
    model, messages = body.pop("model"), body.pop("messages")
    if response_model is not None:
        body.pop("response_format", None)  # schema_params puts it back from the model
    return GenerationJob(
        id=line["custom_id"],
        model=model,
        messages=messages,
        params=body,
        response_model=response_model,
    )


def line_fingerprint(line: dict[str, Any]) -> tuple[str, str]:
    body = dict(line["body"])
    model, messages = str(body.pop("model")), body.pop("messages")
    return model, request_fingerprint(model, messages, body)


def item_error(item: dict[str, Any]) -> AsyncGenError | None:
    """The error an output or error file record carries, or None for an answer."""
    error = item.get("error")
    response = item.get("response") or {}
    status = int(response.get("status_code") or 0)
    if error:
        code = str(error.get("code") or "batch_error")
        message = str(error.get("message") or code)
        if code == "batch_expired":
            return ServerError(f"expired: {message}", status=504)
        return BadRequestError(f"{code}: {message}", status=400)
    if status >= 300 or not response:
        body = response.get("body")
        return error_for_status(status or 502, {}, body, model="batch request")
    return None


def may_pass(item: dict[str, Any], error: AsyncGenError) -> bool:
    """Worth sending again: expired, rate limited, or the provider's own failure."""
    code = str((item.get("error") or {}).get("code") or "")
    status = error.status or 0
    return code in RETRY_CODES or status in (408, 429, 504) or status >= 500


def batch_error(batch: dict[str, Any]) -> AsyncGenError:
    """Why a whole batch failed (its ``errors``)."""
    errors = ((batch.get("errors") or {}).get("data")) or [{}]
    first = errors[0] or {}
    code = str(first.get("code") or "batch_failed")
    message = f"batch {batch.get('id')} failed: {code}: {first.get('message') or ''}".strip()
    if code in RETRY_CODES:
        return ServerError(message, status=503)
    return BadRequestError(message, status=400)


def completion_of(body: dict[str, Any], model: str) -> Completion:
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return Completion(
        text=str(message.get("content") or ""),
        finish_reason=choice.get("finish_reason"),
        usage=Usage.model_validate(usage or {}),
        model=str(body.get("model") or model),
        latency=0.0,
        id=body.get("id"),
    )
