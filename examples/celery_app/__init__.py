"""A Celery app running asyncgen in its tasks: see app.py and docs/celery.md."""
