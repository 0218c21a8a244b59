"""The Batch API mode against the simulator's Batch API, over real sockets: `asyncgen run
--batch-api` as a real subprocess (killed with SIGKILL and resumed), and the library."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import respx

import asyncgen
from asyncgen import ChatClient, GenerationJob
from asyncgen.llm.batch_api._folder import BatchRecord, RequestFile, RunFolder
from asyncgen.llm.batch_api._lines import request_line
from asyncgen.llm.batch_api._run import BatchOutcome, BatchRun
from asyncgen.testing import BatchProfile, SimConfig, SimServer, sim_server
from tests.processes import asyncgen_argv
from tests.test_cli import asyncgen_cmd, records, write_jobs


def batch_sim(sim: SimServer, **batch: float) -> None:
    sim.configure(SimConfig(batch=BatchProfile(**batch)))  # type: ignore[arg-type]


def run_args(source: Path, out: Path, sim: SimServer, *extra: str) -> list[str]:
    batch_api = ("--base-url", sim.base_url, "--batch-api", "--poll", "0.2")
    return ["run", str(source), "-o", str(out), *batch_api, *extra]


def state(out: Path) -> list[dict[str, object]]:
    path = out.with_name(out.name + ".batch") / "state.json"
    if not path.exists():
        return []
    try:
        return list(json.loads(path.read_text())["batches"])
    except ValueError:
        return []


def kill_when_created(args: list[str], out: Path, batches: int) -> None:
    """Start the command; SIGKILL it once ``batches`` batches are recorded as created."""
    inherited = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    child = subprocess.Popen(
        asyncgen_argv(*args),
        env=inherited,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: sum(1 for b in state(out) if b.get("id")) == batches)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)


def write_pending(folder: Path, n: int, marker: str) -> Path:
    """A run folder whose state has one batch recorded but not (yet) given an id."""
    jobs = [GenerationJob(id=f"q{i}", model="m", prompt=f"q{i}") for i in range(n)]
    folder.mkdir()
    chunk = folder / "requests-00001.jsonl"
    chunk.write_text("".join(json.dumps(request_line(j)) + "\n" for j in jobs))
    record = BatchRecord(marker=marker, chunk=chunk.name, requests=n)
    (folder / "state.json").write_text(json.dumps({"version": 1, "batches": [record.__dict__]}))
    return chunk


def wait_for(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


class TestCommand:
    def test_kill_9_in_flight_then_resume_creates_no_batch_twice(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """10,000 lines in 3 batches; the command is killed while they run; run again,
        it picks them up: 3 batches created in all, every line answered once, and the
        online mode then agrees that nothing is left (same fingerprints)."""
        batch_sim(sim, complete_after=3.0)
        source, out = write_jobs(tmp_path / "in.jsonl", 10_000), tmp_path / "out.jsonl"
        kill_when_created(run_args(source, out, sim, "--batch-size", "4000"), out, 3)
        assert sim.stats()["batches_created"] == 3
        before = {r["id"] for r in records(out)} if out.exists() else set()
        again = asyncgen_cmd(*run_args(source, out, sim, "--batch-size", "4000"))
        assert again.returncode == 0, again.stderr
        assert "picking up 3 batch(es)" in again.stdout
        assert sim.stats()["batches_created"] == 3
        lines = records(out)
        assert len(lines) == 10_000
        assert len({r["id"] for r in lines}) == 10_000
        assert all(r["ok"] and r["batch_api"] for r in lines)
        written = [r for r in lines if r["id"] not in before]  # by the second run
        usages = [r["usage"] for r in written]
        tokens = sum(int(u["total_tokens"]) for u in usages if isinstance(u, dict))
        summary = next(s for s in again.stdout.splitlines() if "summary: batch api:" in s)
        assert f"{len(written)} ok, 0 failed, {tokens} tokens, $" in summary  # as online
        assert not out.with_name("out.jsonl.batch").exists()  # all read: folder removed
        online = asyncgen_cmd("run", str(source), "-o", str(out), "--base-url", sim.base_url)
        assert online.returncode == 0, online.stderr
        assert sim.requests() == 0

    def test_expired_requests_go_again_as_a_batch(self, tmp_path: Path, sim: SimServer) -> None:
        """A fifth of the first batch's requests expire: they are sent again in a new
        batch and answered."""
        batch_sim(sim, complete_after=0.2, expire_rate=0.2, first=1)
        source, out = write_jobs(tmp_path / "in.jsonl", 500), tmp_path / "out.jsonl"
        done = asyncgen_cmd(*run_args(source, out, sim))
        assert done.returncode == 0, done.stderr
        lines = records(out)
        assert len(lines) == 500
        assert all(r["ok"] for r in lines)
        assert sim.stats()["batches_created"] == 2
        assert sim.requests() == 0
        again = [r for r in lines if r["attempts"] == 2]
        assert 60 <= len(again) <= 140  # the expired fifth, answered by the second batch

    def test_expired_requests_go_again_online(self, tmp_path: Path, sim: SimServer) -> None:
        """--batch-fallback online: the expired requests are answered by the chat
        endpoint instead, once each."""
        batch_sim(sim, complete_after=0.2, expire_rate=0.2, first=1)
        source, out = write_jobs(tmp_path / "in.jsonl", 300), tmp_path / "out.jsonl"
        done = asyncgen_cmd(*run_args(source, out, sim, "--batch-fallback", "online"))
        assert done.returncode == 0, done.stderr
        lines = records(out)
        assert len(lines) == 300
        assert all(r["ok"] for r in lines)
        assert sim.stats()["batches_created"] == 1
        assert 30 <= sim.requests() <= 90  # the expired fifth, once each
        assert len({r["id"] for r in lines}) == 300

    def test_cancel_writes_what_was_done_and_the_rest_runs_later(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """Batches in flight are cancelled with --cancel: what they had done is written;
        the next run submits only the rest."""
        batch_sim(sim, complete_after=4.0)
        source, out = write_jobs(tmp_path / "in.jsonl", 400), tmp_path / "out.jsonl"
        kill_when_created(run_args(source, out, sim, "--batch-size", "200"), out, 2)
        time.sleep(1.0)  # a quarter of the window: about a quarter done
        cancel = asyncgen_cmd(*run_args(source, out, sim, "--cancel"))
        assert cancel.returncode == 1, cancel.stderr  # some jobs are not answered yet
        assert "cancelled 2 batch(es)" in cancel.stdout
        assert sim.stats()["batches_cancelled"] == 2
        partial = records(out)
        assert 0 < len(partial) < 400
        batch_sim(sim, complete_after=0.1)
        rest = asyncgen_cmd(*run_args(source, out, sim))
        assert rest.returncode == 0, rest.stderr
        lines = records(out)
        assert len(lines) == 400
        assert len({r["id"] for r in lines}) == 400

    def test_a_402_stops_submitting_and_the_next_run_submits_the_rest(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """No credits: nothing is submitted (exit 1, said why); with credits, all run."""
        sim.configure(SimConfig(credits=0.0))
        source, out = write_jobs(tmp_path / "in.jsonl", 50), tmp_path / "out.jsonl"
        broke = asyncgen_cmd(*run_args(source, out, sim, "--batch-size", "20"))
        assert broke.returncode == 1
        assert "submitting stopped" in broke.stderr
        assert "402" in broke.stderr
        assert sim.stats()["batches_created"] == 0
        assert not out.exists() or records(out) == []
        batch_sim(sim, complete_after=0.1)
        paid = asyncgen_cmd(*run_args(source, out, sim, "--batch-size", "20"))
        assert paid.returncode == 0, paid.stderr
        assert len(records(out)) == 50
        assert sim.stats()["batches_created"] == 3

    def test_cancel_needs_batch_api(self, tmp_path: Path, sim: SimServer) -> None:
        source, out = write_jobs(tmp_path / "in.jsonl", 1), tmp_path / "out.jsonl"
        done = asyncgen_cmd("run", str(source), "-o", str(out), "--sim", "--cancel")
        assert done.returncode == 2
        assert "--batch-api" in done.stderr


class TestLibrary:
    async def test_generate_batch_in_order_at_the_batch_price(self, sim: SimServer) -> None:
        """Results in input order, answered, at half the online cost."""
        batch_sim(sim, complete_after=0.1)
        jobs = [GenerationJob(id=f"q{i}", model="m", prompt=f"question {i}") for i in range(30)]
        async with ChatClient(sim.base_url) as client:
            online = await client.chat("m", jobs[0].to_messages())
            results = await asyncgen.generate_batch(
                jobs, client=client, poll_interval=0.05, max_requests=10
            )
        assert [r.job.id for r in results] == [j.id for j in jobs]
        assert all(r.ok for r in results)
        assert results[0].text == online.text
        assert results[0].completion is not None
        assert online.usage.cost is not None
        assert results[0].completion.usage.cost == pytest.approx(online.usage.cost / 2)
        assert sim.stats()["batches_created"] == 3

    async def test_the_batch_api_goes_through_the_clients_own_transport(
        self, sim: SimServer
    ) -> None:
        """client.batches sends on the client's pool, of its backend: with aiohttp, a
        whole run (upload, create, poll, download) while respx refuses every httpx
        request (a second httpx client of the Batch API's own would fail)."""
        batch_sim(sim, complete_after=0.1)
        jobs = [GenerationJob(id=f"q{i}", model="m", prompt=f"question {i}") for i in range(6)]
        with respx.mock(assert_all_mocked=True, assert_all_called=False):
            async with ChatClient(sim.base_url, backend="aiohttp") as client:
                results = await asyncgen.generate_batch(
                    jobs, client=client, poll_interval=0.05, max_requests=4
                )
                assert client.open_pools == 1
        assert [r.text for r in results] == [f"[m] question {i}" for i in range(6)]
        assert sim.stats()["batches_created"] == 2

    @staticmethod
    async def crashed_after_create(client: ChatClient, folder: Path, n: int) -> str:
        """The state a crash between creating a batch and writing its id leaves: a
        record without an id, and the provider's batch with its marker. Its batch id."""
        chunk = write_pending(folder, n, "marker-1")
        api = client.batches
        created = await api.create(await api.upload(chunk), "marker-1")
        return str(created["id"])

    async def test_a_batch_created_just_before_a_crash_is_found_by_its_marker(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """A state record without an id is matched to the provider's batch by its
        marker, not created again."""
        batch_sim(sim, complete_after=0.1)
        got: list[str] = []
        async with ChatClient(sim.base_url) as client:
            created = await self.crashed_after_create(client, tmp_path / "run", 5)
            run = BatchRun(
                client, tmp_path / "run", on_outcome=lambda o: got.append(o.id), poll_interval=0.05
            )
            assert set(run.in_flight()) == {f"q{i}" for i in range(5)}
            await run.submit([])
            await run.wait()
        assert run.records[0].id == created
        assert sorted(got) == [f"q{i}" for i in range(5)]
        assert sim.stats()["batches_created"] == 1

    async def test_cancel_finds_a_batch_created_just_before_a_crash(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """--cancel after such a crash cancels that batch too (found by its marker),
        rather than leave it running unseen."""
        batch_sim(sim, complete_after=30.0)
        async with ChatClient(sim.base_url) as client:
            created = await self.crashed_after_create(client, tmp_path / "run", 3)
            run = BatchRun(client, tmp_path / "run", on_outcome=print, poll_interval=0.05)
            assert await run.cancel() == 1
        assert run.records[0].id == created
        assert run.records[0].status == "cancelled"
        assert sim.stats()["batches_cancelled"] == 1

    def test_settings_are_checked(self, tmp_path: Path) -> None:
        client = ChatClient("http://127.0.0.1:9/v1")
        with pytest.raises(ValueError, match="max_requests"):
            BatchRun(client, tmp_path, on_outcome=print, max_requests=60_000)
        with pytest.raises(ValueError, match="resubmit"):
            BatchRun(client, tmp_path, on_outcome=print, resubmit="email")  # type: ignore[arg-type]


@pytest.mark.parametrize("flag", [["--max-cost", "1"], ["--deadline", "5"], ["--dashboard"]])
def test_online_only_flags_are_refused(tmp_path: Path, sim: SimServer, flag: list[str]) -> None:
    """Flags that mean nothing to a batch are refused (exit 2), not ignored."""
    source, out = write_jobs(tmp_path / "in.jsonl", 1), tmp_path / "out.jsonl"
    done = asyncgen_cmd(*run_args(source, out, sim, *flag))
    assert done.returncode == 2
    assert flag[0] in done.stderr
    assert "--batch-api" in done.stderr
    assert sim.stats()["batches_created"] == 0


async def test_a_failure_that_persists_ends_as_a_failed_line_after_three_rounds(
    tmp_path: Path, sim: SimServer
) -> None:
    """Every request answered 500, every time: each goes again twice (3 batches in all),
    then is handed on as failed with the provider's error and 3 attempts."""
    batch_sim(sim, complete_after=0.05, fail_rate=1.0)
    jobs = [GenerationJob(id=f"q{i}", model="m", prompt=f"q{i}") for i in range(4)]
    got: list[BatchOutcome] = []
    async with ChatClient(sim.base_url) as client:
        run = BatchRun(client, tmp_path / "run", on_outcome=got.append, poll_interval=0.05)
        await run.submit(jobs)
        await run.wait()
    assert sorted(o.id for o in got) == [j.id for j in jobs]
    assert all(o.completion is None for o in got)
    assert all(isinstance(o.error, asyncgen.ServerError) for o in got)
    assert {o.attempts for o in got} == {3}
    assert sim.stats()["batches_created"] == 3


def test_the_response_cache_answers_before_anything_is_submitted(
    tmp_path: Path, sim: SimServer
) -> None:
    """--cache with --batch-api: the first run's batch answers fill the cache; the same
    file again submits no batch and writes every line from the cache at $0; an online
    run with the same cache then sends nothing either."""
    batch_sim(sim, complete_after=0.05)
    source = write_jobs(tmp_path / "in.jsonl", 30)
    cache = f"sqlite:///{tmp_path / 'cache.db'}"
    first = asyncgen_cmd(*run_args(source, tmp_path / "a.jsonl", sim, "--cache", cache))
    assert first.returncode == 0, first.stderr
    assert sim.stats()["batches_created"] == 1
    second = asyncgen_cmd(*run_args(source, tmp_path / "b.jsonl", sim, "--cache", cache))
    assert second.returncode == 0, second.stderr
    assert sim.stats()["batches_created"] == 1
    lines = records(tmp_path / "b.jsonl")
    assert len(lines) == 30
    assert all(r["cached"] and r["usage"]["cost"] == 0.0 for r in lines)  # type: ignore[index]
    assert "summary: cache: 30 hit(s) at $0" in second.stdout
    online = asyncgen_cmd(
        "run",
        str(source),
        "-o",
        str(tmp_path / "c.jsonl"),
        "--base-url",
        sim.base_url,
        "--cache",
        cache,
    )
    assert online.returncode == 0, online.stderr
    assert sim.requests() == 0


def sim_args(source: Path, out: Path, *extra: str) -> list[str]:
    return ["run", str(source), "-o", str(out), "--sim", "--batch-api", "--poll", "0.2", *extra]


class TestInFlight:
    """Batches recorded in flight are never paid for twice, never lost, never mistaken."""

    def test_an_online_run_refuses_while_batches_are_in_flight(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """After a killed --batch-api run, the online command exits 2 naming --batch-api and
        --cancel, sends nothing and writes nothing; --batch-api then picks the batch up."""
        batch_sim(sim, complete_after=2.0)
        source, out = write_jobs(tmp_path / "in.jsonl", 30), tmp_path / "out.jsonl"
        kill_when_created(run_args(source, out, sim), out, 1)
        online = asyncgen_cmd("run", str(source), "-o", str(out), "--base-url", sim.base_url)
        assert online.returncode == 2, online.stderr
        assert "1 batch(es) in flight" in online.stderr
        assert "--batch-api" in online.stderr
        assert "--cancel" in online.stderr
        assert "Traceback" not in online.stderr
        assert sim.requests() == 0
        assert not out.exists() or records(out) == []
        picked = asyncgen_cmd(*run_args(source, out, sim))
        assert picked.returncode == 0, picked.stderr
        assert sim.stats()["batches_created"] == 1
        assert len(records(out)) == 30

    def test_a_prompt_edited_while_in_flight_is_not_given_the_old_answer(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """A job whose prompt changed while its batch ran is sent again; the old request's
        answer is dropped, and the line written carries the new request's fingerprint."""
        batch_sim(sim, complete_after=2.0)
        source, out = write_jobs(tmp_path / "in.jsonl", 20), tmp_path / "out.jsonl"
        kill_when_created(run_args(source, out, sim), out, 1)
        lines = source.read_text().splitlines()
        lines[3] = json.dumps({"id": "j3", "prompt": "an edited prompt", "model": "m"})
        source.write_text("\n".join(lines) + "\n")
        edited = GenerationJob(id="j3", model="m", prompt="an edited prompt").fingerprint()
        again = asyncgen_cmd(*run_args(source, out, sim))
        assert again.returncode == 0, again.stderr
        assert "1 answer(s) from batches in flight were dropped" in again.stdout
        written = {str(r["id"]): r for r in records(out)}
        assert len(written) == 20
        assert len(records(out)) == 20  # nothing written twice
        assert written["j3"]["fingerprint"] == edited
        assert sim.stats()["batches_created"] == 2

    def test_forget_batches_drops_them_and_runs_the_jobs(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """--forget-batches removes the recorded batches (said on stderr) and the online
        run then runs every job."""
        batch_sim(sim, complete_after=2.0)
        source, out = write_jobs(tmp_path / "in.jsonl", 10), tmp_path / "out.jsonl"
        kill_when_created(run_args(source, out, sim), out, 1)
        forgot = asyncgen_cmd(
            "run", str(source), "-o", str(out), "--base-url", sim.base_url, "--forget-batches"
        )
        assert forgot.returncode == 0, forgot.stderr
        assert "forgot 1 recorded batch(es)" in forgot.stderr
        assert not out.with_name("out.jsonl.batch").exists()
        assert len(records(out)) == 10
        assert sim.requests() == 10

    def test_a_batch_the_provider_does_not_know_is_no_dead_end(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """A recorded batch that another server answers 404 for: exit 1 with one line that
        names --resubmit-missing and --forget-batches; --resubmit-missing then sends its
        requests again as a new batch and every job is answered once."""
        batch_sim(sim, complete_after=3.0)
        source, out = write_jobs(tmp_path / "in.jsonl", 25), tmp_path / "out.jsonl"
        kill_when_created(run_args(source, out, sim), out, 1)
        with sim_server() as other:
            batch_sim(other, complete_after=0.1)
            lost = asyncgen_cmd(*run_args(source, out, other))
            assert lost.returncode == 1, lost.stderr
            assert "is not known to" in lost.stderr
            assert "--resubmit-missing" in lost.stderr
            assert "--forget-batches" in lost.stderr
            assert "Traceback" not in lost.stderr
            found = asyncgen_cmd(*run_args(source, out, other, "--resubmit-missing"))
            assert found.returncode == 0, found.stderr
            assert other.stats()["batches_created"] == 1
        written = records(out)
        assert sorted(str(r["id"]) for r in written) == sorted(f"j{i}" for i in range(25))

    def test_a_sim_batch_run_resumes_after_kill_9(self, tmp_path: Path) -> None:
        """--sim --batch-api killed mid-run: the same command again (a new simulator, which
        cannot know the old one's batches) sends them again and answers every job once."""
        source, out = write_jobs(tmp_path / "in.jsonl", 40), tmp_path / "out.jsonl"
        kill_when_created(sim_args(source, out), out, 1)
        again = asyncgen_cmd(*sim_args(source, out))
        assert again.returncode == 0, again.stderr
        written = records(out)
        assert sorted(str(r["id"]) for r in written) == sorted(f"j{i}" for i in range(40))

    def test_the_state_folder_deleted_mid_run_is_made_again(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """OUT.batch/ removed while two batches run: the run re-creates it (request files
        fetched back from the provider), answers every job, and creates no batch again."""
        batch_sim(sim, complete_after=2.0)
        source, out = write_jobs(tmp_path / "in.jsonl", 60), tmp_path / "out.jsonl"
        inherited = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        child = subprocess.Popen(
            asyncgen_argv(*run_args(source, out, sim, "--batch-size", "30")),
            env=inherited,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: sum(1 for b in state(out) if b.get("id")) == 2)
            delete_while_written(out.with_name("out.jsonl.batch"))
            _, stderr = child.communicate(timeout=60)
        finally:
            child.kill()
            child.communicate()  # its pipes closed here, not by a later test's collector
        assert child.returncode == 0, stderr
        assert "Errno" not in stderr
        assert sorted(str(r["id"]) for r in records(out)) == sorted(f"j{i}" for i in range(60))
        assert sim.stats()["batches_created"] == 2

    def test_writes_survive_the_folder_deleted_under_them(self, tmp_path: Path) -> None:
        """A thread deletes the run's folder the moment a hidden file shows in it, once per
        write, while the state is saved and request files are placed: every write lands
        whole (the race that failed a CI run once: the folder went between the hidden
        file and its rename)."""
        folder = RunFolder(tmp_path / "run.batch")
        armed, stop = threading.Event(), threading.Event()
        deleted = 0

        def delete() -> None:
            nonlocal deleted
            while not stop.is_set():
                if not armed.wait(0.01):
                    continue
                try:
                    hidden = any(p.name.startswith(".") for p in folder.path.iterdir())
                except FileNotFoundError:
                    hidden = False
                if hidden:
                    shutil.rmtree(folder.path, ignore_errors=True)
                    deleted += 1
                    armed.clear()

        deleter = threading.Thread(target=delete)
        deleter.start()
        try:
            for number in range(1, 201):
                armed.set()
                folder.save([BatchRecord(marker=f"m{number}", chunk="c", requests=number)])
                armed.set()
                chunk = RequestFile(folder.path, number)
                chunk.write(b'{"custom_id": "x"}\n')
                chunk.close()
        finally:
            stop.set()
            deleter.join()
        assert deleted > 100  # the race was run, not dodged
        folder.save([BatchRecord(marker="last", chunk="c", requests=1)])
        assert [r.marker for r in folder.load()] == ["last"]
        assert not [p for p in folder.path.iterdir() if p.name.startswith(".")]


def delete_while_written(folder: Path) -> None:
    """Delete a folder the run may write into meanwhile: rmtree again until a pass finds
    it whole (the run makes it again at its next write; that is what is tested)."""
    for _ in range(100):
        try:
            shutil.rmtree(folder)
            return
        except OSError:  # a file appeared while the folder was being emptied
            time.sleep(0.01)
    raise AssertionError(f"{folder} could not be deleted in 100 tries")


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("{not json", "not JSON"),
        ("[]", "not a mapping with a 'batches' list"),
        ('{"batches": [], "extra": 1}', "unknown key(s) 'extra'"),
        (
            '{"batches": [{"marker": "m", "chunk": "c", "requests": 1, "colour": 2}]}',
            "unknown key(s) 'colour'",
        ),
        ('{"batches": [{"marker": "m", "chunk": "../x", "requests": 1}]}', "not a file"),
        ("\udcff", "not JSON"),
    ],
)
@pytest.mark.parametrize("mode", ["online", "batch"])
def test_a_damaged_state_file_is_one_line_and_exit_2(
    tmp_path: Path, sim: SimServer, content: str, said: str, mode: str
) -> None:
    """A corrupted OUT.batch/state.json: one line naming the file and the way on
    (--forget-batches), exit 2, nothing sent, no output file left behind."""
    source, out = write_jobs(tmp_path / "in.jsonl", 3), tmp_path / "out.jsonl"
    folder = out.with_name("out.jsonl.batch")
    folder.mkdir()
    (folder / "state.json").write_bytes(content.encode("utf-8", "surrogateescape"))
    extra = ["--batch-api", "--poll", "0.2"] if mode == "batch" else []
    done = asyncgen_cmd("run", str(source), "-o", str(out), "--base-url", sim.base_url, *extra)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert "--forget-batches" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert sim.requests() == 0
    assert not out.exists()


def test_the_sim_child_dies_with_its_parent(tmp_path: Path) -> None:
    """kill -9 of `asyncgen run --sim`: its simulator process ends too."""
    import psutil

    source, out = write_jobs(tmp_path / "in.jsonl", 5000), tmp_path / "out.jsonl"
    parent = subprocess.Popen(
        asyncgen_argv("run", str(source), "-o", str(out), "--sim", "--concurrency", "2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: out.exists() and out.stat().st_size > 0)
        children = psutil.Process(parent.pid).children()
        assert len(children) == 1
    finally:
        parent.kill()
        parent.wait(10)
    _gone, alive = psutil.wait_procs(children, timeout=15)
    for process in alive:
        process.kill()
    assert alive == []


async def test_generate_batch_reads_a_quick_batch_at_once(sim: SimServer) -> None:
    """generate_batch with its defaults on batches that end in 0.5 s: answered in a few
    seconds (the first poll came after 30 s before)."""
    batch_sim(sim, complete_after=0.5)
    jobs = [GenerationJob(id=f"q{i}", model="m", prompt=f"q{i}") for i in range(5)]
    began = time.monotonic()
    async with ChatClient(sim.base_url) as client:
        results = await asyncgen.generate_batch(jobs, client=client)
    assert [r.ok for r in results] == [True] * 5
    assert time.monotonic() - began < 10


async def test_an_unreachable_batch_api_is_said_as_such(tmp_path: Path) -> None:
    """A host that cannot be reached (refused, as a DNS failure is) is a typed
    ConnectionFailedError after the retries, and the command calls it unreachable, not a
    refusal."""
    import socket

    from asyncgen.cli._batch_api import batch_failure

    with socket.socket() as closed:  # a port with nothing listening
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with ChatClient(f"http://127.0.0.1:{port}/v1") as client:
        run = BatchRun(
            client,
            tmp_path / "run",
            on_outcome=lambda o: None,
            retry=asyncgen.RetryPolicy(max_attempts=2, base_delay=0.01),
        )
        with pytest.raises(asyncgen.ConnectionFailedError) as failed:
            await run.submit([GenerationJob(id="a", model="m", prompt="x")])
    assert batch_failure(failed.value) == "could not reach the Batch API"
    assert batch_failure(asyncgen.BadRequestError("no")) == "the Batch API refused"


@respx.mock
async def test_a_result_file_line_that_is_not_json_raises() -> None:
    """HTTP layer: an output-file line that is not UTF-8 JSON is InvalidResponseError
    naming the line, never skipped (its request would vanish)."""
    body = b'{"custom_id": "a", "response": {}}\n\xff\xfe not json\n'
    respx.get("http://batch.test/v1/files/f1/content").respond(200, content=body)
    async with ChatClient("http://batch.test/v1") as client:
        api = client.batches
        got: list[dict[str, object]] = []

        async def read_all() -> None:
            async for record in api.lines("f1"):
                got.append(record)

        with pytest.raises(asyncgen.InvalidResponseError, match="line 2 is not UTF-8 JSON"):
            await read_all()
    assert got == [{"custom_id": "a", "response": {}}]
