"""A Django project using asyncgen: sync views, an async view, and background jobs.

    export DJANGO_SETTINGS_MODULE=examples.django_app.settings
    ASYNCGEN_BASE_URL=http://127.0.0.1:8000/v1 \\
        uvicorn examples.django_app.asgi:application --port 8080     # or any WSGI server
    asyncgen worker sqlite:///asyncgen-jobs.db --base-url http://127.0.0.1:8000/v1

The ChatClient and the queue are made once per process, in the app config's ``ready()``
(see apps.py), from Django's ``ASYNCGEN`` setting.
"""
