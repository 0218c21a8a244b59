"""Settings: environment over the TOML or YAML file over defaults; secrets stay secret."""

import subprocess
from pathlib import Path

import pydantic
import pytest

from asyncgen import Settings
from tests.processes import asyncgen_argv


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
        "memory://",
        9,
        5,
    )


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


YAML = """\
# asyncgen.yaml: the same keys as asyncgen.toml
queue_url: redis://127.0.0.1:6379/0?queue=llm
worker_concurrency: 8
worker_lease: 45
worker_grace: 20
worker_timeout: 300
concurrency: 32
retries: 4
deadline: 600
base_url: https://openrouter.ai/api/v1
log_json: true
log_level: INFO
"""


class TestYaml:
    def test_a_yaml_file_gives_the_same_fields(self, tmp_path: Path) -> None:
        path = tmp_path / "asyncgen.yaml"
        path.write_text(YAML)
        settings = Settings.load(path)
        assert (settings.queue_url, settings.worker_concurrency, settings.worker_lease) == (
            "redis://127.0.0.1:6379/0?queue=llm",
            8,
            45.0,
        )
        assert (settings.worker_timeout, settings.deadline, settings.log_json) == (300, 600, True)

    def test_environment_wins_over_yaml(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "asyncgen.yml"
        path.write_text("worker_concurrency: 2\nretries: 5\n")
        monkeypatch.setenv("ASYNCGEN_WORKER_CONCURRENCY", "9")
        settings = Settings.load(path)
        assert (settings.worker_concurrency, settings.retries) == (9, 5)
        assert settings.concurrency == Settings.model_fields["concurrency"].default

    def test_found_beside_toml_but_never_both(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "asyncgen.yaml").write_text("retries: 7\n")
        assert Settings.load().retries == 7
        (tmp_path / "asyncgen.toml").write_text("retries = 6\n")
        with pytest.raises(ValueError, match="keep one settings file"):
            Settings.load()

    def test_bad_value_and_unknown_key_name_the_key(self, tmp_path: Path) -> None:
        path = tmp_path / "asyncgen.yaml"
        path.write_text("worker_concurrency: many\n")
        with pytest.raises(pydantic.ValidationError, match="worker_concurrency"):
            Settings.load(path)
        path.write_text("worker_type: celery\n")
        with pytest.raises(pydantic.ValidationError, match="worker_type"):
            Settings.load(path)

    def test_not_a_mapping_or_not_yaml(self, tmp_path: Path) -> None:
        path = tmp_path / "asyncgen.yaml"
        path.write_text("- queue_url\n- memory://\n")
        with pytest.raises(ValueError, match="the top level must be keys and values"):
            Settings.load(path)
        path.write_text("queue_url: [unclosed\n")
        with pytest.raises(ValueError, match="not valid YAML"):
            Settings.load(path)

    def test_the_cli_names_the_file_and_the_key(self, tmp_path: Path) -> None:
        path = tmp_path / "asyncgen.yaml"
        path.write_text("worker_lease: -1\n")
        done = subprocess.run(
            asyncgen_argv("worker", "memory://", "--settings", str(path)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert str(path) in done.stderr
        assert "worker_lease" in done.stderr
        assert "Traceback" not in done.stderr

    def test_the_documented_file_is_a_valid_settings_file(self, tmp_path: Path) -> None:
        readme = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
        block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
        path = tmp_path / "asyncgen.yaml"
        path.write_text(block)
        settings = Settings.load(path)
        assert settings.worker_concurrency == 8
        assert settings.api_key is None


class TestUnreadableFiles:
    """A settings file that cannot be settings is one line naming it, never a traceback."""

    @pytest.mark.parametrize(
        ("name", "content", "said"),
        [
            ("asyncgen.toml", b"x = " + b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
            ("asyncgen.yaml", b"x: " + b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
            ("asyncgen.toml", b"concurrency = = 3\n", "not valid TOML"),
            ("asyncgen.toml", b'base_url = "caf\xe9"\n', "not UTF-8 text"),
            ("asyncgen.yaml", b"base_url: caf\xe9\n", "not UTF-8 text"),
            ("asyncgen.yaml", b"api_key: sk-in-a-file-123\n", "ASYNCGEN_API_KEY"),
            ("asyncgen.toml", b'api_key = "sk-in-a-file-123"\n', "ASYNCGEN_API_KEY"),
        ],
    )
    def test_the_cli_says_which_file_and_why(
        self, tmp_path: Path, name: str, content: bytes, said: str
    ) -> None:
        path = tmp_path / name
        path.write_bytes(content)
        done = subprocess.run(
            asyncgen_argv("worker", "memory://", "--settings", str(path)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert said in done.stderr
        assert str(path) in done.stderr
        assert "Traceback" not in done.stderr
        assert "sk-in-a-file-123" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
