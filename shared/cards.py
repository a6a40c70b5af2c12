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


MAX_COMMENT_CHARS = 1_000
MAX_NOTE_CHARS = 500


def context_blocks(context: dict | None) -> list[dict]:
    """What a card says about why it is in this conversation: the workflows' comments, a
    fallback note (who could not be reached, and why), and, small, the workflows that sent it.

    ``context``: ``{"comments": [...], "workflows": [...], "note": str, "sentBy": str}``; all of
    it is source or admin text and is escaped like the alert's own."""
    if not context:
        return []
    blocks: list[dict] = []
    for comment in context.get("comments") or []:
        blocks.append(_text_block("\U0001f4ac " + escape_text(comment, MAX_COMMENT_CHARS), spacing="Medium"))
    if context.get("note"):
        blocks.append(_text_block("\u26a0\ufe0f " + escape_text(context["note"], MAX_NOTE_CHARS), color="Attention", spacing="Small"))
    via = [escape_text(name, 80) for name in context.get("workflows") or []]
    if via:
        label = "via workflow" if len(via) == 1 else "via workflows"
        blocks.append(_text_block(f"{label} " + ", ".join(f"_{name}_" for name in via), size="Small", isSubtle=True, spacing="Small"))
    elif context.get("sentBy"):
        blocks.append(_text_block(f"sent by {escape_text(context['sentBy'], 100)}", size="Small", isSubtle=True, spacing="Small"))
    return blocks


def alert_card(state: AlertState, *, include_description: bool = True, include_facts: bool = True, context: dict | None = None) -> dict:
    """The alert card: title, severity, status, source, labels as facts, link and actions, and
    what the conversation's ``context`` says (see :func:`context_blocks`)."""
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
    if state.created:  # when it first fired: kept on every update, so its age is plain
        header_facts.append({"title": "Fired", "value": _when(state.created)})
    if state.updated and state.updated != state.created:
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
        # Each line of the source's text stays a line: Markdown would join single newlines.
        body.append(_text_block(_NEWLINES.sub("\n\n", escape_text(state.description, MAX_DESCRIPTION_CHARS)), isSubtle=True, spacing="Medium"))
    if include_facts:
        facts = _facts(state)
        if facts:
            body.append(facts)
    body.extend(context_blocks(context))

    card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
        "actions": alert_actions(state),
    }
    return card


def fit_card(state: AlertState, context: dict | None = None) -> dict:
    """The fullest alert card that stays under :data:`MAX_CARD_BYTES`."""
    for description, facts in ((True, True), (True, False), (False, False)):
        card = alert_card(state, include_description=description, include_facts=facts, context=context)
        if card_size(card) <= MAX_CARD_BYTES:
            return card
    raise ValueError(f"the alert card for {state.alert_id!r} exceeds {MAX_CARD_BYTES} bytes even without details")


def card_size(card: dict) -> int:
    """The card's size as it is sent: the Bot Connector client (and Graph's) write JSON with
    non-ASCII characters as \\u escapes, so a CJK character costs 6 bytes and an emoji 12,
    not the 3 or 4 of UTF-8."""
    return len(json.dumps(card, ensure_ascii=True, separators=(",", ":")))


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


MAX_DIGEST_ALERTS = 15


def digest_card(title: str, alerts: list[AlertState], period: str, context: dict | None = None) -> dict:
    """One card listing the open alerts a periodic workflow matches, most severe first, each
    with its status and a link; the rest counted."""
    rank = {name: i for i, name in enumerate(SEVERITY_STYLE)}
    ordered = sorted(alerts, key=lambda a: (rank.get(a.severity, 9), -(a.created.timestamp() if a.created else 0.0)))
    counts = ", ".join(f"{sum(1 for a in alerts if a.severity == s)} {s}" for s in SEVERITY_STYLE if any(a.severity == s for a in alerts))
    body: list[dict] = [
        _text_block(f"\U0001f4cb {escape_text(title, 120)}", size="Medium", weight="Bolder"),
        _text_block(f"{len(alerts)} open alert(s): {counts}. {period}", isSubtle=True, spacing="Small"),
    ]
    facts = []
    for alert in ordered[:MAX_DIGEST_ALERTS]:
        facts.append({"title": f"{alert.severity.upper()} · {STATUS_LABEL.get(alert.status, alert.status)}", "value": f"{escape_text(alert.alert_id, 60)} — {escape_text(alert.title, 120)}"})
    body.append({"type": "FactSet", "facts": facts})
    if len(alerts) > MAX_DIGEST_ALERTS:
        body.append(_text_block(f"…and {len(alerts) - MAX_DIGEST_ALERTS} more (send **alerts** to list them).", isSubtle=True))
    body.extend(context_blocks(context))
    return {"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "version": CARD_VERSION, "msteams": {"width": "Full"}, "body": body}


MAX_SUMMARY_ALERTS = 10


def summary_card(summary: dict) -> dict:
    """The storm summary of one conversation: how many alerts are open by severity and status,
    the most severe by name (linked to their source), "and N more", and the time window."""
    counts: dict[str, int] = summary.get("counts") or {}
    open_total = sum(n for key, n in counts.items() if not key.startswith("resolved:"))
    resolved = sum(n for key, n in counts.items() if key.startswith("resolved:"))
    by_severity = [(sev, sum(counts.get(f"{st}:{sev}", 0) for st in ("open", "acknowledged"))) for sev in SEVERITY_STYLE]
    body: list[dict] = [
        _text_block(f"\u26a1 Alert storm: {open_total:,} alerts in this summary", size="Medium", weight="Bolder"),
        _text_block(
            "So many alerts arrived that they are listed here instead of as separate cards. Individual cards resume when the storm passes. "
            "Send **alerts** for the full list.", isSubtle=True, spacing="Small",
        ),
        {"type": "FactSet", "facts": [{"title": sev.title(), "value": f"{n:,}"} for sev, n in by_severity if n]
         + [{"title": "Acknowledged", "value": f"{sum(n for k, n in counts.items() if k.startswith('acknowledged:')):,}"},
            {"title": "Resolved since", "value": f"{resolved:,}"}]},
    ]
    top = [e for e in summary.get("top") or [] if e.get("status") != "resolved"][:MAX_SUMMARY_ALERTS]
    for entry in top:
        title = escape_text(entry.get("title", ""), 120)
        line = f"**{entry.get('severity', '').upper()}** {escape_text(entry.get('id', ''), 60)} — {title}"
        if entry.get("url"):
            line += f" ([open]({_safe_url(entry['url'])}))"
        body.append(_text_block(line, spacing="Small"))
    more = open_total - len(top)
    if more > 0:
        body.append(_text_block(f"…and {more:,} more.", isSubtle=True))
    if summary.get("first"):
        body.append(_text_block(f"From {_when(datetime.fromisoformat(summary['first']))} to {_when(datetime.fromisoformat(summary['last']))}", size="Small", isSubtle=True))
    return {"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "version": CARD_VERSION, "msteams": {"width": "Full"}, "body": body}


def _safe_url(url: str) -> str:
    """An http(s) URL that cannot end the Markdown link it sits in."""
    from urllib.parse import quote

    return quote(url, safe=":/?#[]@!$&'*+,;=%~-._")
