"""Teams simulator: a loopback Bot Connector and Bot Framework identity for tests.

Development and test tool only; never deployed.
"""

from .activities import ActivityBuilder
from .limits import CONVERSATION_WINDOWS, TENANT_WINDOWS, RateLimits
from .server import TeamsSimulator
from .state import Conversation, RequestRecord, SentActivity

__all__ = [
    "CONVERSATION_WINDOWS",
    "TENANT_WINDOWS",
    "ActivityBuilder",
    "Conversation",
    "RateLimits",
    "RequestRecord",
    "SentActivity",
    "TeamsSimulator",
]
