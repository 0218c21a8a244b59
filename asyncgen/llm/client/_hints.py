"""Reading providers' rate-limit headers: how long to hold new requests back."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Literal

__all__ = ["parse_duration", "pause_from_headers"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str) -> float | None:
    """Seconds in an OpenAI reset duration such as "1s", "6m0s", "20ms" or "1h2m3.5s".

    A plain number counts as seconds. Returns None for anything else.
    """
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def pause_from_headers(
    headers: Mapping[str, str], *, now: float | None = None
) -> tuple[float, Literal["model", "key"]] | None:
    """Seconds to hold new requests because the provider says the budget is spent, and
    for what: None when nothing says to wait.

    OpenAI: ``x-ratelimit-remaining-requests`` / ``-tokens`` at 0 with the matching
    ``x-ratelimit-reset-*`` duration. OpenRouter: ``X-RateLimit-Remaining`` at 0 with
    ``X-RateLimit-Reset`` in epoch milliseconds. OpenAI's headers are per model
    ("model"), OpenRouter's per key ("key"); when both say wait, the key-wide one wins.
    """
    if _int(headers.get("x-ratelimit-remaining")) == 0:
        reset_ms = _int(headers.get("x-ratelimit-reset"))
        if reset_ms is not None:
            current = time.time() if now is None else now
            return max(0.0, reset_ms / 1000.0 - current), "key"
    waits = []
    for kind in ("requests", "tokens"):
        if _int(headers.get(f"x-ratelimit-remaining-{kind}")) == 0:
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}", ""))
            if reset is not None:
                waits.append(reset)
    return (max(waits), "model") if waits else None
