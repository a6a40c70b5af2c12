"""Names for alert channels that Teams accepts."""

from __future__ import annotations

import re
import unicodedata

# Graph create channel: displayName at most 50 characters (Graph docs, channel resource).
MAX_CHANNEL_NAME = 50
# Characters Teams refuses in channel names (Teams "create a channel" rules):
# ~ # % & * { } + / \ : < > ? | ' " , and control characters; a name may not start with
# "_" or "." nor end with ".".
_FORBIDDEN = re.compile(r"[~#%&*{}+/\\:<>?|'\",\x00-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
FALLBACK_NAME = "alert"


def clean_channel_name(raw: str, suffix: str = "") -> str:
    """``raw`` made valid for Teams, with ``suffix`` (e.g. " 2") kept whole within 50 characters."""
    text = unicodedata.normalize("NFC", raw)
    text = "".join(" " if unicodedata.category(ch) in ("Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn") else ch for ch in text)
    text = _SPACES.sub(" ", _FORBIDDEN.sub(" ", text)).strip()
    text = text.lstrip("_. ")
    room = MAX_CHANNEL_NAME - len(suffix)
    text = text[:room].rstrip(". ")
    if not text:
        text = FALLBACK_NAME
    return text + suffix


def is_valid_channel_name(name: str) -> bool:
    return (
        0 < len(name) <= MAX_CHANNEL_NAME
        and not _FORBIDDEN.search(name)
        and not name.startswith(("_", "."))
        and not name.endswith(".")
        and name == name.strip()
    )


def channel_name_from_template(template: str, *, alert_id: str, title: str, severity: str) -> str:
    """Fill ``{id}``, ``{title}``, ``{severity}`` in ``template``; unknown fields stay literal."""
    values = {"id": alert_id, "title": title, "severity": severity.upper()}
    return re.sub(r"\{(id|title|severity)\}", lambda m: values[m.group(1)], template)
