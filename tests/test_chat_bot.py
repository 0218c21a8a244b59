"""The chat-bot example, for real: a messenger stand-in, the simulator, and (agent
mode) two worker processes of one role on a real redis-server."""

from __future__ import annotations

import asyncio
import collections
import io
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncgen import ChatClient, ConversationLog, configure_logging, open_queue, open_worker
from asyncgen.queue import JobQueue
from asyncgen.sim import Fault, ModelProfile, SimConfig
from asyncgen.testing import SimServer
from examples.chat_bot import agents as agents_module
from examples.chat_bot.bot import (
    FALLBACK,
    THINKING,
    ChatBot,
    InProcessAnswers,
    QueueAnswers,
)
from examples.chat_bot.messenger import Message, Messenger, MessengerServer
from tests.processes import worker_process

LATENCY = 3.0


def model_for(message: Message) -> str:
    return "broken" if message.user_id == "u5" else "m"


@pytest.fixture
def messenger() -> Iterator[MessengerServer]:
    with MessengerServer() as server:
        yield server


async def agents(url: str, tmp_path: Path, count: int, *extra: str) -> list[Any]:
    """``count`` worker processes serving the samplellm role; returns when all are up."""
    crew = [
        worker_process(
            url,
            tmp_path / "tasks.log",
            "--tasks",
            "examples.chat_bot.agents",
            "--kinds",
            "samplellm",
            "--concurrency",
            "20",
            *extra,
            output=tmp_path / f"agent{i}.log",
        )
        for i in range(count)
    ]
    queue = open_queue(url)
    deadline = time.monotonic() + 30
    while (await queue.statistics()).workers < count:
        assert time.monotonic() < deadline, "agent processes did not start"
        await asyncio.sleep(0.05)
    await queue.aclose()
    return crew


def stop_all(crew: list[Any]) -> None:
    for process in crew:
        process.send_signal(signal.SIGTERM)
    assert [process.wait(30) for process in crew] == [0] * len(crew)


async def converse(
    messenger: MessengerServer, bot: ChatBot, users: list[str], expected: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Users write at once; wait until every placeholder is edited. Returns the
    messages written (with their times) and the bot's outbox."""
    stop = asyncio.Event()
    running = asyncio.create_task(bot.run(stop=stop, poll=5))
    try:
        written = await asyncio.gather(
            *(
                asyncio.to_thread(messenger.user_writes, 100 + i, user, f"question from {user}")
                for i, user in enumerate(users)
            )
        )
        deadline = time.monotonic() + 120
        while sum(1 for m in messenger.outbox() if m["kind"] == "edit") < expected:
            assert time.monotonic() < deadline, "answers did not all arrive"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running
        await bot.messenger.aclose()
    return written, messenger.outbox()


def check_five(written: list[dict[str, Any]], outbox: list[dict[str, Any]]) -> None:
    """Every Thinking... within 0.2 s of its message; all answers within ~1.3 x one
    LLM latency; u5 (its model fails) has the fallback, the other four their answers."""
    sent = {m["chat_id"]: m for m in outbox if m["kind"] == "send"}
    edits = {m["chat_id"]: m for m in outbox if m["kind"] == "edit"}
    assert sorted(sent) == sorted(edits) == [100, 101, 102, 103, 104]
    for i, message in enumerate(written):
        thinking = sent[100 + i]
        assert thinking["text"] == THINKING
        assert thinking["at"] - message["at"] < 0.2
    first = min(message["at"] for message in written)
    assert max(m["at"] for m in edits.values()) - first < 1.3 * LATENCY
    assert edits[104]["text"] == FALLBACK
    for i in range(4):
        assert edits[100 + i]["text"] == f"[m] question from u{i + 1}"


@pytest.fixture
def slow_sim(sim: SimServer) -> SimServer:
    sim.configure(
        SimConfig(
            default=ModelProfile(latency=LATENCY),
            models={"broken": ModelProfile(faults=[Fault(kind="status", status=500)])},
        )
    )
    return sim


USERS = ["u1", "u2", "u3", "u4", "u5"]


async def test_five_users_at_once_in_process(
    messenger: MessengerServer, slow_sim: SimServer
) -> None:
    """Background tasks in this process: nobody waits for anybody else."""
    client = ChatClient(slow_sim.base_url)
    bot = ChatBot(Messenger(messenger.url), InProcessAnswers(client), model_for=model_for)
    written, outbox = await converse(messenger, bot, USERS, expected=5)
    await client.aclose()
    check_five(written, outbox)
    assert bot.tasks.stats.failed == 0  # answers fail into the fallback, not the task


async def test_five_users_at_once_through_agent_processes(
    messenger: MessengerServer,
    slow_sim: SimServer,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Agent roles on Redis: two samplellm worker processes; the same promises."""
    monkeypatch.setenv("ASYNCGEN_BASE_URL", slow_sim.base_url)
    crew = await agents(redis_url, tmp_path, 2)
    queue = open_queue(redis_url)
    try:
        bot = ChatBot(Messenger(messenger.url), QueueAnswers(queue), model_for=model_for)
        written, outbox = await converse(messenger, bot, USERS, expected=5)
    finally:
        stop_all(crew)
        await queue.aclose()
    check_five(written, outbox)


async def test_two_agents_of_one_role_split_100_messages(
    messenger: MessengerServer,
    sim: SimServer,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both instances take some; each message is answered once; a conversation's lines
    from the bot and from the agent process land in one file."""
    sim.configure(SimConfig(default=ModelProfile(latency=0.05)))
    monkeypatch.setenv("ASYNCGEN_BASE_URL", sim.base_url)
    logs = tmp_path / "conversations"
    crew = await agents(redis_url, tmp_path, 2, "--conversation-log", str(logs))
    configure_logging(json=True, stream=io.StringIO(), conversations=ConversationLog(logs))
    queue: JobQueue = open_queue(redis_url)
    answers = QueueAnswers(queue)
    users = [f"user{i}" for i in range(100)]
    try:
        bot = ChatBot(Messenger(messenger.url), answers, default_model="m")
        _, outbox = await converse(messenger, bot, users, expected=100)
        workers = collections.Counter([(await queue.status(j)).worker for j in answers.jobs])
    finally:
        stop_all(crew)
        await queue.aclose()
    edits = [m for m in outbox if m["kind"] == "edit"]
    assert sorted(m["chat_id"] for m in edits) == list(range(100, 200))  # once each
    assert all(m["text"] == f"[m] question from user{m['chat_id'] - 100}" for m in edits)
    assert sim.stats()["statuses"] == {"200": 100}
    assert len(workers) == 2, workers  # both instances took some
    assert sum(workers.values()) == 100
    (one,) = (logs / "user7").rglob("*.log")
    text = one.read_text()
    assert "  bot/" in text
    assert "RECEIVED" in text
    assert "  samplellm/" in text
    assert "PROCESSING_COMPLETE" in text


async def test_a_reply_task_pushes_the_answer_from_the_agents_side(
    messenger: MessengerServer, sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Push mode: the handler submits the answer job and a send_reply job depending on
    it, and returns; a worker runs both, the reply edits the placeholder."""
    monkeypatch.setenv("ASYNCGEN_BASE_URL", sim.base_url)
    url = f"sqlite:///{tmp_path}/jobs.db"
    queue = open_queue(url)
    for role in (agents_module.samplellm, agents_module.send_reply):
        queue.register(role)
    client = Messenger(messenger.url)
    placeholder = await client.send_message(7, THINKING)
    await client.aclose()
    answer = await queue.submit(agents_module.samplellm.call("hi there", "m"))
    reply = await queue.submit(
        agents_module.send_reply.call(answer, 7, placeholder, messenger.url, url),
        depends_on=[answer],
    )
    async with open_worker(queue, concurrency=2):
        await queue.result(reply, timeout=30)
    await queue.aclose()
    edits = [m for m in await asyncio.to_thread(messenger.outbox) if m["kind"] == "edit"]
    assert [(m["chat_id"], m["message_id"], m["text"]) for m in edits] == [
        (7, placeholder, "[m] hi there")
    ]
