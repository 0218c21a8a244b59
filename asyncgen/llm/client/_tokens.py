"""Estimating a request's tokens before it is sent, for the tokens-per-minute limiter."""

from __future__ import annotations

__all__ = ["DEFAULT_COMPLETION_ESTIMATE", "estimate_tokens"]

DEFAULT_COMPLETION_ESTIMATE = 256
_CHARS_PER_TOKEN = 4


def estimate_tokens(messages: list[dict[str, object]], params: dict[str, object]) -> int:
    """A cheap upper-ish estimate of a request's tokens: prompt chars / 4 plus the
    completion budget (``max_tokens`` / ``max_completion_tokens`` or 256)."""
    chars = sum(len(str(m.get("content") or "")) + 8 for m in messages)
    budget = params.get("max_tokens") or params.get("max_completion_tokens")
    completion = int(budget) if isinstance(budget, int | float) else DEFAULT_COMPLETION_ESTIMATE
    return chars // _CHARS_PER_TOKEN + 1 + completion
