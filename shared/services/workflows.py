"""Managing a tenant's workflows: the admin routes' operations, the dry run, and the
``subscribe`` / ``unsubscribe`` / ``subscriptions`` commands in Teams.

A workflow change that asks for the alerts already open (trigger ``new_updated_existing``)
queues a ``teams.workflow.existing`` command on the alert-events queue: the queue trigger
delivers them, paced and retried like any event, and the admin request returns at once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared.domain import workflows as routing
from shared.domain.alerts import apply_event
from shared.domain.commands import existing_command
from shared.domain.events import SEVERITIES, alert_key
from shared.domain.inbound import parse_events
from shared.domain.model import ConversationRecord
from shared.domain.workflows import InvalidWorkflow, LabelSelector, Match, Recipient, Workflow, parse_match
from shared.ports import ActionPublisher, ConcurrencyConflict, StateStore

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class WorkflowLimit(Exception):
    """The tenant already has the most workflows allowed."""


@dataclass
class Saved:
    workflow: Workflow
    created: bool
    changed: bool
    existing_queued: bool = False


async def put_workflow(
    store: StateStore,
    tenant_id: str,
    workflow: Workflow,
    *,
    updated_by: str = "",
    commands: ActionPublisher | None = None,
    clock: Callable[[], datetime] = _now,
) -> Saved:
    """Create or replace a workflow. An unchanged definition changes nothing (no new revision,
    no new delivery of open alerts); a changed one gets the next revision."""
    for _ in range(5):
        current = await store.get_workflow(tenant_id, workflow.id)
        if current is None and len(await store.list_workflows(tenant_id)) >= routing.MAX_WORKFLOWS_PER_TENANT:
            raise WorkflowLimit(
                f"tenant {tenant_id} has {routing.MAX_WORKFLOWS_PER_TENANT} workflows, the most allowed; "
                "delete one first"
            )
        if current is not None and routing.same_definition(current, workflow):
            return Saved(current, created=False, changed=False)
        new = replace(
            workflow,
            tenant_id=tenant_id,
            revision=(current.revision + 1) if current else 1,
            updated=clock(),
            updated_by=updated_by[:200],
            etag=current.etag if current else None,
        )
        try:
            saved = await store.save_workflow(new)
        except ConcurrencyConflict:
            continue
        result = Saved(saved, created=current is None, changed=True)
        if saved.enabled and saved.trigger == "new_updated_existing":
            result.existing_queued = await queue_existing(saved, commands)
        log.info(
            "Workflow %s (%s) of tenant %s %s by %s, revision %d",
            saved.id,
            saved.name,
            tenant_id,
            "created" if result.created else "changed",
            updated_by or "-",
            saved.revision,
        )
        return result
    raise ConcurrencyConflict(f"workflow {workflow.id} kept changing")


async def save_workflow(
    store: StateStore,
    resolver: Any,  # shared.services.recipients.RecipientResolver
    tenant_id: str,
    workflow_id: str,
    body: Any,
    *,
    updated_by: str,
    commands: ActionPublisher | None,
) -> Saved:
    """A workflow as an admin sends it (the JSON route's body, or the console's form made into
    one): parsed, its channel and chat recipients checked to be the tenant's, and saved.
    InvalidWorkflow names the field at fault; TransientError when a recipient cannot be checked
    now; WorkflowLimit when the tenant has the most workflows allowed."""
    workflow = routing.parse_workflow(body, tenant_id, workflow_id)
    await check_recipients(resolver, tenant_id, workflow)
    return await put_workflow(store, tenant_id, workflow, updated_by=updated_by, commands=commands)


async def check_recipients(resolver: Any, tenant_id: str, workflow: Workflow) -> None:
    """Every channel or chat recipient is the tenant's (checked when saved, and again when delivered)."""
    await check_recipients_of(
        resolver,
        tenant_id,
        [(f"recipients[{i}]", r, workflow.delivery) for i, r in enumerate(workflow.recipients)]
        + [(f"fallbackRecipients[{i}]", r, "bot") for i, r in enumerate(workflow.fallback_recipients)],
    )


async def check_recipients_of(resolver: Any, tenant_id: str, targets: list[tuple[str, Recipient, str]]) -> None:
    """InvalidWorkflow naming the first (path, recipient, delivery) that is not the tenant's;
    TransientError when one cannot be checked now."""
    from shared.ports import TransientError
    from shared.services.recipients import Unreachable

    for path, recipient, delivery in targets:
        try:
            await resolver.check_belongs(tenant_id, recipient, delivery)
        except Unreachable as exc:
            raise InvalidWorkflow(path, str(exc)) from None
        except TransientError as exc:
            raise TransientError(f"{path} cannot be checked now: {exc}") from None


async def queue_existing(workflow: Workflow, commands: ActionPublisher | None) -> bool:
    """Ask the queue trigger to deliver the open alerts this workflow matches."""
    if commands is None:
        log.warning(
            (
                "No queue to deliver the open alerts of workflow %s: set "
                "ServiceBusConnection__fullyQualifiedNamespace (or LOCAL_QUEUE_HOST_URL locally)"
            ),
            workflow.id,
        )
        return False
    event = existing_command(workflow.tenant_id, workflow.id, workflow.revision)
    message_id = hashlib.sha256(f"{workflow.tenant_id}\n{event['id']}".encode()).hexdigest()[:32]
    await commands.publish(message_id, event)
    return True


async def dry_run(store: StateStore, tenant_id: str, body: Any, resolver: Any = None) -> dict[str, Any]:
    """Which recipients an event would reach, through which workflow, and why the other
    workflows did not apply. A channel or chat target that cannot be reached says why
    (``unreachable``: the bot is not there, or it is not the tenant's). Nothing is stored or sent."""
    events = parse_events(body)
    workflows = await store.list_workflows(tenant_id)
    results = []
    now = _now()
    for event in events:
        current = await store.get_alert(tenant_id, alert_key(event.source, event.data.id))
        state = apply_event(current, event, tenant_id, now)
        if state is None:
            assert current is not None
            results.append(
                {
                    "eventId": event.event_id,
                    "alertId": event.data.id,
                    "change": None,
                    "detail": (
                        f"version {event.data.version} is not newer than {current.version}: only the cards already "
                        "delivered would be updated"
                    ),
                }
            )
            continue
        change = "new" if current is None else "updated"
        plan = routing.plan(state, change, workflows)
        described = plan.to_json()
        if resolver is not None:
            from shared.services.recipients import Unreachable

            for target, shown in zip(plan.targets, described["targets"], strict=True):
                try:
                    await resolver.check_belongs(tenant_id, target.recipient, target.delivery)
                except Unreachable as exc:
                    shown["unreachable"] = str(exc)
        results.append({"eventId": event.event_id, "alertId": event.data.id, "change": change, **described})
    return {"workflows": len(workflows), "events": results}


# ---------------------------------------------------------------------------- from Teams


def parse_subscription(text: str) -> Match:
    """``severity>=high``, ``severity=critical``, ``source=prometheus``, ``kind=issue``,
    ``label env=prod``, ``title~disk``; raises InvalidWorkflow naming the word it cannot read."""
    words = text.split()
    min_severity: str | None = None
    severities: list[str] = []
    sources: list[str] = []
    kinds: list[str] = []
    labels: list[LabelSelector] = []
    title: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        low = word.lower()
        if low == "label":
            if i + 1 >= len(words) or "=" not in words[i + 1]:
                raise InvalidWorkflow("label", "give the label as label key=value, e.g. label env=prod")
            key, _, value = words[i + 1].partition("=")
            labels.append(LabelSelector(key, "equals", (value,)) if value else LabelSelector(key, "exists"))
            i += 2
            continue
        if low.startswith("severity>="):
            value = low.removeprefix("severity>=")
            if value not in SEVERITIES:
                raise InvalidWorkflow(word, f"severity must be one of {', '.join(SEVERITIES)}")
            min_severity = value
        elif low.startswith("severity="):
            value = low.removeprefix("severity=")
            if value not in SEVERITIES:
                raise InvalidWorkflow(word, f"severity must be one of {', '.join(SEVERITIES)}")
            severities.append(value)
        elif low.startswith("source="):
            sources.append(word.partition("=")[2])
        elif low.startswith("kind="):
            value = low.removeprefix("kind=")
            if value not in ("alert", "issue"):
                raise InvalidWorkflow(word, "kind must be alert or issue")
            kinds.append(value)
        elif low.startswith("title~"):
            title = word.partition("~")[2]
        else:
            raise InvalidWorkflow(
                word,
                (
                    "is not a filter I know: use severity>=high, severity=critical, source=NAME, kind=issue, label "
                    "KEY=VALUE or title~WORD"
                ),
            )
        i += 1
    match = Match(
        kinds=tuple(kinds),
        min_severity=min_severity,
        severities=tuple(severities),
        sources=tuple(s for s in sources if s),
        labels=tuple(labels),
        title_contains=title,
    )
    # The limits every workflow keeps (selectors, lengths), checked as the route checks them.
    return parse_match(match.to_json())


def conversation_recipient(conversation: ConversationRecord) -> Recipient:
    name = conversation.name or conversation.conversation_id
    if conversation.conversation_type == "channel":
        return Recipient(
            "channel", team_id=conversation.team_id or "", channel_id=conversation.conversation_id, name=name
        )
    return Recipient("chat", chat_id=conversation.conversation_id, name=name)


def subscription_mentions(text: str, subscriber_id: str) -> tuple[str, tuple[str, ...]]:
    """``mention=me``, ``mention=responders`` and ``mention=<e-mail or UPN>`` taken out of a
    ``subscribe`` command: the rest of it, and whom the subscription's cards mention."""
    rest: list[str] = []
    people: list[str] = []
    for word in text.split():
        if not word.lower().startswith("mention="):
            rest.append(word)
            continue
        who = word.partition("=")[2].strip()
        if not who:
            raise InvalidWorkflow(
                word, "say whom to mention: mention=me, mention=responders or mention=someone@contoso.com"
            )
        if who.lower() == "me":
            if not subscriber_id:
                raise InvalidWorkflow(word, "Teams did not say who you are, so you cannot be mentioned")
            who = subscriber_id
        people.append(who)
    if len(people) > routing.MAX_MENTIONS:
        raise InvalidWorkflow("mention", f"at most {routing.MAX_MENTIONS} people can be mentioned")
    return " ".join(rest), tuple(dict.fromkeys(people))


def subscription(
    conversation: ConversationRecord,
    match: Match,
    subscriber_id: str,
    subscriber_name: str,
    mention: tuple[str, ...] = (),
) -> Workflow:
    """The workflow ``subscribe`` makes: this conversation gets the matching alerts as they
    are created and change; the subscriber gets them 1:1 when the conversation cannot be reached."""
    where = (
        "this chat"
        if conversation.conversation_type == "personal"
        else (conversation.name or conversation.conversation_type)
    )
    fallback = (
        (Recipient("person", user=subscriber_id, name=subscriber_name),)
        if subscriber_id
        else (conversation_recipient(conversation),)
    )
    return Workflow(
        tenant_id=conversation.tenant_id,
        id=routing.subscription_id(conversation.conversation_id),
        name=f"Subscription: {where}"[: routing.MAX_NAME_CHARS],
        recipients=(replace(conversation_recipient(conversation), mention=mention),),
        fallback_recipients=fallback,
        match=match,
        trigger="new_or_updated",
    )


def describe(workflow: Workflow) -> str:
    trigger = {
        "updated": "when they change",
        "new_or_updated": "when new or changed",
        "new_updated_existing": "new, changed and already open",
        "periodic": f"as a digest every {workflow.interval_minutes} min",
    }[workflow.trigger]
    state = "" if workflow.enabled else " (disabled)"
    return f"{workflow.name}{state}: {workflow.match.describe()}, {trigger}"
