"""run_jobs: the deliveries queue's consumer. One batch holds the jobs of one conversation (its
Service Bus session), in order; nobody else works on that conversation meanwhile.

For each job:
- a card job renders the alert snapshot it carries and posts it, or updates the card in place
  when this revision is newer than the one the card shows (recorded with an ETag-conditional
  write; a conflict is resolved, never ignored);
- every send is paced under Teams' per-conversation limits (the window kept in Table Storage)
  and the tenant's budget (:class:`TenantBudget`); a send that does not fit soon is rescheduled
  as a scheduled message, never waited out inside the invocation;
- in a storm (no room for another individual card soon) a new alert is folded into the
  conversation's **summary card**, updated in place: no alert is lost, every one is its own
  card or counted in the summary;
- Teams' ``Retry-After`` blocks the conversation's window and reschedules the job; a permanent
  refusal records the failure and sends the card to the job's fallback recipients.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from shared import cards
from shared.domain import pacing, retention
from shared.domain.alerts import MENTIONED_TYPE, snoozed
from shared.domain.jobs import CARD, COMMENT, DIGEST, REMINDER, SUMMARY, DeliveryJob, bundle, conversation_to_json
from shared.domain.model import AlertState, Delivery, Undeliverable
from shared.domain.workflows import InvalidWorkflow, parse_recipient
from shared.ports import ConcurrencyConflict, DeliveryError, PacingStore, ReconsentRequired, TransientError
from shared.resilience import exponential, tried_again

log = logging.getLogger(__name__)
T = TypeVar("T")

# A send that fits within this many seconds waits for it in the invocation; later ones are
# rescheduled (a scheduled message) so no invocation is held for long. One batch of jobs
# waits at most MAX_BATCH_WAIT_SECONDS in all: the rest of it is not held up behind pacing.
MAX_WAIT_SECONDS = 1.0
MAX_BATCH_WAIT_SECONDS = 1.0
# Tries of the write that records a posted card (its activity id), beyond the first.
RECORD_RETRIES = 3
# A new alert whose individual card would have to wait longer than this is folded into the
# storm summary instead (a burst that fits the window within it waits for its turn:
# rescheduled). Short, because each put-off card holds its conversation's session while it is
# posted: in a storm, the summary counts the alerts sooner than late cards would show them.
FOLD_AFTER_SECONDS = 3.0
# While a storm goes on (the summary folded an alert this recently), new alerts are folded too,
# even when the window has room for a card: a card now and then among the storm's alerts says
# less than the summary, and each one holds the session that is folding the rest.
STORM_GOING_ON = timedelta(seconds=10)
# The summary card is updated at most this often: 10 updates per 30 s, the sends the window
# keeps back from individual cards (pacing.SUMMARY_RESERVE).
SUMMARY_MIN_INTERVAL = timedelta(seconds=3)
# Transient failures without Retry-After: back off 2, 4, 8 … seconds, at most this long.
MAX_BACKOFF_SECONDS = 300.0
# After this many transient failures of one job (about a day at the longest backoff), the
# conversation is treated as unreachable: the card goes to the fallback recipients and is
# recorded as undeliverable, never dropped. Put-offs for pacing or the budget do not count.
MAX_FAILURES = 300
# A claim older than this belongs to a consumer that died between claiming and recording.
CLAIM_TIMEOUT = timedelta(minutes=2)
# A storm is over once its summary has folded nothing for STORM_QUIET, or began STORM_MAX_AGE
# ago: the next fold starts a new summary card at the bottom of the conversation, and the old
# card says the storm ended (a storm days later never updates a card days up the channel).
STORM_QUIET = timedelta(minutes=30)
STORM_MAX_AGE = timedelta(hours=6)


def _now() -> datetime:
    return datetime.now(UTC)


T_MIN = datetime.min.replace(tzinfo=UTC)


class TenantBudget:
    """This instance's share of each tenant's send budget, which holds across instances.

    Teams allows a bot 50 requests per second per tenant. The app's budget
    (``TEAMS_TENANT_SENDS_PER_SECOND``, 45 by default) is cut into :data:`SLOTS` slots; an
    instance leases slots in Table Storage (an ETag-conditional write per slot, for
    :data:`LEASE` seconds, renewed while it sends) and sends at most ``slots * rate per slot``
    per second to that tenant. Slots are exclusive, so however many instances run, the
    tenant never gets more than the whole budget.

    The slots are shared fairly between the busy instances: one that wants slots and finds none
    free says so (a "want" row in the same partition, for :data:`WANT_FOR`); every busy instance
    looks at the partition at most once per :data:`LOOK_EVERY` and keeps no more than its share
    (the slots divided by the instances wanting them, itself included), releasing the rest at
    once. Slots an instance no longer needs are released too when another instance wants some,
    else they lapse (no write), as an idle instance's do; a busy one takes the free ones. A
    trickle's renewal is one conditional write."""

    SLOTS = 9
    LEASE = timedelta(seconds=15)
    RENEW_BEFORE = timedelta(seconds=5)
    SAFETY = timedelta(seconds=1)  # stop using a lease this long before it ends (clock skew)
    LOOK_EVERY = timedelta(seconds=1)
    WANT_FOR = timedelta(seconds=4)

    def __init__(
        self, store: PacingStore, per_second: float, instance_id: str, clock: Callable[[], datetime] = _now
    ) -> None:
        self._store = store
        self._per_slot = per_second / self.SLOTS
        self._instance = instance_id
        self._clock = clock
        self._held: dict[str, tuple[int, datetime]] = {}  # tenant -> (slots, earliest lease end)
        self._etags: dict[str, dict[int, str]] = {}  # tenant -> the held slots' ETags as this instance wrote them
        self._next: dict[str, float] = {}  # tenant -> earliest time (epoch s) of the next send
        self._demand: dict[str, list[float]] = {}  # tenant -> recent reserve times
        self._locks: dict[str, asyncio.Lock] = {}
        self._looked: dict[str, datetime] = {}

    async def reserve(self, tenant_id: str, max_wait: float) -> float | None:
        """Take the next send slot for the tenant: the seconds to wait for it, or None when it
        is further away than ``max_wait`` (nothing is taken then)."""
        now = self._clock()
        held, until = self._held.get(tenant_id, (0, now))
        demand = self._demand.setdefault(tenant_id, [])
        demand.append(now.timestamp())
        self._demand[tenant_id] = [t for t in demand if t > now.timestamp() - 2.0]

        def lease_due(held: int, until: datetime) -> bool:
            # Renew before the lease ends; look (for free slots, or an instance that wants some
            # of this one's) at most once a second, and only while busy: holding none, or asking
            # for more than one slot's rate. A trickle of sends costs no extra request.
            busy = held == 0 or len(self._demand[tenant_id]) / 2.0 > self._per_slot
            return (held > 0 and until - now < self.RENEW_BEFORE) or (
                busy and now - self._looked.get(tenant_id, T_MIN) >= self.LOOK_EVERY
            )

        if lease_due(held, until):
            async with self._locks.setdefault(tenant_id, asyncio.Lock()):
                held, until = self._held.get(tenant_id, (0, now))
                if lease_due(held, until):  # another task may have leased meanwhile
                    renewed = await self._renew(tenant_id, now) if self._renewal_only(tenant_id, now) else None
                    if renewed is None:
                        self._looked[tenant_id] = now
                        renewed = await self._lease(tenant_id, now)
                    held, until = renewed
        if held == 0:
            return None  # every slot is leased elsewhere: no send from here until one is free
        interval = 1.0 / (held * self._per_slot)
        slot = max(now.timestamp(), self._next.get(tenant_id, 0.0))
        if slot - now.timestamp() > max_wait or slot > (until - self.SAFETY).timestamp():
            return None
        self._next[tenant_id] = slot + interval
        return slot - now.timestamp()

    def _renewal_only(self, tenant_id: str, now: datetime) -> bool:
        """A trickle's lease due: one slot held and no more than its rate asked for, so there is
        nothing to look for (no slot to take or release) but the lease's end."""
        held, _ = self._held.get(tenant_id, (0, now))
        return held == 1 and len(self._demand.get(tenant_id, [])) / 2.0 <= self._per_slot

    async def _renew(self, tenant_id: str, now: datetime) -> tuple[int, datetime] | None:
        """Extend the slot this instance holds, conditional on the ETag it wrote (one request, no
        read); None when it changed meanwhile (taken by another after lapsing): the caller reads
        the partition and leases afresh."""
        etags = self._etags.get(tenant_id, {})
        if len(etags) != 1:  # the slot's ETag is not known (_renewal_only: one slot held)
            return None
        [(slot, etag)] = etags.items()
        until = now + self.LEASE
        try:
            etags[slot] = await self._store.save_budget_slot(tenant_id, slot, self._instance, until, etag)
        except ConcurrencyConflict:
            etags.pop(slot)
            return None
        self._held[tenant_id] = (1, until)
        return 1, until

    async def _lease(self, tenant_id: str, now: datetime) -> tuple[int, datetime]:
        """Keep this instance's share of the slots it needs (renewed when due), release the rest,
        take free ones up to it, and say so when it wants more than it could get."""
        held_now = self._held.get(tenant_id, (0, now))[0]
        recent = len(self._demand.get(tenant_id, [])) / 2.0  # sends per second asked for lately
        needed = (
            self.SLOTS
            if recent > held_now * self._per_slot
            else max(1, min(self.SLOTS, math.ceil(recent / self._per_slot)))
        )
        slots, wants = await self._store.read_budget(tenant_id)
        others = sum(1 for instance, until in wants.items() if instance != self._instance and until > now)
        share = math.ceil(self.SLOTS / (others + 1))
        target = min(needed, share)
        mine = sorted(
            (s for s in slots if s[1] == self._instance and s[2] is not None and s[2] > now), key=lambda s: s[0]
        )
        free = [s for s in slots if s[2] is None or s[2] <= now]  # lapsed, this instance's own included
        missing = [slot for slot in range(self.SLOTS) if slot not in {s[0] for s in slots}]
        kept: list[datetime] = []
        etags: dict[int, str] = {}
        # Beyond this instance's share: released, free once the sends already promised at the
        # rate it had are made (and the clock-skew margin), so the two never add up beyond it.
        promised = datetime.fromtimestamp(max(self._next.get(tenant_id, 0.0), now.timestamp()), UTC) + self.SAFETY
        # While no other instance wants slots, one this instance no longer needs is neither
        # renewed nor released: it lapses at its lease's end, unused from now on (no write).
        for slot, _, _, etag in mine[target:] if others else ():
            with contextlib.suppress(ConcurrencyConflict):
                await self._store.save_budget_slot(tenant_id, slot, "", promised, etag)
        renew = any(ends is not None and ends - now < self.RENEW_BEFORE for _, _, ends, _ in mine[:target])
        for slot, _, ends, etag in mine[:target]:
            if not renew:
                assert ends is not None
                kept.append(ends)
                etags[slot] = etag
                continue
            try:
                etags[slot] = await self._store.save_budget_slot(
                    tenant_id, slot, self._instance, now + self.LEASE, etag
                )
                kept.append(now + self.LEASE)
            except ConcurrencyConflict:
                continue  # released or taken by another meanwhile
        candidates: list[tuple[int, str | None]] = [(slot, None) for slot in missing] + [(s[0], s[3]) for s in free]
        for slot, found in candidates:
            if len(kept) >= target:
                break
            try:
                etags[slot] = await self._store.save_budget_slot(
                    tenant_id, slot, self._instance, now + self.LEASE, found
                )
                kept.append(now + self.LEASE)
            except ConcurrencyConflict:
                continue  # taken meanwhile
        if len(kept) < needed:
            await self._store.save_budget_want(tenant_id, self._instance, now + self.WANT_FOR)
        held = len(kept)
        until = min(kept) if kept else now
        self._held[tenant_id] = (held, until)
        self._etags[tenant_id] = etags
        if held != held_now:
            log.debug(
                "Holding %d of %d send slots of tenant %s (%d other instances want some)",
                held,
                self.SLOTS,
                tenant_id,
                others,
            )
        return held, until


@dataclass
class JobReport:
    posted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    rescheduled: int = 0
    failed: list[str] = field(default_factory=list)
    fallback: list[str] = field(default_factory=list)
    undeliverable: list[str] = field(default_factory=list)
    sends: int = 0

    def add(self, other: JobReport) -> None:
        for name, value in other.__dict__.items():
            setattr(self, name, getattr(self, name) + value)


class _Stale(Exception):
    """The window row this process remembered was written by another consumer since: the
    conversation's jobs run again on the row as it is now. Raised before anything was sent."""


class _Conversation:
    """The batch's view of one conversation: its send window and its storm summary."""

    def __init__(
        self, job: DeliveryJob, window: pacing.Window, summary: dict[str, Any] | None, etag: str | None
    ) -> None:
        self.record = job.conversation
        self.window = window
        self.summary = summary
        self.summary_dirty = False
        # The window's row as this batch last read or wrote it (its ETag, and what it holds);
        # a card's claim and record write the window with them, the summary as it was read
        # (its counts are saved at the end of the batch, with the members they count).
        self.etag = etag
        self.summary_read = copy.deepcopy(summary)
        self.stored: tuple[str, dict[str, Any] | None] | None = (
            (window.to_json(), copy.deepcopy(summary)) if etag else None
        )
        self.overtaken = False  # another consumer wrote the window meanwhile: the batch is run again
        # False while the window is the one this process remembered (TableStateStore.last_pacing),
        # not yet confirmed by a read or a write on its ETag: nothing is sent until it is.
        self.confirmed = True
        self.stale = False
        # The summary's sequence as saved: a member recorded with a higher one was counted by
        # an attempt whose summary was never saved, so it is not in these counts.
        self.saved_seq = summary["seq"] if summary else 0
        # Alerts folded into the summary in this batch, recorded together at the end of it.
        self.folds: dict[str, dict[str, Any]] = {}  # alert key -> a summary member (store.save_summary_members)
        self.fold_marks: dict[str, Delivery] = {}  # alert key -> its "folded" delivery row
        self.recorded: list[str] = []  # alert keys this batch recorded as new members
        self.waited = 0.0  # seconds this batch has waited for sends
        self.sending: float | None = None  # when the send whose slot was just taken began (_send)
        # What the store had, read together before the batch's jobs run one by one, of the alerts
        # of its card jobs that are not new (a batch delivered again): alert key -> its delivery
        # here, and its summary member here when it has no card. Each is taken by its alert's
        # first job only (_read_delivery, _read_member).
        self.deliveries_read: dict[str, Delivery | None] = {}
        self.members_read: dict[str, dict[str, Any] | None] = {}
        self.limits = pacing.limits_for(
            (job.conversation.reference or {}).get("delivery") == "graph" and job.conversation.channel_id is not None
        )


# A deliveries message that fails for now is run again this many times before it fails (and
# Service Bus delivers it again): 0.2, 0.4, 0.8 s apart, its jobs no longer new, as a
# redelivery's would be.
RUN_RETRIES = 3


async def run_message(jobs: list[DeliveryJob], ctx: Any) -> JobReport:
    """:func:`run_jobs` for one deliveries message, tried again in the run when it fails for now."""
    again = [replace(job, new=False) for job in jobs]
    return await tried_again(
        lambda attempt: run_jobs(again if attempt else jobs, ctx),
        retry_on=TransientError,
        retries=RUN_RETRIES,
        sleep=ctx.sleep,
    )


async def run_jobs(jobs: list[DeliveryJob], ctx: Any) -> JobReport:
    """Run the jobs of one session batch (they share a conversation), in order."""
    report = JobReport()
    by_conversation: dict[tuple[str, str], list[DeliveryJob]] = {}
    for job in jobs:
        by_conversation.setdefault((job.tenant_id, job.conversation_id), []).append(job)
    for (tenant_id, conversation_id), group in by_conversation.items():
        # A batch of new cards starts from the window as this process last wrote it (no read):
        # the first card's claim is written on its ETag, so a window written by another consumer
        # since is found out before anything is sent, and the batch runs again on a fresh read.
        remembered = ctx.store.last_pacing(tenant_id, conversation_id) if _new_cards(group) else None
        while True:
            attempt = JobReport()
            try:
                await _run_conversation(group, remembered, ctx, attempt)
            except _Stale:
                log.debug("The window of %s changed since this process wrote it; read again", conversation_id)
                remembered = None
                continue
            report.add(attempt)
            break
    return report


def _new_cards(group: list[DeliveryJob]) -> bool:
    return all(job.kind == CARD and job.new and job.attempt == 0 for job in group)


async def _run_conversation(
    group: list[DeliveryJob],
    remembered: tuple[str | None, dict[str, Any] | None, str] | None,
    ctx: Any,
    report: JobReport,
) -> None:
    tenant_id, conversation_id = group[0].tenant_id, group[0].conversation_id
    window_text, summary, etag = remembered or await ctx.store.get_pacing(tenant_id, conversation_id)
    conversation = _Conversation(group[0], pacing.Window.from_json(window_text), summary, etag)
    conversation.confirmed = remembered is None
    await _look_up(group, conversation, ctx)
    later: list[DeliveryJob] = []
    summary_before = copy.deepcopy(summary)
    try:
        for job in group:
            await _run_job(job, conversation, ctx, report, later)
        await _write_folds(conversation, ctx, report)
        summary_jobs = [j for j in group if j.kind == SUMMARY]
        # A summary whose counts were saved but not rendered (an earlier attempt of a batch
        # failed after folding) is rendered now: its alerts are visible nowhere else.
        unrendered = conversation.summary is not None and conversation.summary["seq"] != conversation.summary.get(
            "rendered"
        )
        if conversation.summary_dirty or summary_jobs or unrendered:
            await _refresh_summary(conversation, ctx, report, later, summary_jobs[-1] if summary_jobs else None)
    except BaseException as exc:
        # Service Bus delivers the batch again, first in its session, its jobs no longer "new"
        # (jobs.job_from_message): they look up what this attempt did. What it sent stays in
        # the window; what it counted does not stay counted: the summary is saved as it was
        # read (with the card this attempt posted or updated, marked to be drawn again), and
        # the members this attempt recorded go. A member left behind (its removal failed too)
        # has a sequence above the saved summary's, which marks it uncounted; as no later
        # save counts anything until this batch has gone through, nothing passes it.
        conversation.stale = isinstance(exc, _Stale)  # nothing sent: nothing to save, run again
        conversation.summary = _discard_counts(summary_before, conversation.summary)
        await _unrecord(conversation, ctx)
        raise
    finally:
        if not conversation.stale:
            try:
                await _save_pacing(ctx, tenant_id, conversation_id, conversation)
            except ConcurrencyConflict:
                # Another consumer saved this conversation meanwhile (a session lock lost and taken
                # over, or since the window this process remembered): overwriting would drop its
                # sends and folds. This attempt's counts are not saved, so its members go (they
                # would look counted by the other's summary) and the batch is decided again on
                # what the other saved: at once if this attempt sent nothing, else delivered again.
                await _unrecord(conversation, ctx)
                if not conversation.confirmed:
                    raise _Stale() from None
                raise TransientError(
                    f"conversation {conversation_id} was paced by another consumer meanwhile"
                ) from None
            if later:
                report.rescheduled += len(later)
                await ctx.jobs.send(bundle(later))


PACING_SAVE_TRIES = 3


async def _save_pacing(ctx: Any, tenant_id: str, conversation_id: str, conv: _Conversation) -> None:
    """Save the conversation's window and summary, unless the batch's last write of a card left
    them as they are, tried again when Table Storage fails for now: a batch delivered again
    because this one write failed would read a window without this batch's sends, and send
    beyond Teams' limits. A conflict on a later try may be the earlier try having landed with
    its answer lost: what is stored then is exactly what was written."""
    window = conv.window.to_json()
    if conv.stored == (window, conv.summary) and not conv.overtaken:
        return
    for attempt in range(PACING_SAVE_TRIES):
        try:
            conv.etag = await ctx.store.save_pacing(tenant_id, conversation_id, window, conv.summary, conv.etag)
            conv.stored = (window, copy.deepcopy(conv.summary))
            return
        except TransientError:
            if attempt == PACING_SAVE_TRIES - 1:
                raise
        except ConcurrencyConflict:
            if attempt == 0:
                raise
            stored_window, stored_summary, _ = await ctx.store.get_pacing(tenant_id, conversation_id)
            if stored_window == window and stored_summary == conv.summary:
                return
            raise


async def _save_paced(conv: _Conversation, delivery: Delivery, ctx: Any) -> Delivery:
    """Save a card's delivery row and its conversation's window in one transaction (one
    request); ConcurrencyConflict ``write`` 0 when another consumer wrote the window meanwhile
    (then nothing is written), 1 when the delivery row changed."""
    window = conv.window.to_json()
    written: tuple[Delivery, str] = await ctx.store.save_delivery_paced(delivery, window, conv.summary_read, conv.etag)
    saved, conv.etag = written
    conv.confirmed = True
    conv.stored = (window, copy.deepcopy(conv.summary_read))
    return saved


def _discard_counts(before: dict[str, Any] | None, now: dict[str, Any] | None) -> dict[str, Any] | None:
    """The summary as it was read, keeping the card this attempt posted (its id) and marking it
    to be drawn again, since it may show this attempt's counts."""
    if now is None or not now.get("activityId") or (before and before.get("renderedAt") == now.get("renderedAt")):
        return before
    if before is not None and now.get("storm", 1) != before.get("storm", 1):
        # This attempt ended the storm read and began a new summary: the new one is kept (its card
        # exists), counting nothing yet, with the old one to be drawn as ended if it is not yet.
        kept = _empty_summary(storm=now["storm"], seq=before["seq"])
        if now.get("ended"):
            kept["ended"] = now["ended"]
    else:
        kept = copy.deepcopy(before) if before is not None else _empty_summary()
    kept["activityId"] = now["activityId"]
    kept["renderedAt"] = now.get("renderedAt")
    kept["rendered"] = -1
    return kept


async def _unrecord(conv: _Conversation, ctx: Any) -> None:
    for key in conv.recorded:
        with contextlib.suppress(Exception):  # best effort: the summary never counted them
            await ctx.store.delete_summary_member(conv.record.tenant_id, conv.record.conversation_id, key)
            await ctx.store.delete_delivery(conv.record.tenant_id, key, conv.record.conversation_id)


async def _run_job(
    job: DeliveryJob, conv: _Conversation, ctx: Any, report: JobReport, later: list[DeliveryJob]
) -> None:
    try:
        if job.kind == CARD:
            await _card(job, conv, ctx, report, later)
        elif job.kind == COMMENT:
            await _comment(job, conv, ctx, report, later)
        elif job.kind == REMINDER:
            await _reminder(job, conv, ctx, report, later)
        elif job.kind == DIGEST:
            await _digest(job, conv, ctx, report, later)
    except DeliveryError as exc:
        if not exc.permanent:
            if not _reschedule(job, conv, ctx, later, exc):
                await _refused(
                    job, conv, ctx, report, f"Teams kept failing the card ({exc}) {job.failures + 1} times", gone=False
                )
            return
        await _refused(job, conv, ctx, report, f"Teams refused the card ({exc})", gone=exc.conversation_gone)
    except ReconsentRequired as exc:
        await _refused(job, conv, ctx, report, str(exc), gone=False, record=False)


def _reschedule(job: DeliveryJob, conv: _Conversation, ctx: Any, later: list[DeliveryJob], exc: DeliveryError) -> bool:
    """Run the job again after Teams' Retry-After or a backoff; False when it has failed
    :data:`MAX_FAILURES` times (the caller treats the conversation as unreachable)."""
    now = ctx.clock()
    if exc.retry_after is not None:
        wait = exc.retry_after
        conv.window.block(now.timestamp() + wait)  # nothing else goes to this conversation meanwhile
    else:
        wait = exponential(job.failures + 1, first=2.0, cap=MAX_BACKOFF_SECONDS)
    if job.failures + 1 >= MAX_FAILURES:
        log.error(
            "Giving up on %s in %s after %d failures: %s",
            job.alert_key or job.kind,
            job.conversation_id,
            job.failures + 1,
            exc,
        )
        return False
    log.info("Teams is busy for %s (%s); the job runs again in %.1f s", job.conversation_id, exc, wait)
    later.append(job.again(now + timedelta(seconds=wait), failed=True))
    return True


async def _wait_for_send(
    job: DeliveryJob,
    conv: _Conversation,
    ctx: Any,
    later: list[DeliveryJob],
    *,
    reserve: bool = False,
    hold: bool = False,
    claim_follows: bool = False,
) -> bool:
    """Wait (briefly) until a send fits the conversation's window and the tenant's budget and
    take the slot; False when the job was rescheduled instead (``hold``: with its slot held).
    A remembered window is confirmed first (a read), unless a claim written on its ETag follows."""
    if not conv.confirmed and not claim_follows:
        _, _, etag = await ctx.store.get_pacing(conv.record.tenant_id, conv.record.conversation_id)
        if etag != conv.etag:
            raise _Stale()
        conv.confirmed = True
    now = ctx.clock().timestamp()
    at = conv.window.next_send(now, conv.limits, reserve=reserve)
    if at - now > MAX_WAIT_SECONDS or conv.waited + (at - now) > MAX_BATCH_WAIT_SECONDS:
        if hold:
            conv.window.promise(at)
        later.append(job.again(datetime.fromtimestamp(at, UTC)))
        return False
    wait = max(at - now, 0.0)
    if ctx.tenant_rate is not None:
        budget_wait = await ctx.tenant_rate.reserve(job.tenant_id, MAX_WAIT_SECONDS)
        if budget_wait is None:  # the tenant's budget is spoken for: try again in a moment
            later.append(job.again(ctx.clock() + timedelta(seconds=1)))
            return False
        wait = max(wait, budget_wait)
    if wait > 0:
        conv.waited += wait
        await ctx.sleep(wait)
    conv.sending = ctx.clock().timestamp()
    conv.window.record(conv.sending)
    return True


async def _send(conv: _Conversation, ctx: Any, call: Awaitable[T]) -> T:
    """Make the send whose slot :func:`_wait_for_send` just took; however it ends, it counts in
    the window from when its answer came (:meth:`pacing.Window.landed`), not from when it began."""
    started, conv.sending = conv.sending, None
    try:
        return await call
    finally:
        if started is not None:
            conv.window.landed(started, ctx.clock().timestamp())


async def _card(job: DeliveryJob, conv: _Conversation, ctx: Any, report: JobReport, later: list[DeliveryJob]) -> None:
    store = ctx.store
    state = job.alert
    if state is None:  # a re-render of whatever is current
        if not job.extra.get("alertKey"):
            return
        state = await store.get_alert(job.tenant_id, job.extra["alertKey"])
        if state is None:
            return
    if job.extra.get("refused"):  # counted in a summary card that the conversation refused for good
        shown = await store.get_delivery(job.tenant_id, state.key, job.conversation_id)
        if shown is None or not shown.activity_id:
            await _refused(replace(job, alert=state), conv, ctx, report, str(job.extra["refused"]), gone=False)
        return
    if state.key in conv.folds:  # folded earlier in this batch: count the change there
        await _member_change(conv, conv.folds[state.key], state, ctx)
        return
    # A first attempt of a job made for a new alert needs no look: no card of it exists yet.
    fresh = job.new and job.attempt == 0
    delivery = None if fresh else await _read_delivery(job, state.key, conv, ctx)
    now = ctx.clock()
    log.debug(
        "Job for %s r%d in %s (attempt %d%s): the card %s",
        state.alert_id,
        state.revision,
        job.conversation_id,
        job.attempt,
        ", new" if fresh else "",
        f"shows r{delivery.rendered_version}" if delivery and delivery.activity_id else "is not there",
    )
    if delivery is not None and delivery.status == "failed":
        return
    if not fresh and (delivery is None or not delivery.activity_id):
        # An alert is either its own card here or counted in the summary, never both.
        member = await _read_member(job, state.key, conv, ctx)
        storm = conv.summary.get("storm", 1) if conv.summary is not None else None
        if member is not None and member["seq"] <= conv.saved_seq and member["storm"] == storm:
            await _member_change(conv, member, state, ctx)
            return
        if member is not None:
            # Recorded by an attempt whose summary was never saved (not counted), or counted in a
            # storm that has ended (its card keeps its last counts): decided afresh, its own card
            # or counted in the current summary, and the record goes.
            await store.delete_summary_member(job.tenant_id, job.conversation_id, state.key)
    if delivery is not None and delivery.activity_id:
        await _update(job, state, delivery, conv, ctx, report, later)
        return
    if delivery is not None and delivery.claimed_at is not None and now - delivery.claimed_at <= CLAIM_TIMEOUT:
        later.append(job.again(now + timedelta(seconds=5)))  # another consumer is posting it right now
        return
    # A new card: individually while the window has room, else into the storm summary. A
    # Retry-After is not a storm: the job waits for it.
    if conv.window.blocked_until - now.timestamp() > MAX_WAIT_SECONDS:
        later.append(job.again(datetime.fromtimestamp(conv.window.blocked_until, UTC)))
        return
    if job.attempt > 0:
        conv.window.redeem(now.timestamp())  # this job was put off to a slot held for it
        if _late_in_a_storm(job, conv, now):
            _fold(job, state, conv, ctx, report)
            return
    if _storm_going_on(conv, now):
        _fold(job, state, conv, ctx, report)
        return
    at = conv.window.next_send(now.timestamp(), conv.limits, reserve=True, ignore_block=True)
    if at - now.timestamp() > FOLD_AFTER_SECONDS:
        _fold(job, state, conv, ctx, report)  # a post put off earlier is counted instead: its row is replaced
        return
    wait = max(at - now.timestamp(), 0.0)
    if wait > MAX_WAIT_SECONDS or conv.waited + wait > MAX_BATCH_WAIT_SECONDS:
        conv.window.promise(at)  # its turn comes later: hold that slot, claim nothing yet
        later.append(job.again(datetime.fromtimestamp(at, UTC)))
        return
    # The slot first, then the claim, then the post: nothing between the claim and the post can
    # fail but the post itself, so a claim left behind always means a post that may have landed
    # (a budget that failed for now would otherwise leave one, and the job's retries would wait
    # two minutes for it to lapse as if another consumer were posting).
    if not await _wait_for_send(job, conv, ctx, later, reserve=True, hold=True, claim_follows=True):
        return
    claim = Delivery(
        job.tenant_id,
        state.key,
        job.conversation_id,
        status="posting",
        claimed_at=ctx.clock(),
        recipient=job.recipient,
        reason=job.reason,
        context=job.context,
        conversation=conversation_to_json(job.conversation),
        etag=delivery.etag if delivery else None,
    )
    try:
        claim = await _save_paced(conv, claim, ctx)
    except ConcurrencyConflict as exc:
        if exc.write == 0:
            if not conv.confirmed:
                raise _Stale() from exc
            raise TransientError(f"conversation {job.conversation_id} was paced by another consumer meanwhile") from exc
        # Its slot stays taken in the window (counted, never sent: the window errs safe).
        if fresh:  # the row exists after all (a later revision's job ran first here): decide on what it says
            await _card(replace(job, new=False), conv, ctx, report, later)
        else:
            later.append(job.again(now + timedelta(seconds=5)))  # another consumer claimed it: look again soon
        return
    try:
        activity_id = await _send(
            conv, ctx, ctx.messenger.post(conv.record, cards.fit_card(state, job.context), cards.summary_text(state))
        )
    except DeliveryError as exc:
        if exc.maybe_sent and not exc.permanent and job.failures + 1 < MAX_FAILURES:
            # The post may have landed (Teams gives no way to ask). The claim stays, so no retry
            # posts while it may still be in flight; once it lapses the job posts again: a card
            # twice is possible then, never none.
            log.warning(
                "The post of alert %s to %s may or may not have landed (%s); it is tried again in %d s",
                state.alert_id,
                conv.record.label,
                exc,
                CLAIM_TIMEOUT.total_seconds(),
            )
            later.append(job.again(now + CLAIM_TIMEOUT + timedelta(seconds=1), failed=True))
            return
        if not exc.permanent:
            await store.save_delivery(replace(claim, claimed_at=None))  # release the claim for the retry
        raise
    except Exception:
        await store.save_delivery(replace(claim, claimed_at=None))  # release the claim for the retry
        raise
    report.sends += 1
    await _record_render(
        replace(claim, activity_id=activity_id, status="posted", rendered_version=-1), state, job, ctx, conv
    )
    report.posted.append(job.conversation_id)
    _log_card("posted", state, conv.record)
    if (job.context or {}).get("mentions") or (job.context or {}).get("unresolvedMentions"):
        await _report_mentions(state, job, ctx)


async def _report_mentions(state: AlertState, job: DeliveryJob, ctx: Any) -> None:
    """Tell the source whom a card just posted mentions (teams.alert.mentioned, once per card),
    through the same outbox as the actions people take: recorded, published, retried by the timer."""
    from shared.services.actions import publish_system_event

    context = job.context or {}
    data = {
        "mentioned": [{"aadObjectId": p["id"], "name": p["name"]} for p in context.get("mentions") or []],
        "notFound": list(context.get("unresolvedMentions") or []),
        "conversations": [job.conversation_id],
    }
    try:
        # The card is posted and recorded: a failure here must not fail the batch (its retry would
        # find the card and not come back here), so the record is tried again in place.
        await tried_again(
            lambda _attempt: publish_system_event(
                ctx.store,
                ctx.outbound,
                state,
                MENTIONED_TYPE,
                data,
                discriminator=f"mentioned\n{job.conversation_id}",
                clock=ctx.clock,
            ),
            retry_on=TransientError,
            retries=RECORD_RETRIES,
            sleep=ctx.sleep,
        )
    except TransientError as exc:
        log.warning("Whom the card of %s mentions was not recorded for its source: %s", state.alert_id, exc)


async def _update(
    job: DeliveryJob,
    state: AlertState,
    delivery: Delivery,
    conv: _Conversation,
    ctx: Any,
    report: JobReport,
    later: list[DeliveryJob],
) -> None:
    context = job.context if job.context is not None else delivery.context
    if delivery.rendered_version >= state.revision and (context or None) == (delivery.context or None):
        return  # the card shows this revision, or a newer one
    if delivery.rendered_version > state.revision:
        # Only the context is new (a note): it goes on the card of the newest revision, never
        # over it with this job's older one.
        current = await ctx.store.get_alert(job.tenant_id, state.key)
        if current is None or current.revision < delivery.rendered_version:
            return  # gone, or (never) older than its card: the card stays as it is
        state = current
    if not await _wait_for_send(job, conv, ctx, later):
        return
    assert delivery.activity_id is not None
    await _send(
        conv,
        ctx,
        ctx.messenger.update(
            conv.record, delivery.activity_id, cards.fit_card(state, context), cards.summary_text(state)
        ),
    )
    report.sends += 1
    await _record_render(replace(delivery, context=context), state, job, ctx, conv)
    report.updated.append(job.conversation_id)
    _log_card("updated", state, conv.record)


def _log_card(result: str, state: AlertState, record: Any) -> None:
    """One line per card sent, with a structured ``outcome`` (the local host shows it per message)."""
    where = record.label
    log.info(
        "Card of alert %s %s in %s (%s)",
        state.alert_id,
        result,
        where,
        record.conversation_id,
        extra={
            "outcome": {
                "kind": "card",
                "result": result,
                "alertId": state.alert_id,
                "status": state.status,
                "revision": state.revision,
                "conversationId": record.conversation_id,
                "conversation": where,
            }
        },
    )


async def _record_render(
    delivery: Delivery, state: AlertState, job: DeliveryJob, ctx: Any, conv: _Conversation
) -> None:
    """Record that the card shows ``state.revision``, ETag-conditionally, with the window that
    counts its send (one transaction). On a conflict the record is read again: a newer render
    recorded meanwhile means this send may have put an older card over it, so the current state
    is rendered again (a follow-up job). Another consumer's window write meanwhile: the record
    is written alone (the card exists), and the batch is run again at its end."""
    transient = 0
    for _ in range(5 + RECORD_RETRIES):
        record = replace(delivery, rendered_version=max(state.revision, delivery.rendered_version), claimed_at=None)
        try:
            if conv.overtaken:
                await ctx.store.save_delivery(record)
            else:
                await _save_paced(conv, record, ctx)
            return
        except TransientError:
            # The card is in Teams already: losing its activity id would make a retry post it
            # again. Table Storage gets a few more tries here before the batch fails.
            transient += 1
            if transient > RECORD_RETRIES:
                raise
            await ctx.sleep(exponential(transient, first=0.4, cap=MAX_BACKOFF_SECONDS))
        except ConcurrencyConflict as exc:
            if exc.write == 0:
                if transient and await _landed(conv, ctx):
                    return  # the try whose answer was lost wrote both rows
                conv.overtaken = True
                continue
            current = await ctx.store.get_delivery(delivery.tenant_id, delivery.alert_key, delivery.conversation_id)
            if current is None:
                return
            if current.rendered_version > state.revision:
                await ctx.jobs.send(
                    [
                        DeliveryJob(
                            job.conversation,
                            CARD,
                            None,
                            extra={"alertKey": state.key},
                            request=f"rerender-{current.rendered_version}",
                        )
                    ]
                )
                return
            delivery = replace(
                current,
                activity_id=delivery.activity_id or current.activity_id,
                status=delivery.status,
                context=delivery.context,
            )
    raise TransientError(f"the delivery record of {state.alert_id} in {delivery.conversation_id} kept changing")


async def _landed(conv: _Conversation, ctx: Any) -> bool:
    """Whether the window's row holds what this batch last wrote with a card's row: a try whose
    answer was lost landed (the two rows are one transaction), and its ETag is taken."""
    window, summary, etag = await ctx.store.get_pacing(conv.record.tenant_id, conv.record.conversation_id)
    if (window, summary) != (conv.window.to_json(), conv.summary_read):
        return False
    conv.etag, conv.stored = etag, (window, copy.deepcopy(summary))
    return True


async def _comment(
    job: DeliveryJob, conv: _Conversation, ctx: Any, report: JobReport, later: list[DeliveryJob]
) -> None:
    """Reply with a comment in the alert card's thread, once per request (a claim row)."""
    assert job.alert is not None
    shown = await ctx.store.get_delivery(job.tenant_id, job.alert.key, job.conversation_id)
    if shown is None or not shown.activity_id:
        return
    claim_key = f"{job.alert.key}:send:{job.request[:24]}"
    try:
        claim = await ctx.store.claim(
            Delivery(job.tenant_id, claim_key, job.conversation_id, claimed_at=ctx.clock()), retention.SEND_CLAIM
        )
    except ConcurrencyConflict:
        return  # posted already
    if not await _wait_for_send(job, conv, ctx, later):
        await ctx.store.delete_delivery(job.tenant_id, claim_key, job.conversation_id)
        return
    try:
        reply_id = await _send(
            conv, ctx, ctx.messenger.reply(conv.record, shown.activity_id, job.text, job.extra.get("mentions") or ())
        )
    except Exception:
        await ctx.store.delete_delivery(job.tenant_id, claim_key, job.conversation_id)
        raise
    report.sends += 1
    await ctx.store.save_delivery(replace(claim, activity_id=reply_id, status="posted"))


async def _reminder(
    job: DeliveryJob, conv: _Conversation, ctx: Any, report: JobReport, later: list[DeliveryJob]
) -> None:
    """Remind in the thread of the alert's card (the timer decided it was due and recorded it),
    paced like every send; nothing if the alert was acknowledged or resolved meanwhile."""
    shown = await ctx.store.get_delivery(job.tenant_id, job.alert_key, job.conversation_id)
    if shown is None or not shown.activity_id:
        return
    state = await ctx.store.get_alert(job.tenant_id, job.alert_key)
    if state is None or state.status != "open" or snoozed(state, ctx.clock()):
        return
    if not await _wait_for_send(job, conv, ctx, later):
        return
    # The people the card mentions are mentioned again, so the reminder reaches them too.
    people = list((shown.context or {}).get("mentions") or [])[: cards.MAX_MENTIONS]
    text = " ".join([*(cards.mention_tag(p) for p in people), job.text])
    await _send(conv, ctx, ctx.messenger.reply(conv.record, shown.activity_id, text, people))
    report.sends += 1


async def _digest(job: DeliveryJob, conv: _Conversation, ctx: Any, report: JobReport, later: list[DeliveryJob]) -> None:
    """Post a periodic workflow's digest (``extra``: its period ``key``, ``card`` and ``summary``)
    once per period and conversation: claimed with a conditional insert before the post. Refused
    for good, it goes to the job's fallback recipients with a note, or is recorded undeliverable."""
    key = str(job.extra.get("key", ""))
    if not await _wait_for_send(job, conv, ctx, later):
        return
    try:
        claim = await ctx.store.claim(
            Delivery(
                job.tenant_id,
                key,
                job.conversation_id,
                claimed_at=ctx.clock(),
                recipient=job.recipient,
                reason=job.reason,
            ),
            retention.DIGEST_CLAIM,
        )
    except ConcurrencyConflict:
        return  # this period's digest is here (or being posted) already
    try:
        activity_id = await _send(
            conv, ctx, ctx.messenger.post(conv.record, job.extra["card"], str(job.extra.get("summary", "")))
        )
    except (DeliveryError, ReconsentRequired) as exc:
        if isinstance(exc, DeliveryError) and not exc.permanent:
            if not exc.maybe_sent:  # one that may have landed keeps its claim: at most one per period
                await ctx.store.delete_delivery(job.tenant_id, key, job.conversation_id)
            raise
        await ctx.store.save_delivery(replace(claim, status="failed", failure=str(exc)[:2000]))
        await _digest_refused(job, conv, ctx, report, f"Teams refused the digest ({exc})")
        return
    await ctx.store.save_delivery(replace(claim, activity_id=activity_id, status="posted", rendered_version=0))
    report.sends += 1
    report.posted.append(job.conversation_id)


async def _digest_refused(job: DeliveryJob, conv: _Conversation, ctx: Any, report: JobReport, reason: str) -> None:
    label = job.recipient or conv.record.label
    log.warning("Cannot post the digest %s to %s: %s", job.extra.get("key"), label, reason)
    sent = await digest_elsewhere(ctx, job, label, reason)
    if sent:
        report.fallback.extend(j.conversation_id for j in sent)
    else:
        report.undeliverable.append(label)


async def digest_elsewhere(ctx: Any, job: DeliveryJob, label: str, reason: str) -> list[DeliveryJob]:
    """A digest that could not reach ``label``: queued for the first reachable of its fallback
    recipients (the jobs sent), or recorded as undeliverable with both reasons (none sent)."""
    jobs, reasons = await _digest_to_fallback(ctx, job, label, reason)
    if jobs:
        await ctx.jobs.send(jobs)
        return jobs
    await ctx.store.record_undeliverable(
        Undeliverable(
            job.tenant_id,
            str(job.extra.get("key", "")),
            str(job.extra.get("summary") or "digest"),
            label,
            reason,
            "; ".join(reasons) or "no fallback recipients were given",
            ctx.clock(),
        )
    )
    return []


async def _digest_to_fallback(
    ctx: Any, job: DeliveryJob, label: str, reason: str
) -> tuple[list[DeliveryJob], list[str]]:
    """Digest jobs for the first reachable of ``job.fallback`` (as the bot, with a note saying who
    could not be reached and why), or none, with the reasons."""
    from shared.services.recipients import Unreachable

    reasons: list[str] = []
    for raw in job.fallback:
        try:
            recipient = parse_recipient(raw, "fallback")
        except InvalidWorkflow as exc:
            reasons.append(str(exc))
            continue
        if recipient.kind == "responders":
            continue  # a digest covers many alerts: it has no single set of responders
        try:
            conversation = await ctx.resolver.resolve(job.tenant_id, recipient, "bot")
        except Unreachable as exc:
            reasons.append(f"{recipient.label()}: {exc}")
            continue
        note = f"Sent here because {label} could not be reached: {reason}"
        return [
            replace(
                job,
                conversation=conversation,
                recipient=recipient.label(),
                fallback=(),
                fallback_for=label,
                extra={**job.extra, "card": cards.with_fallback_note(job.extra["card"], note)},
                attempt=0,
                failures=0,
                not_before=None,
            )
        ], reasons
    return [], reasons


# ---------------------------------------------------------------------------- refusals


async def _refused(
    job: DeliveryJob, conv: _Conversation, ctx: Any, report: JobReport, reason: str, *, gone: bool, record: bool = True
) -> None:
    """Teams (or the delegated connection) refused the card for good: record it, forget a
    conversation that is gone, and send the card to the fallback recipients."""
    report.failed.append(job.conversation_id)
    log.warning(
        "Cannot deliver %s to %s: %s",
        job.alert.alert_id if job.alert else job.kind,
        job.conversation_id,
        reason,
        extra={
            "outcome": {
                "kind": "card",
                "result": "refused",
                "alertId": job.alert.alert_id if job.alert else None,
                "reason": reason,
                "conversationId": job.conversation_id,
                "conversation": conv.record.name or job.conversation_id,
            }
        },
    )
    if record and job.kind == CARD and job.alert is not None:
        current = await ctx.store.get_delivery(job.tenant_id, job.alert.key, job.conversation_id)
        if current is None or not current.activity_id:
            failed = Delivery(
                job.tenant_id,
                job.alert.key,
                job.conversation_id,
                status="failed",
                failure=reason[:2000],
                claimed_at=ctx.clock(),
                recipient=job.recipient,
                reason=job.reason,
                context=job.context,
                etag=current.etag if current else None,
            )
            with contextlib.suppress(ConcurrencyConflict):
                await ctx.store.save_delivery(failed)
    if gone:
        await _forget(conv, ctx)
    if job.kind != CARD or job.alert is None:
        return
    label = job.recipient or conv.record.name or job.conversation_id
    await send_to_fallback(job.alert, [(label, reason, job.fallback, job.context)], ctx, report, request=job.request)


async def _forget(conv: _Conversation, ctx: Any) -> None:
    """Teams says the bot can no longer post in the conversation: it is no longer one of the tenant's."""
    await ctx.store.remove_conversation(conv.record.tenant_id, conv.record.conversation_id)
    log.warning("Forgot conversation %s: Teams says the bot can no longer post there", conv.record.conversation_id)


async def send_to_fallback(
    state: AlertState,
    unreachable: list[tuple[str, str, tuple[dict[str, Any], ...], dict[str, Any] | None]],
    ctx: Any,
    report: Any,
    *,
    request: str = "",
) -> None:
    """Jobs for the fallback recipients of everyone who could not be reached, with a note
    saying who and why; the alert is recorded as undeliverable for anyone with no reachable
    fallback. Fallbacks are reached as the bot (it needs no user's token)."""
    jobs: dict[str, DeliveryJob] = {}
    for label, reason, fallback, context in unreachable:
        if not fallback:
            await _undeliverable(state, label, reason, "no fallback recipients were given", ctx, report)
            continue
        reasons: list[str] = []
        reached = False
        for raw in fallback:
            try:
                recipient = parse_recipient(raw, "fallback")
            except InvalidWorkflow as exc:
                reasons.append(str(exc))
                continue
            try:
                conversation = await ctx.resolver.resolve(state.tenant_id, recipient, "bot")
            except Exception as exc:
                from shared.services.recipients import Unreachable

                if not isinstance(exc, Unreachable):
                    raise
                reasons.append(f"{recipient.label()}: {exc}")
                continue
            reached = True
            note = f"Sent here because {label} could not be reached: {reason}"
            base = {k: v for k, v in (context or {}).items() if k != "note"}
            existing = jobs.get(conversation.conversation_id)
            if existing is not None:
                merged = dict(existing.context or {})
                merged["note"] = f"{merged.get('note', '')} {note}".strip()
                jobs[conversation.conversation_id] = replace(existing, context=merged)
            else:
                jobs[conversation.conversation_id] = DeliveryJob(
                    conversation,
                    CARD,
                    state,
                    recipient=recipient.label(),
                    reason=f"fallback for {label}: {reason}"[:2000],
                    context={**base, "note": note},
                    request=request or "fallback",
                )
        if not reached:
            await _undeliverable(
                state, label, reason, "; ".join(reasons) or "no fallback recipient could be reached", ctx, report
            )
    if jobs:
        report.fallback.extend(jobs)
        await ctx.jobs.send(list(jobs.values()))


async def _undeliverable(
    state: AlertState, label: str, reason: str, fallback_reason: str, ctx: Any, report: Any
) -> None:
    report.undeliverable.append(label)
    await ctx.store.record_undeliverable(
        Undeliverable(state.tenant_id, state.key, state.alert_id, label, reason, fallback_reason, ctx.clock())
    )
    log.error("Alert %s reached neither %s (%s) nor a fallback (%s)", state.alert_id, label, reason, fallback_reason)


# ---------------------------------------------------------------------------- storm summary


def _empty_summary(*, storm: int = 1, seq: int = 0) -> dict[str, Any]:
    """A summary with nothing counted. ``seq`` goes on from the previous storm's: a member
    recorded with a higher sequence than the saved summary's is one never counted."""
    return {
        "counts": {},
        "top": [],
        "folded": 0,
        "first": None,
        "last": None,
        "activityId": None,
        "renderedAt": None,
        "seq": seq,
        "rendered": -1,
        "storm": storm,
    }


def _storm_over(summary: dict[str, Any], now: datetime) -> bool:
    """Whether the summary's storm has ended: it has a card, and folded nothing for a while or
    began long ago. (A summary with no card yet goes on: its alerts are shown nowhere else.)"""
    if not summary.get("activityId") or not summary.get("last"):
        return False
    return (
        now - datetime.fromisoformat(summary["last"]) >= STORM_QUIET
        or now - datetime.fromisoformat(summary["first"] or summary["last"]) >= STORM_MAX_AGE
    )


def _next_storm(summary: dict[str, Any]) -> dict[str, Any]:
    """A new summary for a new storm; the old one is kept as ``ended`` until its card says so."""
    new = _empty_summary(storm=summary.get("storm", 1) + 1, seq=summary["seq"])
    new["ended"] = {
        key: summary.get(key) for key in ("counts", "top", "folded", "first", "last", "activityId", "storm")
    }
    new["sweepDue"] = summary.get("sweepDue")
    return new


def _entry(state: AlertState) -> dict[str, Any]:
    return {
        "key": state.key,
        "id": state.alert_id,
        "title": state.title[:200],
        "severity": state.severity,
        "status": state.status,
        "url": state.url,
        "created": state.created.isoformat() if state.created else None,
    }


def _count(summary: dict[str, Any], severity: str, status: str, delta: int) -> None:
    key = f"{status}:{severity}"
    summary["counts"][key] = max(summary["counts"].get(key, 0) + delta, 0)
    if not summary["counts"][key]:
        del summary["counts"][key]


def _place(summary: dict[str, Any], state: AlertState) -> None:
    """Keep the summary's named alerts: the most severe open ones, newest first among equals."""
    top = [e for e in summary["top"] if e["key"] != state.key]
    if state.status != "resolved":
        top.append(_entry(state))
    rank = {name: i for i, name in enumerate(cards.SEVERITY_STYLE)}
    top.sort(
        key=lambda e: (
            rank.get(e["severity"], 9),
            -(datetime.fromisoformat(e["created"]).timestamp() if e.get("created") else 0.0),
        )
    )
    summary["top"] = top[: cards.MAX_SUMMARY_ALERTS * 2]


LOOK_UP_CONCURRENCY = 50


async def _look_up(jobs: list[DeliveryJob], conv: _Conversation, ctx: Any) -> None:
    """Read, a bounded number at a time, what the store has of the alerts of the batch's card
    jobs that are not new, instead of two reads per job one after another while the
    conversation's session waits: a storm's batch delivered again is a hundred of them."""
    keys = list(
        dict.fromkeys(
            job.alert.key
            for job in jobs
            if job.kind == CARD
            and job.alert is not None
            and not (job.new and job.attempt == 0)
            and not job.extra.get("refused")
        )
    )
    if len(keys) < 2:
        return
    tenant_id, conversation_id = jobs[0].tenant_id, jobs[0].conversation_id

    async def read(call: Callable[[], Awaitable[T]]) -> T:
        # A read may simply be made again: one failed for now must not fail the batch, whose
        # hundred or so reads would otherwise make that likely (and the whole batch run again).
        return await tried_again(lambda _attempt: call(), retry_on=TransientError, retries=2, sleep=ctx.sleep)

    async def one(key: str) -> None:
        delivery = conv.deliveries_read[key] = await read(
            lambda: ctx.store.get_delivery(tenant_id, key, conversation_id)
        )
        if delivery is None or not delivery.activity_id:  # no card of its own: _card looks for a member
            conv.members_read[key] = await read(lambda: ctx.store.get_summary_member(tenant_id, conversation_id, key))

    for start in range(0, len(keys), LOOK_UP_CONCURRENCY):
        await asyncio.gather(*(one(key) for key in keys[start : start + LOOK_UP_CONCURRENCY]))


async def _read_delivery(job: DeliveryJob, key: str, conv: _Conversation, ctx: Any) -> Delivery | None:
    if key in conv.deliveries_read:
        return conv.deliveries_read.pop(key)
    delivery: Delivery | None = await ctx.store.get_delivery(job.tenant_id, key, job.conversation_id)
    return delivery


async def _read_member(job: DeliveryJob, key: str, conv: _Conversation, ctx: Any) -> dict[str, Any] | None:
    if key in conv.members_read:
        return conv.members_read.pop(key)
    member: dict[str, Any] | None = await ctx.store.get_summary_member(job.tenant_id, job.conversation_id, key)
    return member


def _late_in_a_storm(job: DeliveryJob, conv: _Conversation, now: datetime) -> bool:
    """A card put off to a slot comes back this late only behind a storm's other jobs in its
    conversation's session: its slot is long gone and the alerts after it are in the summary,
    so it is counted there too instead of posting a card late (and holding the session for it).
    A job put off because Teams failed it is not: it keeps its own card."""
    summary = conv.summary
    return (
        job.failures == 0
        and job.not_before is not None
        and (now - job.not_before).total_seconds() > FOLD_AFTER_SECONDS
        and summary is not None
        and bool(summary.get("activityId"))
        and not _storm_over(summary, now)
    )


def _storm_going_on(conv: _Conversation, now: datetime) -> bool:
    """The conversation's summary folded an alert within STORM_GOING_ON (its storm not over)."""
    summary = conv.summary
    if summary is None or not summary.get("last") or _storm_over(summary, now):
        return False
    return now - datetime.fromisoformat(summary["last"]) < STORM_GOING_ON


def _fold(job: DeliveryJob, state: AlertState, conv: _Conversation, ctx: Any, report: JobReport) -> None:
    """Count a new alert in the conversation's summary instead of posting its own card. It is
    recorded as a member of the summary (the conversation's partition, written in batches at
    the end of the batch of jobs) and as a ``folded`` delivery (the alert's partition): later
    changes of the alert, from its source or from Teams, come here through it and move the
    counts. The `alerts` command lists it like any alert. The first fold after a storm has
    ended begins a new summary."""
    summary = conv.summary
    if summary is not None and _storm_over(summary, ctx.clock()):
        summary = _next_storm(summary)
    summary = summary or _empty_summary()
    now = ctx.clock().isoformat()
    _count(summary, state.severity, state.status, +1)
    _place(summary, state)
    summary["folded"] += 1
    summary["seq"] += 1
    summary["first"] = summary["first"] or now
    summary["last"] = now
    conv.summary = summary
    conv.summary_dirty = True
    conv.folds[state.key] = {
        "alertKey": state.key,
        "severity": state.severity,
        "status": state.status,
        "revision": state.revision,
        "seq": summary["seq"],
        "storm": summary.get("storm", 1),
        "recipient": job.recipient,
        "fallback": list(job.fallback),
    }
    conv.fold_marks[state.key] = Delivery(
        job.tenant_id,
        state.key,
        job.conversation_id,
        status="folded",
        rendered_version=state.revision,
        recipient=job.recipient,
        reason=job.reason,
        context=job.context,
        conversation=conversation_to_json(job.conversation),
    )
    report.folded.append(state.key)


async def _write_folds(conv: _Conversation, ctx: Any, report: JobReport) -> None:
    """Record this batch's folds as the summary's members. The first batch of a summary has the
    members' sweep scheduled (one schedule row for the conversation); later ones do not, until
    that row is due (it then reschedules itself while members remain)."""
    if conv.folds:
        now = ctx.clock()
        summary = conv.summary if conv.summary is not None else {}
        due = summary.get("sweepDue")
        schedule = due is None or datetime.fromisoformat(due) <= now
        conv.recorded.extend(conv.folds)
        marks = [conv.fold_marks[key] for key in conv.folds if key in conv.fold_marks]
        done = await asyncio.gather(
            ctx.store.save_summary_members(
                conv.record.tenant_id, conv.record.conversation_id, list(conv.folds.values()), first=schedule
            ),
            ctx.store.mark_folded(marks),
            return_exceptions=True,
        )
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome
        if schedule and conv.summary is not None:
            # The sweep runs after the retention of resolved alerts, which is never shorter than this.
            conv.summary["sweepDue"] = (now + timedelta(days=retention.MIN_RESOLVED_ALERT_DAYS)).isoformat()
        conv.folds = {}
        conv.fold_marks = {}


async def _member_change(conv: _Conversation, member: dict[str, Any], state: AlertState, ctx: Any) -> None:
    """A change of an alert counted in the summary: move its count, keep the newest revision."""
    if member["revision"] >= state.revision:
        return
    summary = conv.summary or _empty_summary()
    _count(summary, member["severity"], member["status"], -1)
    _count(summary, state.severity, state.status, +1)
    _place(summary, state)
    summary["seq"] += 1
    conv.summary = summary
    conv.summary_dirty = True
    changed = {**member, "severity": state.severity, "status": state.status, "revision": state.revision}
    if state.key in conv.folds:
        conv.folds[state.key] = changed
    else:
        await ctx.store.save_summary_members(conv.record.tenant_id, conv.record.conversation_id, [changed], first=False)


def _summary_request(summary: dict[str, Any], now: datetime) -> str:
    """Each chain of summary follow-ups gets its own message ids: a follow-up is never taken
    for a duplicate of an earlier chain's (a refresh is idempotent, so extra ones are harmless)."""
    return f"summary-{summary['seq']}-{int(now.timestamp() * 1000)}"


async def _refresh_summary(
    conv: _Conversation, ctx: Any, report: JobReport, later: list[DeliveryJob], trigger: DeliveryJob | None = None
) -> None:
    """Post or update the summary card when the window allows, else schedule its update; a
    storm that has ended first has its card say so. A follow-up continues ``trigger`` (the
    summary job being run), so each reschedule is a new message rather than a duplicate of one
    already handled."""
    summary = conv.summary
    if summary is None:
        return
    now = ctx.clock()
    due = now
    if summary.get("renderedAt"):
        due = max(due, datetime.fromisoformat(summary["renderedAt"]) + SUMMARY_MIN_INTERVAL)
    at = conv.window.next_send(max(now, due).timestamp(), conv.limits)
    if at - now.timestamp() > MAX_WAIT_SECONDS:
        # One follow-up per state of the summary: a duplicate of it is dropped, a newer one is not.
        later.append(
            DeliveryJob(
                conv.record,
                SUMMARY,
                None,
                request=_summary_request(summary, now),
                not_before=datetime.fromtimestamp(at, UTC),
            )
        )
        return
    job = trigger or DeliveryJob(conv.record, SUMMARY, request=_summary_request(summary, now))
    ended = summary.get("ended")
    if ended:
        if not await _wait_for_send(job, conv, ctx, later):
            return
        if await _send_summary(conv, ctx, report, later, job, ended, ended=True) == "later":
            return
        summary.pop("ended", None)
    if summary["seq"] == summary.get("rendered") and summary.get("activityId"):
        return
    if not await _wait_for_send(job, conv, ctx, later):
        return
    if await _send_summary(conv, ctx, report, later, job, summary) == "sent":
        summary["renderedAt"] = ctx.clock().isoformat()
        summary["rendered"] = summary["seq"]
        conv.summary_dirty = False


async def _send_summary(
    conv: _Conversation,
    ctx: Any,
    report: JobReport,
    later: list[DeliveryJob],
    job: DeliveryJob,
    summary: dict[str, Any],
    *,
    ended: bool = False,
) -> str:
    """Post or update one summary card (its send slot taken): "sent"; "later" when put off
    after a failure for now; "refused" when refused for good (its alerts then go where a
    refused card goes, and the next fold begins a new summary)."""
    card = cards.summary_card(summary, ended=ended)
    open_total = sum(n for key, n in summary["counts"].items() if not key.startswith("resolved:"))
    text = (
        f"Alert storm ended: {int(summary.get('folded') or 0)} alerts"
        if ended
        else (f"Alert storm: {open_total} alerts open in one summary")
    )
    try:
        if summary.get("activityId"):
            await _send(conv, ctx, ctx.messenger.update(conv.record, summary["activityId"], card, text))
        else:
            summary["activityId"] = await _send(conv, ctx, ctx.messenger.post(conv.record, card, text))
    except DeliveryError as exc:
        if not exc.permanent:
            if _reschedule(job, conv, ctx, later, exc):
                return "later"
            await _summary_refused(conv, ctx, later, summary, f"Teams kept failing the summary card ({exc})")
            return "refused"
        await _summary_refused(conv, ctx, later, summary, f"Teams refused the storm summary card ({exc})")
        if exc.conversation_gone:
            await _forget(conv, ctx)
        return "refused"
    report.sends += 1
    return "sent"


async def _summary_refused(
    conv: _Conversation, ctx: Any, later: list[DeliveryJob], summary: dict[str, Any], reason: str
) -> None:
    """A summary card refused for good: each alert it counts that is not resolved goes where a
    refused card goes (a job that records the failure and sends the card to the alert's
    fallback recipients, or records it as undeliverable), and the current summary starts over,
    so the next storm posts a new card."""
    storm = summary.get("storm", 1)
    members = await ctx.store.list_summary_members(conv.record.tenant_id, conv.record.conversation_id, storm)
    log.error(
        "The storm summary in %s was refused: %s; its %d open alerts go to their fallback recipients",
        conv.record.label,
        reason,
        sum(1 for m in members if m["status"] != "resolved"),
    )
    later.extend(
        DeliveryJob(
            conv.record,
            CARD,
            None,
            recipient=member["recipient"],
            fallback=tuple(member["fallback"]),
            extra={"alertKey": member["alertKey"], "refused": reason[:2000]},
            request=f"summary-refused-{storm}",
        )
        for member in members
        if member["status"] != "resolved"
    )
    if conv.summary is not None and conv.summary.get("storm", 1) == storm:
        conv.summary = _empty_summary(storm=storm + 1, seq=conv.summary["seq"])
        conv.summary_dirty = False
