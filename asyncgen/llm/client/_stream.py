"""Streamed answers: server-sent events of chat completion chunks, as text deltas.

``ChatClient.stream(model, messages)`` returns a :class:`Stream`: iterate it for the text
as it arrives; afterwards ``stream.completion`` holds the whole answer (usage when the
provider sends it, time to first token in ``first_token``). An answer counts as whole
only when a finish reason or ``[DONE]`` arrived: a stream that simply closes is cut short
(ConnectionFailedError before any text, StreamInterruptedError after some), and an event
that is not UTF-8 JSON raises InvalidResponseError; neither is ever taken for an answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from ...core._errors import (
    AsyncGenError,
    ConnectionFailedError,
    InvalidResponseError,
    RequestTimeoutError,
    ServerError,
    StreamInterruptedError,
)
from ._mapping import error_for_status
from ._models import Completion, Usage
from ._transport import StreamReply

__all__ = ["DEFAULT_STALL_TIMEOUT", "Stream"]

DEFAULT_STALL_TIMEOUT = 30.0  # seconds without a byte before a stream counts as stalled


class Stream:
    """One streamed answer: an async iterator of text deltas (use it once).

    ``completion`` is set when the stream has ended well (None before, or after an
    error). Breaking out of the loop early closes the connection.

    Attributes:
        model: The model asked.
        completion: The whole answer once the stream is over.
        first_token: Seconds from sending the request to the first text, once known.
    """

    def __init__(
        self,
        model: str,
        opener: Callable[[], AbstractAsyncContextManager[StreamReply]],
        *,
        stall_timeout: float,
        finished: Callable[[Completion | None, BaseException | None], Completion | None],
    ) -> None:
        self.model = model
        self.completion: Completion | None = None
        self.first_token: float | None = None
        self._opener = opener
        self._stall = stall_timeout
        self._finished = finished
        self._used = False

    def __aiter__(self) -> AsyncIterator[str]:
        if self._used:
            raise RuntimeError("a Stream can be iterated once: call client.stream() again")
        self._used = True
        return self._deltas()

    async def _deltas(self) -> AsyncIterator[str]:
        began = time.perf_counter()
        parts: list[str] = []
        finish: str | None = None
        usage = Usage()
        answer_id: str | None = None
        error: BaseException | None = None
        completion: Completion | None = None
        try:
            async with self._opener() as reply:
                if reply.status >= 300:
                    raise error_for_status(
                        reply.status, reply.headers, _json(await reply.read()), model=self.model
                    )
                lines = reply.lines()
                ended = False  # a [DONE] came
                while True:
                    line = await self._next(lines)
                    if line is None:
                        break
                    chunk = _event(line, self.model)
                    if chunk is None:
                        continue
                    if chunk == "[DONE]":
                        ended = True
                        break
                    answer_id = answer_id or chunk.get("id")
                    if isinstance(chunk.get("usage"), dict):
                        usage = Usage.model_validate(chunk["usage"])
                    for choice in _choices(chunk, self.model):
                        delta = _content(choice, self.model)
                        finish = choice.get("finish_reason") or finish
                        if finish == "error":
                            raise ServerError(
                                f"{self.model}: the stream ended with an error", status=502
                            )
                        if delta:
                            if self.first_token is None:
                                self.first_token = time.perf_counter() - began
                            parts.append(delta)
                            yield delta
                if not ended and finish is None:
                    raise _cut_short(self.model, len(parts))
            completion = Completion(
                text="".join(parts),
                finish_reason=finish,
                usage=usage,
                model=self.model,
                latency=time.perf_counter() - began,
                id=answer_id,
                first_token=self.first_token,
            )
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.completion = self._finished(completion, error)

    async def _next(self, lines: AsyncIterator[bytes]) -> bytes | None:
        """The next line, or None at the end; silence longer than the stall timeout is
        a RequestTimeoutError (transient)."""
        try:
            return await asyncio.wait_for(anext(lines), self._stall)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise RequestTimeoutError(
                f"{self.model}: the stream went silent for {self._stall:g} s (stall_timeout)"
            ) from None


def _cut_short(model: str, pieces: int) -> AsyncGenError:
    """A stream that closed with no finish reason and no ``[DONE]``: the answer is not
    whole. Before any text it is a broken connection (retried); after some, the caller
    has the half it was given: StreamInterruptedError."""
    said = "the stream ended with no finish reason and no [DONE]"
    if not pieces:
        return ConnectionFailedError(f"{model}: {said}, before any text")
    return StreamInterruptedError(
        f"{model}: {said} after {pieces} piece(s) of text: the answer is incomplete"
    )


def _choices(chunk: dict[str, Any], model: str) -> list[dict[str, Any]]:
    choices = chunk.get("choices") or []
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise InvalidResponseError(f"{model}: a stream event's choices are not a list of objects")
    return choices


def _content(choice: dict[str, Any], model: str) -> str | None:
    delta = choice.get("delta") or {}
    content = delta.get("content") if isinstance(delta, dict) else None
    if not isinstance(delta, dict) or not isinstance(content, str | None):
        raise InvalidResponseError(f"{model}: a stream event's delta is not text")
    return content


def _event(line: bytes, model: str) -> Any:
    """A ``data:`` line's JSON (or "[DONE]"); None for comments, blank and other lines.

    Raises:
        InvalidResponseError: The line is not UTF-8, or its data is not a JSON object.
    """
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise InvalidResponseError(
            f"{model}: a stream event is not UTF-8 (byte {exc.start}): {line[:80]!r}"
        ) from None
    if not text.startswith("data:"):
        return None
    data = text[5:].strip()
    if data == "[DONE]":
        return data
    try:
        chunk = json.loads(data)
    except ValueError:
        raise InvalidResponseError(f"{model}: a stream event is not JSON: {data[:80]!r}") from None
    if isinstance(chunk, dict) and "error" in chunk:  # an error sent mid-stream
        error = chunk["error"] if isinstance(chunk["error"], dict) else {}
        status = error.get("code") if isinstance(error.get("code"), int) else 502
        raise ServerError(
            f"{model}: error mid-stream: {error.get('message', chunk['error'])}", status=status
        )
    if not isinstance(chunk, dict):
        raise InvalidResponseError(f"{model}: a stream event is not an object")
    return chunk


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return {}
