"""The HTTP layer's status-code mapping table, checked with respx (unit level)."""

from __future__ import annotations

import pickle
from typing import Any

import httpx
import pytest
import respx

import asyncgen
from asyncgen import ChatClient

BASE = "https://api.example.test/v1"
KEY = "sk-test-0123456789abcdefghij"
OK_BODY = {
    "id": "c1",
    "model": "m-served",
    "choices": [{"message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "cost": 0.0001},
}


def error(code: str = "x", message: str = "provider says no") -> dict[str, Any]:
    return {"error": {"message": message, "type": code, "code": code}}


CASES: list[tuple[int, dict[str, str], Any, type[Exception], bool]] = [
    # status, headers, body, error class, transient?
    (402, {}, error(), asyncgen.InsufficientCreditsError, False),
    (401, {}, error(), asyncgen.AuthenticationError, False),
    (403, {}, error(), asyncgen.AuthenticationError, False),
    (400, {}, error(), asyncgen.BadRequestError, False),
    (404, {}, error(), asyncgen.BadRequestError, False),
    (422, {}, error(), asyncgen.BadRequestError, False),
    (408, {}, error(), asyncgen.ServerError, True),
    (409, {}, error(), asyncgen.ServerError, True),
    (429, {"retry-after": "3"}, error(), asyncgen.RateLimitedError, True),
    (429, {}, error("insufficient_quota"), asyncgen.InsufficientCreditsError, False),
    (500, {}, error(), asyncgen.ServerError, True),
    (502, {}, "<html>bad gateway</html>", asyncgen.ServerError, True),
    (503, {"retry-after": "2"}, error(), asyncgen.ServerError, True),
    (504, {}, error(), asyncgen.ServerError, True),
    (400, {"x-should-retry": "true"}, error(), asyncgen.TransientError, True),
    (503, {"x-should-retry": "false"}, error(), asyncgen.PermanentError, False),
    (402, {"x-should-retry": "true"}, error(), asyncgen.InsufficientCreditsError, False),
    (200, {}, {"error": {"code": 502, "message": "upstream down"}}, asyncgen.ServerError, True),
    (200, {}, {"error": {"code": 429, "message": "busy"}}, asyncgen.RateLimitedError, True),
    (200, {}, {"error": {"code": 402, "message": "pay"}}, asyncgen.InsufficientCreditsError, False),
    (200, {}, {"error": {"code": 400, "message": "bad"}}, asyncgen.BadRequestError, False),
    (200, {}, "not json at all", asyncgen.InvalidResponseError, False),
    (200, {}, {"id": "x", "choices": []}, asyncgen.InvalidResponseError, False),
    (200, {}, {"id": "x"}, asyncgen.InvalidResponseError, False),
    (200, {}, [1, 2], asyncgen.InvalidResponseError, False),
]


def respond(status: int, headers: dict[str, str], body: Any) -> httpx.Response:
    if isinstance(body, str):
        return httpx.Response(status, headers=headers, text=body)
    return httpx.Response(status, headers=headers, json=body)


@pytest.mark.parametrize(("status", "headers", "body", "kind", "transient"), CASES)
async def test_status_table(
    status: int, headers: dict[str, str], body: Any, kind: type[Exception], transient: bool
) -> None:
    """Each answer maps to its error class, transient or permanent as the table says."""
    async with respx.mock(assert_all_called=True) as mock, ChatClient(BASE, KEY) as client:
        mock.post(f"{BASE}/chat/completions").mock(return_value=respond(status, headers, body))
        with pytest.raises(kind) as caught:
            await client.chat("m", [{"role": "user", "content": "hi"}])
    assert isinstance(caught.value, asyncgen.TransientError) is transient
    assert KEY not in str(caught.value)


async def test_success_parses_text_usage_and_cost() -> None:
    """A good answer becomes a Completion with usage and the reported cost."""
    async with respx.mock() as mock, ChatClient(BASE, KEY) as client:
        route = mock.post(f"{BASE}/chat/completions").mock(
            return_value=httpx.Response(200, json=OK_BODY)
        )
        completion = await client.chat("m", [{"role": "user", "content": "hi"}], temperature=0)
    sent = route.calls.last.request
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert b'"temperature":0' in sent.content.replace(b" ", b"")
    assert (completion.text, completion.model, completion.finish_reason) == (
        "hello",
        "m-served",
        "stop",
    )
    assert completion.usage.total_tokens == 5
    assert completion.usage.cost == 0.0001
    assert completion.latency >= 0


async def test_retry_after_reaches_the_error() -> None:
    """A 429's Retry-After (seconds or milliseconds) is carried on the error."""
    async with respx.mock() as mock, ChatClient(BASE) as client:
        mock.post(f"{BASE}/chat/completions").mock(
            return_value=httpx.Response(429, headers={"retry-after-ms": "1500"}, json=error())
        )
        with pytest.raises(asyncgen.RateLimitedError) as caught:
            await client.chat("m", [{"role": "user", "content": "hi"}])
    assert caught.value.retry_after == 1.5


async def test_provider_message_is_kept_and_key_echo_masked() -> None:
    """A 400 keeps the provider's words; a key the provider echoes back is masked."""
    said = f"Invalid model. Your key {KEY} cannot use it."
    async with respx.mock() as mock, ChatClient(BASE, KEY) as client:
        mock.post(f"{BASE}/chat/completions").mock(
            return_value=httpx.Response(400, json=error(message=said))
        )
        with pytest.raises(asyncgen.BadRequestError) as caught:
            await client.chat("m", [{"role": "user", "content": "hi"}])
    assert "Invalid model" in str(caught.value)
    assert KEY not in str(caught.value)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (httpx.ReadTimeout("slow"), asyncgen.RequestTimeoutError),
        (httpx.ConnectTimeout("slow"), asyncgen.RequestTimeoutError),
        (httpx.PoolTimeout("busy"), asyncgen.RequestTimeoutError),
        (httpx.ConnectError("refused"), asyncgen.ConnectionFailedError),
        (httpx.RemoteProtocolError("dropped"), asyncgen.ConnectionFailedError),
        (httpx.ReadError("reset"), asyncgen.ConnectionFailedError),
    ],
)
async def test_transport_failures(failure: Exception, kind: type[Exception]) -> None:
    """httpx transport errors become timeouts or connection failures, chained."""
    async with respx.mock() as mock, ChatClient(BASE, KEY) as client:
        mock.post(f"{BASE}/chat/completions").mock(side_effect=failure)
        with pytest.raises(kind) as caught:
            await client.chat("m", [{"role": "user", "content": "hi"}])
    assert caught.value.__cause__ is failure


@pytest.mark.parametrize(
    ("message", "scope"),
    [
        (
            "This request requires more credits, or fewer max_tokens. You requested up to "
            "4096 tokens, but can only afford 1000.",
            "request",
        ),
        ("Insufficient credits. Add more using https://openrouter.ai/settings/credits", "key"),
    ],
)
async def test_a_402_says_whether_it_is_the_request_or_the_key(message: str, scope: str) -> None:
    """A 402 about one request's cost has scope "request" (and survives pickling)."""
    async with respx.mock(assert_all_called=True) as mock, ChatClient(BASE, KEY) as client:
        body = {"error": {"code": 402, "message": message}}
        mock.post(f"{BASE}/chat/completions").mock(return_value=respond(402, {}, body))
        with pytest.raises(asyncgen.InsufficientCreditsError) as caught:
            await client.chat("m", [{"role": "user", "content": "hi"}])
    assert caught.value.scope == scope
    assert pickle.loads(pickle.dumps(caught.value)).scope == scope
    assert (client.out_of_credits is None) is (scope == "request")
