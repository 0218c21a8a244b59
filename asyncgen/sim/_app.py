"""The simulator's ASGI app: an OpenAI-compatible API with latency, limits and faults."""

from __future__ import annotations

import asyncio
import collections
import json
import math
import random
import re
import time
import urllib.parse
import uuid
from collections import Counter
from typing import Any

from ._asgi import (
    Receive,
    Reset,
    Scope,
    Send,
    event,
    json_reply,
    raw_reply,
    read_body,
    retry_headers,
)
from ._batches import BatchStore, parse_multipart
from ._config import DEFAULT_MODELS, Fault, Limits, ModelProfile, SimConfig
from ._limits import Admitted, Limiter, estimate_charge, make_limiter
from ._schema import example, schema_of

__all__ = ["SimApp"]

_BATCH_ROUTE = re.compile(r"/(?P<kind>files|batches)(?:/(?P<id>[\w-]+))?(?:/(?P<action>\w+))?$")


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


class SimApp:
    """An OpenAI-compatible ASGI app for tests, demos and benchmarks.

    Routes: ``POST .../chat/completions``, ``GET .../models``, ``GET /api/v1/key``
    (OpenRouter's credits endpoint), the Batch API (``.../files``, ``.../batches``: see
    ``_batches.py``), and for tests ``GET /sim/stats``,
    ``POST /sim/reset`` and ``POST /sim/config`` (replace the configuration).
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self._reset_state()

    def _reset_state(self) -> None:
        self.rng = random.Random(self.config.seed)
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.http_versions: Counter[str] = Counter()
        self.limiters: dict[str, Limiter] = {}
        key = self.config.key_limit  # the whole key's limiter, when it has a limit
        self.key_limiter = make_limiter(key.limiter) if key is not None else None
        self.in_flight = 0
        self.max_in_flight = 0
        self.model_in_flight: Counter[str] = Counter()
        self.spent = 0.0
        self.answered: Counter[str] = Counter()  # 200 answers per model (for replies)
        self.bodies: collections.deque[dict[str, Any]] = collections.deque(maxlen=50)
        self.batches = BatchStore()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"].rstrip("/"), scope["method"]
        body = await read_body(receive)
        if method == "POST" and path.endswith("/chat/completions"):
            await self._chat(scope, body, send)
        elif method == "GET" and path.endswith("/models"):
            served = list(self.config.models) or list(DEFAULT_MODELS)
            data = [{"id": m, "object": "model", "owned_by": "sim"} for m in served]
            await json_reply(send, 200, {"object": "list", "data": data})
        elif method == "GET" and path.endswith("/key"):
            await json_reply(send, 200, {"data": self._key_info()})
        elif (batches := _BATCH_ROUTE.search(path)) is not None:
            await self._batch_api(scope, method, batches, body, send)
        elif path == "/sim/stats":
            await json_reply(send, 200, self.stats())
        elif method == "POST" and path == "/sim/reset":
            self._reset_state()
            await json_reply(send, 200, {"reset": True})
        elif method == "POST" and path == "/sim/config":
            self.config = SimConfig.model_validate_json(body)
            self._reset_state()
            await json_reply(send, 200, {"configured": True})
        else:
            await json_reply(send, 404, {"error": {"message": f"no route {method} {path}"}})

    async def _batch_api(
        self, scope: Scope, method: str, route: re.Match[str], body: bytes, send: Send
    ) -> None:
        """Files and batches (see ``_batches.py``)."""
        if not self._authorized(scope):
            await self._error(send, 401, "invalid_api_key", "invalid API key")
            return
        kind, item, action = route.group("kind"), route.group("id"), route.group("action")
        store, config = self.batches, self.config
        if kind == "files" and method == "POST" and item is None:
            headers: dict[bytes, bytes] = dict(scope["headers"])
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            status, payload = store.upload(parse_multipart(body, content_type), config)
            await json_reply(send, status, payload)
        elif kind == "files" and method == "GET" and item and action == "content":
            data = store.files.get(item)
            if data is None:
                await json_reply(send, 404, {"error": {"message": f"no file {item}"}})
            else:
                await raw_reply(send, 200, data, {"content-type": "application/jsonl"})
        elif kind == "batches" and method == "POST" and item is None:
            if self.spent >= config.credits:
                await self._error(
                    send, 402, "insufficient_quota", "You exceeded your current quota: add credits"
                )
                return
            status, payload = store.create(json.loads(body or b"{}"), config)
            await json_reply(send, status, payload)
        elif kind == "batches" and method == "GET" and item is None:
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode())
            limit, after = int(query.get("limit", ["20"])[0]), query.get("after", [None])[0]
            await json_reply(send, 200, store.listing(limit, after))
        elif kind == "batches" and item and action in (None, "cancel"):
            found = (
                store.cancel(item, config)
                if method == "POST" and action == "cancel"
                else store.retrieve(item, config, self._batch_answer)
            )
            if found is None:
                await json_reply(send, 404, {"error": {"message": f"no batch {item}"}})
            else:
                await json_reply(send, 200, store.view(found))
        else:
            await json_reply(
                send, 404, {"error": {"message": f"no route {method} {route.group(0)}"}}
            )

    def _batch_answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """One batched request's answer, charged at the batch discount."""
        model = str(request.get("model"))
        messages = request.get("messages") or [{}]
        prompt = str(messages[-1].get("content", "")) if isinstance(messages[-1], dict) else ""
        profile = self.config.profile(model)
        completion = self._completion(model, prompt, profile, schema_of(request))
        usage = completion["usage"]
        cost = usage["total_tokens"] * self.config.profile(model).price_per_token
        self.spent -= cost * (1 - self.config.batch.discount)
        return completion

    def stats(self) -> dict[str, Any]:
        """Counts of chat requests received, by model and by answer status."""
        return {
            "batches_created": self.batches.created,
            "batches_cancelled": self.batches.cancelled,
            "total": sum(self.requests.values()),
            "requests": dict(self.requests),
            "statuses": dict(self.statuses),
            "http_versions": dict(self.http_versions),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "spent": round(self.spent, 8),
            "last_requests": list(self.bodies),
        }

    def _key_info(self) -> dict[str, Any]:
        rpm = self.config.default.rpm
        return {
            "label": "asyncgen-sim",
            "limit": self.config.credits,
            "usage": round(self.spent, 8),
            "limit_remaining": round(self.config.credits - self.spent, 8),
            "is_free_tier": False,
            "rate_limit": {"requests": rpm or 1000, "interval": "1m"},
        }

    def _authorized(self, scope: Scope) -> bool:
        if self.config.api_key is None:
            return True
        headers: dict[bytes, bytes] = dict(scope["headers"])
        return headers.get(b"authorization", b"") == f"Bearer {self.config.api_key}".encode()

    async def _chat(self, scope: Scope, body: bytes, send: Send) -> None:
        try:
            request = json.loads(body)
            model = str(request["model"])
            stream = bool(request.get("stream"))
            messages = request["messages"]
            prompt = str(messages[-1].get("content", "")) if messages else ""
            cost = estimate_charge(messages, request)
            schema = schema_of(request)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            await self._error(send, 400, "invalid_request_error", "body needs model and messages")
            return
        self.requests[model] += 1
        self.bodies.append(request)
        self.http_versions[str(scope.get("http_version", "1.1"))] += 1
        if not self._authorized(scope):
            await self._error(send, 401, "invalid_api_key", "invalid API key")
            return
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self._answer(model, prompt, send, cost, stream=stream, schema=schema)
        finally:
            self.in_flight -= 1

    async def _answer(
        self,
        model: str,
        prompt: str,
        send: Send,
        cost: int,
        *,
        stream: bool = False,
        schema: dict[str, Any] | None = None,
    ) -> None:
        if self.spent >= self.config.credits:  # the account is empty, as OpenRouter says
            await self._error(
                send,
                402,
                "insufficient_credits",
                "Insufficient credits: add more at /settings/credits",
            )
            return
        profile = self.config.profile(model)
        if profile.max_concurrency is not None:
            if self.model_in_flight[model] >= profile.max_concurrency:
                await self._error(send, 429, "concurrency_exceeded", "too many requests at once")
                return
            self.model_in_flight[model] += 1
            try:
                await self._limited(model, prompt, profile, send, cost, stream, schema)
            finally:
                self.model_in_flight[model] -= 1
            return
        await self._limited(model, prompt, profile, send, cost, stream, schema)

    async def _limited(
        self,
        model: str,
        prompt: str,
        profile: ModelProfile,
        send: Send,
        cost: int,
        stream: bool = False,
        schema: dict[str, Any] | None = None,
    ) -> None:
        key, key_admitted = self.config.key_limit, None
        if key is not None and self.key_limiter is not None:  # first, as a gateway does
            key_admitted = await self._admit(self.key_limiter, key, cost, send, "key ")
            if key_admitted is None:
                return
        limiter = self.limiters.get(model)
        if limiter is None:
            limiter = self.limiters[model] = make_limiter(profile.limiter)
        admitted = await self._admit(limiter, profile, cost, send, "")
        if admitted is None:
            return
        fault = self._fault(model, profile)
        mid_stream = fault if fault is not None and fault.kind.startswith("stream_") else None
        if mid_stream is not None:  # only a streamed answer can break half-way
            fault = None
        # Failures take the model's time too, as a real upstream's 503 does.
        delay = profile.latency + profile.latency_spread * (2 * self.rng.random() - 1)
        await asyncio.sleep(max(0.0, delay))
        if fault is not None and fault.kind == "stall":
            await asyncio.sleep(fault.stall_seconds)
        elif fault is not None:
            await self._inject(send, fault)
            return
        completion = self._completion(model, prompt, profile, schema)
        limiter.correct(profile, admitted, completion["usage"]["total_tokens"] - cost)
        if key is not None and self.key_limiter is not None and key_admitted is not None:
            self.key_limiter.correct(key, key_admitted, completion["usage"]["total_tokens"] - cost)
        if stream:
            await self._stream(send, completion, profile, mid_stream)
        else:
            await json_reply(send, 200, completion)

    async def _admit(
        self, limiter: Limiter, limits: Limits, cost: int, send: Send, whose: str
    ) -> Admitted | None:
        """Admit a request under ``limits``, or answer 429 with its Retry-After (None)."""
        admitted = limiter.check(limits, cost, time.monotonic())
        if isinstance(admitted, Admitted):
            return admitted
        headers = retry_headers(limits.retry_header, admitted)
        await self._error(send, 429, "rate_limit_exceeded", f"{whose}rate limited", headers)
        return None

    async def _stream(
        self, send: Send, completion: dict[str, Any], profile: ModelProfile, fault: Fault | None
    ) -> None:
        """The answer as server-sent events: one chunk per word, at the profile's rate;
        a usage chunk, then [DONE]."""
        text = completion["choices"][0]["message"]["content"]
        words = re.findall(r"\S+\s*|\s+", text) or [""]
        head = {key: completion[key] for key in ("id", "created", "model")}
        head["object"] = "chat.completion.chunk"
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        gap = 1.0 / profile.tokens_per_second if profile.tokens_per_second else 0.0
        strikes = None if fault is None else fault.after_words
        if fault is not None and strikes is None:
            strikes = max(1, len(words) // 2)
        for number, word in enumerate(words):
            if fault is not None and number == strikes:
                self.statuses[fault.kind.replace("_", "-")] += 1
                if fault.kind == "stream_stall":
                    await asyncio.sleep(fault.stall_seconds)
                elif fault.kind == "stream_truncate":  # a clean end, but too early
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                elif fault.kind == "stream_garbage":
                    body = b'data: {"choices": [{"delta": {"content": "\xff\xfe"}}]}\n\n'
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                else:
                    raise Reset("simulated connection reset mid-stream")
            delta = {"content": word} if number else {"role": "assistant", "content": word}
            await event(
                send, {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            )
            if gap and number < len(words) - 1:
                await asyncio.sleep(gap)
        await event(send, {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        await event(send, {**head, "choices": [], "usage": completion["usage"]})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    def _fault(self, model: str, profile: ModelProfile) -> Fault | None:
        for fault in profile.faults:
            if fault.first is not None and self.requests[model] > fault.first:
                continue
            if fault.rate >= 1.0 or self.rng.random() < fault.rate:
                return fault
        return None

    async def _inject(self, send: Send, fault: Fault) -> None:
        headers = dict(fault.headers)
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        if fault.kind == "status":
            await self._error(send, fault.status, fault.code or "sim_error", fault.message, headers)
        elif fault.kind == "error_body":
            error = {"code": fault.code or fault.status, "message": fault.message}
            await json_reply(send, 200, {"error": error}, headers)
            self.statuses["200-error"] += 1
        elif fault.kind == "malformed":
            await raw_reply(send, 200, b'{"choices": [ {"message": tru', headers)
            self.statuses["200-malformed"] += 1
        elif fault.kind == "no_choices":
            await json_reply(send, 200, {"id": "sim-empty", "choices": []}, headers)
            self.statuses["200-empty"] += 1
        else:
            self.statuses["reset"] += 1
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"1000")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"id"', "more_body": True})
            raise Reset("simulated connection reset")

    async def _error(
        self,
        send: Send,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.statuses[str(status)] += 1
        body = {"error": {"message": message, "type": code, "code": code}}
        await json_reply(send, status, body, headers)

    def _completion(
        self, model: str, prompt: str, profile: ModelProfile, schema: dict[str, Any] | None
    ) -> dict[str, Any]:
        self.statuses["200"] += 1
        turn = self.answered[model]
        self.answered[model] += 1
        template = (
            profile.replies[min(turn, len(profile.replies) - 1)]
            if profile.replies
            else profile.reply
        )
        if template is not None:
            text = template.replace("{model}", model).replace("{prompt}", prompt)
        elif schema is not None:  # asked for structured output: an object that fits
            text = json.dumps(example(schema))
        else:
            text = f"[{model}] {prompt[:120]}"
        prompt_tokens, completion_tokens = _tokens(prompt), _tokens(text)
        cost = (prompt_tokens + completion_tokens) * profile.price_per_token
        self.spent += cost
        return {
            "id": f"sim-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                **({"cost": round(cost, 10)} if profile.report_cost else {}),
            },
        }
