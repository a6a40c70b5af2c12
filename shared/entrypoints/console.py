"""The console's pages (shared.console): Sign in with Microsoft is their authentication.

Imported when a trigger of this surface first runs: no SDK at module level.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.entrypoints.common import answers, configured

log = logging.getLogger(__name__)


@answers
async def console(req: func.HttpRequest) -> func.HttpResponse:
    """The console's pages (shared.console): Sign in with Microsoft is their authentication."""
    from shared.console.pages import handle

    return await handle(req, await configured())
