"""The LLM layer: an OpenAI-compatible client, job models, generate and fan_out.

Everything public here is re-exported from :mod:`asyncgen`.
"""

from ._batch_api import BatchApiProgress as BatchApiProgress
from ._batch_api import generate_batch as generate_batch
from ._cache import RedisCache as RedisCache
from ._cache import ResponseCache as ResponseCache
from ._cache import SqliteCache as SqliteCache
from ._client import ChatClient as ChatClient
from ._events import BatchProgress as BatchProgress
from ._events import ClientPaused as ClientPaused
from ._events import Event as Event
from ._events import JobFailed as JobFailed
from ._events import JobFellBack as JobFellBack
from ._events import JobRetrying as JobRetrying
from ._events import JobStarted as JobStarted
from ._events import JobSucceeded as JobSucceeded
from ._events import JobToken as JobToken
from ._events import legacy_progress as legacy_progress
from ._generate import fan_out as fan_out
from ._generate import generate as generate
from ._generate import generate_iter as generate_iter
from ._generate import generate_stream as generate_stream
from ._models import Completion as Completion
from ._models import GenerationJob as GenerationJob
from ._models import GenerationResult as GenerationResult
from ._models import KeyInfo as KeyInfo
from ._models import Usage as Usage
from ._stream import Stream as Stream
from ._traffic import ClientStatistics as ClientStatistics

__all__ = [
    "BatchApiProgress",
    "BatchProgress",
    "ChatClient",
    "ClientPaused",
    "ClientStatistics",
    "Completion",
    "Event",
    "GenerationJob",
    "GenerationResult",
    "JobFailed",
    "JobFellBack",
    "JobRetrying",
    "JobStarted",
    "JobSucceeded",
    "JobToken",
    "KeyInfo",
    "RedisCache",
    "ResponseCache",
    "SqliteCache",
    "Stream",
    "Usage",
    "fan_out",
    "generate",
    "generate_batch",
    "generate_iter",
    "generate_stream",
    "legacy_progress",
]
