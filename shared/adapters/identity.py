"""Sign-in and delegated tokens with MSAL: the only module that imports ``msal``.

- :class:`MsalIdentity` starts the authorization code flow with PKCE
  (``initiate_auth_code_flow``: MSAL makes the verifier, the nonce and the challenge), redeems
  the code (``acquire_token_by_auth_code_flow``, which checks the state), and refreshes
  delegated tokens silently from a serialized cache.
- :class:`DelegatedTokens` keeps that cache in the connector entity, encrypted, and writes a
  refreshed cache back with the entity's ETag, so two workers refreshing at once never
  overwrite a newer cache with an older one. ``invalid_grant`` / ``interaction_required``
  move the connector to needs_reconsent and raise :class:`ReconsentRequired`.

TLS and authorities: MSAL accepts https authorities only. Against a local simulator the
authority host is the simulator's TLS address and MSAL gets a ``requests.Session`` whose
``verify`` is the simulator's CA file (``LOCAL_CA_CERT_FILE``), plus
``instance_discovery=False`` (there is no Microsoft instance discovery for a local host).
Verification is never switched off. MSAL is synchronous: calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import msal
import requests

from shared.adapters.app_registration import TOKEN_EXCHANGE_SCOPE, AppRegistration
from shared.domain.connections import TenantConnection
from shared.permissions import GRAPH_RESOURCE, delegated_scope_uris
from shared.ports import ConcurrencyConflict, ConnectionStore, ConsentFailed, ReconsentRequired, TransientError
from shared.security import DecryptionError, TokenCipher, cache_associated_data

log = logging.getLogger(__name__)

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
# MSAL errors after which only the user can fix things (sign in and consent again).
RECONSENT_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required", "login_required"})
# A tenant's ID token signing keys are read again after this long (they roll over in days).
KEYS_CACHE_SECONDS = 3600
# Optimistic-concurrency attempts when writing a refreshed cache back.
MAX_CACHE_WRITES = 3


@dataclass(frozen=True, kw_only=True)
class IdentityConfig(AppRegistration):
    redirect_uri: str


@dataclass(frozen=True)
class Redeemed:
    tenant_id: str
    account_id: str
    user_id: str
    username: str
    display_name: str
    scopes: tuple[str, ...]
    cache: str  # serialized MSAL token cache (plaintext: encrypt before storing)


def _short(scope: str) -> str:
    return scope[len(GRAPH_RESOURCE) + 1 :] if scope.startswith(GRAPH_RESOURCE + "/") else scope


class MsalIdentity:
    def __init__(self, config: IdentityConfig) -> None:
        self._config = config
        self._session = requests.Session()
        self._keys: dict[str, tuple[float, dict[str, Any]]] = {}  # tenant -> (fresh until, JWKS)
        if config.ca_file:
            # Per request, not session.verify: requests lets REQUESTS_CA_BUNDLE override a
            # session's verify, but never an explicit argument.
            self._session.request = functools.partial(self._session.request, verify=config.ca_file)  # type: ignore[method-assign]

    def close(self) -> None:
        self._session.close()

    def _client_credential(self) -> Any:
        c = self._config
        if c.credential_type == "secret":
            return c.client_secret
        if c.credential_type == "certificate":
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization

            with open(c.certificate_path or "", "rb") as file:
                pem = file.read()
            cert = x509.load_pem_x509_certificate(pem)
            key = serialization.load_pem_private_key(pem, password=None)
            return {
                "private_key": key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ).decode(),
                "thumbprint": cert.fingerprint(hashes.SHA1()).hex(),
            }
        if c.credential_type == "federated_managed_identity":
            from azure.identity import ManagedIdentityCredential

            identity = ManagedIdentityCredential(client_id=c.managed_identity_client_id)
            return {"client_assertion": lambda: identity.get_token(TOKEN_EXCHANGE_SCOPE).token}
        raise ValueError(f"unknown credential type {c.credential_type!r}")

    def _app(self, tenant: str, cache: msal.SerializableTokenCache | None = None) -> msal.ConfidentialClientApplication:
        custom_host = self._config.authority_host.rstrip("/") != DEFAULT_AUTHORITY_HOST
        return msal.ConfidentialClientApplication(
            self._config.app_id,
            client_credential=self._client_credential(),
            authority=f"{self._config.authority_host.rstrip('/')}/{tenant}",
            token_cache=cache,
            http_client=self._session,
            instance_discovery=False if custom_host else None,
        )

    # -- the authorization code flow --------------------------------------------------

    async def begin(self, state: str, tenant: str | None) -> dict[str, Any]:
        """The MSAL flow (keep it server-side); its ``auth_uri`` is where the browser goes."""

        def run() -> dict[str, Any]:
            flow: dict[str, Any] = self._app(tenant or "organizations").initiate_auth_code_flow(
                # form_post keeps the code out of URLs, logs and Referer headers (RFC 9700 4.3.1).
                delegated_scope_uris(),
                redirect_uri=self._config.redirect_uri,
                state=state,
                response_mode="form_post",
            )
            return flow

        return await asyncio.to_thread(run)

    async def redeem(self, flow: dict[str, Any], params: dict[str, str], tenant: str | None) -> Redeemed:
        def run() -> Redeemed:
            cache = msal.SerializableTokenCache()
            app = self._app(tenant or "organizations", cache)
            try:
                result = app.acquire_token_by_auth_code_flow(flow, params)
            except ValueError as exc:  # MSAL: state mismatch and the like
                raise ConsentFailed(f"the sign-in response did not match the flow: {exc}") from exc
            if "error" in result:
                raise ConsentFailed(f"{result['error']}: {str(result.get('error_description', '')).splitlines()[0]}")
            claims = result.get("id_token_claims") or {}
            account = (app.get_accounts() or [{}])[0]
            return Redeemed(
                tenant_id=claims.get("tid", ""),
                account_id=account.get("home_account_id", ""),
                user_id=claims.get("oid", ""),
                username=claims.get("preferred_username", ""),
                display_name=claims.get("name", ""),
                scopes=tuple(_short(s) for s in str(result.get("scope", "")).split() if s.startswith(GRAPH_RESOURCE)),
                cache=cache.serialize(),
            )

        return await asyncio.to_thread(run)

    # -- the console's sign-in ("Sign in with Microsoft": an ID token, no Graph scopes) -------

    async def begin_sign_in(self, redirect_uri: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            flow: dict[str, Any] = self._app("organizations").initiate_auth_code_flow(
                [],
                redirect_uri=redirect_uri,
                response_mode="form_post",  # the code stays out of URLs (RFC 9700 4.3.1)
                prompt="select_account",
            )
            return flow

        return await asyncio.to_thread(run)

    async def redeem_sign_in(self, flow: dict[str, Any], params: dict[str, str]) -> str:
        """The ID token (not verified here: shared.console.signin verifies it in full);
        ConsentFailed saying why when Microsoft gives none."""

        def run() -> str:
            app = self._app("organizations", msal.SerializableTokenCache())
            try:
                result = app.acquire_token_by_auth_code_flow(flow, params)
            except ValueError as exc:  # MSAL: state or nonce mismatch and the like
                raise ConsentFailed(f"the sign-in answer did not match its request ({exc})") from None
            except requests.RequestException as exc:
                raise TransientError(f"the identity platform is unreachable: {exc}") from exc
            if "error" in result:
                reason = str(result.get("error_description", "")).splitlines()[0][:300]
                raise ConsentFailed(f"Microsoft refused the sign-in ({result['error']}): {reason}")
            return str(result.get("id_token", ""))

        return await asyncio.to_thread(run)

    async def signing_keys(self, tenant_id: str) -> dict[str, Any]:
        """The keys the tenant signs ID tokens with (its JWKS), read at most once an hour."""
        cached = self._keys.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]

        def run() -> dict[str, Any]:
            url = f"{self._config.authority_host.rstrip('/')}/{tenant_id}/discovery/v2.0/keys"
            try:
                answer = self._session.get(url, timeout=15)
                answer.raise_for_status()
                keys: dict[str, Any] = answer.json()
            except (requests.RequestException, ValueError) as exc:
                raise TransientError(f"the tenant's signing keys could not be read: {exc}") from exc
            return keys

        keys = await asyncio.to_thread(run)
        self._keys[tenant_id] = (time.monotonic() + KEYS_CACHE_SECONDS, keys)
        return keys

    async def refresh(self, tenant_id: str, cache_text: str, account_id: str) -> tuple[str, int, str | None]:
        """``(access_token, expires_on, new_cache or None)`` from the cache, refreshing it when the
        access token is (nearly) expired. Raises ReconsentRequired or TransientError."""

        def run() -> tuple[str, int, str | None]:
            cache = msal.SerializableTokenCache()
            cache.deserialize(cache_text)
            app = self._app(tenant_id, cache)
            accounts = [a for a in app.get_accounts() if not account_id or a.get("home_account_id") == account_id]
            if not accounts:
                raise ReconsentRequired("the stored token cache holds no signed-in account")
            try:
                result = app.acquire_token_silent_with_error(delegated_scope_uris(), accounts[0])
            except requests.RequestException as exc:
                raise TransientError(f"the identity platform is unreachable: {exc}") from exc
            if not result:
                raise ReconsentRequired("no token in the cache can be refreshed")
            if "error" in result:
                reason = f"{result['error']}: {str(result.get('error_description', '')).splitlines()[0]}"
                if result["error"] in RECONSENT_ERRORS:
                    raise ReconsentRequired(reason)
                raise TransientError(f"token refresh failed: {reason}")
            expires_on = int(time.time()) + int(result.get("expires_in", 0))
            return result["access_token"], expires_on, cache.serialize() if cache.has_state_changed else None

        return await asyncio.to_thread(run)


class DelegatedTokens:
    """The ``acquire(tenant_id)`` behind the Graph helper's delegated credential."""

    def __init__(
        self,
        identity: MsalIdentity,
        store: ConnectionStore,
        cipher: TokenCipher,
        on_reconsent: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self._identity = identity
        self._store = store
        self._cipher = cipher
        self._on_reconsent = on_reconsent

    async def __call__(self, tenant_id: str) -> tuple[str, int]:
        connection = await self._store.get_connection(tenant_id)
        if connection is None or connection.method != "delegated" or not connection.token_cache:
            raise ReconsentRequired(f"tenant {tenant_id} has no delegated connection")
        if connection.status == "needs_reconsent":
            raise ReconsentRequired(connection.status_reason or "the connection needs consent again")
        if connection.status == "disconnected":
            raise ReconsentRequired("the connection was disconnected")
        associated = cache_associated_data(tenant_id)
        try:
            cache_text = self._cipher.decrypt(connection.token_cache, associated)
        except DecryptionError:
            # Not an outage: the key that sealed it is gone (TOKEN_ENCRYPTION_KEY changed without
            # keeping the old key) or the record was altered. Only a new sign-in helps.
            reason = (
                "the stored sign-in cannot be read with TOKEN_ENCRYPTION_KEY "
                "(was the key replaced instead of rotated?); connect the tenant again"
            )
            log.error("Tenant %s: %s", tenant_id, reason)
            await self._on_reconsent(tenant_id, reason)
            raise ReconsentRequired(reason) from None
        try:
            token, expires_on, new_cache = await self._identity.refresh(tenant_id, cache_text, connection.account_id)
        except ReconsentRequired as exc:
            await self._on_reconsent(tenant_id, str(exc))
            raise
        if new_cache is not None or self._cipher.needs_rotation(connection.token_cache):
            await self._write_back(connection, new_cache or cache_text, associated)
        return token, expires_on

    async def _write_back(self, connection: TenantConnection, cache_text: str, associated: str) -> None:
        current = connection
        for _ in range(MAX_CACHE_WRITES):
            try:
                await self._store.save_connection(
                    replace(current, token_cache=self._cipher.encrypt(cache_text, associated))
                )
                return
            except ConcurrencyConflict:
                latest = await self._store.get_connection(connection.tenant_id)
                if latest is None or latest.method != "delegated" or latest.status != connection.status:
                    return  # disconnected or re-consented meanwhile: never resurrect an old cache
                if latest.token_cache != connection.token_cache:
                    return  # another worker wrote a refreshed cache: keep the newer one
                current = latest  # only other fields changed: write ours on the latest version
        log.warning(
            "Could not write the refreshed token cache of tenant %s back; the next call refreshes again",
            connection.tenant_id,
        )
