"""The app config: one ChatClient and one queue per process, made when Django starts."""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import AppConfig
from django.conf import settings

from asyncgen import ChatClient
from asyncgen.queue import JobQueue, open_queue


@dataclass
class Services:
    client: ChatClient
    queue: JobQueue
    max_models: int


_services: Services | None = None


def services() -> Services:
    """The process's client and queue (made in ready())."""
    if _services is None:
        raise RuntimeError("the asyncgen example app is not ready: is it in INSTALLED_APPS?")
    return _services


class AsyncgenExampleConfig(AppConfig):
    name = "examples.django_app"
    label = "asyncgen_example"

    def ready(self) -> None:
        global _services
        config = settings.ASYNCGEN
        # Sync views reach the client through asyncgen.sync (its pool lives on asyncgen's
        # background loop); async views through the server's loop. Both pools are kept
        # for the life of the process.
        client = ChatClient(
            config["BASE_URL"],
            config.get("API_KEY"),
            max_connections=int(config.get("MAX_CONNECTIONS", 100)),
        )
        _services = Services(
            client=client,
            queue=open_queue(config["QUEUE_URL"]),
            max_models=int(config.get("MAX_MODELS", 10)),
        )
