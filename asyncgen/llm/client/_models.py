"""What an answer is: a completion, its usage and cost, and what a key's endpoint says."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Completion", "KeyInfo", "KeyRateLimit", "Usage"]


class Usage(BaseModel):
    """Tokens and cost spent by one completion.

    ``cost`` is the provider's figure (OpenRouter), else the price table's
    (``cost_source="table"``, with ``asyncgen[prices]``), else None: unknown, not 0.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None
    cost_source: str | None = None

    def __add__(self, other: Usage) -> Usage:
        """Two completions' usage together (a cost only one reported is kept)."""
        costs = [c for c in (self.cost, other.cost) if c is not None]
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cost=sum(costs) if costs else None,
            cost_source=self.cost_source or other.cost_source,
        )


class Completion(BaseModel):
    """One answer from a chat completions endpoint."""

    model_config = ConfigDict(frozen=True)

    text: str
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    model: str
    latency: float = Field(description="Seconds from sending the request to the answer.")
    first_token: float | None = Field(
        default=None, description="Streamed answers: seconds from sending to the first text."
    )
    parsed: Any = Field(default=None, description="``chat(response_model=...)``: the object.")
    id: str | None = None
    cached: bool = Field(
        default=False, description="Answered from the response cache: nothing was sent."
    )


class KeyRateLimit(BaseModel):
    """A provider's advertised request rate: ``requests`` per ``interval`` (e.g. "10s")."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    requests: int
    interval: str


class KeyInfo(BaseModel):
    """What OpenRouter's ``/key`` endpoint says about an API key."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    label: str | None = None
    limit: float | None = None
    usage: float | None = None
    limit_remaining: float | None = None
    is_free_tier: bool | None = None
    rate_limit: KeyRateLimit | None = None
