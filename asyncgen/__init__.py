"""asyncgen: run many LLM generation requests at once, fast and safely.

Bounded, ordered concurrency with partial-failure tolerance, jittered retries that
honour Retry-After and deadlines, blocking twins for sync code, and structured logs
that never show a secret.

Names are imported on first use (``asyncgen.generate`` loads the LLM layer, ``open_queue``
the queue, neither loads Redis until a Redis URL is opened), so ``import asyncgen`` and
the ``asyncgen`` command start quickly. Each public name is written once, in the block
below: type checkers read it as ordinary imports, and at run time it is read (not run)
to learn where each name lives and what ``__all__`` holds.
"""

import ast as _ast
import importlib as _importlib
import types as _types
import typing as _typing

if _typing.TYPE_CHECKING:  # the public names: this block is the only list of them
    from . import sync as sync
    from .chat._background import BackgroundStats as BackgroundStats
    from .chat._background import BackgroundTasks as BackgroundTasks
    from .chat._background import BackgroundTasksFull as BackgroundTasksFull
    from .chat._background import BlockingBackgroundTasks as BlockingBackgroundTasks
    from .chat._background import TaskFailure as TaskFailure
    from .chat._conversation import Conversation as Conversation
    from .chat._conversation import ConversationLog as ConversationLog
    from .chat._conversation import conversation as conversation
    from .core._bridge import blocking as blocking
    from .core._errors import AsyncGenError as AsyncGenError
    from .core._errors import AuthenticationError as AuthenticationError
    from .core._errors import BadRequestError as BadRequestError
    from .core._errors import BatchNotFoundError as BatchNotFoundError
    from .core._errors import BudgetExceededError as BudgetExceededError
    from .core._errors import CircuitOpenError as CircuitOpenError
    from .core._errors import ConnectionFailedError as ConnectionFailedError
    from .core._errors import DeadlineExceededError as DeadlineExceededError
    from .core._errors import InsufficientCreditsError as InsufficientCreditsError
    from .core._errors import InvalidKeyError as InvalidKeyError
    from .core._errors import InvalidResponseError as InvalidResponseError
    from .core._errors import JobFailedError as JobFailedError
    from .core._errors import JobTimeoutError as JobTimeoutError
    from .core._errors import PermanentError as PermanentError
    from .core._errors import RateLimitedError as RateLimitedError
    from .core._errors import ReplicationError as ReplicationError
    from .core._errors import RequestTimeoutError as RequestTimeoutError
    from .core._errors import ResultNotStorableError as ResultNotStorableError
    from .core._errors import ServerError as ServerError
    from .core._errors import StoreError as StoreError
    from .core._errors import StreamInterruptedError as StreamInterruptedError
    from .core._errors import TransientError as TransientError
    from .core._errors import UnsupportedServerError as UnsupportedServerError
    from .core._errors import ValidationFailedError as ValidationFailedError
    from .core._errors import WorkerCrashedError as WorkerCrashedError
    from .core._gather import gather_bounded as gather_bounded
    from .core._gather import map_bounded as map_bounded
    from .core._logging import configure_logging as configure_logging
    from .core._logging import mask_secrets as mask_secrets
    from .core._logging import redact_secrets as redact_secrets
    from .core._outcome import Outcome as Outcome
    from .core._retry import RetryCaller as RetryCaller
    from .core._retry import RetryPolicy as RetryPolicy
    from .core._retry import retry as retry
    from .core._retry import retrying as retrying
    from .core._retry_after import parse_retry_after as parse_retry_after
    from .core._settings import Settings as Settings
    from .limits._adaptive import AdaptiveConcurrency as AdaptiveConcurrency
    from .limits._breaker import CircuitBreaker as CircuitBreaker
    from .limits._ratelimit import RateLimiter as RateLimiter
    from .limits._shared_limit import SharedRateLimiter as SharedRateLimiter
    from .llm import BatchApiProgress as BatchApiProgress
    from .llm import ChatClient as ChatClient
    from .llm import ClientPaused as ClientPaused
    from .llm import ClientStatistics as ClientStatistics
    from .llm import Completion as Completion
    from .llm import Event as Event
    from .llm import GenerationJob as GenerationJob
    from .llm import GenerationResult as GenerationResult
    from .llm import JobFailed as JobFailed
    from .llm import JobFellBack as JobFellBack
    from .llm import JobRetrying as JobRetrying
    from .llm import JobStarted as JobStarted
    from .llm import JobSucceeded as JobSucceeded
    from .llm import JobToken as JobToken
    from .llm import KeyInfo as KeyInfo
    from .llm import RedisCache as RedisCache
    from .llm import ResponseCache as ResponseCache
    from .llm import RunProgress as RunProgress
    from .llm import SqliteCache as SqliteCache
    from .llm import Stream as Stream
    from .llm import Usage as Usage
    from .llm import fan_out as fan_out
    from .llm import generate as generate
    from .llm import generate_batch as generate_batch
    from .llm import generate_iter as generate_iter
    from .llm import generate_stream as generate_stream
    from .llm import legacy_progress as legacy_progress
    from .queue import JobQueue as JobQueue
    from .queue import JobRecord as JobRecord
    from .queue import JobState as JobState
    from .queue import QueueStatistics as QueueStatistics
    from .queue import Worker as Worker
    from .queue import open_queue as open_queue
    from .queue import open_worker as open_worker

__version__ = "0.1.0"


def _public_names() -> dict[str, str]:
    """Each public name and the module that defines it, read from the block above."""
    with open(__file__, encoding="utf-8") as source:
        tree = _ast.parse(source.read())
    block = next(node for node in tree.body if isinstance(node, _ast.If))
    names: dict[str, str] = {}
    for node in block.body:
        if isinstance(node, _ast.ImportFrom):
            where = "." * node.level + (node.module or "")
            for alias in node.names:
                names[alias.asname or alias.name] = where
    return names


_EXPORTS = _public_names()
__all__ = sorted([*_EXPORTS, "__version__"])


if not _typing.TYPE_CHECKING:  # type checkers see the imports above, and a typo is an error

    def __getattr__(name: str) -> _typing.Any:
        where = _EXPORTS.get(name)
        if where is None:
            raise AttributeError(f"module 'asyncgen' has no attribute {name!r}")
        if where == "." and name == "sync":
            value = _importlib.import_module(".sync", __name__)
        else:
            value = getattr(_importlib.import_module(where, __name__), name)
        # Public classes and functions report the public module, as httpx does, so reprs
        # and docs say asyncgen.X rather than a private module.
        private = getattr(value, "__module__", "").startswith("asyncgen.")
        if isinstance(value, type | _types.FunctionType) and private:
            value.__module__ = "asyncgen"
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
