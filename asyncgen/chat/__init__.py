"""Chat-bot helpers: supervised fire-and-forget tasks, and one log file per conversation.

``BackgroundTasks`` keeps every task until it ends, reports each failure without touching
the others, can bound how many run at once, and drains on shutdown; ``with
conversation(user_id):`` binds a conversation to every log line made inside it, and
``ConversationLog`` writes those lines to one file per conversation. Both use only the
core.
"""

from ._background import (
    BackgroundStats,
    BackgroundTasks,
    BackgroundTasksFull,
    BlockingBackgroundTasks,
    TaskFailure,
)
from ._conversation import Conversation, ConversationLog, conversation

__all__ = [
    "BackgroundStats",
    "BackgroundTasks",
    "BackgroundTasksFull",
    "BlockingBackgroundTasks",
    "Conversation",
    "ConversationLog",
    "TaskFailure",
    "conversation",
]
