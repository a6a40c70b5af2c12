"""The Microsoft Graph permissions the connector asks for, with the reason for each, and the
permission each Graph operation needs. Pure data (no SDK): the consent flow, the Graph helper's
error messages and docs/CONNECTING.md all read it from here.
"""

from __future__ import annotations

GRAPH_RESOURCE = "https://graph.microsoft.com"
# Admin consent and client-credentials tokens ask for every application permission configured
# on the app registration (Microsoft identity platform, "The /.default scope").
GRAPH_DEFAULT_SCOPE = f"{GRAPH_RESOURCE}/.default"

# Bot identity: application permissions, granted by admin consent.
APPLICATION_PERMISSIONS: dict[str, str] = {
    "Organization.Read.All": "read the organisation's name when the connection is verified",
    "User.Read.All": "find responders by id, UPN or email and read their display names",
    "Team.ReadBasic.All": "list the tenant's teams for the configuration UI",
    "Channel.ReadBasic.All": "list a team's channels for the configuration UI",
    "Channel.Create": "create an incident channel from a card (standard or private)",
    "ChannelMember.ReadWrite.All": (
        "add responders to an incident channel and read channel members to authorise card actions"
    ),
    "Chat.Create": "create the 1:1 or group chat of a notification",
    "Calendars.ReadWrite": "create the calendar event with a Teams meeting from a card",
    "TeamsAppInstallation.ReadWriteSelfForUser.All": "install the connector for a user, to message them 1:1 as the bot",
    "TeamsAppInstallation.ReadWriteSelfForChat.All": (
        "install the connector in the group chat it creates for a group of recipients, to post there as the bot"
    ),
}

# Identity provider (delegated): scopes the connected user consents to. MSAL adds openid,
# profile and offline_access itself (FACTS: do not pass them).
DELEGATED_SCOPES: dict[str, str] = {
    "User.Read": "read the connected user's profile (shown as who connected the tenant)",
    "User.ReadBasic.All": "find people for the configuration UI and for notifications",
    "Team.ReadBasic.All": "list the user's teams for the configuration UI",
    "Channel.ReadBasic.All": "list a team's channels for the configuration UI",
    "ChannelMessage.Send": "post alert cards and replies in channels as the user",
    "ChannelMessage.ReadWrite": "update those channel cards in place when the alert changes",
    "Chat.Create": "create 1:1 and group chats for notifications",
    "Chat.ReadWrite": "post alert cards in chats as the user and update them in place",
    "Channel.Create": "create an incident channel from a card, as the user",
    "ChannelMember.ReadWrite.All": (
        "add responders to an incident channel and read channel members to authorise card actions"
    ),
    "Calendars.ReadWrite": "create the calendar event with a Teams meeting from a card, in the user's calendar",
}

# A scope that grants another (Microsoft Graph permissions reference: ReadWrite includes Read).
SCOPE_INCLUDES: dict[str, frozenset[str]] = {
    "ChannelMember.ReadWrite.All": frozenset({"ChannelMember.Read.All"}),
}


def delegated_scope_uris() -> list[str]:
    """The delegated scopes as full URIs, the way MSAL requests them."""
    return [f"{GRAPH_RESOURCE}/{name}" for name in DELEGATED_SCOPES]


# operation -> (application permission, delegated permission, what the operation does).
# None: the operation is not available with that kind of token.
OPERATIONS: dict[str, tuple[str | None, str | None, str]] = {
    "organization": ("Organization.Read.All", "User.Read", "read the organisation"),
    "me": (None, "User.Read", "read the signed-in user's profile"),
    "get_user": ("User.Read.All", "User.ReadBasic.All", "read a user"),
    "find_users": ("User.Read.All", "User.ReadBasic.All", "search users"),
    "list_teams": ("Team.ReadBasic.All", "Team.ReadBasic.All", "list teams"),
    "list_channels": ("Channel.ReadBasic.All", "Channel.ReadBasic.All", "list channels"),
    "channel_members": ("ChannelMember.ReadWrite.All", "ChannelMember.Read.All", "list channel members"),
    "create_channel": ("Channel.Create", "Channel.Create", "create a channel"),
    "add_channel_member": ("ChannelMember.ReadWrite.All", "ChannelMember.ReadWrite.All", "add a channel member"),
    "create_chat": ("Chat.Create", "Chat.Create", "create a chat"),
    "create_meeting": ("Calendars.ReadWrite", "Calendars.ReadWrite", "create a meeting"),
    "install_app": ("TeamsAppInstallation.ReadWriteSelfForUser.All", None, "install the app for a user"),
    "install_app_in_chat": ("TeamsAppInstallation.ReadWriteSelfForChat.All", None, "install the app in a chat"),
    "channel_message": (None, "ChannelMessage.Send", "post a channel message"),
    "update_channel_message": (None, "ChannelMessage.ReadWrite", "update a channel message"),
    "chat_message": (None, "Chat.ReadWrite", "post a chat message"),
    "update_chat_message": (None, "Chat.ReadWrite", "update a chat message"),
}


def permission_for(operation: str, delegated: bool) -> str:
    """The permission an operation needs with this kind of token (named in 403 errors)."""
    application, delegated_scope, _ = OPERATIONS[operation]
    needed = delegated_scope if delegated else application
    if needed is None:
        kind = "delegated" if delegated else "application"
        return f"(none: {OPERATIONS[operation][2]} is not possible with {kind} permissions)"
    return needed
