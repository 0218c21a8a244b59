"""The bot: an ``on_message`` handler that never makes one user wait for another.

Each message gets "Thinking..." at once; the answer is worked out in the background and
edited into that message. Two ways to get answers:

- ``InProcessAnswers``: a supervised background task in this process (BackgroundTasks:
  kept until done, failures reported, drained at shutdown);
- ``QueueAnswers``: a job for the "samplellm" agent role on a queue (Redis: instances
  of the role in other processes or machines share the work); the handler's background
  task awaits the job's result.

Either way a failure becomes the fallback reply for that user only, and every line
logged for a message lands in its conversation's log file when a ConversationLog is
configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Protocol

import structlog

from asyncgen import BackgroundTasks, ChatClient, TaskFailure, conversation
from asyncgen.queue import JobQueue

from .agents import answer, samplellm
from .messenger import Message, Messenger

FALLBACK = "Sorry, I could not answer that just now. Please try again in a moment."
THINKING = "Thinking..."
log = structlog.get_logger("chat_bot")


class Answers(Protocol):
    async def __call__(self, message: Message, model: str) -> str: ...


class InProcessAnswers:
    """Answer in this process, through one shared ChatClient."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client

    async def __call__(self, message: Message, model: str) -> str:
        return await answer(message.text, model=model, chat=self.client)


class QueueAnswers:
    """Answer through the "samplellm" agent role: submit a job, await its result."""

    def __init__(self, queue: JobQueue, *, wait: float = 120.0) -> None:
        self.queue = queue
        self.wait = wait
        self.jobs: list[str] = []  # ids submitted, for a look at who answered what

    async def __call__(self, message: Message, model: str) -> str:
        # Submitted inside the conversation: the job carries its ids to the worker.
        job_id = await self.queue.submit(samplellm.call(message.text, model), max_attempts=2)
        self.jobs.append(job_id)
        return str(await self.queue.result(job_id, timeout=self.wait))


class ChatBot:
    """The handler and its polling loop.

    Args:
        messenger: The messenger's bot API.
        answers: InProcessAnswers or QueueAnswers.
        model_for: Which model answers a message (default: ``default_model``).
        instance: This bot process's name, in conversation logs.
        limit: Answers worked on at once; more wait their turn (the "Thinking..." is
            sent at once all the same).
    """

    def __init__(
        self,
        messenger: Messenger,
        answers: Answers,
        *,
        default_model: str = "openai/gpt-4o-mini",
        model_for: Callable[[Message], str] | None = None,
        instance: str = f"bot-{os.getpid()}",
        limit: int = 100,
    ) -> None:
        self.messenger = messenger
        self.answers = answers
        self.model_for = model_for or (lambda message: default_model)
        self.instance = instance
        self.tasks = BackgroundTasks(limit=limit, on_error=self._failed, name="answers")

    async def on_message(self, message: Message) -> None:
        """Reply "Thinking..." and return; the answer follows in the background."""
        with conversation(message.user_id, agent_role="bot", agent_instance=self.instance):
            log.info("RECEIVED", chat_id=message.chat_id, text=message.text)
            placeholder = await self.messenger.send_message(message.chat_id, THINKING)
            log.info("SENT", text=THINKING)
            await self.tasks.spawn(
                self._answer(message, placeholder), name=f"answer update {message.update_id}"
            )

    async def _answer(self, message: Message, placeholder: int) -> None:
        model = self.model_for(message)
        try:
            text = await self.answers(message, model)
        except Exception as exc:  # this user's failure is this user's fallback only
            log.warning("ANSWER_FAILED", model=model, error_type=type(exc).__name__, error=str(exc))
            text = FALLBACK
        await self.messenger.edit_message_text(message.chat_id, placeholder, text)
        log.info("SENT", text=text, edited=placeholder)

    def _failed(self, failure: TaskFailure) -> None:
        # Only a failed edit gets here (answers fail into the fallback above).
        log.error("REPLY_LOST", task=failure.name, error=str(failure.error))

    async def run(self, *, stop: asyncio.Event | None = None, poll: float = 10.0) -> None:
        """Long-poll the messenger and hand each message to ``on_message`` until
        ``stop`` is set; then let running answers finish (up to 30 s)."""
        stop = stop or asyncio.Event()
        offset = 1
        try:
            while not stop.is_set():
                fetch = asyncio.ensure_future(self.messenger.get_updates(offset, poll))
                halt = asyncio.ensure_future(stop.wait())
                await asyncio.wait({fetch, halt}, return_when=asyncio.FIRST_COMPLETED)
                halt.cancel()
                if not fetch.done():
                    fetch.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await fetch
                    break
                for message in fetch.result():
                    offset = max(offset, message.update_id + 1)
                    await self.on_message(message)
        finally:
            await self.tasks.drain(timeout=30)
