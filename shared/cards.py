"""Adaptive Cards for alerts, built as data by small functions.

All text that comes from an alert source goes through :func:`escape_text` here and nowhere
else, and every card is checked against :data:`MAX_CARD_BYTES` before it leaves.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

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

SEVERITY_STYLE = {  # container style, text colour
    "critical": ("attention", "Attention"),
    "high": ("warning", "Warning"),
    "medium": ("warning", "Default"),
    "low": ("default", "Default"),
    "info": ("default", "Accent"),
}
STATUS_LABEL = {"open": "Open", "acknowledged": "Acknowledged", "resolved": "Resolved"}
STATUS_COLOUR = {"open": "Attention", "acknowledged": "Warning", "resolved": "Good"}

# Characters that start Markdown the Teams renderers honour (emphasis, links, code, strike,
# headings, quotes), HTML entities, and the angle brackets of <at> mentions. Backslash
# escapes are the Adaptive Cards renderers' documented way to show them literally.
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>~#&|])")
# List markers only mean something at the start of a line ("- x", "+ x", "1. x", "1) x").
_LIST_MARKER = re.compile(r"^(\s*)([-+]|\d+[.)])(?=\s)", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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
    return text.replace("{{", "{\u200b{")


def _text_block(text: str, **props: Any) -> dict:
    return {"type": "TextBlock", "text": text, "wrap": True, **props}


def _facts(state: AlertState) -> dict | None:
    facts = [
        {"title": escape_text(name, 60), "value": escape_text(value, MAX_FACT_CHARS)}
        for name, value in sorted(state.labels.items())[:MAX_FACTS]
    ]
    if not facts:
        return None
    block: dict = {"type": "FactSet", "facts": facts}
    if len(state.labels) > MAX_FACTS:
        block["facts"].append({"title": "…", "value": f"{len(state.labels) - MAX_FACTS} more labels"})
    return block


def _when(moment: datetime | None) -> str:
    # Adaptive Cards format {{DATE()}}/{{TIME()}} in the reader's time zone.
    if moment is None:
        return ""
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{{{{DATE({stamp}, SHORT)}}}} {{{{TIME({stamp})}}}}"


def action_data(state: AlertState, verb: str) -> dict:
    """The data every card action carries: enough to find the alert, nothing secret."""
    return {"verb": verb, "alertKey": state.key, "tenantId": state.tenant_id, "alertId": state.alert_id}


def _execute(state: AlertState, verb: str, title: str) -> dict:
    return {"type": "Action.Execute", "title": title, "verb": verb, "data": action_data(state, verb)}


def alert_actions(state: AlertState) -> list[dict]:
    """Buttons for what can be done now; links to the alert's channel and meeting once they exist."""
    actions: list[dict] = []
    if state.status == "open":
        actions.append(_execute(state, "acknowledge", "Acknowledge"))
    if state.status in ("open", "acknowledged"):
        actions.append(_execute(state, "resolve", "Resolve"))
    if state.status == "resolved":
        actions.append(_execute(state, "reopen", "Reopen"))
    channel, meeting = state.channel or {}, state.meeting or {}
    if channel.get("status") == "created" and channel.get("webUrl"):
        actions.append({"type": "Action.OpenUrl", "title": "Open alert channel", "url": channel["webUrl"]})
    elif state.status != "resolved":
        actions.append(_execute(state, "create_channel", "Create channel"))
    if meeting.get("status") == "created" and meeting.get("joinUrl"):
        actions.append({"type": "Action.OpenUrl", "title": "Join meeting", "url": meeting["joinUrl"]})
    elif state.status != "resolved":
        actions.append(_execute(state, "create_meeting", "Create meeting"))
    if state.url:
        actions.append({"type": "Action.OpenUrl", "title": f"Open in {state.source or 'source'}"[:40], "url": state.url})
    return actions


def alert_card(state: AlertState, *, include_description: bool = True, include_facts: bool = True) -> dict:
    """The alert card: title, severity, status, source, labels as facts, link and actions."""
    style, colour = SEVERITY_STYLE.get(state.severity, SEVERITY_STYLE["medium"])
    if state.status == "resolved":
        style = "good"
    status_label = STATUS_LABEL.get(state.status, state.status.title())
    header_facts = [
        {"title": "Severity", "value": state.severity.title()},
        {"title": "Status", "value": status_label},
    ]
    if state.source:
        header_facts.append({"title": "Source", "value": escape_text(state.source, 100)})
    header_facts.append({"title": "Alert", "value": escape_text(state.alert_id, 100)})
    if state.updated:
        header_facts.append({"title": "Updated", "value": _when(state.updated)})

    body: list[dict] = [
        {
            "type": "Container",
            "style": style,
            "bleed": True,
            "items": [
                _text_block(f"{state.kind.title()} · {state.severity.upper()} · {status_label.upper()}", size="Small", weight="Bolder", color=STATUS_COLOUR.get(state.status, colour)),
                _text_block(escape_text(state.title, MAX_TITLE_CHARS), size="Large", weight="Bolder"),
            ],
        },
        {"type": "FactSet", "facts": header_facts},
    ]
    if include_description and state.description:
        body.append(_text_block(escape_text(state.description, MAX_DESCRIPTION_CHARS), isSubtle=True, spacing="Medium"))
    if include_facts:
        facts = _facts(state)
        if facts:
            body.append(facts)

    card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
        "actions": alert_actions(state),
    }
    return card


def fit_card(state: AlertState) -> dict:
    """The fullest alert card that stays under :data:`MAX_CARD_BYTES`."""
    for description, facts in ((True, True), (True, False), (False, False)):
        card = alert_card(state, include_description=description, include_facts=facts)
        if card_size(card) <= MAX_CARD_BYTES:
            return card
    raise ValueError(f"the alert card for {state.alert_id!r} exceeds {MAX_CARD_BYTES} bytes even without details")


def card_size(card: dict) -> int:
    return len(json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def summary_text(state: AlertState) -> str:
    """Plain-text summary used in notifications and the activity's summary field."""
    return f"[{state.severity.upper()}] {state.title[:120]} ({STATUS_LABEL.get(state.status, state.status)})"


def help_card(commands: list[tuple[str, str]]) -> dict:
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "body": [
            _text_block("Teams Alert Connector", weight="Bolder", size="Medium"),
            _text_block("I post alerts from your alerting platforms here and keep each card up to date. Commands:"),
            {"type": "FactSet", "facts": [{"title": name, "value": text} for name, text in commands]},
        ],
    }
