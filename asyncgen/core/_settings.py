"""Settings from the environment (ASYNCGEN_*) and a TOML or YAML file, with pydantic-settings."""

from __future__ import annotations

from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from ._defaults import (
    DEFAULT_CONCURRENCY,
    DEFAULT_GRACE,
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_QUEUE_URL,
    DEFAULT_WORKER_CONCURRENCY,
)

__all__ = ["DEFAULT_SETTINGS_FILE", "SETTINGS_FILES", "Settings", "find_settings_file"]

DEFAULT_SETTINGS_FILE = "asyncgen.toml"
SETTINGS_FILES = ("asyncgen.toml", "asyncgen.yaml", "asyncgen.yml")  # looked for in ./
_YAML_SUFFIXES = (".yaml", ".yml")


def find_settings_file(folder: Path | None = None) -> Path:
    """The settings file in ``folder`` (default: the current one): asyncgen.toml,
    asyncgen.yaml or asyncgen.yml; asyncgen.toml when there is none.

    Raises:
        ValueError: More than one of them is there (which one wins would be a guess).
    """
    base = folder or Path()
    present = [base / name for name in SETTINGS_FILES if (base / name).is_file()]
    if len(present) > 1:
        names = " and ".join(str(path) for path in present)
        raise ValueError(f"found {names}: keep one settings file (same keys in each format)")
    return present[0] if present else base / DEFAULT_SETTINGS_FILE


class Settings(BaseSettings):
    """The commands' configuration: flags win over environment variables, which win
    over the settings file (``asyncgen.toml``, or ``asyncgen.yaml`` with PyYAML:
    ``asyncgen[yaml]``), which wins over the library's defaults.

    Every field reads ``ASYNCGEN_<FIELD>`` (e.g. ``ASYNCGEN_QUEUE_URL``), then the
    file's top-level key of the same name, then the default. ``api_key`` is a secret:
    read only from ``ASYNCGEN_API_KEY`` (a file holding it is refused), never shown in
    reprs or logs.

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
        path = cls.toml_path
        if path.suffix.lower() not in _YAML_SUFFIXES:
            return (init_settings, env_settings, _TomlSource(settings_cls, path))
        try:
            import yaml  # noqa: F401 - pydantic-settings' YAML source needs it
        except ImportError:
            raise ImportError(
                f"{path} is YAML, which needs PyYAML: pip install 'asyncgen[yaml]' "
                "(or use asyncgen.toml, same keys)"
            ) from None
        return (init_settings, env_settings, _YamlSource(settings_cls, path))

    @classmethod
    def load(cls, file: str | Path | None = None, **overrides: Any) -> Settings:
        """Read the settings from the environment and ``file`` (TOML, or YAML by its
        .yaml/.yml suffix); by default ./asyncgen.toml, ./asyncgen.yaml or
        ./asyncgen.yml, whichever is there (none is fine).

        Raises:
            pydantic.ValidationError: A value of the wrong type, or an unknown key.
            ValueError: More than one default file, a file that is not UTF-8, TOML or
                YAML, nests too deeply, is not a mapping of keys to values, or holds
                ``api_key`` (a key belongs in ``ASYNCGEN_API_KEY``, never in a file);
                each message names the file.
            ImportError: A YAML file without PyYAML installed.
        """
        path = Path(file) if file is not None else find_settings_file()
        bound = type("Settings", (cls,), {"toml_path": path, "__module__": cls.__module__})
        return bound(**overrides)  # type: ignore[no-any-return]


def _checked(path: Path | Traversable, data: object) -> dict[str, Any]:
    """A settings file's parsed content, refused unless it is a mapping without secrets."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: the top level must be keys and values (queue_url: ...), "
            f"got a {type(data).__name__}"
        )
    if "api_key" in data:
        raise ValueError(
            f"{path}: api_key must not be kept in a file (files get copied, shared and "
            "committed): set ASYNCGEN_API_KEY in the environment and remove the key"
        )
    return data


def _unreadable(path: Path | Traversable, exc: BaseException) -> ValueError:
    if isinstance(exc, UnicodeDecodeError):
        return ValueError(f"{path}: not UTF-8 text (byte {exc.start}): save it as UTF-8")
    if isinstance(exc, RecursionError):
        return ValueError(f"{path}: nested too deeply (settings are one level of keys)")
    return ValueError(f"{path}: not valid {'YAML' if _is_yaml(path) else 'TOML'}: {exc}")


def _is_yaml(path: Path | Traversable) -> bool:
    return Path(str(path)).suffix.lower() in _YAML_SUFFIXES


class _TomlSource(TomlConfigSettingsSource):
    """pydantic-settings' TOML source; a file that cannot be read says which and why."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls, toml_file=path)

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        import tomllib

        try:
            with file_path.open("rb") as stream:
                data = tomllib.load(stream)
        except (UnicodeDecodeError, RecursionError, tomllib.TOMLDecodeError) as exc:
            raise _unreadable(file_path, exc) from None
        return _checked(file_path, data)


class _YamlSource(YamlConfigSettingsSource):
    """pydantic-settings' YAML source, with a file that is not a mapping refused clearly
    (it would be read as no settings, or fail with a TypeError)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls, yaml_file=path)

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        import yaml

        try:
            with file_path.open(encoding="utf-8") as stream:
                data = yaml.safe_load(stream)
        except (UnicodeDecodeError, RecursionError, yaml.YAMLError) as exc:
            raise _unreadable(file_path, exc) from None
        return _checked(file_path, data)
