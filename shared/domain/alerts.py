"""The alert state machine: open → acknowledged → resolved, reopen; newest version wins.

Two ways an alert changes status, both here: its source says so (:func:`apply_event`, any status,
newest version wins), or someone in Teams does something to it (:func:`change_status`, a
:class:`Verb` from a card button or a command, allowed only from the statuses of its
:class:`Transition`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from types import MappingProxyType

from shared.domain.events import AlertEvent, alert_key
from shared.domain.model import AlertState, StatusStep


class Verb(StrEnum):
    """What someone can do to an alert from Teams, by card button or by command: the ``verb`` of
    a card's Action.Execute, the word of a command (with :meth:`parse`), the outbound event."""

    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    CREATE_CHANNEL = "create_channel"
    CREATE_MEETING = "create_meeting"
    SILENCE = "silence"
    EXPIRE_SILENCE = "expire_silence"
    NOTE = "note"
    SNOOZE = "snooze"
    ASSIGN = "assign"

    @classmethod
    def parse(cls, word: str) -> Verb | None:
        """A card's verb or a command's word ("ack" is acknowledge, "expire-silence" is
        expire_silence); None when it is neither."""
        word = word.strip().lower().replace("-", "_")
        if word == "ack":
            return cls.ACKNOWLEDGE
        try:
            return cls(word)
        except ValueError:
            return None


@dataclass(frozen=True)
class Transition:
    """A status change someone makes in Teams: from which statuses, to which, the step every
    copy of the card shows, and the type of the event sent back to the source."""

    from_statuses: frozenset[str]
    to: str
    step: str
    outbound_type: str


TRANSITIONS: Mapping[Verb, Transition] = MappingProxyType(
    {
        Verb.ACKNOWLEDGE: Transition(frozenset({"open"}), "acknowledged", "acknowledged", "teams.alert.acknowledged"),
        Verb.RESOLVE: Transition(frozenset({"open", "acknowledged"}), "resolved", "resolved", "teams.alert.resolved"),
        Verb.REOPEN: Transition(frozenset({"resolved"}), "open", "reopened", "teams.alert.reopened"),
    }
)
# What the other verbs report to the source.
OUTBOUND_TYPES: Mapping[Verb, str] = MappingProxyType(
    {
        **{verb: t.outbound_type for verb, t in TRANSITIONS.items()},
        Verb.CREATE_CHANNEL: "teams.alert.channel_created",
        Verb.CREATE_MEETING: "teams.alert.meeting_created",
        Verb.SILENCE: "teams.alert.silenced",
        Verb.EXPIRE_SILENCE: "teams.alert.silence_expired",
        Verb.NOTE: "teams.alert.noted",
        Verb.SNOOZE: "teams.alert.snoozed",
        Verb.ASSIGN: "teams.alert.assigned",
    }
)
# Not a verb anyone presses: the people a card mentioned when it was posted (a workflow asked).
MENTIONED_TYPE = "teams.alert.mentioned"
# A silence made from Teams lasts one of these (a command may name another up to the longest).
SILENCE_DURATIONS = {"1h": 3600, "4h": 4 * 3600, "24h": 24 * 3600}
MAX_SILENCE_SECONDS = 7 * 24 * 3600


# A snooze stops an open alert's reminders for one of these, or until a chosen time (at most
# MAX_SNOOZE_SECONDS ahead); it ends by itself, or when the alert's status changes.
SNOOZE_DURATIONS = {"1h": 3600, "4h": 4 * 3600}
MAX_SNOOZE_SECONDS = 7 * 24 * 3600
# Notes kept on the alert (its timeline of notes): the card shows the latest.
MAX_NOTES = 10
MAX_NOTE_CHARS = 1_000


def silence_seconds(text: str, most: int = MAX_SILENCE_SECONDS) -> int | None:
    """``30m``, ``4h``, ``2d`` as seconds (at most ``most``, a week); None when it is not a duration."""
    text = text.strip().lower()
    units = {"m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        return None
    seconds = int(text[:-1]) * units[text[-1]]
    return seconds if 0 < seconds <= most else None


def snooze_until(choice: str, day: str, at: str, time_zone: str | None, now: datetime) -> datetime | str:
    """When a snooze chosen on the card ends: a day (``YYYY-MM-DD``) and time (``HH:MM``, or
    the start of the day) in the person's time zone (Teams sends its IANA name with a press;
    UTC when it does not), else one of :data:`SNOOZE_DURATIONS`; a str says what is wrong."""
    if day.strip() or at.strip():
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            zone = ZoneInfo(time_zone) if time_zone else UTC
        except (ZoneInfoNotFoundError, ValueError):
            zone = UTC
        local_now = now.astimezone(zone)
        try:
            date_part = date.fromisoformat(day.strip()) if day.strip() else local_now.date()
            time_part = time.fromisoformat(at.strip()) if at.strip() else time(0, 0)
        except ValueError:
            return "Choose the day and time with the card's pickers (YYYY-MM-DD and HH:MM)."
        until = datetime.combine(date_part, time_part, tzinfo=zone)
        if not day.strip() and until <= now:
            until += timedelta(days=1)  # a time alone is its next occurrence
        return until.astimezone(UTC)
    seconds = SNOOZE_DURATIONS.get(choice)
    if seconds is None:
        return "Choose for how long to snooze it."
    return now + timedelta(seconds=seconds)


def snoozed(state: AlertState, now: datetime) -> bool:
    """Whether the alert's reminders are held back now."""
    return state.snooze is not None and datetime.fromisoformat(str(state.snooze["until"])) > now


def with_note(state: AlertState, text: str, by: str, now: datetime) -> AlertState:
    """The alert with a note added to its timeline (the oldest go beyond :data:`MAX_NOTES`)."""
    note = {"text": text[:MAX_NOTE_CHARS], "by": by, "at": now.isoformat()}
    return replace(state, notes=(*state.notes, note)[-MAX_NOTES:])


def change_status(state: AlertState, verb: Verb, now: datetime, *, by: str) -> AlertState | None:
    """The alert after ``verb`` done by ``by`` (a display name) in Teams, or None when the verb
    does not apply to its status (acknowledging a resolved alert). The source's version stays:
    only the source numbers its events; the revision moves so that every copy is updated."""
    transition = TRANSITIONS[verb]
    if state.status not in transition.from_statuses:
        return None
    changed = replace(
        state, status=transition.to, revision=state.revision + 1, updated=now, status_changed=now, snooze=None
    )
    if verb is Verb.REOPEN:
        changed = replace(changed, fired=now)  # open again from now: the card counts from here
    return changed.with_step(StatusStep(transition.step, now, by=by))


def step_of(old: str, new: str) -> str:
    """The step a source's status change shows: back to open from resolved is a reopen."""
    return "reopened" if old == "resolved" and new == "open" else new


def apply_event(current: AlertState | None, event: AlertEvent, tenant_id: str, now: datetime) -> AlertState | None:
    """The alert's state after ``event``, or ``None`` when the event is not newer than what we
    hold (events for one alert may arrive out of order: only a higher ``version`` applies)."""
    data = event.data
    if current is not None and data.version <= current.version:
        return None
    status = event.new_status or (current.status if current else "open")
    changed = current is None or current.status != status
    base = current or AlertState(
        tenant_id=tenant_id,
        key=alert_key(event.source, data.id),
        alert_id=data.id,
        source=data.source,
        event_source=event.source,
        title=data.title,
        status=status,
        severity=data.severity,
        created=data.created or event.time or now,
        ingest_source=event.ingest_source,
    )
    moment = data.updated or event.time or now
    if current is not None and changed:
        # The source changed the status: every copy of the card says so, as for a change in Teams.
        base = base.with_step(
            StatusStep(step_of(current.status, status), moment, via=data.source or base.source or "the source")
        )
    return replace(
        base,
        title=data.title,
        status=status,
        severity=data.severity,
        kind=data.kind,
        description=data.description,
        source=data.source or base.source,
        url=data.url,
        labels=dict(data.labels),
        responders=tuple(data.responders),
        version=data.version,
        revision=(current.revision if current else 0) + 1,
        updated=moment,
        status_changed=now if changed else (base.status_changed or now),
        # Fired again after a resolution: the card's "Fired" and "open for" count from this
        # firing (the first stays as created, and the reopen in the timeline).
        fired=moment
        if current is not None and changed and current.status == "resolved"
        else base.fired or base.created,
        # A snooze holds back the reminders of the status it was made in.
        snooze=None if changed else base.snooze,
    )


def needs_reminder(state: AlertState, now: datetime, after_minutes: int) -> bool:
    """Open (never acknowledged since it last opened) for longer than ``after_minutes``."""
    if state.status != "open" or snoozed(state, now):
        return False
    since = state.status_changed or state.updated or state.created
    return since is not None and (now - since).total_seconds() >= after_minutes * 60
