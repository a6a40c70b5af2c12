"""NCRONTAB schedules of timer triggers: six fields, seconds first, evaluated in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter

#: {second} {minute} {hour} {day} {month} {day-of-week}; Functions docs, timer trigger.
NCRONTAB_FIELDS = 6


class ScheduleError(ValueError):
    """A timer schedule is not a valid six-field NCRONTAB expression."""


class NCrontab:
    """A six-field NCRONTAB expression such as ``0 */5 * * * *`` (every five minutes).

    croniter also accepts six fields but, by default, reads the sixth as seconds;
    ``second_at_beginning=True`` makes it read the first one as seconds, as NCRONTAB does.
    """

    def __init__(self, expression: str) -> None:
        self.expression = " ".join(expression.split())
        fields = self.expression.split(" ")
        if len(fields) != NCRONTAB_FIELDS:
            raise ScheduleError(
                f"timer schedule {expression!r} has {len(fields)} fields; NCRONTAB needs "
                "six: {second} {minute} {hour} {day} {month} {day-of-week}, e.g. '0 */5 * * * *'"
            )
        if not croniter.is_valid(self.expression, second_at_beginning=True):
            raise ScheduleError(f"timer schedule {expression!r} is not a valid NCRONTAB expression")

    def next_after(self, moment: datetime) -> datetime:
        """Return the first occurrence strictly after ``moment`` (UTC if naive)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        iterator = croniter(self.expression, moment, second_at_beginning=True)
        return iterator.get_next(datetime)

    def occurrences(self, start: datetime, count: int) -> list[datetime]:
        """Return the next ``count`` occurrences after ``start``."""
        result, moment = [], start
        for _ in range(count):
            moment = self.next_after(moment)
            result.append(moment)
        return result

    def __str__(self) -> str:
        return self.expression
