"""Teams simulator: a loopback Bot Connector and Bot Framework identity for tests.

Development and test tool only; never deployed.
"""

from .activities import ActivityBuilder
from .server import TeamsSimulator
from .state import Conversation, RequestRecord, SentActivity

__all__ = ["ActivityBuilder", "Conversation", "RequestRecord", "SentActivity", "TeamsSimulator"]
