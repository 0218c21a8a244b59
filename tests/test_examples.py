"""The examples, run for real: algo_gen against the simulator, Flask in a WSGI server."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from werkzeug.serving import make_server

import asyncgen
from asyncgen.testing import Fault, ModelProfile, SimConfig, SimServer
from examples.algo_gen import algo_gen

CODE = "```python\ndef execute_trade(data):\n    return 'hold'  # {model}\n```"
AGENTS: list[str | dict[str, str]] = [
    "m1",
    {"name": "Bob", "model_id": "m2"},
    "prose",
    "m4",
    "flaky",
    "m6",
]


@pytest.fixture
def algo_env(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SimServer]:
    """algo_gen pointed at the simulator and a temporary output folder."""
    code = ModelProfile(reply=CODE, latency=0.3)
    sim.configure(
        SimConfig(
            default=code,
            models={
                "prose": ModelProfile(reply="I would buy low and sell high.", latency=0.1),
                "flaky": code.model_copy(
                    update={"faults": [Fault(kind="status", status=503, first=1)]}
                ),
            },
        )
    )
    monkeypatch.setenv("ASYNCGEN_BASE_URL", sim.base_url)
    monkeypatch.setenv("ALGO_GEN_DIR", str(tmp_path))
    monkeypatch.setattr(algo_gen, "_client", None)
    yield sim
    if algo_gen._client is not None:
        algo_gen._client.close()


class TestAlgoGen:
    def test_generates_saves_and_reports(self, algo_env: SimServer, tmp_path: Path) -> None:
        """Six models at once; valid algorithms saved in input order; legacy messages."""
        messages: list[tuple[float, str]] = []
        ok = algo_gen.generate_algorithms_for_agents(
            AGENTS, "AAPL", lambda p, m: messages.append((p, m))
        )
        assert ok is True
        saved = sorted(p.name for p in (tmp_path / "AAPL").iterdir())
        assert saved == ["00_m1.py", "01_m2.py", "03_m4.py", "04_flaky.py", "05_m6.py"]
        assert "def execute_trade" in (tmp_path / "AAPL" / "04_flaky.py").read_text()
        stats = algo_env.stats()
        assert stats["requests"]["prose"] == 1  # failed validation: not retried
        assert stats["requests"]["flaky"] == 2  # a 503, then success
        assert stats["max_in_flight"] == 6
        texts = [m for _, m in messages]
        assert (
            "MODEL_FAIL::prose::ValidationFailedError: the answer defines no execute_trade "
            "function" in texts
        )
        assert sum(t.startswith("MODEL_OK::") for t in texts) == 5
        assert sum(t.startswith("PREVIEW::") for t in texts) == 5
        assert messages[-1][0] == 100.0

    def test_false_when_every_model_fails(self, algo_env: SimServer) -> None:
        """With no valid answer at all the job reports False."""
        assert algo_gen.generate_algorithms_for_agents(["prose"], "MSFT") is False

    async def test_single_model_helper(self, algo_env: SimServer) -> None:
        """generate_algorithm_async returns the code, or raises the validation error."""
        client = asyncgen.ChatClient(algo_env.base_url)
        code = await algo_gen.generate_algorithm_async(client, "m1", "AAPL please")
        assert code.startswith("def execute_trade(data):")
        with pytest.raises(asyncgen.ValidationFailedError):
            await algo_gen.generate_algorithm_async(client, "prose", "AAPL please")
        await client.aclose()


@pytest.fixture
def flask_app(sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, ModuleType]]:
    """examples/flask_app.py served by a real threaded WSGI server on 127.0.0.1."""
    sim.configure(SimConfig(default=ModelProfile(latency=0.1)))
    monkeypatch.setenv("ASYNCGEN_BASE_URL", sim.base_url)
    module = importlib.reload(importlib.import_module("examples.flask_app"))
    server = make_server("127.0.0.1", 0, module.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", module
    server.shutdown()
    module.client.close()


def test_flask_routes_under_concurrent_requests(
    flask_app: tuple[str, ModuleType], sim: SimServer
) -> None:
    """8 concurrent requests, sync and async routes, all answered by all models."""
    url, _ = flask_app

    def get(i: int) -> httpx.Response:
        route = "sync" if i % 2 else "async"
        return httpx.get(
            f"{url}/{route}", params={"prompt": f"q{i}", "models": "a,b,c"}, timeout=30
        )

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(get, range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    for i, response in enumerate(responses):
        records = response.json()["results"]
        assert [(r["model"], r["ok"], r["text"]) for r in records] == [
            (m, True, f"[{m}] q{i}") for m in "abc"
        ]
    assert sim.requests() == 24
    assert httpx.get(f"{url}/sync", timeout=10).status_code == 400


def test_the_readme_queue_snippet_runs(tmp_path: Path) -> None:
    """README's background-jobs block, run as a script in an empty folder: it submits,
    an in-process worker runs the task, and the result is printed (no 60 s wait)."""
    import subprocess
    import sys

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Background jobs", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "snippet.py"
    script.write_text(block)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "summary of 42" in done.stdout.splitlines()
