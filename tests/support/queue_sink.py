"""A loopback stand-in for the local host's queue API: records what the app publishes."""

from __future__ import annotations

import asyncio
import json
import threading

from aiohttp import web


class QueueSink:
    """``POST /_localhost/queues/{queue}/messages`` → recorded; ``fail_next`` answers 503.

    Delivery jobs (a message with a session id) are kept apart in :attr:`jobs`, with their
    session and scheduled time, and a resend of a job id is dropped like Service Bus's
    duplicate detection would."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str, dict]] = []  # (queue, message id, body)
        self.jobs: list[dict] = []  # {"queue", "messageId", "sessionId", "scheduled", "body"}
        self.job_ids: set[str] = set()
        self.fail_next = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/_localhost/queues/{queue}/messages", self._receive)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _receive(self, request: web.Request) -> web.Response:
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=503, text="queue unavailable")
        body = json.loads(await request.read())
        message_id = request.headers.get("x-message-id", "")
        if request.headers.get("x-session-id"):
            if message_id not in self.job_ids:
                self.job_ids.add(message_id)
                self.jobs.append(
                    {
                        "queue": request.match_info["queue"],
                        "messageId": message_id,
                        "sessionId": request.headers["x-session-id"],
                        "scheduled": request.headers.get("x-scheduled-enqueue-time"),
                        "body": body,
                    }
                )
        else:
            self.messages.append((request.match_info["queue"], message_id, body))
        return web.json_response({"messageId": request.headers.get("x-message-id")}, status=201)

    def start(self) -> QueueSink:
        self._thread.start()
        self._ready.wait(10)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Close the listening socket and the loop (nothing is left for the garbage collector)."""
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
