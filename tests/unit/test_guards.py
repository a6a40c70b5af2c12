"""Guards for behaviours an attack review could delete without any test failing: per-conversation
pacing, the Graph Retry-After bound, the alert-channel filter, no update of a current card,
DEFAULT_TENANT_ID, channel enrolment, uninstalling, the membership cache, re-arming a reminder,
re-sealing a token cache under the newest key, and the activity's summary text."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from shared import cards
from shared.adapters.state_store import memory_store
from shared.domain.events import alert_key
from shared.domain.jobs import CARD, DeliveryJob
from shared.domain.model import AlertState, Delivery
from shared.ports import DeliveryError
from tests.support.fakes import Clock, FakeDirectory, RecordingMessenger, conversation, delivering, process_and_deliver

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
OTHER_TENANT = "bbbbbbbb-0000-4000-8000-00000000000b"
SOURCE = "https://alerts.example.com"
GENERAL = "19:general@thread.tacv2"


class TimedMessenger(RecordingMessenger):
    """Records the test clock's time and the summary text of every post and update; an update
    of a card it has not posted (one recorded in the store beforehand) is accepted."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.times: list[float] = []
        self.summaries: list[tuple[str, str]] = []  # (post | update, summary)

    async def post(self, conversation, card, summary):
        self.times.append(self.clock().timestamp())
        self.summaries.append(("post", summary))
        return await super().post(conversation, card, summary)

    async def update(self, conversation, activity_id, card, summary):
        self.times.append(self.clock().timestamp())
        self.summaries.append(("update", summary))
        self.calls.append(("update", conversation.conversation_id))
        self._maybe_fail()


def event(
    type_: str = "alert.created",
    version: int = 1,
    *,
    alert_id: str = "ALRT-1",
    title: str = "High CPU on web-03",
    tenant: str | None = TENANT,
    severity: str = "high",
    event_id: str | None = None,
) -> str:
    body = {
        "specversion": "1.0",
        "id": event_id or f"evt-{alert_id}-{type_}-{version}",
        "source": SOURCE,
        "type": type_,
        "subject": alert_id,
        "data": {"id": alert_id, "title": title, "severity": severity, "version": version},
    }
    if tenant is not None:
        body["tenantid"] = tenant
    return json.dumps(body)


def most_in_any_window(times: list[float], span: float) -> int:
    """The most sends inside any window of ``span`` seconds."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= span:
            start += 1
        best = max(best, end - start + 1)
    return best


def state(n: int, revision: int = 1, status: str = "open") -> AlertState:
    return AlertState(
        tenant_id=TENANT,
        key=f"k{n:05d}",
        alert_id=f"A-{n}",
        source="prom",
        event_source="https://am",
        title=f"Alert {n}",
        status=status,
        severity="high",
        revision=revision,
        created=T0,
        updated=T0,
    )


# ---------------------------------------------------------------------------- 1. pacing


class TestPerConversationPacing:
    """Teams allows a bot 7 sends per second and 60 per 30 seconds in one conversation."""

    async def test_a_burst_of_new_cards_is_spread_to_at_most_7_a_second(self):
        store, clock = memory_store(), Clock()
        messenger = TimedMessenger(clock)
        ctx = delivering(store, messenger, clock=clock)
        record = conversation(TENANT, GENERAL)
        await ctx.jobs.send([DeliveryJob(record, CARD, state(n), new=True, request=f"e{n}") for n in range(20)])
        report = await ctx.jobs.drain(ctx)
        assert len(report.posted) == 20 and report.folded == []  # every card went, none folded
        assert most_in_any_window(messenger.times, 1.0) <= 7, sorted(messenger.times)
        assert max(messenger.times) - min(messenger.times) >= 2.0  # the burst took time: it was paced

    async def test_updates_of_70_cards_never_exceed_60_in_30_seconds(self):
        store, clock = memory_store(), Clock()
        messenger = TimedMessenger(clock)
        ctx = delivering(store, messenger, clock=clock)
        record = conversation(TENANT, GENERAL)
        for n in range(70):  # 70 cards already shown, at revision 1
            await store.save_delivery(
                Delivery(TENANT, f"k{n:05d}", GENERAL, activity_id=f"act-{n}", rendered_version=1, status="posted")
            )
        await ctx.jobs.send(
            [DeliveryJob(record, CARD, state(n, revision=2, status="acknowledged"), request=f"u{n}") for n in range(70)]
        )
        report = await ctx.jobs.drain(ctx)
        assert len(report.updated) == 70
        assert most_in_any_window(messenger.times, 1.0) <= 7
        assert most_in_any_window(messenger.times, 30.0) <= 60, (
            f"{most_in_any_window(messenger.times, 30.0)} sends in 30 s"
        )
        assert max(messenger.times) - min(messenger.times) >= 30.0  # the 61st waited for the first to leave the window


# ---------------------------------------------------------------------------- 2. Retry-After bound


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def graph_directory(sleep: RecordingSleep):
    from shared.adapters.graph import GraphConfig, GraphDirectory

    config = GraphConfig(
        base_url="https://graph.example.invalid/v1.0",
        authority_host="https://login.example.invalid",
        app_id="app",
        client_secret="s",
    )
    directory = GraphDirectory(config, sleep=sleep)
    directory.client = lambda tenant_id, mode: object()  # no SDK client: the call below stands in for it
    return directory


def throttled(retry_after: str, then: object = "ok"):
    """A Graph call that answers 429 with ``Retry-After`` once, then ``then``."""
    from kiota_abstractions.api_error import APIError

    calls: list[int] = []

    async def make(client):
        calls.append(1)
        if len(calls) == 1:
            raise APIError("Too many requests", 429, {"Retry-After": retry_after})
        return then

    return make, calls


class TestGraphRetryAfterBound:
    """A Retry-After longer than GRAPH.max_wait_seconds (30 s) is not waited out inside the
    function run: the call fails (transient, with the Retry-After) so the queue retries later."""

    async def test_a_retry_after_within_the_bound_is_waited_and_the_call_retried(self):
        sleep = RecordingSleep()
        make, calls = throttled("30")
        assert await graph_directory(sleep)._call(TENANT, "list_teams", "the teams", make, mode="app") == "ok"
        assert sleep.waits == [30.0] and len(calls) == 2

    @pytest.mark.parametrize("retry_after", ["31", "3600"])
    async def test_a_retry_after_beyond_the_bound_is_not_waited_out(self, retry_after):
        from shared.ports import GraphError

        sleep = RecordingSleep()
        make, calls = throttled(retry_after)
        with pytest.raises(GraphError) as caught:
            await graph_directory(sleep)._call(TENANT, "list_teams", "the teams", make, mode="app")
        assert sleep.waits == [], f"waited {sleep.waits} s inside one function run"
        assert len(calls) == 1
        assert caught.value.status == 429 and caught.value.retry_after == float(retry_after)


# ---------------------------------------------------------------------------- 3. alert channels


class TestAlertChannelFilter:
    async def test_an_alert_channel_gets_only_its_own_alert_in_a_broadcast(self):
        store, clock = memory_store(), Clock()
        messenger = RecordingMessenger()
        ctx = delivering(store, messenger, clock=clock)
        await store.save_conversation(conversation(TENANT, GENERAL))
        other_key = alert_key(SOURCE, "ALRT-OTHER")
        own_key = alert_key(SOURCE, "ALRT-1")
        await store.save_conversation(replace(conversation(TENANT, "19:alrt-other@thread.tacv2"), alert_key=other_key))
        await store.save_conversation(replace(conversation(TENANT, "19:alrt-1@thread.tacv2"), alert_key=own_key))
        [outcome] = await process_and_deliver(event(alert_id="ALRT-1"), "m-1", ctx)  # no workflows: broadcast
        assert sorted(outcome.queued) == sorted([GENERAL, "19:alrt-1@thread.tacv2"])
        assert len(messenger.cards_in(GENERAL)) == 1
        assert len(messenger.cards_in("19:alrt-1@thread.tacv2")) == 1  # the alert's own channel
        assert messenger.cards_in("19:alrt-other@thread.tacv2") == []  # another alert's channel: nothing


# ---------------------------------------------------------------------------- 4. no needless update


class TestNoUpdateOfACurrentCard:
    @pytest.fixture
    async def shown(self):
        store, clock = memory_store(), Clock()
        messenger = RecordingMessenger()
        ctx = delivering(store, messenger, clock=clock)
        record = conversation(TENANT, GENERAL)
        await store.save_conversation(record)
        await process_and_deliver(event(), "m-1", ctx)
        [current] = await store.list_open_alerts(TENANT)
        delivery = await store.get_delivery(TENANT, current.key, GENERAL)
        assert delivery.rendered_version == current.revision == 1 and [c for c, _ in messenger.calls] == ["post"]
        return ctx, messenger, record, current

    @pytest.mark.parametrize("revision", [1, 0])
    async def test_a_job_for_the_revision_shown_or_an_older_one_sends_nothing(self, shown, revision):
        ctx, messenger, record, current = shown
        ctx.clock.now += timedelta(minutes=5)
        await ctx.jobs.send(
            [DeliveryJob(record, CARD, replace(current, revision=revision), request=f"again-{revision}")]
        )
        report = await ctx.jobs.drain(ctx)
        assert [c for c, _ in messenger.calls] == ["post"], messenger.calls
        assert report.updated == [] and report.sends == 0

    async def test_a_newer_revision_is_sent_as_an_update(self, shown):
        ctx, messenger, record, current = shown
        await ctx.jobs.send(
            [DeliveryJob(record, CARD, replace(current, revision=2, status="acknowledged"), request="r2")]
        )
        report = await ctx.jobs.drain(ctx)
        assert [c for c, _ in messenger.calls] == ["post", "update"] and report.updated == [GENERAL]


# ---------------------------------------------------------------------------- 5. DEFAULT_TENANT_ID


class TestDefaultTenant:
    @pytest.fixture
    async def two_tenants(self):
        store, messenger = memory_store(), RecordingMessenger()
        ctx = delivering(store, messenger, clock=Clock())
        await store.save_conversation(conversation(TENANT, "19:a@thread.tacv2"))
        await store.save_conversation(conversation(OTHER_TENANT, "19:b@thread.tacv2"))
        return store, messenger, ctx

    async def test_an_event_without_tenantid_goes_to_the_default_tenant(self, two_tenants):
        store, messenger, ctx = two_tenants
        [outcome] = await process_and_deliver(event(tenant=None), "m-1", ctx, default_tenant_id=OTHER_TENANT)
        assert outcome.result == "processed", outcome.detail
        assert len(messenger.cards_in("19:b@thread.tacv2")) == 1
        assert messenger.cards_in("19:a@thread.tacv2") == []
        assert await store.list_open_alerts(TENANT) == [] and len(await store.list_open_alerts(OTHER_TENANT)) == 1

    async def test_without_a_default_such_an_event_is_rejected_naming_tenantid(self, two_tenants):
        _store, messenger, ctx = two_tenants
        [outcome] = await process_and_deliver(event(tenant=None), "m-1", ctx)
        assert outcome.result == "rejected" and "DEFAULT_TENANT_ID" in outcome.detail
        assert messenger.messages == {}


# ---------------------------------------------------------------------------- 6 and 7. enrolment


BOT_APP_ID = "00000000-0000-4000-8000-0000000b0700"


@pytest.fixture
def teams():
    from tools.teams_simulator.activities import ActivityBuilder

    return ActivityBuilder(service_url="https://smba.example.invalid/teams/", tenant_id=TENANT, bot_app_id=BOT_APP_ID)


async def stored(store) -> list[str]:
    return sorted(c.conversation_id for c in await store.list_conversations(TENANT))


class TestChannelEnrolment:
    async def test_a_message_in_a_channel_the_bot_was_not_installed_for_does_not_enrol_it(self, teams):
        from shared.services.bot import handle_activity

        store = memory_store()
        message = teams.message(
            "help", "channel", mention_bot=True, channel={"id": "19:random@thread.tacv2", "name": "Random"}
        )
        reply = await handle_activity(message, {}, store=store)
        assert reply.cards  # it is answered
        assert await stored(store) == []  # but not subscribed to every alert

    async def test_an_unknown_channel_gets_no_alert_after_talking_to_the_bot(self, teams):
        from shared.services.bot import handle_activity

        store, messenger = memory_store(), RecordingMessenger()
        await store.save_conversation(conversation(TENANT, GENERAL))
        message = teams.message(
            "help", "channel", mention_bot=True, channel={"id": "19:random@thread.tacv2", "name": "Random"}
        )
        await handle_activity(message, {}, store=store)
        await process_and_deliver(event(), "m-1", delivering(store, messenger, clock=Clock()))
        assert len(messenger.cards_in(GENERAL)) == 1
        assert messenger.cards_in("19:random@thread.tacv2") == []

    @pytest.mark.parametrize("how", ["installationUpdate", "conversationUpdate"])
    async def test_installing_the_bot_in_the_team_enrols_the_channel(self, teams, how):
        from shared.services.bot import handle_activity

        store = memory_store()
        activity = (
            teams.installation_update("channel")
            if how == "installationUpdate"
            else teams.conversation_update("channel")
        )
        await handle_activity(activity, {}, store=store)
        assert await stored(store) == [activity["conversation"]["id"]]

    async def test_a_message_in_a_known_channel_keeps_it(self, teams):
        from shared.services.bot import handle_activity

        store = memory_store()
        install = teams.installation_update("channel")
        await handle_activity(install, {}, store=store)
        team_channel = install["conversation"]["id"]
        await handle_activity(
            teams.message("help", "channel", mention_bot=True, conversation_id=f"{team_channel};messageid=1"),
            {},
            store=store,
        )
        assert await stored(store) == [team_channel]


class TestUninstall:
    @pytest.mark.parametrize("kind", ["channel", "personal"])
    async def test_an_uninstall_forgets_the_conversation_and_it_gets_no_more_alerts(self, teams, kind):
        from shared.services.bot import handle_activity

        store, messenger = memory_store(), RecordingMessenger()
        install = teams.installation_update(kind)
        await handle_activity(install, {}, store=store)
        assert await stored(store) == [install["conversation"]["id"]]
        await handle_activity(teams.installation_update(kind, action="remove"), {}, store=store)
        assert await stored(store) == []
        await process_and_deliver(event(), "m-1", delivering(store, messenger, clock=Clock()))
        assert messenger.messages == {}

    async def test_the_bot_removed_from_the_channel_forgets_it(self, teams):
        from shared.services.bot import handle_activity

        store = memory_store()
        install = teams.installation_update("channel")
        await handle_activity(install, {}, store=store)
        someone = teams.conversation_update("channel", members_removed=[{"id": "29:someone-else"}])
        await handle_activity(someone, {}, store=store)
        assert await stored(store) == [install["conversation"]["id"]]  # another member left: kept
        bot_left = teams.conversation_update("channel", members_removed=[someone["recipient"]])
        await handle_activity(bot_left, {}, store=store)
        assert await stored(store) == []


# ---------------------------------------------------------------------------- 8. membership cache


class CountingDirectory(FakeDirectory):
    def __init__(self) -> None:
        super().__init__()
        self.member_reads = 0

    async def channel_member_ids(self, tenant_id, team_id, channel_id):
        self.member_reads += 1
        return await super().channel_member_ids(tenant_id, team_id, channel_id)


class TestMembershipCache:
    @pytest.fixture
    def monotonic(self, monkeypatch):
        from shared.services import actions

        now = [1000.0]
        # Only the actions module's clock: the event loop keeps the real time.monotonic.
        monkeypatch.setattr(actions, "time", SimpleNamespace(monotonic=lambda: now[0]))
        actions.reset_membership_cache()
        yield now
        actions.reset_membership_cache()

    async def test_membership_is_read_from_graph_once_per_window(self, monotonic):
        from shared.services import actions

        directory = CountingDirectory()
        directory.members[("group-1", GENERAL)] = {"aad-alice"}
        assert await actions._channel_members(directory, TENANT, "group-1", GENERAL) == {"aad-alice"}
        directory.members[("group-1", GENERAL)] = {"aad-alice", "aad-bob"}
        monotonic[0] += actions.MEMBERSHIP_CACHE_SECONDS - 1
        assert await actions._channel_members(directory, TENANT, "group-1", GENERAL) == {"aad-alice"}  # from the cache
        assert directory.member_reads == 1
        monotonic[0] += 2  # the window has passed
        assert await actions._channel_members(directory, TENANT, "group-1", GENERAL) == {"aad-alice", "aad-bob"}
        assert directory.member_reads == 2

    async def test_an_authorised_action_checks_membership_through_the_cache(self, monotonic):
        from shared.services import actions
        from shared.services.actions import ActionContext, Actor, Where

        store = memory_store()
        directory = CountingDirectory()
        directory.members[("group-1", GENERAL)] = {"aad-alice"}
        record = replace(conversation(TENANT, GENERAL), team_group_id="group-1", channel_id=GENERAL)
        await store.save_conversation(record)
        messenger = RecordingMessenger()
        await process_and_deliver(event(), "m-1", delivering(store, messenger, clock=Clock()))
        [alert] = await store.list_open_alerts(TENANT)
        ctx = ActionContext(store=store, messenger=messenger, publisher=None, directory=directory)
        where = Where(conversation=record, team_group_id="group-1", channel_id=GENERAL)
        for _ in range(3):
            await actions.authorize(ctx, alert, Actor(TENANT, "aad-alice", "Alice"), where)
        assert directory.member_reads == 1


# ---------------------------------------------------------------------------- 9. reminders


class TestReminderRearm:
    @pytest.fixture
    async def open_card(self):
        store, clock = memory_store(), Clock()
        messenger = RecordingMessenger()
        await store.save_conversation(conversation(TENANT, GENERAL))
        await process_and_deliver(event(), "m-1", delivering(store, messenger, clock=clock))
        [alert] = await store.list_open_alerts(TENANT)
        return store, messenger, clock, alert

    async def test_after_a_transient_failure_the_queue_tries_the_reminder_again(self, open_card):
        from tests.support.fakes import remind

        store, messenger, clock, _alert = open_card
        clock.now = T0 + timedelta(minutes=31)
        messenger.fail_next = [DeliveryError("Teams answered 503", status=503)]
        first, sent = await remind(store, messenger, clock)
        assert first.reminders_queued == 1 and sent.rescheduled == 1  # backed off, then sent
        [card] = messenger.cards_in(GENERAL)
        [reminder] = messenger.replies_to(card.activity_id)
        assert "Reminder" in reminder.text
        clock.now = T0 + timedelta(minutes=36)  # the next run, well within the 30-minute interval
        second, _ = await remind(store, messenger, clock)
        assert second.reminders_queued == 0 and len(messenger.replies_to(card.activity_id)) == 1

    async def test_after_a_permanent_refusal_it_is_not_tried_again_in_the_interval(self, open_card):
        from tests.support.fakes import remind

        store, messenger, clock, alert = open_card
        clock.now = T0 + timedelta(minutes=31)
        messenger.fail_next = [DeliveryError("Teams answered 403", status=403, permanent=True)]
        await remind(store, messenger, clock)
        assert (await store.get_delivery(TENANT, alert.key, GENERAL)).last_reminder == T0 + timedelta(minutes=31)
        clock.now = T0 + timedelta(minutes=36)
        second, sent = await remind(store, messenger, clock)
        assert second.reminders_queued == 0 and sent.sends == 0


# ---------------------------------------------------------------------------- 10. key rotation


class FakeIdentity:
    """MsalIdentity.refresh: the access token is still valid, so no new cache."""

    def __init__(self, new_cache: str | None = None) -> None:
        self.new_cache = new_cache
        self.caches: list[str] = []

    async def refresh(self, tenant_id: str, cache_text: str, account_id: str) -> tuple[str, int, str | None]:
        self.caches.append(cache_text)
        return "access-token", 1_900_000_000, self.new_cache


class TestTokenCacheRotation:
    async def _connected(self, sealing):
        from shared.domain.connections import TenantConnection
        from shared.security import cache_associated_data

        store = memory_store()
        sealed = sealing.encrypt("the-msal-cache", cache_associated_data(TENANT))
        await store.save_connection(
            TenantConnection(TENANT, "delegated", "connected", token_cache=sealed, account_id="acct")
        )
        return store, sealed

    async def _tokens(self, store, cipher, identity):
        from shared.adapters.identity import DelegatedTokens

        async def on_reconsent(tenant_id: str, reason: str) -> None:
            raise AssertionError(f"no reconsent expected: {reason}")

        return DelegatedTokens(identity, store, cipher, on_reconsent)

    async def test_a_cache_sealed_with_an_older_key_is_resealed_with_the_newest_without_a_refresh(self):
        from shared.security import DecryptionError, TokenCipher, cache_associated_data, new_key, parse_keys

        old, newest = new_key(), new_key()
        store, sealed = await self._connected(TokenCipher.from_setting(old))
        rotated = TokenCipher(parse_keys(f"{newest},{old}"))
        identity = FakeIdentity(new_cache=None)
        tokens = await self._tokens(store, rotated, identity)
        assert await tokens(TENANT) == ("access-token", 1_900_000_000)
        assert identity.caches == ["the-msal-cache"]
        stored_cache = (await store.get_connection(TENANT)).token_cache
        assert stored_cache != sealed and not rotated.needs_rotation(stored_cache), "still sealed with the old key"
        assert rotated.decrypt(stored_cache, cache_associated_data(TENANT)) == "the-msal-cache"
        with pytest.raises(DecryptionError):  # the old key can be dropped now
            TokenCipher.from_setting(old).decrypt(stored_cache, cache_associated_data(TENANT))

    async def test_a_cache_sealed_with_the_newest_key_is_not_rewritten_needlessly(self):
        from shared.security import TokenCipher, new_key

        cipher = TokenCipher.from_setting(new_key())
        store, sealed = await self._connected(cipher)
        tokens = await self._tokens(store, cipher, FakeIdentity(new_cache=None))
        await tokens(TENANT)
        assert (await store.get_connection(TENANT)).token_cache == sealed


# ---------------------------------------------------------------------------- 11. summary text


class TestSummaryText:
    def test_the_summary_names_severity_title_and_status(self):
        assert cards.summary_text(state(1)) == "[HIGH] Alert 1 (Open)"
        assert (
            cards.summary_text(replace(state(1), severity="critical", status="acknowledged"))
            == "[CRITICAL] Alert 1 (Acknowledged)"
        )

    def test_the_title_is_cut_at_120_characters(self):
        long = replace(state(1), title="x" * 119 + "yz" + "w" * 300, status="resolved")
        assert cards.summary_text(long) == f"[HIGH] {'x' * 119}y (Resolved)"

    async def test_the_summary_goes_with_the_card_on_post_and_on_update(self):
        store, clock = memory_store(), Clock()
        messenger = TimedMessenger(clock)
        ctx = delivering(store, messenger, clock=clock)
        await store.save_conversation(conversation(TENANT, GENERAL))
        title = "Disk full on db-01 " + "q" * 200
        await process_and_deliver(event(title=title, severity="critical"), "m-1", ctx)
        await process_and_deliver(event("alert.resolved", 2, title=title, severity="critical"), "m-2", ctx)
        cut = title[:120]
        assert messenger.summaries == [("post", f"[CRITICAL] {cut} (Open)"), ("update", f"[CRITICAL] {cut} (Resolved)")]

    def test_the_bot_connector_sends_it_as_the_activity_summary(self):
        from shared.adapters.teams_bot import BotConnector

        activity = BotConnector._card({"type": "AdaptiveCard"}, "[HIGH] Alert 1 (Open)")
        assert activity["summary"] == "[HIGH] Alert 1 (Open)"
