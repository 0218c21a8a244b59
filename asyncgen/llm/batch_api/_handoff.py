"""How a Batch API run hands its answers on: each request's end once, checked against the
run's response_model, priced, put in the response cache, and counted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ...core._errors import AsyncGenError, ValidationFailedError
from ..client._cache import cache_key, hit
from ..client._client import ChatClient
from ..client._models import Completion
from ..client._structured import parse_answer
from ..engine._jobs import GenerationJob, GenerationResult
from ._lines import completion_of, item_error, line_fingerprint, request_line

__all__ = ["BatchOutcome", "Handoff"]

STORE_EVERY = 256  # answers put in the response cache together


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """One request's end: its answer, or the error it ended with."""

    id: str
    model: str
    fingerprint: str
    completion: Completion | None
    error: AsyncGenError | None
    attempts: int
    parsed: Any = None  # the answer as the run's response_model, when it has one


class Handoff:
    """Hands each request's end on to ``on_outcome``, once.

    Args:
        client: Its response cache answers jobs before they are submitted and keeps
            the answers read; its price table prices answers the provider sent no cost
            for (at the batch discount).
        on_outcome: Called with each request's end.
        skip: Ids handed on in an earlier run: not handed on again.
        response_model: A pydantic model every answer must be, or None.
    """

    def __init__(
        self,
        client: ChatClient,
        on_outcome: Callable[[BatchOutcome], None],
        *,
        skip: set[str],
        response_model: type[BaseModel] | None,
    ) -> None:
        self.client = client
        self.response_model = response_model
        self.done = 0  # requests handed on
        self.failed = 0  # ... of them with an error
        self.cached = 0  # ... answered from the response cache, never submitted
        self._on_outcome = on_outcome
        self._skip = skip
        self._stores: list[tuple[str, Completion]] = []  # answers for the cache, to write

    async def not_cached(self, jobs: Iterable[GenerationJob]) -> AsyncIterator[dict[str, Any]]:
        """The jobs' request lines, less those the client's response cache answers (those
        are handed on at once, at a cost of 0)."""
        for job in jobs:
            line = request_line(job)
            if self.client.answers is not None:
                body = dict(line["body"])
                model, messages = str(body.pop("model")), body.pop("messages")
                _, found = await self.client.look_up(model, messages, body)
                if found is not None:
                    completion, parsed, error = self.checked(hit(found), model)
                    if error is None:  # a stored answer that does not fit is asked again
                        self.cached += 1
                        await self.emit(job.id, line_fingerprint(line), completion, parsed, None, 0)
                        continue
            yield line

    def verdict(
        self, item: dict[str, Any], model: str
    ) -> tuple[Completion | None, Any, AsyncGenError | None]:
        """An output or error file's record as (answer, parsed answer, error)."""
        error = item_error(item)
        if error is not None:
            return None, None, error
        completion = self._priced(completion_of(item["response"]["body"], model))
        return self.checked(completion, model)

    def checked(
        self, completion: Completion, model: str
    ) -> tuple[Completion | None, Any, AsyncGenError | None]:
        """An answer parsed into the run's response_model (when it has one)."""
        if self.response_model is None:
            return completion, None, None
        try:
            return completion, parse_answer(self.response_model, model, completion), None
        except ValidationFailedError as exc:
            return completion, None, exc

    async def emit(
        self,
        custom_id: str,
        where: tuple[str, str],
        completion: Completion | None,
        parsed: Any,
        error: AsyncGenError | None,
        attempts: int,
    ) -> None:
        """Hand on a request's end read from a batch (``where``: its model, fingerprint)."""
        if custom_id in self._skip:
            return
        model, fingerprint = where
        if self.client.answers is not None and completion is not None and not completion.cached:
            self._stores.append((cache_key(self.client.cache_scope, fingerprint), completion))
            if len(self._stores) >= STORE_EVERY:
                await self.flush()
        self._hand_on(
            BatchOutcome(custom_id, model, fingerprint, completion, error, attempts, parsed)
        )

    def answered_online(
        self, result: GenerationResult, where: tuple[str, str], rounds: int
    ) -> None:
        """Hand on a request sent again online (after ``rounds`` batch rounds)."""
        if result.job.id in self._skip:
            return
        error = result.error if isinstance(result.error, AsyncGenError) else None
        model, fingerprint = where
        attempts = rounds + result.attempts
        self._hand_on(
            BatchOutcome(
                result.job.id, model, fingerprint, result.completion, error, attempts, result.parsed
            )
        )

    async def flush(self) -> None:
        """Put the answers read so far into the client's response cache."""
        answers = self.client.answers
        stores, self._stores = self._stores, []
        if answers is not None:
            for key, completion in stores:
                await answers.store(key, completion)

    def _hand_on(self, outcome: BatchOutcome) -> None:
        self.done += 1
        self.failed += outcome.error is not None
        self._on_outcome(outcome)

    def _priced(self, completion: Completion) -> Completion:
        """The provider's cost, or the price table's at the batch discount (when the
        ``prices`` extra is installed); else unknown."""
        table = self.client.prices
        return (
            completion if table is None else table.priced(completion, completion.model, batch=True)
        )
