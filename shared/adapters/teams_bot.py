"""Teams messaging as the bot, on ``botbuilder-core``.

botbuilder is archived upstream: every botbuilder import in the connector is in this module,
so it can be replaced without touching the service layer. Import this module lazily (it costs
about half a second at cold start).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections import defaultdict, deque
from types import SimpleNamespace
from typing import Any, Awaitable, Callable

import requests
from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity, ActivityTypes, ConversationReference
from botframework.connector.auth import (
    AppCredentials,
    AuthenticationConstants,
    ManagedIdentityServiceClientCredentialsFactory,
    PasswordServiceClientCredentialFactory,
    ServiceClientCredentialsFactory,
)

from shared.domain.model import ConversationRecord
from shared.ports import DeliveryError
from shared.settings import Settings

log = logging.getLogger(__name__)

# Teams asks bots to retry these (rate-limit docs): 412 precondition, 429 throttled,
# 502/503/504 gateway and availability errors.
RETRYABLE_STATUSES = frozenset({412, 429, 502, 503, 504})
MAX_SEND_ATTEMPTS = 4
DEFAULT_RETRY_AFTER_SECONDS = 1.0
MAX_RETRY_AFTER_SECONDS = 30.0
# Bot Connector error codes that mean the bot can no longer post in the conversation (the
# app was removed, or the chat deleted).
GONE_CODES = frozenset({"ConversationNotFound", "BotNotInConversationRoster", "BotDisabledByAdmin"})
# Per bot per conversation: 7 messages per second (Teams rate-limit docs). Pacing below it
# avoids 429s instead of recovering from them.
SENDS_PER_SECOND_PER_CONVERSATION = 7


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
            data={"grant_type": "client_credentials", "client_id": self.microsoft_app_id, "client_secret": self._password, "scope": scope},
            timeout=10,
        )
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != 200 or "access_token" not in body:
            raise PermissionError(f"the bot's token request failed ({response.status_code}): {body.get('error', '')} {body.get('error_description', '')}".strip())
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

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool) -> AppCredentials:
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
    return PasswordServiceClientCredentialFactory(settings.bot_app_id, settings.bot_app_password, settings.bot_tenant_id)


def auth_configuration(settings: Settings) -> Any:
    """botbuilder's configuration object. Empty (public cloud defaults) unless the OpenID
    metadata or token URL is overridden for a local simulator."""
    if not (settings.bot_openid_metadata_url or settings.bot_token_url):
        return SimpleNamespace()
    return SimpleNamespace(
        TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL=settings.bot_openid_metadata_url or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
        TO_BOT_FROM_CHANNEL_TOKEN_ISSUER=AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
        TO_CHANNEL_FROM_BOT_LOGIN_URL=settings.bot_token_url or AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL,
        TO_CHANNEL_FROM_BOT_OAUTH_SCOPE=AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
        VALIDATE_AUTHORITY=True,
    )


Handler = Callable[[dict, dict], Awaitable[Any]]


class TeamsBot:
    """Inbound bot requests and outbound (proactive) messages through botbuilder."""

    def __init__(self, settings: Settings) -> None:
        self._app_id = settings.bot_app_id or ""
        self._allow_anonymous = settings.allow_unauthenticated_bot_requests and not settings.bot_app_id
        self._auth = ConfigurationBotFrameworkAuthentication(auth_configuration(settings), credentials_factory=credentials_factory(settings))
        self._adapter = CloudAdapter(self._auth)
        self._recent_sends: dict[str, deque[float]] = defaultdict(deque)

    # ------------------------------------------------------------------ inbound

    async def process(self, body: bytes, auth_header: str | None, handler: Handler) -> tuple[int, Any]:
        """Authenticate and run one inbound activity; returns (HTTP status, JSON body or None)."""
        try:
            payload = json.loads(body or b"{}")
        except json.JSONDecodeError:
            return 400, {"error": "the request body is not JSON"}
        if not isinstance(payload, dict) or not payload.get("type"):
            return 400, {"error": "the request body is not a Bot Framework activity (no type)"}
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
                await turn_context.send_activity(MessageFactory.attachment(CardFactory.adaptive_card(card)))
            invoke = getattr(reply, "invoke_response", None)
            if invoke is not None and turn_context.activity.type == ActivityTypes.invoke:
                from botbuilder.core import InvokeResponse

                await turn_context.send_activity(Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=invoke[0], body=invoke[1])))

        invoke_response = await self._adapter.process_activity(auth_result, activity, logic)
        if invoke_response is not None:
            return invoke_response.status, invoke_response.body
        return 200, None

    # ------------------------------------------------------------------ outbound

    async def post(self, conversation: ConversationRecord, card: dict, summary: str) -> str:
        activity = MessageFactory.attachment(CardFactory.adaptive_card(card))
        activity.summary = summary
        return await self._send(conversation, activity, reply_to=None)

    async def reply(self, conversation: ConversationRecord, activity_id: str, text: str) -> str:
        return await self._send(conversation, MessageFactory.text(text), reply_to=activity_id)

    async def update(self, conversation: ConversationRecord, activity_id: str, card: dict, summary: str) -> None:
        activity = MessageFactory.attachment(CardFactory.adaptive_card(card))
        activity.summary = summary

        async def call(connector: Any, conversation_id: str, prepared: Activity) -> Any:
            prepared.id = activity_id
            return await connector.conversations.update_activity(conversation_id, activity_id, prepared)

        await self._call_connector(conversation, activity, call)

    async def _send(self, conversation: ConversationRecord, activity: Activity, reply_to: str | None) -> str:
        async def call(connector: Any, conversation_id: str, prepared: Activity) -> Any:
            if conversation.conversation_type == "channel" and reply_to:
                # In a channel a reply goes to the thread "<channel id>;messageid=<root id>".
                return await connector.conversations.send_to_conversation(f"{conversation_id};messageid={reply_to}", prepared)
            if reply_to:
                prepared.reply_to_id = reply_to
                return await connector.conversations.reply_to_activity(conversation_id, reply_to, prepared)
            return await connector.conversations.send_to_conversation(conversation_id, prepared)

        response = await self._call_connector(conversation, activity, call)
        return getattr(response, "id", None) or ""

    async def _call_connector(self, conversation: ConversationRecord, activity: Activity, call: Callable[[Any, str, Activity], Awaitable[Any]]) -> Any:
        """Run one Bot Connector call inside a proactive turn.

        The connector client is used directly: TurnContext.send_activity would stamp every
        proactive message as a reply to the turn's synthetic continuation activity.
        """
        reference = ConversationReference().deserialize(conversation.reference)
        reference.activity_id = None
        result: dict[str, Any] = {}

        async def callback(turn_context: TurnContext) -> None:
            connector = turn_context.turn_state[turn_context.adapter.BOT_CONNECTOR_CLIENT_KEY]
            prepared = TurnContext.apply_conversation_reference(copy.deepcopy(activity), reference)
            prepared.reply_to_id = None
            result["response"] = await call(connector, reference.conversation.id, prepared)

        await self._with_retries(conversation, lambda: self._adapter.continue_conversation(reference, callback, bot_app_id=self._app_id))
        return result.get("response")

    async def _pace(self, conversation_id: str) -> None:
        window = self._recent_sends[conversation_id]
        now = time.monotonic()
        while window and now - window[0] > 1.0:
            window.popleft()
        if len(window) >= SENDS_PER_SECOND_PER_CONVERSATION:
            await asyncio.sleep(1.0 - (now - window[0]))
        window.append(time.monotonic())

    async def _with_retries(self, conversation: ConversationRecord, attempt: Callable[[], Awaitable[None]]) -> None:
        for number in range(1, MAX_SEND_ATTEMPTS + 1):
            await self._pace(conversation.conversation_id)
            try:
                await attempt()
                return
            except Exception as exc:  # noqa: BLE001 - classified below
                status, retry_after, message = _describe(exc)
                if status in RETRYABLE_STATUSES and number < MAX_SEND_ATTEMPTS:
                    wait = min(retry_after if retry_after is not None else DEFAULT_RETRY_AFTER_SECONDS * number, MAX_RETRY_AFTER_SECONDS)
                    log.info("Teams answered %s for %s; retrying in %.1f s", status, conversation.conversation_id, wait)
                    await asyncio.sleep(wait)
                    continue
                permanent = status is not None and 400 <= status < 500 and status not in RETRYABLE_STATUSES and status != 401
                gone = permanent and any(code in message for code in GONE_CODES)
                raise DeliveryError(message, status=status, permanent=permanent, conversation_gone=gone) from exc


def _describe(exc: Exception) -> tuple[int | None, float | None, str]:
    """HTTP status, Retry-After seconds and a one-line message from a connector error."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    headers = getattr(response, "headers", None) or {}
    retry_after: float | None = None
    raw = headers.get("Retry-After") if hasattr(headers, "get") else None
    if raw is not None:
        try:
            retry_after = max(float(raw), 0.0)
        except ValueError:
            retry_after = None
    if status is None:
        return None, None, f"Teams could not be reached: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    code = ""
    error = getattr(exc, "error", None)
    inner = getattr(error, "error", None)
    if inner is not None:
        code = f"{getattr(inner, 'code', '') or ''}: {getattr(inner, 'message', '') or ''}".strip(": ")
    return int(status), retry_after, f"Teams answered {status}" + (f" ({code})" if code else "")
