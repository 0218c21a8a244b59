"""What one request sends, and its fingerprint.

A fingerprint is the SHA-256 of the request's canonical JSON (model, messages, params:
keys sorted, no spaces), so two requests that would send the same body have the same
one, whatever order their params were written in. ``asyncgen run`` records it on each
result line, so a resume can tell a job whose request changed (another model, prompt,
parameter or schema) from one it already answered; the response cache keys on it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

__all__ = ["request_fingerprint", "schema_params"]


def schema_params(response_model: type[BaseModel] | None, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the model's JSON schema as ``response_format`` (json_schema),
    unless there is no model or the params set a response_format of their own."""
    if response_model is None or "response_format" in params:
        return params
    schema = {"name": response_model.__name__, "schema": response_model.model_json_schema()}
    return {**params, "response_format": {"type": "json_schema", "json_schema": schema}}


def request_fingerprint(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """The SHA-256 (hex) of what the request sends: model, messages and params."""
    body = {"model": model, "messages": messages, "params": params}
    canonical = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
