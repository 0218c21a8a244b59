"""asyncgen run and sim fed bad and hostile input, as real subprocesses.

Each test names the input of docs/reliability.md's table that it checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import asyncgen
from asyncgen.testing import Fault, ModelProfile, SimConfig, SimServer
from tests.processes import asyncgen_argv
from tests.test_cli import asyncgen_cmd, records, write_jobs

SECRET = "sk-or-v1-hostile-secret-0123456789"
ROOT = Path(__file__).resolve().parent.parent  # for --tasks tests.queue_tasks in a child


def run_args(jobs: Path, out: Path, sim: SimServer, *extra: str) -> tuple[str, ...]:
    return ("run", str(jobs), "-o", str(out), "--base-url", sim.base_url, *extra)


def assert_valid_jsonl(path: Path) -> list[dict[str, object]]:
    """Every line of ``path`` is a whole JSON record ending with a newline."""
    data = path.read_bytes()
    assert data.endswith(b"\n") or not data
    return [json.loads(line) for line in data.decode().splitlines()]


def wait_for(predicate: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class TestSecrets:
    def test_key_with_a_trailing_carriage_return_is_stripped(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """A key ending in \\r (a Windows .env) is stripped and works; it is never printed."""
        sim.configure(SimConfig(api_key=SECRET))
        jobs, out = write_jobs(tmp_path / "in.jsonl", 4), tmp_path / "out.jsonl"
        done = asyncgen_cmd(*run_args(jobs, out, sim), env={"ASYNCGEN_API_KEY": SECRET + "\r\n"})
        assert done.returncode == 0, done.stderr
        assert SECRET not in done.stdout + done.stderr + out.read_text()
        assert all(r["ok"] for r in records(out))

    def test_key_with_a_control_character_inside_is_refused(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """A key with a control character inside exits 2 before sending, key not shown."""
        jobs, out = write_jobs(tmp_path / "in.jsonl", 2), tmp_path / "out.jsonl"
        key = SECRET[:10] + "\r" + SECRET[10:]
        done = asyncgen_cmd(*run_args(jobs, out, sim), env={"ASYNCGEN_API_KEY": key})
        assert done.returncode == 2
        assert "the API key contains a control character (U+000D) at position 11" in done.stderr
        assert SECRET[10:] not in done.stdout + done.stderr
        assert sim.requests() == 0


class TestInput:
    def test_duplicate_and_colliding_ids_are_refused(self, tmp_path: Path, sim: SimServer) -> None:
        """Two lines with one id (5 and "5" included), a null id: exit 2, nothing sent."""
        jobs = tmp_path / "in.jsonl"
        jobs.write_text(
            '{"id": 5, "model": "m", "prompt": "a"}\n'
            '{"id": "5", "model": "m", "prompt": "b"}\n'
            '{"id": "x", "model": "m", "prompt": "c"}\n'
            '{"id": "x", "model": "m", "prompt": "d"}\n'
            '{"id": null, "model": "m", "prompt": "e"}\n'
            '{"id": [1], "model": "m", "prompt": "f"}\n'
        )
        done = asyncgen_cmd(*run_args(jobs, tmp_path / "out.jsonl", sim))
        assert done.returncode == 2
        assert "line 2: duplicate id '5' (first on line 1)" in done.stderr
        assert "line 4: duplicate id 'x' (first on line 3)" in done.stderr
        assert "line 5: id must be a string or a whole number, got null" in done.stderr
        assert "line 6: id must be a string or a whole number" in done.stderr
        assert sim.requests() == 0

    def test_bad_bytes_bom_directory_and_surrogates(self, tmp_path: Path, sim: SimServer) -> None:
        """Non-UTF-8 and lone surrogates are numbered lines; a BOM is fine; a folder is named."""
        jobs = tmp_path / "in.jsonl"
        jobs.write_bytes(
            b'\xef\xbb\xbf{"id": "a", "model": "m", "prompt": "ok"}\n'
            b'{"id": "b", "model": "m", "prompt": "caf\xe9"}\n'
            b'{"id": "c", "model": "m", "prompt": "\\ud800"}\n'
            b"\x00\x01\x02\xff\xfe\n"
        )
        done = asyncgen_cmd(*run_args(jobs, tmp_path / "out.jsonl", sim))
        assert done.returncode == 2
        assert "line 1" not in done.stderr  # the byte order mark is skipped
        assert "line 2: not UTF-8 text (byte 0xe9 at column" in done.stderr
        assert "line 3: " in done.stderr
        assert "lone surrogate (U+D800)" in done.stderr
        assert "line 4: not UTF-8 text" in done.stderr
        assert "Traceback" not in done.stderr
        folder = asyncgen_cmd(*run_args(tmp_path, tmp_path / "out.jsonl", sim))
        assert folder.returncode == 2
        assert "is a directory" in folder.stderr

    def test_json_errors_read_as_sentences(self, tmp_path: Path, sim: SimServer) -> None:
        """A JSON syntax error names its column once ("starting at column", not "at at")."""
        jobs = tmp_path / "in.jsonl"
        jobs.write_text('{"id": "a", "prompt": "unterminated}\n')
        done = asyncgen_cmd(*run_args(jobs, tmp_path / "out.jsonl", sim))
        assert done.returncode == 2
        assert "line 1: not JSON (Unterminated string starting at column 23)" in done.stderr

    def test_an_empty_input_says_so(self, tmp_path: Path, sim: SimServer) -> None:
        """An empty file (or blank lines only) exits 0 saying there was nothing to run."""
        jobs, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
        for content in ("", "\n\n  \n"):
            jobs.write_text(content)
            done = asyncgen_cmd(*run_args(jobs, out, sim))
            assert done.returncode == 0, done.stderr
            assert "holds no jobs (it is empty, or blank lines only): nothing to run" in (
                done.stderr
            )
        assert sim.requests() == 0

    def test_a_bom_file_runs(self, tmp_path: Path, sim: SimServer) -> None:
        """A file saved with a UTF-8 byte order mark runs like any other."""
        jobs = tmp_path / "in.jsonl"
        jobs.write_bytes(b'\xef\xbb\xbf{"id": "a", "model": "m", "prompt": "ok"}\n')
        done = asyncgen_cmd(*run_args(jobs, tmp_path / "out.jsonl", sim))
        assert done.returncode == 0, done.stderr

    @pytest.mark.parametrize(
        ("flags", "said"),
        [
            (("--rpm", "-5"), "--rpm: must be a number of requests per minute > 0"),
            (("--rpm", "0"), "leave the flag out for no limit"),
            (("--tpm", "-5"), "--tpm: must be a number of tokens per minute > 0"),
            (("--deadline", "-1"), "--deadline: must be a number of seconds > 0"),
            (("--deadline", "nan"), "--deadline: must be a number of seconds > 0"),
            (("--max-cost", "0"), "--max-cost: must be a number of dollars > 0"),
            (("--concurrency", "100000"), "--concurrency: must be at most 10000 requests at once"),
            (("--retries", "0"), "--retries: must be at least 1 attempts"),
            (("--concurrency", "many"), "expected a whole number of requests at once, or auto"),
            (
                ("--rate-limit-url", "redis://127.0.0.1:1/0"),
                "--rate-limit-url shares --rpm/--tpm, or with --concurrency auto the pace",
            ),
        ],
    )
    def test_bad_numbers_exit_2_with_one_line(
        self, tmp_path: Path, sim: SimServer, flags: tuple[str, ...], said: str
    ) -> None:
        """A negative, zero or NaN limit is a usage error naming the flag, not a traceback."""
        jobs = write_jobs(tmp_path / "in.jsonl", 1)
        done = asyncgen_cmd(*run_args(jobs, tmp_path / "out.jsonl", sim, *flags))
        assert done.returncode == 2
        assert said in done.stderr
        assert "Traceback" not in done.stderr

    def test_aiohttp_backend_without_the_extra(self, tmp_path: Path, sim: SimServer) -> None:
        """--backend aiohttp where aiohttp is missing says how to install it."""
        shadow = tmp_path / "shadow"
        shadow.mkdir()
        (shadow / "aiohttp.py").write_text("raise ImportError('not installed here')\n")
        jobs = write_jobs(tmp_path / "in.jsonl", 1)
        done = asyncgen_cmd(
            *run_args(jobs, tmp_path / "out.jsonl", sim, "--backend", "aiohttp"),
            env={"PYTHONPATH": str(shadow)},
        )
        assert done.returncode == 2
        assert "pip install 'asyncgen[fast]'" in done.stderr
        assert "Traceback" not in done.stderr


def answers(url: str) -> bool:
    """True when ``url`` answers at all."""
    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return False
    return True


def writing(jobs: Path, out: Path, sim: SimServer) -> subprocess.Popen[str]:
    """A run on ``out`` (two jobs at a time), returned once it has written a line."""
    first = subprocess.Popen(
        asyncgen_argv(*run_args(jobs, out, sim, "--concurrency", "2")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: out.exists() and out.stat().st_size > 0)
    return first


class TestOutput:
    def test_two_runs_on_one_output(self, tmp_path: Path, sim: SimServer) -> None:
        """A second run on an output being written exits 2 naming the holder; no job twice."""
        sim.configure(SimConfig(default=ModelProfile(latency=0.2)))
        jobs, out = write_jobs(tmp_path / "in.jsonl", 20), tmp_path / "out.jsonl"
        first = writing(jobs, out, sim)
        try:
            second = asyncgen_cmd(*run_args(jobs, out, sim))
            assert second.returncode == 2
            assert f"being written by another asyncgen run (pid {first.pid} on" in second.stderr
        finally:
            _, stderr = first.communicate(timeout=60)
        assert first.returncode == 0, stderr
        assert sorted(str(r["id"]) for r in records(out)) == sorted(f"j{i}" for i in range(20))
        assert sim.requests() == 20
        assert not (tmp_path / "out.jsonl.lock").exists()

    def test_a_link_to_an_output_being_written_shares_its_lock(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """-o link.jsonl, a symlink to the output another run writes, exits 2: the lock
        is taken on the file the link names, so no job runs twice."""
        sim.configure(SimConfig(default=ModelProfile(latency=0.2)))
        jobs, out = write_jobs(tmp_path / "in.jsonl", 20), tmp_path / "out.jsonl"
        link = tmp_path / "link.jsonl"
        link.symlink_to(out)
        first = writing(jobs, out, sim)
        try:
            second = asyncgen_cmd(*run_args(jobs, link, sim))
            assert second.returncode == 2, second.stderr
            assert f"being written by another asyncgen run (pid {first.pid} on" in second.stderr
        finally:
            _, stderr = first.communicate(timeout=60)
        assert first.returncode == 0, stderr
        assert sim.requests() == 20
        assert len(records(out)) == 20

    def test_output_equal_to_input_is_refused(self, tmp_path: Path, sim: SimServer) -> None:
        """-o naming the input file exits 2 and leaves the input as it was."""
        jobs = write_jobs(tmp_path / "in.jsonl", 2)
        before = jobs.read_bytes()
        done = asyncgen_cmd(*run_args(jobs, tmp_path / "." / "in.jsonl", sim))
        assert done.returncode == 2
        assert "the output (-o) is the input file" in done.stderr
        assert jobs.read_bytes() == before

    def test_a_device_as_output_is_refused(self, tmp_path: Path, sim: SimServer) -> None:
        """-o /dev/full (a device: endless when read back) exits 2 at once."""
        jobs = write_jobs(tmp_path / "in.jsonl", 2)
        done = asyncgen_cmd(*run_args(jobs, Path("/dev/full"), sim), env={})
        assert done.returncode == 2
        assert "not a regular file" in done.stderr
        assert sim.requests() == 0

    def test_bad_lines_in_an_old_output_are_reported(self, tmp_path: Path, sim: SimServer) -> None:
        """Non-UTF-8 bytes in an earlier output: exit 2 naming the line, nothing sent."""
        jobs, out = write_jobs(tmp_path / "in.jsonl", 2), tmp_path / "out.jsonl"
        out.write_bytes(b'{"id": "j0", "ok": true}\n\xff\xfe garbage\n{"id": "j1", "ok": true}\n')
        done = asyncgen_cmd(*run_args(jobs, out, sim))
        assert done.returncode == 2
        assert "line 2: not UTF-8 text" in done.stderr
        assert "Traceback" not in done.stderr
        assert sim.requests() == 0

    def test_a_torn_last_line_is_cut_and_its_job_runs_again(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """An unfinished last line (a killed run) is removed; the file stays valid JSONL."""
        jobs, out = write_jobs(tmp_path / "in.jsonl", 3), tmp_path / "out.jsonl"
        out.write_text('{"id": "j0", "ok": true}\n{"id": "j1", "ok": tr')
        done = asyncgen_cmd(*run_args(jobs, out, sim))
        assert done.returncode == 0, done.stderr
        got = assert_valid_jsonl(out)
        assert sorted(str(r["id"]) for r in got) == ["j0", "j1", "j2"]

    def test_disk_full_leaves_whole_lines_and_resumes(self, tmp_path: Path, sim: SimServer) -> None:
        """A write that fails part-way (file size limit) is cut off; a rerun finishes the rest."""
        jobs, out = write_jobs(tmp_path / "in.jsonl", 30), tmp_path / "out.jsonl"
        command = asyncgen_argv(*run_args(jobs, out, sim, "--concurrency=1"))
        limit = 1500  # bytes: room for a few result lines, the last one cut mid-line

        def small_disk() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        full = subprocess.run(
            command, capture_output=True, text=True, timeout=120, preexec_fn=small_disk, env=env
        )
        assert full.returncode == 2
        assert f"cannot write results to {out}" in full.stderr
        assert "file is whole" in full.stderr
        first = assert_valid_jsonl(out)
        assert 0 < len(first) < 30
        again = asyncgen_cmd(*run_args(jobs, out, sim))
        assert again.returncode == 0, again.stderr
        got = assert_valid_jsonl(out)
        assert sorted(str(r["id"]) for r in got) == sorted(f"j{i}" for i in range(30))

    def test_sigterm_stops_like_ctrl_c(self, tmp_path: Path, sim: SimServer) -> None:
        """SIGTERM: exit 143 with a sentence on resuming; the output is whole and resumable."""
        sim.configure(SimConfig(default=ModelProfile(latency=0.1)))
        jobs, out = write_jobs(tmp_path / "in.jsonl", 40), tmp_path / "out.jsonl"
        child = subprocess.Popen(
            asyncgen_argv(*run_args(jobs, out, sim, "--concurrency", "2")),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: out.exists() and len(out.read_bytes().splitlines()) >= 4)
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=30)
        assert child.returncode == 143
        assert "terminated (SIGTERM)" in stderr
        assert "run the same command again" in stderr
        assert "Traceback" not in stderr
        assert 4 <= len(assert_valid_jsonl(out)) < 40
        assert not (tmp_path / "out.jsonl.lock").exists()
        again = asyncgen_cmd(*run_args(jobs, out, sim))
        assert again.returncode == 0, again.stderr
        assert len(assert_valid_jsonl(out)) == 40


class TestHonestReruns:
    def test_jobs_stopped_by_402_run_again_after_credits(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """After a 402 the message says to run again, and running again runs those jobs."""
        no_credits = Fault(kind="status", status=402, first=1)
        sim.configure(SimConfig(default=ModelProfile(latency=0.05, faults=[no_credits])))
        jobs, out = write_jobs(tmp_path / "in.jsonl", 6), tmp_path / "out.jsonl"
        args = run_args(jobs, out, sim, "--concurrency", "1")
        first = asyncgen_cmd(*args)
        assert first.returncode == 1
        assert "add credits, then run the same command again" in first.stderr
        assert {r["error_type"] for r in records(out)} == {"InsufficientCreditsError"}
        again = asyncgen_cmd(*args)  # the fault fired once: "credits were added"
        assert again.returncode == 0, again.stderr
        assert "6 job(s) stopped earlier by a 402, a refused key or --max-cost" in again.stderr
        last = {str(r["id"]): r["ok"] for r in records(out)}  # the last line per id wins
        assert last == {f"j{i}": True for i in range(6)}

    def test_a_refused_key_stops_the_run_at_once(self, tmp_path: Path, sim: SimServer) -> None:
        """A 401: nothing more is sent (not 200 requests and 200 warnings), the message
        says to check the key and not --retry-failed, and with the right key the same
        command runs the jobs it stopped."""
        sim.configure(SimConfig(api_key="the-right-key", default=ModelProfile(latency=0.01)))
        jobs, out = write_jobs(tmp_path / "in.jsonl", 200), tmp_path / "out.jsonl"
        args = run_args(jobs, out, sim, "--concurrency", "4")
        wrong = asyncgen_cmd(*args, env={"ASYNCGEN_API_KEY": "a-wrong-key"})
        assert wrong.returncode == 1
        assert sim.requests() <= 4  # those already in flight when the first 401 came
        assert "the API key was refused (HTTP 401): check it" in wrong.stderr
        assert "with --retry-failed" not in wrong.stderr
        assert wrong.stderr.count("job_failed") <= 5
        assert "a-wrong-key" not in wrong.stderr + out.read_text()
        right = asyncgen_cmd(*args, env={"ASYNCGEN_API_KEY": "the-right-key"})
        assert right.returncode == 0, right.stderr
        assert "200 job(s) stopped earlier by a 402, a refused key" in right.stderr
        last = {str(r["id"]): r["ok"] for r in records(out)}
        assert last == {f"j{i}": True for i in range(200)}

    def test_a_403_stays_with_its_job(self, tmp_path: Path, sim: SimServer) -> None:
        """A 403 can be one request's (a moderation refusal): the other jobs still run."""
        refuse = Fault(kind="status", status=403)
        sim.configure(SimConfig(models={"flagged": ModelProfile(faults=[refuse])}))
        jobs = tmp_path / "in.jsonl"
        jobs.write_text(
            "".join(
                json.dumps({"id": str(i), "model": "flagged" if i == 0 else "m", "prompt": "x"})
                + "\n"
                for i in range(5)
            )
        )
        out = tmp_path / "out.jsonl"
        done = asyncgen_cmd(*run_args(jobs, out, sim, "--concurrency", "1"))
        assert done.returncode == 1
        assert {str(r["id"]): r["ok"] for r in records(out)} == {
            "0": False,
            "1": True,
            "2": True,
            "3": True,
            "4": True,
        }
        assert "1 job(s) failed" in done.stderr

    def test_a_max_cost_stop_says_run_again_not_retry_failed(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """--max-cost reached: the message says the same command runs the rest (it does),
        never --retry-failed."""
        sim.configure(SimConfig(default=ModelProfile(price_per_token=1.0)))
        jobs, out = write_jobs(tmp_path / "in.jsonl", 8), tmp_path / "out.jsonl"
        first = asyncgen_cmd(*run_args(jobs, out, sim, "--concurrency", "1", "--max-cost", "0.5"))
        assert first.returncode == 1
        assert "7 job(s) not sent: --max-cost 0.5 was reached" in first.stderr
        assert "with --retry-failed" not in first.stderr
        again = asyncgen_cmd(*run_args(jobs, out, sim, "--concurrency", "1"))
        assert again.returncode == 0, again.stderr
        assert sim.requests() == 8

    def test_a_rerun_that_exits_1_says_why(self, tmp_path: Path, sim: SimServer) -> None:
        """Failures left from an earlier run make exit 1, with the flag that retries them."""
        refuse = Fault(kind="status", status=400)
        sim.configure(SimConfig(models={"bad": ModelProfile(faults=[refuse])}))
        jobs = tmp_path / "in.jsonl"
        jobs.write_text('{"id": "a", "model": "bad", "prompt": "x"}\n')
        out = tmp_path / "out.jsonl"
        assert asyncgen_cmd(*run_args(jobs, out, sim)).returncode == 1
        again = asyncgen_cmd(*run_args(jobs, out, sim))
        assert again.returncode == 1
        assert "1 job(s) failed in an earlier run and were not re-run: add --retry-failed" in (
            again.stderr
        )


class TestSim:
    @pytest.mark.parametrize(
        ("flags", "said"),
        [
            (("--port", "99999"), "a port is 0 to 65535"),
            (("--latency", "-1"), "latency must be 0 or more seconds"),
        ],
    )
    def test_bad_flags(self, flags: tuple[str, ...], said: str) -> None:
        """An impossible port or a negative latency exits 2 with one line."""
        done = asyncgen_cmd("sim", *flags)
        assert done.returncode == 2
        assert said in done.stderr
        assert "Traceback" not in done.stderr

    def test_bad_config_file(self, tmp_path: Path) -> None:
        """A config with a wrong field is named field by field, exit 2, no traceback."""
        config = tmp_path / "sim.json"
        config.write_text('{"default": {"latency": -1}, "colour": "blue"}')
        done = asyncgen_cmd("sim", "--port", "0", "--config", str(config))
        assert done.returncode == 2
        assert "is not a SimConfig: default.latency: " in done.stderr
        assert "colour: Extra inputs are not permitted" in done.stderr
        missing = asyncgen_cmd("sim", "--port", "0", "--config", str(tmp_path / "nope.json"))
        assert missing.returncode == 2
        assert "No such file or directory" in missing.stderr

    def test_flags_configure_the_served_simulator(self, tmp_path: Path) -> None:
        """--rpm/--limiter/--retry-header/--api-key reach the server it starts: a second
        request in the same second is refused with a bare 429, a wrong key with 401."""
        child = subprocess.Popen(
            asyncgen_argv(
                "sim",
                "--port",
                "0",
                "--rpm",
                "60",
                "--limiter",
                "sliding",
                "--retry-header",
                "none",
                "--api-key",
                "sk-sim-1",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.startswith("asyncgen simulator: http://127.0.0.1:"), line
            base_url = line.split()[-1]
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            good = {"Authorization": "Bearer sk-sim-1"}
            with httpx.Client(timeout=5) as http:
                first = http.post(f"{base_url}/chat/completions", json=body, headers=good)
                second = http.post(f"{base_url}/chat/completions", json=body, headers=good)
                wrong = http.post(f"{base_url}/chat/completions", json=body)
            assert first.status_code == 200
            assert second.status_code == 429
            assert "retry-after" not in second.headers
            assert "retry-after-ms" not in second.headers
            assert wrong.status_code == 401
        finally:
            child.terminate()
            rest, errors = child.communicate(timeout=10)
        assert "sk-sim-1" not in rest + errors


@contextlib.contextmanager
def busy_port() -> Iterator[int]:
    """A 127.0.0.1 port another socket listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        yield taken.getsockname()[1]


def test_a_busy_dashboard_port_is_one_line(tmp_path: Path) -> None:
    """asyncgen dashboard --port on a port in use: exit 2 naming the flag, and no URL
    announced first."""
    (tmp_path / "jobs.db").write_bytes(b"")
    with busy_port() as port:
        done = asyncgen_cmd("dashboard", f"sqlite:///{tmp_path}/jobs.db", "--port", str(port))
    assert done.returncode == 2, done.stderr
    assert f"--port {port}: cannot serve on 127.0.0.1:{port}" in done.stderr
    assert "http://" not in done.stdout
    assert "Traceback" not in done.stderr


def worker_cmd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``asyncgen worker`` in ``cwd`` (no asyncgen.toml there), without provider keys."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.pop("ASYNCGEN_QUEUE_URL", None)
    env["PYTHONPATH"] = str(ROOT)  # for --tasks tests.*
    return subprocess.run(
        asyncgen_argv("worker", *args),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


class TestWorkerCommand:
    @pytest.mark.parametrize(
        ("flags", "said"),
        [
            (("--concurrency", "0"), "--concurrency: must be at least 1"),
            (("--lease", "0"), "--lease: must be a number of seconds > 0"),
            (("--grace", "-1"), "--grace: must be a number of seconds >= 0"),
            (("--settings", "missing.toml"), "--settings missing.toml: no such file"),
            (("--kinds", "add,nope"), "--kinds names nope, which no --tasks module defines"),
            (("--tasks", "no_such_module_here"), "--tasks no_such_module_here: cannot import"),
            (("--kinds", "add,generate"), "--kinds generate runs generation jobs: give"),
        ],
    )
    def test_bad_flags_exit_2(self, tmp_path: Path, flags: tuple[str, ...], said: str) -> None:
        """Zero, negative or missing values are refused, never replaced by defaults."""
        url = f"sqlite:///{tmp_path}/jobs.db"
        done = worker_cmd(url, "--tasks", "tests.queue_tasks", *flags, cwd=tmp_path)
        assert done.returncode == 2, done.stdout
        assert said in done.stderr
        assert "Traceback" not in done.stderr

    def test_memory_queue_is_refused(self, tmp_path: Path) -> None:
        """memory:// would start a worker nobody can reach: exit 2 naming the alternatives."""
        done = worker_cmd("memory://", "--tasks", "tests.queue_tasks", cwd=tmp_path)
        assert done.returncode == 2
        assert "memory:// lives inside one process" in done.stderr

    def test_a_worker_that_could_run_nothing_is_refused(self, tmp_path: Path) -> None:
        """No --tasks and no client: exit 2 saying how to give it work."""
        done = worker_cmd(f"sqlite:///{tmp_path}/jobs.db", cwd=tmp_path)
        assert done.returncode == 2
        assert "could run nothing: give --tasks MODULE" in done.stderr

    def test_startup_line_names_the_queue_and_kinds(self, tmp_path: Path, sim: SimServer) -> None:
        """The first line says which queue (the default, when no URL) and which kinds it serves."""
        child = subprocess.Popen(
            asyncgen_argv("worker", "--tasks", "tests.queue_tasks", "--base-url", sim.base_url),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
        finally:
            child.send_signal(signal.SIGTERM)
            child.communicate(timeout=30)
        assert "queue sqlite:///asyncgen-jobs.db (the default: no URL was given)" in line
        assert (
            "serves add, shout, explode, leak, slow, stamp, chatty, hold, tally, crawl, crawl_sync,"
            " generate;"
        ) in line
        assert child.returncode == 0

    def test_processes_are_capped_unless_forced(self, tmp_path: Path) -> None:
        """--processes 100000: exit 2 naming the cap and --force-processes; none started."""
        done = worker_cmd(
            f"sqlite:///{tmp_path}/jobs.db",
            "--tasks",
            "tests.queue_tasks",
            "--processes",
            "100000",
            cwd=tmp_path,
        )
        assert done.returncode == 2, done.stderr
        assert "--processes 100000 is more than" in done.stderr
        assert "--force-processes" in done.stderr
        assert "supervisor" not in done.stderr

    def test_a_busy_metrics_port_names_the_flag(self, tmp_path: Path) -> None:
        """--metrics-port on a port in use: one line naming the flag, exit 2."""
        with busy_port() as port:
            done = worker_cmd(
                f"sqlite:///{tmp_path}/jobs.db",
                "--tasks",
                "tests.queue_tasks",
                "--metrics-port",
                str(port),
                cwd=tmp_path,
            )
        assert done.returncode == 2, done.stderr
        assert f"--metrics-port {port}: cannot serve on 127.0.0.1:{port}" in done.stderr
        assert "Traceback" not in done.stderr

    def test_a_damaged_database_exits_2_saying_what_to_do(self, tmp_path: Path) -> None:
        """A queue file damaged mid-file: the worker exits 2 with a sentence, no traceback."""
        path = tmp_path / "jobs.db"
        seed = (
            "import asyncio, sys\n"
            "from asyncgen.queue import open_queue\n"
            "from tests import queue_tasks\n"
            "async def main():\n"
            f"    q = open_queue('sqlite:///{path}')\n"
            "    await q.submit_many([queue_tasks.add.call(i, i) for i in range(3000)])\n"
            "    await q.aclose()\n"
            "asyncio.run(main())\n"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-c", seed], check=True, timeout=60, env=env)
        size = path.stat().st_size
        with path.open("r+b") as stream:
            stream.seek(size // 2)
            stream.write(bytes(range(256)) * 32)
        done = worker_cmd(f"sqlite:///{path}", "--tasks", "tests.queue_tasks", cwd=tmp_path)
        assert done.returncode == 2
        assert "is not a usable SQLite database" in done.stderr
        assert "restore it from a backup" in done.stderr
        assert "Traceback" not in done.stderr


def test_demo_where_nothing_answers_exits_1_with_the_cause() -> None:
    """A demo where no model answers names the cause and exits 1; no speedup is claimed."""
    import socket

    with socket.socket() as closed:  # a port with nothing listening: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    done = asyncgen_cmd("demo", "--base-url", f"http://127.0.0.1:{port}/v1", "--models", "a,b")
    assert done.returncode == 1
    assert "no model answered" in done.stdout
    assert "ConnectionFailedError" in done.stdout
    assert "speedup:" not in done.stdout


class TestStartAndStop:
    @pytest.mark.parametrize("delay", [0.0, 0.1, 0.25, 0.5])
    def test_ctrl_c_during_start_up_is_one_line(
        self, tmp_path: Path, sim: SimServer, delay: float
    ) -> None:
        """Ctrl-C while the command loads (its imports, parsing, checks): no traceback, 130
        (or 0 when it had finished), nothing sent. The delays start after the time this
        machine takes to start Python and import the bare package (which is Python's own
        start-up, before any of the command's code can catch anything), twice over."""
        began = time.monotonic()
        subprocess.run([sys.executable, "-c", "import asyncgen"], check=True, timeout=60)
        delay += 2 * (time.monotonic() - began)
        jobs, out = write_jobs(tmp_path / "in.jsonl", 3), tmp_path / "out.jsonl"
        child = subprocess.Popen(
            asyncgen_argv(*run_args(jobs, out, sim)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
        assert "Traceback" not in stderr, stderr
        assert child.returncode in (0, 130, -signal.SIGINT), stderr
        if child.returncode == 130:
            assert stderr.startswith("asyncgen: interrupted"), stderr

    HOLD_SCRIPT = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from asyncgen.cli._interrupts import held_interrupts, start_work
events = []
try:
    with held_interrupts():
        if sys.argv[2] == "import":
            import pressed_while_loading  # its body presses Ctrl-C, then goes on
            events.append(f"imported {pressed_while_loading.LOADED}")
        else:
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(10_000_000))
            events.append("went on")
        start_work()
        events.append("worked")
except KeyboardInterrupt:
    events.append("interrupted")
print(events, signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""

    @pytest.mark.parametrize("where", ["import", "code"])
    def test_ctrl_c_is_held_out_of_imports_only(self, tmp_path: Path, where: str) -> None:
        """Ctrl-C inside an import (where Python can swallow it in importlib's weakref
        callbacks, printing a traceback) is held until the work starts; anywhere else it
        raises at once. Either way Python's own handler is back afterwards."""
        module = "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n"
        module += "total = sum(range(1_000_000))\nLOADED = 'whole'\n"
        (tmp_path / "pressed_while_loading.py").write_text(module)
        done = subprocess.run(
            [sys.executable, "-c", self.HOLD_SCRIPT, str(tmp_path), where],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        events = ["imported whole", "interrupted"] if where == "import" else ["interrupted"]
        assert done.stdout.strip() == f"{events} True"

    def test_ctrl_c_in_sim_speaks_of_no_results(self) -> None:
        """asyncgen sim interrupted once it serves: "interrupted", and no word of
        results to resume."""
        child = subprocess.Popen(
            asyncgen_argv("sim", "--port", "0"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.startswith("asyncgen simulator: http://")
            base_url = line.split()[2]
            wait_for(lambda: answers(f"{base_url}/models"), 30)  # serving: handlers are set
            child.send_signal(signal.SIGINT)
            _, stderr = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate(timeout=10)
        assert child.returncode in (130, -signal.SIGINT), stderr
        assert "resume" not in stderr
        assert "Traceback" not in stderr

    def test_version(self) -> None:
        """asyncgen --version names the installed version."""
        done = asyncgen_cmd("--version")
        assert done.returncode == 0
        assert done.stdout.strip() == f"asyncgen {asyncgen.__version__}"
