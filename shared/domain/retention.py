"""How long the connector keeps each kind of record, and why (docs/RETENTION.md
section is the same table). Pure Python.

Removal is driven by a *removal schedule*: when a record becomes removable some day (an alert
is resolved, an action is recorded, an event is rejected...), a schedule row naming it and
its due time is written *before* the record itself, so a crash can leave a harmless extra
schedule row but never a record that is forgotten. The timer reads only the rows that are
due, a bounded page at a time (``shared.adapters.state_store.TableStateStore.remove_due``);
each removal re-checks the record, so a reopened alert or a still-pending action is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

# The alert-events queue keeps a message at most 7 days (defaultMessageTimeToLive P7D in
# infra/app/servicebus.bicep); its duplicate detection window is 1 hour and a message is
# delivered at most 10 times with a 1-minute lock. So no event or command can arrive more than
# 7 days after it was sent: anything that recognises a redelivered message is kept longer.
MAX_MESSAGE_AGE = timedelta(days=7)

# A processed command's key (teams.message.send and the internal workflow commands): a resend
# or redelivery is recognised for longer than a message can live in the queue.
PROCESSED_COMMAND = MAX_MESSAGE_AGE + timedelta(days=1)

# A resolved alert must outlive any event about it still in the queue (else an old event would
# recreate it): the shortest retention a setting may choose.
MIN_RESOLVED_ALERT_DAYS = MAX_MESSAGE_AGE.days + 1

# A digest's claim stops a period's digest from being posted twice; the longest period is 7
# days (MAX_PERIODIC_MINUTES), so a claim is kept one day longer than that.
DIGEST_CLAIM = timedelta(days=8)

# A comment's claim stops a redelivered comment job from replying twice: kept while the job's
# message can still be delivered.
SEND_CLAIM = MAX_MESSAGE_AGE + timedelta(days=1)

# A consent flow's signed state expires after 10 minutes (shared.security.STATE_TTL_SECONDS);
# an abandoned flow is removed an hour after it started.
CONSENT_FLOW = timedelta(hours=1)

# The open-alert index is written before the alert; a row whose alert is resolved (or gone) is
# removed once both are older than this, so an alert being reopened right now keeps its row.
STALE_INDEX_GRACE = timedelta(minutes=15)

# A tenant is in the list of tenants with alerts (the timer visits each one's open alerts) while
# it has an open-alert index row, or was listed again within twice this: an instance lists a
# tenant again at most this often as it saves a new alert, so a tenant listed longer ago than
# twice this, with no open-alert index row, has no alert being created (the timer drops it).
TENANT_RELIST = timedelta(hours=1)

# A pending action (its publish failed) is never removed: it is looked at again after this.
PENDING_ACTION_RECHECK = timedelta(days=1)

# The timer removes at most this many due records per run (pages of 100); the rest wait for
# the next run. At the default 5-minute schedule that is 576,000 a day.
MAX_REMOVALS_PER_RUN = 2_000
REMOVAL_PAGE = 100


@dataclass(frozen=True)
class Retention:
    """The retention periods a user may change (settings in brackets)."""

    # A resolved alert, its cards' records (deliveries), its id index and its storm-summary
    # membership: long enough to be reopened and have its cards updated in place
    # [RESOLVED_ALERT_RETENTION_DAYS].
    resolved_alert_days: int = 30
    # What people did in Teams, once published to the source: for operators [ACTION_RETENTION_DAYS].
    action_days: int = 30
    # Events the connector refused, with the reason and body [REJECTED_EVENT_RETENTION_DAYS].
    rejected_event_days: int = 14
    # Alerts that reached neither a recipient nor a fallback [UNDELIVERABLE_RETENTION_DAYS].
    undeliverable_days: int = 30

    @property
    def resolved_alert(self) -> timedelta:
        return timedelta(days=self.resolved_alert_days)

    @property
    def action(self) -> timedelta:
        return timedelta(days=self.action_days)

    @property
    def rejected_event(self) -> timedelta:
        return timedelta(days=self.rejected_event_days)

    @property
    def undeliverable(self) -> timedelta:
        return timedelta(days=self.undeliverable_days)
