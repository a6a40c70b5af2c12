"""Microsoft 365 Agents Playground (the pinned npm package) as a Teams client for tests.

The Playground is a Teams emulator for bots: it sends the bot installation updates and user
messages, and serves a Bot Connector under ``/_connector`` for the bot's answers. Its web
client is a browser page; these tests drive the same HTTP API the page uses:

- ``GET  /_internal/v1/config``: tenant, bot, current user, personal chat, group chats, teams;
- ``POST /_debug/conversation/{id}/installation``: the bot gets installationUpdate (add) and
  conversationUpdate (membersAdded), as when the page opens a chat;
- ``POST /_conversation/v1/conversations/{id}/messages`` with
  ``{"from": {"id": user}, "text": ..., "textFormat": "plain"}``: a user message;
- ``POST /_conversation/v1/invoke`` with ``{"name": "adaptiveCard/action", "value", "from",
  "conversation", "replyToId"}``: a card button pressed;
- websocket ``/_ws_conversation/v1/conversations/stream``: every message the bot posts or
  updates, as ``{"action": "createMessage" | "updateMessage" | "typing",
  "actionConversationId": id, "message": {"messageId", "from", "text", "attachments", ...}}``.
  Events sent while no client is connected are buffered for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.azurite import free_port

ROOT = Path(__file__).resolve().parents[2]
PLAYGROUND = ROOT / "node_modules" / ".bin" / "agentsplayground"
CONFIG = ROOT / "tools" / "playground.yml"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
START_TIMEOUT_SECONDS = 30.0
# The CLI prints this once it serves; with -p on a busy port it falls back to a random one.
_LISTENING = re.compile(r"Listening on (\d+)")


@dataclass(frozen=True)
class StreamEvent:
    """One websocket event: a message the bot created or updated in a conversation."""

    action: str
    conversation_id: str
    message: dict[str, Any]

    @property
    def message_id(self) -> str:
        return self.message.get("messageId", "")

    @property
    def cards(self) -> list[dict[str, Any]]:
        """The Adaptive Cards of the message."""
        return [a["content"] for a in self.message.get("attachments") or [] if a.get("contentType") == ADAPTIVE_CARD]

    def __str__(self) -> str:
        text = self.message.get("text") or ", ".join(c.get("type", "?") for c in self.cards) or "(empty)"
        return f"{self.action} {self.message_id} in {self.conversation_id}: {text[:80]}"


class Playground:
    """One Agents Playground process pointed at a bot endpoint, on a free port.

    Use as ``async with Playground(bot_endpoint) as playground:``; the process's output is
    kept in :attr:`output` for failure messages.
    """

    def __init__(self, bot_endpoint: str, port: int = 0) -> None:
        if not PLAYGROUND.exists():
            raise RuntimeError(f"{PLAYGROUND} is missing: run 'npm ci' (the README's test command does it)")
        self.bot_endpoint = bot_endpoint
        self.port = port or free_port()
        self.config: dict[str, Any] = {}
        self.events: list[StreamEvent] = []
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - open for the process's lifetime, closed in stop()
        self._process: subprocess.Popen | None = None
        self._http: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        """What the Playground printed so far (the last 4,000 characters)."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    async def __aenter__(self) -> Playground:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the process, wait until it serves its config, connect to the message stream."""
        # No browser (the CLI would open one) and no telemetry: it runs in CI.
        env = {
            **os.environ,
            "TEAMSAPPTESTER_BROWSER": "none",
            "CI": "true",
            "M365_AGENTS_PLAYGROUND_CONFIG_PATH": str(CONFIG),  # make run's organisation
        }
        self._process = subprocess.Popen(
            [str(PLAYGROUND), "-e", self.bot_endpoint, "-c", "msteams", "--disable-telemetry", "-p", str(self.port)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        await self._wait_ready()
        self._socket = await self._http.ws_connect(f"{self.url}/_ws_conversation/v1/conversations/stream")
        self._reader = asyncio.create_task(self._read_stream())

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Agents Playground exited with code {self._process.returncode}:\n{self.output}")
            listening = _LISTENING.search(self.output)
            if listening:
                self.port = int(listening.group(1))
                try:
                    async with self._http.get(f"{self.url}/_internal/v1/config") as response:
                        if response.status == 200:
                            self.config = (await response.json())["config"]
                            return
                except aiohttp.ClientError:
                    pass
            await asyncio.sleep(0.1)
        raise RuntimeError(
            f"Agents Playground did not serve {self.url} within {START_TIMEOUT_SECONDS:.0f} s:\n{self.output}"
        )

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._socket is not None:
            await self._socket.close()
        if self._http is not None:
            await self._http.close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                await asyncio.to_thread(self._process.wait, 5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                await asyncio.to_thread(self._process.wait)
        self._log.close()

    async def _read_stream(self) -> None:
        async for frame in self._socket:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(frame.data)
            self.events.append(
                StreamEvent(data.get("action", ""), data.get("actionConversationId", ""), data.get("message") or {})
            )
            self._changed.set()

    # The Teams client's side

    @property
    def tenant_id(self) -> str:
        return self.config["tenantId"]

    @property
    def personal_chat_id(self) -> str:
        return self.config["personalChat"]["id"]

    @property
    def user_id(self) -> str:
        return self.config["currentUser"]["id"]

    async def install(self, conversation_id: str) -> None:
        """Install the bot in a conversation, as the web client does when a chat is opened."""
        await self._post(f"/_debug/conversation/{conversation_id}/installation", {})

    async def send_message(self, conversation_id: str, text: str, *, mention_bot: bool = False) -> dict[str, Any]:
        """Send a message as the current user; returns the Playground's answer. In a group chat
        or channel the bot hears only messages that @mention it: ``mention_bot`` does that."""
        body: dict[str, Any] = {"from": {"id": self.user_id}, "text": text, "textFormat": "plain"}
        if mention_bot:
            at = f"<at>{self.config['bot']['name']}</at>"
            body = {
                **body,
                "text": f"{at} {text}",
                "mentions": [{"mentioned": {"id": self.config["bot"]["id"]}, "text": at}],
            }
        return await self._post(f"/_conversation/v1/conversations/{conversation_id}/messages", body)

    async def press(
        self, conversation_id: str, card_message_id: str, action: dict[str, Any], inputs: dict[str, Any] | None = None
    ) -> Any:
        """Press an Action.Execute button of a card, as the web client does: the bot gets an
        ``adaptiveCard/action`` invoke whose data carries the card's input values (``inputs``,
        as the person filled the form in); returns the bot's invoke response."""
        value = {
            "action": {
                "type": "Action.Execute",
                "verb": action["verb"],
                "data": {**action.get("data", {}), **(inputs or {})},
            },
            "trigger": "manual",
        }
        return await self._post(
            "/_conversation/v1/invoke",
            {
                "name": "adaptiveCard/action",
                "value": value,
                "from": {"id": self.user_id},
                "conversation": {"id": conversation_id},
                "replyToId": card_message_id,
            },
        )

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async with self._http.post(self.url + path, json=body) as response:
            text = await response.text()
            if response.status != 200:
                raise AssertionError(
                    f"POST {path} → {response.status}: {text[:500]}\nAgents Playground output:\n{self.output}"
                )
            return json.loads(text) if text else None

    # The stream

    async def wait_for(self, what: str, predicate: Callable[[StreamEvent], bool], timeout: float = 20.0) -> StreamEvent:
        """The first stream event matching ``predicate``; fails naming ``what`` after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            match = next((e for e in self.events if predicate(e)), None)
            if match is not None:
                return match
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"no {what} on the Agents Playground stream within {timeout:.0f} s\n{self.describe()}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def describe(self) -> str:
        """The stream so far and the Playground's output, for failure messages."""
        events = "\n".join(f"  {e}" for e in self.events) or "  (nothing)"
        return f"Stream events:\n{events}\nAgents Playground output:\n{self.output}"
