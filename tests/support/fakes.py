"""Honest fakes: they keep state that tests assert on, like the real thing would."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from shared.domain.model import ConversationRecord
from shared.ports import DeliveryError, GraphError, TransientError


@dataclass
class SentMessage:
    activity_id: str
    conversation_id: str
    card: dict | None
    text: str | None = None
    reply_to: str | None = None
    versions: list[dict] = field(default_factory=list)
    mentions: list[dict] = field(default_factory=list)


# The time every unit test starts at.
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A test clock: it moves only when a test (or a short wait in the app) moves ``now``."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class RecordingMessenger:
    """A TeamsMessenger that records what each conversation would show.

    ``fail_next`` queues errors (DeliveryError) to raise on the next sends.
    """

    def __init__(self) -> None:
        self.messages: dict[str, SentMessage] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_next: list[DeliveryError] = []
        self._ids = itertools.count(1)

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    async def post(self, conversation: ConversationRecord, card: dict, summary: str) -> str:
        self.calls.append(("post", conversation.conversation_id))
        self._maybe_fail()
        activity_id = f"act-{next(self._ids)}"
        self.messages[activity_id] = SentMessage(activity_id, conversation.conversation_id, card, versions=[card])
        return activity_id

    async def update(self, conversation: ConversationRecord, activity_id: str, card: dict, summary: str) -> None:
        self.calls.append(("update", conversation.conversation_id))
        self._maybe_fail()
        message = self.messages[activity_id]
        message.card = card
        message.versions.append(card)

    async def reply(self, conversation: ConversationRecord, activity_id: str, text: str, mentions=()) -> str:
        self.calls.append(("reply", conversation.conversation_id))
        self._maybe_fail()
        reply_id = f"act-{next(self._ids)}"
        self.messages[reply_id] = SentMessage(
            reply_id, conversation.conversation_id, None, text=text, reply_to=activity_id, mentions=list(mentions)
        )
        return reply_id

    def cards_in(self, conversation_id: str) -> list[SentMessage]:
        return [m for m in self.messages.values() if m.conversation_id == conversation_id and m.card is not None]

    def replies_to(self, activity_id: str) -> list[SentMessage]:
        return [m for m in self.messages.values() if m.reply_to == activity_id]


def conversation(
    tenant_id: str = "aaaaaaaa-0000-4000-8000-00000000000a",
    conversation_id: str = "19:general@thread.tacv2",
    kind: str = "channel",
) -> ConversationRecord:
    return ConversationRecord(
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        conversation_type=kind,
        service_url="https://smba.example.invalid/teams/",
        reference={
            "conversation": {"id": conversation_id, "conversationType": kind, "tenantId": tenant_id},
            "channelId": "msteams",
        },
        name="General",
    )


class FakeDirectory:
    """A Directory (Microsoft Graph) that keeps teams, channels, members and meetings.

    ``fail`` maps an operation name to a GraphError to raise on every call."""

    def __init__(self, users: list[dict] | None = None) -> None:
        self.users = {u["id"]: u for u in (users or [])}
        self.channels: dict[str, list[dict]] = {}  # team id → channels
        self.members: dict[tuple[str, str], set[str]] = {}  # (team, channel) → user ids
        self.meetings: list[dict] = []
        self.owners: dict[tuple[str, str], set[str]] = {}  # (team, channel) → owner ids
        self.installed_for: dict[str, str] = {}  # user id → the app's 1:1 chat id
        self.chats: dict[str, tuple[str, ...]] = {}  # chat id → member ids
        self.chat_installs: set[str] = set()
        self.graph_calls: list[str] = []
        self.fail: dict[str, Exception] = {}
        self.signed_in: dict | None = None  # the user a delegated connection acts as (me)
        self._ids = itertools.count(1)

    def _maybe_fail(self, operation: str) -> None:
        if operation in self.fail:
            raise self.fail[operation]

    async def me(self, tenant_id: str) -> dict:
        self.graph_calls.append("me")
        self._maybe_fail("me")
        if self.signed_in is None:
            raise GraphError("no signed-in user: me needs a delegated token", status=400, code="BadRequest")
        return self.signed_in

    async def get_user(self, tenant_id: str, id_or_upn: str) -> dict | None:
        self.graph_calls.append("get_user")
        self._maybe_fail("get_user")
        return next(
            (
                u
                for u in self.users.values()
                if id_or_upn.lower() in (u["id"].lower(), u.get("userPrincipalName", "").lower())
            ),
            None,
        )

    async def find_user_by_email(self, tenant_id: str, email: str) -> dict | None:
        return next((u for u in self.users.values() if (u.get("mail") or "").lower() == email.lower()), None)

    async def search_users(self, tenant_id: str, text: str, limit: int = 25) -> list[dict]:
        self.graph_calls.append("search_users")
        self._maybe_fail("search_users")
        needle = text.lower()
        return [
            u
            for u in self.users.values()
            if any(needle in str(u.get(f) or "").lower() for f in ("displayName", "mail", "userPrincipalName"))
        ][:limit]

    async def list_teams(self, tenant_id: str) -> list[dict]:
        return [{"id": team} for team in self.channels]

    async def list_channels(self, tenant_id: str, team_id: str) -> list[dict]:
        return list(self.channels.get(team_id, []))

    async def channel_member_ids(self, tenant_id: str, team_id: str, channel_id: str) -> set[str]:
        self._maybe_fail("channel_member_ids")
        return set(self.members.get((team_id, channel_id), set()))

    async def create_channel(
        self,
        tenant_id: str,
        team_id: str,
        name: str,
        description: str,
        *,
        private: bool = False,
        owner_ids: tuple[str, ...] = (),
    ) -> dict:
        self._maybe_fail("create_channel")
        existing = self.channels.setdefault(team_id, [])
        if any(c["displayName"].lower() == name.lower() for c in existing):
            raise GraphError(f"Channel name already existed: {name}", status=409, code="NameAlreadyExists")
        channel = {
            "id": f"19:alertchannel{next(self._ids)}@thread.tacv2",
            "displayName": name,
            "webUrl": f"https://teams.example/channel/{len(existing) + 1}",
        }
        existing.append(channel)
        return channel

    async def add_channel_member(
        self, tenant_id: str, team_id: str, channel_id: str, user_id: str, *, owner: bool = False
    ) -> None:
        self.members.setdefault((team_id, channel_id), set()).add(user_id)

    async def create_chat(self, tenant_id: str, member_ids: tuple[str, ...], topic: str | None = None) -> dict:
        self.graph_calls.append("create_chat")
        self._maybe_fail("create_chat")
        chat_id = f"19:chat{next(self._ids)}@thread.v2"
        self.chats[chat_id] = member_ids
        return {"id": chat_id}

    async def channel_owner_ids(self, tenant_id: str, team_id: str, channel_id: str) -> set[str]:
        return set(self.owners.get((team_id, channel_id), set()))

    async def install_app_for_user(self, tenant_id: str, user_id: str, teams_app_id: str) -> str:
        self.graph_calls.append("install_app_for_user")
        self._maybe_fail("install_app_for_user")
        return self.installed_for.setdefault(user_id, f"19:{user_id}_{teams_app_id}@unq.gbl.spaces")

    async def install_app_in_chat(self, tenant_id: str, chat_id: str, teams_app_id: str) -> None:
        self.graph_calls.append("install_app_in_chat")
        self._maybe_fail("install_app_in_chat")
        self.chat_installs.add(chat_id)

    async def create_meeting(
        self,
        tenant_id: str,
        organizer_id: str,
        subject: str,
        attendee_emails: tuple[str, ...],
        start: str,
        end: str,
        body_html: str = "",
    ) -> dict:
        self._maybe_fail("create_meeting")
        meeting = {
            "id": f"event-{next(self._ids)}",
            "joinUrl": f"https://teams.example/meet/{len(self.meetings) + 1}",
            "organizer": organizer_id,
            "subject": subject,
            "attendees": attendee_emails,
        }
        self.meetings.append(meeting)
        return meeting


class RecordingPublisher:
    """An ActionPublisher that keeps what it sent; ``fail_next`` makes the next publishes fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.fail_next = 0

    async def publish(self, message_id: str, event: dict) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("Service Bus is unreachable")
        self.sent.append((message_id, event))

    async def close(self) -> None:
        return None


class RecordingBot(RecordingMessenger):
    """A Bot: the recording messenger, plus inbound activities handed straight to the handler
    (no JWT: the real bot's validation is tested against the Teams simulator)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    async def process(self, body: bytes, auth_header: str | None, handler) -> tuple[int, object]:
        import json

        reply = await handler(json.loads(body), {})
        invoke = getattr(reply, "invoke_response", None)
        return invoke if invoke is not None else (200, None)

    async def check_token(self) -> str:
        return "recording-bot-token"

    async def close(self) -> None:
        self.closed = True


class MemoryJobQueue:
    """The deliveries queue as Service Bus keeps it: a job id seen before is dropped (duplicate
    detection), a scheduled job waits for its time, and :meth:`drain` hands the jobs to the
    consumer one session (conversation) at a time, in order."""

    def __init__(self) -> None:
        self.jobs: list = []
        self.seen: set[str] = set()
        self.sent: list = []  # every job accepted, in order
        self.redelivered = 0  # jobs handed out again after their batch failed

    async def send(self, jobs: list) -> None:
        """Jobs and bundles (a bundle's jobs run as a batch of its session would)."""
        for job in jobs:
            if job.message_id in self.seen:
                continue
            self.seen.add(job.message_id)
            self.jobs.extend(getattr(job, "jobs", None) or [job])
            self.sent.append(job)

    async def close(self) -> None:
        return None

    async def drain(self, ctx, *, advance: bool = True, max_rounds: int = 200):
        """Run every ready job; with ``advance``, move ``ctx.clock`` (a test clock with a
        ``now``) to each scheduled job's time when nothing else is ready."""
        from shared.services.delivery import JobReport, run_jobs

        total = JobReport()
        for _ in range(max_rounds):
            now = ctx.clock()
            ready = [j for j in self.jobs if j.not_before is None or j.not_before <= now]
            if not ready:
                if not self.jobs or not advance:
                    return total
                ctx.clock.now = min(j.not_before for j in self.jobs)
                continue
            self.jobs = [j for j in self.jobs if j not in ready]
            sessions: dict[str, list] = {}
            for job in ready:
                sessions.setdefault(job.session_id, []).append(job)
            for batch in sessions.values():
                try:
                    report = await run_jobs(batch, ctx)
                except TransientError:
                    # Service Bus delivers the batch again (delivery count + 1: no longer new).
                    self.redelivered += len(batch)
                    self.jobs[:0] = [replace(job, new=False) for job in batch]
                    continue
                for name in ("posted", "updated", "folded", "failed", "fallback", "undeliverable"):
                    getattr(total, name).extend(getattr(report, name))
                total.rescheduled += report.rescheduled
                total.sends += report.sends
        raise AssertionError(f"delivery jobs kept coming after {max_rounds} rounds")


def delivering(store, messenger, *, resolver=None, clock=None, jobs: MemoryJobQueue | None = None):
    """The app's Delivering with an in-memory deliveries queue and a test clock that the
    app's short waits advance (no real sleeping)."""
    from shared.services.processing import Delivering

    async def sleep(seconds: float) -> None:
        if clock is not None and hasattr(clock, "now"):
            from datetime import timedelta

            clock.now += timedelta(seconds=seconds)

    kwargs = {"clock": clock} if clock is not None else {}
    return Delivering(store, messenger, jobs or MemoryJobQueue(), resolver, sleep=sleep, **kwargs)


async def process_and_deliver(body, message_id: str, ctx, **kwargs) -> list:
    """process_message, then the delivery jobs it queued (and any they queue), like the two
    triggers would. What the jobs did is added to the last outcome (posted, updated, failed,
    fallback, undeliverable), so a test reads one result."""
    from shared.services.processing import process_message

    outcomes = await process_message(body, message_id, ctx, **kwargs)
    report = await ctx.jobs.drain(ctx)
    if outcomes:
        last = outcomes[-1]
        for name in ("posted", "updated", "failed", "fallback", "undeliverable"):
            getattr(last, name).extend(getattr(report, name))
    return outcomes


async def remind(store, messenger, clock, reminder_after_minutes: int = 30):
    """The timer's reminder pass, then the reminder jobs it queued (and their retries) through
    the deliveries consumer, as the two functions would run them. Returns both reports."""
    from shared.services.periodic import run_periodic

    ctx = delivering(store, messenger, clock=clock)
    report = await run_periodic(store=store, jobs=ctx.jobs, reminder_after_minutes=reminder_after_minutes, clock=clock)
    return report, await ctx.jobs.drain(ctx)
