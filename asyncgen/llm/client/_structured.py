"""Structured outputs: a pydantic model's JSON schema in the request, the answer parsed
into it, and an answer that does not fit re-asked with what was wrong.

Used by the job runner (``GenerationJob(response_model=...)``) and by
``ChatClient.chat(response_model=...)``; it sends nothing itself (``ask`` does).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError

from ...core._errors import ValidationFailedError
from ._models import Completion

__all__ = ["REASK", "parse_answer", "parse_with_reasks", "strip_fences"]

REASK = (
    "Your answer did not match the {model} JSON schema: {errors}. Answer again with "
    "only the JSON object, matching the schema exactly."
)
_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n(.*?)\n?```\s*$", re.DOTALL)
_log = structlog.get_logger("asyncgen.generate")

Ask = Callable[[list[dict[str, Any]]], Awaitable[Completion]]


def strip_fences(text: str) -> str:
    """The JSON inside a ```json fence, as models often wrap it; else the text."""
    match = _FENCE.match(text)
    return match.group(1) if match else text


async def parse_with_reasks(
    response_model: type[BaseModel],
    model: str,
    max_reasks: int,
    messages: list[dict[str, Any]],
    completion: Completion,
    ask: Ask,
    before_reask: Callable[[], None] | None = None,
) -> Any:
    """The answer as ``response_model``; one that does not fit is re-asked (``ask`` with
    the conversation so far and the errors) at most ``max_reasks`` times.

    Raises:
        ValidationFailedError: Still not fitting after the re-asks (with the last text
            and the errors).
    """
    for reask in range(max_reasks + 1):
        try:
            return response_model.model_validate_json(strip_fences(completion.text))
        except ValidationError as exc:
            errors = json.loads(exc.json(include_url=False, include_input=False))
        if reask == max_reasks:
            raise ValidationFailedError(
                f"{model}: the answer did not fit {response_model.__name__} after "
                f"{max_reasks} re-ask(s): {_summary(errors)}",
                text=completion.text,
                errors=errors,
            )
        _log.info("reasking", model=model, reask=reask + 1, errors=len(errors))
        again = REASK.format(model=response_model.__name__, errors=_summary(errors))
        messages = [
            *messages,
            {"role": "assistant", "content": completion.text},
            {"role": "user", "content": again},
        ]
        if before_reask is not None:
            before_reask()
        completion = await ask(messages)
    raise AssertionError("unreachable")


def parse_answer(response_model: type[BaseModel], model: str, completion: Completion) -> Any:
    """The answer as ``response_model``, with no re-ask (a batch's answers).

    Raises:
        ValidationFailedError: It does not fit (with the text and the errors).
    """
    try:
        return response_model.model_validate_json(strip_fences(completion.text))
    except ValidationError as exc:
        errors = json.loads(exc.json(include_url=False, include_input=False))
    raise ValidationFailedError(
        f"{model}: the answer did not fit {response_model.__name__}: {_summary(errors)}",
        text=completion.text,
        errors=errors,
    )


def _summary(errors: list[dict[str, Any]]) -> str:
    parts = [
        f"{'.'.join(str(p) for p in e.get('loc', ())) or 'the answer'}: {e.get('msg')}"
        for e in errors[:10]
    ]
    return "; ".join(parts) + (f" (and {len(errors) - 10} more)" if len(errors) > 10 else "")
