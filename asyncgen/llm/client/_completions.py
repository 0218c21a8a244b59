"""A client's chat completions: each request from the response cache or the wire, through
the key's traffic controls, its answer typed, priced and kept.

One request reads top to bottom: the cache is asked, the traffic controls admit it, the
transport sends it, the answer (or the error the status means) is made, priced and
reported to the traffic controls, and kept in the cache.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from ...core._retry import DEFAULT_MAX_RETRY_AFTER
from ...core._tracing import begin, current, end, span, tracer
from ...limits._ratelimit import RateLimiter
from ._cache import CachedAnswers, hit
from ._mapping import error_for_reply, parse_completion
from ._models import Completion
from ._prices import PriceTable
from ._request import schema_params
from ._standing import KeyStanding
from ._stream import Stream
from ._structured import parse_with_reasks
from ._traffic import Traffic
from ._transport import StreamReply, Transport, encode_json

__all__ = ["Completions"]


class Completions:
    """The chat completions endpoint of one client (``ChatClient.chat`` and ``stream``).

    Args:
        transport: Returns this event loop's connection pool.
        url: The endpoint (``base_url + "/chat/completions"``).
        traffic: The key's traffic controls (breakers, pauses, rate limit, pacing).
        standing: Where a 402 or 401 that is the key's is kept.
        prices: Prices answers their provider sent no cost for (None: unpriced).
        answers: The response cache under the client's scope (None: no cache).
    """

    def __init__(
        self,
        transport: Callable[[], Transport],
        url: str,
        *,
        traffic: Traffic,
        standing: KeyStanding,
        prices: PriceTable | None,
        answers: CachedAnswers | None,
    ) -> None:
        self.transport = transport
        self.url = url
        self.traffic = traffic
        self.standing = standing
        self.prices = prices
        self.answers = answers
        self._address = urlsplit(url)  # the server, for the request spans

    async def create(
        self,
        model: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        *,
        rate_limit: RateLimiter | None,
        max_pause: float = DEFAULT_MAX_RETRY_AFTER,
    ) -> Completion:
        """One request: from the cache, or sent (see ``ChatClient.chat_limited``)."""
        key, found = await self.look_up(model, messages, params)
        if found is not None:
            return hit(found)
        if tracer() is None:  # the hot path pays one check when nothing traces
            completion = await self._sent(model, messages, params, rate_limit, max_pause)
        else:
            with span(f"chat {model}", self._asked(model, params), kind="CLIENT") as sending:
                completion = await self._sent(model, messages, params, rate_limit, max_pause)
                if sending is not None:
                    sending.set_attributes(_answered(completion))
        if self.answers is not None and key is not None:
            await self.answers.store(key, completion)
        return completion

    async def _sent(
        self,
        model: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        rate_limit: RateLimiter | None,
        max_pause: float,
    ) -> Completion:
        self.transport()  # opened before the rate limiter books (see open_transport)
        ticket = await self.traffic.admit(model, messages, params, rate_limit, max_pause=max_pause)
        completion: Completion | None = None
        headers = None
        error: BaseException | None = None
        try:
            body = encode_json({"model": model, "messages": messages, **params})
            began = time.perf_counter()
            reply = await self.transport().send("POST", self.url, body, what=model)
            latency = time.perf_counter() - began
            headers = reply.headers
            if reply.status >= 300:
                raise error_for_reply(reply, model)
            completion = parse_completion(reply, model=model, latency=latency)
            if self.prices is not None:  # the table's price, when the provider sent none
                completion = self.prices.priced(completion, model)
        except BaseException as exc:
            error = exc
            self.standing.note(exc)
            raise
        finally:
            self.traffic.finish(ticket, headers=headers, completion=completion, error=error)
        return completion

    def _asked(self, model: str, params: dict[str, Any]) -> dict[str, Any]:
        """A request span's attributes (OpenTelemetry's GenAI conventions)."""
        address = self._address
        return {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": params.get("max_tokens"),
            "gen_ai.request.temperature": params.get("temperature"),
            "gen_ai.request.top_p": params.get("top_p"),
            "server.address": address.hostname,
            "server.port": address.port,
        }

    async def parse(
        self,
        model: str,
        messages: list[dict[str, Any]],
        response_model: type[BaseModel],
        params: dict[str, Any],
        *,
        max_reasks: int,
        rate_limit: RateLimiter | None,
    ) -> Completion:
        """A request whose answer must be ``response_model``: re-asked with the errors
        at most ``max_reasks`` times, usage summed (see ``ChatClient.chat``)."""
        wire = schema_params(response_model, params)
        answers: list[Completion] = []

        async def ask(conversation: list[dict[str, Any]]) -> Completion:
            answers.append(await self.create(model, conversation, wire, rate_limit=rate_limit))
            return answers[-1]

        parsed = await parse_with_reasks(
            response_model, model, max_reasks, messages, await ask(messages), ask
        )
        usage = answers[0].usage
        for answer in answers[1:]:
            usage = usage + answer.usage
        return answers[-1].model_copy(update={"parsed": parsed, "usage": usage})

    async def look_up(
        self, model: str, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> tuple[str | None, Completion | None]:
        """The request's cache key (None without a cache) and its stored answer, if any;
        counted in the client's statistics."""
        if self.answers is None:
            return None, None
        key, found = await self.answers.lookup(model, messages, params)
        self.traffic.note_cache(found)
        return key, found

    def stream(
        self,
        model: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        *,
        stall_timeout: float,
        rate_limit: RateLimiter | None,
        max_pause: float,
    ) -> Stream:
        """One request read as it is generated (see ``ChatClient.stream``)."""
        options = {"include_usage": True, **params.get("stream_options", {})}
        wire = {**params, "stream": True, "stream_options": options}
        body = encode_json({"model": model, "messages": messages, **wire})
        ticket: list[Any] = []
        sending: list[Any] = []  # the request's span, while tracing (ended when read)
        parent = current()  # the span the stream is made in, not the one it is read in

        @contextlib.asynccontextmanager
        async def opener() -> AsyncIterator[StreamReply]:
            self.transport()  # opened before the rate limiter books (see open_transport)
            if tracer() is not None:
                sending.append(begin(f"chat {model}", self._asked(model, params), parent=parent))
            ticket.append(
                await self.traffic.admit(model, messages, params, rate_limit, max_pause=max_pause)
            )
            async with self.transport().stream("POST", self.url, body, what=model) as reply:
                self.traffic.note_headers(model, reply.headers, max_pause=max_pause)
                yield reply

        def finished(
            completion: Completion | None, error: BaseException | None
        ) -> Completion | None:
            if completion is not None and self.prices is not None:
                completion = self.prices.priced(completion, model)
            self.standing.note(error)
            if sending:
                end(sending.pop(), _answered(completion) if completion else {}, error)
            if ticket:
                first = completion.first_token if completion is not None else None
                self.traffic.finish(
                    ticket[0], completion=completion, error=error, first_token=first
                )
            return completion

        return Stream(model, opener, stall_timeout=stall_timeout, finished=finished)


def _answered(completion: Completion) -> dict[str, Any]:
    """What a request span says of its answer."""
    finished = [completion.finish_reason] if completion.finish_reason else None
    return {
        key: value
        for key, value in {
            "gen_ai.response.model": completion.model,
            "gen_ai.response.id": completion.id,
            "gen_ai.response.finish_reasons": finished,
            "gen_ai.usage.input_tokens": completion.usage.prompt_tokens,
            "gen_ai.usage.output_tokens": completion.usage.completion_tokens,
        }.items()
        if value is not None
    }
