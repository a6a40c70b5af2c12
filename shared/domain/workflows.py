"""Workflows: which alerts reach whom, and why. Pure Python.

A workflow belongs to one tenant. It has a **match** (which alerts), a **trigger** (on which
changes), **recipients** and **fallback recipients** (who gets the card, and who gets it when a
recipient cannot be reached), an optional **comment** shown on the card, and the delivery
method (as the bot, or as the tenant's connected user).

:func:`plan` turns one alert change and the tenant's workflows into a :class:`Plan`: which
recipient gets the card, with which comments, through which workflows, and why the other
workflows did not apply. It never talks to Teams; delivery executes the plan.

The JSON shape is published as ``schemas/workflow.schema.json``; :func:`parse_workflow`
enforces the same rules and names the field that is wrong.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.domain.events import KINDS, SEVERITIES
from shared.domain.model import AlertState

# change → the triggers it fires. "new": the alert's first event; "updated": every later one;
# "existing": the workflow was created or changed and the alert was already open.
TRIGGERS = ("updated", "new_or_updated", "new_updated_existing", "periodic")
FIRES_ON: dict[str, tuple[str, ...]] = {
    "new": ("new_or_updated", "new_updated_existing"),
    "updated": ("updated", "new_or_updated", "new_updated_existing"),
    "existing": ("new_updated_existing",),
}
RECIPIENT_KINDS = ("channel", "chat", "person", "group", "responders")
DELIVERY_METHODS = ("bot", "delegated")
LABEL_OPS = ("equals", "one_of", "regex", "exists")

# Bounds on one workflow: a stored definition stays well inside Table Storage's 64 KiB string
# property, and one alert's fan-out stays bounded.
MAX_WORKFLOWS_PER_TENANT = 200
MAX_RECIPIENTS = 50
MAX_MENTIONS = 20  # people one recipient's cards mention (shared.cards.MAX_MENTIONS)
MAX_PERSON_CHARS = 320
RESPONDERS = "responders"
MAX_GROUP_MEMBERS = 249  # a group chat holds 250 members, the app's own seat included (Teams limits)
MAX_COMMENT_CHARS = 1_000
MAX_NAME_CHARS = 120
MAX_ID_CHARS = 64
MAX_SELECTORS = 20
MAX_REGEX_CHARS = 200
MIN_PERIODIC_MINUTES = 15
MAX_PERIODIC_MINUTES = 7 * 24 * 60
DEFAULT_PERIODIC_MINUTES = 24 * 60
# A Microsoft Entra object id, as a person recipient may be named instead of by e-mail.
OBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
WORKFLOW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

SEVERITY_RANK = {name: rank for rank, name in enumerate(reversed(SEVERITIES))}  # info 0 … critical 4


class InvalidWorkflow(ValueError):
    """A workflow definition breaks a rule; ``field`` is the JSON path of the culprit."""

    def __init__(self, field_path: str, problem: str) -> None:
        self.field = field_path
        self.problem = problem
        super().__init__(f"{field_path}: {problem}" if field_path else problem)


@dataclass(frozen=True)
class Recipient:
    """Who gets a card: a team channel, an existing chat, a person (1:1 chat), a group of people
    (one group chat, created once), or the alert's own ``responders`` (each as a person)."""

    kind: str
    team_id: str | None = None
    channel_id: str | None = None
    chat_id: str | None = None
    user: str | None = None  # person: Microsoft Entra object id, UPN or e-mail
    users: tuple[str, ...] = ()  # group
    name: str = ""  # how people call it (shown in notes); not part of the identity
    # People its cards @mention (Teams notifies them): "responders" (the alert's) or a person
    # (Microsoft Entra object id, UPN or e-mail). Not part of the identity either.
    mention: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Identity of the recipient: two workflows naming the same one reach it once."""
        if self.kind == "channel":
            return f"channel:{self.channel_id}"
        if self.kind == "chat":
            return f"chat:{self.chat_id}"
        if self.kind == "person":
            return f"person:{(self.user or '').lower()}"
        if self.kind == "group":
            return "group:" + ",".join(sorted({u.lower() for u in self.users}))
        return "responders"

    def label(self) -> str:
        if self.name:
            return self.name
        if self.kind == "channel":
            return f"channel {self.channel_id}"
        if self.kind == "chat":
            return f"chat {self.chat_id}"
        if self.kind == "person":
            if self.user and OBJECT_ID.match(self.user):
                return f"the person with Microsoft Entra object id {self.user}"  # no name to show
            return self.user or "a person"
        if self.kind == "group":
            return (
                "group of "
                + ", ".join(self.users[:5])
                + (f" and {len(self.users) - 5} more" if len(self.users) > 5 else "")
            )
        return "the alert's responders"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for name, value in (
            ("teamId", self.team_id),
            ("channelId", self.channel_id),
            ("chatId", self.chat_id),
            ("user", self.user),
        ):
            if value:
                out[name] = value
        if self.kind == "group":
            out["users"] = list(self.users)
        if self.name:
            out["name"] = self.name
        if self.mention:
            out["mention"] = list(self.mention)
        return out


@functools.lru_cache(maxsize=1024)
def linear_pattern(pattern: str) -> Any:
    """A label pattern compiled by RE2, whose matching takes time linear in the value's length
    whatever the pattern (no backtracking: ``(a+)+$`` costs what ``a+`` does). RE2 refuses what
    it cannot match that way (back-references, look-around): ValueError with the reason."""
    import re2  # google-re2; imported on first use (cold start)

    options = re2.Options()
    options.log_errors = False  # the reason is raised, not written to stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"is not a regular expression the connector can match in linear time ({reason}); "
            "back-references and look-around are not supported"
        ) from None


@dataclass(frozen=True)
class LabelSelector:
    key: str
    op: str  # equals | one_of | regex | exists
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.key not in labels:
            return False
        value = labels[self.key]
        if self.op == "exists":
            return True
        if self.op == "equals":
            return value == self.values[0]
        if self.op == "one_of":
            return value in self.values
        return linear_pattern(self.values[0]).fullmatch(value) is not None

    def describe(self) -> str:
        if self.op == "exists":
            return f"label {self.key} exists"
        if self.op == "equals":
            return f"label {self.key}={self.values[0]}"
        if self.op == "one_of":
            return f"label {self.key} in ({', '.join(self.values)})"
        return f"label {self.key}~/{self.values[0]}/"


@dataclass(frozen=True)
class Match:
    """Which alerts a workflow takes. Every condition given must hold; none given: every alert."""

    kinds: tuple[str, ...] = ()
    min_severity: str | None = None
    severities: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    labels: tuple[LabelSelector, ...] = ()
    title_contains: str | None = None

    def why_not(self, alert: AlertState) -> str | None:
        """None when the alert matches, else the first condition it fails, in words."""
        if self.kinds and alert.kind not in self.kinds:
            return f"kind is {alert.kind}, not {' or '.join(self.kinds)}"
        if self.min_severity and SEVERITY_RANK.get(alert.severity, 0) < SEVERITY_RANK[self.min_severity]:
            return f"severity {alert.severity} is below {self.min_severity}"
        if self.severities and alert.severity not in self.severities:
            return f"severity {alert.severity} is not one of {', '.join(self.severities)}"
        if self.sources and not {alert.source.lower(), alert.event_source.lower()} & {s.lower() for s in self.sources}:
            return f"source {alert.source or alert.event_source} is not one of {', '.join(self.sources)}"
        for selector in self.labels:
            if not selector.matches(alert.labels):
                return f"{selector.describe()} does not hold"
        if self.title_contains and self.title_contains.lower() not in alert.title.lower():
            return f"the title does not contain {self.title_contains!r}"
        return None

    def describe(self) -> str:
        parts = []
        if self.kinds:
            parts.append("kind " + " or ".join(self.kinds))
        if self.min_severity:
            parts.append(f"severity>={self.min_severity}")
        if self.severities:
            parts.append("severity in (" + ", ".join(self.severities) + ")")
        if self.sources:
            parts.append("source " + " or ".join(self.sources))
        parts.extend(s.describe() for s in self.labels)
        if self.title_contains:
            parts.append(f"title contains {self.title_contains!r}")
        return ", ".join(parts) or "every alert"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.kinds:
            out["kinds"] = list(self.kinds)
        if self.min_severity:
            out["minSeverity"] = self.min_severity
        if self.severities:
            out["severities"] = list(self.severities)
        if self.sources:
            out["sources"] = list(self.sources)
        if self.labels:
            out["labels"] = [
                {
                    "key": s.key,
                    "op": s.op,
                    **({"value": s.values[0]} if s.op in ("equals", "regex") else {}),
                    **({"values": list(s.values)} if s.op == "one_of" else {}),
                }
                for s in self.labels
            ]
        if self.title_contains:
            out["titleContains"] = self.title_contains
        return out


@dataclass(frozen=True)
class Workflow:
    tenant_id: str
    id: str
    name: str
    recipients: tuple[Recipient, ...]
    fallback_recipients: tuple[Recipient, ...]
    match: Match = field(default_factory=Match)
    trigger: str = "new_or_updated"
    interval_minutes: int | None = None  # periodic only
    comment: str = ""
    delivery: str = "bot"
    enabled: bool = True
    revision: int = 1  # +1 on every change (an "existing" run belongs to one revision)
    updated: datetime | None = None
    updated_by: str = ""
    etag: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "enabled": self.enabled,
            "match": self.match.to_json(),
            "trigger": self.trigger,
            "recipients": [r.to_json() for r in self.recipients],
            "fallbackRecipients": [r.to_json() for r in self.fallback_recipients],
            "delivery": self.delivery,
        }
        if self.trigger == "periodic":
            out["intervalMinutes"] = self.interval_minutes or DEFAULT_PERIODIC_MINUTES
        if self.comment:
            out["comment"] = self.comment
        return out

    def public(self) -> dict[str, Any]:
        """The definition plus what the connector keeps about it (for the admin routes)."""
        return {
            **self.to_json(),
            "revision": self.revision,
            "updated": self.updated.isoformat() if self.updated else None,
            "updatedBy": self.updated_by,
        }

    def reaches(self, conversation_id: str) -> bool:
        return any(conversation_id in (r.channel_id, r.chat_id) for r in self.recipients)


# ---------------------------------------------------------------------------- parsing


def _str(obj: dict[str, Any], key: str, path: str, *, required: bool = False, max_chars: int = 1_000) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise InvalidWorkflow(path, "is required")
        return None
    if not isinstance(value, str):
        raise InvalidWorkflow(path, f"must be a string, not {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise InvalidWorkflow(path, "must not be empty")
    if len(value) > max_chars:
        raise InvalidWorkflow(path, f"is longer than {max_chars} characters")
    return value or None


def _str_list(
    obj: dict[str, Any], key: str, path: str, *, choices: tuple[str, ...] | None = None, max_items: int = 50
) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidWorkflow(path, "must be a list of non-empty strings")
    if len(value) > max_items:
        raise InvalidWorkflow(path, f"has more than {max_items} entries")
    items = tuple(v.strip() for v in value)
    if choices is not None:
        for i, item in enumerate(items):
            if item.lower() not in choices:
                raise InvalidWorkflow(f"{path}[{i}]", f"must be one of {', '.join(choices)}, not {item!r}")
        items = tuple(i.lower() for i in items)
    return items


def _choice(obj: dict[str, Any], key: str, path: str, choices: tuple[str, ...], default: str | None) -> str | None:
    value = _str(obj, key, path)
    if value is None:
        return default
    if value.lower() not in choices:
        raise InvalidWorkflow(path, f"must be one of {', '.join(choices)}, not {value!r}")
    return value.lower()


def _known_fields(obj: dict[str, Any], path: str, allowed: tuple[str, ...]) -> None:
    for name in obj:
        if name not in allowed:
            where = f"{path}.{name}" if path else name
            raise InvalidWorkflow(where, f"is not a workflow field (allowed here: {', '.join(allowed)})")


def parse_recipient(obj: Any, path: str) -> Recipient:
    if not isinstance(obj, dict):
        raise InvalidWorkflow(path, "must be an object with a kind")
    kind = _choice(obj, "kind", f"{path}.kind", RECIPIENT_KINDS, None)
    if kind is None:
        raise InvalidWorkflow(f"{path}.kind", f"is required (one of {', '.join(RECIPIENT_KINDS)})")
    allowed = {
        "channel": ("teamId", "channelId"),
        "chat": ("chatId",),
        "person": ("user",),
        "group": ("users",),
        "responders": (),
    }[kind]
    _known_fields(obj, path, ("kind", "name", "mention", *allowed))
    name = _str(obj, "name", f"{path}.name", max_chars=MAX_NAME_CHARS) or ""
    return replace(_recipient(obj, path, kind, name), mention=_mentions(obj, f"{path}.mention"))


def _mentions(obj: dict[str, Any], path: str) -> tuple[str, ...]:
    """Whom a recipient's cards mention: "responders" or people, each once."""
    items = _str_list(obj, "mention", path, max_items=MAX_MENTIONS)
    for i, item in enumerate(items):
        if len(item) > MAX_PERSON_CHARS:
            raise InvalidWorkflow(f"{path}[{i}]", f"is longer than {MAX_PERSON_CHARS} characters")
    first: dict[str, str] = {}
    for item in items:
        first.setdefault(item.lower(), RESPONDERS if item.lower() == RESPONDERS else item)
    return tuple(first.values())


def _recipient(obj: dict[str, Any], path: str, kind: str, name: str) -> Recipient:
    if kind == "channel":
        return Recipient(
            "channel",
            team_id=_str(obj, "teamId", f"{path}.teamId", required=True, max_chars=200),
            channel_id=_str(obj, "channelId", f"{path}.channelId", required=True, max_chars=200),
            name=name,
        )
    if kind == "chat":
        return Recipient("chat", chat_id=_str(obj, "chatId", f"{path}.chatId", required=True, max_chars=200), name=name)
    if kind == "person":
        return Recipient(
            "person", user=_str(obj, "user", f"{path}.user", required=True, max_chars=MAX_PERSON_CHARS), name=name
        )
    if kind == "group":
        # One seat per person, whatever the case the workflow wrote them in.
        first: dict[str, str] = {}
        for user in _str_list(obj, "users", f"{path}.users", max_items=MAX_GROUP_MEMBERS):
            first.setdefault(user.lower(), user)
        users = tuple(first.values())
        if len(users) < 2:
            raise InvalidWorkflow(
                f"{path}.users", "must name at least 2 different people (one person is a person recipient)"
            )
        return Recipient("group", users=users, name=name)
    return Recipient("responders", name=name)


def _recipients(obj: dict[str, Any], key: str, path: str) -> tuple[Recipient, ...]:
    value = obj.get(key)
    if value is None:
        raise InvalidWorkflow(path, "is required (a list of recipients)")
    if not isinstance(value, list):
        raise InvalidWorkflow(path, "must be a list of recipients")
    if not value:
        raise InvalidWorkflow(path, "must name at least one recipient")
    if len(value) > MAX_RECIPIENTS:
        raise InvalidWorkflow(path, f"has more than {MAX_RECIPIENTS} recipients")
    return tuple(parse_recipient(item, f"{path}[{i}]") for i, item in enumerate(value))


def _label_selector(obj: Any, path: str) -> LabelSelector:
    if not isinstance(obj, dict):
        raise InvalidWorkflow(path, "must be an object with key and op")
    _known_fields(obj, path, ("key", "op", "value", "values"))
    key = _str(obj, "key", f"{path}.key", required=True, max_chars=200)
    assert key is not None
    op = _choice(obj, "op", f"{path}.op", LABEL_OPS, "equals")
    assert op is not None
    if op == "exists":
        return LabelSelector(key, op)
    if op == "one_of":
        values = _str_list(obj, "values", f"{path}.values")
        if not values:
            raise InvalidWorkflow(f"{path}.values", "is required for op one_of (a list of values)")
        return LabelSelector(key, op, values)
    value = obj.get("value")
    if not isinstance(value, str):
        raise InvalidWorkflow(f"{path}.value", f"is required for op {op} (a string)")
    if op == "regex":
        if len(value) > MAX_REGEX_CHARS:
            raise InvalidWorkflow(f"{path}.value", f"is longer than {MAX_REGEX_CHARS} characters")
        try:
            linear_pattern(value)
        except ValueError as exc:
            raise InvalidWorkflow(f"{path}.value", str(exc)) from None
    return LabelSelector(key, op, (value,))


def parse_match(obj: Any, path: str = "match") -> Match:
    if obj is None:
        return Match()
    if not isinstance(obj, dict):
        raise InvalidWorkflow(path, "must be an object")
    _known_fields(obj, path, ("kinds", "minSeverity", "severities", "sources", "labels", "titleContains"))
    labels_in = obj.get("labels")
    if labels_in is None:
        labels_in = []
    if not isinstance(labels_in, list):
        raise InvalidWorkflow(f"{path}.labels", "must be a list of label selectors")
    if len(labels_in) > MAX_SELECTORS:
        raise InvalidWorkflow(f"{path}.labels", f"has more than {MAX_SELECTORS} selectors")
    return Match(
        kinds=_str_list(obj, "kinds", f"{path}.kinds", choices=KINDS),
        min_severity=_choice(obj, "minSeverity", f"{path}.minSeverity", SEVERITIES, None),
        severities=_str_list(obj, "severities", f"{path}.severities", choices=SEVERITIES),
        sources=_str_list(obj, "sources", f"{path}.sources"),
        labels=tuple(_label_selector(item, f"{path}.labels[{i}]") for i, item in enumerate(labels_in)),
        title_contains=_str(obj, "titleContains", f"{path}.titleContains", max_chars=200),
    )


WORKFLOW_FIELDS = (
    "id",
    "name",
    "enabled",
    "match",
    "trigger",
    "intervalMinutes",
    "recipients",
    "fallbackRecipients",
    "comment",
    "delivery",
)


def parse_workflow(obj: Any, tenant_id: str, workflow_id: str | None = None) -> Workflow:
    """Validate a workflow definition (the JSON of ``schemas/workflow.schema.json``).

    ``workflow_id`` is the id from the route; a body ``id`` must then agree with it."""
    if not isinstance(obj, dict):
        raise InvalidWorkflow("", "a workflow must be a JSON object")
    _known_fields(obj, "", WORKFLOW_FIELDS)
    body_id = _str(obj, "id", "id", max_chars=MAX_ID_CHARS)
    if workflow_id and body_id and body_id != workflow_id:
        raise InvalidWorkflow("id", f"is {body_id!r} but the route names workflow {workflow_id!r}")
    wid = workflow_id or body_id
    if not wid:
        raise InvalidWorkflow("id", "is required")
    if not WORKFLOW_ID.match(wid):
        raise InvalidWorkflow("id", "must be 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit")
    name = _str(obj, "name", "name", required=True, max_chars=MAX_NAME_CHARS)
    assert name is not None
    enabled = obj.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidWorkflow("enabled", "must be true or false")
    trigger = _choice(obj, "trigger", "trigger", TRIGGERS, None)
    if trigger is None:
        raise InvalidWorkflow("trigger", f"is required (one of {', '.join(TRIGGERS)})")
    interval = obj.get("intervalMinutes")
    if interval is not None:
        if trigger != "periodic":
            raise InvalidWorkflow("intervalMinutes", "applies to the periodic trigger only")
        if (
            isinstance(interval, bool)
            or not isinstance(interval, int)
            or not MIN_PERIODIC_MINUTES <= interval <= MAX_PERIODIC_MINUTES
        ):
            raise InvalidWorkflow(
                "intervalMinutes", f"must be a whole number from {MIN_PERIODIC_MINUTES} to {MAX_PERIODIC_MINUTES}"
            )
    elif trigger == "periodic":
        interval = DEFAULT_PERIODIC_MINUTES
    return Workflow(
        tenant_id=tenant_id,
        id=wid,
        name=name,
        enabled=enabled,
        match=parse_match(obj.get("match")),
        trigger=trigger,
        interval_minutes=interval,
        recipients=_recipients(obj, "recipients", "recipients"),
        fallback_recipients=_recipients(obj, "fallbackRecipients", "fallbackRecipients"),
        comment=_str(obj, "comment", "comment", max_chars=MAX_COMMENT_CHARS) or "",
        delivery=_choice(obj, "delivery", "delivery", DELIVERY_METHODS, "bot") or "bot",
    )


def same_definition(a: Workflow, b: Workflow) -> bool:
    return a.to_json() == b.to_json()


# ---------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class Target:
    """One recipient of the plan, with everything its card says about why it is there."""

    recipient: Recipient
    workflows: tuple[str, ...]  # names of the workflows that chose it
    comments: tuple[str, ...] = ()
    fallback: tuple[Recipient, ...] = ()
    delivery: str = "bot"
    reason: str = ""
    mention: tuple[str, ...] = ()  # the people its card mentions (responders expanded)

    def to_json(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient.to_json(),
            "mention": list(self.mention),
            "label": self.recipient.label(),
            "workflows": list(self.workflows),
            "comments": list(self.comments),
            "fallbackRecipients": [r.to_json() for r in self.fallback],
            "delivery": self.delivery,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Plan:
    """Who gets an alert's card and why. ``broadcast``: the tenant has no workflows, so every
    conversation where the bot is installed gets it (the behaviour before workflows)."""

    targets: tuple[Target, ...] = ()
    not_matched: tuple[tuple[str, str], ...] = ()  # (workflow name, why it did not apply)
    broadcast: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "broadcast": self.broadcast,
            "targets": [t.to_json() for t in self.targets],
            "notMatched": [{"workflow": name, "reason": why} for name, why in self.not_matched],
        }


def expand(recipients: tuple[Recipient, ...], alert: AlertState) -> tuple[Recipient, ...]:
    """``responders`` becomes one person per responder of the alert; the rest stay."""
    out: list[Recipient] = []
    for recipient in recipients:
        if recipient.kind == "responders":
            out.extend(Recipient("person", user=r) for r in alert.responders)
        else:
            out.append(recipient)
    return tuple(out)


def merge_targets(targets: list[Target]) -> tuple[Target, ...]:
    """One target per recipient: two workflows that reach the same recipient give one card,
    with both comments and both workflow names."""
    merged: dict[str, Target] = {}
    for target in targets:
        key = target.recipient.key
        if key not in merged:
            merged[key] = target
            continue
        seen = merged[key]
        merged[key] = replace(
            seen,
            workflows=_unique(seen.workflows + target.workflows),
            comments=_unique(seen.comments + target.comments),
            fallback=tuple({r.key: r for r in seen.fallback + target.fallback}.values()),
            reason=seen.reason if target.reason in seen.reason else f"{seen.reason}; {target.reason}",
            mention=_unique_people(seen.mention + target.mention),
        )
    return tuple(merged.values())


def mentioned(recipient: Recipient, alert: AlertState) -> tuple[str, ...]:
    """The people a recipient's card mentions for this alert: its "responders" are the alert's."""
    people: list[str] = []
    for who in recipient.mention:
        people.extend(alert.responders if who == RESPONDERS else (who,))
    return _unique_people(tuple(people))[:MAX_MENTIONS]


def _unique_people(items: tuple[str, ...]) -> tuple[str, ...]:
    first: dict[str, str] = {}
    for item in items:
        if item:
            first.setdefault(item.lower(), item)
    return tuple(first.values())


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def plan(alert: AlertState, change: str, workflows: list[Workflow]) -> Plan:
    """The recipients of ``alert`` after a change (``new``, ``updated`` or ``existing``).

    No workflows at all: broadcast. Otherwise only enabled workflows whose trigger fires on
    this change and whose match holds choose recipients; the others are listed with why not.
    """
    if not workflows:
        return Plan(broadcast=True)
    targets: list[Target] = []
    not_matched: list[tuple[str, str]] = []
    for workflow in sorted(workflows, key=lambda w: w.id):
        if alert.tenant_id != workflow.tenant_id:
            continue
        if not workflow.enabled:
            not_matched.append((workflow.name, "disabled"))
            continue
        if workflow.trigger not in FIRES_ON.get(change, ()):
            not_matched.append((workflow.name, _trigger_reason(workflow.trigger, change)))
            continue
        why = workflow.match.why_not(alert)
        if why is not None:
            not_matched.append((workflow.name, why))
            continue
        fallback = expand(workflow.fallback_recipients, alert)
        comments = (workflow.comment,) if workflow.comment else ()
        reason = f"workflow {workflow.name} ({workflow.match.describe()})"
        for given in workflow.recipients:
            for recipient in expand((given,), alert):
                targets.append(
                    Target(
                        recipient,
                        (workflow.name,),
                        comments,
                        fallback,
                        workflow.delivery,
                        reason,
                        mentioned(given, alert),
                    )
                )
        if any(r.kind == "responders" for r in workflow.recipients) and not alert.responders:
            not_matched.append((workflow.name, "its responders recipient found no responders on the alert"))
    return Plan(targets=merge_targets(targets), not_matched=tuple(not_matched))


def _trigger_reason(trigger: str, change: str) -> str:
    if trigger == "periodic":
        return "periodic: a digest on the timer, not a card per change"
    if change == "new":
        return f"trigger {trigger} does not fire on a new alert"
    if change == "existing":
        return f"trigger {trigger} does not deliver alerts that were already open"
    return f"trigger {trigger} does not fire on this change"


def manual_plan(
    alert: AlertState,
    recipients: tuple[Recipient, ...],
    fallback: tuple[Recipient, ...],
    comment: str,
    requested_by: str,
) -> Plan:
    """The plan of a manual "send to Teams": these recipients, this comment."""
    who = requested_by or "someone"
    reason = f"sent by {who}"
    targets = [
        Target(r, (), (comment,) if comment else (), expand(fallback, alert), "bot", reason, mentioned(given, alert))
        for given in recipients
        for r in expand((given,), alert)
    ]
    return Plan(targets=merge_targets(targets))


def subscription_id(conversation_id: str) -> str:
    """The id of the workflow that ``subscribe`` makes for one conversation."""
    return "sub-" + hashlib.sha256(conversation_id.encode()).hexdigest()[:16]


def periodic_slot(workflow: Workflow, now: datetime) -> int:
    """The number of the digest period ``now`` falls in (periods counted from the epoch), so
    every run in one period names the same digest and posts it once."""
    minutes = workflow.interval_minutes or DEFAULT_PERIODIC_MINUTES
    return int(now.timestamp() // (minutes * 60))
