"""A loopback message broker several app processes share, with the Service Bus semantics the
connector relies on: peek-lock, delivery counts and dead-lettering, duplicate detection,
sessions (one receiver per session at a time, in order) and scheduled messages. It is the
local host's in-memory queue (tools/localhost/queues.py) behind HTTP, so two processes can
compete for messages the way two Functions instances compete for a Service Bus queue.

    POST /_localhost/queues/{queue}/messages      send (headers: x-message-id, x-session-id,
                                                 x-scheduled-enqueue-time), as the local host
    POST /_broker/queues/{queue}/receive          {"max": n} -> locked messages (no session)
    POST /_broker/queues/{queue}/accept           -> {"session": id or null}: lock the next session
    POST /_broker/queues/{queue}/sessions/{s}/receive   {"max": n, "wait": seconds} -> its messages
    POST /_broker/queues/{queue}/sessions/{s}/release   close the session
    POST /_broker/settle                          {"tokens": [...], "ok": bool, "error": str}

A worker holds a session across receives and closes it itself, as the Service Bus extension
does (tools/localhost/sessions.py).

Development tool for the benchmark; not deployed.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from datetime import datetime
from typing import Any

from aiohttp import web

from tools.localhost.queues import MemoryQueue, QueuedMessage
from tools.localhost.sessions import MemorySessions

RECEIVE_WAIT_SECONDS = 1.0


class Broker:
    def __init__(
        self, *, duplicate_detection: tuple[str, ...] = (), max_delivery_count: int = 10, redelivery_delay: float = 0.5
    ) -> None:
        self.queues: dict[str, MemoryQueue] = {}
        self._dedupe = set(duplicate_detection)
        self._max_delivery_count = max_delivery_count
        self._redelivery_delay = redelivery_delay
        self._locked: dict[str, tuple[MemoryQueue, QueuedMessage]] = {}
        self._tokens = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def queue(self, name: str) -> MemoryQueue:
        if name not in self.queues:
            self.queues[name] = MemoryQueue(
                name, max_delivery_count=self._max_delivery_count, duplicate_detection=name in self._dedupe
            )
        return self.queues[name]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_post("/_localhost/queues/{queue}/messages", self._send)
        app.router.add_post("/_broker/queues/{queue}/receive", self._receive)
        app.router.add_post("/_broker/queues/{queue}/accept", self._accept)
        app.router.add_post("/_broker/queues/{queue}/sessions/{session}/receive", self._receive_session)
        app.router.add_post("/_broker/queues/{queue}/sessions/{session}/release", self._release)
        app.router.add_post("/_broker/settle", self._settle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        for queue in self.queues.values():
            queue.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def send(
        self,
        queue: str,
        body: bytes,
        *,
        message_id: str | None = None,
        session_id: str | None = None,
        at: datetime | None = None,
    ) -> bool:
        """Send from this process; False when dropped as a duplicate."""
        _, duplicate = self.queue(queue).send(
            body,
            message_id=message_id,
            content_type="application/json",
            session_id=session_id,
            scheduled_enqueue_time=at,
        )
        return not duplicate

    async def _send(self, request: web.Request) -> web.Response:
        scheduled = request.headers.get("x-scheduled-enqueue-time")
        message_id, duplicate = self.queue(request.match_info["queue"]).send(
            await request.read(),
            message_id=request.headers.get("x-message-id") or None,
            content_type=request.headers.get("content-type"),
            session_id=request.headers.get("x-session-id") or None,
            scheduled_enqueue_time=datetime.fromisoformat(scheduled) if scheduled else None,
        )
        return web.json_response({"messageId": message_id, "duplicate": duplicate}, status=201)

    async def _receive(self, request: web.Request) -> web.Response:
        queue = self.queue(request.match_info["queue"])
        options = await request.json()
        try:
            await asyncio.wait_for(queue.wait_for_message(), RECEIVE_WAIT_SECONDS)
        except TimeoutError:
            return web.json_response({"messages": []})
        messages: list[QueuedMessage] = []
        while len(messages) < int(options.get("max", 1)) and (message := queue.receive()) is not None:
            messages.append(message)
        return web.json_response({"messages": self._locked_out(queue, messages)})

    async def _accept(self, request: web.Request) -> web.Response:
        session = await MemorySessions(self.queue(request.match_info["queue"]), RECEIVE_WAIT_SECONDS).accept()
        return web.json_response({"session": session})

    async def _receive_session(self, request: web.Request) -> web.Response:
        queue = self.queue(request.match_info["queue"])
        options = await request.json()
        messages = await MemorySessions(queue).receive(
            request.match_info["session"], int(options.get("max", 1)), float(options.get("wait", 0))
        )
        return web.json_response({"messages": self._locked_out(queue, list(messages))})

    async def _release(self, request: web.Request) -> web.Response:
        self.queue(request.match_info["queue"]).release_session(request.match_info["session"])
        return web.json_response({})

    def _locked_out(self, queue: MemoryQueue, messages: list[QueuedMessage]) -> list[dict[str, Any]]:
        out = []
        for message in messages:
            token = str(next(self._tokens))
            self._locked[token] = (queue, message)
            out.append(
                {
                    "token": token,
                    "messageId": message.message_id,
                    "sessionId": message.session_id,
                    "deliveryCount": message.delivery_count,
                    "body": base64.b64encode(message.body).decode(),
                }
            )
        return out

    async def _settle(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        for token in body.get("tokens", []):
            queue, message = self._locked.pop(token)
            if body.get("ok"):
                queue.complete(message)
            else:
                queue.abandon(message, str(body.get("error", ""))[:500], delay=self._redelivery_delay)
        return web.json_response({})

    def counts(self) -> dict[str, dict[str, int]]:
        return {name: queue.counts() for name, queue in self.queues.items()}

    def dead_lettered(self) -> int:
        return sum(len(queue.dead_letters()) for queue in self.queues.values())

    def idle(self) -> bool:
        return not any(queue.busy for queue in self.queues.values())
