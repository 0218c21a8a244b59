"""Run the bot: ``python -m examples.chat_bot --messenger URL [--queue URL]``.

Without --queue it answers in this process (ASYNCGEN_BASE_URL / ASYNCGEN_API_KEY for the
model server); with --queue it submits each message to the samplellm agent role: start
the agents with ``asyncgen worker URL --tasks examples.chat_bot.agents --kinds samplellm``.
``--messenger local`` serves the stand-in messenger on 127.0.0.1 and prints its URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from asyncgen import ChatClient, ConversationLog, configure_logging, open_queue

from .agents import client
from .bot import Answers, ChatBot, InProcessAnswers, QueueAnswers
from .messenger import Messenger, MessengerServer


async def main(args: argparse.Namespace, messenger_url: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    queue = open_queue(args.queue) if args.queue else None
    chat: ChatClient | None = None
    answers: Answers
    if queue is not None:
        answers = QueueAnswers(queue)
    else:
        chat = client()
        answers = InProcessAnswers(chat)
    bot = ChatBot(Messenger(messenger_url), answers, default_model=args.model)
    try:
        await bot.run(stop=stop)
    finally:
        if queue is not None:
            await queue.aclose()
        if chat is not None:
            await chat.aclose()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messenger", required=True, help="bot API root, or 'local'")
    parser.add_argument("--queue", help="queue URL: answer through the samplellm agent role")
    parser.add_argument("--model", default="openai/gpt-4o-mini")
    parser.add_argument("--conversation-log", metavar="DIR", default="log/conversations")
    args = parser.parse_args()
    configure_logging(conversations=ConversationLog(args.conversation_log))
    with contextlib.ExitStack() as stack:
        url = args.messenger
        if url == "local":
            url = stack.enter_context(MessengerServer()).url
            print(f"stand-in messenger at {url} (POST {url}/test/send to write as a user)")
        asyncio.run(main(args, url))


if __name__ == "__main__":
    cli()
