"""What a job is: one request to generate (GenerationJob) and what became of it
(GenerationResult)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    computed_field,
    field_validator,
    model_validator,
)

from ...core._logging import mask_secrets
from ..client._models import Completion
from ..client._request import request_fingerprint, schema_params

__all__ = ["GenerationJob", "GenerationResult"]


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


def _lone_surrogate(value: Any) -> str | None:
    """The first character of ``value`` (strings inside lists and dicts too) that UTF-8
    cannot encode, or None. ASCII strings, the usual case, cost one ``isascii`` each."""
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return value[exc.start]
        return None
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list | tuple):
        return next((c for c in map(_lone_surrogate, value) if c is not None), None)
    return None


class GenerationJob(BaseModel):
    """One request to generate: a model and either a prompt or a list of messages.

    Attributes:
        model: The provider's model id, e.g. "openai/gpt-4o-mini".
        prompt: A single user message; exclusive with ``messages``.
        messages: OpenAI-style chat messages (``{"role": ..., "content": ...}``).
        params: Extra request fields (temperature, max_tokens, ...), sent as they are.
        id: Your id for the job; a random one when not given.
        metadata: Anything to carry along to the result; never sent.
        response_model: A pydantic model the answer must be: its JSON schema is sent as
            ``response_format`` (unless params set one), the answer is parsed into it
            (``result.parsed``), and an answer that does not fit is re-asked with the
            validation errors, at most ``max_reasks`` times, before the job fails with
            ValidationFailedError. Not data: a job with one cannot be queued.
        max_reasks: Re-asks after an answer that does not fit ``response_model``.
        fallbacks: Models to go on with, in order, when this one fails with a
            transient error after its retries, its circuit breaker is open, or it is
            paused (429) for longer than the client's ``fallback_after``; never after
            a 402, a validation failure or another permanent error. Default: the
            client's ``fallbacks`` for this model.
        stream: Stream the answer: its text goes to ``on_event`` as JobToken events
            as it arrives (time to first token in ``completion.first_token``). A stream
            that breaks before any text is retried as usual; after some text it fails
            with StreamInterruptedError (the text was already handed on).
        stall_timeout: Seconds a streamed answer may stay silent before it counts as
            stalled (RequestTimeoutError: retried while no text has come); None: 30 s
            (``DEFAULT_STALL_TIMEOUT``). Not part of the request's fingerprint.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    id: str = Field(default_factory=_new_id, min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)
    response_model: type[BaseModel] | None = Field(default=None, exclude=True)
    max_reasks: int = Field(default=2, ge=0, le=10)
    fallbacks: list[str] = Field(default_factory=list)
    stream: bool = False
    stall_timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _exactly_one_input(self) -> GenerationJob:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt= or messages=")
        return self

    @model_validator(mode="after")
    def _sendable(self) -> GenerationJob:
        # A lone surrogate (e.g. "\ud800" in JSON input) passes as str but cannot be
        # encoded as UTF-8: refuse it here, not when the request is sent.
        bad = _lone_surrogate([self.prompt, self.messages, self.params])
        if bad is not None:
            raise ValueError(
                f"the job holds a lone surrogate (U+{ord(bad):04X}), which cannot be sent as "
                "UTF-8: fix the text it came from"
            )
        return self

    @field_validator("messages")
    @classmethod
    def _messages_have_roles(cls, value: list[dict[str, Any]] | None) -> Any:
        if value is not None:
            if not value:
                raise ValueError("messages must not be empty")
            for number, message in enumerate(value):
                if "role" not in message:
                    raise ValueError(f"message {number} has no 'role'")
        return value

    @field_validator("params")
    @classmethod
    def _params_do_not_override(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = {"model", "messages"} & value.keys()
        if clash:
            raise ValueError(f"params must not set {sorted(clash)}: use the job's own fields")
        return value

    def to_messages(self) -> list[dict[str, Any]]:
        """The chat messages to send."""
        if self.messages is not None:
            return self.messages
        return [{"role": "user", "content": self.prompt}]

    def fingerprint(self) -> str:
        """The SHA-256 (hex) of the job's first request: model, messages, params and the
        ``response_model``'s schema. Id, metadata, retries and fallbacks are not in it."""
        params = schema_params(self.response_model, self.params)
        return request_fingerprint(self.model, self.to_messages(), params)


class GenerationResult(BaseModel):
    """What became of one job: its text, or the error it failed with.

    Attributes:
        index: The job's position in the input.
        job: The job itself.
        text: The answer's text, or None when the job failed.
        completion: The whole completion (usage, finish reason, model), or None.
        error: The error the job failed with, or None.
        attempts: Requests made for the job (0 when it never started).
        latency: Seconds from the job's start to its end, retries included.
        value: What ``validate`` returned for the text, when a validator was given.
        parsed: The answer parsed into the job's ``response_model``, when it has one.
        answered_by: The model that answered (the job's, or a fallback), or None.
        fell_back: The models given up on, in order: ``model``, ``error_type``, ``reason``.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    index: int
    job: GenerationJob
    text: str | None = None
    completion: Completion | None = None
    error: BaseException | None = None
    attempts: int = 0
    latency: float = 0.0
    value: Any = None
    parsed: Any = None
    answered_by: str | None = None
    fell_back: list[dict[str, str]] = Field(default_factory=list)

    @field_validator("job", mode="wrap")
    @classmethod
    def _job_as_given(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # A GenerationJob was checked when it was made (it is frozen): do not walk its
        # text again for every result.
        return value if type(value) is GenerationJob else handler(value)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when the job produced an answer that passed validation."""
        return self.error is None

    @property
    def model(self) -> str:
        """The job's model."""
        return self.job.model

    @property
    def id(self) -> str:
        """The job's id (as in :meth:`to_record`)."""
        return self.job.id

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready summary: id, model, ok, text, error type and message, usage."""
        usage = self.completion.usage.model_dump() if self.completion else None
        return {
            "id": self.job.id,
            "model": self.job.model,
            "ok": self.ok,
            "text": self.text,
            "error_type": type(self.error).__name__ if self.error else None,
            "error": mask_secrets(str(self.error)) if self.error else None,
            "attempts": self.attempts,
            "latency": round(self.latency, 4),
            "usage": usage,
            "fingerprint": self.job.fingerprint(),
            **({"cached": True} if self.completion and self.completion.cached else {}),
            **({"parsed": _jsonable(self.parsed)} if self.parsed is not None else {}),
            **(
                {"answered_by": self.answered_by, "fell_back": self.fell_back}
                if self.fell_back
                else {}
            ),
        }


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value
