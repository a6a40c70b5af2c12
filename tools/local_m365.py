"""Microsoft 365 for `make run`: the Teams simulator's identity and Graph endpoints seeded with
the Agents Playground's tenant, users, team and channels, and the tenant connected to the local
connector through the real admin-consent round trip (the connector's /api/connect, the
simulator's consent page, the connector's callback).

With it, the card buttons that need Microsoft Graph (Create channel, Create meeting) and the
membership checks work under `make run` as they do against Microsoft 365, on loopback.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tools.teams_simulator.directory import Chat

# The local Graph app registration (loopback only; nothing to protect).
LOCAL_GRAPH_APP_ID = "0c7a9d55-0000-4000-8000-0000000000ca"
# The Playground's channels kept for channels the connector creates (tools/playground.yml).
SPARE_CHANNEL_PREFIX = "spare-channel-"
# The connector's app in the local Microsoft 365's Teams app catalog (TEAMS_APP_CATALOG_ID).
LOCAL_TEAMS_APP_CATALOG_ID = "0c7a9d55-0000-4000-8000-0000000000cb"


def playground_config(playground_url: str, timeout: float = 60.0) -> dict[str, Any]:
    """The Playground's tenant, users, chats and team (GET /_internal/v1/config); it answers a
    few seconds after it starts listening."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{playground_url}/_internal/v1/config", timeout=5) as answer:
                document = json.loads(answer.read())
            return document.get("config", document)
        except (OSError, ValueError) as exc:
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"Agents Playground did not give its configuration within {timeout:.0f} s: {exc}"
                ) from None
            time.sleep(0.5)


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example_responders() -> list[str]:
    """Every responder (e-mail or UPN) the examples name, in ``data.responders``."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "responders" and isinstance(value, list):
                    found.update(v for v in value if isinstance(v, str) and "@" in v)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in sorted(EXAMPLES.glob("*.json")):
        try:
            walk(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            continue
    return sorted(found)


def seed(directory: Any, config: dict[str, Any], playground_url: str | None = None) -> Any:
    """The Playground's organisation in the simulator's directory: the same user object ids, the
    team as a Microsoft 365 group (its aadGroupId) with the same channel ids, everyone a member.
    The Playground's user signs in for the consent; they are the tenant's Global Administrator
    (the console lets them in), the Playground's other users are not (it shows them why not)."""
    tenant = directory.add_tenant(config["tenantId"], "Agents Playground (local)")
    people = [config["currentUser"], *config.get("users", [])]
    from shared.console.signin import GLOBAL_ADMINISTRATOR

    for person in people:
        upn = (
            person.get("userPrincipleName")
            or person.get("userPrincipalName")
            or person.get("email")
            or f"{person['id']}@example.com"
        )
        roles = (GLOBAL_ADMINISTRATOR,) if person is config["currentUser"] else ()
        tenant.add_user(
            person["name"], upn, mail=person.get("email") or upn, user_id=person["aadObjectId"], roles=roles
        )
    # The examples' responders, so Create channel can add them (they are not Playground users).
    for upn in example_responders():
        if tenant.find_user(upn) is None:
            tenant.add_user(upn.split("@")[0].replace(".", " ").title(), upn)
    members = tuple(person["aadObjectId"] for person in people)
    for team in config.get("teams", []):
        group = tenant.add_team(team["name"], team_id=team.get("aadGroupId") or team["id"], members=members)
        group.channels.clear()  # the Playground's own channel ids, not made-up ones
        for channel in team.get("channels", []):
            if channel["id"].startswith(SPARE_CHANNEL_PREFIX):  # not a channel yet: one Create channel makes
                group.spare_channel_ids.append(channel["id"])
                continue
            tenant.add_channel(group, channel["name"], channel_id=channel["id"], members=members)
    # The Playground's chats, where the connector reaches people and groups: its user's personal
    # chat with the bot is the app's installation for them (installing it again answers 409 and
    # that chat, as Graph does), and its group chat is what a group of its members becomes (the
    # Playground shows no chat it did not make: tools/teams_simulator/graph.py, create_chat).
    by_playground_id = {person["id"]: person["aadObjectId"] for person in people}
    me = config["currentUser"]["aadObjectId"]
    personal = (config.get("personalChat") or {}).get("id")
    if personal:
        tenant.chats[personal] = Chat(personal, "oneOnOne", None, [me], installed_apps={LOCAL_TEAMS_APP_CATALOG_ID})
        tenant.installations.setdefault(me, {})["playground-personal"] = {
            "id": "playground-personal",
            "teamsAppId": LOCAL_TEAMS_APP_CATALOG_ID,
            "chatId": personal,
        }
    for chat in config.get("groupChats") or []:
        in_chat = [by_playground_id[m] for m in chat.get("members") or [] if m in by_playground_id]
        tenant.chats[chat["id"]] = Chat(chat["id"], "group", chat.get("name"), in_chat, shown_by_client=True)
    if playground_url:
        tenant.personal_chat_maker = _playground_personal_chat(playground_url, config)
    directory.sign_in(config["tenantId"], me)
    return tenant


def _playground_personal_chat(playground_url: str, config: dict[str, Any]) -> Any:
    """Make a person's 1:1 chat with the bot in the Playground (its Bot Connector's create
    conversation, which keeps one personal chat per user) and return its id: the chat the app's
    installation for that person is, as Teams makes it on installation."""
    playground_id = {
        person["aadObjectId"]: person["id"] for person in [config["currentUser"], *config.get("users", [])]
    }

    async def make(user_id: str) -> str:
        import aiohttp

        body = {
            "isGroup": False,
            "members": [{"id": playground_id.get(user_id, user_id), "aadObjectId": user_id}],
            "tenantId": config["tenantId"],
            "channelData": {"tenant": {"id": config["tenantId"]}},
        }
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{playground_url}/_connector/v3/conversations", json=body) as answer,
        ):
            answer.raise_for_status()
            chat_id: str = (await answer.json())["id"]
            return chat_id

    return make


def connect_tenant(host_url: str, admin_key: str, ca_file: str) -> str:
    """Connect the signed-in tenant by admin consent, as an administrator would in a browser.
    Returns the connector's answer (its page title), or raises RuntimeError saying where it stopped."""
    start = urllib.request.Request(f"{host_url}/api/connect?method=bot", headers={"X-Admin-Key": admin_key})
    location = _redirect(start, None)
    if not location:
        raise RuntimeError("the connector's /api/connect did not redirect to the consent page")
    consent = _redirect(urllib.request.Request(location), ssl.create_default_context(cafile=ca_file))
    if not consent:
        raise RuntimeError("the local consent page did not redirect back to the connector")
    # The callback is on the connector's public base URL (localhost): call it on this host.
    parts = urllib.parse.urlsplit(consent)
    callback = f"{host_url}{parts.path}?{parts.query}"
    try:
        with urllib.request.urlopen(callback, timeout=30) as answer:
            page = answer.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        raise RuntimeError(
            f"the consent callback answered {error.code}: {error.read().decode('utf-8', errors='replace')[:300]}"
        ) from None
    title = page.split("<title>", 1)[-1].split("</title>", 1)[0] if "<title>" in page else page[:120]
    return title.strip()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _redirect(request: urllib.request.Request, context: ssl.SSLContext | None) -> str | None:
    handlers: list[Any] = [_NoRedirect()]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.headers.get("Location")
    except urllib.error.HTTPError as error:
        if error.code in (301, 302, 303, 307, 308):
            return error.headers.get("Location")
        raise RuntimeError(
            f"{request.full_url.split('?')[0]} answered {error.code}: "
            f"{error.read().decode('utf-8', errors='replace')[:300]}"
        ) from None
