"""The alert-events trigger takes a batch of messages (the Service Bus extension runs a batch
trigger one batch at a time per instance): their delivery jobs go out at the end, one bundle per
conversation, so a storm into one channel is a few deliveries messages, each decided at once."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.adapters.state_store import memory_store
from shared.domain import jobs as job_model
from shared.domain.jobs import CARD, DeliveryJob, JobBundle, bundle, jobs_from_message
from shared.ports import TransientError
from shared.services.processing import QueuedEvent, process_batch
from tests.support.fakes import Clock, RecordingMessenger, conversation, delivering

TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
CHANNEL = "19:ops@thread.tacv2"


def event(n: int, *, version: int = 1, kind: str = "alert.created") -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"evt-{n}-v{version}",
            "source": "https://am.example.com",
            "type": kind,
            "subject": f"ALRT-{n}",
            "tenantid": TENANT,
            "data": {
                "id": f"ALRT-{n}",
                "kind": "alert",
                "title": f"Disk full on node {n}",
                "severity": "high",
                "status": "open",
                "source": "prometheus",
                "version": version,
            },
        }
    )


@pytest.fixture
async def ops():
    store, clock, messenger = memory_store(), Clock(), RecordingMessenger()
    await store.save_conversation(conversation(TENANT, CHANNEL))
    return store, clock, messenger


class TestBundles:
    def test_each_conversations_jobs_are_one_bundle_a_lone_job_itself_a_scheduled_one_apart(self):
        ops, dev = conversation(TENANT, CHANNEL), conversation(TENANT, "19:dev@thread.tacv2")
        jobs = [DeliveryJob(ops, CARD, request=f"e{n}", extra={"alertKey": f"k{n}"}) for n in range(3)]
        lone = DeliveryJob(dev, CARD, request="e9", extra={"alertKey": "k9"})
        later = DeliveryJob(ops, CARD, request="e8", extra={"alertKey": "k8"}).again(Clock().now)
        sent = bundle([*jobs, lone, later])
        assert later in sent and lone in sent
        [group] = [s for s in sent if isinstance(s, JobBundle)]
        assert group.jobs == tuple(jobs) and group.session_id == jobs[0].session_id
        assert jobs_from_message(group.body(), 1) == jobs  # read back whole, in order

    def test_put_off_jobs_due_within_one_second_go_together_at_its_end(self):
        ops = conversation(TENANT, CHANNEL)
        start = Clock().now
        jobs = [
            DeliveryJob(ops, CARD, request=f"e{n}", extra={"alertKey": f"k{n}"}).again(start + timedelta(seconds=at))
            for n, at in enumerate((10.2, 10.7, 11.5))
        ]
        sent = bundle(jobs)
        [together] = [s for s in sent if isinstance(s, JobBundle)]
        assert together.jobs == tuple(jobs[:2]) and together.not_before == start + timedelta(seconds=11)
        assert jobs[2] in sent and len(sent) == 2

    def test_a_bundle_stays_under_the_message_size_limit(self, monkeypatch):
        monkeypatch.setattr(job_model, "MAX_BUNDLE_BYTES", 2000)
        ops = conversation(TENANT, CHANNEL)
        jobs = [DeliveryJob(ops, CARD, request=f"e{n}", extra={"alertKey": f"k{n}"}) for n in range(20)]
        sent = bundle(jobs)
        assert len(sent) > 1 and all(len(s.body().encode()) <= 2000 for s in sent)
        assert [j for s in sent for j in (s.jobs if isinstance(s, JobBundle) else [s])] == jobs

    def test_a_redelivered_bundles_jobs_look_up_what_was_done(self):
        ops = conversation(TENANT, CHANNEL)
        group = JobBundle(tuple(DeliveryJob(ops, CARD, new=True, request=f"e{n}") for n in range(2)))
        assert all(j.new for j in jobs_from_message(group.body(), 1))
        assert not any(j.new for j in jobs_from_message(group.body(), 2))


class TestABatchOfEvents:
    async def test_a_storm_batch_sends_one_message_for_the_channel(self, ops):
        store, clock, messenger = ops
        ctx = delivering(store, messenger, clock=clock)
        await process_batch([QueuedEvent(event(n), f"m{n}") for n in range(40)], ctx)
        assert len(ctx.jobs.sent) == 1 and len(ctx.jobs.sent[0].jobs) == 40
        report = await ctx.jobs.drain(ctx)
        assert len(report.posted) + len(report.folded) == 40

    async def test_what_was_processed_is_sent_though_another_message_failed_then_the_batch_fails(self, ops):
        store, clock, messenger = ops
        ctx = delivering(store, messenger, clock=clock)
        real = store.save_alert
        calls = {"n": 0}

        async def flaky(state, **kwargs):
            if state.alert_id == "ALRT-3":
                raise TransientError("Table Storage is unreachable")
            calls["n"] += 1
            return await real(state, **kwargs)

        store.save_alert = flaky
        with pytest.raises(TransientError, match="message m3"):
            await process_batch([QueuedEvent(event(n), f"m{n}") for n in range(5)], ctx)
        assert sum(len(getattr(s, "jobs", [s])) for s in ctx.jobs.sent) == 4

    async def test_a_redelivered_batch_counts_and_posts_each_alert_once(self, ops):
        """Its first attempt sent the jobs of what it processed, then failed; the redelivery
        is made of other messages too, so its bundles are new messages: their jobs, from
        redelivered events, look up what the first attempt's did instead of taking the cards
        as new."""
        store, clock, messenger = ops
        ctx = delivering(store, messenger, clock=clock)
        real = store.save_alert
        failing = {"on": True}

        async def flaky(state, **kwargs):
            if failing["on"] and state.alert_id == "ALRT-79":
                raise TransientError("Table Storage is unreachable")
            return await real(state, **kwargs)

        store.save_alert = flaky
        first = [QueuedEvent(event(n), f"m{n}") for n in range(80)]
        with pytest.raises(TransientError):
            await process_batch(first, ctx)
        report = await ctx.jobs.drain(ctx, advance=False)  # its bundle runs: cards, and a storm's folds
        assert report.posted and report.folded
        failing["on"] = False
        again = [QueuedEvent(event(n), f"m{n}", delivery_count=2) for n in range(80)]
        again += [QueuedEvent(event(n), f"m{n}") for n in range(80, 85)]  # with others this time
        await process_batch(again, ctx)
        await ctx.jobs.drain(ctx)
        clock.now += timedelta(minutes=5)
        await ctx.jobs.drain(ctx)
        own = [m for m in messenger.messages.values() if m.card and "Alert storm" not in json.dumps(m.card)]
        storms = [m for m in messenger.messages.values() if m.card and "Alert storm" in json.dumps(m.card)]
        counted = 0
        if storms:
            import re

            counted = int(re.search(r"([\d,]+) alerts in this summary", json.dumps(storms[-1].card)).group(1))
        titles = [json.dumps(m.card) for m in own]
        assert len(own) + counted == 85
        assert len(titles) == len(set(titles))  # no alert has two cards


class TestABriefFailure:
    async def test_of_one_event_is_tried_again_in_the_run_not_by_failing_the_batch(self, ops):
        store, clock, messenger = ops
        ctx = delivering(store, messenger, clock=clock)
        real = store.save_alert
        failed: list[str] = []

        async def once(state, **kwargs):
            if state.alert_id == "ALRT-3" and not failed:
                failed.append(state.alert_id)
                raise TransientError("Table Storage is unreachable")
            return await real(state, **kwargs)

        store.save_alert = once
        await process_batch([QueuedEvent(event(n), f"m{n}") for n in range(5)], ctx)
        assert failed == ["ALRT-3"] and sum(len(getattr(s, "jobs", [s])) for s in ctx.jobs.sent) == 5

    async def test_of_a_deliveries_message_is_run_again_in_the_run_its_jobs_no_longer_new(self, ops):
        from shared.services.delivery import run_message

        store, clock, messenger = ops
        ctx = delivering(store, messenger, clock=clock)
        record = conversation(TENANT, CHANNEL)
        real = store.save_delivery_paced  # the card's claim
        failed: list[int] = []

        async def once(*args, **kwargs):
            if not failed:
                failed.append(1)
                raise TransientError("Table Storage is unreachable")
            return await real(*args, **kwargs)

        store.save_delivery_paced = once
        from tests.unit.test_delivery_jobs import alert

        report = await run_message([DeliveryJob(record, CARD, alert(1), new=True, request="e1")], ctx)
        assert failed and report.updated == [] and len(messenger.cards_in(CHANNEL)) == 1
