"""Bot Connector v3 routes: the part of the REST API a Teams bot calls through serviceUrl.

URLs, verbs and bodies follow botframework-connector's ConversationsOperations; conversation
and activity ids arrive URL-encoded (Teams ids contain ``:``, ``;``, ``@`` and ``=``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from .auth import CALLER_APP_ID, AuthService
from .faults import error_body
from .state import SimulatorState, split_conversation_id

if TYPE_CHECKING:
    from .limits import RateLimits

# Teams rejects larger bot messages with 413 MessageSizeTooBig (Teams docs, "Format your bot
# messages": keep bot messages under about 80 KB including the JSON envelope).
MAX_ACTIVITY_BYTES = 80 * 1024

CONNECTOR_PREFIXES = ("", "/teams")


class ConnectorOptions(Protocol):
    require_connector_auth: bool
    max_activity_bytes: int

    @property
    def service_url(self) -> str: ...

    @property
    def limits(self) -> RateLimits | None: ...

    def bot_not_in(self, conversation_id: str, app_id: str | None) -> bool:
        """Whether the conversation is a channel the bot may not post in (a private or shared
        channel it was not added to)."""
        ...


def bot_connector_error(
    status: int,
    code: str | None = None,
    message: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A JSON error response shaped as Bot Connector's ``{"error": {"code", "message"}}``."""
    default = error_body(status)["error"]
    body = {"error": {"code": code or default["code"], "message": message or default["message"]}}
    return web.json_response(body, status=status, headers=headers)


def _tenant_in(source: Any) -> str | None:
    """The tenant id a conversation-parameters or activity body names, if any."""
    if not isinstance(source, dict):
        return None
    conversation = source.get("conversation")
    channel_data = source.get("channelData")
    tenant = channel_data.get("tenant") if isinstance(channel_data, dict) else None
    return (
        source.get("tenantId")
        or source.get("tenantID")  # how botbuilder serializes ConversationParameters.tenant_id
        or (conversation.get("tenantId") if isinstance(conversation, dict) else None)
        or (tenant.get("id") if isinstance(tenant, dict) else None)
    )


def conversation_kind(conversation_id: str) -> str:
    """Guess a conversation's type from the shape of its Teams id."""
    base, _ = split_conversation_id(conversation_id)
    if base.startswith(("a:", "8:")) or base.endswith("@unq.gbl.spaces"):
        return "personal"
    if base.endswith("@thread.v2"):
        return "groupChat"
    return "channel"


class ConnectorRoutes:
    """Handlers for the Bot Connector endpoints, bound to the simulator's state."""

    def __init__(self, state: SimulatorState, auth: AuthService, options: ConnectorOptions) -> None:
        self.state = state
        self.auth = auth
        self.options = options
        # (tenant, user id, bot id) -> conversation id: Teams returns the same 1:1 chat again.
        self._personal: dict[tuple[str | None, str, str | None], str] = {}

    def add_routes(self, app: web.Application) -> None:
        for prefix in CONNECTOR_PREFIXES:
            base = f"{prefix}/v3/conversations"
            app.router.add_post(base, self.create_conversation)
            app.router.add_get(base, self.list_conversations)
            app.router.add_post(base + "/{conversationId}/activities", self.send_to_conversation)
            activity = base + "/{conversationId}/activities/{activityId}"
            app.router.add_post(activity, self.reply_to_activity)
            app.router.add_put(activity, self.update_activity)
            app.router.add_delete(activity, self.delete_activity)
            app.router.add_get(base + "/{conversationId}/members", self.get_members)
            app.router.add_get(base + "/{conversationId}/pagedmembers", self.get_paged_members)
            app.router.add_get(base + "/{conversationId}/members/{memberId}", self.get_member)

    # -- helpers --------------------------------------------------------------------------

    def _authorize(self, request: web.Request) -> web.Response | None:
        app_id = self.auth.app_id_for(request.headers.get("Authorization"))
        request[CALLER_APP_ID] = app_id
        if app_id is None and self.options.require_connector_auth:
            return bot_connector_error(401, "Unauthorized", "Authorization has been denied for this request.")
        return None

    async def _activity_body(self, request: web.Request) -> dict[str, Any] | web.Response:
        raw = await request.read()
        if len(raw) > self.options.max_activity_bytes:
            return bot_connector_error(413)
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return bot_connector_error(400, "BadArgument", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return bot_connector_error(400, "BadArgument", "The request body must be a JSON object.")
        return body

    def _throttled(self, request: web.Request, conversation_id: str, *sources: Any) -> web.Response | None:
        """With limits enforced, count one send to the conversation, or answer 429 Throttled
        with Retry-After when it would go beyond Teams' limits (then nothing is counted).

        Counted per conversation without a thread's ``;messageid=`` suffix (a channel's
        threads share the channel's budget) and per tenant: the one the simulator knows for
        the conversation, else the first that ``sources`` (request bodies) name, else "".
        """
        limits = self.options.limits
        if limits is None:
            return None
        base, _ = split_conversation_id(conversation_id)
        known = self.state.get_conversation(base)
        tenant_id = (known.tenant_id if known else None) or next((t for t in map(_tenant_in, sources) if t), "")
        retry_after = limits.check_and_record(request.get(CALLER_APP_ID), tenant_id, base)
        if retry_after is None:
            return None
        seconds = int(retry_after) if float(retry_after).is_integer() else retry_after
        return bot_connector_error(429, headers={"Retry-After": str(seconds)})

    def _store(
        self,
        request: web.Request,
        conversation_id: str,
        activity: dict[str, Any],
        *,
        reply_to_id: str | None = None,
        thread_root: str | None = None,
    ) -> str:
        kind = conversation_kind(conversation_id)
        self.state.ensure_conversation(conversation_id, kind=kind, tenant_id=_tenant_in(activity))
        activity_id = self.state.new_message_id()
        if kind == "channel" and thread_root is None:
            thread_root = activity_id  # a top-level channel post starts its own thread
        self.state.add_activity(
            conversation_id,
            activity,
            reply_to_id=reply_to_id,
            thread_root=thread_root,
            activity_id=activity_id,
            app_id=request.get(CALLER_APP_ID),
        )
        return activity_id

    def _not_in_roster(self, request: web.Request, conversation_id: str) -> web.Response | None:
        """Teams answers 403 BotNotInConversationRoster to a bot that posts where it is not a
        member (Teams docs, "Send proactive messages", error codes): here, a private or shared
        channel of a team it is installed in but that it was not added to."""
        base, _ = split_conversation_id(conversation_id)
        if not self.options.bot_not_in(base, request.get(CALLER_APP_ID)):
            return None
        return bot_connector_error(403, "BotNotInConversationRoster", "The bot is not part of the conversation roster.")

    # -- handlers -------------------------------------------------------------------------

    async def create_conversation(self, request: web.Request) -> web.Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        params = await self._activity_body(request)
        if isinstance(params, web.Response):
            return params
        channel_data = params.get("channelData") or {}
        channel_id = (channel_data.get("channel") or {}).get("id")
        tenant_id = _tenant_in(params)
        activity = params.get("activity")
        service_url = self.options.service_url

        if channel_id:
            if not isinstance(activity, dict):
                return bot_connector_error(
                    400, "BadArgument", "Activity is required to start a conversation in a channel."
                )
            if (refused := self._not_in_roster(request, channel_id)) is not None:
                return refused
            if (throttled := self._throttled(request, channel_id, params, activity)) is not None:
                return throttled
            self.state.ensure_conversation(channel_id, kind="channel", tenant_id=tenant_id)
            root = self._store(request, channel_id, activity)
            return web.json_response(
                {
                    "id": f"{channel_id};messageid={root}",
                    "activityId": root,
                    "serviceUrl": service_url,
                },
                status=201,
            )

        members = params.get("members") or []
        if params.get("isGroup") or len(members) != 1 or not members[0].get("id"):
            return bot_connector_error(
                400,
                "BadArgument",
                "Bots can only create one-on-one conversations with a single member.",
            )
        bot_id = (params.get("bot") or {}).get("id")
        key = (tenant_id, members[0]["id"], bot_id)
        with self.state.lock:
            conversation_id = self._personal.get(key) or self.state.new_personal_conversation_id()
            throttled = self._throttled(request, conversation_id, params, activity)
            if throttled is not None:
                return throttled
            self._personal[key] = conversation_id
            self.state.ensure_conversation(
                conversation_id, kind="personal", tenant_id=tenant_id, members=[dict(members[0])]
            )
        response: dict[str, Any] = {"id": conversation_id, "serviceUrl": service_url}
        if isinstance(activity, dict):
            response["activityId"] = self._store(request, conversation_id, activity)
        return web.json_response(response, status=201)

    async def list_conversations(self, request: web.Request) -> web.Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        conversations = [{"id": c.id, "members": c.members} for c in self.state.conversations()]
        return web.json_response({"conversations": conversations, "continuationToken": None})

    async def send_to_conversation(self, request: web.Request) -> web.Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        activity = await self._activity_body(request)
        if isinstance(activity, web.Response):
            return activity
        conversation_id = request.match_info["conversationId"]
        _, root = split_conversation_id(conversation_id)
        if (refused := self._not_in_roster(request, conversation_id)) is not None:
            return refused
        if (throttled := self._throttled(request, conversation_id, activity)) is not None:
            return throttled
        activity_id = self._store(
            request,
            conversation_id,
            activity,
            reply_to_id=activity.get("replyToId") or root,
            thread_root=root,
        )
        return web.json_response({"id": activity_id}, status=201)

    async def reply_to_activity(self, request: web.Request) -> web.Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        activity = await self._activity_body(request)
        if isinstance(activity, web.Response):
            return activity
        conversation_id = request.match_info["conversationId"]
        replied_to = request.match_info["activityId"]
        _, root = split_conversation_id(conversation_id)
        if conversation_kind(conversation_id) == "channel":
            known = self.state.find_activity(conversation_id, replied_to)
            root = root or (known.thread_root if known else None) or replied_to
        if (refused := self._not_in_roster(request, conversation_id)) is not None:
            return refused
        if (throttled := self._throttled(request, conversation_id, activity)) is not None:
            return throttled
        activity_id = self._store(request, conversation_id, activity, reply_to_id=replied_to, thread_root=root)
        return web.json_response({"id": activity_id}, status=201)

    async def update_activity(self, request: web.Request) -> web.Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        activity = await self._activity_body(request)
        if isinstance(activity, web.Response):
            return activity
        activity_id = request.match_info["activityId"]
        if (refused := self._not_in_roster(request, request.match_info["conversationId"])) is not None:
            return refused
        with self.state.lock:
            sent = self.state.find_activity(request.match_info["conversationId"], activity_id)
            if sent is None or sent.deleted:
                return bot_connector_error(
                    404,
                    "ActivityNotFoundInConversation",
                    f"Activity {activity_id} was not found in the conversation.",
                )
            throttled = self._throttled(request, request.match_info["conversationId"], activity)
            if throttled is not None:
                return throttled
            version = dict(activity)
            version["id"] = activity_id
            if sent.reply_to_id and "replyToId" not in version:
                version["replyToId"] = sent.reply_to_id
            sent.versions.append(version)
        return web.json_response({"id": activity_id})

    async def delete_activity(self, request: web.Request) -> web.Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        activity_id = request.match_info["activityId"]
        with self.state.lock:
            sent = self.state.find_activity(request.match_info["conversationId"], activity_id)
            if sent is None or sent.deleted:
                return bot_connector_error(
                    404,
                    "ActivityNotFoundInConversation",
                    f"Activity {activity_id} was not found in the conversation.",
                )
            sent.deleted = True
        return web.Response(status=200)

    def _members(self, conversation_id: str) -> list[dict[str, Any]] | None:
        conversation = self.state.get_conversation(conversation_id)
        return list(conversation.members) if conversation else None

    async def get_members(self, request: web.Request) -> web.Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        members = self._members(request.match_info["conversationId"])
        if members is None:
            return bot_connector_error(404, "ConversationNotFound", "Conversation not found.")
        return web.json_response(members)

    async def get_paged_members(self, request: web.Request) -> web.Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        members = self._members(request.match_info["conversationId"])
        if members is None:
            return bot_connector_error(404, "ConversationNotFound", "Conversation not found.")
        return web.json_response({"members": members, "continuationToken": None})

    async def get_member(self, request: web.Request) -> web.Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        member_id = request.match_info["memberId"]
        for member in self._members(request.match_info["conversationId"]) or []:
            ids = (member.get("id"), member.get("aadObjectId"), member.get("userPrincipalName"))
            if member_id in ids:
                return web.json_response(member)
        return bot_connector_error(404, "MemberNotFoundInConversation", "The member was not found in the conversation.")
