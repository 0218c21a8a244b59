"""What an answer is: a completion, its usage and cost, and what a key's endpoint says."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ._hints import parse_duration

__all__ = ["Completion", "KeyInfo", "KeyRateLimit", "Spend", "Usage"]


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


@dataclass
class Spend:
    """Answers' usage added up: tokens, dollars, and how many answers' cost is unknown
    (never counted as $0).

    The one tally of spending: a run's spend guard (``max_cost``, ``max_tokens``) adds
    each answer as it comes, a run's result counts (the CLI summary, the run's
    dashboard) each finished job's, a client's statistics each answer it got.
    """

    tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0  # answers of unknown cost (not in ``cost``)

    def add(self, usage: Usage) -> None:
        """Add one answer's usage (a job's, summed over its requests)."""
        self.tokens += usage.total_tokens
        if usage.cost is None:
            self.unpriced += 1
        else:
            self.cost += usage.cost

    def cost_text(self) -> str:
        """The cost, saying how many answers' cost is unknown (never counted as $0)."""
        if self.unpriced and self.cost == 0:
            return f"unknown ({self.unpriced} answers unpriced: asyncgen[prices] prices them)"
        extra = f" + unknown for {self.unpriced} answers" if self.unpriced else ""
        return f"${self.cost:.4f}{extra}"


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

    def per_second(self) -> int:
        """Requests a second, at least 1 (an interval it cannot read counts as 1 s)."""
        seconds = parse_duration(self.interval) or 1.0
        return max(1, int(self.requests / max(seconds, 1e-9)))


class KeyInfo(BaseModel):
    """What OpenRouter's ``/key`` endpoint says about an API key."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    label: str | None = None
    limit: float | None = None
    usage: float | None = None
    limit_remaining: float | None = None
    is_free_tier: bool | None = None
    rate_limit: KeyRateLimit | None = None
