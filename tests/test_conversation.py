"""Conversation logs: one file per conversation, its own lines only, secrets masked."""

from __future__ import annotations

import asyncio
import io
import os
import re
import time
from pathlib import Path

import pytest
import structlog

from asyncgen import (
    ChatClient,
    ConversationLog,
    GenerationJob,
    RetryPolicy,
    configure_logging,
    conversation,
    generate,
    open_queue,
    open_worker,
)
from asyncgen.sim import Fault, ModelProfile, SimConfig
from asyncgen.testing import SimServer
from tests import queue_tasks

LINE = re.compile(
    r"^(?P<wall>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)  (?P<elapsed>[+-]\d+\.\d{3})  "
    r"(?P<agent>\S+)  (?P<event>\S+)(?P<rest>.*)$"
)
log = structlog.get_logger("test.bot")


@pytest.fixture
def sink(tmp_path: Path) -> ConversationLog:
    conversations = ConversationLog(tmp_path / "conversations")
    configure_logging(json=True, stream=io.StringIO(), conversations=conversations)
    return conversations


def files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.log"))


def parsed(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    return [m.groupdict() for m in matches if m]


async def talk(user: str, words: list[str], gap: float) -> None:
    with conversation(user, agent_role="bot", agent_instance="handler-1"):
        for word in words:
            log.info("RECEIVED", text=word)
            await asyncio.sleep(gap)
        log.info("SENT", text=f"bye {user}")


class TestFiles:
    async def test_two_concurrent_conversations_write_two_files(
        self, sink: ConversationLog
    ) -> None:
        """Each file holds only its own conversation's lines, elapsed counts from its
        start, and the layout is <user>/<YYYY.MM.DD>/<HH-MM-SS>.log."""
        await asyncio.gather(
            talk("alice", ["a1", "a2", "a3"], 0.1), talk("bob", ["b1", "b2"], 0.15)
        )
        found = files(sink.directory)
        assert [p.relative_to(sink.directory).parts[0] for p in found] == ["alice", "bob"]
        for path in found:
            rel = path.relative_to(sink.directory)
            assert re.fullmatch(r"\d{4}\.\d\d\.\d\d", rel.parts[1])
            assert re.fullmatch(r"\d\d-\d\d-\d\d\.log", rel.parts[2])  # no colons
        alice, bob = (parsed(p) for p in found)
        assert [line["event"] for line in alice] == [
            "conversation_started",
            "RECEIVED",
            "RECEIVED",
            "RECEIVED",
            "SENT",
        ]
        assert "a1" in alice[1]["rest"]
        assert all("b" not in line["rest"] for line in alice[1:4])
        assert all("a" not in line["rest"] for line in bob[1:3])
        assert {line["agent"] for line in alice} == {"bot/handler-1"}
        # elapsed: 0 at the start, ~0.3 s at alice's last line (three 0.1 s gaps)
        assert float(alice[0]["elapsed"]) == pytest.approx(0, abs=0.05)
        assert 0.28 <= float(alice[-1]["elapsed"]) < 0.3 * 3
        assert 0.28 <= float(bob[-1]["elapsed"]) < 0.3 * 3

    async def test_a_key_in_a_prompt_never_lands_in_a_file(self, sink: ConversationLog) -> None:
        with conversation("carol"):
            log.info(
                "RECEIVED",
                text="my key is sk-live1234567890abcdef, use it",
                headers={"Authorization": "Bearer abcdefghijklmnop"},
            )
        text = "".join(p.read_text() for p in files(sink.directory))
        assert "RECEIVED" in text
        assert "sk-live1234567890abcdef" not in text
        assert "abcdefghijklmnop" not in text

    async def test_same_user_same_second_gets_a_second_file(self, sink: ConversationLog) -> None:
        with conversation("dave"), conversation("dave"):
            log.info("inner")
        names = [p.name for p in files(sink.directory)]
        assert len(names) == 2
        assert any(re.fullmatch(r"\d\d-\d\d-\d\d\.2\.log", n) for n in names)

    async def test_a_hostile_user_id_stays_inside_the_directory(
        self, sink: ConversationLog, tmp_path: Path
    ) -> None:
        with conversation("../../etc"):
            log.info("hello")
        found = files(tmp_path)
        assert len(found) == 1
        assert found[0].is_relative_to(sink.directory)

    async def test_lines_outside_a_conversation_go_nowhere(self, sink: ConversationLog) -> None:
        log.info("not in a conversation")
        assert files(sink.directory) == []


class TestHousekeeping:
    def test_old_files_are_swept_and_open_files_capped(self, tmp_path: Path) -> None:
        root = tmp_path / "c"
        old = root / "eve" / "2020.01.01" / "10-00-00.log"
        old.parent.mkdir(parents=True)
        old.write_text("old\n")
        week = time.time() - 7 * 86_400
        os.utime(old, (week, week))
        keep = root / "eve" / "2026.01.01" / "10-00-00.log"
        keep.parent.mkdir(parents=True)
        keep.write_text("recent\n")
        sink = ConversationLog(root, retention=86_400, max_open=2)
        assert not old.exists()
        assert not old.parent.exists()  # the emptied day went too
        assert keep.exists()
        configure_logging(json=True, stream=io.StringIO(), conversations=sink)
        with conversation("u1"):
            log.info("RECEIVED")
            for user in ("u2", "u3", "u4", "u5"):
                with conversation(user):
                    log.info("RECEIVED")
                    assert sink.open_files <= 2
            log.info("SENT")  # u1's file was closed meanwhile: opened again, appended
        assert sink.open_files <= 2
        (first,) = files(root / "u1")
        assert [line["event"] for line in parsed(first)] == [
            "conversation_started",
            "RECEIVED",
            "SENT",
        ]
        assert len(files(root)) == 6  # five conversations and the kept old one
        sink.close()

    @pytest.mark.parametrize(
        ("options", "message"), [({"retention": 0}, "retention"), ({"max_open": 0}, "max_open")]
    )
    def test_bad_options(self, tmp_path: Path, options: dict[str, float], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            ConversationLog(tmp_path, **options)  # type: ignore[arg-type]


class TestAcrossTheLibrary:
    async def test_generate_retries_land_in_the_conversation(
        self, sink: ConversationLog, sim: SimServer
    ) -> None:
        """A retried request inside a conversation: the retry's line is in its file."""
        sim.configure(
            SimConfig(default=ModelProfile(faults=[Fault(kind="status", status=503, first=1)]))
        )
        client = ChatClient(sim.base_url)
        with conversation("frank"):
            results = await generate(
                [GenerationJob(model="m", prompt="hi")],
                client=client,
                retry=RetryPolicy(base_delay=0.01, jitter=0),
            )
        await client.aclose()
        assert results[0].ok
        events = [line["event"] for line in parsed(files(sink.directory)[0])]
        assert events[0] == "conversation_started"
        assert any("retry" in event for event in events), events

    async def test_a_queue_job_carries_the_conversation_to_its_worker(
        self, sink: ConversationLog, tmp_path: Path
    ) -> None:
        """Submitted inside a conversation, the job's log lines (in the worker) land in
        the same file, marked with the job's kind and the worker's name."""
        queue = open_queue(f"sqlite:///{tmp_path}/jobs.db")
        queue.register(queue_tasks.chatty)
        with conversation("grace"):
            log.info("RECEIVED", text="hello")
            job_id = await queue.submit(queue_tasks.chatty.call("hello"))
        async with open_worker(queue, name="agent-1"):
            assert await queue.result(job_id, timeout=10) == "HELLO"
        await queue.aclose()
        lines = parsed(files(sink.directory)[0])
        worked = [line for line in lines if line["event"] == "PROCESSING_COMPLETE"]
        assert len(worked) == 1
        assert worked[0]["agent"] == "chatty/agent-1"
