"""parse_retry_after: the header table."""

from datetime import UTC, datetime

import httpx
import pytest

from asyncgen import parse_retry_after

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "0"}, 0.0),
        ({"RETRY-AFTER": " 2.5 "}, 2.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"retry-after-ms": "junk", "Retry-After": "9"}, 9.0),
        ({"Retry-After": "Sun, 22 Nov 2026 12:00:30 GMT"}, 30.0),
        ({"Retry-After": "Sun, 22 Nov 2026 11:59:00 GMT"}, 0.0),
        ({"Retry-After": "-5"}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": ""}, None),
        ({"Retry-After": "1e3"}, None),
        ({"retry-after-ms": "-1"}, None),
    ],
)
def test_table(headers: dict[str, str], expected: float | None) -> None:
    """Each header form maps to seconds, or None for garbage and negatives."""
    assert parse_retry_after(headers, now=NOW) == expected


def test_accepts_httpx_headers_and_pairs() -> None:
    """httpx.Headers and lists of pairs work like mappings."""
    assert parse_retry_after(httpx.Headers({"Retry-After": "3"})) == 3.0
    assert parse_retry_after([("Retry-After-Ms", "10")]) == 0.01


def test_http_date_uses_the_system_clock_by_default() -> None:
    """Without ``now`` a date in the far future yields a large positive delay."""
    delay = parse_retry_after({"Retry-After": "Fri, 31 Dec 2100 23:59:59 GMT"})
    assert delay is not None
    assert delay > 365 * 24 * 3600
