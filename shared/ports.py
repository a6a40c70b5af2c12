"""The small interfaces the service layer depends on. Adapters implement them; the service
layer never imports an SDK."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.domain.connections import PendingFlow, TenantConnection
from shared.domain.jobs import DeliveryJob, JobBundle
from shared.domain.model import (
    AccountLink,
    ActionRecord,
    AlertState,
    ConversationRecord,
    Delivery,
    RejectedEvent,
    Undeliverable,
)
from shared.domain.workflows import Workflow

# A person a message mentions: {"id": Microsoft Entra object id, "name": display name}.
Mention = dict[str, str]


class ConcurrencyConflict(Exception):
    """A conditional write lost a race (ETag mismatch, or the row already exists). ``write``:
    in a transaction of several writes, the index of the one whose condition failed."""

    def __init__(self, message: str = "", write: int | None = None) -> None:
        super().__init__(message)
        self.write = write


class TransientError(Exception):
    """A dependency failed in a way that may pass: let Service Bus redeliver the message."""


class ConnectionStore(Protocol):
    """Tenant connections (one per Microsoft tenant) and pending consent flows."""

    async def get_connection(self, tenant_id: str) -> TenantConnection | None: ...
    async def save_connection(self, connection: TenantConnection) -> TenantConnection:
        """Create when ``etag`` is None, else replace only if the ETag matches (ConcurrencyConflict)."""
        ...

    async def list_connections(self) -> list[TenantConnection]: ...
    async def save_pending_flow(self, flow: PendingFlow) -> None: ...
    async def take_pending_flow(self, flow_id: str) -> PendingFlow | None:
        """The flow exactly once; None when unknown or already used."""
        ...


class ConversationStore(Protocol):
    """Conversations the bot can post to."""

    async def save_conversation(self, record: ConversationRecord) -> None: ...
    async def remove_conversation(self, tenant_id: str, conversation_id: str) -> None: ...
    async def get_conversation(self, tenant_id: str, conversation_id: str) -> ConversationRecord | None: ...
    async def list_conversations(self, tenant_id: str | None = None) -> list[ConversationRecord]: ...


class AlertStore(Protocol):
    """Alerts, written with their ETag."""

    async def get_alert(self, tenant_id: str, key: str) -> AlertState | None: ...
    async def save_alert(self, state: AlertState, *, every_attempt: bool = False) -> AlertState:
        """Create when ``state.etag`` is None, else replace only if the ETag still matches.
        Returns the state with its new ETag; raises :class:`ConcurrencyConflict`.
        ``every_attempt``: the caller repeats this create on every attempt of its message."""
        ...

    async def list_open_alerts(
        self, tenant_id: str | None = None, *, prune_before: datetime | None = None
    ) -> list[AlertState]:
        """Alerts not resolved (one tenant's or all), read through the open-alert index: the cost
        follows the number open, not the number stored. ``prune_before``: also drop index rows
        of alerts resolved before then."""
        ...

    async def list_recent_alerts(self, tenant_id: str, limit: int = 200) -> list[AlertState]:
        """The tenant's alerts in the open-alert index (open, and resolved ones the timer has
        not dropped from it yet), the most recently indexed first, at most ``limit``."""
        ...

    async def find_alerts(self, tenant_id: str, alert_id: str) -> list[AlertState]:
        """The tenant's alerts with this id, whatever their status."""
        ...


class DeliveryStore(Protocol):
    """Which card shows which alert where (alert and conversation → activity id)."""

    async def get_delivery(self, tenant_id: str, alert_key: str, conversation_id: str) -> Delivery | None: ...
    async def list_deliveries(self, tenant_id: str, alert_key: str) -> list[Delivery]: ...
    async def save_delivery(self, delivery: Delivery) -> Delivery:
        """Same ETag rules as :meth:`save_alert`."""
        ...

    async def delete_delivery(self, tenant_id: str, alert_key: str, conversation_id: str) -> None: ...
    async def mark_folded(self, deliveries: list[Delivery]) -> None:
        """Record alerts as counted in a conversation's storm summary (status ``folded``)."""
        ...

    async def claim(self, delivery: Delivery, keep: timedelta) -> Delivery:
        """Create a claim row (ConcurrencyConflict when it exists): a digest period's, a comment's;
        removed ``keep`` after its ``claimed_at``."""
        ...


class EventLog(Protocol):
    """Events processed (for exactly-once) and events rejected, with the reason."""

    async def was_processed(self, dedupe_key: str) -> bool: ...
    async def mark_processed(self, dedupe_key: str, event_id: str) -> None: ...

    async def record_rejected(self, rejected: RejectedEvent) -> None: ...
    async def list_rejected(self, limit: int = 100, tenant_id: str | None = None) -> list[RejectedEvent]: ...


class WorkflowStore(Protocol):
    """Each tenant's workflows (routing)."""

    async def list_workflows(self, tenant_id: str) -> list[Workflow]: ...
    async def list_all_workflows(self) -> list[Workflow]: ...
    async def get_workflow(self, tenant_id: str, workflow_id: str) -> Workflow | None: ...
    async def has_workflow(self, tenant_id: str, workflow_id: str) -> bool:
        """Whether a workflow is stored under this id, even one that cannot be read."""
        ...

    async def save_workflow(self, workflow: Workflow) -> Workflow:
        """Same ETag rules as :meth:`save_alert`."""
        ...

    async def delete_workflow(self, tenant_id: str, workflow_id: str) -> None: ...


class RecipientStore(Protocol):
    """What each workflow recipient resolved to, and the claim on setting it up."""

    async def get_recipient(self, tenant_id: str, recipient_key: str) -> dict[str, Any] | None:
        """What a recipient resolved to: ``{"conversationId", "failure", "until"}``."""
        ...

    async def claim_recipient(self, tenant_id: str, recipient_key: str, now: datetime, hold: timedelta) -> bool:
        """Claim setting a recipient up; False while another worker's claim is younger than ``hold``."""
        ...

    async def save_recipient(
        self,
        tenant_id: str,
        recipient_key: str,
        conversation_id: str | None,
        failure: str | None = None,
        until: datetime | None = None,
    ) -> None: ...


class PacingStore(Protocol):
    """Send windows, storm summaries and the tenants' send budgets, shared by every instance."""

    async def get_pacing(
        self, tenant_id: str, conversation_id: str
    ) -> tuple[str | None, dict[str, Any] | None, str | None]:
        """A conversation's send window (JSON) and storm summary, as last saved, with the ETag
        to save them against (None: never saved)."""
        ...

    async def save_pacing(
        self, tenant_id: str, conversation_id: str, window: str, summary: dict[str, Any] | None, etag: str | None
    ) -> str:
        """Save them if unchanged since read at ``etag`` (ConcurrencyConflict otherwise: another
        consumer wrote them meanwhile); the new ETag."""
        ...

    def last_pacing(self, tenant_id: str, conversation_id: str) -> tuple[str | None, dict[str, Any] | None, str] | None:
        """The window and summary as this process last read or wrote them, with their ETag,
        without a request (None: not remembered). Another consumer may have written them since."""
        ...

    async def save_delivery_paced(
        self, delivery: Delivery, window: str, summary: dict[str, Any] | None, pacing_etag: str | None
    ) -> tuple[Delivery, str]:
        """Save a delivery (same ETag rules as :meth:`DeliveryStore.save_delivery`) and its
        conversation's window and summary (as :meth:`save_pacing`) in one transaction, both or
        neither: ConcurrencyConflict ``write`` 0 when the window changed, 1 when the delivery
        did. The delivery with its new ETag, and the window's."""
        ...

    async def list_budget_slots(self, tenant_id: str) -> list[tuple[int, str, datetime | None, str]]:
        """The tenant's send-budget slots: (slot, holder instance, lease end, ETag)."""
        ...

    async def save_budget_slot(self, tenant_id: str, slot: int, holder: str, until: datetime, etag: str | None) -> str:
        """Lease a slot: create it (``etag`` None) or replace it if unchanged since ``etag``
        (ConcurrencyConflict otherwise); the new ETag."""
        ...

    async def read_budget(
        self, tenant_id: str
    ) -> tuple[list[tuple[int, str, datetime | None, str]], dict[str, datetime]]:
        """The slots, and the instances that want slots they could not get (instance -> until)."""
        ...

    async def save_budget_want(self, tenant_id: str, instance: str, until: datetime) -> None: ...

    async def save_summary_members(
        self, tenant_id: str, conversation_id: str, members: list[dict[str, Any]], *, first: bool = True
    ) -> None:
        """Alerts counted in the conversation's storm summary: ``{"alertKey", "severity", "status", "revision", "seq",
        "storm", "recipient", "fallback"}`` (``seq``: the summary's sequence when it was counted; ``storm``: which
        summary; ``recipient`` and ``fallback``: whom the alert was for and where it goes if the summary is refused);
        ``first``: newly counted (their removal is scheduled)."""
        ...

    async def get_summary_member(
        self, tenant_id: str, conversation_id: str, alert_key: str
    ) -> dict[str, Any] | None: ...
    async def delete_summary_member(self, tenant_id: str, conversation_id: str, alert_key: str) -> None: ...
    async def list_summary_members(self, tenant_id: str, conversation_id: str, storm: int) -> list[dict[str, Any]]: ...


class ActionStore(Protocol):
    """What people did in Teams (the outbox to the source) and their platform links."""

    async def save_action(self, action: ActionRecord) -> ActionRecord:
        """Record what someone did in Teams, to be sent back to the source; conditional like :meth:`save_alert`."""
        ...

    async def list_pending_actions(self) -> list[ActionRecord]:
        """Actions not yet sent back to their source (published again by the periodic run)."""
        ...

    async def save_link(self, link: AccountLink) -> None: ...
    async def get_link(self, tenant_id: str, aad_object_id: str) -> AccountLink | None: ...
    async def list_links(self, tenant_id: str) -> list[AccountLink]: ...
    async def delete_link(self, tenant_id: str, aad_object_id: str) -> None: ...


class UndeliverableStore(Protocol):
    """Alerts that reached nobody, with the reason."""

    async def record_undeliverable(self, record: Undeliverable) -> None: ...
    async def list_undeliverable(self, tenant_id: str, limit: int = 100) -> list[Undeliverable]: ...


class SourceRefused(Exception):
    """An alert source's own API answered with an error (``status``), or could not be reached
    (``status`` None); the message carries the source's own words."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SourceSilences(Protocol):
    """Silences in one alert source (shared.adapters.silences)."""

    async def create(
        self, matchers: list[dict[str, Any]], starts: datetime, ends: datetime, created_by: str, comment: str
    ) -> str: ...
    async def expire(self, silence_id: str) -> None: ...
    async def alerts(self, labels: dict[str, str]) -> list[dict[str, Any]]: ...


class SourceKeyStore(Protocol):
    """Each ingest source's key version (its key is derived from ADMIN_API_KEY and it), and the
    source's own API where the tenant's admin set one (shared.domain.source_api)."""

    async def source_key_version(self, tenant_id: str, source: str) -> int:
        """1 until the source's key is first rotated."""
        ...

    async def rotate_source_key(self, tenant_id: str, source: str) -> int:
        """The next version: the source's previous key stops working."""
        ...

    async def get_source_api(self, tenant_id: str, source: str) -> str | None:
        """The source's API settings, encrypted, as the admin last set them; None if unset."""
        ...

    async def save_source_api(self, tenant_id: str, source: str, sealed: str | None) -> None:
        """Store the source's encrypted API settings (None forgets them); its key stays."""
        ...


class StateStore(
    SourceKeyStore,
    ConnectionStore,
    ConversationStore,
    AlertStore,
    DeliveryStore,
    EventLog,
    WorkflowStore,
    RecipientStore,
    PacingStore,
    ActionStore,
    UndeliverableStore,
    Protocol,
):
    """Everything the app keeps (Table Storage: shared/adapters/state_store.py): the small stores
    above, plus removal at the end of retention. A service takes the smallest store it needs."""

    async def remove_due(self, now: datetime | None = None, max_removals: int = ...) -> Any:
        """Remove the records whose retention has ended (a bounded number per call); returns a
        report with ``summary()``."""
        ...

    async def close(self) -> None: ...


class DeliveryError(Exception):
    """Teams refused or failed a send. ``permanent`` failures are recorded, not retried."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        permanent: bool = False,
        conversation_gone: bool = False,
        retry_after: float | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = permanent
        # The request may have reached Teams (it timed out, or the connection dropped after it
        # was sent): a post may exist although no activity id came back.
        self.maybe_sent = maybe_sent
        # Seconds Teams asked to wait (Retry-After), when it said.
        self.retry_after = retry_after
        # Teams no longer has this conversation, or the bot is no longer in it.
        self.conversation_gone = conversation_gone


class TeamsMessenger(Protocol):
    async def post(self, conversation: ConversationRecord, card: dict[str, Any], summary: str) -> str:
        """Post a new card; returns the activity id."""
        ...

    async def update(
        self, conversation: ConversationRecord, activity_id: str, card: dict[str, Any], summary: str
    ) -> None: ...
    async def reply(
        self, conversation: ConversationRecord, activity_id: str, text: str, mentions: Sequence[Mention] = ()
    ) -> str:
        """Reply in the card's thread (channels) or after it (chats); returns the activity id.
        ``mentions``: people the text names as ``<at>Name</at>`` (shared.cards.mention_tag),
        each {"id" (Microsoft Entra object id), "name"}: Teams notifies them."""
        ...


class Bot(TeamsMessenger, Protocol):
    """The Teams bot: inbound activities (JWT-validated) and outbound cards
    (shared/adapters/teams_bot.py)."""

    async def process(
        self, body: bytes, auth_header: str | None, handler: Callable[[dict[str, Any], dict[str, Any]], Awaitable[Any]]
    ) -> tuple[int, Any]:
        """Validate and handle one POST /api/messages; the HTTP status and body to answer."""
        ...

    async def check_token(self) -> str:
        """Get the bot's token (the deep health check); raises with the reason."""
        ...

    async def close(self) -> None: ...


class GraphError(Exception):
    """Microsoft Graph refused a request. ``permission`` names the missing permission (403),
    ``missing`` the object that was not found (404)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        permission: str | None = None,
        missing: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.permission = permission
        self.missing = missing
        # Seconds Graph asked to wait (Retry-After), when it said.
        self.retry_after = retry_after


class ReconsentRequired(Exception):
    """A delegated token can no longer be refreshed (invalid_grant / interaction_required)."""


class Directory(Protocol):
    """The Microsoft Graph operations the service layer needs, per tenant (shared/adapters/graph.py)."""

    async def get_user(self, tenant_id: str, id_or_upn: str) -> dict[str, Any] | None:
        """``{"id", "displayName", "userPrincipalName", "mail"}`` or None when not found."""
        ...

    async def me(self, tenant_id: str) -> dict[str, Any]:
        """The user a delegated connection acts as, like :meth:`get_user` (a delegated token only)."""
        ...

    async def find_user_by_email(self, tenant_id: str, email: str) -> dict[str, Any] | None: ...
    async def search_users(self, tenant_id: str, text: str, limit: int = 25) -> list[dict[str, Any]]:
        """People whose name, mail or UPN contains ``text``."""
        ...

    async def list_teams(self, tenant_id: str) -> list[dict[str, Any]]: ...
    async def list_channels(self, tenant_id: str, team_id: str) -> list[dict[str, Any]]: ...
    async def channel_member_ids(self, tenant_id: str, team_id: str, channel_id: str) -> set[str]:
        """AAD object ids of the channel's members."""
        ...

    async def channel_owner_ids(self, tenant_id: str, team_id: str, channel_id: str) -> set[str]:
        """AAD object ids of the channel's owners (the team's owners, for a standard channel)."""
        ...

    async def create_channel(
        self,
        tenant_id: str,
        team_id: str,
        name: str,
        description: str,
        *,
        private: bool = False,
        owner_ids: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """``{"id", "displayName", "webUrl"}``; raises GraphError (status 409 on a name conflict)."""
        ...

    async def add_channel_member(
        self, tenant_id: str, team_id: str, channel_id: str, user_id: str, *, owner: bool = False
    ) -> None: ...
    async def create_chat(
        self, tenant_id: str, member_ids: tuple[str, ...], topic: str | None = None
    ) -> dict[str, Any]: ...
    async def create_meeting(
        self,
        tenant_id: str,
        organizer_id: str,
        subject: str,
        attendee_emails: tuple[str, ...],
        start: str,
        end: str,
        body_html: str = "",
    ) -> dict[str, Any]:
        """Calendar event with a Teams online meeting: ``{"id", "joinUrl", "webLink"}``."""
        ...

    async def install_app_for_user(self, tenant_id: str, user_id: str, teams_app_id: str) -> str:
        """Install the Teams app for the user if needed; the id of the app's 1:1 chat with the user."""
        ...

    async def install_app_in_chat(self, tenant_id: str, chat_id: str, teams_app_id: str) -> None:
        """Install the Teams app in the chat if needed (already installed is fine)."""
        ...


class ConsentFailed(Exception):
    """A sign-in response could not be redeemed (shared/adapters/identity.py); the message says why."""


class ActionPublisher(Protocol):
    """Sends what people did in Teams back to the alert source (queue %TEAMS_ACTIONS_QUEUE%)."""

    async def publish(self, message_id: str, event: dict[str, Any]) -> None:
        """Send one CloudEvent; ``message_id`` is stable so Service Bus drops a resend."""
        ...

    async def close(self) -> None: ...


class JobQueue(Protocol):
    """The internal deliveries queue (%DELIVERY_QUEUE%): session id = conversation."""

    async def send(self, jobs: Sequence[DeliveryJob | JobBundle]) -> None:
        """Enqueue the jobs (or bundles of one conversation's jobs); a job's ``not_before`` makes
        it a scheduled message. The message id is the job's stable id, so a resend within the
        duplicate-detection window is dropped."""
        ...

    async def close(self) -> None: ...
