"""Teams messaging as the bot, on ``botbuilder-core``.

botbuilder is archived upstream: every botbuilder import in the connector is in this module,
so it can be replaced without touching the service layer. Import this module lazily (it costs
about half a second at cold start).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import aiohttp
import requests
from botbuilder.core import MessageFactory, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity, ActivityTypes, Attachment
from botframework.connector.auth import (
    AppCredentials,
    AuthenticationConstants,
    ManagedIdentityServiceClientCredentialsFactory,
    PasswordServiceClientCredentialFactory,
    ServiceClientCredentialsFactory,
)

from shared import cards
from shared.domain.model import ConversationRecord
from shared.ports import DeliveryError, Mention
from shared.resilience import is_permanent, parse_retry_after
from shared.settings import Settings

log = logging.getLogger(__name__)

# A bot token is valid for an hour or more; asking botbuilder's credentials again after this
# long keeps a refresh well before expiry without a call per message.
TOKEN_REUSE_SECONDS = 600.0
SEND_TIMEOUT_SECONDS = 30.0
# Bot Connector error codes that mean the bot can no longer post in the conversation (the
# app was removed, or the chat deleted).
GONE_CODES = frozenset({"ConversationNotFound", "BotNotInConversationRoster", "BotDisabledByAdmin"})


# Teams sends messages of up to about 100 KB (Teams limits); an activity larger than this is
# not from Teams.
MAX_ACTIVITY_BYTES = 256 * 1024


def activity_problem(payload: dict[str, Any]) -> str | None:
    """What makes ``payload`` unusable as a Teams activity, or None. Checked before botbuilder
    sees it (it raises on a missing conversation or sender) and before any id becomes a key."""
    from shared.domain.tenants import is_tenant_id

    conversation = payload.get("conversation")
    if not isinstance(conversation, dict) or not isinstance(conversation.get("id"), str) or not conversation["id"]:
        return "the activity has no conversation id"
    sender = payload.get("from")
    if not isinstance(sender, dict) or not isinstance(sender.get("id"), str) or not sender["id"]:
        return "the activity has no sender (from.id)"
    if not isinstance(payload.get("serviceUrl"), str) or not payload["serviceUrl"].startswith(("https://", "http://")):
        return "the activity has no serviceUrl"
    channel_data: dict[str, Any] = payload["channelData"] if isinstance(payload.get("channelData"), dict) else {}
    tenant = (channel_data.get("tenant") or {}).get("id") if isinstance(channel_data.get("tenant"), dict) else None
    tenant = tenant or conversation.get("tenantId")
    if tenant is not None and not is_tenant_id(tenant):
        return "the activity's tenant id is not a Microsoft tenant id (a GUID)"
    for name, value in (("conversation.id", conversation["id"]), ("from.id", sender["id"])):
        if len(value) > 1024:
            return f"the activity's {name} is longer than 1024 characters"
    return None


class TokenUrlAppCredentials(AppCredentials):
    """Client-credentials token from an explicitly configured token URL.

    Used only when ``BOT_TOKEN_URL`` is set (a local Teams simulator): MSAL, which
    botbuilder's own credentials use, accepts only https Microsoft authorities.
    """

    def __init__(self, app_id: str, password: str, token_url: str, oauth_scope: str) -> None:
        super().__init__(app_id=app_id, oauth_scope=oauth_scope)
        self._password = password
        self._token_url = token_url
        self._token: str | None = None
        self._expires_at = 0.0

    def get_access_token(self, force_refresh: bool = False) -> str:
        if self._token and not force_refresh and time.monotonic() < self._expires_at:
            return self._token
        scope = self.oauth_scope if self.oauth_scope.endswith("/.default") else self.oauth_scope + "/.default"
        response = requests.post(
            self._token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": self.microsoft_app_id,
                "client_secret": self._password,
                "scope": scope,
            },
            timeout=10,
        )
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != 200 or "access_token" not in body:
            raise PermissionError(
                f"the bot's token request failed ({response.status_code}): "
                f"{body.get('error', '')} {body.get('error_description', '')}".strip()
            )
        self._token = body["access_token"]
        self._expires_at = time.monotonic() + max(int(body.get("expires_in", 3600)) - 60, 30)
        return self._token


class TokenUrlCredentialsFactory(ServiceClientCredentialsFactory):
    def __init__(self, app_id: str, password: str, token_url: str) -> None:
        self._app_id, self._password, self._token_url = app_id, password, token_url
        self._credentials: dict[str, TokenUrlAppCredentials] = {}

    async def is_valid_app_id(self, app_id: str) -> bool:
        return app_id == self._app_id

    async def is_authentication_disabled(self) -> bool:
        return False

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> AppCredentials:
        if app_id != self._app_id:
            raise PermissionError(f"unknown bot app id {app_id!r}")
        scope = oauth_scope or AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
        if scope not in self._credentials:  # one cached token per scope
            self._credentials[scope] = TokenUrlAppCredentials(app_id, self._password, self._token_url, scope)
        return self._credentials[scope]


def credentials_factory(settings: Settings) -> ServiceClientCredentialsFactory:
    """The bot's outbound credential, chosen by settings."""
    if not settings.bot_app_id:
        return PasswordServiceClientCredentialFactory()  # no app id: authentication disabled (local only)
    if settings.bot_token_url:
        return TokenUrlCredentialsFactory(settings.bot_app_id, settings.bot_app_password or "", settings.bot_token_url)
    if settings.bot_app_type == "UserAssignedMSI":
        return ManagedIdentityServiceClientCredentialsFactory(settings.bot_app_id)
    return PasswordServiceClientCredentialFactory(
        settings.bot_app_id, settings.bot_app_password, settings.bot_tenant_id
    )


def auth_configuration(settings: Settings) -> Any:
    """botbuilder's configuration object. Empty (public cloud defaults) unless the OpenID
    metadata or token URL is overridden for a local simulator."""
    if not (settings.bot_openid_metadata_url or settings.bot_token_url):
        return SimpleNamespace()
    return SimpleNamespace(
        TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL=settings.bot_openid_metadata_url
        or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
        TO_BOT_FROM_CHANNEL_TOKEN_ISSUER=AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
        TO_CHANNEL_FROM_BOT_LOGIN_URL=settings.bot_token_url or AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL,
        TO_CHANNEL_FROM_BOT_OAUTH_SCOPE=AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
        VALIDATE_AUTHORITY=True,
    )


Handler = Callable[[dict[str, Any], dict[str, Any]], Awaitable[Any]]


class TeamsBot:
    """Inbound bot requests and outbound (proactive) messages through botbuilder."""

    def __init__(self, settings: Settings) -> None:
        self._app_id = settings.bot_app_id or ""
        self._allow_anonymous = settings.allow_unauthenticated_bot_requests and not settings.bot_app_id
        self._auth = ConfigurationBotFrameworkAuthentication(
            auth_configuration(settings), credentials_factory=credentials_factory(settings)
        )
        self._adapter = CloudAdapter(self._auth)
        self._connector = BotConnector(settings)

    # ------------------------------------------------------------------ inbound

    async def process(self, body: bytes, auth_header: str | None, handler: Handler) -> tuple[int, Any]:
        """Authenticate and run one inbound activity; returns (HTTP status, JSON body or None)."""
        if len(body or b"") > MAX_ACTIVITY_BYTES:
            log.warning("Refused a bot request of %d bytes (at most %d)", len(body), MAX_ACTIVITY_BYTES)
            return 413, {"error": f"an activity is at most {MAX_ACTIVITY_BYTES} bytes"}
        from shared.domain.jsondepth import too_deep

        try:
            text = (body or b"{}").decode("utf-8")
            if (problem := too_deep(text)) is not None:
                return 400, {"error": problem}
            payload = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return 400, {"error": "the request body is not JSON"}
        if not isinstance(payload, dict) or not payload.get("type"):
            return 400, {"error": "the request body is not a Bot Framework activity (no type)"}
        problem = activity_problem(payload)
        if problem is not None:
            log.warning("Refused a bot request: %s", problem)
            return 400, {"error": problem}
        activity = Activity().deserialize(payload)

        if not auth_header and not self._allow_anonymous:
            log.warning("Refused a bot request without an Authorization header")
            return 401, None
        try:
            auth_result = await self._auth.authenticate_request(activity, auth_header or None)
        except Exception as exc:  # noqa: BLE001 - any failure to validate the token is a 401
            log.warning("Refused a bot request: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return 401, None

        async def logic(turn_context: TurnContext) -> None:
            reference = TurnContext.get_conversation_reference(turn_context.activity).serialize()
            reference.pop("activityId", None)  # a stored reference must not make later posts replies
            reply = await handler(payload, reference)
            for text in getattr(reply, "texts", []):
                await turn_context.send_activity(MessageFactory.text(text))
            for card in getattr(reply, "cards", []):
                await turn_context.send_activity(
                    MessageFactory.attachment(Attachment(content_type=cards.CARD_CONTENT_TYPE, content=card))
                )
            invoke = getattr(reply, "invoke_response", None)
            if invoke is not None and turn_context.activity.type == ActivityTypes.invoke:
                from botbuilder.core import InvokeResponse

                await turn_context.send_activity(
                    Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=invoke[0], body=invoke[1]))
                )

        invoke_response = await self._adapter.process_activity(auth_result, activity, logic)
        if invoke_response is not None:
            return invoke_response.status, invoke_response.body
        return 200, None

    # ------------------------------------------------------------------ outbound

    async def post(self, conversation: ConversationRecord, card: dict[str, Any], summary: str) -> str:
        return await self._connector.post(conversation, card, summary)

    async def reply(
        self, conversation: ConversationRecord, activity_id: str, text: str, mentions: Sequence[Mention] = ()
    ) -> str:
        return await self._connector.reply(conversation, activity_id, text, mentions)

    async def update(
        self, conversation: ConversationRecord, activity_id: str, card: dict[str, Any], summary: str
    ) -> None:
        await self._connector.update(conversation, activity_id, card, summary)

    async def check_token(self) -> str:
        return await self._connector.check_token()

    async def close(self) -> None:
        await self._connector.close()


class BotConnector:
    """The Bot Connector REST calls the connector makes — post, reply, update — as plain JSON
    over one aiohttp session shared by every service URL and message.

    botbuilder's ``continue_conversation`` builds two msrest clients and a new HTTP session
    (a new TCP and TLS connection) for every message; this keeps one pooled session and a
    cached token instead. Only the token comes from botbuilder (its credentials factory).
    Nothing here waits or retries: a throttled or failing call raises :class:`DeliveryError`
    with the status and ``Retry-After``, and the delivery job is rescheduled by the queue.
    """

    def __init__(self, settings: Settings) -> None:
        self._app_id = settings.bot_app_id or ""
        self._factory = credentials_factory(settings)
        self._login_url = settings.bot_token_url or AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL
        self._credentials: AppCredentials | None = None
        self._token: tuple[str, float] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if not self._app_id:
            return headers  # local development without a bot identity
        now = time.monotonic()
        if self._token is None or now - self._token[1] > TOKEN_REUSE_SECONDS:
            if self._credentials is None:
                self._credentials = await self._factory.create_credentials(
                    self._app_id, AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE, self._login_url, True
                )
            # botbuilder's credentials are synchronous (MSAL or requests): keep them off the loop.
            token = await asyncio.to_thread(self._credentials.get_access_token)
            self._token = (token, now)
        return {**headers, "Authorization": f"Bearer {self._token[0]}"}

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_SECONDS))
        return self._session

    @staticmethod
    def _activity(conversation: ConversationRecord, **fields: Any) -> dict[str, Any]:
        reference = conversation.reference or {}
        activity = {
            "type": "message",
            "channelId": reference.get("channelId", "msteams"),
            "conversation": {"id": conversation.conversation_id, "tenantId": conversation.tenant_id},
            **fields,
        }
        if reference.get("bot"):
            activity["from"] = reference["bot"]
        return activity

    @staticmethod
    def _card(card: dict[str, Any], summary: str) -> dict[str, Any]:
        return {"attachments": [cards.attachment(card)], "summary": summary}

    async def post(self, conversation: ConversationRecord, card: dict[str, Any], summary: str) -> str:
        url = f"{_base(conversation)}/v3/conversations/{quote(conversation.conversation_id, safe='')}/activities"
        return await self._send("POST", url, conversation, self._activity(conversation, **self._card(card, summary)))

    async def update(
        self, conversation: ConversationRecord, activity_id: str, card: dict[str, Any], summary: str
    ) -> None:
        conversation_path = quote(conversation.conversation_id, safe="")
        url = f"{_base(conversation)}/v3/conversations/{conversation_path}/activities/{quote(activity_id, safe='')}"
        await self._send(
            "PUT", url, conversation, self._activity(conversation, id=activity_id, **self._card(card, summary))
        )

    async def reply(
        self, conversation: ConversationRecord, activity_id: str, text: str, mentions: Sequence[Mention] = ()
    ) -> str:
        base = f"{_base(conversation)}/v3/conversations"
        activity = self._activity(conversation, text=text, textFormat="markdown", replyToId=activity_id)
        if mentions:
            # Teams notifies each person whose <at> tag in the text has a mention entity.
            activity["entities"] = cards.mention_entities(list(mentions))
        if conversation.conversation_type == "channel":
            # In a channel a reply goes to the thread "<channel id>;messageid=<root id>".
            url = f"{base}/{quote(f'{conversation.conversation_id};messageid={activity_id}', safe='')}/activities"
        else:
            url = f"{base}/{quote(conversation.conversation_id, safe='')}/activities/{quote(activity_id, safe='')}"
        return await self._send("POST", url, conversation, activity)

    async def _send(self, method: str, url: str, conversation: ConversationRecord, activity: dict[str, Any]) -> str:
        try:
            async with self._http().request(
                method, url, data=json.dumps(activity, separators=(",", ":")), headers=await self._headers()
            ) as response:
                text = await response.text()
                if response.status < 300:
                    try:
                        return str((json.loads(text) if text else {}).get("id") or "")
                    except ValueError:
                        return ""
                raise _error(response.status, response.headers.get("Retry-After"), text)
        except DeliveryError:
            raise
        except PermissionError as exc:  # the bot's own token request failed
            raise DeliveryError(f"the bot could not get a token: {exc}", status=401) from exc
        except (TimeoutError, aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            # The request was sent, or may have been: Teams may have done it.
            raise DeliveryError(
                f"Teams did not answer: {type(exc).__name__}: {exc}".rstrip(": "), maybe_sent=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"Teams could not be reached: {type(exc).__name__}: {exc}") from exc

    async def check_token(self) -> str:
        """Get the bot's Bot Connector token (the deep health check)."""
        if not self._app_id:
            return "no bot identity (local development)"
        self._token = None
        await self._headers()
        return "token issued"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _base(conversation: ConversationRecord) -> str:
    return (conversation.service_url or (conversation.reference or {}).get("serviceUrl") or "").rstrip("/")


def _error(status: int, retry_after: str | None, body: str) -> DeliveryError:
    """A Bot Connector error as the port's :class:`DeliveryError`, with Retry-After."""
    code = ""
    try:
        error = (json.loads(body) or {}).get("error") or {}
        code = f"{error.get('code', '') or ''}: {error.get('message', '') or ''}".strip(": ")
    except (ValueError, AttributeError):
        pass
    wait = parse_retry_after(retry_after)
    message = f"Teams answered {status}" + (f" ({code[:300]})" if code else "")
    permanent = is_permanent(status)
    gone = permanent and any(gone_code in code for gone_code in GONE_CODES)
    return DeliveryError(message, status=status, permanent=permanent, conversation_gone=gone, retry_after=wait)
