"""The deployment files stay true to the code: settings they set exist, commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asyncgen import Settings
from asyncgen.cli import main

DEPLOY = Path(__file__).parent.parent / "deploy"


def test_compose_sets_only_real_settings() -> None:
    """Every ASYNCGEN_* variable in compose.yaml names a field of Settings."""
    text = (DEPLOY / "compose.yaml").read_text()
    names = set(re.findall(r"\bASYNCGEN_([A-Z_]+):", text))
    assert names >= {"QUEUE_URL", "WORKER_CONCURRENCY", "WORKER_LEASE", "WORKER_GRACE"}
    assert {name.lower() for name in names} <= set(Settings.model_fields)


def test_compose_keeps_jobs_safe() -> None:
    """Redis runs with AOF and noeviction behind a password; workers drain before SIGKILL."""
    text = (DEPLOY / "compose.yaml").read_text()
    for flag in ("--appendonly", "--maxmemory-policy", "--requirepass"):
        assert flag in text
    assert re.search(r'--appendonly\n\s+- "yes"', text)
    assert re.search(r"--maxmemory-policy\n\s+- noeviction", text)
    grace = float(re.findall(r'ASYNCGEN_WORKER_GRACE: "(\d+)"', text)[0])
    assert float(re.findall(r"stop_grace_period: (\d+)s", text)[0]) > grace


def test_the_image_runs_the_worker_command(capsys: pytest.CaptureFixture[str]) -> None:
    """The Dockerfile's command is `asyncgen worker --tasks`, which the CLI knows."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert 'CMD ["asyncgen", "worker", "--tasks"' in text
    assert main(["worker", "--help"]) == 0
    assert "--tasks" in capsys.readouterr().out
