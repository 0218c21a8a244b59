"""Django settings for the example: the minimum, plus ASYNCGEN (read by apps.py)."""

from __future__ import annotations

import os

# Set DJANGO_SECRET_KEY in production; this default is for the example only.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
INSTALLED_APPS = ["examples.django_app.apps.AsyncgenExampleConfig"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "examples.django_app.urls"
# Django's own database (the tasks' transactions are its): SQLite beside the example.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB", "example-django.sqlite3"),
    }
}
USE_TZ = True

# What the app's ChatClient and queue are made from (once per process, in ready()).
ASYNCGEN = {
    "BASE_URL": os.environ.get("ASYNCGEN_BASE_URL", "https://openrouter.ai/api/v1"),
    "API_KEY": os.environ.get("ASYNCGEN_API_KEY") or os.environ.get("OPENROUTER_API_KEY"),
    "QUEUE_URL": os.environ.get("ASYNCGEN_QUEUE_URL", "sqlite:///asyncgen-jobs.db"),
    "MAX_MODELS": 10,
    # Requests in flight at once from this process: size it for concurrent page views
    # times models per view (the client's default, 10, suits a script).
    "MAX_CONNECTIONS": 100,
}

# Django's task framework (django.tasks in Django 6; the django-tasks package before) on
# the same asyncgen queue: `asyncgen worker --django examples.django_app.settings` runs
# the tasks of tasks.py. enqueue_on_commit: a task enqueued inside transaction.atomic()
# is stored when it commits, and never if it rolls back.
TASKS = {
    "default": {
        "BACKEND": "asyncgen.integrations.django.QueueBackend",
        "QUEUES": ["default", "llm"],
        "OPTIONS": {"queue": ASYNCGEN["QUEUE_URL"], "enqueue_on_commit": True},
    }
}
