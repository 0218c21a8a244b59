"""The "samplellm" agent role (a queue task that answers one chat message), and
"send_reply", which pushes a stored answer to the messenger.

Start instances of the role as worker processes; they share the work through the
queue (on Redis, its consumer group)::

    asyncgen worker redis://127.0.0.1:6379/0 --tasks examples.chat_bot.agents \\
        --kinds samplellm --conversation-log log/conversations

The model server comes from ASYNCGEN_BASE_URL (and ASYNCGEN_API_KEY); one ChatClient per
process, made on first use and reused by every job the process runs.
"""

from __future__ import annotations

import os

import structlog

from asyncgen import ChatClient, GenerationJob, RetryPolicy, generate
from asyncgen.queue import open_queue, task

from .messenger import Messenger

ROLE = "samplellm"
log = structlog.get_logger("chat_bot.agent")
_client: ChatClient | None = None


def client() -> ChatClient:
    """This process's ChatClient (its connection pool is reused across jobs)."""
    global _client
    if _client is None:
        base_url = os.environ.get("ASYNCGEN_BASE_URL", "https://openrouter.ai/api/v1")
        _client = ChatClient(base_url, api_key=os.environ.get("ASYNCGEN_API_KEY"))
    return _client


async def answer(text: str, *, model: str, chat: ChatClient) -> str:
    """One answer, with asyncgen's retries; raises what the request finally failed with."""
    log.info("PROCESSING", model=model)
    (result,) = await generate(
        [GenerationJob(model=model, prompt=text)],
        client=chat,
        retry=RetryPolicy(max_attempts=2, base_delay=0.2),
    )
    if result.error is not None:
        raise result.error
    log.info("PROCESSING_COMPLETE", model=model, chars=len(result.text or ""))
    return result.text or ""


@task(name=ROLE)
async def samplellm(text: str, model: str) -> str:
    """Answer one message (runs in a worker serving the samplellm role)."""
    return await answer(text, model=model, chat=client())


@task(name="send_reply")
async def send_reply(
    answer_job: str, chat_id: int, message_id: int, messenger_url: str, queue_url: str
) -> None:
    """Push an answer to the messenger from the agents' side: submitted beside the
    samplellm job with ``depends_on=[answer_job]``, it runs once that answer is stored
    (if the answer job dies, this one goes dead too: the awaiting mode is the one that
    sends a fallback)."""
    queue = open_queue(queue_url)
    messenger = Messenger(messenger_url)
    try:
        text = str(await queue.result(answer_job, timeout=5))
        await messenger.edit_message_text(chat_id, message_id, text)
        log.info("SENT", text=text, edited=message_id)
    finally:
        await messenger.aclose()
        await queue.aclose()
