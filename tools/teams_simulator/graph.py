"""Microsoft Graph v1.0: the subset the connector calls, with Graph's error bodies.

Every route checks the bearer token the identity endpoints issued and the permission the real
API requires ("requires one of" lists from the Graph reference, trimmed to what matters here):
a token without it gets 403 with Graph's message naming the permissions.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .directory import Channel, Chat, Directory, IssuedAccessToken, Message, Tenant

GRAPH_PREFIX = "/v1.0"

# Graph error bodies (Graph docs, "Microsoft Graph error responses and resource types").
GRAPH_ERROR_CODES: dict[int, str] = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    412: "PreconditionFailed",
    413: "RequestEntityTooLarge",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def graph_error_body(status: int, code: str | None = None, message: str | None = None) -> dict[str, Any]:
    default_message = {
        429: "Too many requests. Please try again later.",
        503: "The service is temporarily unavailable.",
    }.get(status, f"HTTP {status}")
    return {
        "error": {
            "code": code or GRAPH_ERROR_CODES.get(status, "UnknownError"),
            "message": message or default_message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": str(uuid.uuid4()),
                "client-request-id": str(uuid.uuid4()),
            },
        }
    }


def graph_error(status: int, code: str | None = None, message: str | None = None) -> web.Response:
    return web.json_response(graph_error_body(status, code, message), status=status)


# (application roles, delegated scopes) accepted by each operation.
PERMISSIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "organization": (("Organization.Read.All", "Directory.Read.All"), ("User.Read", "Organization.Read.All")),
    "me": ((), ("User.Read", "User.ReadBasic.All", "User.Read.All")),
    "users": (("User.Read.All", "Directory.Read.All"), ("User.ReadBasic.All", "User.Read.All")),
    "teams": (("Team.ReadBasic.All", "Directory.Read.All"), ()),
    "joinedTeams": ((), ("Team.ReadBasic.All", "Directory.Read.All")),
    "channels.read": (
        ("Channel.ReadBasic.All", "ChannelSettings.Read.All"),
        ("Channel.ReadBasic.All", "ChannelSettings.Read.All"),
    ),
    "channels.create": (("Channel.Create", "Directory.ReadWrite.All"), ("Channel.Create", "Directory.ReadWrite.All")),
    "members.read": (
        ("ChannelMember.Read.All", "ChannelMember.ReadWrite.All"),
        ("ChannelMember.Read.All", "ChannelMember.ReadWrite.All"),
    ),
    "members.write": (("ChannelMember.ReadWrite.All",), ("ChannelMember.ReadWrite.All",)),
    "chats.create": (("Chat.Create", "Chat.ReadWrite.All"), ("Chat.Create", "Chat.ReadWrite")),
    "channelMessages.send": (("Teamwork.Migrate.All",), ("ChannelMessage.Send", "Group.ReadWrite.All")),
    "channelMessages.update": (
        ("ChannelMessage.UpdatePolicyViolation.All",),
        ("ChannelMessage.ReadWrite", "Group.ReadWrite.All"),
    ),
    "chatMessages.send": (("Teamwork.Migrate.All",), ("ChatMessage.Send", "Chat.ReadWrite")),
    "chatMessages.update": (("Chat.UpdatePolicyViolation.All",), ("Chat.ReadWrite",)),
    "events.create": (("Calendars.ReadWrite",), ("Calendars.ReadWrite",)),
    "installedApps.write": (
        ("TeamsAppInstallation.ReadWriteSelfForUser.All", "TeamsAppInstallation.ReadWriteForUser.All"),
        (),
    ),
    "installedApps.read": (
        ("TeamsAppInstallation.ReadWriteSelfForUser.All", "TeamsAppInstallation.ReadForUser.All"),
        (),
    ),
    "chatInstalledApps.write": (
        ("TeamsAppInstallation.ReadWriteSelfForChat.All", "TeamsAppInstallation.ReadWriteForChat.All"),
        (),
    ),
    "chatInstalledApps.read": (
        (
            "TeamsAppInstallation.ReadWriteSelfForChat.All",
            "TeamsAppInstallation.ReadForChat.All",
            "TeamsAppInstallation.ReadWriteForChat.All",
        ),
        (),
    ),
}


def _new_message_id() -> str:
    return str(int(time.time() * 1000)) + uuid.uuid4().hex[:4]


def _bound_app_id(body: dict[str, Any]) -> str:
    """The catalog app id of ``teamsApp@odata.bind`` (``.../appCatalogs/teamsApps/{id}``)."""
    return str(body.get("teamsApp@odata.bind", "")).rstrip("')").split("/")[-1]


def _chat_installation_id(chat_id: str, app_id: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_OID, f"{chat_id}/{app_id}").hex


class GraphRoutes:
    def __init__(self, directory: Directory, base_url: Any) -> None:
        self.directory = directory
        self.base_url = base_url

    def add_routes(self, app: web.Application) -> None:
        p = GRAPH_PREFIX
        r = app.router
        r.add_get(p + "/organization", self.organization)
        r.add_get(p + "/me", self.me)
        r.add_get(p + "/me/joinedTeams", self.joined_teams)
        r.add_get(p + "/users", self.list_users)
        r.add_get(p + "/users/{user}", self.get_user)
        r.add_post(p + "/users/{user}/events", self.create_event)
        r.add_post(p + "/users/{user}/teamwork/installedApps", self.install_app)
        r.add_get(p + "/users/{user}/teamwork/installedApps", self.list_installations)
        r.add_get(p + "/users/{user}/teamwork/installedApps/{installation}/chat", self.installation_chat)
        r.add_get(p + "/teams", self.list_teams)
        r.add_get(p + "/teams/{team}/channels", self.list_channels)
        r.add_post(p + "/teams/{team}/channels", self.create_channel)
        r.add_get(p + "/teams/{team}/channels/{channel}/members", self.list_members)
        # Here a channel's every member is a direct member: no shared channel is shared with
        # another team, whose members Graph adds to allMembers as indirect members.
        r.add_get(p + "/teams/{team}/channels/{channel}/allMembers", self.list_members)
        r.add_post(p + "/teams/{team}/channels/{channel}/members", self.add_member)
        r.add_post(p + "/teams/{team}/channels/{channel}/messages", self.post_channel_message)
        r.add_patch(p + "/teams/{team}/channels/{channel}/messages/{message}", self.update_channel_message)
        r.add_post(p + "/teams/{team}/channels/{channel}/messages/{message}/replies", self.reply_channel_message)
        r.add_post(p + "/chats", self.create_chat)
        r.add_post(p + "/chats/{chat}/messages", self.post_chat_message)
        r.add_post(p + "/chats/{chat}/installedApps", self.install_app_in_chat)
        r.add_get(p + "/chats/{chat}/installedApps", self.list_chat_installations)
        r.add_patch(p + "/chats/{chat}/messages/{message}", self.update_chat_message)

    # -- helpers --------------------------------------------------------------------------

    def _authorize(self, request: web.Request, operation: str) -> IssuedAccessToken | web.Response:
        token = self.directory.token_info(request.headers.get("Authorization"))
        if token is None:
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
        roles, scopes = PERMISSIONS[operation]
        accepted = scopes if token.delegated else roles
        if not accepted or not token.permissions & set(accepted):
            kind, held = ("scope", "Scopes") if token.delegated else ("role", "Roles")
            needed = (
                ", ".join(accepted)
                if accepted
                else ("an application permission" if token.delegated else "a delegated permission")
            )
            message = (
                f"Missing {kind} permissions on the request. API requires one of '{needed}'. {held} on the request "
                f"'{', '.join(sorted(token.permissions))}'."
            )
            return graph_error(403, "Forbidden", message)
        return token

    def _tenant(self, token: IssuedAccessToken) -> Tenant:
        return self.directory.tenants[token.tenant_id]

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            return graph_error(400, "BadRequest", "Unable to read JSON request payload.")
        if not isinstance(body, dict):
            return graph_error(400, "BadRequest", "The request body must be a JSON object.")
        return body

    def _team(self, tenant: Tenant, team_id: str) -> Any:
        team = tenant.teams.get(team_id)
        if team is None:
            return graph_error(404, "NotFound", f"No team found with Group Id {team_id}")
        return team

    def _channel(self, tenant: Tenant, team_id: str, channel_id: str) -> Channel | web.Response:
        team = self._team(tenant, team_id)
        if isinstance(team, web.Response):
            return team
        channel = team.channels.get(channel_id)
        if channel is None:
            return graph_error(404, "NotFound", f"Channel {channel_id} not found in team {team_id}.")
        return channel

    def _chat(self, tenant: Tenant, chat_id: str) -> Chat | web.Response:
        chat = tenant.chats.get(chat_id)
        if chat is None:
            return graph_error(404, "NotFound", f"Chat {chat_id} not found.")
        return chat

    @staticmethod
    def _user_missing(user: str) -> web.Response:
        return graph_error(
            404,
            "Request_ResourceNotFound",
            f"Resource '{user}' does not exist or one of its queried reference-property objects are not present.",
        )

    def _collection(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        return web.json_response({"@odata.context": f"{self.base_url()}{request.path}", "value": items})

    # -- organization and users -----------------------------------------------------------

    async def organization(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "organization")
        if isinstance(token, web.Response):
            return token
        tenant = self._tenant(token)
        return self._collection(request, [{"id": tenant.id, "displayName": tenant.display_name}])

    async def me(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "me")
        if isinstance(token, web.Response):
            return token
        with self.directory.lock:
            user = self._tenant(token).users[token.user_id]
            return web.json_response(user.to_graph())

    async def get_user(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "users")
        if isinstance(token, web.Response):
            return token
        with self.directory.lock:
            user = self._tenant(token).find_user(request.match_info["user"])
            if user is None:
                return self._user_missing(request.match_info["user"])
            return web.json_response(user.to_graph())

    async def list_users(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "users")
        if isinstance(token, web.Response):
            return token
        filter_ = request.query.get("$filter", "")
        search = request.query.get("$search", "")
        with self.directory.lock:
            users = list(self._tenant(token).users.values())
            if filter_:
                clauses = re.split(r"\s+or\s+", filter_.strip())
                wanted: list[tuple[str, str]] = []
                for clause in clauses:
                    match = re.fullmatch(r"(mail|userPrincipalName) eq '((?:[^']|'')*)'", clause)
                    if not match:
                        return graph_error(400, "Request_UnsupportedQuery", f"Unsupported query: {filter_}")
                    wanted.append((match.group(1), match.group(2).replace("''", "'").lower()))
                users = [
                    u
                    for u in users
                    if any(
                        ((u.mail if name == "mail" else u.user_principal_name) or "").lower() == value
                        for name, value in wanted
                    )
                ]
            if search:
                if request.headers.get("ConsistencyLevel", "").lower() != "eventual":
                    return graph_error(
                        400,
                        "Request_UnsupportedQuery",
                        "Search is only supported with the header ConsistencyLevel: eventual.",
                    )
                terms = re.findall(r'"(?:displayName|mail|userPrincipalName):([^"]*)"', search) or [search.strip('"')]
                users = [
                    u
                    for u in users
                    if any(t.lower() in f"{u.display_name} {u.mail} {u.user_principal_name}".lower() for t in terms)
                ]
            return self._collection(request, [u.to_graph() for u in users])

    # -- teams, channels, members ---------------------------------------------------------

    @staticmethod
    def _team_json(team: Any) -> dict[str, Any]:
        return {"id": team.id, "displayName": team.display_name, "description": team.description}

    async def list_teams(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "teams")
        if isinstance(token, web.Response):
            return token
        with self.directory.lock:
            return self._collection(request, [self._team_json(t) for t in self._tenant(token).teams.values()])

    async def joined_teams(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "joinedTeams")
        if isinstance(token, web.Response):
            return token
        with self.directory.lock:
            teams = [t for t in self._tenant(token).teams.values() if token.user_id in t.members]
            return self._collection(request, [self._team_json(t) for t in teams])

    @staticmethod
    def _channel_json(team_id: str, channel: Channel) -> dict[str, Any]:
        return {
            "id": channel.id,
            "displayName": channel.display_name,
            "description": channel.description,
            "membershipType": channel.membership_type,
            # Encoded as Graph encodes it: the channel id and name are path segments.
            "webUrl": f"https://teams.microsoft.com/l/channel/{quote(channel.id, safe='')}/"
            f"{quote(channel.display_name, safe='')}?groupId={team_id}",
        }

    async def list_channels(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "channels.read")
        if isinstance(token, web.Response):
            return token
        with self.directory.lock:
            team = self._team(self._tenant(token), request.match_info["team"])
            if isinstance(team, web.Response):
                return team
            return self._collection(request, [self._channel_json(team.id, c) for c in team.channels.values()])

    async def create_channel(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "channels.create")
        if isinstance(token, web.Response):
            return token
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        name = str(body.get("displayName") or "")
        membership = body.get("membershipType", "standard")
        with self.directory.lock:
            tenant = self._tenant(token)
            team = self._team(tenant, request.match_info["team"])
            if isinstance(team, web.Response):
                return team
            if not name or len(name) > 50:
                return graph_error(400, "BadRequest", "Channel name must be 1-50 characters.")
            if any(c.display_name.lower() == name.lower() for c in team.channels.values()):
                return graph_error(
                    409, "NameAlreadyExists", f"Channel name already existed, please use other name. Name: {name}"
                )
            members: dict[str, list[str]] = {}
            for member in body.get("members") or []:
                bind = member.get("user@odata.bind", "")
                user_id = bind.rstrip("')").split("('")[-1]
                if tenant.find_user(user_id) is None:
                    return self._user_missing(user_id)
                members[user_id] = list(member.get("roles") or [])
            if membership == "private" and not any("owner" in r for r in members.values()):
                return graph_error(
                    400, "BadRequest", "A private channel needs at least one owner in members (roles: ['owner'])."
                )
            # Not as Graph does (a new thread id): a client that shows only the channels it
            # started with (the Agents Playground under make run) keeps spare ones, and a new
            # channel takes the next of their ids, so the connector's post there reaches it.
            new_id = team.spare_channel_ids.pop(0) if team.spare_channel_ids else f"19:{uuid.uuid4().hex}@thread.tacv2"
            channel = Channel(
                new_id,
                name,
                str(body.get("description") or ""),
                membership,
                members,
                team_id=team.id,
            )
            team.channels[channel.id] = channel
            return web.json_response(self._channel_json(team.id, channel), status=201)

    async def list_members(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "members.read")
        if isinstance(token, web.Response):
            return token
        with self.directory.lock:
            tenant = self._tenant(token)
            channel = self._channel(tenant, request.match_info["team"], request.match_info["channel"])
            if isinstance(channel, web.Response):
                return channel
            items = [
                {
                    "@odata.type": "#microsoft.graph.aadUserConversationMember",
                    "id": uuid.uuid5(uuid.NAMESPACE_OID, f"{channel.id}/{user_id}").hex,
                    "roles": roles,
                    "userId": user_id,
                    "displayName": tenant.users[user_id].display_name if user_id in tenant.users else None,
                }
                for user_id, roles in channel.members.items()
            ]
            return self._collection(request, items)

    async def add_member(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "members.write")
        if isinstance(token, web.Response):
            return token
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        with self.directory.lock:
            tenant = self._tenant(token)
            channel = self._channel(tenant, request.match_info["team"], request.match_info["channel"])
            if isinstance(channel, web.Response):
                return channel
            user_id = str(body.get("user@odata.bind", "")).rstrip("')").split("('")[-1]
            if tenant.find_user(user_id) is None:
                return self._user_missing(user_id)
            channel.members[user_id] = list(body.get("roles") or [])
            return web.json_response(
                {
                    "@odata.type": "#microsoft.graph.aadUserConversationMember",
                    "id": uuid.uuid4().hex,
                    "userId": user_id,
                    "roles": channel.members[user_id],
                },
                status=201,
            )

    # -- chats ----------------------------------------------------------------------------

    async def create_chat(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "chats.create")
        if isinstance(token, web.Response):
            return token
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        chat_type = body.get("chatType")
        with self.directory.lock:
            tenant = self._tenant(token)
            member_ids = []
            for member in body.get("members") or []:
                user_id = str(member.get("user@odata.bind", "")).rstrip("')").split("('")[-1]
                if tenant.find_user(user_id) is None:
                    return self._user_missing(user_id)
                member_ids.append(tenant.find_user(user_id).id)
            if chat_type == "oneOnOne":
                if len(member_ids) != 2:
                    return graph_error(400, "BadRequest", "A oneOnOne chat needs exactly two members.")
                existing = next(
                    (
                        c
                        for c in tenant.chats.values()
                        if c.chat_type == "oneOnOne" and set(c.members) == set(member_ids)
                    ),
                    None,
                )
                if existing is not None:
                    return web.json_response(self._chat_json(existing), status=201)
            elif chat_type == "group":
                if len(member_ids) < 2:
                    return graph_error(400, "BadRequest", "A group chat needs at least two members.")
                # Not as Graph does: it makes a new group chat each time. A client in front of this
                # simulator that shows only its own chats (the Agents Playground under make run)
                # could show no new one, so a group whose members are all in one of its chats is
                # that chat.
                shown = next(
                    (
                        c
                        for c in tenant.chats.values()
                        if c.shown_by_client and c.chat_type == "group" and set(member_ids) <= set(c.members)
                    ),
                    None,
                )
                if shown is not None:
                    return web.json_response(self._chat_json(shown), status=201)
            else:
                return graph_error(400, "BadRequest", f"Invalid chatType '{chat_type}'.")
            chat = Chat(f"19:{uuid.uuid4().hex}@thread.v2", chat_type, body.get("topic"), member_ids)
            tenant.chats[chat.id] = chat
            return web.json_response(self._chat_json(chat), status=201)

    @staticmethod
    def _chat_json(chat: Chat) -> dict[str, Any]:
        return {
            "id": chat.id,
            "chatType": chat.chat_type,
            "topic": chat.topic,
            "webUrl": f"https://teams.microsoft.com/l/chat/{chat.id}/0",
        }

    # -- messages -------------------------------------------------------------------------

    @staticmethod
    def _message(body: dict[str, Any], user_id: str | None, reply_to: str | None = None) -> Message:
        payload = {"body": body.get("body") or {}, "attachments": body.get("attachments") or []}
        return Message(
            _new_message_id(), payload["body"], payload["attachments"], user_id, reply_to, versions=[payload]
        )

    @staticmethod
    def _check_attachments(body: dict[str, Any]) -> web.Response | None:
        content = str((body.get("body") or {}).get("content") or "")
        for attachment in body.get("attachments") or []:
            if f'<attachment id="{attachment.get("id")}"></attachment>' not in content:
                return graph_error(
                    400, "BadRequest", f"Attachment {attachment.get('id')} is not referenced in the message body."
                )
            if attachment.get("contentType") == "application/vnd.microsoft.card.adaptive":
                try:
                    json.loads(attachment.get("content") or "")
                except ValueError:
                    return graph_error(400, "BadRequest", "The adaptive card content is not valid JSON.")
        return None

    async def _message_request(
        self, request: web.Request, operation: str
    ) -> tuple[IssuedAccessToken, dict[str, Any]] | web.Response:
        token = self._authorize(request, operation)
        if isinstance(token, web.Response):
            return token
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        bad = self._check_attachments(body)
        return bad if bad is not None else (token, body)

    async def post_channel_message(self, request: web.Request) -> web.Response:
        got = await self._message_request(request, "channelMessages.send")
        if isinstance(got, web.Response):
            return got
        token, body = got
        with self.directory.lock:
            channel = self._channel(self._tenant(token), request.match_info["team"], request.match_info["channel"])
            if isinstance(channel, web.Response):
                return channel
            message = self._message(body, token.user_id)
            channel.messages[message.id] = message
            return web.json_response(
                message.to_graph(channelIdentity={"teamId": request.match_info["team"], "channelId": channel.id}),
                status=201,
            )

    async def update_channel_message(self, request: web.Request) -> web.Response:
        got = await self._message_request(request, "channelMessages.update")
        if isinstance(got, web.Response):
            return got
        token, body = got
        with self.directory.lock:
            channel = self._channel(self._tenant(token), request.match_info["team"], request.match_info["channel"])
            if isinstance(channel, web.Response):
                return channel
            return self._update(channel.messages, request.match_info["message"], body, token)

    async def reply_channel_message(self, request: web.Request) -> web.Response:
        got = await self._message_request(request, "channelMessages.send")
        if isinstance(got, web.Response):
            return got
        token, body = got
        with self.directory.lock:
            channel = self._channel(self._tenant(token), request.match_info["team"], request.match_info["channel"])
            if isinstance(channel, web.Response):
                return channel
            root = request.match_info["message"]
            if root not in channel.messages:
                return graph_error(404, "NotFound", f"Message {root} not found.")
            message = self._message(body, token.user_id, reply_to=root)
            channel.messages[message.id] = message
            return web.json_response(message.to_graph(), status=201)

    async def post_chat_message(self, request: web.Request) -> web.Response:
        got = await self._message_request(request, "chatMessages.send")
        if isinstance(got, web.Response):
            return got
        token, body = got
        with self.directory.lock:
            chat = self._tenant(token).chats.get(request.match_info["chat"])
            if chat is None:
                return graph_error(404, "NotFound", f"Chat {request.match_info['chat']} not found.")
            if token.user_id not in chat.members:
                return graph_error(403, "Forbidden", "The user is not a member of the chat.")
            message = self._message(body, token.user_id)
            chat.messages[message.id] = message
            return web.json_response(message.to_graph(chatId=chat.id), status=201)

    async def update_chat_message(self, request: web.Request) -> web.Response:
        got = await self._message_request(request, "chatMessages.update")
        if isinstance(got, web.Response):
            return got
        token, body = got
        with self.directory.lock:
            chat = self._tenant(token).chats.get(request.match_info["chat"])
            if chat is None:
                return graph_error(404, "NotFound", f"Chat {request.match_info['chat']} not found.")
            return self._update(chat.messages, request.match_info["message"], body, token)

    @staticmethod
    def _update(
        messages: dict[str, Message], message_id: str, body: dict[str, Any], token: IssuedAccessToken
    ) -> web.Response:
        message = messages.get(message_id)
        if message is None:
            return graph_error(404, "NotFound", f"Message {message_id} not found.")
        if message.from_user != token.user_id:
            return graph_error(403, "Forbidden", "Only the sender can update a message.")
        if "body" in body:
            message.body = body["body"]
        if "attachments" in body:
            message.attachments = body["attachments"]
        message.versions.append({"body": message.body, "attachments": message.attachments})
        return web.Response(status=204)

    # -- calendar and app installation ----------------------------------------------------

    async def create_event(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "events.create")
        if isinstance(token, web.Response):
            return token
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        with self.directory.lock:
            tenant = self._tenant(token)
            user = tenant.find_user(request.match_info["user"])
            if user is None:
                return self._user_missing(request.match_info["user"])
            event_id = uuid.uuid4().hex
            event = dict(body, id=event_id, webLink=f"https://outlook.office365.com/owa/?itemid={event_id}")
            if body.get("isOnlineMeeting"):
                event["onlineMeeting"] = {
                    "joinUrl": f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{event_id}%40thread.v2/0"
                }
            tenant.events.setdefault(user.id, []).append(event)
            return web.json_response(event, status=201)

    async def install_app(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "installedApps.write")
        if isinstance(token, web.Response):
            return token
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        app_id = _bound_app_id(body)
        with self.directory.lock:
            tenant = self._tenant(token)
            user = tenant.find_user(request.match_info["user"])
            if user is None:
                return self._user_missing(request.match_info["user"])
            if any(i["teamsAppId"] == app_id for i in tenant.installations.get(user.id, {}).values()):
                return graph_error(409, "Conflict", "App is already installed.")
            maker = tenant.personal_chat_maker
        # Made outside the lock (the client answers over HTTP); it makes one chat per person.
        chat_id = await maker(user.id) if maker is not None else f"19:{user.id}_{app_id}@unq.gbl.spaces"
        with self.directory.lock:
            installs = tenant.installations.setdefault(user.id, {})
            if any(i["teamsAppId"] == app_id for i in installs.values()):
                return graph_error(409, "Conflict", "App is already installed.")
            installation_id = uuid.uuid4().hex
            chat = Chat(chat_id, "oneOnOne", None, [user.id], installed_apps={app_id})
            tenant.chats[chat.id] = chat
            installs[installation_id] = {"id": installation_id, "teamsAppId": app_id, "chatId": chat.id}
            return web.Response(status=201)

    async def list_installations(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "installedApps.read")
        if isinstance(token, web.Response):
            return token
        match = re.search(r"teamsApp/id eq '([^']*)'", request.query.get("$filter", ""))
        with self.directory.lock:
            tenant = self._tenant(token)
            user = tenant.find_user(request.match_info["user"])
            if user is None:
                return self._user_missing(request.match_info["user"])
            items = [
                {"id": i["id"], "teamsApp": {"id": i["teamsAppId"]}}
                for i in tenant.installations.get(user.id, {}).values()
                if match is None or i["teamsAppId"] == match.group(1)
            ]
            return self._collection(request, items)

    async def installation_chat(self, request: web.Request) -> web.Response:
        token = self._authorize(request, "installedApps.read")
        if isinstance(token, web.Response):
            return token
        with self.directory.lock:
            tenant = self._tenant(token)
            user = tenant.find_user(request.match_info["user"])
            if user is None:
                return self._user_missing(request.match_info["user"])
            installation = tenant.installations.get(user.id, {}).get(request.match_info["installation"])
            if installation is None:
                return graph_error(404, "NotFound", f"Installation {request.match_info['installation']} not found.")
            return web.json_response(self._chat_json(tenant.chats[installation["chatId"]]))

    def installation_id(self, tenant_id: str, user_id: str, app_id: str) -> str | None:
        with self.directory.lock:
            installs = self.directory.tenants[tenant_id].installations.get(user_id, {})
            return next((i for i, v in installs.items() if v["teamsAppId"] == app_id), None)

    async def install_app_in_chat(self, request: web.Request) -> web.Response:
        """``POST /chats/{chat}/installedApps``: 201 with no body, 409 when already installed."""
        token = self._authorize(request, "chatInstalledApps.write")
        if isinstance(token, web.Response):
            return token
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        app_id = _bound_app_id(body)
        if not app_id:
            return graph_error(400, "BadRequest", "teamsApp@odata.bind is required.")
        with self.directory.lock:
            chat = self._chat(self._tenant(token), request.match_info["chat"])
            if isinstance(chat, web.Response):
                return chat
            if app_id in chat.installed_apps:
                return graph_error(409, "Conflict", "App is already installed in this chat.")
            chat.installed_apps.add(app_id)
            return web.Response(status=201)

    async def list_chat_installations(self, request: web.Request) -> web.Response:
        """``GET /chats/{chat}/installedApps``, with ``$filter=teamsApp/id eq '{id}'``."""
        token = self._authorize(request, "chatInstalledApps.read")
        if isinstance(token, web.Response):
            return token
        match = re.search(r"teamsApp/id eq '([^']*)'", request.query.get("$filter", ""))
        with self.directory.lock:
            chat = self._chat(self._tenant(token), request.match_info["chat"])
            if isinstance(chat, web.Response):
                return chat
            items = [
                {"id": _chat_installation_id(chat.id, app_id), "teamsApp": {"id": app_id}}
                for app_id in sorted(chat.installed_apps)
                if match is None or app_id == match.group(1)
            ]
            return self._collection(request, items)

    def chat_installation_id(self, tenant_id: str, chat_id: str, app_id: str) -> str | None:
        """The id of the app's installation in the chat, None when it is not installed there."""
        with self.directory.lock:
            chat = self.directory.tenants[tenant_id].chats[chat_id]
            return _chat_installation_id(chat_id, app_id) if app_id in chat.installed_apps else None
