"""The deliveries queue: Service Bus in Azure (sessions, scheduled messages, duplicate
detection), the local Functions host's queue API locally. No SDK import at module level."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from shared.adapters.outbound import ServiceBusQueue
from shared.domain.jobs import DeliveryJob, JobBundle
from shared.ports import TransientError

JOB_CONTENT_TYPE = "application/json"


class ServiceBusJobQueue(ServiceBusQueue):
    """The deliveries queue's sender (kept open between sends), built on first use."""

    _sender: Any = None

    async def send(self, jobs: Sequence[DeliveryJob | JobBundle]) -> None:
        from azure.servicebus import ServiceBusMessage

        if not jobs:
            return
        if self._sender is None:
            self._sender = self._connected().get_queue_sender(self._queue)
        from azure.servicebus.exceptions import MessageSizeExceededError, ServiceBusError

        try:
            # As many messages to a send as one batch holds (its size bound is the namespace's).
            batch = await self._sender.create_message_batch()
            for job in (j for j in jobs if j.not_before is None):
                message = self._message(ServiceBusMessage, job)
                try:
                    batch.add_message(message)
                except MessageSizeExceededError:
                    await self._sender.send_messages(batch)
                    batch = await self._sender.create_message_batch()
                    batch.add_message(message)
            if len(batch):
                await self._sender.send_messages(batch)
            for job in (j for j in jobs if j.not_before is not None):
                await self._sender.schedule_messages(self._message(ServiceBusMessage, job), job.not_before)
        except ServiceBusError as exc:
            raise TransientError(f"the deliveries queue refused the jobs: {exc}") from exc

    @staticmethod
    def _message(factory: Any, job: DeliveryJob | JobBundle) -> Any:
        return factory(
            job.body(),
            message_id=job.message_id,
            session_id=job.session_id,
            content_type=JOB_CONTENT_TYPE,
            subject=job.kind,
        )

    async def close(self) -> None:
        if self._sender is not None:
            await self._sender.close()
            self._sender = None
        await super().close()


class LocalJobQueue:
    """The local host's queue API (``POST /_localhost/queues/{queue}/messages``) with the
    session id and the scheduled time as headers; one HTTP session for every message."""

    def __init__(self, host_url: str, queue: str) -> None:
        self._url = f"{host_url.rstrip('/')}/_localhost/queues/{queue}/messages"
        self._session: Any = None

    async def send(self, jobs: Sequence[DeliveryJob | JobBundle]) -> None:
        import aiohttp

        if not jobs:
            return
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

        async def one(job: DeliveryJob | JobBundle) -> None:
            headers = {"x-message-id": job.message_id, "x-session-id": job.session_id, "content-type": JOB_CONTENT_TYPE}
            if job.not_before is not None:
                headers["x-scheduled-enqueue-time"] = job.not_before.isoformat()
            try:
                async with self._session.post(self._url, data=job.body(), headers=headers) as response:
                    if response.status >= 300:
                        raise TransientError(
                            f"the local deliveries queue answered {response.status}: {(await response.text())[:200]}"
                        )
            except aiohttp.ClientError as exc:
                raise TransientError(f"the local deliveries queue is unreachable: {exc}") from exc

        await asyncio.gather(*(one(job) for job in jobs))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
