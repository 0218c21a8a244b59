"""configure_logging and secret masking, checked on the rendered output."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from asyncgen import configure_logging, mask_secrets
from asyncgen.core._logging import register_secret

OPENROUTER_KEY = "sk-or-v1-0123456789abcdef0123456789abcdef"
OPENAI_KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx"
SECRETS = [OPENROUTER_KEY, OPENAI_KEY, "hunter2pass", "abc.def.ghi", "swordfish", "zz-opaque-key"]


def emit_everything() -> None:
    """Log secrets in every place one tends to leak: fields, text, headers, URLs, errors."""
    log = structlog.get_logger("test")
    register_secret("zz-opaque-key")
    with structlog.contextvars.bound_contextvars(job_id="j1", attempt=2):
        log.warning(
            "request_failed",
            api_key=OPENROUTER_KEY,
            url="redis://:hunter2pass@127.0.0.1:6379/0",
            headers={"Authorization": "Bearer abc.def.ghi", "Accept": "json"},
            note=f"sent with key {OPENAI_KEY} and password=swordfish",
            custom="token for vendor: zz-opaque-key",
            total_tokens=1234,
        )
        try:
            raise RuntimeError(f"401 for key {OPENROUTER_KEY}")
        except RuntimeError:
            log.exception("crashed")


class TestMasking:
    def test_json_lines_hide_every_secret(self) -> None:
        """No secret survives in JSON output, while ordinary fields stay readable."""
        out = io.StringIO()
        configure_logging(json=True, stream=out)
        emit_everything()
        text = out.getvalue()
        for secret in SECRETS:
            assert secret not in text
        first, second = (json.loads(line) for line in text.splitlines())
        assert first["api_key"] == "***"
        assert first["url"] == "redis://:***@127.0.0.1:6379/0"
        assert first["headers"] == {"Authorization": "***", "Accept": "json"}
        assert first["total_tokens"] == 1234
        assert (first["job_id"], first["attempt"]) == ("j1", 2)
        assert "RuntimeError" in second["exception"]

    def test_console_lines_hide_every_secret(self) -> None:
        """Console rendering masks the same secrets, tracebacks included."""
        out = io.StringIO()
        configure_logging(json=False, stream=out)
        emit_everything()
        text = out.getvalue()
        assert "request_failed" in text
        assert "RuntimeError" in text
        for secret in SECRETS:
            assert secret not in text

    def test_level_filters(self) -> None:
        """Lines below the configured level are dropped."""
        out = io.StringIO()
        configure_logging(json=True, level="ERROR", stream=out)
        structlog.get_logger().warning("quiet")
        structlog.get_logger().error("loud")
        assert [json.loads(x)["event"] for x in out.getvalue().splitlines()] == ["loud"]

    def test_unknown_level_is_refused(self) -> None:
        """A misspelt level is a ValueError naming the valid ones."""
        with pytest.raises(ValueError, match="DEBUG"):
            configure_logging(level="LOUD")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer sk-abc123def456", "Authorization: Bearer ***"),
        ("https://user:pa55word@host/x", "https://user:***@host/x"),
        ("GET /v1?api_key=abcd1234&x=1", "GET /v1?api_key=***&x=1"),
        ('{"password": "p@ss!"}', '{"password": "***"}'),
        ("plain text with 42 tokens", "plain text with 42 tokens"),
    ],
)
def test_mask_secrets_table(text: str, expected: str) -> None:
    """mask_secrets rewrites the usual leak shapes and leaves ordinary text alone."""
    assert mask_secrets(text) == expected
