"""The deliveries queue trigger (one conversation's jobs at a time) and the periodic timer.

Imported when a trigger of this surface first runs: no SDK at module level.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared import bootstrap
from shared.services import periodic as periodic_service

log = logging.getLogger(__name__)


async def deliveries(msg: func.ServiceBusMessage) -> None:
    """One message of the deliveries queue (a job, or a bundle of one conversation's jobs), in
    its conversation's session: one consumer at a time, in order."""
    from shared.domain.jobs import jobs_from_message
    from shared.services.delivery import run_message

    c = await bootstrap.container()
    try:
        jobs = jobs_from_message(msg.get_body(), msg.delivery_count or 1)
    except (ValueError, KeyError, TypeError) as exc:
        # Only the connector writes this queue: a job it cannot read is a bug, not input.
        log.error("Delivery job %s cannot be read and is dropped: %s", msg.message_id, exc)
        jobs = []
    if jobs:
        report = await run_message(jobs, bootstrap.delivering(c))
        log.info(
            "Delivered %d job(s) for one conversation: posted %d, updated %d, folded into the summary %d, "
            "rescheduled %d, failed %d",
            len(jobs),
            len(report.posted),
            len(report.updated),
            len(report.folded),
            report.rescheduled,
            len(report.failed),
        )


async def periodic(timer: func.TimerRequest) -> None:
    c = await bootstrap.container()
    if timer.past_due:
        log.info("The periodic run is late; running now")
    await periodic_service.run_timer(
        bootstrap.delivering(c), await bootstrap.action_context(c, None), c.settings.reminder_after_minutes
    )
