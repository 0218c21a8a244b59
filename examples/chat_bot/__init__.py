"""A non-blocking chat bot: "Thinking..." at once, the answer edited in when it is ready.

``bot.py`` holds the handler and its two ways of getting answers (in-process background
tasks, or agent roles on a Redis queue), ``agents.py`` the agent role's task,
``messenger.py`` a local stand-in for a messenger's bot API. See README.md beside it.
"""
