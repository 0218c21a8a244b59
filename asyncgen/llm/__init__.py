"""The LLM layer: the client (``client/``), the online engine (``engine/``) and runs
through the provider's Batch API (``batch_api/``).

Everything public here is re-exported from :mod:`asyncgen`.
"""

from .batch_api._generate import generate_batch as generate_batch
from .batch_api._run import BatchApiProgress as BatchApiProgress
from .client._cache import RedisCache as RedisCache
from .client._cache import ResponseCache as ResponseCache
from .client._cache import SqliteCache as SqliteCache
from .client._client import ChatClient as ChatClient
from .client._models import Completion as Completion
from .client._models import KeyInfo as KeyInfo
from .client._models import Usage as Usage
from .client._stream import Stream as Stream
from .client._traffic import ClientStatistics as ClientStatistics
from .engine._events import ClientPaused as ClientPaused
from .engine._events import Event as Event
from .engine._events import JobFailed as JobFailed
from .engine._events import JobFellBack as JobFellBack
from .engine._events import JobRetrying as JobRetrying
from .engine._events import JobStarted as JobStarted
from .engine._events import JobSucceeded as JobSucceeded
from .engine._events import JobToken as JobToken
from .engine._events import RunProgress as RunProgress
from .engine._events import legacy_progress as legacy_progress
from .engine._generate import fan_out as fan_out
from .engine._generate import generate as generate
from .engine._generate import generate_iter as generate_iter
from .engine._generate import generate_stream as generate_stream
from .engine._jobs import GenerationJob as GenerationJob
from .engine._jobs import GenerationResult as GenerationResult
