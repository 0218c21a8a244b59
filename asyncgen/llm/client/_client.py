"""ChatClient: one pooled HTTP client for an OpenAI-compatible API, failures typed."""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

import structlog
from pydantic import BaseModel

from ...core._bridge import run_blocking
from ...core._errors import (
    AsyncGenError,
    InsufficientCreditsError,
    InvalidKeyError,
)
from ...core._retry import DEFAULT_MAX_RETRY_AFTER
from ...limits._adaptive import (
    DEFAULT_MAX_CONCURRENCY,
    AdaptiveConcurrency,
)
from ...limits._breaker import DEFAULT_COOL_DOWN, DEFAULT_FAILURE_THRESHOLD, CircuitBreaker
from ...limits._pacing import PacingStatistics
from ...limits._ratelimit import RateLimiter
from ._backends import Pools
from ._batches import DEFAULT_FILE_TIMEOUT, BatchApi
from ._cache import CachedAnswers, ResponseCache, open_cache
from ._completions import Completions
from ._keys import clean_api_key
from ._mapping import json_of_reply
from ._models import Completion, KeyInfo
from ._pauses import Pause
from ._presets import preset_arguments
from ._prices import price_table_for
from ._standing import KeyStanding
from ._stream import DEFAULT_STALL_TIMEOUT, Stream
from ._traffic import ClientStatistics, Traffic
from ._transport import Options, Transport

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_KEEPALIVE",
    "DEFAULT_TIMEOUT",
    "ChatClient",
]

DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 10
DEFAULT_FALLBACK_AFTER = 30.0  # seconds of 429 pause after which a job moves on
DEFAULT_MAX_KEEPALIVE = 5

_log = structlog.get_logger("asyncgen.client")


class ChatClient:
    """A client for one OpenAI-compatible API and one key, shared by every job on it.

    Use it as an async context manager, or hold one and call :meth:`aclose` (or
    :meth:`close` from sync code) when done; it opens its connection pool on first use.
    Each event loop that uses the client gets its own pool, so one client serves both
    async code and the blocking twins in ``asyncgen.sync``.

    Args:
        base_url: The API root, e.g. ``https://openrouter.ai/api/v1``.
        api_key: Sent as a bearer token; never shown in reprs, logs or errors.
        timeout: Seconds for a whole request (read, write, pool).
        connect_timeout: Seconds to establish a connection.
        max_connections: The most connections open at once.
        max_keepalive: The most idle connections kept for reuse.
        http2: Use HTTP/2 when the server offers it (TLS, by ALPN).
        headers: Extra headers for every request (e.g. OpenRouter's ``HTTP-Referer``).
        backend: ``httpx`` (default; HTTP/2 capable) or ``aiohttp``: aiohttp's HTTP/1.1
            connection pool, used directly, several times cheaper in CPU per request at
            high concurrency (``pip install 'asyncgen[fast]'``).
        verify: TLS verification: True (system CAs), a CA bundle path, an SSLContext, or
            False (never for real providers).
        rate_limit: A RateLimiter for everything sent with this key.
        breaker_failures: Consecutive transient failures of one model that open its
            circuit (its jobs then fail fast with CircuitOpenError).
        breaker_cool_down: Seconds an open circuit waits before letting one probe through.
        provider: "openrouter", "openai", "deepseek" or None; set by the presets.
        fallbacks: Default fallback models per model (``{"a": ["b", "c"]}``), for jobs
            that name none (see GenerationJob.fallbacks).
        fallback_after: A model paused (by a 429) for longer than this many seconds is
            given up for the job's next fallback, if it has one.
        prices: Price answers whose provider reports no cost from the ``genai-prices``
            table (None: when it is installed, ``asyncgen[prices]``; True: require it).
        cache: Answer identical requests from a response cache instead of sending them:
            ``"sqlite:///cache.db"``, ``"redis://host:6379/0"`` or a ResponseCache (see
            ``asyncgen.llm.client._cache``). Off by default; hits and misses in statistics.
        cache_scope: Which API the cache keys name (default: ``base_url``, since the same
            model name elsewhere is another model). Give a fixed name for a server whose
            URL changes between runs but whose answers may be shared (the simulator on a
            random port: ``asyncgen run --sim`` uses ``"asyncgen-sim"``).

    Raises:
        ValueError: For a base URL that is not http(s), non-positive limits, or an API key
            with spaces, control or non-ASCII characters inside (white space around it,
            such as a ``\\r`` left by a Windows ``.env`` file, is stripped).
        ImportError: ``backend="aiohttp"`` without the ``fast`` extra installed.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_keepalive: int = DEFAULT_MAX_KEEPALIVE,
        http2: bool = True,
        headers: Mapping[str, str] | None = None,
        backend: Literal["httpx", "aiohttp"] = "httpx",
        verify: ssl.SSLContext | str | bool = True,
        rate_limit: RateLimiter | None = None,
        breaker_failures: int = DEFAULT_FAILURE_THRESHOLD,
        breaker_cool_down: float = DEFAULT_COOL_DOWN,
        provider: str | None = None,
        fallbacks: Mapping[str, Sequence[str]] | None = None,
        fallback_after: float = DEFAULT_FALLBACK_AFTER,
        prices: bool | None = None,
        cache: str | ResponseCache | None = None,
        cache_scope: str | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._api_key = clean_api_key(api_key)
        self.timeout = timeout
        self.http2 = http2 and backend == "httpx"
        self.backend = backend
        wire_headers = {"Accept": "application/json", **(headers or {})}
        if self._api_key:
            wire_headers["Authorization"] = f"Bearer {self._api_key}"
        # One connection pool per event loop (see Pools).
        self._pools = Pools(
            backend,
            Options(
                headers=wire_headers,
                timeout=timeout,
                connect_timeout=connect_timeout,
                max_connections=max_connections,
                max_keepalive=max_keepalive,
                verify=verify,
                http2=self.http2,
            ),
        )
        # What the key's answers said of it: a 402 or 401 that stops unstarted jobs.
        self.standing = KeyStanding(self.base_url)
        self.provider = provider
        self.fallbacks = {model: list(others) for model, others in (fallbacks or {}).items()}
        if not fallback_after >= 0:
            raise ValueError(f"fallback_after must be >= 0 seconds, got {fallback_after}")
        self.fallback_after = fallback_after
        # The price table that prices answers whose provider sent no cost (None: off).
        self.prices = price_table_for(prices, provider, self.base_url)
        self._seeded = False
        self.cache = open_cache(cache) if cache is not None else None
        self.cache_scope = cache_scope if cache_scope is not None else self.base_url
        # The response cache under this client's scope (None: no cache).
        self.answers = (
            CachedAnswers(self.cache, self.cache_scope) if self.cache is not None else None
        )
        # The provider's Batch API (files and batches) on this client's transport.
        self.batches = BatchApi(
            self.transport, self.base_url, timeout=max(timeout, DEFAULT_FILE_TIMEOUT)
        )
        self._traffic = Traffic(
            rate_limit=rate_limit,
            breaker_failures=breaker_failures,
            breaker_cool_down=breaker_cool_down,
        )
        # The chat completions endpoint: what chat, chat_limited and stream send through.
        self.completions = Completions(
            self.transport,
            f"{self.base_url}/chat/completions",
            traffic=self._traffic,
            standing=self.standing,
            prices=self.prices,
            answers=self.answers,
        )

    # -- presets -------------------------------------------------------------------

    @classmethod
    def openrouter(cls, api_key: str | None = None, **kwargs: Any) -> ChatClient:
        """A client for OpenRouter: key and URL as :func:`preset_arguments` finds them
        ($OPENROUTER_API_KEY; $OPENROUTER_BASE_URL, else OpenRouter's own URL).

        Raises:
            ValueError: No key given or set, for OpenRouter's own URL.
        """
        base_url, key, options = preset_arguments("openrouter", api_key, kwargs)
        return cls(base_url, key, **options)

    @classmethod
    def openai(cls, api_key: str | None = None, **kwargs: Any) -> ChatClient:
        """A client for OpenAI: key and URL as :func:`preset_arguments` finds them
        ($OPENAI_API_KEY; $OPENAI_BASE_URL, else OpenAI's own URL).

        Raises:
            ValueError: No key given or set, for OpenAI's own URL.
        """
        base_url, key, options = preset_arguments("openai", api_key, kwargs)
        return cls(base_url, key, **options)

    @classmethod
    def deepseek(cls, api_key: str | None = None, **kwargs: Any) -> ChatClient:
        """A client for DeepSeek: key and URL as :func:`preset_arguments` finds them
        ($DEEPSEEK_API_KEY; $DEEPSEEK_BASE_URL, else DeepSeek's own URL).

        Raises:
            ValueError: No key given or set, for DeepSeek's own URL.
        """
        base_url, key, options = preset_arguments("deepseek", api_key, kwargs)
        return cls(base_url, key, **options)

    # -- lifecycle -----------------------------------------------------------------

    @property
    def has_api_key(self) -> bool:
        """True when a key is set (the key itself is never exposed)."""
        return self._api_key is not None

    @property
    def open_pools(self) -> int:
        """Connection pools open now: one per event loop that sent through this client
        and has not closed it (:meth:`aclose` on that loop). An app's shutdown should
        leave 0."""
        return self._pools.open_count()

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        extra = f", backend={self.backend!r}" if self.backend != "httpx" else ""
        return f"ChatClient(base_url={self.base_url!r}, api_key=<{key}>{extra})"

    def transport(self) -> Transport:
        """This event loop's connection pool, opened on first use: chat, streams and the
        Batch API (:attr:`batches`) all go through it."""
        return self._pools.current()

    async def __aenter__(self) -> ChatClient:
        self.transport()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close this event loop's connection pool (and its cache connection)."""
        await self._pools.close_current()
        if self.cache is not None:
            await self.cache.aclose()

    def close(self) -> None:
        """Close the pool used by the blocking twins (``asyncgen.sync``), from sync code."""
        run_blocking(self.aclose)

    # -- low balance ---------------------------------------------------------------

    @property
    def out_of_credits(self) -> InsufficientCreditsError | None:
        """The 402 that stopped this client's unstarted jobs, or None."""
        return self.standing.out_of_credits

    def clear_out_of_credits(self) -> None:
        """Let jobs start again after a 402 (e.g. once credits were added)."""
        self.standing.out_of_credits = None

    @property
    def key_refused(self) -> InvalidKeyError | None:
        """The 401 that stopped this client's unstarted jobs (a batch's), or None."""
        return self.standing.key_refused

    def clear_key_refused(self) -> None:
        """Let jobs start again after a 401 (e.g. once the key was fixed)."""
        self.standing.key_refused = None

    # -- requests ------------------------------------------------------------------

    async def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        response_model: type[BaseModel] | None = None,
        max_reasks: int = 2,
        **params: Any,
    ) -> Completion:
        """Send one chat completion request and return the answer.

        With ``response_model`` the answer must be that pydantic model: its JSON schema
        is sent, the answer parsed into ``completion.parsed``, and an answer that does
        not fit re-asked with the errors at most ``max_reasks`` times (usage summed), as
        for ``GenerationJob(response_model=...)``; then ValidationFailedError.

        The request first passes the client's traffic controls: the model's circuit
        breaker, any pause ordered by a 429 or by rate-limit headers, the RateLimiter,
        and adaptive concurrency when a batch runs with ``concurrency="auto"``.

        Args:
            model: The model id.
            messages: OpenAI-style chat messages.
            response_model: A pydantic model the answer must be (see above).
            max_reasks: Re-asks after an answer that does not fit ``response_model``.
            **params: Extra request fields (temperature, max_tokens, ...).

        Raises:
            TransientError: Rate limits, 5xx, timeouts, dropped connections, garbage.
            PermanentError: 402 (add credits), 401/403, other 4xx, an open circuit.
        """
        if response_model is None:
            return await self.completions.create(
                model, messages, params, rate_limit=self.rate_limit
            )
        return await self.completions.parse(
            model,
            messages,
            response_model,
            params,
            max_reasks=max_reasks,
            rate_limit=self.rate_limit,
        )

    async def chat_limited(
        self,
        model: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        *,
        rate_limit: RateLimiter | None,
        max_pause: float = DEFAULT_MAX_RETRY_AFTER,
    ) -> Completion:
        """:meth:`chat` through a given RateLimiter (None: no rate limit) rather than the
        client's own: a batch's ``rate_limit=``.

        ``max_pause`` caps how long a Retry-After or rate-limit header may hold this
        client's other requests (a batch passes its policy's ``max_retry_after``).
        """
        return await self.completions.create(
            model, messages, params, rate_limit=rate_limit, max_pause=max_pause
        )

    async def look_up(
        self, model: str, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> tuple[str | None, Completion | None]:
        """Look a request up in the response cache, counted in :meth:`statistics`.

        Returns:
            The request's cache key (None without a cache) and the stored answer, if any.
        """
        return await self.completions.look_up(model, messages, params)

    def stream(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
        rate_limit: RateLimiter | None = None,
        max_pause: float = DEFAULT_MAX_RETRY_AFTER,
        **params: Any,
    ) -> Stream:
        """Send one chat request and read the answer as it is generated.

        ``async for delta in client.stream(model, messages): ...`` yields the text as it
        arrives; afterwards ``stream.completion`` is the whole answer (usage when the
        provider sends it: asked for with ``stream_options.include_usage``; time to first
        token in ``first_token``). It passes the same traffic controls as :meth:`chat`
        (breaker, pauses, ``rate_limit`` or the client's). Errors are typed as for
        :meth:`chat`; a stream that sends nothing for ``stall_timeout`` seconds raises
        RequestTimeoutError.
        Not retried here: a caller that has shown part of an answer decides.
        """
        if not stall_timeout > 0:
            raise ValueError(f"stall_timeout must be > 0 seconds, got {stall_timeout}")
        return self.completions.stream(
            model,
            messages,
            params,
            stall_timeout=stall_timeout,
            rate_limit=rate_limit or self.rate_limit,
            max_pause=max_pause,
        )

    # -- traffic -------------------------------------------------------------------

    @property
    def rate_limit(self) -> RateLimiter | None:
        """The RateLimiter every request on this client passes, or None."""
        return self._traffic.rate_limit

    def paused(self, model: str) -> Pause | None:
        """The pause holding new requests to ``model`` now (its own or the key's), or None."""
        return self._traffic.pauses.current(model)

    def pacing(self, model: str | None = None) -> PacingStatistics | None:
        """What ``concurrency="auto"`` learned of ``model``'s rate, or None if never paced.

        With no model: the whole key's pace (its rate is None until 429s showed that the
        key, not a model, is limited: three in a row from quiet models, or key-wide
        rate-limit headers); ``key_limited()`` says whether it paces now.
        """
        if model is None:
            return self._traffic.key.pacer.statistics()
        pacer = self._traffic.pacers.get(model)
        return pacer.statistics() if pacer is not None else None

    def key_limited(self) -> bool:
        """Whether ``concurrency="auto"`` takes the key as limited now (its pace binds every
        model); the evidence fades after a minute without a 429."""
        return self._traffic.key.limited

    def breaker(self, model: str) -> CircuitBreaker:
        """The circuit breaker guarding ``model`` on this client."""
        return self._traffic.breaker(model)

    def adaptive_concurrency(self, maximum: int = DEFAULT_MAX_CONCURRENCY) -> AdaptiveConcurrency:
        """Turn on AIMD concurrency for this client (once) and return it."""
        return self._traffic.adapt(maximum)

    async def seed_concurrency(self) -> None:
        """Seed adaptive concurrency from the key's advertised rate limit, once.

        Only on OpenRouter clients (``provider="openrouter"``); a failure to read the
        key info is logged and ignored: AIMD then starts from its default.
        """
        if self.provider != "openrouter" or self._seeded:
            return
        self._seeded = True
        try:
            info = await self.key_info()
        except AsyncGenError as exc:
            _log.warning("key_info_unavailable", error=str(exc))
            return
        if info.rate_limit is not None:
            self._traffic.adapt().seed(info.rate_limit.per_second())

    def count_retry(self) -> None:
        """Count a retry made by a job on this client (for statistics)."""
        self._traffic.count_retry()

    def statistics(self) -> ClientStatistics:
        """A frozen snapshot: requests, 429s, retries, concurrency, tokens, cost."""
        return self._traffic.statistics()

    async def key_info(self) -> KeyInfo:
        """The key's credit limit, usage and rate limit (OpenRouter's ``/key`` endpoint).

        Raises:
            AsyncGenError: As for :meth:`chat` (e.g. BadRequestError where unsupported).
        """
        payload = await self.get_json("/key")
        return KeyInfo.model_validate(payload.get("data", payload))

    async def get_json(self, path: str) -> Any:
        """GET ``base_url + path`` and return its JSON (e.g. ``/models``).

        Raises:
            AsyncGenError: Mapped like :meth:`chat`.
        """
        reply = await self.transport().send("GET", f"{self.base_url}{path}", None, what=path)
        return json_of_reply(reply, path)
