"""A tenant's connection to Microsoft 365 (:class:`TenantConnection`) and a consent flow in progress.
Pure Python.

Names: "the connector" is this project; "Bot Connector" is Microsoft's service the bot posts
through; a tenant's link to Microsoft 365 is a *connection*. The table keeps its older name,
``connectors``, and its partition ``connector``, so stored connections stay readable."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

METHODS = ("bot", "delegated")
# pending: consent started (tenant named) or stored but not yet verified
# connected: verified; alerts flow
# needs_reconsent: the delegated refresh token was refused (invalid_grant / interaction_required)
# disconnected: an admin disconnected the tenant; nothing is sent through it
STATUSES = ("pending", "connected", "needs_reconsent", "disconnected")


@dataclass(frozen=True)
class TenantConnection:
    tenant_id: str
    method: str
    status: str
    organisation: str = ""
    scopes: tuple[str, ...] = ()
    connected_at: datetime | None = None
    connected_by: str = ""
    status_reason: str = ""
    status_changed: datetime | None = None
    token_cache: str = ""  # encrypted MSAL cache (delegated); never stored in clear
    account_id: str = ""  # MSAL home account id of the connected user
    etag: str | None = None

    def with_status(self, status: str, reason: str, now: datetime) -> TenantConnection:
        return replace(self, status=status, status_reason=reason, status_changed=now)

    def public(self) -> dict[str, Any]:
        """What an operator may see (no token material)."""
        return {
            "tenantId": self.tenant_id,
            "method": self.method,
            "status": self.status,
            "organisation": self.organisation,
            "scopes": list(self.scopes),
            "connectedAt": self.connected_at.isoformat() if self.connected_at else None,
            "connectedBy": self.connected_by,
            "statusReason": self.status_reason,
            "statusChanged": self.status_changed.isoformat() if self.status_changed else None,
        }


@dataclass(frozen=True)
class DeliveryTarget:
    """Where a delegated connection posts alert cards: a channel (team + channel) or a chat."""

    team_id: str | None = None
    channel_id: str | None = None
    chat_id: str | None = None

    @property
    def conversation_id(self) -> str:
        return self.channel_id or self.chat_id or ""


@dataclass(frozen=True)
class PendingFlow:
    """A consent flow started by /api/connect, waiting for its callback. Single use."""

    flow_id: str
    method: str
    tenant_hint: str | None
    flow: str  # encrypted MSAL auth code flow (delegated: holds the PKCE verifier); "" for bot
    targets: tuple[DeliveryTarget, ...] = field(default_factory=tuple)
    started_by: str = ""
    created: datetime | None = None
    etag: str | None = None
