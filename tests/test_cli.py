"""The asyncgen command, run as real subprocesses against the simulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from asyncgen.testing import Fault, ModelProfile, SimConfig, SimServer
from tests.processes import asyncgen_argv

SECRET = "sk-or-v1-cli-secret-0123456789"


def asyncgen_cmd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m asyncgen`` with provider keys removed unless ``env`` gives them."""
    inherited = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(
        asyncgen_argv(*args),
        capture_output=True,
        text=True,
        timeout=120,
        env={**inherited, **(env or {})},
    )


def write_jobs(path: Path, count: int, *, model: str | None = "m") -> Path:
    with path.open("w") as stream:
        for i in range(count):
            job = {"id": f"j{i}", "prompt": f"hello {i}"}
            job["model"] = model if model is not None else f"m{i}"
            stream.write(json.dumps(job) + "\n")
    return path


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class TestRun:
    def test_all_ok_exits_0_with_plain_progress(self, tmp_path: Path, sim: SimServer) -> None:
        """A clean run exits 0, writes one line per job, and prints plain lines (no tty)."""
        jobs = write_jobs(tmp_path / "in.jsonl", 12)
        out = tmp_path / "out.jsonl"
        done = asyncgen_cmd("run", str(jobs), "-o", str(out), "--base-url", sim.base_url)
        assert done.returncode == 0, done.stderr
        got = records(out)
        assert sorted(r["id"] for r in got) == sorted(f"j{i}" for i in range(12))  # type: ignore[type-var]
        assert all(r["ok"] and r["usage"] for r in got)
        assert "progress: 12/12 done, 12 ok" in done.stdout
        assert "summary: ok: 12" in done.stdout
        assert "\x1b[" not in done.stdout  # no terminal escapes when not a terminal

    def test_some_failed_exits_1(self, tmp_path: Path, sim: SimServer) -> None:
        """Failed jobs are recorded with their error and make the exit code 1."""
        refuse = Fault(kind="status", status=400)
        sim.configure(SimConfig(models={"bad": ModelProfile(faults=[refuse])}))
        jobs = tmp_path / "in.jsonl"
        jobs.write_text(
            '{"id": "a", "model": "m", "prompt": "x"}\n{"id": "b", "model": "bad", "prompt": "x"}\n'
        )
        out = tmp_path / "out.jsonl"
        done = asyncgen_cmd("run", str(jobs), "-o", str(out), "--base-url", sim.base_url)
        assert done.returncode == 1, done.stderr
        by_id = {r["id"]: r for r in records(out)}
        assert by_id["a"]["ok"] is True
        assert by_id["b"]["error_type"] == "BadRequestError"

    def test_bad_lines_are_all_reported_and_nothing_is_sent(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """Every bad line is named with its number and reason; exit 2; no request."""
        jobs = tmp_path / "in.jsonl"
        jobs.write_text(
            '{"id": "ok", "model": "m", "prompt": "x"}\n'
            "not json\n"
            '{"id": "two", "model": "m"}\n'
            "[1, 2]\n"
            '{"id": "four", "model": "m", "prompt": "x", "messages": []}\n'
        )
        out = tmp_path / "out.jsonl"
        done = asyncgen_cmd("run", str(jobs), "-o", str(out), "--base-url", sim.base_url)
        assert done.returncode == 2
        assert "in.jsonl:line 2: not JSON" in done.stderr
        assert "line 3: " in done.stderr
        assert "exactly one of prompt" in done.stderr
        assert "line 4: expected a JSON object" in done.stderr
        assert "line 5: " in done.stderr
        assert "4 bad line(s); nothing was sent" in done.stderr
        assert sim.requests() == 0
        assert not out.exists()

    def test_usage_errors_exit_2(self, tmp_path: Path) -> None:
        """A missing file, a bad flag and a missing key are usage errors (exit 2)."""
        assert asyncgen_cmd("run", str(tmp_path / "nope.jsonl"), "-o", "x").returncode == 2
        assert asyncgen_cmd("run", "--concurrency", "zero").returncode == 2
        jobs = write_jobs(tmp_path / "in.jsonl", 1)
        no_key = asyncgen_cmd("run", str(jobs), "-o", str(tmp_path / "o.jsonl"), env={})
        assert no_key.returncode == 2
        assert "OPENROUTER_API_KEY" in no_key.stderr

    def test_keys_are_never_echoed(self, tmp_path: Path, sim: SimServer) -> None:
        """A refused key appears in no output, error or result file."""
        sim.configure(SimConfig(api_key="the-right-one"))
        jobs = write_jobs(tmp_path / "in.jsonl", 2)
        out = tmp_path / "out.jsonl"
        done = asyncgen_cmd(
            "run",
            str(jobs),
            "-o",
            str(out),
            "--base-url",
            sim.base_url,
            env={"ASYNCGEN_API_KEY": SECRET},
        )
        assert done.returncode == 1
        assert SECRET not in done.stdout + done.stderr + out.read_text()
        assert records(out)[0]["error_type"] == "InvalidKeyError"  # a 401: the key itself

    def test_retry_failed_reruns_only_failures(self, tmp_path: Path, sim: SimServer) -> None:
        """A second run skips everything; with --retry-failed it re-runs the failures."""
        once = Fault(kind="status", status=400, first=1)
        sim.configure(SimConfig(models={"flaky": ModelProfile(faults=[once])}))
        jobs = tmp_path / "in.jsonl"
        jobs.write_text(
            '{"id": "a", "model": "m", "prompt": "x"}\n'
            '{"id": "b", "model": "flaky", "prompt": "x"}\n'
        )
        out = tmp_path / "out.jsonl"
        args = ("run", str(jobs), "-o", str(out), "--base-url", sim.base_url)
        assert asyncgen_cmd(*args).returncode == 1
        assert asyncgen_cmd(*args).returncode == 1  # failures stay failed, nothing sent
        assert sim.stats()["requests"] == {"m": 1, "flaky": 1}
        assert asyncgen_cmd(*args, "--retry-failed").returncode == 0
        assert sim.stats()["requests"] == {"m": 1, "flaky": 2}


def test_resume_after_kill_9_requests_no_finished_job_twice(tmp_path: Path, sim: SimServer) -> None:
    """kill -9 mid-run, run again: every job ends answered, none finished is re-sent."""
    sim.configure(SimConfig(default=ModelProfile(latency=0.1)))
    jobs = write_jobs(tmp_path / "in.jsonl", 40, model=None)  # model m<i> per job: countable
    out = tmp_path / "out.jsonl"
    command = asyncgen_argv(
        "run", str(jobs), "-o", str(out), "--base-url", sim.base_url, "--concurrency", "4"
    )
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while (not out.exists() or len(out.read_text().splitlines()) < 10) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    finished = {str(r["id"]) for r in records(out)}
    assert 10 <= len(finished) < 40
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert {r["id"] for r in records(out)} == {f"j{i}" for i in range(40)}
    counts = sim.stats()["requests"]
    for job_id in finished:
        assert counts[f"m{job_id[1:]}"] == 1, job_id  # finished before the kill: sent once
    assert sum(counts.values()) <= 40 + 4  # at most the 4 in flight at the kill went twice


def test_demo_runs_on_the_simulator_without_a_key() -> None:
    """asyncgen demo says it uses the simulator and prints the speedup."""
    done = asyncgen_cmd("demo", "--latency", "0.1", env={})
    assert done.returncode == 0, done.stderr
    assert "built-in simulator" in done.stdout
    assert "speedup:" in done.stdout
    assert "(ok 6/6)" in done.stdout


def test_help_lists_the_commands() -> None:
    """asyncgen --help names run, demo and sim."""
    done = asyncgen_cmd("--help")
    assert done.returncode == 0
    for command in ("run", "demo", "sim"):
        assert command in done.stdout


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
def test_run_with_the_built_in_simulator(tmp_path: Path, backend: str) -> None:
    """--sim runs a file against a simulator the command starts itself, on either backend."""
    jobs = write_jobs(tmp_path / "in.jsonl", 5)
    out = tmp_path / "out.jsonl"
    done = asyncgen_cmd("run", str(jobs), "-o", str(out), "--sim", "--backend", backend)
    assert done.returncode == 0, done.stderr
    assert len(records(out)) == 5


class TestSettings:
    def test_run_honours_the_settings_file_and_variables(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """base_url, api_key, retries and concurrency come from asyncgen.toml and
        ASYNCGEN_*; a flag wins over both."""
        sim.configure(
            SimConfig(
                api_key="sk-from-env-1",
                models={"down": ModelProfile(faults=[Fault(kind="status", status=503)])},
            )
        )
        settings = tmp_path / "asyncgen.toml"
        settings.write_text(f'base_url = "{sim.base_url}"\nretries = 1\nconcurrency = 2\n')
        jobs = tmp_path / "in.jsonl"
        jobs.write_text(
            '{"id": "a", "model": "m", "prompt": "x"}\n'
            '{"id": "b", "model": "down", "prompt": "x"}\n'
        )
        env = {"ASYNCGEN_API_KEY": "sk-from-env-1"}
        done = asyncgen_cmd(
            "run",
            str(jobs),
            "-o",
            str(tmp_path / "out.jsonl"),
            "--settings",
            str(settings),
            env=env,
        )
        assert done.returncode == 1, done.stderr
        by_id = {r["id"]: r for r in records(tmp_path / "out.jsonl")}
        assert by_id["a"]["ok"] is True  # the key reached the server (else 401)
        assert by_id["b"]["attempts"] == 1  # retries = 1 from the file
        assert sim.stats()["max_in_flight"] <= 2
        again = asyncgen_cmd(
            "run",
            str(jobs),
            "-o",
            str(tmp_path / "out2.jsonl"),
            "--settings",
            str(settings),
            "--retries",
            "2",
            env=env,
        )
        retried = {r["id"]: r for r in records(tmp_path / "out2.jsonl")}
        assert again.returncode == 1
        assert retried["b"]["attempts"] == 2  # the flag wins

    def test_a_bad_settings_file_is_a_usage_error(self, tmp_path: Path) -> None:
        """A misspelt key in the settings file is named; exit 2, no traceback."""
        settings = tmp_path / "asyncgen.toml"
        settings.write_text("retires = 2\n")
        jobs = write_jobs(tmp_path / "in.jsonl", 1)
        done = asyncgen_cmd(
            "run", str(jobs), "-o", str(tmp_path / "o.jsonl"), "--sim", "--settings", str(settings)
        )
        assert done.returncode == 2
        assert "retires" in done.stderr
        assert "Traceback" not in done.stderr
