"""Adaptive Cards for alerts, built as data by small functions.

All text that comes from an alert source goes through :func:`escape_text` here and nowhere
else, and every card is checked against :data:`MAX_CARD_BYTES` before it leaves.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from shared.domain.alertmanager import ANNOTATION_LABEL_PREFIX
from shared.domain.alerts import MAX_NOTE_CHARS as MAX_ALERT_NOTE_CHARS
from shared.domain.alerts import SILENCE_DURATIONS, SNOOZE_DURATIONS, TRANSITIONS, Verb
from shared.domain.model import AlertState

# Teams renders Adaptive Cards up to 1.5; Action.Execute (Universal Actions) needs 1.4+.
# Source: Teams cards docs (cards-reference, universal actions).
CARD_VERSION = "1.5"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
# Teams rejects messages over ~28 KB (413 MessageSizeTooBig); the card must fit with the
# activity envelope around it. Source: Teams limits page / bot message format page.
MAX_MESSAGE_BYTES = 28 * 1024
MAX_CARD_BYTES = MAX_MESSAGE_BYTES - 2 * 1024
MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 2_000
MAX_FACTS = 20
MAX_FACT_CHARS = 200

# The palette. Every text is the host's default colour, plain or subtle: in Teams' light and
# dark host configs no other text colour reaches WCAG's 4.5:1 on every container style (the
# yellow "warning" text measures 1.1:1 on the warning background), while default text measures
# 5.4:1 or more on all of them. Colour is carried by container styles instead (badges), always
# with a word, so no one needs the colour to read the card. tests/unit/test_card_design.py
# measures every text of every card kind against the host configs.
SEVERITY_STYLE = {"critical": "attention", "high": "warning", "medium": "warning", "low": "default", "info": "default"}
SEVERITY_MARK = {
    "critical": "\U0001f534",
    "high": "\U0001f7e0",
    "medium": "\U0001f7e1",
    "low": "\U0001f535",
    "info": "\u26aa",
}
SEVERITIES = tuple(SEVERITY_STYLE)  # most severe first
STATUS_LABEL = {"open": "Open", "acknowledged": "Acknowledged", "resolved": "Resolved"}
# Status badges use the styles severity does not (accent, emphasis, good), so the two never read alike.
# Severity is in capitals, status in words: "🔴 CRITICAL" beside "✓ Acknowledged".
STATUS_BADGE = {
    "open": ("accent", "\u25cf Open"),
    "reopened": ("accent", "\u21bb Reopened"),
    "acknowledged": ("emphasis", "\u2713 Acknowledged"),
    "resolved": ("good", "\u2714 Resolved"),
}
STEP_LABEL = {"acknowledged": "Acknowledged", "resolved": "Resolved", "reopened": "Reopened", "open": "Opened again"}
MAX_SHOWN_STEPS = 3
MAX_BUTTON_TITLE_CHARS = 20  # five buttons fit side by side in a 640 px wide card
MAX_CARD_BUTTONS = 5

# Characters that start Markdown the Teams renderers honour (emphasis, links, code, strike,
# headings, quotes), HTML entities, and the angle brackets of <at> mentions. Backslash
# escapes are the Adaptive Cards renderers' documented way to show them literally.
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>~#&|])")
# List markers only mean something at the start of a line ("- x", "+ x", "1. x", "1) x").
_LIST_MARKER = re.compile(r"^(\s*)([-+]|\d+[.)])(?=\s)", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


_DOUBLE_BRACE = re.compile(r"\{(?=\{)")
_NEWLINES = re.compile(r"(?:\r?\n)+")


def escape_text(text: str, limit: int | None = None) -> str:
    """Make source text show literally in a TextBlock or fact.

    Markdown and mention markup are backslash-escaped, ``{{`` (Adaptive Card template
    functions such as ``{{DATE()}}``) is broken with a zero-width space, control characters
    are dropped, and the text is truncated to ``limit`` characters before escaping, so an
    escape is never cut in half.
    """
    text = _CONTROL.sub("", text)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "\u2026"
    text = _MARKDOWN_SPECIALS.sub(r"\\\1", text)
    text = _LIST_MARKER.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], text)
    # Every "{" followed by another gets a zero-width space after it, so no run of braces
    # ("{{{DATE(", "{{{{") leaves a "{{" that a template engine would read.
    return _DOUBLE_BRACE.sub("{\u200b", text)


def _text_block(text: str, **props: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **props}


def _card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The envelope every card shares: Adaptive Card 1.5, full width in Teams."""
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return card


def _badge(style: str, text: str, element_id: str | None = None) -> dict[str, Any]:
    """A word on a coloured ground: the colour helps, the word says it."""
    block = _text_block(text, size="Small", weight="Bolder", wrap=False)
    if element_id:
        block["id"] = element_id
    return {"type": "Column", "width": "auto", "style": style, "verticalContentAlignment": "Center", "items": [block]}


def severity_badge(severity: str, element_id: str | None = None, count: int | None = None) -> dict[str, Any]:
    text = f"{SEVERITY_MARK.get(severity, '')} {severity.upper()}".strip() + (
        f" {count:,}" if count is not None else ""
    )
    return _badge(SEVERITY_STYLE.get(severity, "emphasis"), text, element_id)


def shown_status(state: AlertState) -> str:
    """The status as the card names it: "reopened" is an open alert that was resolved before."""
    return "reopened" if state.reopened else state.status


def status_badge(state: AlertState, element_id: str | None = None) -> dict[str, Any]:
    style, text = STATUS_BADGE.get(shown_status(state), ("emphasis", state.status.title()))
    return _badge(style, text, element_id)


def _badges(state: AlertState, trailer: str = "") -> dict[str, Any]:
    columns = [severity_badge(state.severity, "severity"), status_badge(state, "status")]
    if trailer:
        columns.append(
            {
                "type": "Column",
                "width": "stretch",
                "verticalContentAlignment": "Center",
                "items": [_text_block(trailer, size="Small", isSubtle=True)],
            }
        )
    return {"type": "ColumnSet", "columns": columns}


def duration(seconds: float) -> str:
    """ "2 h 14 m", "3 d 4 h", "12 m", "less than a minute"."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "less than a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} m" if minutes else f"{hours} h"
    return f"{minutes} m"


def age_line(state: AlertState, now: datetime | None = None) -> str:
    """When it first fired and how long it has been open: up to ``now`` when the card is made
    for the moment (a command's answer), else up to the last change the card shows."""
    start = state.fired or state.created
    if start is None:
        return ""
    line = f"Fired {_when(start)}"
    if state.created is not None and start > state.created:
        line += f" (first {_when(state.created)})"  # it fired again after it was resolved
    if state.status == "resolved":
        # When it was resolved: the step says (the source's own time for a source's change);
        # status_changed is when the connector processed it.
        resolved = [step.at for step in state.steps if step.status == "resolved"]
        end = resolved[-1] if resolved else state.status_changed or state.updated
        if end is not None and end > start:
            line += f" \u00b7 resolved after {duration((end - start).total_seconds())}"
        return line
    end = now or state.updated
    if end is not None and (end - start).total_seconds() >= 60:
        line += f" \u00b7 open for {duration((end - start).total_seconds())}"
        if now is None:
            line += f" at {_when(end, date=False)}"
    return line


def silence_line(silence: dict[str, Any]) -> str:
    """A silence made from Teams in the alert's source, and that the source then holds back its
    notifications, the resolved one too."""
    until = datetime.fromisoformat(str(silence["until"]))
    return (
        f"\U0001f515 Silenced in its source until {_when(until)} by {escape_text(str(silence.get('by') or ''), 100)} "
        f"(silence {escape_text(str(silence.get('id') or ''), 64)}); the source sends no notification meanwhile, "
        "not even its resolution"
    )


def assignee_line(assignee: dict[str, Any]) -> str:
    who, by = escape_text(str(assignee.get("name") or "someone"), 100), escape_text(str(assignee.get("by") or ""), 100)
    at = assignee.get("at")
    when = f" \u00b7 {_when(datetime.fromisoformat(str(at)))}" if at else ""
    return f"\U0001f464 Assigned to **{who}**" + (f" by {by}" if by and by != who else "") + when


def snooze_line(snooze: dict[str, Any]) -> str:
    until = datetime.fromisoformat(str(snooze["until"]))
    return f"\U0001f4a4 Snoozed until {_when(until)} by {escape_text(str(snooze.get('by') or ''), 100)}: no reminders"


def note_line(note: dict[str, Any], count: int) -> str:
    """The latest note, its author and time; how many there are when more than one."""
    at = datetime.fromisoformat(str(note["at"]))
    more = f" (latest of {count})" if count > 1 else ""
    return (
        f"\U0001f4dd **Note** by {escape_text(str(note.get('by') or ''), 100)} \u00b7 {_when(at)}{more}: "
        f"{escape_text(str(note.get('text') or ''), MAX_ALERT_NOTE_CHARS)}"
    )


def step_lines(state: AlertState) -> list[dict[str, Any]]:
    """Who did what and when, the last few changes, on every copy of the card."""
    blocks = []
    for step in state.steps[-MAX_SHOWN_STEPS:]:
        who = f"by {escape_text(step.by, 100)}" if step.by else f"in {escape_text(step.via, 100)}"
        blocks.append(
            _text_block(
                f"{STEP_LABEL.get(step.status, step.status.title())} {who} \u00b7 {_when(step.at)}",
                size="Small",
                spacing="None",
            )
        )
    if blocks:
        blocks[0]["spacing"] = "Small"
    return blocks


def _labels(state: AlertState) -> list[dict[str, Any]]:
    """Each label on its own line, the name in bold: a long name or value wraps between words
    (a FactSet's narrow title column breaks names mid-word)."""
    buttons = {label for _, _, label in alert_links(state)}
    items = sorted((name, value) for name, value in state.labels.items() if name not in buttons)
    blocks = [
        _text_block(f"**{escape_text(name, 60)}**: {escape_text(value, MAX_FACT_CHARS)}", size="Small", spacing="None")
        for name, value in items[:MAX_FACTS]
    ]
    if len(items) > MAX_FACTS:
        blocks.append(
            _text_block(f"\u2026 {len(items) - MAX_FACTS} more labels", size="Small", isSubtle=True, spacing="None")
        )
    if blocks:
        blocks[0]["spacing"] = "Medium"
        blocks[0]["separator"] = True
    return blocks


def _when(moment: datetime | None, date: bool = True) -> str:
    # Adaptive Cards format {{DATE()}}/{{TIME()}} in the reader's time zone.
    if moment is None:
        return ""
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    time = f"{{{{TIME({stamp})}}}}"
    return f"{{{{DATE({stamp}, SHORT)}}}} {time}" if date else time


def attachment(card: dict[str, Any]) -> dict[str, Any]:
    """A card as a message attachment (Bot Framework activities and Graph chat messages)."""
    return {"contentType": CARD_CONTENT_TYPE, "content": card}


def card_invoke_response(card: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Universal Actions: the refreshed card goes back in the invoke response."""
    return 200, {"statusCode": 200, "type": CARD_CONTENT_TYPE, "value": card}


def message_invoke_response(text: str) -> tuple[int, dict[str, Any]]:
    """Universal Actions: a message instead of a card (Teams shows it under the card)."""
    return 200, {"statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": text}


def search_invoke_response(results: list[dict[str, str]]) -> tuple[int, dict[str, Any]]:
    """A type-ahead's choices ({title, value} each; Teams docs, dynamic-search)."""
    return 200, {
        "statusCode": 200,
        "type": "application/vnd.microsoft.search.searchResponse",
        "value": {"results": results},
    }


def action_data(state: AlertState, verb: Verb) -> dict[str, Any]:
    """The data every card action carries: enough to find the alert, nothing secret."""
    return {"verb": verb.value, "alertKey": state.key, "tenantId": state.tenant_id, "alertId": state.alert_id}


def _execute(state: AlertState, verb: Verb, title: str, **data: Any) -> dict[str, Any]:
    return {"type": "Action.Execute", "title": title, "verb": verb.value, "data": {**action_data(state, verb), **data}}


# The status buttons, in card order: each shown when the state machine allows it.
STATUS_BUTTONS = ((Verb.ACKNOWLEDGE, "Acknowledge"), (Verb.RESOLVE, "Resolve"), (Verb.REOPEN, "Reopen"))


def _status_buttons(state: AlertState, **data: Any) -> list[dict[str, Any]]:
    return [
        _execute(state, verb, title, **data)
        for verb, title in STATUS_BUTTONS
        if state.status in TRANSITIONS[verb].from_statuses
    ]


def source_system(source: str | None, url: str | None) -> str | None:
    """The system a person opens from the card, by name: an Alertmanager alert's link is the
    rule's expression in Prometheus (``/graph``), a Grafana alert's its Grafana; a source named
    "alertmanager/<receiver>" is named by its system, not by its receiver."""
    if not source:
        return None
    kind = source.split("/", 1)[0].lower()
    if kind == "alertmanager":
        return "Prometheus" if url and "/graph" in urlsplit(url).path else "Alertmanager"
    if kind == "grafana":
        return "Grafana"
    return source


def source_button_title(source: str | None, url: str | None = None) -> str:
    system = source_system(source, url)
    title = f"Open in {system}" if system else "Open in source"
    return title if len(title) <= MAX_BUTTON_TITLE_CHARS else "Open in source"


# Annotations that are links to open rather than label lines (Alertmanager's ``runbook_url``;
# Grafana's runbook and its dashboard and panel links, shared.domain.grafana): the button's
# title, and the annotations that fill it, the first present wins.
LINK_ANNOTATIONS = (("Runbook", ("runbook_url", "runbook")), ("Dashboard", ("panel_url", "dashboard_url")))


def _web_url(url: str) -> bool:
    parts = urlsplit(url.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc) and len(url) <= 2_000


def alert_links(state: AlertState) -> list[tuple[str, str, str]]:
    """The runbook and dashboard the alert's annotations link to: (title, url, label) each."""
    links = []
    for title, names in LINK_ANNOTATIONS:
        for name in names:
            label = ANNOTATION_LABEL_PREFIX + name
            url = state.labels.get(label, "")
            if url and _web_url(url):
                links.append((title, url.strip(), label))
                break
    return links


def _open_url(title: str, url: str) -> dict[str, Any]:
    return {"type": "Action.OpenUrl", "title": title, "url": url}


def _open_source(state: AlertState) -> dict[str, Any]:
    """The button to the alert in its source, named by the source's system."""
    assert state.url is not None
    return _open_url(source_button_title(state.source, state.url), state.url)


def alert_actions(state: AlertState) -> list[dict[str, Any]]:
    """Buttons for what can be done now, the likeliest first; links to the alert's channel and
    meeting once they exist. Past :data:`MAX_CARD_BUTTONS` the rest go into the card's
    overflow menu (``mode: secondary``; Teams: "Overflow menu on Adaptive Cards")."""
    unresolved = state.status != "resolved"
    actions = _status_buttons(state)
    links = [_open_url(title, url) for title, url, _ in alert_links(state)]
    actions.extend(links[:1])
    if state.silence:
        actions.append(_execute(state, Verb.EXPIRE_SILENCE, "Expire silence"))
    elif state.silenceable and unresolved:
        actions.append(silence_button(state))
    actions.append(note_button(state))
    if unresolved:
        actions.append(assign_button(state))
    if state.status == "open":
        actions.append(snooze_button(state))
    channel, meeting = state.channel or {}, state.meeting or {}
    if channel.get("status") == "created" and channel.get("webUrl"):
        actions.append(_open_url("Open channel", channel["webUrl"]))
    elif unresolved:
        actions.append(_execute(state, Verb.CREATE_CHANNEL, "Create channel"))
    if meeting.get("status") == "created" and meeting.get("joinUrl"):
        actions.append(_open_url("Join meeting", meeting["joinUrl"]))
    elif unresolved:
        actions.append(_execute(state, Verb.CREATE_MEETING, "Create meeting"))
    actions.extend(links[1:])
    if state.url:
        actions.append(_open_source(state))
    return actions


def _overflow(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first buttons in the row, the others in the overflow menu (its "..." takes a place)."""
    if len(actions) <= MAX_CARD_BUTTONS:
        return actions
    shown = MAX_CARD_BUTTONS - 1
    return actions[:shown] + [{**action, "mode": "secondary"} for action in actions[shown:]]


def note_button(state: AlertState) -> dict[str, Any]:
    """Add note: a text box on the card; the note goes on every copy and into this card's thread."""
    return _show_card(
        "Add note",
        [
            {
                "type": "Input.Text",
                "id": "noteText",
                "label": "Note (every copy of the card shows it, and its source gets it)",
                "isMultiline": True,
                "isRequired": True,
                "errorMessage": "Write the note first.",
                "maxLength": MAX_ALERT_NOTE_CHARS,
            }
        ],
        [_execute(state, Verb.NOTE, "Add note")],
    )


def assign_button(state: AlertState) -> dict[str, Any]:
    """Assign: to the person who presses, or to someone found by name as they type (Teams asks
    the bot: an ``application/search`` invoke for the ``people`` dataset)."""
    return _show_card(
        "Assign",
        [
            {
                "type": "Input.ChoiceSet",
                "id": "assignTo",
                "label": "Assign to (type a name)",
                "style": "filtered",
                "choices": [],
                "choices.data": {"type": "Data.Query", "dataset": PEOPLE_DATASET},
            }
        ],
        [_execute(state, Verb.ASSIGN, "Assign"), _execute(state, Verb.ASSIGN, "Assign to me", me=True)],
    )


def snooze_button(state: AlertState) -> dict[str, Any]:
    """Snooze: no reminders for an hour, four, or until a time the person picks (their own
    time zone, which Teams sends with the press)."""
    return _show_card(
        "Snooze",
        [
            _pick_one("snoozeFor", "No reminders for", SNOOZE_CHOICES),
            {"type": "Input.Date", "id": "snoozeDate", "label": "Until a day (your time; instead of the above)"},
            {"type": "Input.Time", "id": "snoozeTime", "label": "At"},
        ],
        [_execute(state, Verb.SNOOZE, "Snooze")],
    )


def _pick_one(input_id: str, label: str, choices: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Radio buttons of (value, title) choices, the first chosen."""
    return {
        "type": "Input.ChoiceSet",
        "id": input_id,
        "label": label,
        "style": "expanded",
        "value": choices[0][0],
        "choices": [{"title": title, "value": value} for value, title in choices],
    }


def _show_card(title: str, body: list[dict[str, Any]], actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "Action.ShowCard",
        "title": title,
        "card": {"type": "AdaptiveCard", "body": body, "actions": actions},
    }


# The dataset an Assign box's type-ahead asks for (the bot answers it from the tenant's directory).
PEOPLE_DATASET = "people"


def _hours(seconds: int) -> str:
    return f"{seconds // 3600} hour{'' if seconds == 3600 else 's'}"


SNOOZE_CHOICES = tuple((key, _hours(seconds)) for key, seconds in SNOOZE_DURATIONS.items())


# What the Silence button offers (shared.domain.alerts.SILENCE_DURATIONS): the first is chosen.
SILENCE_CHOICES = tuple((key, _hours(seconds)) for key, seconds in SILENCE_DURATIONS.items())
MAX_SILENCE_COMMENT_CHARS = 500


def silence_button(state: AlertState) -> dict[str, Any]:
    """Silence: opens a small form on the card (how long, why) whose button makes the silence
    in the alert's source; the inputs' values come with the action's data."""
    return _show_card(
        "Silence",
        [
            _pick_one("duration", "Silence in its source for", SILENCE_CHOICES),
            {
                "type": "Input.Text",
                "id": "comment",
                "label": "Why (the source shows it with the silence)",
                "maxLength": MAX_SILENCE_COMMENT_CHARS,
            },
        ],
        [_execute(state, Verb.SILENCE, "Silence")],
    )


MAX_COMMENT_CHARS = 1_000
MAX_NOTE_CHARS = 500


# People a card mentions (Teams notifies each): at most this many.
MAX_MENTIONS = 20
_NOT_IN_A_MENTION = re.compile(r"[<>\[\]\\*_`~#|&{}\x00-\x1f\x7f]+")


def _mention_name(person: dict[str, Any]) -> str:
    """The person's name with nothing Teams or Markdown reads as markup (a mention entity's
    text must be its tag, character for character)."""
    return " ".join(_NOT_IN_A_MENTION.sub(" ", str(person.get("name") or "")).split())[:100] or "someone"


def mention_tag(person: dict[str, Any]) -> str:
    """``<at>Name</at>`` for a person resolved in the directory."""
    return f"<at>{_mention_name(person)}</at>"


def mention_entities(people: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Teams' mention entities for :func:`mention_tag`'s tags: by Microsoft Entra object id."""
    return [
        {
            "type": "mention",
            "text": mention_tag(person),
            "mentioned": {"id": str(person["id"]), "name": _mention_name(person)},
        }
        for person in people[:MAX_MENTIONS]
    ]


def context_blocks(context: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What a card says about why it is in this conversation: the workflows' comments, a
    fallback note (who could not be reached, and why), and, small, the workflows that sent it.

    ``context``: ``{"comments": [...], "workflows": [...], "note": str, "sentBy": str, "mentions":
    [{"id", "name"}], "unresolvedMentions": [str]}`` (the people it mentions: found in the
    directory, and named but not found); all of
    it is source or admin text and is escaped like the alert's own."""
    if not context:
        return []
    blocks: list[dict[str, Any]] = []
    for comment in context.get("comments") or []:
        blocks.append(_text_block("\U0001f4ac " + escape_text(comment, MAX_COMMENT_CHARS), spacing="Medium"))
    if context.get("note"):
        blocks.append(
            _text_block(
                "\u26a0\ufe0f " + escape_text(context["note"], MAX_NOTE_CHARS), weight="Bolder", spacing="Small"
            )
        )
    mentioned, unresolved = context.get("mentions") or [], context.get("unresolvedMentions") or []
    if mentioned or unresolved:
        line = ", ".join(mention_tag(m) for m in mentioned[:MAX_MENTIONS])
        if unresolved:
            names = ", ".join(escape_text(str(name), 100) for name in unresolved[:MAX_MENTIONS])
            line += ("; " if line else "") + f"{names} (not found in the directory, so not notified)"
        blocks.append(_text_block("\U0001f514 " + line, id="mentions", spacing="Small"))
    via = [escape_text(name, 80) for name in context.get("workflows") or []]
    if via:
        label = "via workflow" if len(via) == 1 else "via workflows"
        blocks.append(
            _text_block(
                f"{label} " + ", ".join(f"_{name}_" for name in via), size="Small", isSubtle=True, spacing="Small"
            )
        )
    elif context.get("sentBy"):
        blocks.append(
            _text_block(f"sent by {escape_text(context['sentBy'], 100)}", size="Small", isSubtle=True, spacing="Small")
        )
    return blocks


def alert_card(
    state: AlertState,
    *,
    include_description: bool = True,
    include_facts: bool = True,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The alert card: severity and status badges, the title, when it fired and for how long it
    has been open, who changed it, the description, labels, why it is here, and its buttons."""
    trailer = escape_text(state.source, 60) if state.source else ""
    if state.kind != "alert":
        trailer = f"{state.kind.title()} \u00b7 {trailer}" if trailer else state.kind.title()
    body: list[dict[str, Any]] = [
        _badges(state, trailer),
        _text_block(
            escape_text(state.title, MAX_TITLE_CHARS), id="title", size="Large", weight="Bolder", spacing="Small"
        ),
    ]
    age = age_line(state)
    if age:
        body.append(_text_block(age, id="age", size="Small", isSubtle=True, spacing="None"))
    body.extend(step_lines(state))
    if state.silence:
        body.append(_text_block(silence_line(state.silence), id="silence", size="Small", spacing="Small"))
    if state.assignee:
        body.append(_text_block(assignee_line(state.assignee), id="assignee", size="Small", spacing="Small"))
    if state.snooze and state.status == "open":
        body.append(_text_block(snooze_line(state.snooze), id="snooze", size="Small", spacing="Small"))
    if state.notes:
        body.append(_text_block(note_line(state.notes[-1], len(state.notes)), id="latestNote", spacing="Small"))
    body.append(
        {
            "type": "FactSet",
            "facts": [{"title": "Alert", "value": escape_text(state.alert_id, 100)}],
            "spacing": "Small",
        }
    )
    if include_description and state.description:
        # Each line of the source's text stays a line: Markdown would join single newlines.
        body.append(
            _text_block(
                _NEWLINES.sub("\n\n", escape_text(state.description, MAX_DESCRIPTION_CHARS)),
                id="description",
                spacing="Medium",
            )
        )
    if include_facts:
        body.extend(_labels(state))
    left_out = [
        name
        for name, kept, present in (
            ("the description", include_description, state.description),
            ("the labels", include_facts, state.labels),
        )
        if present and not kept
    ]
    if left_out:  # said where it was, so nobody takes the card for the whole alert
        where = f"in {escape_text(state.source, 60)}" if state.source else "in its source"
        body.append(
            _text_block(
                (
                    f"{' and '.join(left_out).capitalize()} did not fit in a Teams message; open the alert {where} "
                    "to see them."
                ),
                id="trimmed",
                size="Small",
                isSubtle=True,
            )
        )
    body.extend(context_blocks(context))
    actions = alert_actions(state)
    if len(actions) > MAX_CARD_BUTTONS and actions[-1]["type"] == "Action.OpenUrl" and state.url:
        # Six buttons run past a 640 px card's edge: the link to the source goes under the
        # title instead, where it reads the same.
        actions.pop()
        link = f"[{source_button_title(state.source, state.url)}]({_safe_url(state.url)})"
        at = next((i for i, block in enumerate(body) if block.get("type") == "FactSet"), len(body))
        body.insert(at, _text_block(f"\U0001f517 {link}", id="source", size="Small", spacing="Small"))
    card = _card(body, _overflow(actions))
    if context and context.get("mentions"):
        card["msteams"]["entities"] = mention_entities(context["mentions"])
    return card


def with_note(card: dict[str, Any], message: str, done: bool) -> dict[str, Any]:
    """The card with one line under it for the person who pressed a button: what happened, or why not."""
    mark = "\u2705" if done else "\u26a0\ufe0f"
    card["body"].append(
        _text_block(f"{mark} {escape_text(message)}", id="note", weight="Bolder", spacing="Medium", separator=True)
    )
    return card


def fit_card(state: AlertState, context: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fullest alert card that stays under :data:`MAX_CARD_BYTES`."""
    for description, facts in ((True, True), (True, False), (False, False)):
        card = alert_card(state, include_description=description, include_facts=facts, context=context)
        if card_size(card) <= MAX_CARD_BYTES:
            return card
    raise ValueError(f"the alert card for {state.alert_id!r} exceeds {MAX_CARD_BYTES} bytes even without details")


def card_size(card: dict[str, Any]) -> int:
    """The card's size as it is sent: the Bot Connector client (and Graph's) write JSON with
    non-ASCII characters as \\u escapes, so a CJK character costs 6 bytes and an emoji 12,
    not the 3 or 4 of UTF-8."""
    return len(json.dumps(card, ensure_ascii=True, separators=(",", ":")))


def summary_text(state: AlertState) -> str:
    """Plain-text summary used in notifications and the activity's summary field."""
    return f"[{state.severity.upper()}] {state.title[:120]} ({STATUS_LABEL.get(state.status, state.status)})"


def help_card(commands: list[tuple[str, str]]) -> dict[str, Any]:
    rows = [
        {
            "type": "ColumnSet",
            "spacing": "Small",
            "columns": [
                {"type": "Column", "width": 1, "items": [_text_block(f"**{name}**")]},
                {"type": "Column", "width": 3, "items": [_text_block(text)]},
            ],
        }
        for name, text in commands
    ]
    return _card(
        [
            _text_block("Teams Alert Connector", weight="Bolder", size="Medium"),
            _text_block(
                "I post alerts from your alerting platforms here and keep each card up to date. Commands:",
                spacing="Small",
            ),
            *rows,
        ]
    )


def _counts_row(counts: dict[str, int]) -> dict[str, Any] | None:
    """Open alerts by severity, as badges: "🔴 CRITICAL 3", "🟠 HIGH 12"."""
    columns = [severity_badge(severity, count=counts[severity]) for severity in SEVERITIES if counts.get(severity)]
    return {"type": "ColumnSet", "columns": columns, "spacing": "Small"} if columns else None


def _alert_row(index: int, alert: AlertState, now: datetime | None = None, buttons: bool = False) -> dict[str, Any]:
    """One alert in a list: badges, id and title, its age; with ``buttons``, what can be done now.
    Its badges have the ids ``severity-N`` and ``status-N`` (ids are unique in a card)."""
    title = f"**{escape_text(alert.alert_id, 60)}** {escape_text(alert.title, 120)}"
    items: list[dict[str, Any]] = [
        {
            "type": "ColumnSet",
            "columns": [
                severity_badge(alert.severity, f"severity-{index}"),
                status_badge(alert, f"status-{index}"),
                {
                    "type": "Column",
                    "width": "stretch",
                    "verticalContentAlignment": "Center",
                    "items": [_text_block(title)],
                },
            ],
        },
    ]
    age = age_line(alert, now)
    if age:
        items.append(_text_block(age, size="Small", isSubtle=True, spacing="None"))
    if alert.steps:
        items.extend(step_lines(replace(alert, steps=alert.steps[-1:])))
    if buttons:
        actions = _status_buttons(alert, list=True)
        if alert.url:
            actions.append(_open_source(alert))
        items.append({"type": "ActionSet", "actions": actions, "spacing": "Small"})
    elif alert.url:
        items.append(
            {
                "type": "ActionSet",
                "actions": [_open_source(alert)],
                "spacing": "Small",
            }
        )
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": items}


def _most_severe_first(alerts: list[AlertState]) -> list[AlertState]:
    rank = {name: i for i, name in enumerate(SEVERITIES)}
    return sorted(alerts, key=lambda a: (rank.get(a.severity, 9), -(a.created.timestamp() if a.created else 0.0)))


MAX_LISTED_ALERTS = 10


def alerts_card(
    alerts: list[AlertState], now: datetime, note: str = "", done: bool = True, scope: str = ""
) -> dict[str, Any]:
    """The answer to ``alerts``: the open and acknowledged alerts the person may see, most
    severe first, each with its badges, age and buttons; the rest counted. ``scope`` says which
    ("shown here"; nothing for a connector admin's list of the organisation's)."""
    counts = {severity: sum(1 for a in alerts if a.severity == severity) for severity in SEVERITIES}
    title = f"Open alerts {scope} ({len(alerts)})" if scope else f"Open alerts ({len(alerts)})"
    body: list[dict[str, Any]] = [_text_block(title, weight="Bolder", size="Medium")]
    if not alerts:
        body.append(_text_block("No open alerts. \U0001f389"))
    row = _counts_row(counts)
    if row:
        body.append(row)
    body.extend(
        _alert_row(i, alert, now, buttons=True)
        for i, alert in enumerate(_most_severe_first(alerts)[:MAX_LISTED_ALERTS])
    )
    if len(alerts) > MAX_LISTED_ALERTS:
        body.append(_text_block(f"\u2026and {len(alerts) - MAX_LISTED_ALERTS} more.", isSubtle=True))
    card = _card(body)
    if note:
        with_note(card, note, done)
    return card


MAX_DIGEST_ALERTS = 15


def with_fallback_note(card: dict[str, Any], note: str) -> dict[str, Any]:
    """A copy of ``card`` that ends with a fallback note (who could not be reached, and why)."""
    noted = copy.deepcopy(card)
    noted["body"] = [*noted.get("body", []), *context_blocks({"note": note})]
    return noted


def digest_card(
    title: str, alerts: list[AlertState], period: str, context: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One card listing the open alerts a periodic workflow matches, most severe first, each
    with its badges, age and a link; the rest counted."""
    counts = {severity: sum(1 for a in alerts if a.severity == severity) for severity in SEVERITIES}
    body: list[dict[str, Any]] = [
        _text_block(f"\U0001f4cb {escape_text(title, 120)}", size="Medium", weight="Bolder"),
        _text_block(f"{len(alerts)} open alert(s). {period}", isSubtle=True, spacing="Small"),
    ]
    row = _counts_row(counts)
    if row:
        body.append(row)
    body.extend(_alert_row(i, alert) for i, alert in enumerate(_most_severe_first(alerts)[:MAX_DIGEST_ALERTS]))
    if len(alerts) > MAX_DIGEST_ALERTS:
        body.append(
            _text_block(
                f"\u2026and {len(alerts) - MAX_DIGEST_ALERTS} more (send **alerts** to list them).", isSubtle=True
            )
        )
    body.extend(context_blocks(context))
    return _card(body)


MAX_SUMMARY_ALERTS = 10


def summary_card(summary: dict[str, Any], *, ended: bool = False) -> dict[str, Any]:
    """The storm summary of one conversation: how many alerts are open by severity and status,
    the most severe by name (linked to their source), "and N more", and the time window.
    ``ended``: the storm is over (a later one has its own summary); the card keeps its last
    counts and says how many alerts it summarised in all."""
    counts: dict[str, int] = summary.get("counts") or {}
    open_total = sum(n for key, n in counts.items() if not key.startswith("resolved:"))
    resolved = sum(n for key, n in counts.items() if key.startswith("resolved:"))
    acknowledged = sum(n for key, n in counts.items() if key.startswith("acknowledged:"))
    by_severity = {sev: sum(counts.get(f"{st}:{sev}", 0) for st in ("open", "acknowledged")) for sev in SEVERITIES}
    body: list[dict[str, Any]] = [
        {
            "type": "ColumnSet",
            "columns": [
                _badge("attention", "\u26a1 SUMMARY"),
                {
                    "type": "Column",
                    "width": "stretch",
                    "verticalContentAlignment": "Center",
                    "items": [
                        _text_block(
                            (
                                f"Alert storm ended: {int(summary.get('folded') or 0):,} alerts were summarised here"
                                if ended
                                else f"Alert storm: {open_total:,} alerts in this summary"
                            ),
                            id="storm",
                            weight="Bolder",
                        )
                    ],
                },
            ],
        },
        _text_block(
            (
                "The counts below are as the storm ended. Later changes of these alerts are posted as their own "
                "cards, and a new storm gets a new summary. Send **alerts** for the open ones."
                if ended
                else "So many alerts arrived that they are listed here instead of as separate cards. Individual "
                "cards resume when the storm passes. Send **alerts** for the full list."
            ),
            isSubtle=True,
            spacing="Small",
        ),
    ]
    row = _counts_row(by_severity)
    if row:
        body.append(row)
    body.append(
        {
            "type": "FactSet",
            "spacing": "Small",
            "facts": [
                {"title": "Acknowledged", "value": f"{acknowledged:,}"},
                {"title": "Resolved since", "value": f"{resolved:,}"},
            ],
        }
    )
    top = [e for e in summary.get("top") or [] if e.get("status") != "resolved"][:MAX_SUMMARY_ALERTS]
    for entry in top:
        title = f"**{escape_text(entry.get('id', ''), 60)}** {escape_text(entry.get('title', ''), 120)}"
        if entry.get("url"):
            title += f" ([open]({_safe_url(entry['url'])}))"
        body.append(
            {
                "type": "ColumnSet",
                "spacing": "Small",
                "columns": [
                    severity_badge(str(entry.get("severity", "medium"))),
                    {
                        "type": "Column",
                        "width": "stretch",
                        "verticalContentAlignment": "Center",
                        "items": [_text_block(title)],
                    },
                ],
            }
        )
    more = open_total - len(top)
    if more > 0:
        body.append(_text_block(f"\u2026and {more:,} more.", isSubtle=True))
    if summary.get("first"):
        body.append(
            _text_block(
                (
                    f"From {_when(datetime.fromisoformat(summary['first']))} to "
                    f"{_when(datetime.fromisoformat(summary['last']))}"
                ),
                size="Small",
                isSubtle=True,
            )
        )
    return _card(body)


def _safe_url(url: str) -> str:
    """An http(s) URL that cannot end the Markdown link it sits in."""
    from urllib.parse import quote

    return quote(url, safe=":/?#[]@!$&'*+,;=%~-._")
