"""Silences in the source that sent an alert: Alertmanager's API v2 (and Grafana alerting's
Alertmanager-compatible one), over aiohttp with the source's credential.

``POST /silences`` makes one (matchers, start, end, who, why) and answers its id; ``DELETE
/silence/{id}`` expires it; ``GET /silence/{id}`` reads it; ``GET /alerts`` lists the alerts the
source holds, with whether a silence suppresses them. A refusal raises :class:`SourceRefused`
with the source's own words, for the card to show. The credential is sent, never logged.
"""

from __future__ import annotations

import base64
import json
import socket
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from shared.domain.source_api import SourceApi, is_private_address, is_private_host
from shared.ports import SourceRefused

TIMEOUT_SECONDS = 10.0
MAX_ANSWER_BYTES = 1024 * 1024  # an answer larger than this is refused, not read


def _said(text: str) -> str:
    """The source's own words in an error answer: its JSON ``message`` (Alertmanager's and
    Grafana's errors), or the text."""
    try:
        document = json.loads(text)
    except ValueError:
        document = text
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        document = document["message"]
    return str(document).strip()[:300]


def _public_only_resolver() -> Any:
    """An aiohttp resolver that connects to public addresses only: a source's address is an
    admin's to set, and the requests (with the credential) must not reach this instance, its
    metadata service or a private network, whatever the name resolves to when connecting."""
    from aiohttp.abc import AbstractResolver
    from aiohttp.resolver import DefaultResolver

    class PublicOnly(AbstractResolver):
        def __init__(self) -> None:
            self._inner = DefaultResolver()

        async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
            found = await self._inner.resolve(host, port, family)
            kept = [entry for entry in found if not is_private_address(str(entry["host"]))]
            if not kept:
                raise OSError(f"{host} resolves to no public address")
            return kept

        async def close(self) -> None:
            await self._inner.close()

    return PublicOnly()


class Silences:
    """One source's silences API. ``allow_private`` (local development only) lets it reach
    addresses on this machine or a private network."""

    def __init__(self, api: SourceApi, *, allow_private: bool = False) -> None:
        self._api = api
        self._allow_private = allow_private

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api.auth == "bearer":
            headers["Authorization"] = f"Bearer {self._api.secret}"
        elif self._api.auth == "basic":
            pair = f"{self._api.username}:{self._api.secret}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        return headers

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        import aiohttp

        url = self._api.api_base + path
        if not self._allow_private and is_private_host(urlsplit(url).hostname):
            raise SourceRefused(f"{self._api.kind} at {self._api.url} is not a public address")
        connector = None if self._allow_private else aiohttp.TCPConnector(resolver=_public_only_resolver())
        try:
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS), connector=connector
                ) as http,
                http.request(method, url, json=body, headers=self._headers()) as answer,
            ):
                raw = await answer.content.read(MAX_ANSWER_BYTES + 1)
                if len(raw) > MAX_ANSWER_BYTES:
                    raise SourceRefused(f"the {self._api.kind} answer is larger than {MAX_ANSWER_BYTES} bytes")
                text = raw.decode("utf-8", errors="replace")
                if answer.status >= 400:
                    said = _said(text) or answer.reason or ""
                    raise SourceRefused(f"{self._api.kind} answered {answer.status}: {said}", answer.status)
                return json.loads(text) if text.strip() else None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            why = str(exc) if "no public address" in str(exc) else type(exc).__name__
            raise SourceRefused(f"{self._api.kind} at {self._api.url} could not be reached ({why})") from None

    async def create(
        self, matchers: list[dict[str, Any]], starts: datetime, ends: datetime, created_by: str, comment: str
    ) -> str:
        answer = await self._call(
            "POST",
            "/silences",
            {
                "matchers": matchers,
                "startsAt": starts.isoformat(),
                "endsAt": ends.isoformat(),
                "createdBy": created_by,
                "comment": comment,
            },
        )
        silence_id = (answer or {}).get("silenceID") if isinstance(answer, dict) else None
        if not isinstance(silence_id, str) or not silence_id:
            raise SourceRefused(f"{self._api.kind} made no silence id of it")
        return silence_id

    async def expire(self, silence_id: str) -> None:
        await self._call("DELETE", f"/silence/{quote(silence_id, safe='')}")

    async def get(self, silence_id: str) -> dict[str, Any]:
        answer = await self._call("GET", f"/silence/{quote(silence_id, safe='')}")
        return answer if isinstance(answer, dict) else {}

    async def alerts(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """The source's alerts whose labels include these (silenced ones too)."""
        filters = "&".join(f"filter={quote(f'{name}={json.dumps(value)}', safe='')}" for name, value in labels.items())
        answer = await self._call("GET", f"/alerts?silenced=true&inhibited=true&active=true&{filters}")
        return [a for a in answer if isinstance(a, dict)] if isinstance(answer, list) else []
