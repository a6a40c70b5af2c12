"""Connecting a Microsoft tenant: start the consent flow, complete it, and the connector's
lifecycle (pending / connected / needs_reconsent / disconnected). No SDK imports: the identity
(MSAL), the directory (Graph) and the store come in as arguments.

Two connection methods (docs/CONNECTING.md):
- ``bot``: admin consent to the application permissions; verified by getting an app-only
  token for the returned tenant and reading its organisation.
- ``delegated``: authorization code flow with PKCE through MSAL; the token cache is stored
  encrypted and the user's profile names who connected.

The ``state`` parameter is signed (HMAC), expires after ten minutes and is single use: it names
a pending flow in Table Storage that is removed when the callback uses it. A callback is
trusted for nothing but what its verified state says; the ``tenant`` parameter alone
authorises nothing (the app-only token or the redeemed code proves it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from shared.domain import tenants
from shared.domain.connections import METHODS, DeliveryTarget, PendingFlow, TenantConnection
from shared.domain.model import GRAPH_DELIVERY, ConversationRecord
from shared.permissions import APPLICATION_PERMISSIONS, GRAPH_DEFAULT_SCOPE
from shared.ports import ConcurrencyConflict, ConnectionStore, ConsentFailed, GraphError, ReconsentRequired, StateStore
from shared.security import DecryptionError, InvalidState, StateSigner, TokenCipher, cache_associated_data

log = logging.getLogger(__name__)

# Marks a conversation record that is a delegated delivery target (posted through Graph as
# the connected user, not by the bot).
MAX_TARGETS = 20


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ConsentPage:
    """What the browser is shown at the end of a flow."""

    status: int
    title: str
    message: str
    tenant_id: str | None = None


class ConsentInputError(ValueError):
    """The consent start request is invalid; the message says what to fix."""


def flow_associated_data(flow_id: str) -> str:
    return f"consent-flow:{flow_id}"


def delivery_conversation(tenant_id: str, target: DeliveryTarget, now: datetime) -> ConversationRecord:
    """A delegated delivery target as a conversation record, so alert processing finds it like
    any conversation the bot is in; the reference says it is delivered through Graph."""
    kind = "channel" if target.channel_id else "groupChat"
    return ConversationRecord(
        tenant_id=tenant_id,
        conversation_id=target.conversation_id,
        conversation_type=kind,
        service_url="",
        reference={
            "delivery": GRAPH_DELIVERY,
            "teamId": target.team_id,
            "channelId": target.channel_id,
            "chatId": target.chat_id,
        },
        name=target.conversation_id,
        team_id=target.team_id,
        channel_id=target.channel_id,
        updated=now,
    )


def parse_targets(params: Mapping[str, Any]) -> tuple[DeliveryTarget, ...]:
    """``team`` + ``channel`` and/or ``chat`` from the connect request."""
    targets = []
    team, channel, chat = params.get("team"), params.get("channel"), params.get("chat")
    if bool(team) != bool(channel):
        raise ConsentInputError("give both team and channel (the channel's team id and channel id), or neither")
    if team and channel:
        targets.append(DeliveryTarget(team_id=team, channel_id=channel))
    if chat:
        targets.append(DeliveryTarget(chat_id=chat))
    return tuple(targets[:MAX_TARGETS])


async def mark_needs_reconsent(
    store: ConnectionStore, tenant_id: str, reason: str, now: datetime | None = None
) -> None:
    """Record that the delegated token was refused (ETag-conditional; first writer wins)."""
    for _ in range(3):
        connection = await store.get_connection(tenant_id)
        if connection is None or connection.status in ("needs_reconsent", "disconnected"):
            return
        try:
            await store.save_connection(connection.with_status("needs_reconsent", reason, now or _now()))
            log.warning("Tenant %s needs consent again: %s", tenant_id, reason)
            return
        except ConcurrencyConflict:
            continue


class ConsentService:
    def __init__(
        self,
        *,
        store: StateStore,
        signer: StateSigner,
        cipher: TokenCipher,
        identity: Any,  # shared.adapters.identity.MsalIdentity
        directory: Any,  # shared.adapters.graph.GraphDirectory
        app_id: str,
        authority_host: str,
        redirect_uri: str,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._store = store
        self._signer = signer
        self._cipher = cipher
        self._identity = identity
        self._directory = directory
        self._app_id = app_id
        self._authority_host = authority_host.rstrip("/")
        self._redirect_uri = redirect_uri
        self._clock = clock

    # ------------------------------------------------------------------ start

    async def start(
        self, method: str, *, tenant: str | None = None, targets: tuple[DeliveryTarget, ...] = (), started_by: str = ""
    ) -> str:
        """Store a pending flow and return the Microsoft URL to send the admin's browser to."""
        if method not in METHODS:
            raise ConsentInputError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        if tenant is not None:
            try:
                tenant = tenants.tenant_id(tenant)
            except tenants.InvalidTenantId as exc:
                raise ConsentInputError(f"tenant {exc}") from None
        if targets and method != "delegated":
            raise ConsentInputError(
                "delivery targets (team/channel/chat) apply to the delegated method only; the bot posts where "
                "it is installed"
            )
        now = self._clock()
        flow_id = secrets.token_urlsafe(18)
        state = self._signer.sign({"f": flow_id, "m": method})
        flow_text = ""
        if method == "bot":
            url = f"{self._authority_host}/{tenant or 'organizations'}/v2.0/adminconsent?" + urlencode(
                {
                    "client_id": self._app_id,
                    "scope": GRAPH_DEFAULT_SCOPE,
                    "redirect_uri": self._redirect_uri,
                    "state": state,
                }
            )
        else:
            flow = await self._identity.begin(state, tenant)
            url = flow["auth_uri"]
            flow_text = self._cipher.encrypt(json.dumps(flow), flow_associated_data(flow_id))
        await self._store.save_pending_flow(
            PendingFlow(
                flow_id=flow_id,
                method=method,
                tenant_hint=tenant,
                flow=flow_text,
                targets=targets,
                started_by=started_by,
                created=now,
            )
        )
        if tenant:
            await self._mark_pending(tenant, method, now)
        return url

    async def _mark_pending(self, tenant_id: str, method: str, now: datetime) -> None:
        existing = await self._store.get_connection(tenant_id)
        if existing is not None and existing.status != "disconnected":
            return  # a live connector stays as it is until the new consent completes
        connection = TenantConnection(
            tenant_id,
            method,
            "pending",
            status_reason="consent started",
            status_changed=now,
            etag=existing.etag if existing else None,
        )
        with contextlib.suppress(ConcurrencyConflict):
            await self._store.save_connection(connection)

    # ------------------------------------------------------------------ callback

    async def complete(self, params: Mapping[str, str]) -> ConsentPage:
        # Microsoft may send error together with admin_consent=True: check it first.
        if params.get("error"):
            return await self._refused(params)
        try:
            state = self._signer.verify(params.get("state", ""))
        except InvalidState as exc:
            return ConsentPage(
                400,
                "This consent link cannot be used",
                f"{exc}. Nothing was changed. Start again from the connect link.",
            )
        flow = await self._store.take_pending_flow(str(state.get("f", "")))
        if flow is None:
            return ConsentPage(
                400,
                "This consent link was already used",
                "Each link completes one consent only. Nothing was changed. Start again from the connect link.",
            )
        if flow.method != state.get("m"):
            return ConsentPage(
                400, "This consent link cannot be used", "The link does not match its flow. Nothing was changed."
            )
        if flow.method == "bot":
            return await self._complete_admin_consent(flow, params)
        return await self._complete_delegated(flow, params)

    async def _refused(self, params: Mapping[str, str]) -> ConsentPage:
        try:  # a valid state's flow is used up too, so it cannot be replayed
            state = self._signer.verify(params.get("state", ""))
            await self._store.take_pending_flow(str(state.get("f", "")))
        except InvalidState:
            pass
        error = params.get("error", "")
        description = (
            (params.get("error_description") or "").splitlines()[0][:300] if params.get("error_description") else ""
        )
        if error in ("access_denied", "consent_required"):
            what = "Consent was declined, so the connector was not connected."
        else:
            what = f"Microsoft reported an error ({error}), so the connector was not connected."
        how = (
            "Nothing was changed. To retry, ask a global administrator (or a privileged role administrator) to "
            "open the connect link again and accept."
        )
        return ConsentPage(
            400, "The tenant was not connected", f"{what} {description} {how}".replace("  ", " ").strip()
        )

    async def _complete_admin_consent(self, flow: PendingFlow, params: Mapping[str, str]) -> ConsentPage:
        tenant_id = params.get("tenant", "")
        if params.get("admin_consent", "").lower() != "true" or not tenant_id:
            return ConsentPage(
                400,
                "The tenant was not connected",
                "Microsoft did not confirm admin consent. Nothing was changed. Open the connect link again.",
            )
        try:
            tenant_id = tenants.tenant_id(tenant_id)
        except tenants.InvalidTenantId:
            log.warning("Consent callback refused: its tenant parameter is not a tenant id")
            return ConsentPage(
                400,
                "The tenant was not connected",
                "Microsoft's answer did not name a tenant id. Nothing was changed. Open the connect link again.",
            )
        if flow.tenant_hint and flow.tenant_hint.lower() != tenant_id.lower():
            return ConsentPage(
                400,
                "The tenant was not connected",
                (
                    f"Consent was given in tenant {tenant_id}, but the link was for tenant {flow.tenant_hint}. "
                    "Nothing was changed."
                ),
            )
        existing = await self._store.get_connection(tenant_id)
        if existing is not None and existing.status == "disconnected" and not flow.tenant_hint:
            # The callback's tenant parameter is not proof of who consented: a link made for no
            # tenant never brings back one that an administrator disconnected.
            log.warning("Refused to reconnect disconnected tenant %s from a consent link made for no tenant", tenant_id)
            return ConsentPage(
                403,
                "The tenant was not connected",
                f"Tenant {tenant_id} was disconnected. Reconnecting it needs a connect link made for it "
                f"(/api/connect?method=bot&tenant={tenant_id}). Nothing was changed.",
            )
        try:
            claims = await self._directory.app_token_claims(tenant_id)
            if claims.get("tid", "").lower() != tenant_id.lower():
                return ConsentPage(
                    403,
                    "The tenant was not connected",
                    (
                        f"Microsoft did not issue the connector a token for tenant {tenant_id}, so its consent "
                        "there is not proven. Nothing was changed."
                    ),
                )
            organisation = await self._directory.organization(tenant_id, mode="app")
            roles = tuple(sorted(claims.get("roles") or ()))
        except GraphError as exc:
            if exc.code == "TokenFailed":
                # The callback's tenant parameter proves nothing: no token, no proof of consent.
                message = (
                    f"Microsoft did not issue the connector a token for tenant {tenant_id}, so its consent there "
                    f"is not proven. {exc}"
                )
            else:
                message = f"Consent was recorded by Microsoft, but the connector could not use it: {exc}"
            return ConsentPage(502, "The tenant was not connected", f"{message} Nothing was changed.")
        now = self._clock()
        connection = TenantConnection(
            tenant_id=tenant_id,
            method="bot",
            status="connected",
            organisation=organisation["displayName"],
            scopes=tuple(roles) or tuple(APPLICATION_PERMISSIONS),
            connected_at=now,
            connected_by=flow.started_by or "a tenant administrator (admin consent)",
            status_reason="admin consent verified with an app-only token",
            status_changed=now,
            etag=existing.etag if existing else None,
        )
        await self._save_over(connection, existing)
        log.info("Tenant %s (%s) connected with the bot method", tenant_id, connection.organisation)
        return ConsentPage(
            200,
            f"Connected to {connection.organisation}",
            "Alerts for this organisation will now reach Teams.",
            tenant_id,
        )

    async def _complete_delegated(self, flow: PendingFlow, params: Mapping[str, str]) -> ConsentPage:
        try:
            msal_flow = json.loads(self._cipher.decrypt(flow.flow, flow_associated_data(flow.flow_id)))
        except DecryptionError:
            return ConsentPage(
                400,
                "This consent link cannot be used",
                "The stored sign-in flow cannot be read (was the encryption key changed?). Start again.",
            )
        try:
            redeemed = await self._identity.redeem(msal_flow, dict(params), flow.tenant_hint)
        except ConsentFailed as exc:
            return ConsentPage(
                400,
                "The tenant was not connected",
                f"The sign-in could not be completed: {exc}. Nothing was changed. Open the connect link again.",
            )
        tenant_id = redeemed.tenant_id
        if flow.tenant_hint and flow.tenant_hint.lower() != tenant_id.lower():
            return ConsentPage(
                400,
                "The tenant was not connected",
                (
                    f"You signed in to tenant {tenant_id}, but the link was for tenant {flow.tenant_hint}. Nothing "
                    "was changed."
                ),
            )
        now = self._clock()
        existing = await self._store.get_connection(tenant_id)
        connection = TenantConnection(
            tenant_id=tenant_id,
            method="delegated",
            status="pending",
            scopes=redeemed.scopes,
            connected_at=now,
            connected_by=redeemed.username,
            status_reason="signed in; verifying with Microsoft Graph",
            status_changed=now,
            token_cache=self._cipher.encrypt(redeemed.cache, cache_associated_data(tenant_id)),
            account_id=redeemed.account_id,
            etag=existing.etag if existing else None,
        )
        await self._save_over(connection, existing)
        try:
            me = await self._directory.me(tenant_id)
            organisation = await self._directory.organization(tenant_id, mode="delegated")
        except (GraphError, ReconsentRequired) as exc:
            return ConsentPage(
                502,
                "The tenant was not connected",
                f"Signed in, but Microsoft Graph refused the delegated token: {exc}",
            )
        for _ in range(3):
            latest = await self._store.get_connection(tenant_id)  # the verification may have refreshed the cache
            if latest is None:
                break
            try:
                await self._store.save_connection(
                    replace(
                        latest,
                        status="connected",
                        organisation=organisation["displayName"],
                        connected_by=me.get("userPrincipalName") or me.get("displayName") or redeemed.username,
                        status_reason="signed in and verified with Microsoft Graph",
                        status_changed=self._clock(),
                    )
                )
                break
            except ConcurrencyConflict:
                continue
        for target in flow.targets:
            await self._store.save_conversation(delivery_conversation(tenant_id, target, now))
        log.info(
            "Tenant %s (%s) connected with the delegated method by %s",
            tenant_id,
            organisation["displayName"],
            me.get("userPrincipalName"),
        )
        return ConsentPage(
            200,
            f"Connected to {organisation['displayName']}",
            f"Alerts will be posted as {me.get('displayName') or redeemed.username}.",
            tenant_id,
        )

    async def _save_over(self, connection: TenantConnection, existing: TenantConnection | None) -> TenantConnection:
        try:
            return await self._store.save_connection(connection)
        except ConcurrencyConflict:
            latest = await self._store.get_connection(connection.tenant_id)
            return await self._store.save_connection(replace(connection, etag=latest.etag if latest else None))

    # ------------------------------------------------------------------ lifecycle

    async def disconnect(self, tenant_id: str) -> TenantConnection | None:
        """Stop using the tenant: status disconnected, token cache erased, delegated delivery
        targets removed. Admin consent itself is revoked in Entra (docs/CONNECTING.md)."""
        for _ in range(3):
            connection = await self._store.get_connection(tenant_id)
            if connection is None:
                return None
            try:
                saved = await self._store.save_connection(
                    replace(
                        connection.with_status("disconnected", "disconnected by an administrator", self._clock()),
                        token_cache="",
                        account_id="",
                    )
                )
                break
            except ConcurrencyConflict:
                continue
        else:
            raise ConcurrencyConflict(f"connector {tenant_id} kept changing")
        for conversation in await self._store.list_conversations(tenant_id):
            if conversation.through_graph:
                await self._store.remove_conversation(tenant_id, conversation.conversation_id)
        return saved
