"""Settings: environment over TOML over defaults; secrets stay secret."""

from pathlib import Path

import pydantic
import pytest

from asyncgen import Settings


def test_defaults_without_file_or_environment(tmp_path: Path) -> None:
    """With nothing set, the documented defaults apply."""
    settings = Settings.load(tmp_path / "missing.toml")
    assert (settings.queue_url, settings.worker_concurrency) == ("sqlite:///asyncgen-jobs.db", 4)


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ASYNCGEN_* variables override the TOML file, which overrides defaults."""
    path = tmp_path / "asyncgen.toml"
    path.write_text('queue_url = "memory://"\nworker_concurrency = 2\nretries = 5\n')
    monkeypatch.setenv("ASYNCGEN_WORKER_CONCURRENCY", "9")
    settings = Settings.load(path)
    assert (settings.queue_url, settings.worker_concurrency, settings.retries) == (
        "memory://", 9, 5,
    )  # fmt: skip


def test_api_key_is_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key is a SecretStr: readable on purpose, masked in reprs."""
    monkeypatch.setenv("ASYNCGEN_API_KEY", "sk-settings-secret-123")
    settings = Settings.load(tmp_path / "none.toml")
    assert "sk-settings-secret-123" not in repr(settings)
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "sk-settings-secret-123"


def test_bad_values_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    """A wrong type or a misspelt key in the file is a validation error naming it."""
    path = tmp_path / "asyncgen.toml"
    path.write_text("worker_concurency = 3\n")
    with pytest.raises(pydantic.ValidationError, match="worker_concurency"):
        Settings.load(path)
    path.write_text('worker_concurrency = "many"\n')
    with pytest.raises(pydantic.ValidationError, match="worker_concurrency"):
        Settings.load(path)
