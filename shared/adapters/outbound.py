"""Publish what people did in Teams to the %TEAMS_ACTIONS_QUEUE% queue.

In Azure: ``azure-servicebus`` with the managed identity (sender built on first use). Locally:
the local Functions host's queue API (the local host has no AMQP endpoint).
"""

from __future__ import annotations

import json
from typing import Any

CLOUDEVENTS_JSON = "application/cloudevents+json; charset=utf-8"


class ServiceBusQueue:
    """One queue of a Service Bus namespace, reached with the managed identity; the
    ``azure-servicebus`` client is built on first use (no SDK import before)."""

    def __init__(self, namespace: str, queue: str, managed_identity_client_id: str | None = None) -> None:
        self._namespace = namespace
        self._queue = queue
        self._client_id = managed_identity_client_id
        self._client: Any = None
        self._credential: Any = None

    def _connected(self) -> Any:
        if self._client is None:
            from azure.identity.aio import ManagedIdentityCredential
            from azure.servicebus.aio import ServiceBusClient

            self._credential = (
                ManagedIdentityCredential(client_id=self._client_id) if self._client_id else ManagedIdentityCredential()
            )
            self._client = ServiceBusClient(self._namespace, self._credential)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            await self._credential.close()
            self._client = None


class ServiceBusPublisher(ServiceBusQueue):
    """``azure-servicebus`` sender; the message id is the action id, so Service Bus duplicate
    detection drops a resend."""

    async def publish(self, message_id: str, event: dict[str, Any]) -> None:
        from azure.servicebus import ServiceBusMessage

        async with self._connected().get_queue_sender(self._queue) as sender:
            await sender.send_messages(
                ServiceBusMessage(
                    json.dumps(event), message_id=message_id, content_type=CLOUDEVENTS_JSON, subject=event.get("type")
                )
            )


class LocalQueuePublisher:
    """POSTs to the local host's management API: ``/_localhost/queues/{queue}/messages``."""

    def __init__(self, host_url: str, queue: str) -> None:
        self._url = f"{host_url.rstrip('/')}/_localhost/queues/{queue}/messages"

    async def publish(self, message_id: str, event: dict[str, Any]) -> None:
        import aiohttp

        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.post(
                self._url,
                data=json.dumps(event),
                headers={"x-message-id": message_id, "content-type": CLOUDEVENTS_JSON},
            ) as response,
        ):
            if response.status >= 300:
                raise RuntimeError(f"the local queue answered {response.status}: {(await response.text())[:200]}")

    async def close(self) -> None:
        return None
