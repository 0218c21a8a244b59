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

__all__ = ["DEFAULT_SETTINGS_FILE", "Settings"]

DEFAULT_SETTINGS_FILE = "asyncgen.toml"


class Settings(BaseSettings):
    """asyncgen's configuration: environment variables win over the TOML file.

    Every field reads ``ASYNCGEN_<FIELD>`` (e.g. ``ASYNCGEN_QUEUE_URL``), then the
    file's top-level key of the same name, then the default. ``api_key`` is a secret:
    never shown in reprs or logs.
    """

    model_config = SettingsConfigDict(env_prefix="ASYNCGEN_", extra="forbid", frozen=True)
    toml_path: ClassVar[Path] = Path(DEFAULT_SETTINGS_FILE)

    queue_url: str = Field(default="sqlite:///asyncgen-jobs.db", repr=False)  # may hold a password
    worker_concurrency: int = Field(default=4, ge=1)
    worker_lease: float = Field(default=30.0, gt=0)
    worker_grace: float = Field(default=10.0, ge=0)
    concurrency: int = Field(default=6, ge=1)
    retries: int = Field(default=3, ge=1)
    deadline: float = Field(default=400.0, gt=0)
    base_url: str | None = None
    api_key: SecretStr | None = None
    log_json: bool | None = None
    log_level: str = "INFO"

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
