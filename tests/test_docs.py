"""Every Python block of README.md and docs/ runs, page by page, against the simulator.

Each page's blocks run in order in one fresh interpreter (tests/run_blocks.py), in an
empty folder, with the provider presets pointed at a real simulator on 127.0.0.1 by the
variables a user would set ($OPENROUTER_BASE_URL, $OPENAI_BASE_URL) and
``redis://localhost:6379`` meaning the session's real redis-server. A block that drifts
from the code fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from asyncgen.testing import RedisServer, SimServer

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
RUNNER = Path(__file__).with_name("run_blocks.py")


def blocks(page: Path) -> list[dict[str, str]]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 2
        found.append({"where": f"{page.relative_to(ROOT)}:{line}", "code": match.group(1)})
    return found


RUNNABLE = [page for page in PAGES if blocks(page)]


def test_the_pages_hold_blocks_to_run() -> None:
    """The extraction finds the blocks (a broken pattern would pass every page)."""
    names = {page.name for page in RUNNABLE}
    assert {"README.md", "generation.md", "background-jobs.md"} <= names
    assert sum(len(blocks(page)) for page in RUNNABLE) >= 30


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_python_blocks_of_a_page_run(
    page: Path, sim: SimServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    code = blocks(page)
    for block in code:
        block["code"] = block["code"].replace(
            "redis://localhost:6379", f"redis://127.0.0.1:{redis_server.port}"
        )
    script = tmp_path / "blocks.json"
    script.write_text(json.dumps(code))
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(
        OPENROUTER_API_KEY="sk-or-docs-test",
        OPENROUTER_BASE_URL=sim.base_url,
        OPENAI_API_KEY="sk-docs-test",
        OPENAI_BASE_URL=sim.base_url,
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("\nok ") + done.stdout.startswith("ok ") == len(code)


def test_ci_runs_the_test_command_that_the_readme_gives() -> None:
    """CI's test steps are README.md's test commands, word for word: the ones a newcomer
    types are the ones that are kept green."""
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if "pytest" in line.split("#")[0]]
    assert len(commands) == 2, commands  # the suite, then the Sentinel tests alone
    steps = [line.split("  #")[0] for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for command in commands:
        assert command in steps
