"""Sign in with Microsoft: OpenID Connect (authorization code with PKCE) through the connector's
own multi-tenant app registration and the credential it already uses (secret, certificate, or
the managed identity as a federated credential), then the ID token validated in full here:
signature by a key the person's tenant publishes, issuer of that tenant, audience the
connector's app, the nonce of this sign-in, and its lifetime.

Who may manage a tenant comes from what Microsoft proves, never from a form: a Global
Administrator or Teams Administrator of that tenant (the ``wids`` claim: directory role template
ids, sent because the app registration's ``groupMembershipClaims`` includes ``DirectoryRole``,
infra/app/graph-app.bicep), or a person whose object id is in ``CONNECTOR_ADMINS``. A UPN is
never trusted for this: ``preferred_username`` can be changed and is not proof of anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
TEAMS_ADMINISTRATOR = "69091246-20e8-4a56-aa4d-066075b2a7a8"
#: Role template ids (Microsoft Entra built-in roles reference, "Role template IDs").
ADMIN_ROLES = {GLOBAL_ADMINISTRATOR: "Global Administrator", TEAMS_ADMINISTRATOR: "Teams Administrator"}
CLOCK_SKEW_SECONDS = 300
MAX_ID_TOKEN_CHARS = 16_000


class SignInRefused(Exception):
    """The sign-in did not prove who the person is; the message says why (shown to them)."""


def verify_id_token(
    token: str,
    keys: Mapping[str, Any],
    *,
    app_id: str,
    authority_host: str,
    nonce: str,
    now: datetime,
) -> dict[str, Any]:
    """The ID token's claims, once every check holds; SignInRefused naming the first that does not."""
    import jwt

    if not token or len(token) > MAX_ID_TOKEN_CHARS:
        raise SignInRefused("Microsoft sent no usable ID token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise SignInRefused(f"the ID token cannot be read ({exc})") from None
    if header.get("alg") != "RS256":
        raise SignInRefused(f"the ID token is signed with {header.get('alg')!r}, not RS256")
    key = next((k for k in keys.get("keys", []) if isinstance(k, dict) and k.get("kid") == header.get("kid")), None)
    if key is None:
        raise SignInRefused("the ID token is signed by a key the tenant does not publish")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            jwt.PyJWK(key).key,
            algorithms=["RS256"],
            audience=app_id,
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require": ["iss", "aud", "exp"]},
        )
    except jwt.InvalidAudienceError:
        raise SignInRefused("the ID token was issued to another application") from None
    except jwt.PyJWTError as exc:
        raise SignInRefused(f"the ID token does not verify ({exc})") from None
    tenant, oid = str(claims.get("tid", "")), str(claims.get("oid", ""))
    if not tenant or not oid:
        raise SignInRefused("the ID token names no tenant or person (tid, oid)")
    if claims.get("iss") != f"{authority_host.rstrip('/')}/{tenant}/v2.0":
        raise SignInRefused("the ID token was not issued by the person's tenant")
    if not nonce or claims.get("nonce") != nonce:
        raise SignInRefused("the ID token belongs to another sign-in (nonce)")
    moment = now.timestamp()
    if float(claims["exp"]) < moment - CLOCK_SKEW_SECONDS:
        raise SignInRefused("the ID token has expired")
    if float(claims.get("nbf", claims.get("iat", 0))) > moment + CLOCK_SKEW_SECONDS:
        raise SignInRefused("the ID token is not valid yet")
    return claims


def admin_because(claims: Mapping[str, Any], connector_admins: tuple[str, ...]) -> str | None:
    """Why the signed-in person may manage their tenant's connector, or None."""
    roles = claims.get("wids") or []
    for role in roles if isinstance(roles, list) else []:
        if str(role).lower() in ADMIN_ROLES:
            return ADMIN_ROLES[str(role).lower()]
    if str(claims.get("oid", "")).lower() in connector_admins:
        return "listed in CONNECTOR_ADMINS"
    return None


class SignIn:
    """The flow's two steps; the identity adapter (MSAL) starts the flow and redeems the code."""

    def __init__(
        self,
        identity: Any,  # shared.adapters.identity.MsalIdentity
        *,
        app_id: str,
        authority_host: str,
        redirect_uri: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._identity = identity
        self._app_id = app_id
        self._authority_host = authority_host.rstrip("/")
        self._redirect_uri = redirect_uri
        self._clock = clock

    async def begin(self) -> dict[str, Any]:
        """MSAL's flow (kept in the sealed sign-in cookie); its ``auth_uri`` is where the browser goes."""
        flow: dict[str, Any] = await self._identity.begin_sign_in(self._redirect_uri)
        return flow

    async def complete(self, flow: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        """The verified claims of the person who signed in."""
        if params.get("error"):
            description = (str(params.get("error_description") or "").splitlines() or [""])[0][:300]
            raise SignInRefused(f"Microsoft did not sign you in ({params['error']}). {description}".strip())
        if params.get("state") != flow.get("state"):
            raise SignInRefused("the answer belongs to another sign-in (state)")
        from shared.ports import ConsentFailed

        try:
            id_token = await self._identity.redeem_sign_in(flow, params)
        except ConsentFailed as exc:
            raise SignInRefused(str(exc)) from None
        header_tid = _unverified_tid(id_token)
        keys = await self._identity.signing_keys(header_tid)
        return verify_id_token(
            id_token,
            keys,
            app_id=self._app_id,
            authority_host=self._authority_host,
            # The authorization request carried the nonce's SHA-256 (OpenID Connect Core,
            # "Nonce Implementation Notes"; MSAL's initiate_auth_code_flow), and so does the token.
            nonce=hashlib.sha256(str(flow.get("nonce", "")).encode("ascii")).hexdigest() if flow.get("nonce") else "",
            now=self._clock(),
        )


def _unverified_tid(token: str) -> str:
    """The tenant the token says it is from, only to fetch that tenant's keys (verified after)."""
    import jwt

    try:
        tid = str(jwt.decode(token, options={"verify_signature": False}).get("tid", ""))
    except jwt.PyJWTError:
        raise SignInRefused("the ID token cannot be read") from None
    from shared.domain.tenants import InvalidTenantId, tenant_id

    try:
        return tenant_id(tid)
    except InvalidTenantId:
        raise SignInRefused("the ID token names no valid tenant") from None
