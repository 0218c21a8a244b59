"""Settings from the environment (ASYNCGEN_*) and a TOML file, with pydantic-settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ._defaults import (
    DEFAULT_CONCURRENCY,
    DEFAULT_GRACE,
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_QUEUE_URL,
    DEFAULT_WORKER_CONCURRENCY,
)

__all__ = ["DEFAULT_SETTINGS_FILE", "Settings"]

DEFAULT_SETTINGS_FILE = "asyncgen.toml"


class Settings(BaseSettings):
    """The commands' configuration: flags win over environment variables, which win
    over the TOML file, which wins over the library's defaults.

    Every field reads ``ASYNCGEN_<FIELD>`` (e.g. ``ASYNCGEN_QUEUE_URL``), then the
    file's top-level key of the same name, then the default. ``api_key`` is a secret:
    never shown in reprs or logs.

    Attributes:
        queue_url: ``asyncgen worker``'s queue when no URL is given.
        worker_concurrency: Jobs a worker runs at once (``--concurrency``).
        worker_lease: Seconds a worker's claim lasts (``--lease``).
        worker_grace: Seconds running jobs get when a worker stops (``--grace``).
        worker_timeout: Seconds a job may run when neither its submit nor its task set
            a timeout (``--timeout``); None: no limit.
        concurrency: Requests at once for ``asyncgen run`` (``--concurrency``).
        retries: Attempts per request for ``asyncgen run`` (``--retries``).
        deadline: Seconds ``asyncgen run`` may take (``--deadline``); None: no limit.
        base_url: The OpenAI-compatible root both commands use when no ``--base-url``,
            ``--provider`` (or ``--sim``) is given.
        api_key: The key sent to ``base_url`` (``ASYNCGEN_API_KEY``).
        log_json: JSON log lines (None: JSON unless stderr is a terminal).
        log_level: The log level of both commands (None: INFO for the worker,
            WARNING for ``asyncgen run``, whose standard error shows progress).
    """

    model_config = SettingsConfigDict(env_prefix="ASYNCGEN_", extra="forbid", frozen=True)
    toml_path: ClassVar[Path] = Path(DEFAULT_SETTINGS_FILE)

    queue_url: str = Field(default=DEFAULT_QUEUE_URL, repr=False)  # may hold a password
    worker_concurrency: int = Field(default=DEFAULT_WORKER_CONCURRENCY, ge=1)
    worker_lease: float = Field(default=DEFAULT_LEASE, gt=0)
    worker_grace: float = Field(default=DEFAULT_GRACE, ge=0)
    worker_timeout: float | None = Field(default=None, gt=0)
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1)
    retries: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1)
    deadline: float | None = Field(default=None, gt=0)
    base_url: str | None = None
    api_key: SecretStr | None = None
    log_json: bool | None = None
    log_level: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_path)
        return (init_settings, env_settings, toml)

    @classmethod
    def load(cls, toml_file: str | Path | None = None, **overrides: Any) -> Settings:
        """Read the settings; ``toml_file`` defaults to ./asyncgen.toml (if present).

        Raises:
            pydantic.ValidationError: A value of the wrong type, or an unknown key.
        """
        path = Path(toml_file) if toml_file is not None else Path(DEFAULT_SETTINGS_FILE)
        bound = type("Settings", (cls,), {"toml_path": path, "__module__": cls.__module__})
        return bound(**overrides)  # type: ignore[no-any-return]
