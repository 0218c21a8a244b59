"""Reading a server's wish for how long to wait before retrying."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["parse_retry_after"]

_NUMBER = re.compile(r"^\s*\d+(\.\d+)?\s*$")

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def parse_retry_after(headers: Headers, *, now: datetime | None = None) -> float | None:
    """Return how many seconds the server asked us to wait, or None if it did not say.

    ``retry-after-ms`` (milliseconds, as OpenAI sends) wins over ``Retry-After``, which
    may be seconds (integer or decimal) or an HTTP date. Header names are matched without
    regard to case. Garbage, negative numbers, NaN and infinity count as not said; a
    date already past means 0.

    Args:
        headers: Response headers: a mapping (``httpx.Headers`` included) or pairs.
        now: The current time for HTTP dates; None means the system clock.

    Returns:
        Seconds to wait, or None.
    """
    found = _lowered(headers)
    millis = _seconds(found.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    value = found.get("retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    return seconds if seconds is not None else _date_delay(value, now)


def _lowered(headers: Headers) -> dict[str, str]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return {str(k).lower(): str(v) for k, v in pairs}


def _seconds(value: str | None) -> float | None:
    if value is None or not _NUMBER.match(value):
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) else None


def _date_delay(value: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means GMT too
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())
