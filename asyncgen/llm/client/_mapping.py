"""Translating HTTP answers and transport failures into asyncgen's errors.

The rules, in order:

- 402, or a 429 whose code/type is ``insufficient_quota`` -> InsufficientCreditsError
  (never retried, whatever ``x-should-retry`` says); ``scope="request"`` when it says this
  request costs more than the key can afford ("fewer max_tokens"), else ``"key"``;
- ``x-should-retry: true|false`` (OpenAI) overrides the status rule below;
- 401 -> InvalidKeyError, 403 -> AuthenticationError; 429 -> RateLimitedError with Retry-After;
  408, 409, 5xx -> ServerError; other 4xx -> BadRequestError;
- 200 whose body is ``{"error": {...}}`` (OpenRouter's upstream failures) -> by its code;
- 200 that is not JSON, or has no choices -> InvalidResponseError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ...core._errors import (
    AsyncGenError,
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    InvalidKeyError,
    InvalidResponseError,
    PermanentError,
    RateLimitedError,
    ServerError,
    TransientError,
)
from ...core._logging import mask_secrets
from ...core._retry_after import parse_retry_after
from ._models import Completion, Usage
from ._transport import Reply

__all__ = ["error_for_reply", "error_for_status", "json_of_reply", "parse_completion"]

_MAX_MESSAGE = 500
_TRANSIENT_STATUS = {408, 409, 429}
_CREDITS_HINT = (
    "add credits to your provider account (OpenRouter: https://openrouter.ai/settings/credits)"
)
# A 402 about one request's cost, not an empty account (OpenRouter: "This request requires
# more credits, or fewer max_tokens. You requested up to 4096 tokens, but can only afford
# 1000.").
_UNAFFORDABLE = re.compile(r"fewer max_tokens|can only afford|requires more credits", re.I)


def _provider_message(body: Any, fallback: str) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        for key in ("message", "detail"):
            if body.get(key):
                return str(body[key])
    return fallback


def _error_fields(body: Any) -> tuple[str, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), str(error.get("type") or "")


def _should_retry_header(headers: Mapping[str, str]) -> bool | None:
    value = headers.get("x-should-retry", "").strip().lower()
    return {"true": True, "false": False}.get(value)


def error_for_status(
    status: int, headers: Mapping[str, str], body: Any, *, model: str, text: str = ""
) -> AsyncGenError:
    """Return the error for a non-2xx answer (or a 2xx carrying an error body)."""
    said = mask_secrets(_provider_message(body, text.strip()[:_MAX_MESSAGE] or "no message"))
    message = f"{model}: HTTP {status}: {said}"[: _MAX_MESSAGE + 80]
    code, kind = _error_fields(body)
    if status == 402 or "insufficient_quota" in (code, kind):
        if _UNAFFORDABLE.search(said):  # this request's cost, not an empty account
            return InsufficientCreditsError(
                f"{message} -- this request costs more than the key can afford: lower its "
                "max_tokens (or add credits); other requests go on",
                status=status,
                scope="request",
            )
        return InsufficientCreditsError(f"{message} -- {_CREDITS_HINT}", status=status)
    retry_after = parse_retry_after(headers)
    verdict = _should_retry_header(headers)
    if verdict is True and not (status >= 500 or status in _TRANSIENT_STATUS):
        return TransientError(message, status=status, retry_after=retry_after)
    if verdict is False and (status >= 500 or status in _TRANSIENT_STATUS):
        return PermanentError(message, status=status)
    if status == 401:
        return InvalidKeyError(f"{message} -- check the API key", status=status)
    if status == 403:  # may be this request's (a moderation refusal), not the key's
        return AuthenticationError(f"{message} -- check the API key", status=status)
    if status == 429:
        return RateLimitedError(message, status=status, retry_after=retry_after)
    if status >= 500 or status in _TRANSIENT_STATUS:
        return ServerError(message, status=status, retry_after=retry_after)
    return BadRequestError(message, status=status)


def error_for_reply(reply: Reply, what: str) -> AsyncGenError:
    """The error for an answer whose status is not 2xx (``what`` names the request)."""
    try:
        body: Any = reply.json()
    except ValueError:
        body = None
    return error_for_status(reply.status, reply.headers, body, model=what, text=reply.text)


def json_of_reply(reply: Reply, what: str) -> Any:
    """The JSON of a 2xx answer; the mapped error of any other (``what`` names it).

    Raises:
        InvalidResponseError: A 2xx whose body is not JSON.
    """
    if reply.status >= 300:
        raise error_for_reply(reply, what)
    try:
        return reply.json()
    except ValueError as exc:
        raise InvalidResponseError(f"{what}: HTTP {reply.status} but the body is not JSON") from exc


def _status_of_error_body(body: dict[str, Any]) -> int:
    code = body["error"].get("code") if isinstance(body.get("error"), dict) else None
    try:
        status = int(code)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 502  # an upstream failure with no usable code: worth retrying
    return status if 400 <= status <= 599 else 502


def parse_completion(response: Reply, *, model: str, latency: float) -> Completion:
    """Return the Completion in a 2xx answer, or raise the error it really carries.

    Raises:
        AsyncGenError: Mapped from the body (error bodies, garbage, no choices).
    """
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidResponseError(
            f"{model}: HTTP {response.status} but the body is not JSON: "
            f"{mask_secrets(response.text[:200])!r}",
            status=response.status,
        ) from exc
    if not isinstance(body, dict):
        raise InvalidResponseError(f"{model}: expected a JSON object, got {type(body).__name__}")
    if body.get("error"):
        raise error_for_status(_status_of_error_body(body), response.headers, body, model=model)
    return _completion_from(body, model=model, latency=latency)


def _completion_from(body: dict[str, Any], *, model: str, latency: float) -> Completion:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise InvalidResponseError(f"{model}: the answer has no choices")
    choice = choices[0]
    message = choice.get("message") or {}
    content = message.get("content") if isinstance(message, dict) else None
    if choice.get("finish_reason") == "error":
        raise ServerError(f"{model}: the provider ended the answer with an error", status=502)
    if content is not None and not isinstance(content, str):
        raise InvalidResponseError(f"{model}: message content is not text")
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return Completion(
        text=content or "",
        finish_reason=choice.get("finish_reason"),
        usage=Usage.model_validate(usage),
        model=str(body.get("model") or model),
        latency=latency,
        id=body.get("id"),
    )
