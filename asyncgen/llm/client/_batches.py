"""The provider's Batch API as a resource of the client: ``client.batches``.

:class:`BatchApi` calls ``/files`` and ``/batches`` through its ChatClient's own
transport (the same pool, backend, key and TLS settings as its chat requests; statuses
mapped to errors by the same rules), transient failures retried with backoff; a create
that failed in transit is looked for by its marker before it is tried again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ...core._errors import (
    InvalidResponseError,
    TransientError,
)
from ...core._retry import RetryPolicy, retry
from ._mapping import error_for_reply, json_of_reply
from ._transport import Reply, StreamReply, Transport, byte_lines, encode_json

__all__ = [
    "DEFAULT_FILE_TIMEOUT",
    "ENDPOINT",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "TERMINAL",
    "BatchApi",
]

MAX_BATCH_REQUESTS = 50_000  # OpenAI's limit per batch
MAX_BATCH_BYTES = 190 * 1024 * 1024  # under OpenAI's 200 MB per file
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
ENDPOINT = "/v1/chat/completions"
DEFAULT_FILE_TIMEOUT = 300.0  # seconds per read or write of a file or batch call
_POLICY = RetryPolicy(max_attempts=6, base_delay=1.0, max_delay=30.0)  # files and batches


class BatchApi:
    """The provider's files and batches endpoints (its Batch API), as ``client.batches``.

    Every call goes through the client's transport (the pool of the running event loop,
    either backend), so it needs no closing of its own: closing the client closes it.

    Args:
        transport: Returns the transport to send on (``ChatClient.transport``).
        base_url: The API's root (``https://api.openai.com/v1``).
        retry: How calls are retried (default: 6 attempts, backoff from 1 s to 30 s).
        timeout: Seconds for each read or write of a call (default 300, or the client's
            timeout when longer): uploads and file downloads take longer than an answer.
    """

    def __init__(
        self,
        transport: Callable[[], Transport],
        base_url: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_FILE_TIMEOUT,
    ) -> None:
        self.policy = retry if retry is not None else _POLICY
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._transport = transport

    def with_retry(self, policy: RetryPolicy | None) -> BatchApi:
        """The same endpoints with calls retried by ``policy`` (None: the default)."""
        return BatchApi(self._transport, self.base_url, retry=policy, timeout=self.timeout)

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        """One call, retried on transient errors (429, 5xx, timeouts) with backoff."""
        return await retry(self._json_once, method, path, body, policy=self.policy)

    async def _json_once(self, method: str, path: str, body: Any = None) -> Any:
        content = encode_json(body) if body is not None else None
        reply = await self._transport().send(
            method, f"{self.base_url}{path}", content, what=path, read_timeout=self.timeout
        )
        return json_of_reply(reply, path)

    async def upload(self, path: Path) -> str:
        """Upload a request file (read as it is sent); return its id."""

        async def once() -> Any:
            reply = await self._transport().upload(
                f"{self.base_url}/files",
                {"purpose": "batch"},
                path,
                content_type="application/jsonl",
                what="/files",
                read_timeout=self.timeout,
            )
            return json_of_reply(reply, "/files")

        reply = await retry(once, policy=self.policy)
        return str(reply["id"])

    async def create(self, file_id: str, marker: str) -> dict[str, Any]:
        """Create a batch, once: a create that failed in transit may have been made,
        so before trying again the batch is looked for by its marker."""
        body = {
            "input_file_id": file_id,
            "endpoint": ENDPOINT,
            "completion_window": "24h",
            "metadata": {"asyncgen_marker": marker},
        }

        async def once() -> dict[str, Any]:
            found = await self.find(marker)
            if found is not None:
                return found
            reply: dict[str, Any] = await self._json_once("POST", "/batches", body)
            return reply

        try:
            reply: dict[str, Any] = await self._json_once("POST", "/batches", body)
        except TransientError:
            return await retry(once, policy=self.policy)
        return reply

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        reply: dict[str, Any] = await self._json("GET", f"/batches/{batch_id}")
        return reply

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        reply: dict[str, Any] = await self._json("POST", f"/batches/{batch_id}/cancel")
        return reply

    async def find(self, marker: str, *, pages: int = 10) -> dict[str, Any] | None:
        """The batch created with ``marker``, among the newest ``pages`` x 100."""
        after = None
        for _ in range(pages):
            query = urlencode({"limit": 100, **({"after": after} if after else {})})
            page = await self._json("GET", f"/batches?{query}")
            for batch in page.get("data", []):
                if (batch.get("metadata") or {}).get("asyncgen_marker") == marker:
                    return dict(batch)
            if not page.get("has_more"):
                return None
            after = page.get("last_id")
        return None

    @contextlib.asynccontextmanager
    async def _file(self, file_id: str) -> AsyncIterator[StreamReply]:
        """A provider file's content as a streamed answer (errors mapped)."""
        path = f"/files/{file_id}/content"
        url = f"{self.base_url}{path}"
        opened = self._transport().stream(
            "GET", url, None, what=path, accept="*/*", read_timeout=self.timeout
        )
        async with opened as reply:
            if reply.status >= 300:
                raise error_for_reply(Reply(reply.status, reply.headers, await reply.read()), path)
            yield reply

    async def content(self, file_id: str) -> AsyncIterator[bytes]:
        """A provider file's bytes, streamed."""
        async with self._file(file_id) as reply:
            async for chunk in reply.chunks():
                yield chunk

    async def lines(self, file_id: str) -> AsyncIterator[dict[str, Any]]:
        """The records of a provider file, one at a time (streamed).

        Raises:
            InvalidResponseError: A line that is not a UTF-8 JSON object (never skipped:
                its request would be lost without a word).
        """
        async with self._file(file_id) as reply:
            number = 0
            # split here, not by the backend: aiohttp's readline refuses lines over
            # 128 KiB, and an output line holds a whole answer
            async for raw in byte_lines(reply.chunks()):
                number += 1
                if raw.strip():
                    yield _record(raw, file_id, number)


def _record(raw: bytes, file_id: str, number: int) -> dict[str, Any]:
    """One line of a provider's output or error file as its JSON object."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidResponseError(
            f"/files/{file_id}: line {number} is not UTF-8 JSON ({exc}): {raw[:80]!r}"
        ) from None
    if not isinstance(record, dict):
        raise InvalidResponseError(f"/files/{file_id}: line {number} is not a JSON object")
    return record
