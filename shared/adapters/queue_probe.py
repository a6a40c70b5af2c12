"""How many messages wait in a queue, and how many are dead-lettered: for the deep health
check. Service Bus in Azure (the administration client reads the queue's runtime properties,
which needs the Data Owner role the triggered queues have), the local host's API locally."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QueueDepth:
    active: int
    dead_letter: int
    scheduled: int = 0


class ServiceBusQueueProbe:
    def __init__(self, namespace: str, queue: str, managed_identity_client_id: str | None = None) -> None:
        self.queue = queue
        self._namespace = namespace
        self._client_id = managed_identity_client_id

    async def depth(self) -> QueueDepth:
        from azure.identity.aio import ManagedIdentityCredential
        from azure.servicebus.aio.management import ServiceBusAdministrationClient

        credential = (
            ManagedIdentityCredential(client_id=self._client_id) if self._client_id else ManagedIdentityCredential()
        )
        try:
            async with ServiceBusAdministrationClient(self._namespace, credential) as client:
                properties: Any = await client.get_queue_runtime_properties(self.queue)
        finally:
            await credential.close()
        return QueueDepth(
            properties.active_message_count, properties.dead_letter_message_count, properties.scheduled_message_count
        )


class LocalQueueProbe:
    """The local host's ``GET /_localhost/queues/{queue}`` (its counts have Service Bus' names)."""

    def __init__(self, host_url: str, queue: str) -> None:
        self.queue = queue
        self._url = f"{host_url.rstrip('/')}/_localhost/queues/{queue}"

    async def depth(self) -> QueueDepth:
        import aiohttp

        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(self._url) as response,
        ):
            if response.status != 200:
                raise RuntimeError(f"the local host answered {response.status} for queue {self.queue}")
            counts = await response.json()
        return QueueDepth(
            int(counts.get("activeMessageCount", 0)),
            int(counts.get("deadLetterMessageCount", 0)),
            int(counts.get("scheduledMessageCount", 0)),
        )
