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


def test_deployment_quotes_the_measured_redis_figures() -> None:
    """docs/deployment.md's Redis throughput is the Performance page's table, not an
    older run's."""
    import re

    root = Path(__file__).parent.parent
    readme = (root / "docs" / "performance.md").read_text()
    deployment = (root / "docs" / "deployment.md").read_text()
    rows = re.findall(r"^\| [14] \| ([\d,]+) jobs/s \| ([\d,]+) jobs/s \|", readme, re.M)
    per_job = sorted(int(a.replace(",", "")) for a, _ in rows)
    bulk = sorted(int(b.replace(",", "")) for _, b in rows)
    assert len(rows) == 2
    said = deployment.split("**Redis CPU.**", 1)[1].split("**Redis memory.**", 1)[0]
    low, high = (round(per_job[0], -2), round(per_job[1], -2))
    assert f"{low:,}-{high:,} no-op jobs/s" in said.replace("\n", " ")
    assert f"{round(bulk[0], -2):,}-{round(bulk[1], -2):,}" in said.replace("\n", " ")
