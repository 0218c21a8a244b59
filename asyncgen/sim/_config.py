"""Configuration of the simulator: per-model latency, limits, replies and faults."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BatchProfile", "Fault", "ModelProfile", "SimConfig"]

FaultKind = Literal[
    "status",
    "error_body",
    "malformed",
    "no_choices",
    "reset",
    "stall",
    "stream_reset",
    "stream_stall",
    "stream_truncate",
    "stream_garbage",
]


class Fault(BaseModel):
    """A failure the simulator injects into answers for one model.

    Attributes:
        kind: ``status`` (an HTTP error such as 503, 402 or 429), ``error_body`` (200
            with ``{"error": ...}``, as OpenRouter does), ``malformed`` (200, not JSON),
            ``no_choices`` (200, empty choices), ``reset`` (the connection is dropped
            before the answer completes) or ``stall`` (no answer for ``stall_seconds``);
            for streamed answers only, half-way through the text: ``stream_reset`` (the
            connection is dropped), ``stream_stall`` (silence for ``stall_seconds``),
            ``stream_truncate`` (the response ends cleanly with no finish reason and no
            ``[DONE]``, as a proxy cutting it short does) or ``stream_garbage`` (one event
            that is not UTF-8 JSON, then the rest).
        status: The HTTP status for ``status``; the error code for ``error_body``.
        code: The ``error.code`` / ``error.type`` string (e.g. ``insufficient_quota``).
        message: The error message in the body.
        retry_after: Seconds to send as Retry-After, if any.
        headers: Extra response headers (e.g. ``{"x-should-retry": "false"}``).
        first: Only the first ``first`` requests to the model fail; None means all.
        rate: Probability that a request (among those ``first``) fails.
        stall_seconds: How long a ``stall`` lasts.
        after_words: Where a ``stream_*`` fault strikes: after this many words of text
            (None: half-way, and after the first word at least).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FaultKind
    status: int = 503
    code: str | None = None
    message: str = "simulated failure"
    retry_after: float | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    first: int | None = Field(default=None, ge=0)
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    stall_seconds: float = Field(default=3600.0, ge=0.0)
    after_words: int | None = Field(default=None, ge=0)


class Limits(BaseModel):
    """The rate limits a simulated model or key enforces (see ModelProfile, KeyLimit)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    burst: float = Field(default=1.0, ge=0.0)
    limiter: Literal["bucket", "sliding", "fixed"] = "bucket"
    fixed_window: float = Field(default=60.0, gt=0.0)
    retry_header: Literal["both", "retry-after", "retry-after-ms", "none"] = "both"


class KeyLimit(Limits):
    """A rate limit on the whole key, across every model: OpenRouter's free tier, a
    self-hosted gateway, an Azure deployment serving several model names. A request is
    checked against it before its model's own limit; a refusal is a 429 like a model's.

    Attributes:
        rpm: Requests per minute for the key; beyond it, 429 with Retry-After.
        tpm: Tokens per minute for the key, charged as a model's are.
        burst: Seconds of traffic admitted at once (the ``bucket`` limiter only).
        limiter: ``bucket``, ``sliding`` or ``fixed``, as for a model (see ModelProfile).
        fixed_window: Seconds per window of the ``fixed`` limiter.
        retry_header: What its 429 carries, as for a model.
    """


class ModelProfile(Limits):
    """How one simulated model behaves.

    Attributes:
        latency: Mean seconds before answering.
        latency_spread: Answers take a uniform time in latency +/- spread (never < 0).
        rpm: Requests per minute allowed; beyond it, 429 with Retry-After.
        tpm: Tokens per minute allowed: each request is charged its prompt (4 characters
            a token) plus its max_tokens (256 if unset), then corrected to its usage.
        burst: Seconds of traffic admitted at once before the rates apply (GCRA
            tolerance): with rpm=600 and burst=1, 10 requests may arrive together.
            For the ``bucket`` limiter only.
        limiter: How rpm and tpm are enforced: ``bucket`` (GCRA with ``burst``),
            ``sliding`` (at most rpm/60 requests and tpm/60 tokens in any 1-second
            window, as OpenAI enforces per-minute limits) or ``fixed`` (rpm requests and
            tpm tokens per clock minute from the server's start, reset at each boundary;
            ``fixed_window`` shortens the window, keeping the rate).
        fixed_window: Seconds per window of the ``fixed`` limiter (60: a clock minute);
            each admits ``rpm x fixed_window / 60`` requests.
        retry_header: What a rate-limit 429 carries: ``both`` (Retry-After in whole
            seconds and retry-after-ms), ``retry-after``, ``retry-after-ms`` or ``none``.
        max_concurrency: Requests of this model allowed in flight at once; beyond it,
            429 without Retry-After (as providers with concurrency limits answer).
        tokens_per_second: Streamed answers (``stream: true``, server-sent events) send
            their words at this rate after ``latency`` (0: all at once).
        report_cost: Put ``usage.cost`` in answers (as OpenRouter does); False: leave it
            out (as OpenAI does).
        replies: Answers in turn, one per request to the model (the last repeats once
            they run out); ``{model}`` and ``{prompt}`` are filled in. Wins over ``reply``.
            For answers that go wrong N times, then right.
        reply: The answer's text; ``{model}`` and ``{prompt}`` are filled in. None
            means a short echo of the prompt.
        faults: Failures to inject, checked in order; the first that fires wins.
        price_per_token: Dollars per token, reported as ``usage.cost``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency: float = Field(default=0.0, ge=0.0)
    latency_spread: float = Field(default=0.0, ge=0.0)
    max_concurrency: int | None = Field(default=None, ge=1)
    reply: str | None = None
    replies: list[str] | None = Field(default=None, min_length=1)
    report_cost: bool = True
    tokens_per_second: float = Field(default=0.0, ge=0.0)
    faults: list[Fault] = Field(default_factory=list)
    price_per_token: float = Field(default=1e-6, ge=0.0)


class BatchProfile(BaseModel):
    """How the simulated Batch API (``/v1/files``, ``/v1/batches``) behaves.

    Attributes:
        complete_after: Seconds from a batch's creation to its end (``in_progress``
            meanwhile, its request counts growing with time).
        fail_rate: Share of requests answered with an error (HTTP 500 in the error file).
        expire_rate: Share of requests left undone: the batch ends ``expired`` and they
            are in the error file with code ``batch_expired``.
        first: Only the first ``first`` batches created fail or expire requests (None:
            every batch), for batches that go wrong once, then right.
        max_requests: Requests allowed in one batch (OpenAI: 50,000); more fails it.
        max_bytes: Bytes allowed in one uploaded file (OpenAI: 200 MB); more is a 400.
        discount: The share of the online price a batched answer costs (0.5).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    complete_after: float = Field(default=1.0, ge=0.0)
    fail_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    expire_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    first: int | None = Field(default=None, ge=0)
    max_requests: int = Field(default=50_000, ge=1)
    max_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    discount: float = Field(default=0.5, ge=0.0)


DEFAULT_MODELS = tuple(f"sim/model-{i}" for i in range(6))  # /v1/models with no profiles


class SimConfig(BaseModel):
    """The whole simulator: profiles by model id, and the account behind the key.

    Attributes:
        models: Profiles by model id; other models use ``default``. ``/v1/models`` lists
            them (with none, ``DEFAULT_MODELS``; any model id is answered either way).
        default: The profile of models not listed.
        api_key: When set, requests must carry it as a bearer token (else 401).
        credits: The account's credit limit in dollars, for ``/api/v1/key``; once the
            answers' cost reaches it, requests get 402 (0: the account is empty).
        seed: Seed for latency draws and fault rates, so runs repeat.
        batch: How the Batch API behaves.
        key_limit: A limit on the whole key across models, checked before each model's.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    models: dict[str, ModelProfile] = Field(default_factory=dict)
    default: ModelProfile = Field(default_factory=ModelProfile)
    api_key: str | None = None
    credits: float = Field(default=100.0, ge=0.0)
    seed: int = 0
    batch: BatchProfile = Field(default_factory=BatchProfile)
    key_limit: KeyLimit | None = None

    def profile(self, model: str) -> ModelProfile:
        """The profile for ``model``."""
        return self.models.get(model, self.default)
